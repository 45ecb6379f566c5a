//! HNSW indexes behind [`crate::vector::index::AnnIndex`].
//!
//! [`HnswIndex`] is our own construction and the engine's default: flat link arrays
//! ([`graph`]), inserts with the HNSW neighbour-selection heuristic ([`build`]), the beam-search
//! walk ([`search`]) and a parallel bulk build ([`parallel`]). Node levels come from a ChaCha
//! generator seeded by the collection, drawn in insert order, and every heap breaks distance
//! ties by slot, so a single-threaded build is a pure function of (seed, insert order, vectors):
//! replicas that apply the same log build the same graph. [`HnswRsIndex`] (the `hnsw_rs`-built
//! graph) stays selectable for comparison.
//!
//! Vectors live once, in a slot-indexed arena the index owns (`dim` floats per slot): a
//! [`VectorStore`], on the heap by default or supplied from outside `core` (see
//! [`crate::vector::vector_store`]). A walk borrows the arena's slice once, so the f32 walk indexes
//! plain memory whatever the store is.
//!
//! Indexing can be deferred ([`AnnIndex::insert_unindexed`]): the vector is stored and its level
//! drawn at once, but linking waits in a FIFO until [`AnnIndex::index_pending`] runs (the driver
//! does it when idle). Searches scan the unindexed tail exactly and merge it with the walk, so
//! a point is searchable from the moment it is stored. Linking in insert order gives the very
//! graph an immediate insert would have built (nothing reaches an unlinked node, and the entry
//! point moves at link time), so deferring changes when the work happens, never the graph.

mod build;
mod graph;
mod image;
mod parallel;
mod rs_index;
mod search;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Mutex;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::vector::index::{AnnIndex, IndexSpec, Metric, Neighbor, RankedNeighbor, Slot};
use crate::vector::vector_store::{InMemoryVectors, VectorStore, VectorStoreProvider};
use build::{BuildScratch, draw_level, link_node};
use graph::Links;
use search::{Cand, FullPrecision, Scratch, View};

pub use search::{Scorer, prefetch_bytes};

pub use image::{GraphHeader, GraphLoader, GraphNode, NOT_EXPORTED};
pub use rs_index::{
    HnswParams, HnswRsIndex, MAX_EF_CONSTRUCT, MAX_M, MIN_M, SearchPath, graph_distance,
};

/// Largest `m` our own graph accepts (the collection config allows up to 256).
pub const MAX_OWN_M: usize = 256;
/// Upper bound on the capacity hint we pre-allocate for (the hint comes from API callers).
const MAX_CAPACITY_HINT: usize = 1 << 22;

/// Our HNSW graph over a slot-indexed vector arena.
pub struct HnswIndex {
    dim: usize,
    metric: Metric,
    m: usize,
    ef_construct: usize,
    links: Links,
    /// Row `slot` holds that slot's vector (rows of never-inserted slots are zero).
    vectors: Box<dyn VectorStore>,
    len: usize,
    /// Entry point and its level (the first linked node drawn on the top level).
    entry: Option<(u32, u8)>,
    /// Stored but not yet linked nodes (slot, level), in insert order (slots ascending).
    unindexed: VecDeque<(u32, u8)>,
    /// Level generator, advanced once per insert.
    rng: ChaCha8Rng,
    /// Buffers of the single-threaded insert path.
    build: BuildScratch,
    /// Walk buffers for concurrent queries, reused so a query allocates nothing per node.
    scratch_pool: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("dim", &self.dim)
            .field("metric", &self.metric)
            .field("m", &self.m)
            .field("ef_construct", &self.ef_construct)
            .field("len", &self.len)
            .field("entry", &self.entry)
            .field("unindexed", &self.unindexed.len())
            .finish()
    }
}

impl HnswIndex {
    /// An empty index for `spec`; `m` is clamped to `2..=256` and `ef_construct` to
    /// `m..=`[`MAX_EF_CONSTRUCT`].
    pub fn new(spec: &IndexSpec) -> Self {
        Self::new_in(spec, &InMemoryVectors)
    }

    /// [`Self::new`] with its vectors in a store made by `provider` (a file, say).
    pub fn new_in(spec: &IndexSpec, provider: &dyn VectorStoreProvider) -> Self {
        let m = spec.m.clamp(MIN_M, MAX_OWN_M);
        let ef_construct = spec.ef_construct.clamp(m, MAX_EF_CONSTRUCT);
        let capacity = spec.capacity_hint.min(MAX_CAPACITY_HINT);
        let mut links = Links::new(m);
        links.reserve(capacity);
        let vectors = provider.create(spec.dim, capacity);
        debug_assert!(vectors.values().is_empty(), "a new store is empty");
        HnswIndex {
            dim: spec.dim,
            metric: spec.metric,
            m,
            ef_construct,
            links,
            vectors,
            len: 0,
            entry: None,
            unindexed: VecDeque::new(),
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            build: BuildScratch::default(),
            scratch_pool: Mutex::new(Vec::new()),
        }
    }

    /// The clamped `(m, ef_construct)` this index builds with.
    pub fn params(&self) -> (usize, usize) {
        (self.m, self.ef_construct)
    }

