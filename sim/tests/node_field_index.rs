//! Payload field indexes in the node world: seeds whose client declares and drops keyword and
//! integer indexes while writes and filtered reads run under faults hold every check, and the
//! `restore-drops-field-indexes` bug switch (a replica restored from a snapshot forgets its
//! declarations) is caught by the checkers meant for it: `convergence` (its replicas declare
//! different indexes) or `field-indexes` (a shard lacks what the history says it declares).
//!
//! `VECRAFT_NODE_SEEDS=N` raises the number of seeds (default 100: about 3 in 100 seeds install a
//! shard snapshot, and the exercise check needs one among the index seeds).

mod node_common;

use node_common::{env_seeds, run_seeds};
use std::collections::BTreeMap;
use vecraft_sim::node_world::{NodeBug, NodeWorldConfig, NodeWorldReport};

/// Runs the seeds of `seeds` whose world has field indexes on (all of them with the bug).
fn run_index_seeds(seeds: std::ops::Range<u64>, bug: Option<NodeBug>) -> Vec<NodeWorldReport> {
    run_seeds(seeds, bug, NodeWorldConfig::from_seed, |c| c.field_indexes)
}

#[test]
fn seeds_with_field_index_commands_hold_every_check_and_exercise_them() {
    let n = env_seeds(100);
    let reports = run_index_seeds(1..1 + n, None);
    assert!(
        reports.len() as u64 >= n / 4,
        "field indexes on in only {} of {n} seeds",
        reports.len()
    );
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.summary())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} index seeds failed:\n{}",
        failed.len(),
        reports.len(),
        failed.join("\n")
    );
    let mut ops = BTreeMap::<String, u64>::new();
    for r in &reports {
        for (k, v) in &r.ops {
            *ops.entry(k.clone()).or_default() += v;
        }
    }
    for key in ["index:create:Ok", "index:drop:Ok", "count:ok", "search:ok"] {
        assert!(
            ops.get(key).copied().unwrap_or(0) > 0,
            "no {key} in {ops:?}"
        );
    }
    let installs = reports
        .iter()
        .filter(|r| r.faults.get("snapshot-installs").copied().unwrap_or(0) > 0)
        .count();
    assert!(installs > 0, "no index seed installed a snapshot");
    eprintln!(
        "field indexes on in {} of {n} seeds, all passed, {installs} with snapshot installs; index ops {:?}",
        reports.len(),
        ops.iter()
            .filter(|(k, _)| k.starts_with("index:"))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_restore_that_drops_field_indexes_is_caught_by_convergence_or_the_field_index_checker() {
    let bug = NodeBug::RestoreDropsFieldIndexes;
    assert_eq!(NodeBug::parse(bug.flag()), Some(bug));
    let limit = 80;
    let reports = run_index_seeds(1..1 + limit, Some(bug));
    let Some(r) = reports.iter().find(|r| !r.passed()) else {
        panic!("{} not caught in {limit} seeds", bug.flag())
    };
    assert!(
        r.caught_by("convergence") || r.caught_by("field-indexes"),
        "{} caught at seed {} by the wrong checker: {:?}",
        bug.flag(),
        r.seed,
        r.violations
    );
    assert!(
        r.violations
            .iter()
            .any(|v| v.contains("field index") || v.starts_with("field-indexes:")),
        "caught, but not for the indexes: {:?}",
        r.violations
    );
    eprintln!(
        "{} caught at seed {}: {}",
        bug.flag(),
        r.seed,
        r.violations[0]
    );
}
