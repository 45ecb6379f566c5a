//! Point identifiers and the point records the engine stores and returns.
//!
//! Qdrant clients send ids as either a JSON unsigned integer or a UUID string; both are first-class
//! here. Ids order numeric ids first (ascending), then UUIDs (by their 128-bit value), which is the
//! order scroll pages and snapshot chunks use.

use crate::vector::payload::Payload;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// A point's identity within a collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PointId {
    /// An unsigned integer id.
    Num(u64),
    /// A UUID, stored as its 128-bit big-endian value.
    Uuid(u128),
}

/// Why a value could not be read as a point id.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PointIdError {
    /// A JSON number that is negative, fractional or too large for u64.
    #[error("point id `{0}` is not an unsigned 64-bit integer")]
    NotUnsigned(String),
    /// A string that is not a UUID.
    #[error("point id `{0}` is not a valid UUID")]
    InvalidUuid(String),
    /// Neither a number nor a string.
    #[error("point id must be an unsigned integer or a UUID string, got {0}")]
    WrongType(&'static str),
}

impl PointId {
    /// Reads an id from JSON as the REST API receives it: a number (u64) or a UUID string.
    pub fn from_json(value: &serde_json::Value) -> Result<PointId, PointIdError> {
        use serde_json::Value;
        match value {
            Value::Number(n) => {
                n.as_u64().map(PointId::Num).ok_or_else(|| PointIdError::NotUnsigned(n.to_string()))
            }
            Value::String(s) => PointId::parse_uuid(s),
            Value::Null => Err(PointIdError::WrongType("null")),
            Value::Bool(_) => Err(PointIdError::WrongType("a boolean")),
            Value::Array(_) => Err(PointIdError::WrongType("an array")),
            Value::Object(_) => Err(PointIdError::WrongType("an object")),
        }
    }

    /// The JSON form the REST API answers with (number or hyphenated lowercase UUID).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            PointId::Num(n) => serde_json::Value::from(*n),
            PointId::Uuid(_) => serde_json::Value::String(self.to_string()),
        }
    }

    /// Parses a UUID in hyphenated (`8-4-4-4-12`) or simple (32 hex digits) form, any case.
    pub fn parse_uuid(text: &str) -> Result<PointId, PointIdError> {
        let bad = || PointIdError::InvalidUuid(text.to_string());
        let bytes = text.as_bytes();
        let hex: Vec<u8> = match bytes.len() {
            32 => bytes.to_vec(),
            36 => {
                if [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
                    return Err(bad());
                }
                bytes.iter().copied().filter(|&b| b != b'-').collect()
            }
            _ => return Err(bad()),
        };
        if hex.len() != 32 {
            return Err(bad());
        }
        let mut value: u128 = 0;
        for b in hex {
            let digit = (b as char).to_digit(16).ok_or_else(bad)?;
            value = (value << 4) | digit as u128;
        }
        Ok(PointId::Uuid(value))
    }
}

impl fmt::Display for PointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointId::Num(n) => write!(f, "{n}"),
            PointId::Uuid(u) => {
                let h = format!("{u:032x}");
                write!(f, "{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
            }
        }
    }
}

impl FromStr for PointId {
    type Err = PointIdError;

    /// Parses a path parameter: all digits is a numeric id, anything else must be a UUID.
    fn from_str(s: &str) -> Result<PointId, PointIdError> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse::<u64>().map(PointId::Num).map_err(|_| PointIdError::NotUnsigned(s.to_string()))
        } else {
            PointId::parse_uuid(s)
        }
    }
}

impl From<u64> for PointId {
    fn from(n: u64) -> PointId {
        PointId::Num(n)
    }
}

/// A point as clients upsert it. The engine normalises the vector for Cosine collections.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointStruct {
    /// The point's id; upserting an existing id replaces that point.
    pub id: PointId,
    /// The vector; its length must equal the collection's vector size.
    pub vector: Vec<f32>,
    /// The payload (empty map when the client sent none).
    pub payload: Payload,
}

/// A stored point as returned by get/scroll, with the parts the caller asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The point's id.
    pub id: PointId,
    /// Collection sequence number of the command that last changed this point.
    pub version: u64,
    /// Payload, when requested.
    pub payload: Option<Payload>,
    /// Vector (normalised for Cosine collections), when requested.
    pub vector: Option<Vec<f32>>,
}

/// One search hit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredPoint {
    /// The point's id.
    pub id: PointId,
    /// Collection sequence number of the command that last changed this point.
    pub version: u64,
    /// Qdrant-style score: cosine similarity, dot product (higher is better) or euclidean
    /// distance (lower is better).
    pub score: f32,
    /// Payload, when requested.
    pub payload: Option<Payload>,
    /// Vector, when requested.
    pub vector: Option<Vec<f32>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integer_and_uuid_ids() {
        assert_eq!(PointId::from_json(&json!(42)).unwrap(), PointId::Num(42));
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        let id = PointId::from_json(&json!(uuid)).unwrap();
        assert_eq!(id.to_string(), uuid);
        assert_eq!(id.to_json(), json!(uuid));
        assert_eq!(PointId::parse_uuid("550E8400E29B41D4A716446655440000").unwrap(), id);
        assert_eq!(uuid.parse::<PointId>().unwrap(), id);
        assert_eq!("17".parse::<PointId>().unwrap(), PointId::Num(17));
        assert!(matches!(PointId::from_json(&json!(-1)), Err(PointIdError::NotUnsigned(_))));
        assert!(matches!(PointId::from_json(&json!(1.5)), Err(PointIdError::NotUnsigned(_))));
        assert!(matches!(PointId::from_json(&json!("17")), Err(PointIdError::InvalidUuid(_))));
        assert!(matches!(
            PointId::parse_uuid("550e8400-e29b-41d4-a716-44665544000g"),
            Err(PointIdError::InvalidUuid(_))
        ));
        assert!(matches!(
            PointId::parse_uuid("550e8400+e29b-41d4-a716-446655440000"),
            Err(PointIdError::InvalidUuid(_))
        ));
        assert!(matches!(PointId::from_json(&json!(null)), Err(PointIdError::WrongType("null"))));
        assert!("99999999999999999999".parse::<PointId>().is_err());
        // Numeric ids sort before UUIDs.
        assert!(PointId::Num(u64::MAX) < PointId::Uuid(0));
    }
}
