//! Vectors on disk in the node world. In seeds with `NodeWorldConfig::vector_files` the
//! collections are created with `on_disk`, and every replica — created, restored at boot or
//! installed from a snapshot — moves its f32 vectors into a [`ChunkedFiles`] store, as the
//! runtime's `ShardEngines::prepare` moves them into a mapped file. The store is replica-local,
//! and so is its shape: each machine's store grows in chunks of its own size (so replicas of
//! one shard grow at different moments), and on some machines the "directory" is unusable, so
//! their replicas keep the vectors on the heap, as the runtime falls back to. A store cannot
//! copy itself (a copy rebuilds from the points).
//!
//! Nothing new is checked: the store must be invisible. `convergence` compares every replica's
//! digest (which reads each point's vector from its store); `durability`, `scatter-gather` and
//! the other checkers run as in every seed. The `vector-file-loses-row` bug switch models a
//! store whose growth copies every row but the last: replicas lose different rows at different
//! moments, and `convergence` sees them differ.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use vecraft_core::vector::vector_store::{VectorStore, VectorStoreProvider};

/// Most machines a node world has.
const MAX_MACHINES: usize = 5;

/// How a seed keeps its vectors on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimVectorFiles {
    /// Rows per growth step of each machine's stores; 0: the machine keeps the vectors on the
    /// heap (its vector directory is unusable).
    pub chunk_rows: [u8; MAX_MACHINES],
    /// The `vector-file-loses-row` bug switch.
    pub growth_loses_row: bool,
}

impl SimVectorFiles {
    /// Drawn on a stream of its own (other choices of the seed do not shift); about a third of
    /// the seeds keep their vectors on disk, and every seed with the bug switch.
    pub fn from_seed(seed: u64, bug: bool) -> Option<SimVectorFiles> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0D15_CF11_E500_0008);
        if !rng.random_bool(1.0 / 3.0) && !bug {
            return None;
        }
        let chunk_rows = std::array::from_fn(|_| if rng.random_bool(0.15) { 0 } else { rng.random_range(1..=8) });
        Some(SimVectorFiles { chunk_rows, growth_loses_row: bug })
    }

    /// Where machine `m`'s replicas of `on_disk` collections keep their vectors (`None`: heap).
    pub fn provider(&self, m: usize) -> Option<Arc<dyn VectorStoreProvider>> {
        let chunk_rows = *self.chunk_rows.get(m)? as usize;
        (chunk_rows > 0).then(|| {
            Arc::new(ChunkedFiles { chunk_rows, growth_loses_row: self.growth_loses_row }) as Arc<dyn VectorStoreProvider>
        })
    }
}

/// Makes [`ChunkedFile`]s.
#[derive(Debug)]
pub struct ChunkedFiles {
    chunk_rows: usize,
    growth_loses_row: bool,
}

impl VectorStoreProvider for ChunkedFiles {
    fn create(&self, dim: usize, capacity_rows: usize) -> Box<dyn VectorStore> {
        let dim = dim.max(1);
        let mut file = ChunkedFile {
            dim,
            chunk_values: self.chunk_rows * dim,
            values: Vec::new(),
            capacity: 0,
            growth_loses_row: self.growth_loses_row,
        };
        file.grow_capacity(capacity_rows.max(1) * dim);
        Box::new(file)
    }

    fn is_external(&self) -> bool {
        true
    }
}

/// A simulated file: rows in a `Vec`, a capacity that grows in whole chunks.
#[derive(Debug)]
pub struct ChunkedFile {
    dim: usize,
    chunk_values: usize,
    values: Vec<f32>,
    /// Values that fit before the next growth.
    capacity: usize,
    growth_loses_row: bool,
}

impl ChunkedFile {
    /// Grows the capacity to whole chunks holding `values` values (with the bug, the rows move
    /// without the last).
    fn grow_capacity(&mut self, values: usize) {
        if self.growth_loses_row && self.values.len() >= self.dim {
            let end = self.values.len();
            self.values[end - self.dim..].fill(0.0);
        }
        self.capacity = values.div_ceil(self.chunk_values) * self.chunk_values;
    }
}

impl VectorStore for ChunkedFile {
    fn values(&self) -> &[f32] {
        &self.values
    }

    fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values
    }

    fn grow_to(&mut self, len: usize) {
        if len <= self.values.len() {
            return;
        }
        if len > self.capacity {
            self.grow_capacity(len);
        }
        self.values.resize(len, 0.0);
    }

    fn reserve(&mut self, additional: usize) {
        let want = self.values.len().saturating_add(additional);
        if want > self.capacity {
            self.grow_capacity(want);
        }
    }

    fn heap_bytes(&self) -> usize {
        0
    }

    /// A file store that cannot copy itself: the caller rebuilds from the points.
    fn try_clone(&self) -> Option<Box<dyn VectorStore>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_growth_and_only_the_bug_loses_the_last_row() {
        for bug in [false, true] {
            let files = SimVectorFiles { chunk_rows: [2, 0, 1, 1, 1], growth_loses_row: bug };
            assert!(files.provider(1).is_none(), "chunk 0: on the heap");
            assert!(files.provider(MAX_MACHINES).is_none());
            let files = files.provider(0).unwrap();
            let mut store = files.create(2, 3);
            store.grow_to(6);
            store.values_mut().copy_from_slice(&[1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
            store.push_row(&[4.0, 4.0]); // within the 4-row capacity: no growth
            store.push_row(&[5.0, 5.0]); // growth
            let want = if bug { [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 0.0, 0.0, 5.0, 5.0] } else { [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0] };
            assert_eq!(store.values(), want, "bug {bug}");
            assert!(files.is_external() && store.try_clone().is_none() && store.heap_bytes() == 0);
        }
    }
}
