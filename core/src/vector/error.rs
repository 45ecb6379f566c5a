//! The engine's typed errors. Every rejection of a command or query names what was wrong, and a
//! rejected command changes nothing (commands are validated completely before any state changes).

use crate::vector::filter::FilterError;
use crate::vector::payload::PayloadError;
use crate::vector::point::PointId;
use thiserror::Error;

/// Why a command or query was rejected.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    /// No collection by that name.
    #[error("collection `{0}` does not exist")]
    UnknownCollection(String),
    /// Create of a name that is taken.
    #[error("collection `{0}` already exists")]
    CollectionExists(String),
    /// Empty, too long, or containing characters a URL path or file name cannot carry.
    #[error("invalid collection name `{name}`: {reason}")]
    InvalidCollectionName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Vector size or HNSW parameters out of range.
    #[error("invalid collection config: {0}")]
    InvalidConfig(String),
    /// A vector whose length differs from the collection's vector size.
    #[error("vector for {point} has dimension {got}, collection expects {expected}")]
    DimensionMismatch {
        /// Which vector: a point id, or `query`.
        point: VectorOwner,
        /// Collection vector size.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// NaN or infinite component.
    #[error("vector for {point} has a non-finite component at index {index}")]
    NonFiniteVector {
        /// Which vector.
        point: VectorOwner,
        /// First bad component.
        index: usize,
    },
    /// A zero vector cannot be normalised for Cosine.
    #[error("vector for {point} has zero length; cosine similarity is undefined")]
    ZeroVector {
        /// Which vector.
        point: VectorOwner,
    },
    /// A payload with non-finite numbers or excessive nesting.
    #[error("invalid payload: {0}")]
    InvalidPayload(#[from] PayloadError),
    /// A malformed payload key in a delete-payload command.
    #[error("invalid payload key `{0}`")]
    InvalidPayloadKey(String),
    /// A malformed filter.
    #[error("invalid filter: {0}")]
    InvalidFilter(#[from] FilterError),
    /// A payload command named an id that is not stored.
    #[error("point {0} does not exist")]
    PointNotFound(PointId),
    /// A query parameter out of range (e.g. `ef` of zero).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// Names the vector an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorOwner {
    /// A point being upserted.
    Point(PointId),
    /// The query vector of a search.
    Query,
}

impl std::fmt::Display for VectorOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VectorOwner::Point(id) => write!(f, "point {id}"),
            VectorOwner::Query => f.write_str("the query"),
        }
    }
}
