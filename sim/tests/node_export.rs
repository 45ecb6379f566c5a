//! Point-in-time shard exports (what the server's collection snapshots read) while the node
//! world runs, and the apply-once rule they rest on:
//! * seeds where a client copies shards under writes and faults hold every check, and the
//!   copies took rounds of several pages (so writes really landed between pages);
//! * the `export-finishes-any-round` bug switch (a copy finished after a round of several
//!   pages, as a paged scroll would be) is caught by `point-in-time-export`;
//! * the `restart-clamps-applied` bug switch (a restarted node whose engine snapshot is ahead
//!   of the log that survived a rotting disk applies entries a second time) is caught by
//!   `apply-once`.
//!
//! `VECRAFT_NODE_SEEDS=N` raises the number of seeds of the first test (default 100; exports
//! run in about half of them).

mod node_common;

use node_common::{env_seeds, run_seeds};
use std::collections::BTreeMap;
use vecraft_sim::node_world::{NodeBug, NodeWorldConfig, NodeWorldReport};

fn exporting(seeds: std::ops::Range<u64>, bug: Option<NodeBug>) -> Vec<NodeWorldReport> {
    run_seeds(seeds, bug, NodeWorldConfig::from_seed, |c| c.exports && !c.register)
}

#[test]
fn seeds_with_shard_exports_hold_every_check_and_copy_under_writes() {
    let n = env_seeds(100);
    let reports = exporting(1..1 + n, None);
    assert!(reports.len() as u64 >= n / 4, "exports on in only {} of {n} seeds", reports.len());
    let failed: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.summary()).collect();
    assert!(failed.is_empty(), "{} of {} export seeds failed:\n{}", failed.len(), reports.len(), failed.join("\n"));
    let mut ops = BTreeMap::<String, u64>::new();
    for r in &reports {
        for (k, v) in r.ops.iter().filter(|(k, _)| k.starts_with("export:")) {
            *ops.entry(k.clone()).or_default() += v;
        }
    }
    let done = ops.get("export:done").copied().unwrap_or(0);
    let pages = ops.get("export:page").copied().unwrap_or(0);
    assert!(done >= reports.len() as u64, "few copies finished: {ops:?}");
    assert!(pages > 2 * done, "copies took several pages each: {ops:?}");
    eprintln!("exports on in {} of {n} seeds, all passed; {ops:?}", reports.len());
}

#[test]
fn an_export_finished_after_any_round_is_caught_by_the_point_in_time_checker() {
    let bug = NodeBug::ExportFinishesAnyRound;
    assert_eq!(NodeBug::parse(bug.flag()), Some(bug));
    let reports = exporting(1..11, Some(bug));
    let Some(r) = reports.iter().find(|r| !r.passed()) else { panic!("{} not caught in 10 seeds", bug.flag()) };
    assert!(r.caught_by("point-in-time-export"), "caught at seed {} by the wrong checker: {:?}", r.seed, r.violations);
    assert!(r.faults.get("export-torn-finish").copied().unwrap_or(0) > 0, "seed {} failed without the bug firing", r.seed);
    eprintln!("{} caught at seed {}: {}", bug.flag(), r.seed, r.violations[0]);
}

#[test]
fn a_restart_that_reapplies_what_its_engine_holds_is_caught_by_apply_once() {
    let bug = NodeBug::RestartClampsApplied;
    assert_eq!(NodeBug::parse(bug.flag()), Some(bug));
    // It needs a disk that rots records after they were applied: seeds with a faulty disk. The
    // limit is about four times the first catching seed when this was written (80).
    let reports = run_seeds(1..321, Some(bug), NodeWorldConfig::from_seed, |c| c.storage.faulty_disk.is_some() && !c.register);
    let Some(r) = reports.iter().find(|r| !r.passed()) else { panic!("{} not caught in seeds 1..=320", bug.flag()) };
    assert!(r.caught_by("apply-once"), "caught at seed {} by the wrong checker: {:?}", r.seed, r.violations);
    assert!(r.faults.get("corruption-detected").copied().unwrap_or(0) > 0, "seed {} failed without a rotted log", r.seed);
    // The same seed without the bug passes.
    let clean = run_seeds(r.seed..r.seed + 1, None, NodeWorldConfig::from_seed, |_| true);
    assert!(clean[0].passed(), "seed {} fails without the bug: {:?}", r.seed, clean[0].violations);
    eprintln!("{} caught at seed {}: {}", bug.flag(), r.seed, r.violations[0]);
}
