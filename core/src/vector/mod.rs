//! The vector engine: collections of points (id, vector, payload) as a deterministic state machine
//! that applies commands from a replicated log, plus its approximate-nearest-neighbour indexes.
//!
//! Layering: [`distance`] holds the distance kernels, [`index`] the small index trait the engine
//! searches through (so no index library's quirks leak upwards), [`hnsw`] our own HNSW (the
//! default) and the `hnsw_rs`-backed one behind that trait. [`point`], [`payload`] and [`filter`] are the data model,
//! [`collection`] one collection with its index, [`engine`] the state machine over all
//! collections, and [`snapshot`] the streaming, checksummed snapshot format. [`vector_store`] is where
//! an index keeps its f32 vectors (the heap by default; a runtime may supply a file).

pub mod aligned;
pub mod collection;
pub mod distance;
pub mod engine;
pub mod error;
pub mod filter;
mod growth;
pub mod hnsw;
pub mod index;
mod nesting;
pub mod payload;
pub mod payload_index;
pub mod point;
pub mod quantization;
pub mod snapshot;
pub mod vector_store;

#[cfg(test)]
mod tests;
