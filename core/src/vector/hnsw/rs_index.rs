//! HNSW index backed by `hnsw_rs`, behind [`crate::vector::index::AnnIndex`]: the index before
//! our own construction ([`super::HnswIndex`]) replaced it as the default. Kept selectable
//! ([`crate::vector::index::IndexKind::HnswRs`]) for comparison and as a recall cross-check.
//!
//! `hnsw_rs` builds the graph (single-threaded inserts: no rayon in core). Its own search path is
//! slow for our use: every visited node costs an `Arc` allocation, a `HashMap` insert and a lock,
//! and with a filter it never stops early, and the engine always passes a filter (tombstones).
//! So by default ([`SearchPath::Compact`]) we keep a *compact view* of the same graph, flat `u32`
//! adjacency arrays and a contiguous copy of the vectors indexed by slot, and walk that with our
//! SIMD kernels. The view is refreshed from `hnsw_rs` when enough inserts have piled up since the
//! last refresh; vectors inserted since then are scanned exactly, so every inserted slot is always
//! searchable. [`SearchPath::Native`] searches through `hnsw_rs` itself (kept for comparison).
//!
//! Distances handed to `hnsw_rs` must be non-negative (its search asserts it), so the graph
//! sees an order-preserving non-negative transform of the metric (see [`graph_distance`]); the
//! compact view and the results use the real metric values.
//!
//! If a (filtered) graph search finds fewer than `k` accepted slots, the index falls back to an
//! exact scan, so it returns `k` accepted slots whenever that many exist.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use hnsw_rs::anndists::dist::Distance;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::prelude::FilterT;

use crate::vector::index::{AnnIndex, IndexSpec, Metric, Neighbor, RankedNeighbor, Slot};
#[cfg(test)]
use crate::vector::index::IndexKind;

/// Smallest `m` we build with (smaller graphs are too poorly connected to be useful).
pub const MIN_M: usize = 2;
/// Largest `m` we build with: `hnsw_rs` stores `m` in a `u8` and exits the process above 256;
/// level 0 keeps `2 * m` links, so 128 keeps everything in range.
pub const MAX_M: usize = 128;
/// Upper bound on `ef_construct` (larger values only slow builds down).
pub const MAX_EF_CONSTRUCT: usize = 4096;
/// Upper bound on the capacity hint we pre-allocate for (the hint comes from API callers).
const MAX_CAPACITY_HINT: usize = 1 << 22;
/// Number of graph layers (`hnsw_rs` supports at most 16).
const MAX_LAYERS: usize = 16;
/// Pending (not yet in the compact view) vectors are scanned exactly on every search; the view is
/// refreshed once more than `max(MIN_PENDING, view_len / PENDING_FRACTION)` are waiting. This
/// bounds the per-search exact scan while keeping the refresh cost per insert constant.
const MIN_PENDING: usize = 256;
const PENDING_FRACTION: usize = 128;

/// Which search implementation an [`HnswRsIndex`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SearchPath {
    /// Walk a compact copy of the `hnsw_rs` graph with our kernels (fast; the default).
    #[default]
    Compact,
    /// Call `hnsw_rs`'s own `search_filter` (slower; kept for comparison benchmarks).
    Native,
}

/// Build parameters after clamping to what `hnsw_rs` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswParams {
    /// Max links per node per upper layer (level 0 keeps `2 * m`).
    pub m: usize,
    /// Candidate list size while building.
    pub ef_construct: usize,
}

impl HnswParams {
    /// Clamps `spec`'s `m` into [`MIN_M`]..=[`MAX_M`] and `ef_construct` into `m..=MAX_EF_CONSTRUCT`,
    /// because `hnsw_rs` ends the process on out-of-range values instead of returning an error.
    pub fn from_spec(spec: &IndexSpec) -> Self {
        let m = spec.m.clamp(MIN_M, MAX_M);
        let ef_construct = spec.ef_construct.clamp(m, MAX_EF_CONSTRUCT);
        HnswParams { m, ef_construct }
    }
}

