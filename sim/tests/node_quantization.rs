//! Quantization in the node world: seeds whose collections are quantized (scalar int8 or binary,
//! every replica with the seed's small training threshold, restored ones included) hold every
//! check, including the `quantized-search` probe (stored points, f32 scores, order, and an exact
//! answer whenever the candidate pool covers every shard); the `skip-rescore` bug switch (code
//! scores instead of rescoring) is caught by that checker; the quantization draw leaves every
//! other choice of a seed alone; and a quantized seed replays to the same trace.
//!
//! `VECRAFT_NODE_SEEDS=N` raises the number of seeds (default 60).

mod node_common;

use node_common::{env_seeds, run_seeds};
use vecraft_sim::node_world::{NodeBug, NodeWorldConfig, NodeWorldReport, run_node_world};

/// Runs the seeds of `seeds` whose collections are quantized (all of them with the bug).
fn run_quantized_seeds(seeds: std::ops::Range<u64>, bug: Option<NodeBug>) -> Vec<NodeWorldReport> {
    run_seeds(seeds, bug, NodeWorldConfig::from_seed, |c| c.quantization.is_some())
}

fn op(r: &NodeWorldReport, key: &str) -> u64 {
    r.ops.get(key).copied().unwrap_or_else(|| panic!("quantized seeds report {key}"))
}

#[test]
fn quantized_seeds_hold_every_check_and_search_on_trained_codes() {
    let n = env_seeds(60);
    let reports = run_quantized_seeds(1..1 + n, None);
    assert!(reports.len() as u64 >= n / 5, "quantization on in only {} of {n} seeds", reports.len());
    let failed: Vec<String> = reports.iter().filter(|r| !r.passed()).map(|r| r.summary()).collect();
    assert!(failed.is_empty(), "{} of {} quantized seeds failed:\n{}", failed.len(), reports.len(), failed.join("\n"));
    let trained = reports.iter().filter(|r| op(r, "quantization:trained-at-end") > 0).count();
    // Seeds whose faults let few writes through may never reach the threshold (90% train over
    // 2,000 seeds; 16 of 19 in the first 60).
    assert!(trained * 4 >= reports.len() * 3, "codes trained in only {trained} of {} quantized seeds", reports.len());
    let binary = reports.iter().filter(|r| r.ops.contains_key("quantization:binary")).count();
    assert!(binary > 0 && binary < reports.len(), "both kinds of codes run ({binary} binary of {})", reports.len());
    // Both regimes of the checker run: answers that must be exact, and answers whose candidate
    // pool misses points of a shard (only scores, membership and order are then checked).
    let (probes, exact): (u64, u64) = reports
        .iter()
        .fold((0, 0), |(p, e), r| (p + op(r, "quantization:probes"), e + op(r, "quantization:probes-exact")));
    assert!(exact > 0 && exact < probes, "{exact} of {probes} probe searches had to be exact");
    eprintln!(
        "quantization on in {} of {n} seeds ({binary} binary), all passed, {trained} with trained codes at the probe; \
         {exact} of {probes} probe searches on codes had to be exact",
        reports.len()
    );
}

#[test]
fn skipping_rescore_is_caught_by_the_quantized_search_checker() {
    let bug = NodeBug::SkipRescore;
    assert_eq!(NodeBug::parse(bug.flag()), Some(bug));
    let limit = 40;
    let reports = run_quantized_seeds(1..1 + limit, Some(bug));
    assert_eq!(reports.len() as u64, limit, "the bug forces quantization on");
    let caught: Vec<u64> = reports.iter().filter(|r| r.caught_by("quantized-search")).map(|r| r.seed).collect();
    // Only trained codes skip rescoring: a seed whose shards never reach the threshold cannot
    // show the bug (30 of these 40 caught, 79 of the first 100, since writes and reads wait
    // for their name barrier; 85 of 100 before).
    assert!(caught.len() >= 24, "{} caught in only {caught:?} of {limit} seeds", bug.flag());
    let r = reports.iter().find(|r| !r.passed()).expect("caught");
    eprintln!(
        "{} caught in {} of {limit} seeds, first at seed {}: {}",
        bug.flag(),
        caught.len(),
        r.seed,
        r.violations[0]
    );
}

#[test]
fn the_quantization_draw_leaves_every_other_choice_of_a_seed_alone() {
    for seed in 1..200 {
        let plain = NodeWorldConfig::from_seed(seed, None);
        let mut bugged = NodeWorldConfig::from_seed(seed, Some(NodeBug::SkipRescore));
        let q = bugged.quantization.expect("the bug forces quantization on");
        assert!(q.skip_rescore && (2..=16).contains(&q.train_after));
        if let Some(p) = plain.quantization {
            assert_eq!(
                (p.config, p.train_after),
                (q.config, q.train_after),
                "seed {seed}: the bug changes only the switch"
            );
        }
        bugged.quantization = plain.quantization;
        assert_eq!(format!("{plain:?}"), format!("{bugged:?}"), "seed {seed}");
    }
}

#[test]
fn a_quantized_seed_replays_to_the_same_trace() {
    let seed =
        (1..100).find(|&s| NodeWorldConfig::from_seed(s, None).quantization.is_some()).expect("a quantized seed");
    let a = run_node_world(NodeWorldConfig::from_seed(seed, None));
    let b = run_node_world(NodeWorldConfig::from_seed(seed, None));
    assert!(a.passed(), "{}", a.summary());
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.ops, b.ops);
}
