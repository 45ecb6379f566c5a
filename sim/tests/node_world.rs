//! The node world as a test suite: whole nodes (metadata group, sharded replicated collections,
//! write-ack and read levels, scatter-gather) under crashes, partitions, loss, duplication and
//! long delays, torn writes and bit rot on a faulty disk, judged by the durability, strong-reads, convergence and scatter-gather checkers;
//! and each node bug switch caught by the checker meant to catch it.
//!
//! `VECRAFT_NODE_SEEDS=N` raises the number of seeds (default 120).

mod node_common;

use node_common::{env_seeds, run_seeds};
use vecraft_sim::node_world::{NodeBug, NodeWorldConfig, NodeWorldReport, run_node_world};

fn run_all(seeds: std::ops::Range<u64>, bug: Option<NodeBug>) -> Vec<NodeWorldReport> {
    run_all_with(seeds, bug, NodeWorldConfig::from_seed)
}

fn run_all_with(
    seeds: std::ops::Range<u64>,
    bug: Option<NodeBug>,
    make: fn(u64, Option<NodeBug>) -> NodeWorldConfig,
) -> Vec<NodeWorldReport> {
    run_seeds(seeds, bug, make, |_| true)
}

#[test]
fn node_world_seeds_hold_every_check() {
    let n = env_seeds(120);
    let reports = run_all(1..1 + n, None);
    let failed: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.summary()).collect();
    assert!(failed.is_empty(), "{} of {n} seeds failed:\n{}", failed.len(), failed.join("\n"));
    // The seeds really exercise the node: every level, crashes, partitions, retries.
    let mut ops = std::collections::BTreeMap::<String, u64>::new();
    let mut faults = std::collections::BTreeMap::<&str, u64>::new();
    for r in &reports {
        for (k, v) in &r.ops {
            *ops.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &r.faults {
            *faults.entry(k).or_default() += v;
        }
    }
    for key in ["upsert:leader:Ok", "upsert:one_copy:Ok", "upsert:quorum:Ok", "delete:quorum:Ok"] {
        assert!(ops.get(key).copied().unwrap_or(0) > 0, "no {key} in {ops:?}");
    }
    for key in ["get:strong:ok", "get:quorum:ok", "get:eventual:ok", "get:read_your_writes:ok", "search:ok", "count:ok"] {
        assert!(ops.get(key).copied().unwrap_or(0) > 0, "no {key} in {ops:?}");
    }
    let in_doubt: u64 = ops.iter().filter(|(k, _)| k.ends_with("InDoubt")).map(|(_, v)| v).sum();
    assert!(in_doubt > 0, "faults never left a write in doubt: {ops:?}");
    for key in [
        "crashes",
        "partitions",
        "duplicated",
        "part-retries",
        "snapshots-taken",
        "snapshot-installs",
        "pauses",
        "bit-flips",
        "corruption-detected",
        "torn-writes",
        "restarts-seen",
    ] {
        assert!(faults.get(key).copied().unwrap_or(0) > 0, "fault class {key} never fired: {faults:?}");
    }
    // Several collections, replication factors up to every node.
    assert!(reports.iter().any(|r| r.second.is_some_and(|(_, rf)| rf >= 4)), "no second collection with 4+ replicas");
    assert!(reports.iter().any(|r| r.second.is_some_and(|(_, rf)| rf == 1)), "no second collection with one replica");
    eprintln!("node world: {n} seeds passed; ops {ops:?}; faults {faults:?}");
}

#[test]
fn same_seed_same_trace() {
    let a = run_node_world(NodeWorldConfig::from_seed(7, None));
    let b = run_node_world(NodeWorldConfig::from_seed(7, None));
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.ops, b.ops);
    let c = run_node_world(NodeWorldConfig::from_seed(8, None));
    assert_ne!(a.trace, c.trace);
}

