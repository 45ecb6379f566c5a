//! Vectors on disk in the node world: seeds whose collections are created `on_disk` (each
//! replica's vectors in its machine's simulated file store, chunk sizes differing per machine,
//! some machines on the heap) hold every check, including `vector-files` (every replica keeps its
//! vectors where its machine puts them, restored and installed ones included); the
//! `vector-file-loses-row` bug switch (a growth that drops the last row) is caught by
//! `convergence`; the draw leaves every other choice of a seed alone; and such a seed replays to
//! the same trace.
//!
//! `VECRAFT_NODE_SEEDS=N` raises the number of seeds (default 60).

mod node_common;

use node_common::{env_seeds, run_seeds};
use vecraft_sim::node_world::{NodeBug, NodeWorldConfig, NodeWorldReport, run_node_world};

fn run_on_disk_seeds(seeds: std::ops::Range<u64>, bug: Option<NodeBug>) -> Vec<NodeWorldReport> {
    run_seeds(seeds, bug, NodeWorldConfig::from_seed, |c| c.vector_files.is_some())
}

fn op(r: &NodeWorldReport, key: &str) -> u64 {
    r.ops.get(key).copied().unwrap_or_else(|| panic!("on-disk seeds report {key}"))
}

#[test]
fn on_disk_seeds_hold_every_check_with_every_replica_in_its_machines_store() {
    let n = env_seeds(60);
    let reports = run_on_disk_seeds(1..1 + n, None);
    assert!(reports.len() as u64 >= n / 5, "on_disk in only {} of {n} seeds", reports.len());
    let failed: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.summary()).collect();
    assert!(failed.is_empty(), "{} of {} on-disk seeds failed:\n{}", failed.len(), reports.len(), failed.join("\n"));
    let (replicas, on_disk) = reports.iter().fold((0, 0), |(r, d), rep| {
        (r + op(rep, "vector-files:replicas-at-end"), d + op(rep, "vector-files:on-disk-at-end"))
    });
    // Both kinds of machine run: with files (most) and on the heap (about 15%).
    assert!(on_disk > 0 && on_disk < replicas, "{on_disk} of {replicas} replicas in files");
    eprintln!("on_disk in {} of {n} seeds, all passed; {on_disk} of {replicas} replicas in files at the end", reports.len());
}

#[test]
fn a_growth_that_drops_a_row_is_caught_by_convergence() {
    let bug = NodeBug::VectorFileLosesRow;
    assert_eq!(NodeBug::parse(bug.flag()), Some(bug));
    let limit = 20;
    let reports = run_on_disk_seeds(1..1 + limit, Some(bug));
    assert_eq!(reports.len() as u64, limit, "the bug forces on_disk on");
    let caught: Vec<u64> = reports.iter().filter(|r| r.caught_by("convergence")).map(|r| r.seed).collect();
    // Replicas that grow alike lose alike; seeds whose replicas all did escape (85 of the first
    // 100 caught).
    assert!(caught.len() >= 12, "{} caught in only {caught:?} of {limit} seeds", bug.flag());
    let r = reports.iter().find(|r| !r.passed()).expect("caught");
    eprintln!("{} caught in {} of {limit} seeds, first at seed {}: {}", bug.flag(), caught.len(), r.seed, r.violations[0]);
}

#[test]
fn the_vector_files_draw_leaves_every_other_choice_of_a_seed_alone() {
    for seed in 1..200 {
        let plain = NodeWorldConfig::from_seed(seed, None);
        let mut bugged = NodeWorldConfig::from_seed(seed, Some(NodeBug::VectorFileLosesRow));
        let files = bugged.vector_files.expect("the bug forces on_disk on");
        assert!(files.growth_loses_row);
        if let Some(p) = plain.vector_files {
            assert_eq!(p.chunk_rows, files.chunk_rows, "seed {seed}: the bug changes only the switch");
        }
        bugged.vector_files = plain.vector_files;
        assert_eq!(format!("{plain:?}"), format!("{bugged:?}"), "seed {seed}");
    }
}

#[test]
fn an_on_disk_seed_replays_to_the_same_trace() {
    let seed = (1..100).find(|&s| NodeWorldConfig::from_seed(s, None).vector_files.is_some()).expect("an on-disk seed");
    let a = run_node_world(NodeWorldConfig::from_seed(seed, None));
    let b = run_node_world(NodeWorldConfig::from_seed(seed, None));
    assert!(a.passed(), "{}", a.summary());
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.ops, b.ops);
}
