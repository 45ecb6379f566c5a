//! HNSW index backed by `hnsw_rs`, behind [`crate::vector::index::AnnIndex`].
//!
//! Until the hnsw_rs integration lands this returns the exact index, which is correct (recall 1.0)
//! but slow on large collections.

use crate::vector::index::{AnnIndex, FlatIndex, IndexSpec};

/// Builds the approximate index for `spec`.
pub fn new_hnsw_index(spec: &IndexSpec) -> Box<dyn AnnIndex> {
    Box::new(FlatIndex::new(spec.dim, spec.metric))
}
