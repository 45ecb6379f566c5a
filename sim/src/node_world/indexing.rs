//! Deferred indexing in the node world, and the `approximate-search` checker.
//!
//! In seeds with `NodeWorldConfig::indexing`, every replica stores points at apply time and
//! links them into its HNSW graph later (the runtime does it when its apply lane is idle): here
//! after an apply, with a seeded chance and budget, and never beyond the seed's bound of
//! waiting points. Some seeds never link outside the bound, so the final probe meets shards
//! whose points mostly wait. Replicas restored from a snapshot get the same policy.
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
}

impl SimIndexing {
    /// Drawn on a stream of its own (other choices of the seed do not shift); half the seeds
    /// defer, and every seed with the bug switch (which then never links outside the bound).
    pub fn from_seed(seed: u64, bug: bool) -> Option<SimIndexing> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1DE7_0DEF_E44E_0006);
        if !rng.random_bool(0.5) && !bug {
            return None;
        }
        Some(SimIndexing {
            max_unindexed: [1, 4, 16, 1_000][rng.random_range(0..4)],
            link_chance: if bug { 0.0 } else { [0.0, 0.1, 0.5][rng.random_range(0..3)] },
            link_budget: rng.random_range(1..=4),
            hide_unindexed: bug,
        })
    }

    /// The engine policy every replica gets.
    pub fn policy(&self) -> IndexingPolicy {
        IndexingPolicy { max_unindexed: self.max_unindexed, bug_hide_unindexed: self.hide_unindexed }
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