/// Maps a metric distance to the non-negative, order-preserving value `hnsw_rs` works with.
///
/// `hnsw_rs` only ever *compares* distances, so any strictly increasing map onto `[0, inf)` builds
/// the same graph. L2 is already non-negative; Cosine (`1 - dot` on unit vectors) can dip a few
/// ulps below zero, so it is clamped; NegDot is unbounded below, so it goes through
/// `d >= 0 -> 1 + d`, `d < 0 -> 1 / (1 - d)` (continuous and increasing, values in `(0, inf)`).
/// NaN (from non-finite input) maps to `f32::MAX` so `hnsw_rs`'s assertions can never fire.
pub fn graph_distance(metric: Metric, d: f32) -> f32 {
    if d.is_nan() {
        return f32::MAX;
    }
    match metric {
        Metric::L2Squared | Metric::CosineNormalized => d.max(0.0),
        Metric::NegDot => {
            if d >= 0.0 {
                1.0 + d
            } else {
                1.0 / (1.0 - d)
            }
        }
    }
}

/// Inverse of [`graph_distance`] (up to rounding), for results of the native search path.
fn metric_distance_from_graph(metric: Metric, g: f32) -> f32 {
    match metric {
        Metric::L2Squared | Metric::CosineNormalized => g,
        Metric::NegDot => {
            if g >= 1.0 {
                g - 1.0
            } else {
                1.0 - 1.0 / g
            }
        }
    }
}

/// The distance `hnsw_rs` builds with: our SIMD kernels behind its custom-`Distance` hook.
#[derive(Clone, Copy, Debug)]
struct GraphDistance {
    metric: Metric,
}

impl Distance<f32> for GraphDistance {
    #[inline]
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        graph_distance(self.metric, self.metric.distance(va, vb))
    }
}

/// Flat copy of the `hnsw_rs` graph's links as of its last refresh, indexed by slot.
#[derive(Debug, Default)]
struct CompactGraph {
    /// Number of slot positions (max inserted slot + 1 at the refresh) the links cover.
    slots: usize,
    /// Level-0 links: per slot `1 + 2m` words, the first being the link count.
    links0: Vec<u32>,
    /// Links on layers `1..=level` (index `layer - 1`); empty for level-0 nodes.
    upper: Vec<Box<[Box<[u32]>]>>,
    /// Entry point (a node on the top layer) and that layer, if the graph is non-empty.
    entry: Option<(u32, usize)>,
    /// Number of nodes in the view.
    nodes: usize,
}

/// Approximate nearest-neighbour index: an `hnsw_rs` graph plus a compact view for searching.
pub struct HnswRsIndex {
    dim: usize,
    metric: Metric,
    params: HnswParams,
    path: SearchPath,
    graph: Hnsw<'static, f32, GraphDistance>,
    /// `inserted[slot]` is true once `slot` was inserted.
    inserted: Vec<bool>,
    len: usize,
    view: CompactGraph,
    /// Every inserted vector, row `slot` (`dim` floats; rows of slots never inserted are zero).
    /// Written at insert, so a refresh only copies links.
    vectors: Vec<f32>,
    /// Slots inserted since the last view refresh (not yet linked in the view).
    pending_slots: Vec<Slot>,
}

impl std::fmt::Debug for HnswRsIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswRsIndex")
            .field("dim", &self.dim)
            .field("metric", &self.metric)
            .field("params", &self.params)
            .field("path", &self.path)
            .field("len", &self.len)
            .field("view_nodes", &self.view.nodes)
            .field("pending", &self.pending_slots.len())
            .finish()
    }
}

impl HnswRsIndex {
    /// An empty index for `spec`, searching through the compact view.
    pub fn new(spec: &IndexSpec) -> Self {
        Self::with_search_path(spec, SearchPath::Compact)
    }

    /// An empty index for `spec` using the given search implementation.
    pub fn with_search_path(spec: &IndexSpec, path: SearchPath) -> Self {
        let params = HnswParams::from_spec(spec);
        let capacity = spec.capacity_hint.min(MAX_CAPACITY_HINT);
        let graph = Hnsw::new(
            params.m,
            capacity,
            MAX_LAYERS,
            params.ef_construct,
            GraphDistance { metric: spec.metric },
        );
        HnswRsIndex {
            dim: spec.dim,
            metric: spec.metric,
            params,
            path,
            graph,
            inserted: Vec::new(),
            len: 0,
            view: CompactGraph::default(),
            vectors: Vec::new(),
            pending_slots: Vec::new(),
        }
    }

