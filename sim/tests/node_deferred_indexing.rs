//! Deferred indexing in the node world: seeds whose replicas store points at apply time and
//! link them into the graph later (or never, beyond the bound) hold every check, including the
//! `approximate-search` probe (walk plus exact tail scan, merged across shards, scores exactly
//! like an exact search of the union); the `hide-unindexed` bug switch (approximate searches
//! drop waiting points) is caught by that checker; and a deferred seed replays to the same
//! trace.
//!
//! `VECRAFT_NODE_SEEDS=N` raises the number of seeds (default 60).

mod node_common;

use node_common::{env_seeds, run_seeds};
use vecraft_sim::node_world::{NodeBug, NodeWorldConfig, NodeWorldReport, run_node_world};

/// Runs the seeds of `seeds` whose replicas defer indexing (all of them with the bug).
fn run_deferred_seeds(seeds: std::ops::Range<u64>, bug: Option<NodeBug>) -> Vec<NodeWorldReport> {
    run_seeds(seeds, bug, NodeWorldConfig::from_seed, |c| c.indexing.is_some())
}

fn waiting_at_end(r: &NodeWorldReport) -> u64 {
    r.ops.get("deferred-indexing:waiting-at-end").copied().expect("deferred seeds report it")
}

#[test]
fn deferred_indexing_seeds_hold_every_check_and_leave_work_for_the_probe() {
    let n = env_seeds(60);
    let reports = run_deferred_seeds(1..1 + n, None);
    assert!(reports.len() as u64 >= n / 4, "deferral on in only {} of {n} seeds", reports.len());
    let failed: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.summary()).collect();
    assert!(failed.is_empty(), "{} of {} deferred seeds failed:\n{}", failed.len(), reports.len(), failed.join("\n"));
    let waiting = reports.iter().filter(|r| waiting_at_end(r) > 0).count();
    assert!(waiting * 2 >= reports.len(), "the probe met unindexed points in only {waiting} of {} seeds", reports.len());
    eprintln!("deferral on in {} of {n} seeds, all passed, {waiting} with unindexed points at the probe", reports.len());
}

#[test]
fn hiding_unindexed_points_is_caught_by_the_approximate_search_checker() {
    let bug = NodeBug::HideUnindexed;
    assert_eq!(NodeBug::parse(bug.flag()), Some(bug));
    let limit = 10;
    let reports = run_deferred_seeds(1..1 + limit, Some(bug));
    assert_eq!(reports.len() as u64, limit, "the bug forces deferral on");
    let caught: Vec<u64> = reports.iter().filter(|r| r.caught_by("approximate-search")).map(|r| r.seed).collect();
    assert!(caught.len() >= 5, "{} caught in only {caught:?} of {limit} seeds", bug.flag());
    let r = reports.iter().find(|r| !r.passed()).expect("caught");
    eprintln!("{} caught in {} of {limit} seeds, first at seed {}: {}", bug.flag(), caught.len(), r.seed, r.violations[0]);
}

#[test]
fn a_deferred_seed_replays_to_the_same_trace() {
    let seed = (1..100).find(|&s| NodeWorldConfig::from_seed(s, None).indexing.is_some()).expect("a deferred seed");
    let a = run_node_world(NodeWorldConfig::from_seed(seed, None));
    let b = run_node_world(NodeWorldConfig::from_seed(seed, None));
    assert!(a.passed(), "{}", a.summary());
    assert_eq!(a.trace, b.trace);
    assert_eq!(waiting_at_end(&a), waiting_at_end(&b));
}