    /// Heap bytes of vectors and links (what a point costs in this index); vectors in an
    /// external store count only what that store keeps on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.vectors.heap_bytes() + self.links.heap_bytes()
    }

    /// Tells the vector store its rows will not be read soon (see
    /// [`VectorStore::release_resident`]); results are unchanged.
    pub fn release_resident_vectors(&self) {
        self.vectors.release_resident();
    }

    /// Moves every vector into a new store from `provider`; the graph and slots are untouched.
    pub fn relocate_vectors(&mut self, provider: &dyn VectorStoreProvider) {
        let values = self.vectors.values();
        let mut moved = provider.create(self.dim, values.len() / self.dim.max(1));
        moved.grow_to(values.len());
        moved.values_mut().copy_from_slice(values);
        self.vectors = moved;
    }

    fn view(&self) -> View<'_> {
        View { links: &self.links, vectors: self.vectors.values(), dim: self.dim, metric: self.metric }
    }

    /// Copies `vector` into the arena row of `slot` and registers the node at `level`.
    fn place(&mut self, slot: u32, level: u8, vector: &[f32]) {
        let end = (slot as usize + 1) * self.dim;
        self.vectors.grow_to(end);
        self.vectors.values_mut()[end - self.dim..end].copy_from_slice(vector);
        self.links.add_node(slot, level);
        self.len += 1;
    }

    /// Links placed node `slot` into the graph (the first node becomes the entry point).
    fn link(&mut self, slot: u32, level: u8) {
        let Some(entry) = self.entry else {
            self.entry = Some((slot, level));
            return;
        };
        let mut build = std::mem::take(&mut self.build);
        link_node(&self.view(), self.m, self.ef_construct, slot, level, entry, None, &mut build);
        self.build = build;
        if level > entry.1 {
            self.entry = Some((slot, level));
        }
    }

    /// Checks an insert; false (and a debug assertion) for a repeated slot.
    fn check_insert(&self, slot: Slot, vector: &[f32]) -> bool {
        assert_eq!(vector.len(), self.dim, "HnswIndex: dimension mismatch");
        assert!(slot < u32::MAX as usize, "HnswIndex: slot {slot} out of range");
        if self.links.level(slot as u32).is_some() {
            debug_assert!(false, "HnswIndex: slot {slot} inserted twice");
            return false;
        }
        true
    }

    /// Exact scan (under `scorer`) of every inserted, accepted slot: the fallback when the walk
    /// comes up short.
    fn scan_all_by<S: Scorer>(&self, scorer: &S, accept: &dyn Fn(Slot) -> bool, out: &mut Vec<Neighbor>) {
        for slot in 0..self.links.slots() as u32 {
            if self.links.level(slot).is_some() && accept(slot as Slot) {
                out.push(Neighbor { slot: slot as Slot, distance: scorer.distance(slot) });
            }
        }
    }

    /// Vector dimension.
    pub fn vector_dim(&self) -> usize {
        self.dim
    }

    /// Number of slot positions the graph covers (max inserted slot + 1): a scorer must answer
    /// for every inserted slot below it.
    pub fn slot_positions(&self) -> usize {
        self.links.slots()
    }

    /// Up to `k` accepted slots nearest under `scorer`, closest first (ties by slot): the HNSW
    /// walk with distances from `scorer` instead of the f32 arena (quantized codes walk the same
    /// graph this way). The reported distances are the scorer's. `ef` is raised to `k`.
    pub fn search_by<S: Scorer>(
        &self,
        scorer: &S,
        k: usize,
        ef: usize,
        accept: &(dyn Fn(Slot) -> bool + Sync),
    ) -> Vec<Neighbor> {
        if k == 0 || self.len == 0 {
            return Vec::new();
        }
        let mut hits: Vec<Neighbor> = match self.entry {
            Some((entry, top)) => {
                let ef = ef.max(k);
                let mut s = self.scratch_pool.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
                let view = self.view();
                let start = view.descend_by(scorer, Cand { d: scorer.distance(entry), id: entry }, top, 0, &mut s);
                let accept_u32 = |id: u32| accept(id as Slot);
                let mut found = Vec::with_capacity(ef + 1);
                view.search_layer_by(scorer, start, ef, 0, Some(&accept_u32), &mut s, &mut found);
                self.scratch_pool.lock().unwrap_or_else(|e| e.into_inner()).push(s);
                found.iter().take(k).map(|c| Neighbor { slot: c.id as Slot, distance: c.d }).collect()
            }
            None => Vec::new(),
        };
        if !self.unindexed.is_empty() {
            // The unindexed tail is searched exactly and merged with the walk's best.
            for &(slot, _) in &self.unindexed {
                if accept(slot as Slot) {
                    hits.push(Neighbor { slot: slot as Slot, distance: scorer.distance(slot) });
                }
            }
            finish(&mut hits, k);
        }
        if hits.len() < k && hits.len() < self.len {
            // The walk came up short (restrictive filter or unreachable nodes): an exact scan
            // finds every accepted slot.
            hits.clear();
            self.scan_all_by(scorer, accept, &mut hits);
            finish(&mut hits, k);
        }
        debug_assert!(hits.iter().all(|h| accept(h.slot)));
        hits
    }

    /// blake3 of levels, entry and every neighbour list: equal fingerprints mean equal graphs.
    pub fn graph_fingerprint(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&self.levels_and_entry_bytes());
        let mut buf = Vec::new();
        for slot in 0..self.links.slots() as u32 {
            if let Some(level) = self.links.level(slot) {
                for layer in 0..=level {
                    self.links.neighbours_into(slot, layer, &mut buf);
                    h.update(&(buf.len() as u32).to_le_bytes());
                    for n in &buf {
                        h.update(&n.to_le_bytes());
                    }
                }
            }
        }
        *h.finalize().as_bytes()
    }

    fn levels_and_entry_bytes(&self) -> Vec<u8> {
        let mut v = self.links.levels.clone();
        if let Some((e, l)) = self.entry {
            v.extend_from_slice(&e.to_le_bytes());
            v.push(l);
        }
        v
    }
}