    /// The (clamped) build parameters in use.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// The search implementation in use.
    pub fn search_path(&self) -> SearchPath {
        self.path
    }

    fn refresh_threshold(&self) -> usize {
        MIN_PENDING.max(self.view.nodes / PENDING_FRACTION)
    }

    /// Rebuilds the compact view from the `hnsw_rs` graph and clears the pending list.
    fn refresh_view(&mut self) {
        let dim = self.dim;
        let slots = self.inserted.len();
        let stride0 = 1 + 2 * self.params.m;
        let mut links0 = std::mem::take(&mut self.view.links0);
        links0.clear();
        links0.resize(slots * stride0, 0);
        let mut upper = std::mem::take(&mut self.view.upper);
        upper.clear();
        upper.resize_with(slots, Default::default);
        let mut entry: Option<(u32, usize)> = None;
        let mut nodes = 0;
        if self.graph.get_nb_point() > 0 {
            for point in self.graph.get_point_indexation() {
                let slot = point.get_origin_id();
                debug_assert!(slot < slots && self.inserted[slot]);
                if slot >= slots {
                    continue;
                }
                let level = point.get_point_id().0 as usize;
                debug_assert_eq!(&self.vectors[slot * dim..(slot + 1) * dim], point.get_v());
                let layers = point.get_neighborhood_id();
                let row = &mut links0[slot * stride0..(slot + 1) * stride0];
                let mut count = 0;
                if let Some(base) = layers.first() {
                    debug_assert!(base.len() < stride0, "level-0 list longer than 2m");
                    for n in base.iter().take(stride0 - 1) {
                        row[1 + count] = n.get_origin_id() as u32;
                        count += 1;
                    }
                }
                row[0] = count as u32;
                if level > 0 {
                    upper[slot] = (1..=level)
                        .map(|l| {
                            layers
                                .get(l)
                                .map(|ns| ns.iter().map(|n| n.get_origin_id() as u32).collect())
                                .unwrap_or_default()
                        })
                        .collect();
                }
                if entry.is_none_or(|(_, top)| level > top) {
                    entry = Some((slot as u32, level));
                }
                nodes += 1;
            }
        }
        debug_assert_eq!(nodes, self.len, "compact view must cover every inserted slot");
        self.view = CompactGraph { slots, links0, upper, entry, nodes };
        self.pending_slots.clear();
    }

    fn view_vector(&self, slot: u32) -> &[f32] {
        let s = slot as usize;
        &self.vectors[s * self.dim..(s + 1) * self.dim]
    }

    fn view_links0(&self, slot: u32) -> &[u32] {
        let stride0 = 1 + 2 * self.params.m;
        let row = &self.view.links0[slot as usize * stride0..(slot as usize + 1) * stride0];
        &row[1..1 + row[0] as usize]
    }

