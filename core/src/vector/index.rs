//! The index trait the engine searches through, and the exact (flat) index.
//!
//! The engine owns the points (the source of truth) and numbers them with dense [`Slot`]s; an index
//! only maps slots to vectors and answers "nearest slots to this query". Keeping the trait this
//! small lets us swap `hnsw_rs` for another implementation without touching the engine.

use crate::vector::distance;

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
/// Results of an approximate index are not deterministic across builds (graph construction may
/// use its own randomness or threads), so they must never feed a determinism check.
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
}

/// Brute-force index: exact, deterministic, and the ground truth for the approximate ones.
#[derive(Clone, Debug)]
pub struct FlatIndex {
    metric: Metric,
    dim: usize,
    slots: Vec<Slot>,
    data: Vec<f32>,
}

impl FlatIndex {
    /// An empty exact index.
    pub fn new(dim: usize, metric: Metric) -> Self {
        FlatIndex { metric, dim, slots: Vec::new(), data: Vec::new() }
    }
}

impl AnnIndex for FlatIndex {
    fn insert(&mut self, slot: Slot, vector: &[f32]) {
        assert_eq!(vector.len(), self.dim, "FlatIndex: dimension mismatch");
        self.slots.push(slot);
        self.data.extend_from_slice(vector);
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        _ef: usize,
        accept: &(dyn Fn(Slot) -> bool + Sync),
    ) -> Vec<Neighbor> {
        let mut hits: Vec<Neighbor> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| accept(**s))
            .map(|(i, &slot)| Neighbor {
                slot,
                distance: self.metric.distance(query, &self.data[i * self.dim..(i + 1) * self.dim]),
            })
            .collect();
        hits.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.slot.cmp(&b.slot)));
        hits.truncate(k);
        hits
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    fn is_exact(&self) -> bool {
        true
    }
}

/// Builds the index the engine uses for a collection.
pub fn new_index(spec: &IndexSpec) -> Box<dyn AnnIndex> {
    crate::vector::hnsw::new_hnsw_index(spec)
}