/// Each node rule broken is caught within a loose bound of seeds by the checker meant for it.
#[test]
fn every_node_bug_is_caught_by_its_checker() {
    // (`wake-on-stale-copy` is left out: the world catches it by `stable-leadership` in about
    // 2 seeds of 600, too rarely for the default run; `core/tests/multiraft.rs` pins it. So is
    // `sleep-on-overtaken-mark` since leaders wait for their followers' apply reports before
    // sleeping: the proposals that used to overtake a mark now also keep the leader awake until
    // the next round, which leaves only reads to overtake it; caught in 3 of 400 seeds, and
    // pinned with a read in `core/tests/multiraft.rs`.)
    let cases: [(NodeBug, &[&str], u64); 8] = [
        // A follower's applied state lags the leader's: an acknowledged write is missed.
        (NodeBug::StrongReadAtFollower, &["strong-reads"], 60),
        // Acked before commit: a read right after does not see it, or a crash loses it.
        (NodeBug::QuorumAckBeforeCommit, &["strong-reads", "durability"], 80),
        // Ties between shards come out in arrival order.
        (NodeBug::MergeWithoutTieBreak, &["scatter-gather"], 60),
        // A node whose WAL lost records votes and follows as if whole: a replica that lost
        // entries the leader counted never catches up (liveness), or a read misses a write.
        // Or replicas end up applying different commands at one sequence number.
        (NodeBug::TrustCorruptWal, &["liveness", "strong-reads", "durability", "apply-agreement"], 80),
        // A leader sleeps on followers that had not said they applied the last entries: its
        // report of their apply lag stays stale while the group sleeps.
        (NodeBug::QuiesceIgnoresFollowerApply, &["apply-report"], 20),
        // Alias changes applied by the metadata leader only: the other nodes do not resolve
        // the workload's alias.
        (NodeBug::AliasesOnlyOnMetaLeader, &["aliases"], 10),
        // A recovery that drops, re-creates and refills the collection in place: reads see it
        // empty or half filled (caught at seed 1; 171 of 200 seeds).
        (NodeBug::RecoverInPlace, &["atomic-replace"], 10),
        // Names resolved from a node's applied metadata as it stands: a request through a node
        // that has not applied a create, an alias or a swap finds the name missing (`names`,
        // 114 of 200 seeds) or reads an older generation (`atomic-replace`).
        (NodeBug::NamesFromLocalMetadata, &["names", "atomic-replace"], 10),
    ];
    for (bug, checkers, limit) in cases {
        let reports = run_all(1..1 + limit, Some(bug));
        let caught = reports.iter().find(|r| !r.passed());
        let Some(r) = caught else { panic!("{} not caught in {limit} seeds", bug.flag()) };
        assert!(
            checkers.iter().any(|c| r.caught_by(c)),
            "{} caught at seed {} by the wrong checker: {:?}",
            bug.flag(),
            r.seed,
            r.violations
        );
        eprintln!("{} caught at seed {} by {:?}", bug.flag(), r.seed, r.violations[0].split(':').next());
    }
}

/// The register workload through whole nodes: many writers per key, every history linearizable;
/// and the read and ack bugs are caught by the linearizability checker there too.
#[test]
fn register_workload_through_the_node_is_linearizable_and_catches_the_bugs() {
    let n = env_seeds(120) / 2;
    let reports = run_all_with(1..1 + n, None, NodeWorldConfig::register_from_seed);
    let failed: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.summary()).collect();
    assert!(failed.is_empty(), "{} of {n} seeds failed:\n{}", failed.len(), failed.join("\n"));
    for bug in [NodeBug::StrongReadAtFollower, NodeBug::QuorumAckBeforeCommit] {
        let reports = run_all_with(1..41, Some(bug), NodeWorldConfig::register_from_seed);
        let r = reports.iter().find(|r| !r.passed()).unwrap_or_else(|| panic!("{} not caught in 40 seeds", bug.flag()));
        assert!(r.caught_by("linearizability"), "{} caught by {:?}", bug.flag(), r.violations);
    }
}
