//! Deferred indexing in the node world, and the `approximate-search` checker.
//!
//! In seeds with `NodeWorldConfig::indexing`, every replica stores points at apply time and
//! links them into its HNSW graph later (the runtime does it when its apply lane is idle): here
//! after an apply, with a seeded chance and budget, and never beyond the seed's bound of
//! waiting points. Some seeds never link outside the bound, so the final probe meets shards
//! whose points mostly wait. Replicas restored from a snapshot get the same policy. Half the
//! deferring seeds allow four times the bound while a replica catches up (an apply a few
//! entries short of its group's commit index), then drain the excess per insert.
//!
//! What deferral must not change is checked by the probe: approximate searches (the graph walk
//! plus the exact scan of the unindexed tail, merged across shards) must score exactly like an
//! exact search of an engine holding the union of the shards. The shards are tiny (at most a
//! few dozen points, under the walk's `ef`), so a correct walk explores every reachable node
//! and the scores must match; ties may pick different ids, so only the score sequence is
//! compared. The `hide-unindexed` bug switch drops waiting points from approximate answers.

use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use vecraft_core::vector::collection::{Collection, IndexingPolicy, SearchRequest};
use vecraft_core::vector::point::ScoredPoint;

/// How the replicas of a seed defer indexing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimIndexing {
    /// The policy's bound on waiting points.
    pub max_unindexed: usize,
    /// Chance that an apply is followed by a linking step (0: only the bound links).
    pub link_chance: f64,
    /// Waiting points one step links at most.
    pub link_budget: usize,
    /// The `hide-unindexed` bug switch.
    pub hide_unindexed: bool,
    /// The bound while a replica catches up (at least `max_unindexed`).
    pub catch_up_max_unindexed: usize,
}

/// Committed entries behind an apply from which a replica counts as catching up (the runtime's
/// rule at the sim's scale: a shard here holds a few dozen points).
const CATCH_UP_BACKLOG: u64 = 3;

impl SimIndexing {
    /// Drawn on a stream of its own (other choices of the seed do not shift); half the seeds
    /// defer, and every seed with the bug switch (which then never links outside the bound).
    pub fn from_seed(seed: u64, bug: bool) -> Option<SimIndexing> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1DE7_0DEF_E44E_0006);
        if !rng.random_bool(0.5) && !bug {
            return None;
        }
        let max_unindexed = [1, 4, 16, 1_000][rng.random_range(0..4)];
        let link_chance = if bug { 0.0 } else { [0.0, 0.1, 0.5][rng.random_range(0..3)] };
        let link_budget = rng.random_range(1..=4);
        let catch_up_max_unindexed = max_unindexed * [1, 4][rng.random_range(0..2)];
        Some(SimIndexing { max_unindexed, link_chance, link_budget, hide_unindexed: bug, catch_up_max_unindexed })
    }

    /// The engine policy every replica gets.
    pub fn policy(&self) -> IndexingPolicy {
        IndexingPolicy {
            bug_hide_unindexed: self.hide_unindexed,
            ..IndexingPolicy::deferred_with_catch_up(self.max_unindexed, self.catch_up_max_unindexed)
        }
    }

    /// Before an apply `behind` committed entries short of its group's commit index: the
    /// replica catches up (defers to the catch-up bound) or not, as the runtime's lanes do.
    /// True if it does, with a catch-up bound above the normal one.
    pub(super) fn before_apply(&self, engine: &mut Collection, behind: u64) -> bool {
        let catching_up = behind >= CATCH_UP_BACKLOG;
        engine.set_catching_up(catching_up);
        catching_up && self.catch_up_max_unindexed > self.max_unindexed
    }

    /// After an apply: maybe one linking step on `engine`.
    pub(super) fn after_apply(&self, rng: &mut ChaCha8Rng, engine: &mut Collection) {
        if engine.unindexed() > 0 && self.link_chance > 0.0 && rng.random_bool(self.link_chance) {
            engine.index_pending(self.link_budget);
        }
    }
}

/// Approximate searches for the final probe.
pub(super) fn probe_searches(rng: &mut ChaCha8Rng, dim: usize) -> Vec<SearchRequest> {
    (0..4)
        .map(|i| {
            let vector = (0..dim).map(|_| rng.random_range(0..3) as f32).collect();
            let mut s = SearchRequest::new(vector, 3 + i);
            s.exact = false;
            s
        })
        .collect()
}

/// The `approximate-search` check of one probe answer against the union engine.
pub(super) fn check(i: usize, request: &SearchRequest, hits: &[ScoredPoint], union: &Collection) -> Option<String> {
    let exact = SearchRequest { exact: true, ..request.clone() };
    let want: Vec<u32> = union.search(&exact).expect("union search").iter().map(|h| h.score.to_bits()).collect();
    let got: Vec<u32> = hits.iter().map(|h| h.score.to_bits()).collect();
    (got != want).then(|| {
        format!(
            "approximate-search: probe {i} scored {:?}, an exact search of the union {:?}",
            got.iter().map(|b| f32::from_bits(*b)).collect::<Vec<_>>(),
            want.iter().map(|b| f32::from_bits(*b)).collect::<Vec<_>>()
        )
    })
}
