//! Parallel bulk build: the one place in `core` that starts threads.
//!
//! `core` is otherwise pure (no threads), and the replicated state machine must stay on the
//! deterministic single-threaded [`AnnIndex::insert`](crate::vector::index::AnnIndex::insert)
//! path. A bulk load or an index rebuild outside the log (restore, compaction) may instead call
//! [`HnswIndex::insert_batch_parallel`]: same levels as a sequential insert of the batch (drawn
//! from the seeded generator in batch order), but links depend on thread timing, so two parallel
//! builds of one batch can differ. Results are approximate either way, and the digest covers
//! points, not the index, so replicas still agree on everything that is checked.
//!
//! How: every node of the batch is placed (vector copied, level drawn, empty lists registered)
//! before any thread starts; the batch's highest node becomes the entry point (linked first
//! when the graph already has one), so the entry point never moves while threads run. Threads
//! then take nodes in chunks from a shared counter and link them with [`link_node`], holding a
//! per-node lock while writing that node's lists. Readers do not lock: lists are atomics.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::build::{BuildScratch, draw_level, link_node};
use super::HnswIndex;
use crate::vector::index::{AnnIndex, Slot};

/// Nodes a thread claims at a time (amortises the shared counter, keeps threads balanced).
const CHUNK: usize = 64;

impl HnswIndex {
    /// Inserts `batch` (slot, vector) on `threads` threads (at least 1). Not deterministic in
    /// its links; never call it from the replicated state machine (see the module docs).
    pub fn insert_batch_parallel(&mut self, batch: &[(Slot, &[f32])], threads: usize) {
        // Deferred nodes go first, single-threaded: links follow insert order.
        AnnIndex::index_pending(self, usize::MAX);
        if let Some(max_slot) = batch.iter().map(|(s, _)| *s).max() {
            let need = (max_slot + 1).saturating_mul(self.dim);
            let have = self.vectors.values().len();
            if have < need {
                self.vectors.reserve(need - have);
            }
            self.links.grow(max_slot + 1);
        }
        let mut nodes: Vec<(u32, u8)> = Vec::with_capacity(batch.len());
        for &(slot, vector) in batch {
            if !self.check_insert(slot, vector) {
                continue;
            }
            let level = draw_level(&mut self.rng, self.m);
            self.place(slot as u32, level, vector);
            nodes.push((slot as u32, level));
        }
        // The batch's first highest node: the new entry point if it beats the current one.
        let Some(&top) = nodes.iter().rev().max_by_key(|(_, l)| *l) else { return };
        let mut build = std::mem::take(&mut self.build);
        let entry = match self.entry {
            None => top,
            Some(old) if top.1 > old.1 => {
                link_node(&self.view(), self.m, self.ef_construct, top.0, top.1, old, None, &mut build);
                top
            }
            Some(old) => {
                // The entry stays; `top` is linked with the rest.
                self.entry = Some(old);
                (u32::MAX, 0)
            }
        };
        if entry.0 != u32::MAX {
            self.entry = Some(entry);
        }
        self.build = build;
        let entry_node = self.entry.expect("set above");
        let rest: Vec<(u32, u8)> = nodes.into_iter().filter(|(s, _)| *s != entry.0).collect();
        let locks: Vec<Mutex<()>> = (0..self.links.slots()).map(|_| Mutex::new(())).collect();
        let view = self.view();
        let (m, ef) = (self.m, self.ef_construct);
        let next = AtomicUsize::new(0);
        let work = || {
            let mut scratch = BuildScratch::default();
            loop {
                let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                if start >= rest.len() {
                    break;
                }
                for &(slot, level) in &rest[start..(start + CHUNK).min(rest.len())] {
                    link_node(&view, m, ef, slot, level, entry_node, Some(&locks), &mut scratch);
                }
            }
        };
        let threads = threads.clamp(1, 256);
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(work);
            }
            work();
        });
    }
}
