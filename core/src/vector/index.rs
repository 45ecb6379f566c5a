//! The index trait the engine searches through, and the exact (flat) index.
//!
//! The engine owns the points (the source of truth) and numbers them with dense [`Slot`]s; an index
//! only maps slots to vectors and answers "nearest slots to this query". Keeping the trait this
//! small lets us swap `hnsw_rs` for another implementation without touching the engine.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::vector::distance;
use crate::vector::vector_store::VectorStoreProvider;

/// Dense internal number of a stored vector, assigned by the collection.
pub type Slot = usize;

/// Which distance an index computes (see [`crate::vector::distance`] for the conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Squared Euclidean distance.
    L2Squared,
    /// `1 - dot(a, b)` on vectors the engine has already normalised.
    CosineNormalized,
    /// `-dot(a, b)`.
    NegDot,
}

impl Metric {
    /// The distance between two vectors under this metric (smaller is closer).
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2Squared => distance::l2_squared(a, b),
            Metric::CosineNormalized => 1.0 - distance::dot(a, b),
            Metric::NegDot => -distance::dot(a, b),
        }
    }
}

/// How to build an index for one collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    /// Vector dimension.
    pub dim: usize,
    /// Distance the index ranks by.
    pub metric: Metric,
    /// HNSW: max neighbours per node per layer.
    pub m: usize,
    /// HNSW: candidate list size while building.
    pub ef_construct: usize,
    /// Expected number of vectors (a capacity hint, not a limit).
    pub capacity_hint: usize,
    /// Seed of the graph's level generator: with the same seed and insert order a
    /// single-threaded build gives the same graph on every replica.
    pub seed: u64,
    /// Which implementation to build.
    pub kind: IndexKind,
}

/// Which index implementation [`new_index`] builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IndexKind {
    /// Our own HNSW ([`crate::vector::hnsw::HnswIndex`]): deterministic, the default.
    #[default]
    Hnsw,
    /// The `hnsw_rs`-built graph ([`crate::vector::hnsw::HnswRsIndex`]), kept for comparison.
    HnswRs,
    /// Exact brute force ([`FlatIndex`]).
    Flat,
}

/// One search hit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbor {
    /// The slot the engine assigned at insert.
    pub slot: Slot,
    /// Distance to the query under the index metric (smaller is closer).
    pub distance: f32,
}

/// An (approximate) nearest-neighbour index over slots.
///
/// Our HNSW built single-threaded is deterministic given its seed and insert order, but other
/// indexes (`hnsw_rs`, any parallel bulk build) are not, so approximate results must never feed
/// a determinism check such as the digest.
pub trait AnnIndex: Send + Sync {
    /// Adds `vector` under `slot`. A slot is inserted at most once per index.
    fn insert(&mut self, slot: Slot, vector: &[f32]);
    /// Up to `k` accepted slots nearest to `query`, closest first. `ef` is the search breadth
    /// (ignored by exact indexes). `accept` filters slots (tombstones, payload filters); an index
    /// must never return a slot it rejects.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        accept: &(dyn Fn(Slot) -> bool + Sync),
    ) -> Vec<Neighbor>;
    /// Number of slots inserted.
    fn len(&self) -> usize;
    /// True when nothing was inserted.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether results are exact (true for [`FlatIndex`]).
    fn is_exact(&self) -> bool;
    /// The vector stored under `slot`, `None` if the slot was never inserted. The index arena is
    /// the only copy of each vector the engine keeps, so every index must answer this.
    fn vector(&self, slot: Slot) -> Option<&[f32]>;
    /// Our own HNSW graph, if this is one (snapshots export and load its links).
    fn as_hnsw(&self) -> Option<&crate::vector::hnsw::HnswIndex> {
        None
    }
    /// An independent copy, if the index can be copied more cheaply than rebuilt.
    fn clone_index(&self) -> Option<Box<dyn AnnIndex>> {
        None
    }
    /// Stores `vector` under `slot`, searchable at once, but leaves the costly part of an insert
    /// (linking it into a graph) to a later [`AnnIndex::index_pending`]; searches cover such
    /// slots exactly meanwhile. Indexes without deferred work just insert.
    fn insert_unindexed(&mut self, slot: Slot, vector: &[f32]) {
        self.insert(slot, vector);
    }
    /// Does the deferred work of up to `max` slots, oldest first; returns how many.
    fn index_pending(&mut self, max: usize) -> usize {
        let _ = max;
        0
    }
    /// Slots stored with [`AnnIndex::insert_unindexed`] and not yet indexed.
    fn unindexed_len(&self) -> usize {
        0
    }
    /// Whether `slot` waits for [`AnnIndex::index_pending`].
    fn is_unindexed(&self, slot: Slot) -> bool {
        let _ = slot;
        false
    }
    /// Moves the stored vectors into a new store from `provider`, leaving slots and links as
    /// they are; false if this index keeps its vectors its own way (only our HNSW takes a
    /// store).
    fn relocate_vectors(&mut self, provider: &dyn VectorStoreProvider) -> bool {
        let _ = provider;
        false
    }
    /// Inserts a batch for a bulk load or rebuild outside the replicated log, on up to `threads`
    /// threads where the index supports it (its links may then depend on thread timing). The
    /// default inserts one by one, exactly like [`AnnIndex::insert`].
    fn insert_bulk(&mut self, batch: &[(Slot, &[f32])], threads: usize) {
        let _ = threads;
        for &(slot, vector) in batch {
            self.insert(slot, vector);
        }
    }
}

/// A hit ordered by distance, then slot: a total order (via `f32::total_cmp`) so hits can live in
/// heaps and ties resolve the same way everywhere (exact search, HNSW, benchmark ground truth).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RankedNeighbor(pub Neighbor);

