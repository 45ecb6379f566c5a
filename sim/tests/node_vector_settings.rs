//! Vector settings switched while the node world runs (`PATCH` with `quantization_config` or
//! `vectors.on_disk`): seeds whose client switches quantization off, back and to the other kind,
//! and `on_disk` on and off, under faults hold every check and exercise it, and the
//! `restore-reverts-quantization` bug switch (a replica restored from a snapshot takes the
//! create-time quantization instead of the snapshot's) is caught by the checker meant for it,
//! `vector-settings`.
//!
//! `VECRAFT_NODE_SEEDS=N` raises the number of seeds (default 100: about a sixth of the seeds
//! switch, and the bug fires in about 6 of 100 seeds, caught in about half of those; the others
//! switch again after the revert, which re-sets every replica).

mod node_common;

use node_common::{env_seeds, run_seeds};
use std::collections::BTreeMap;
use vecraft_sim::node_world::{NodeBug, NodeWorldConfig, NodeWorldReport};

fn run_switch_seeds(seeds: std::ops::Range<u64>, bug: Option<NodeBug>) -> Vec<NodeWorldReport> {
    run_seeds(seeds, bug, NodeWorldConfig::from_seed, |c| c.settings_switches && c.quantization.is_some())
}

#[test]
fn seeds_with_vector_settings_switches_hold_every_check_and_exercise_them() {
    let n = env_seeds(100);
    let reports = run_switch_seeds(1..1 + n, None);
    assert!(reports.len() as u64 >= n / 10, "switches on in only {} of {n} seeds", reports.len());
    let failed: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.summary()).collect();
    assert!(failed.is_empty(), "{} of {} switch seeds failed:\n{}", failed.len(), reports.len(), failed.join("\n"));
    let mut ops = BTreeMap::<String, u64>::new();
    for r in &reports {
        for (k, v) in &r.ops {
            *ops.entry(k.clone()).or_default() += v;
        }
    }
    for key in ["settings-switch:quantization:Ok", "settings-switch:on-disk:Ok", "quantization:trained-at-end", "search:ok"] {
        assert!(ops.get(key).copied().unwrap_or(0) > 0, "no {key} in {ops:?}");
    }
    eprintln!(
        "switches on in {} of {n} seeds, all passed; {:?}",
        reports.len(),
        ops.iter().filter(|(k, _)| k.starts_with("settings-switch") || k.starts_with("vector-files")).collect::<Vec<_>>()
    );
}

#[test]
fn a_restore_that_reverts_quantization_is_caught_by_the_vector_settings_checker() {
    let bug = NodeBug::RestoreRevertsQuantization;
    assert_eq!(NodeBug::parse(bug.flag()), Some(bug));
    let limit = 150;
    let reports = run_switch_seeds(1..1 + limit, Some(bug));
    let fired = reports.iter().filter(|r| r.faults.get("quantization-reverted").copied().unwrap_or(0) > 0).count();
    let Some(r) = reports.iter().find(|r| !r.passed()) else {
        panic!("{} not caught in {limit} seeds (it fired in {fired})", bug.flag())
    };
    assert!(
        r.caught_by("vector-settings"),
        "{} caught at seed {} by the wrong checker: {:?}",
        bug.flag(),
        r.seed,
        r.violations
    );
    assert!(
        r.faults.get("quantization-reverted").copied().unwrap_or(0) > 0,
        "seed {} failed although the bug never fired: {:?}",
        r.seed,
        r.violations
    );
    eprintln!("{} caught at seed {} (fired in {fired} of {limit} seeds): {}", bug.flag(), r.seed, r.violations[0]);
}
