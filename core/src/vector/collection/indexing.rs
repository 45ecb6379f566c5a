//! Deferred indexing: when to link stored vectors into the graph.
//!
//! Linking a point into HNSW costs `ef_construct` distance evaluations per layer; storing it
//! costs a copy. A write-heavy node can store at once and link later, when its apply thread is
//! idle, as Qdrant leaves fresh segments unindexed until its optimizer runs: searches scan the
//! unindexed tail exactly, so every stored point is found from the moment it is applied. The
//! policy is local to a replica (never replicated, never in a snapshot or the digest): linking
//! in insert order builds the same graph whenever it happens, and exact-scan results are at
//! least as good as the walk's, so replicas with different policies agree on everything that
//! is checked.

use super::*;

/// How a collection defers linking (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexingPolicy {
    /// Points that may wait unlinked; an insert beyond it links the oldest waiting points
    /// first, so the exact scan every search adds stays bounded. 0 links at insert (the
    /// default, and what the state machine did before deferral existed).
    pub max_unindexed: usize,
    /// Bug switch for the simulator: approximate searches silently drop unindexed points.
    /// Forced off in builds without the `bug-injection` feature.
    pub bug_hide_unindexed: bool,
}

impl IndexingPolicy {
    /// Links at insert.
    pub const IMMEDIATE: IndexingPolicy = IndexingPolicy { max_unindexed: 0, bug_hide_unindexed: false };

    /// Defers up to `max_unindexed` points.
    pub fn deferred(max_unindexed: usize) -> IndexingPolicy {
        IndexingPolicy { max_unindexed, bug_hide_unindexed: false }
    }

    pub(super) fn hides_unindexed(&self) -> bool {
        cfg!(feature = "bug-injection") && self.bug_hide_unindexed
    }
}

impl Collection {
    /// Sets this replica's indexing policy. Lowering the bound links the excess at once.
    pub fn set_indexing_policy(&mut self, policy: IndexingPolicy) {
        self.indexing = policy;
        self.enforce_unindexed_bound();
    }

    /// This replica's indexing policy.
    pub fn indexing_policy(&self) -> IndexingPolicy {
        self.indexing
    }

    /// Stored points (live or replaced) not yet linked into the graph.
    pub fn unindexed(&self) -> usize {
        self.index.unindexed_len()
    }

    /// Links up to `max` waiting points, oldest first; returns how many. The driver calls it in
    /// small steps when it has nothing else to apply, so a read waits at most one step.
    pub fn index_pending(&mut self, max: usize) -> usize {
        self.index.index_pending(max)
    }

    /// Stores `vector` under `slot` in the index, deferred or not as the policy says.
    pub(super) fn index_insert(&mut self, slot: Slot, vector: &[f32]) {
        if self.indexing.max_unindexed == 0 {
            self.index.insert(slot, vector);
        } else {
            self.index.insert_unindexed(slot, vector);
            self.enforce_unindexed_bound();
        }
    }

    fn enforce_unindexed_bound(&mut self) {
        let waiting = self.index.unindexed_len();
        if waiting > self.indexing.max_unindexed {
            self.index.index_pending(waiting - self.indexing.max_unindexed);
        }
        debug_assert!(self.index.unindexed_len() <= self.indexing.max_unindexed);
    }
}
