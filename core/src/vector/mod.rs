//! The vector engine: collections of points (id, vector, payload) as a deterministic state machine
//! that applies commands from a replicated log, plus its approximate-nearest-neighbour indexes.
//!
//! Layering: [`distance`] holds the distance kernels, [`index`] the small index trait the engine
//! searches through (so no index library's quirks leak upwards), [`hnsw`] the `hnsw_rs`-backed
//! implementation of that trait.

pub mod distance;
pub mod hnsw;
pub mod index;