impl Eq for RankedNeighbor {}

impl PartialOrd for RankedNeighbor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RankedNeighbor {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.distance.total_cmp(&other.0.distance).then(self.0.slot.cmp(&other.0.slot))
    }
}

/// Brute-force index: exact, deterministic, and the ground truth for the approximate ones.
#[derive(Clone, Debug)]
pub struct FlatIndex {
    metric: Metric,
    dim: usize,
    slots: Vec<Slot>,
    data: Vec<f32>,
    /// Slot -> row in `data` (`u32::MAX` for slots never inserted).
    rows: Vec<u32>,
}

impl FlatIndex {
    /// An empty exact index.
    pub fn new(dim: usize, metric: Metric) -> Self {
        FlatIndex { metric, dim, slots: Vec::new(), data: Vec::new(), rows: Vec::new() }
    }
}

impl AnnIndex for FlatIndex {
    fn insert(&mut self, slot: Slot, vector: &[f32]) {
        assert_eq!(vector.len(), self.dim, "FlatIndex: dimension mismatch");
        if slot >= self.rows.len() {
            self.rows.resize(slot + 1, u32::MAX);
        }
        self.rows[slot] = self.slots.len() as u32;
        self.slots.push(slot);
        self.data.extend_from_slice(vector);
    }

    /// Scans every vector, keeping the best `k` in a bounded heap (no full sort). A query of the
    /// wrong dimension has no neighbours.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        _ef: usize,
        accept: &(dyn Fn(Slot) -> bool + Sync),
    ) -> Vec<Neighbor> {
        if k == 0 || query.len() != self.dim {
            return Vec::new();
        }
        // Max-heap on (distance, slot): the root is the worst of the best k so far.
        let mut best: BinaryHeap<RankedNeighbor> = BinaryHeap::with_capacity(k + 1);
        for (i, &slot) in self.slots.iter().enumerate() {
            if !accept(slot) {
                continue;
            }
            let distance = self.metric.distance(query, &self.data[i * self.dim..(i + 1) * self.dim]);
            let hit = RankedNeighbor(Neighbor { slot, distance });
            if best.len() < k {
                best.push(hit);
            } else if best.peek().is_some_and(|worst| hit < *worst) {
                best.pop();
                best.push(hit);
            }
        }
        best.into_sorted_vec().into_iter().map(|h| h.0).collect()
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn is_exact(&self) -> bool {
        true
    }

    fn vector(&self, slot: Slot) -> Option<&[f32]> {
        let row = *self.rows.get(slot)?;
        (row != u32::MAX).then(|| &self.data[row as usize * self.dim..(row as usize + 1) * self.dim])
    }
}

/// Builds the index `spec.kind` names (the engine uses [`IndexKind::Hnsw`]).
///
/// Small collections do not switch to [`FlatIndex`]: HNSW search on a small graph is already
/// cheap (and its exact fallback covers restrictive filters), while switching index kinds at a
/// size threshold would mean rebuilding mid-stream and results changing character as a
/// collection grows.
pub fn new_index(spec: &IndexSpec) -> Box<dyn AnnIndex> {
    new_index_in(spec, &crate::vector::vector_store::InMemoryVectors)
}

/// [`new_index`] with the vectors of our HNSW in a store made by `provider`; the other kinds
/// (kept for comparison) hold their vectors their own way and ignore it.
pub fn new_index_in(spec: &IndexSpec, provider: &dyn VectorStoreProvider) -> Box<dyn AnnIndex> {
    match spec.kind {
        IndexKind::Hnsw => Box::new(crate::vector::hnsw::HnswIndex::new_in(spec, provider)),
        IndexKind::HnswRs => Box::new(crate::vector::hnsw::HnswRsIndex::new(spec)),
        IndexKind::Flat => Box::new(FlatIndex::new(spec.dim, spec.metric)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_index_is_exact_sorted_and_filtered() {
        let mut flat = FlatIndex::new(2, Metric::L2Squared);
        // Inserted out of slot order, with a tie at distance 1 between slots 4 and 2.
        for (slot, v) in [(4, [1.0, 0.0]), (0, [5.0, 5.0]), (2, [0.0, 1.0]), (1, [0.0, 0.0]), (3, [3.0, 0.0])] {
            flat.insert(slot, &v);
        }
        let q = [0.0, 0.0];
        let got: Vec<(Slot, f32)> = flat.search(&q, 3, 0, &|_| true).iter().map(|n| (n.slot, n.distance)).collect();
        assert_eq!(got, vec![(1, 0.0), (2, 1.0), (4, 1.0)]);
        let odd: Vec<Slot> = flat.search(&q, 10, 0, &|s| s % 2 == 1).iter().map(|n| n.slot).collect();
        assert_eq!(odd, vec![1, 3]);
        assert!(flat.search(&q, 0, 0, &|_| true).is_empty());
        assert!(flat.search(&[0.0], 3, 0, &|_| true).is_empty(), "wrong dimension");
        assert_eq!(flat.len(), 5);
        assert_eq!(flat.vector(3), Some(&[3.0, 0.0][..]));
        assert_eq!(flat.vector(9), None);
        assert!(flat.is_exact());
    }

    #[test]
    fn metric_conventions() {
        let (a, b) = ([1.0, 0.0], [0.6, 0.8]);
        assert!((Metric::L2Squared.distance(&a, &b) - 0.8).abs() < 1e-6);
        assert!((Metric::CosineNormalized.distance(&a, &b) - 0.4).abs() < 1e-6);
        assert!((Metric::NegDot.distance(&a, &b) + 0.6).abs() < 1e-6);
    }
}
