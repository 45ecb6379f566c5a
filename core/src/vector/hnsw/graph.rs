//! The HNSW graph's storage: flat, slot-indexed link arrays.
//!
//! Level 0 (where every node lives and where search spends most of its time) is one array of
//! `1 + m0` words per slot: the link count, then up to `m0` neighbour slots. Nodes on higher
//! layers (about `1/m` of them) get `1 + m` words per extra layer in a second array, located by
//! a per-slot offset. No per-node allocation, no pointers: a neighbour list is a slice.
//!
//! Words are `AtomicU32` so the parallel build ([`super::parallel`]) can read lists while other
//! threads rewrite them without undefined behaviour. Relaxed atomic loads and stores compile to
//! plain moves, so the single-threaded build and search pay nothing for it. A reader racing a
//! writer may see a mix of old and new neighbours; every one of them is a valid slot, which is
//! all the (approximate) walk needs.

use std::sync::atomic::{AtomicU32, Ordering};

/// Level of a slot that was never inserted.
pub(super) const ABSENT: u8 = u8::MAX;
/// Highest layer a node can be drawn on (`1/m^16` is far below any realistic collection size).
pub(super) const MAX_LEVEL: u8 = 16;

/// Link arrays of one graph.
#[derive(Debug, Default)]
pub(super) struct Links {
    /// Max neighbours on layers >= 1.
    pub m: usize,
    /// Max neighbours on layer 0 (`2 * m`).
    pub m0: usize,
    /// Level of each slot ([`ABSENT`] if not inserted).
    pub levels: Vec<u8>,
    /// Layer-0 lists: slot `s` owns words `s * (1 + m0) ..`.
    pub links0: Vec<AtomicU32>,
    /// Per slot: first word in `upper` of its layer-1 list (layers `1..=level` follow each other).
    pub upper_offset: Vec<u32>,
    /// Upper-layer lists, `1 + m` words each.
    pub upper: Vec<AtomicU32>,
}

impl Clone for Links {
    /// A snapshot of every list (relaxed loads: clone only while no build thread writes).
    fn clone(&self) -> Self {
        let copy = |words: &Vec<AtomicU32>| words.iter().map(|w| AtomicU32::new(w.load(Ordering::Relaxed))).collect();
        Links {
            m: self.m,
            m0: self.m0,
            levels: self.levels.clone(),
            links0: copy(&self.links0),
            upper_offset: self.upper_offset.clone(),
            upper: copy(&self.upper),
        }
    }
}

impl Links {
    /// Empty link arrays for neighbour limits `m` (upper layers) and `2 * m` (layer 0).
    pub fn new(m: usize) -> Self {
        Links { m, m0: 2 * m, ..Default::default() }
    }

    /// Number of slot positions covered (max inserted slot + 1).
    pub fn slots(&self) -> usize {
        self.levels.len()
    }

    /// Level of `slot`, `None` if it was never inserted.
    #[inline]
    pub fn level(&self, slot: u32) -> Option<u8> {
        match self.levels.get(slot as usize) {
            Some(&l) if l != ABSENT => Some(l),
            _ => None,
        }
    }

    /// Makes room for slots `0..slots` (new slots are absent).
    pub fn grow(&mut self, slots: usize) {
        if slots > self.levels.len() {
            self.levels.resize(slots, ABSENT);
            self.upper_offset.resize(slots, 0);
            self.links0.resize_with(slots * (1 + self.m0), || AtomicU32::new(0));
        }
    }

    /// Pre-allocates room for `slots` slot positions (a capacity hint, so growing to the hinted
    /// size does not leave doubling slack in the link arrays).
    pub fn reserve(&mut self, slots: usize) {
        let slots = slots.min(1 << 22);
        self.levels.reserve(slots.saturating_sub(self.levels.len()));
        self.upper_offset.reserve(slots.saturating_sub(self.upper_offset.len()));
        // Capped: the hint comes from callers, and an absurd one must not reserve gigabytes.
        let words = slots.saturating_mul(1 + self.m0).min(1 << 25);
        self.links0.reserve(words.saturating_sub(self.links0.len()));
    }

    /// Registers `slot` at `level` with empty lists on every layer it lives on.
    pub fn add_node(&mut self, slot: u32, level: u8) {
        self.grow(slot as usize + 1);
        self.levels[slot as usize] = level;
        if level > 0 {
            self.upper_offset[slot as usize] = self.upper.len() as u32;
            let words = level as usize * (1 + self.m);
            self.upper.resize_with(self.upper.len() + words, || AtomicU32::new(0));
        }
    }