/// Sorts hits closest first (ties by slot), drops duplicate slots, keeps the first `k`.
fn finish(hits: &mut Vec<Neighbor>, k: usize) {
    hits.sort_by_key(|h| RankedNeighbor(*h));
    hits.dedup_by_key(|h| h.slot);
    hits.truncate(k);
}

impl AnnIndex for HnswIndex {
    /// Draws the node's level from the seeded generator and links it (deterministic). A vector of
    /// the wrong dimension is an engine bug (it validates input), so it is a hard error; a
    /// repeated slot (also a caller bug) is ignored in release builds.
    fn insert(&mut self, slot: Slot, vector: &[f32]) {
        if !self.check_insert(slot, vector) {
            return;
        }
        // Everything deferred before this insert is linked first: links follow insert order.
        self.index_pending(usize::MAX);
        let slot = slot as u32;
        let level = draw_level(&mut self.rng, self.m);
        self.place(slot, level, vector);
        self.link(slot, level);
    }

    /// Stores the vector and draws its level now; links it at a later [`Self::index_pending`].
    /// Slots must ascend across deferred inserts (the engine numbers them so).
    fn insert_unindexed(&mut self, slot: Slot, vector: &[f32]) {
        if !self.check_insert(slot, vector) {
            return;
        }
        let slot = slot as u32;
        debug_assert!(self.unindexed.back().is_none_or(|&(last, _)| last < slot), "unindexed slots ascend");
        let level = draw_level(&mut self.rng, self.m);
        self.place(slot, level, vector);
        self.unindexed.push_back((slot, level));
    }

    /// Links up to `max` unindexed nodes, oldest first.
    fn index_pending(&mut self, max: usize) -> usize {
        let n = max.min(self.unindexed.len());
        for _ in 0..n {
            let (slot, level) = self.unindexed.pop_front().expect("counted");
            self.link(slot, level);
        }
        n
    }

    fn unindexed_len(&self) -> usize {
        self.unindexed.len()
    }

    fn is_unindexed(&self, slot: Slot) -> bool {
        self.unindexed.front().is_some_and(|&(first, _)| slot >= first as Slot)
            && self.links.level(slot as u32).is_some()
    }

    /// Returns an empty result for a query of the wrong dimension or with non-finite values.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        accept: &(dyn Fn(Slot) -> bool + Sync),
    ) -> Vec<Neighbor> {
        if query.len() != self.dim || !query.iter().all(|x| x.is_finite()) {
            return Vec::new();
        }
        self.search_by(&FullPrecision { view: self.view(), query }, k, ef, accept)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_exact(&self) -> bool {
        false
    }

    /// The parallel bulk build ([`HnswIndex::insert_batch_parallel`]).
    fn insert_bulk(&mut self, batch: &[(Slot, &[f32])], threads: usize) {
        self.insert_batch_parallel(batch, threads);
    }

    fn as_hnsw(&self) -> Option<&HnswIndex> {
        Some(self)
    }

    /// Copies links, vectors and the level generator's position: the copy inserts exactly as
    /// the original would. `None` when the vector store cannot copy itself.
    fn clone_index(&self) -> Option<Box<dyn AnnIndex>> {
        let vectors = self.vectors.try_clone()?;
        Some(Box::new(HnswIndex {
            dim: self.dim,
            metric: self.metric,
            m: self.m,
            ef_construct: self.ef_construct,
            links: self.links.clone(),
            vectors,
            len: self.len,
            entry: self.entry,
            unindexed: self.unindexed.clone(),
            rng: self.rng.clone(),
            build: BuildScratch::default(),
            scratch_pool: Mutex::new(Vec::new()),
        }))
    }

    fn vector(&self, slot: Slot) -> Option<&[f32]> {
        let slot = u32::try_from(slot).ok()?;
        self.links.level(slot)?;
        Some(self.view().vector(slot))
    }

    fn relocate_vectors(&mut self, provider: &dyn VectorStoreProvider) -> bool {
        HnswIndex::relocate_vectors(self, provider);
        true
    }
}
