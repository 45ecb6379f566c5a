//! The search walk shared by construction and queries: greedy descent through the upper layers,
//! then a best-first beam search (`ef` wide) on one layer.
//!
//! Everything a walk allocates lives in a [`Scratch`] that callers keep and reuse (queries take
//! one from the index's pool), so a query allocates nothing proportional to the collection.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use super::graph::Links;
use crate::vector::index::Metric;

/// A node with its distance to the query; ordered by distance, then slot, so every heap and
/// sort breaks ties the same way (by slot), which keeps builds and results deterministic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Cand {
    pub d: f32,
    pub id: u32,
}

impl Eq for Cand {}

impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.d.total_cmp(&other.d).then(self.id.cmp(&other.id))
    }
}

/// Visited marks by epoch: starting a new walk is one increment, not a clear of `n` entries.
#[derive(Debug, Default)]
pub(super) struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// Starts a new walk over `slots` positions.
    pub fn reset(&mut self, slots: usize) {
        if self.marks.len() < slots {
            self.marks.resize(slots, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `id`; true if it was not marked in this walk. Ids beyond the reset size (a slot
    /// added concurrently during a parallel build) count as visited, so they are skipped.
    #[inline]
    pub fn insert(&mut self, id: u32) -> bool {
        match self.marks.get_mut(id as usize) {
            Some(m) if *m != self.epoch => {
                *m = self.epoch;
                true
            }
            _ => false,
        }
    }
}

/// Reusable buffers of one walk.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    pub visited: Visited,
    candidates: BinaryHeap<Reverse<Cand>>,
    results: BinaryHeap<Cand>,
    neighbours: Vec<u32>,
}

/// What a walk reads: links plus the slot-indexed vector arena.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    pub links: &'a Links,
    pub vectors: &'a [f32],
    pub dim: usize,
    pub metric: Metric,
}

impl<'a> View<'a> {
    /// The stored vector of `slot`.
    #[inline]
    pub fn vector(&self, slot: u32) -> &'a [f32] {
        let start = slot as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    /// Distance from `query` to the vector of `slot`.
    #[inline]
    pub fn dist(&self, query: &[f32], slot: u32) -> f32 {
        self.metric.distance(query, self.vector(slot))
    }

    /// Greedy descent from `entry` on layers `top` down to `bottom + 1`: on each layer, move to
    /// the closest neighbour until no neighbour is closer. Returns the node to start `bottom` from.
    pub fn descend(&self, query: &[f32], cur: Cand, top: u8, bottom: u8, s: &mut Scratch) -> Cand {
        self.descend_by(&FullPrecision { view: *self, query }, cur, top, bottom, s)
    }

    /// [`Self::descend`] with distances from `scorer` (full precision or quantized codes).
    pub fn descend_by<S: Scorer>(&self, scorer: &S, mut cur: Cand, top: u8, bottom: u8, s: &mut Scratch) -> Cand {
        let mut layer = top;
        while layer > bottom {
            loop {
                let mut moved = false;
                self.links.neighbours_into(cur.id, layer, &mut s.neighbours);
                for i in 0..s.neighbours.len() {
                    let n = s.neighbours[i];
                    let c = Cand { d: scorer.distance(n), id: n };
                    if c < cur {
                        cur = c;
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
            }
            layer -= 1;
        }
        cur
    }

    /// Beam search on `layer` from `entry`: the up to `ef` closest accepted nodes found, closest
    /// first, in `out`. Rejected nodes are still walked through (they connect the graph) but
    /// never returned. Without a filter the walk stops once the closest unexplored candidate is
    /// farther than the `ef`-th result; with one it keeps going until it holds `ef` accepted
    /// nodes or runs out of graph (the caller bounds that cost by choosing exact search for
    /// very selective filters).
    #[allow(clippy::too_many_arguments)]
    pub fn search_layer(
        &self,
        query: &[f32],
        entry: Cand,
        ef: usize,
        layer: u8,
        accept: Option<&dyn Fn(u32) -> bool>,
        s: &mut Scratch,
        out: &mut Vec<Cand>,
    ) {
        self.search_layer_by(&FullPrecision { view: *self, query }, entry, ef, layer, accept, s, out)
    }

    /// [`Self::search_layer`] with distances from `scorer` (full precision or quantized codes).
    #[allow(clippy::too_many_arguments)]
    pub fn search_layer_by<S: Scorer>(
        &self,
        scorer: &S,
        entry: Cand,
        ef: usize,
        layer: u8,
        accept: Option<&dyn Fn(u32) -> bool>,
        s: &mut Scratch,
        out: &mut Vec<Cand>,
    ) {
        s.visited.reset(self.links.slots());
        s.candidates.clear();
        s.results.clear();
        s.visited.insert(entry.id);
        s.candidates.push(Reverse(entry));
        let accepted = |id: u32| accept.is_none_or(|f| f(id));
        let mut bound = f32::INFINITY;
        if accepted(entry.id) {
            s.results.push(entry);
            bound = entry.d;
        }
        let ef = ef.max(1);
        while let Some(Reverse(c)) = s.candidates.pop() {
            if c.d > bound && (s.results.len() >= ef || accept.is_none()) {
                break;
            }
            self.links.neighbours_into(c.id, layer, &mut s.neighbours);
            // Mark and drop the visited neighbours first, then hint every remaining row before
            // the first distance: a random row is a cache miss, and a hint issued one distance
            // ahead hides little of it (profile of the int8 walk on 256-d text embeddings: over
            // half its kernel time waited on the row's first load). Results are unchanged: the
            // marks never depend on distances, and distances are taken in the same order.
            let visited = &mut s.visited;
            s.neighbours.retain(|&n| visited.insert(n));
            for &n in &s.neighbours {
                scorer.prefetch(n);
            }
            // The list expanded next is the best candidate's: hint it now (and again whenever a
            // closer one arrives), so its miss overlaps this neighbourhood's distances.
            let mut next = f32::INFINITY;
            if let Some(Reverse(c)) = s.candidates.peek() {
                next = c.d;
                if layer == 0 {
                    self.links.prefetch0(c.id);
                }
            }
            for i in 0..s.neighbours.len() {
                let n = s.neighbours[i];
                let d = scorer.distance(n);
                if s.results.len() < ef || d < bound {
                    let cand = Cand { d, id: n };
                    if layer == 0 && d < next {
                        next = d;
                        self.links.prefetch0(n);
                    }
                    s.candidates.push(Reverse(cand));
                    if accepted(n) {
                        s.results.push(cand);
                        if s.results.len() > ef {
                            s.results.pop();
                        }
                    }
                    if let Some(worst) = s.results.peek() {
                        bound = worst.d;
                    }
                }
            }
        }
        out.clear();
        out.extend(s.results.drain());
        out.sort_unstable();
    }
}

/// Where a walk gets the distance from its query to a node: the full-precision arena, or a
/// quantized code store ([`crate::vector::quantization`]). Generic (not `dyn`) so each kind
/// compiles to its own walk with the kernel inlined.
pub trait Scorer {
    /// Distance from the walk's query to `slot` (smaller is closer; ties are broken by slot).
    fn distance(&self, slot: u32) -> f32;
    /// Hints that `slot`'s data is about to be read (no effect on results).
    fn prefetch(&self, slot: u32);
}

/// The full-precision scorer: the index metric on the f32 arena.
pub(super) struct FullPrecision<'a, 'q> {
    pub view: View<'a>,
    pub query: &'q [f32],
}

impl Scorer for FullPrecision<'_, '_> {
    #[inline]
    fn distance(&self, slot: u32) -> f32 {
        self.view.dist(self.query, slot)
    }

    #[inline]
    fn prefetch(&self, slot: u32) {
        prefetch_bytes(self.view.vector(slot).as_ptr().cast(), self.view.dim * 4);
    }
}

/// Hints the CPU to pull up to `bytes` (at most 512) starting at `row` into cache. A hint only:
/// it never faults and changes no program state.
#[inline(always)]
pub fn prefetch_bytes(row: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = row.cast::<i8>();
        let mut off = 0;
        while off < bytes.min(512) {
            // SAFETY: `_mm_prefetch` is a hint that never faults or dereferences in the
            // program's sense; `wrapping_add` keeps the address computation defined.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (row, bytes);
}