    /// The words of `slot`'s list on `layer` (count first). The caller checked the layer exists.
    #[inline]
    fn list(&self, slot: u32, layer: u8) -> &[AtomicU32] {
        if layer == 0 {
            let start = slot as usize * (1 + self.m0);
            &self.links0[start..start + 1 + self.m0]
        } else {
            let start =
                self.upper_offset[slot as usize] as usize + (layer as usize - 1) * (1 + self.m);
            &self.upper[start..start + 1 + self.m]
        }
    }

    /// Max neighbours on `layer`.
    #[inline]
    pub fn capacity(&self, layer: u8) -> usize {
        if layer == 0 { self.m0 } else { self.m }
    }

    /// Copies `slot`'s neighbours on `layer` into `out` (cleared first).
    #[inline]
    pub fn neighbours_into(&self, slot: u32, layer: u8, out: &mut Vec<u32>) {
        out.clear();
        let list = self.list(slot, layer);
        let n = (list[0].load(Ordering::Acquire) as usize).min(list.len() - 1);
        out.extend(list[1..1 + n].iter().map(|w| w.load(Ordering::Relaxed)));
    }

    /// Hints that `slot`'s list on layer 0 is about to be read (no effect on results). The walk
    /// calls it for the candidate it will expand next, while it still scores the current node's
    /// neighbours, so that list's cache miss overlaps the arithmetic (hnswlib does the same).
    #[inline]
    pub fn prefetch0(&self, slot: u32) {
        let start = (slot as usize * (1 + self.m0)).min(self.links0.len());
        let words = &self.links0[start..];
        super::search::prefetch_bytes(words.as_ptr().cast(), words.len().min(1 + self.m0) * 4);
    }

    /// Replaces `slot`'s list on `layer` (at most `capacity(layer)` entries are kept). Writers of
    /// one list are serialised by the caller (single thread, or the node's lock).
    pub fn set_neighbours(&self, slot: u32, layer: u8, neighbours: &[u32]) {
        let list = self.list(slot, layer);
        let n = neighbours.len().min(list.len() - 1);
        for (w, &v) in list[1..1 + n].iter().zip(neighbours) {
            w.store(v, Ordering::Relaxed);
        }
        list[0].store(n as u32, Ordering::Release);
    }

    /// Appends one neighbour if there is room; returns false when the list is full.
    pub fn push_neighbour(&self, slot: u32, layer: u8, neighbour: u32) -> bool {
        let list = self.list(slot, layer);
        let n = list[0].load(Ordering::Acquire) as usize;
        if n + 1 >= list.len() {
            return false;
        }
        list[1 + n].store(neighbour, Ordering::Relaxed);
        list[0].store(n as u32 + 1, Ordering::Release);
        true
    }

    /// Heap bytes held by the link arrays.
    pub fn heap_bytes(&self) -> usize {
        self.levels.capacity()
            + self.upper_offset.capacity() * 4
            + (self.links0.capacity() + self.upper.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_hold_what_was_written_and_cap_at_capacity() {
        let mut links = Links::new(2);
        links.add_node(3, 0);
        links.add_node(1, 2);
        assert_eq!(links.slots(), 4);
        assert_eq!(links.level(0), None);
        assert_eq!(links.level(1), Some(2));
        assert_eq!(links.level(9), None);
        let mut out = Vec::new();
        links.set_neighbours(1, 0, &[3, 0, 2, 5, 7]);
        links.neighbours_into(1, 0, &mut out);
        assert_eq!(out, vec![3, 0, 2, 5], "layer 0 keeps 2m = 4");
        links.set_neighbours(1, 2, &[3, 0, 2]);
        links.neighbours_into(1, 2, &mut out);
        assert_eq!(out, vec![3, 0], "upper layers keep m = 2");
        links.neighbours_into(1, 1, &mut out);
        assert!(out.is_empty());
        assert!(links.push_neighbour(1, 1, 3));
        assert!(links.push_neighbour(1, 1, 0));
        assert!(!links.push_neighbour(1, 1, 2), "full");
        links.neighbours_into(1, 1, &mut out);
        assert_eq!(out, vec![3, 0]);
        assert!(links.heap_bytes() > 0);
    }
}
