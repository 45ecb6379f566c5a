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
    /// The bound while the replica catches up (see [`Collection::set_catching_up`]): a replica
    /// replaying a long backlog (after a restart, or far behind its leader) stores at copy speed
    /// up to here and links later, so its applied index reaches the commit index soon; a leader
    /// answers writes only once it applied them. Below `max_unindexed` it counts as equal.
    pub catch_up_max_unindexed: usize,
    /// Whether the replica is catching up now (set by the driver per apply).
    pub catching_up: bool,
    /// Bug switch for the simulator: approximate searches silently drop unindexed points.
    /// Forced off in builds without the `bug-injection` feature.
    pub bug_hide_unindexed: bool,
}

/// Waiting points an insert links at most while the replica is above `max_unindexed` after
/// catching up: the excess drains by one point per insert (and by idle linking), never in one
/// long stall under the write lock.
const DRAIN_PER_INSERT: usize = 2;

impl IndexingPolicy {
    /// Links at insert.
    pub const IMMEDIATE: IndexingPolicy =
        IndexingPolicy { max_unindexed: 0, catch_up_max_unindexed: 0, catching_up: false, bug_hide_unindexed: false };

    /// Defers up to `max_unindexed` points, catching up or not.
    pub fn deferred(max_unindexed: usize) -> IndexingPolicy {
        IndexingPolicy { max_unindexed, catch_up_max_unindexed: max_unindexed, ..IndexingPolicy::IMMEDIATE }
    }

    /// Defers up to `max_unindexed` points, and up to `catch_up` while catching up.
    pub fn deferred_with_catch_up(max_unindexed: usize, catch_up: usize) -> IndexingPolicy {
        IndexingPolicy { catch_up_max_unindexed: catch_up, ..IndexingPolicy::deferred(max_unindexed) }
    }

    /// The bound no insert ever leaves exceeded.
    pub fn hard_max_unindexed(&self) -> usize {
        self.max_unindexed.max(self.catch_up_max_unindexed)
    }

    pub(super) fn hides_unindexed(&self) -> bool {
        cfg!(feature = "bug-injection") && self.bug_hide_unindexed
    }
}

impl Collection {
    /// Sets this replica's indexing policy. Lowering the bound links the excess at once.
    pub fn set_indexing_policy(&mut self, policy: IndexingPolicy) {
        self.indexing = policy;
        let waiting = self.index.unindexed_len();
        let bound = if policy.catching_up { policy.hard_max_unindexed() } else { policy.max_unindexed };
        if waiting > bound {
            self.index.index_pending(waiting - bound);
        }
    }

    /// Tells the replica whether it is catching up (a long backlog of committed entries still
    /// to apply): while it is, inserts defer up to `catch_up_max_unindexed`; once it is not,
    /// the excess above `max_unindexed` drains a little per insert. Links nothing itself.
    pub fn set_catching_up(&mut self, catching_up: bool) {
        self.indexing.catching_up = catching_up;
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
        if self.indexing.hard_max_unindexed() == 0 {
            self.index.insert(slot, vector);
        } else {
            self.index.insert_unindexed(slot, vector);
            self.enforce_unindexed_bound();
        }
    }

    fn enforce_unindexed_bound(&mut self) {
        let policy = self.indexing;
        let waiting = self.index.unindexed_len();
        let hard = policy.hard_max_unindexed();
        let over_hard = waiting.saturating_sub(hard);
        let link = if !policy.catching_up && waiting > policy.max_unindexed {
            over_hard.max((waiting - policy.max_unindexed).min(DRAIN_PER_INSERT))
        } else {
            over_hard
        };
        if link > 0 {
            self.index.index_pending(link);
        }
        debug_assert!(self.index.unindexed_len() <= hard);
    }
}