    /// Standard HNSW search over the compact view: greedy descent on the upper layers, then a
    /// best-first search of breadth `ef` on level 0. Rejected nodes are still walked through (so
    /// a filter does not disconnect the graph) but never enter the results.
    fn search_view(
        &self,
        query: &[f32],
        ef: usize,
        accept: &(dyn Fn(Slot) -> bool + Sync),
        out: &mut Vec<Neighbor>,
    ) {
        let Some((entry, top)) = self.view.entry else { return };
        let metric = self.metric;
        let mut current = entry;
        let mut current_dist = metric.distance(query, self.view_vector(current));
        for layer in (1..=top).rev() {
            loop {
                let mut improved = false;
                let links = self.view.upper[current as usize].get(layer - 1);
                for &n in links.map(|l| &l[..]).unwrap_or(&[]) {
                    let d = metric.distance(query, self.view_vector(n));
                    if d < current_dist {
                        current_dist = d;
                        current = n;
                        improved = true;
                    }
                }
                if !improved {
                    break;
                }
            }
        }

        let mut visited = vec![0u64; self.view.slots.div_ceil(64)];
        let mut mark = |s: u32| {
            let (word, bit) = (s as usize / 64, 1u64 << (s % 64));
            let seen = visited[word] & bit != 0;
            visited[word] |= bit;
            seen
        };
        // Min-heap of nodes to expand; max-heap of the best `ef` accepted results.
        let ranked = |distance: f32, slot: u32| RankedNeighbor(Neighbor { slot: slot as Slot, distance });
        let mut candidates: BinaryHeap<Reverse<RankedNeighbor>> = BinaryHeap::with_capacity(ef * 2);
        let mut results: BinaryHeap<RankedNeighbor> = BinaryHeap::with_capacity(ef + 1);
        mark(current);
        candidates.push(Reverse(ranked(current_dist, current)));
        if accept(current as Slot) {
            results.push(ranked(current_dist, current));
        }
        while let Some(Reverse(RankedNeighbor(c))) = candidates.pop() {
            if results.len() >= ef && results.peek().is_some_and(|w| c.distance > w.0.distance) {
                break;
            }
            let links = self.view_links0(c.slot as u32);
            // Start fetching every neighbour's vector before computing any distance, so the
            // cache misses overlap instead of queueing one behind the other.
            for &n in links {
                prefetch(self.view_vector(n));
            }
            for &n in links {
                if mark(n) {
                    continue;
                }
                let dn = metric.distance(query, self.view_vector(n));
                let full = results.len() >= ef;
                if !full || results.peek().is_some_and(|w| dn < w.0.distance) {
                    candidates.push(Reverse(ranked(dn, n)));
                    if accept(n as Slot) {
                        results.push(ranked(dn, n));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        out.extend(results.into_iter().map(|r| r.0));
    }

    /// Exact scan of the slots inserted since the last view refresh.
    fn scan_pending(
        &self,
        query: &[f32],
        accept: &(dyn Fn(Slot) -> bool + Sync),
        out: &mut Vec<Neighbor>,
    ) {
        for &slot in &self.pending_slots {
            if accept(slot) {
                let v = self.view_vector(slot as u32);
                out.push(Neighbor { slot, distance: self.metric.distance(query, v) });
            }
        }
    }

    /// Exact scan of every inserted slot (the fallback when a graph search comes up short).
    fn scan_all(
        &self,
        query: &[f32],
        accept: &(dyn Fn(Slot) -> bool + Sync),
        out: &mut Vec<Neighbor>,
    ) {
        match self.path {
            SearchPath::Compact => {
                for (slot, &inserted) in self.inserted.iter().enumerate() {
                    if inserted && accept(slot) {
                        let v = self.view_vector(slot as u32);
                        out.push(Neighbor { slot, distance: self.metric.distance(query, v) });
                    }
                }
            }
            SearchPath::Native => {
                if self.graph.get_nb_point() == 0 {
                    return;
                }
                for point in self.graph.get_point_indexation() {
                    let slot = point.get_origin_id();
                    if accept(slot) {
                        let distance = self.metric.distance(query, point.get_v());
                        out.push(Neighbor { slot, distance });
                    }
                }
            }
        }
    }

    fn search_native(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        accept: &(dyn Fn(Slot) -> bool + Sync),
        out: &mut Vec<Neighbor>,
    ) {
        let filter = |id: &usize| accept(*id);
        let filter: &dyn FilterT = &filter;
        for n in self.graph.search_filter(query, k, ef, Some(filter)) {
            // hnsw_rs may leave its (rejected) entry point in the results: filter again.
            if accept(n.d_id) {
                let distance = metric_distance_from_graph(self.metric, n.distance);
                out.push(Neighbor { slot: n.d_id, distance });
            }
        }
    }
}

/// Hints the CPU to pull the first cache lines of `data` into cache (no effect elsewhere).
#[inline(always)]
fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = data.as_ptr().cast::<i8>();
        // SAFETY: a prefetch is only a hint: it never faults (even on an address past the end
        // of the row, which `wrapping_add` keeps well defined to compute), reads nothing into
        // the program and writes nothing; neither pointer is dereferenced.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Sorts hits closest first (ties by slot), drops duplicate slots, keeps the first `k`.
fn finish(hits: &mut Vec<Neighbor>, k: usize) {
    hits.sort_by_key(|h| RankedNeighbor(*h));
    hits.dedup_by_key(|h| h.slot);
    hits.truncate(k);
}

impl AnnIndex for HnswRsIndex {
    /// Inserts into the `hnsw_rs` graph (single-threaded). A vector of the wrong dimension is a
    /// bug in the engine (it validates input), so it is a hard error; a repeated slot (also a
    /// caller bug) is ignored in release builds.
    fn insert(&mut self, slot: Slot, vector: &[f32]) {
        assert_eq!(vector.len(), self.dim, "HnswIndex: dimension mismatch");
        assert!(slot < u32::MAX as usize, "HnswIndex: slot {slot} out of range");
        if self.inserted.get(slot).copied().unwrap_or(false) {
            debug_assert!(false, "HnswIndex: slot {slot} inserted twice");
            return;
        }
        if slot >= self.inserted.len() {
            self.inserted.resize(slot + 1, false);
        }
        self.inserted[slot] = true;
        self.len += 1;
        self.graph.insert_slice((vector, slot));
        // Both paths keep the slot-indexed copy: the engine reads vectors back through
        // `AnnIndex::vector` (hnsw_rs holds its own copy as well, so this index stores two).
        if self.vectors.len() < (slot + 1) * self.dim {
            self.vectors.resize((slot + 1) * self.dim, 0.0);
        }
        self.vectors[slot * self.dim..(slot + 1) * self.dim].copy_from_slice(vector);
        if self.path == SearchPath::Compact {
            self.pending_slots.push(slot);
            if self.pending_slots.len() > self.refresh_threshold() {
                self.refresh_view();
            }
        }
    }

    /// Returns an empty result for a query of the wrong dimension or with non-finite values
    /// (such a query has no meaningful neighbours, and must not reach `hnsw_rs`'s assertions).
    fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        accept: &(dyn Fn(Slot) -> bool + Sync),
    ) -> Vec<Neighbor> {
        if k == 0 || self.len == 0 || query.len() != self.dim || !query.iter().all(|x| x.is_finite())
        {
            return Vec::new();
        }
        let ef = ef.max(k);
        let mut hits = Vec::with_capacity(ef + self.pending_slots.len());
        match self.path {
            SearchPath::Compact => {
                self.search_view(query, ef, accept, &mut hits);
                self.scan_pending(query, accept, &mut hits);
            }
            SearchPath::Native => self.search_native(query, k, ef, accept, &mut hits),
        }
        finish(&mut hits, k);
        if hits.len() < k && hits.len() < self.len {
            // The graph walk came up short (restrictive filter or unreachable nodes): an exact
            // scan finds every accepted slot.
            hits.clear();
            self.scan_all(query, accept, &mut hits);
            finish(&mut hits, k);
        }
        debug_assert!(hits.iter().all(|h| accept(h.slot)));
        hits
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_exact(&self) -> bool {
        false
    }

    fn vector(&self, slot: Slot) -> Option<&[f32]> {
        self.inserted.get(slot).copied().unwrap_or(false).then(|| self.view_vector(slot as u32))
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::distance;
    use crate::vector::index::FlatIndex;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn spec(dim: usize, metric: Metric) -> IndexSpec {
        IndexSpec { dim, metric, m: 16, ef_construct: 100, capacity_hint: 2000, seed: 1, kind: IndexKind::HnswRs }
    }

    /// Gaussian-ish clustered data (sum of uniforms around random centres), normalised for
    /// Cosine so it matches what the engine stores.
    fn clustered(n: usize, dim: usize, clusters: usize, metric: Metric, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<Vec<f32>> = (0..clusters)
            .map(|_| (0..dim).map(|_| rng.random_range(-10.0f32..10.0)).collect())
            .collect();
        (0..n)
            .map(|_| {
                let c = &centres[rng.random_range(0..clusters)];
                let mut v: Vec<f32> = c
                    .iter()
                    .map(|x| x + (0..3).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>())
                    .collect();
                if metric == Metric::CosineNormalized {
                    let norm = distance::norm_squared(&v).sqrt();
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect()
    }

    fn recall_at_10(metric: Metric, path: SearchPath, ef: usize) -> f64 {
        let dim = 24;
        let data = clustered(2000, dim, 20, metric, 7);
        let queries = clustered(50, dim, 20, metric, 8);
        let s = spec(dim, metric);
        let mut hnsw = HnswRsIndex::with_search_path(&s, path);
        let mut flat = FlatIndex::new(dim, metric);
        // Shuffled slot order: the engine may insert slots in any order.
        let mut order: Vec<usize> = (0..data.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        for &slot in &order {
            hnsw.insert(slot, &data[slot]);
            flat.insert(slot, &data[slot]);
        }
        let all = |_: Slot| true;
        let mut found = 0;
        for q in &queries {
            let truth: Vec<Slot> = flat.search(q, 10, 0, &all).iter().map(|n| n.slot).collect();
            let got = hnsw.search(q, 10, ef, &all);
            assert_eq!(got.len(), 10);
            assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance), "sorted");
            for n in &got {
                let want = metric.distance(q, &data[n.slot]);
                assert!((n.distance - want).abs() <= 1e-3 * (1.0 + want.abs()), "true distance");
            }
            found += got.iter().filter(|n| truth.contains(&n.slot)).count();
        }
        let r = found as f64 / (queries.len() * 10) as f64;
        eprintln!("{metric:?} {path:?} recall@10 {r}");
        r
    }

    #[test]
    fn recall_l2() {
        let r = recall_at_10(Metric::L2Squared, SearchPath::Compact, 64);
        assert!(r >= 0.9, "recall {r}");
    }

    #[test]
    fn recall_cosine() {
        let r = recall_at_10(Metric::CosineNormalized, SearchPath::Compact, 64);
        assert!(r >= 0.9, "recall {r}");
    }

    #[test]
    fn recall_neg_dot() {
        // Inner product is not a metric (a vector need not be its own nearest neighbour), so the
        // graph is a weaker guide and needs a wider search for the same recall.
        let r = recall_at_10(Metric::NegDot, SearchPath::Compact, 128);
        assert!(r >= 0.9, "recall {r}");
    }

    #[test]
    fn recall_native_path() {
        for metric in [Metric::L2Squared, Metric::CosineNormalized, Metric::NegDot] {
            let ef = if metric == Metric::NegDot { 128 } else { 64 };
            let r = recall_at_10(metric, SearchPath::Native, ef);
            assert!(r >= 0.9, "{metric:?} recall {r}");
        }
    }

    #[test]
    fn filter_is_honoured_and_k_found() {
        let dim = 16;
        let data = clustered(1500, dim, 10, Metric::L2Squared, 3);
        for path in [SearchPath::Compact, SearchPath::Native] {
            let mut hnsw = HnswRsIndex::with_search_path(&spec(dim, Metric::L2Squared), path);
            for (slot, v) in data.iter().enumerate() {
                hnsw.insert(slot, v);
            }
            let queries = clustered(20, dim, 10, Metric::L2Squared, 4);
            // Loose (every other slot), strict (1 in 97) and "exactly 3 accepted" filters.
            let loose = |s: Slot| s.is_multiple_of(2);
            let strict = |s: Slot| s % 97 == 5;
            let three = |s: Slot| s == 10 || s == 700 || s == 1499;
            for q in &queries {
                let got = hnsw.search(q, 10, 32, &loose);
                assert_eq!(got.len(), 10);
                assert!(got.iter().all(|n| n.slot.is_multiple_of(2)));
                let got = hnsw.search(q, 10, 32, &strict);
                assert_eq!(got.len(), 10, "{path:?}: 15 accepted exist, want 10");
                assert!(got.iter().all(|n| n.slot % 97 == 5));
                let got = hnsw.search(q, 10, 32, &three);
                let mut slots: Vec<Slot> = got.iter().map(|n| n.slot).collect();
                slots.sort();
                assert_eq!(slots, vec![10, 700, 1499]);
                assert!(hnsw.search(q, 10, 32, &|_| false).is_empty());
            }
        }
    }

    #[test]
    fn pending_and_refreshed_slots_are_all_searchable() {
        // Every slot must be findable right after insert, whether it is still pending or was
        // folded into the compact view; query each vector for itself.
        let dim = 8;
        let data = clustered(700, dim, 5, Metric::L2Squared, 11);
        let mut hnsw = HnswRsIndex::new(&spec(dim, Metric::L2Squared));
        for (slot, v) in data.iter().enumerate().rev() {
            hnsw.insert(slot, v);
            let got = hnsw.search(v, 1, 16, &|s| s == slot);
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].slot, slot);
            assert_eq!(got[0].distance, 0.0);
        }
        assert_eq!(hnsw.len(), 700);
        assert!(hnsw.view.nodes > 0, "the view was refreshed at least once");
        for (slot, v) in data.iter().enumerate() {
            let got = hnsw.search(v, 1, 32, &|_| true);
            assert_eq!(got[0].distance, 0.0, "slot {slot} findable");
        }
    }

    #[test]
    fn bad_queries_and_params_do_not_panic() {
        let huge = IndexSpec {
            dim: 4,
            metric: Metric::NegDot,
            m: 100_000,
            ef_construct: 0,
            capacity_hint: usize::MAX,
            seed: 0,
            kind: IndexKind::HnswRs,
        };
        let mut hnsw = HnswRsIndex::new(&huge);
        assert_eq!(hnsw.params(), HnswParams { m: MAX_M, ef_construct: MAX_M });
        assert!(hnsw.is_empty());
        assert!(hnsw.search(&[1.0; 4], 5, 10, &|_| true).is_empty());
        for i in 0..50 {
            hnsw.insert(i, &[i as f32, -(i as f32), 1.0, 0.5]);
        }
        assert!(hnsw.search(&[1.0; 3], 5, 10, &|_| true).is_empty(), "wrong dimension");
        assert!(hnsw.search(&[f32::NAN, 0.0, 0.0, 0.0], 5, 10, &|_| true).is_empty());
        assert!(hnsw.search(&[1.0; 4], 0, 10, &|_| true).is_empty());
        // k larger than the index: everything, sorted, with negative NegDot distances intact.
        let got = hnsw.search(&[1.0, 0.0, 0.0, 0.0], 100, 10, &|_| true);
        assert_eq!(got.len(), 50);
        assert_eq!(got[0].slot, 49);
        assert_eq!(got[0].distance, -49.0);
        let tiny = IndexSpec { dim: 4, metric: Metric::L2Squared, m: 0, ef_construct: 0, capacity_hint: 0, seed: 0, kind: IndexKind::HnswRs };
        assert_eq!(HnswParams::from_spec(&tiny), HnswParams { m: MIN_M, ef_construct: MIN_M });
    }

    #[test]
    fn graph_distance_is_non_negative_and_monotone() {
        let samples = [-1e30f32, -1e6, -3.5, -1.0, -1e-6, 0.0, 1e-3, 1.0, 2.0, 1e6, 1e30];
        for metric in [Metric::L2Squared, Metric::CosineNormalized, Metric::NegDot] {
            for w in samples.windows(2) {
                let (a, b) = (graph_distance(metric, w[0]), graph_distance(metric, w[1]));
                assert!(a >= 0.0 && b >= 0.0);
                assert!(a <= b, "{metric:?}: {} -> {a}, {} -> {b}", w[0], w[1]);
            }
            assert_eq!(graph_distance(metric, f32::NAN), f32::MAX);
        }
        for d in [-100.0f32, -2.0, -0.25, 0.0, 0.5, 3.0] {
            let back = metric_distance_from_graph(Metric::NegDot, graph_distance(Metric::NegDot, d));
            assert!((back - d).abs() <= 1e-4 * (1.0 + d.abs()), "{d} -> {back}");
        }
    }
}
