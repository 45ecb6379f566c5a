//! The simulator as a test suite: many seeds with every fault class on, determinism of traces,
//! and proof that the checkers catch deliberately broken Raft variants.
//!
//! `VECRAFT_SIM_SEEDS=N` raises the number of swarm seeds (default 300) for long runs, e.g.
//! `VECRAFT_SIM_SEEDS=20000 cargo test --release -p vecraft-sim --test chaos swarm`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use vecraft_sim::config::FaultProfile;
use vecraft_sim::directed_faults::DirectedClass;
use vecraft_sim::linearizability::{CheckerConfig, check};
use vecraft_sim::run::{Bug, RunSpec, SeedOutcome, run_seed};
use vecraft_sim::world::RunStats;

fn env_seeds(default: u64) -> u64 {
    std::env::var("VECRAFT_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// What a batch of seeds did: failures as (replay command, reasons), client operations, and how
/// often each fault class fired (summed over the seeds).
struct Batch {
    failures: Vec<(String, Vec<String>)>,
    ops: u64,
    faults: BTreeMap<&'static str, u64>,
    /// Snapshot events: (total, seeds in which the event happened), by name.
    snapshots: BTreeMap<&'static str, (u64, u64)>,
}

/// Runs every spec on all cores, handing each outcome to `seen` (from any thread).
fn for_each_outcome(specs: &[RunSpec], seen: impl Fn(&RunSpec, SeedOutcome) + Sync) {
    let next = Mutex::new(0usize);
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(spec) = specs.get(i) else { break };
                    seen(spec, run_seed(spec));
                }
            });
        }
    });
}

/// Runs `specs` on all cores.
fn run_all(specs: Vec<RunSpec>) -> Batch {
    let failures = Mutex::new(Vec::new());
    let ops = Mutex::new(0u64);
    let faults = Mutex::new(BTreeMap::new());
    let snapshots = Mutex::new(BTreeMap::new());
    for_each_outcome(&specs, |spec, outcome| {
        *ops.lock().unwrap() += outcome.report.stats.ops_invoked;
        let mut f = faults.lock().unwrap();
        for (name, n) in outcome.report.stats.fault_counts() {
            *f.entry(name).or_insert(0) += n;
        }
        drop(f);
        let mut snaps = snapshots.lock().unwrap();
        for (name, n) in outcome.report.stats.snapshot_counts() {
            let e = snaps.entry(name).or_insert((0, 0));
            e.0 += n;
            e.1 += (n > 0) as u64;
        }
        drop(snaps);
        if !outcome.passed() {
            failures.lock().unwrap().push((spec.replay_command(), outcome.failures()));
        }
    });
    Batch {
        failures: failures.into_inner().unwrap(),
        ops: ops.into_inner().unwrap(),
        faults: faults.into_inner().unwrap(),
        snapshots: snapshots.into_inner().unwrap(),
    }
}

/// Runs `specs`, asserts every one passed, and returns how often each fault class fired.
fn assert_all_pass(what: &str, specs: Vec<RunSpec>) -> BTreeMap<&'static str, u64> {
    let n = specs.len();
    let Batch { failures, ops, faults, .. } = run_all(specs);
    for (cmd, why) in &failures {
        eprintln!("FAILED, replay with: {cmd}");
        for w in why {
            eprintln!("    {w}");
        }
    }
    assert!(failures.is_empty(), "{} of {n} {what} seeds failed (replay commands above)", failures.len());
    assert!(ops > n as u64 * 50, "clients did too little work ({ops} operations in {n} seeds)");
    eprintln!("{n} {what} seeds passed ({ops} client operations checked); faults fired: {faults:?}");
    faults
}

/// Fault classes the default swarm profile injects (and so must see fire in its seeds). The
/// data-losing storage faults live in `ChaosStorage`, whose seeds still fail on open core bugs.
const SWARM_CLASSES: &[&str] = &[
    "dropped",
    "duplicated",
    "long-delays",
    "replays",
    "partitions",
    "degraded-links",
    "flaps",
    "crashes",
    "power-losses",
    "pauses",
    "clock-jumps-forward",
    "clock-jumps-backward",
    "torn-writes",
    "read-errors",
    "disk-full",
];

fn assert_fired(what: &str, faults: &BTreeMap<&'static str, u64>, classes: &[&str]) {
    let silent: Vec<&&str> = classes.iter().filter(|c| faults.get(**c).copied().unwrap_or(0) == 0).collect();
    assert!(silent.is_empty(), "{what}: fault classes that never fired (a silent gap): {silent:?}; counts {faults:?}");
}

#[test]
fn swarm_seeds_hold_every_check() {
    let n = env_seeds(300);
    let faults = assert_all_pass("swarm", (1..=n).map(RunSpec::seed).collect());
    assert_fired("swarm", &faults, SWARM_CLASSES);
}

/// Every fault class, including those of the profiles whose seeds still fail on open core bugs,
/// fires in a modest number of seeds: a class that never fires is a silent gap in the testing.
/// (This test judges only that the faults happen; the ignored tests below judge the outcomes.)
#[test]
fn every_fault_class_fires() {
    let spec = |profile, seed| RunSpec { profile, ..RunSpec::seed(seed) };
    let specs = (1..=40)
        .map(|s| spec(FaultProfile::SwarmFull, s))
        .chain((1..=40).map(|s| spec(FaultProfile::ChaosStorage, s)))
        .collect();
    let batch = run_all(specs);
    let every: Vec<&str> = batch.faults.keys().copied().collect();
    assert_eq!(every.len(), RunStats::default().fault_counts().len());
    assert_fired("swarm-full + chaos-storage", &batch.faults, &every);
    eprintln!("faults fired in 80 seeds: {:?}", batch.faults);
}

/// The swarm profile with very long delays and replays of old packets in every seed: the
/// configuration meant to expose the two stale-read holes of issue 7 (a late heartbeat reply of a
/// previous incarnation confirming a read; a vote granted at the voter's current term inside a
/// leader's lease), both fixed in core; their preconditions are counted (`stale_term_acks`,
/// `votes_in_lease`).
#[test]
fn swarm_full_seeds_hold_every_check() {
    let n = (env_seeds(300) * 2 / 3).max(20);
    let specs = (1..=n).map(|seed| RunSpec { profile: FaultProfile::SwarmFull, ..RunSpec::seed(seed) }).collect();
    assert_all_pass("swarm-full", specs);
}

/// `SwarmFull` plus bit flips, lying fsyncs and misdirected writes on a minority of disks. Core now
/// marks a node whose log shows corruption before valid records as damaged (no vote, no campaign
/// until a later leader repairs it), but damage that looks like a clean end (a lying fsync, a flip
/// in the last record) is undetectable locally, and about 4 seeds in 1,000 still fail on it.
#[test]
#[ignore = "undetectable tail loss on lying disks, see issue 7 closing note"]
fn chaos_storage_seeds_hold_every_check() {
    let n = env_seeds(300);
    let specs = (1..=n).map(|seed| RunSpec { profile: FaultProfile::ChaosStorage, ..RunSpec::seed(seed) }).collect();
    assert_all_pass("chaos-storage", specs);
}

#[test]
fn chaos_profile_seeds_hold_every_check() {
    let n = (env_seeds(300) / 3).max(20);
    let specs = (1..=n)
        .map(|seed| RunSpec { profile: FaultProfile::Chaos, nodes: Some(5), ..RunSpec::seed(1_000_000 + seed) })
        .collect();
    assert_all_pass("chaos", specs);
}

#[test]
fn same_seed_same_trace() {
    let specs = [1, 7, 42, 1234, 99_999].into_iter().map(RunSpec::seed).chain(
        [3, 11].into_iter().flat_map(|seed| {
            [FaultProfile::SwarmFull, FaultProfile::ChaosStorage].map(|profile| RunSpec { profile, ..RunSpec::seed(seed) })
        }),
    );
    for spec in specs {
        let seed = spec.replay_command();
        let a = run_seed(&spec);
        let b = run_seed(&spec);
        assert_eq!(a.report.trace_hash, b.report.trace_hash, "{seed} is not deterministic");
        assert_eq!(a.report.history, b.report.history, "{seed}: histories differ");
        assert!(a.report.stats.events > 1000, "{seed} did almost nothing");
    }
    // And different seeds explore different worlds.
    let x = run_seed(&RunSpec::seed(1)).report.trace_hash;
    let y = run_seed(&RunSpec::seed(2)).report.trace_hash;
    assert_ne!(x, y);
}

#[test]
fn swarm_explores_different_worlds() {
    let configs: Vec<_> = (1..=200).map(|s| RunSpec::seed(s).config()).collect();
    let sizes: std::collections::BTreeSet<usize> = configs.iter().map(|c| c.nodes).collect();
    assert!(sizes.len() >= 4, "cluster sizes explored: {sizes:?}");
    assert!(configs.iter().any(|c| c.crash_every.is_some() && c.torn_write > 0.0));
    assert!(configs.iter().any(|c| c.loss > 0.1) && configs.iter().any(|c| c.loss == 0.0));
    assert!(configs.iter().any(|c| !c.check_quorum) && configs.iter().any(|c| !c.pre_vote));
    assert!(configs.iter().any(|c| c.clock_drift > 0.03));
    assert!(configs.iter().any(|c| c.pause_every.is_some()) && configs.iter().any(|c| c.pause_every.is_none()));
    assert!(configs.iter().any(|c| c.flap_every.is_some()) && configs.iter().any(|c| c.degrade_every.is_none()));
    assert!(configs.iter().any(|c| c.long_delay > 0.0) && configs.iter().any(|c| c.replay == 0.0));
    // The default profile keeps the storage faults that expose open core bugs off.
    assert!(configs.iter().all(|c| c.faulty_disks == 0 && c.lying_fsync == 0.0));
    let storage: Vec<_> = (1..=200).map(|s| RunSpec { profile: FaultProfile::ChaosStorage, ..RunSpec::seed(s) }.config()).collect();
    assert!(storage.iter().all(|c| c.long_delay > 0.0 && c.replay > 0.0));
    assert!(storage.iter().all(|c| c.faulty_disks * 2 < c.nodes || c.faulty_disks == 0));
    assert!(storage.iter().any(|c| c.faulty_disks >= 2));
}

/// The first seed (searching at most `limit`) on which the simulator catches `bug`.
fn first_catch(bug: Bug, limit: u64) -> Option<(u64, SeedOutcome)> {
    (1..=limit).find_map(|seed| {
        let spec = RunSpec { bug: Some(bug), ..RunSpec::seed(seed) };
        let outcome = run_seed(&spec);
        (!outcome.passed()).then_some((seed, outcome))
    })
}

#[test]
fn every_injected_bug_is_caught_within_a_bounded_number_of_seeds() {
    for (bug, limit) in [
        (Bug::CommitWithoutQuorum, 20),
        (Bug::VoteTwice, 60),
        (Bug::AckBeforePersist, 60),
        (Bug::ReadWithoutQuorum, 200),
        (Bug::SessionIgnored, 40),
    ] {
        let Some((seed, outcome)) = first_catch(bug, limit) else {
            panic!("bug {bug:?} was not caught in {limit} seeds: the checkers are blind to it");
        };
        eprintln!("{bug:?} caught at seed {seed}: {}", outcome.failures()[0].lines().next().unwrap_or(""));
    }
}

#[test]
fn a_stale_read_bug_is_reported_as_not_linearizable() {
    // The read bug cannot break Raft's log invariants; only the history checker can see it.
    let (seed, outcome) = first_catch(Bug::ReadWithoutQuorum, 200).expect("caught (see the test above)");
    assert!(outcome.report.violations.is_empty(), "seed {seed}: {:?}", outcome.report.violations);
    let verdict = outcome.linearizability.expect("checked");
    assert!(!verdict.is_linearizable() && verdict.to_string().contains("NOT linearizable"), "{verdict}");
}

#[test]
fn history_file_round_trips_through_the_checker() {
    let outcome = run_seed(&RunSpec::seed(3));
    let text = outcome.report.history.to_jsonl_string();
    assert!(text.lines().count() as u64 >= outcome.report.stats.ops_invoked);
    let parsed = vecraft_sim::history::History::from_jsonl_str(&text).expect("our own output parses");
    assert_eq!(check(&parsed, &CheckerConfig::default()), check(&outcome.report.history, &CheckerConfig::default()));
}

#[test]
fn cli_check_history_exit_codes() {
    let dir = std::env::temp_dir().join(format!("vecraft-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.jsonl");
    std::fs::write(&good, run_seed(&RunSpec::seed(5)).report.history.to_jsonl_string()).unwrap();
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        concat!(
            r#"{"client":1,"kind":"invoke","op":"write","key":1,"value":5,"time":10}"#, "\n",
            r#"{"client":1,"kind":"ok","op":"write","key":1,"value":5,"time":20}"#, "\n",
            r#"{"client":2,"kind":"invoke","op":"read","key":1,"value":null,"time":30}"#, "\n",
            r#"{"client":2,"kind":"ok","op":"read","key":1,"value":null,"time":40}"#, "\n",
        ),
    )
    .unwrap();
    let garbage = dir.join("garbage.jsonl");
    std::fs::write(&garbage, "this is not json\n").unwrap();
    let run = |f: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vecraft-sim")).arg("check-history").arg(f).output().unwrap()
    };
    assert_eq!(run(&good).status.code(), Some(0));
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT linearizable"));
    let out = run(&garbage);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_session_table_that_is_not_consulted_is_reported_as_not_linearizable() {
    // Applying a retried command twice breaks no Raft invariant (the log is fine, every replica
    // applies the same entries); only the history shows it: a compare-and-set reported failed
    // although its value is read later, or a write that reappears after a later one.
    let (seed, outcome) = first_catch(Bug::SessionIgnored, 40).expect("caught within 40 seeds");
    assert!(outcome.report.violations.is_empty(), "seed {seed}: {:?}", outcome.report.violations);
    let verdict = outcome.linearizability.expect("checked");
    assert!(!verdict.is_linearizable() && verdict.to_string().contains("NOT linearizable"), "{verdict}");
    eprintln!("session-ignored caught by the linearizability checker at seed {seed}");
}

/// Clients retry through the faults and the session tables answer the retries, in most seeds:
/// exactly-once is exercised, not just present. (Late copies and evictions need rarer
/// coincidences, so they only have to happen somewhere.)
#[test]
fn client_sessions_retry_and_deduplicate_in_most_seeds() {
    let n = 100u64;
    let stats: Vec<RunStats> = (1..=n)
        .map(|seed| {
            let outcome = run_seed(&RunSpec::seed(seed));
            assert!(outcome.passed(), "seed {seed}: {:?}", outcome.failures());
            outcome.report.stats
        })
        .collect();
    let seeds_with = |f: fn(&RunStats) -> u64| stats.iter().filter(|s| f(s) > 0).count() as u64;
    let retried = seeds_with(|s| s.session_retries);
    let deduplicated = seeds_with(|s| s.session_duplicates);
    let late = seeds_with(|s| s.session_late_copies);
    let expired = seeds_with(|s| s.sessions_expired);
    let evicted = seeds_with(|s| s.sessions_evicted);
    let registered = seeds_with(|s| s.sessions_registered);
    eprintln!(
        "of {n} seeds: sessions registered in {registered}, retries in {retried}, duplicates answered from the \
         table in {deduplicated}, late copies refused in {late}, expired answers in {expired}, evictions in {evicted}"
    );
    assert_eq!(registered, n, "every seed registers sessions");
    assert!(retried * 100 >= n * 80, "retries in only {retried} of {n} seeds");
    assert!(deduplicated * 100 >= n * 60, "deduplications in only {deduplicated} of {n} seeds");
    assert!(late > 0 && expired > 0 && evicted > 0, "late {late}, expired {expired}, evicted {evicted}");
}

/// Membership changes (learners added and promoted, joint configurations entered and left, voters
/// and leaders removed) happen during the faults of most default seeds: the nemesis is not a
/// silent gap. Every swarm seed that runs them is also held to every check by the tests above.
#[test]
fn membership_changes_happen_in_most_swarm_seeds() {
    let seeds = 40u64;
    let next = Mutex::new(1u64);
    let totals = Mutex::new((BTreeMap::<&'static str, u64>::new(), 0u64, 0u64));
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let seed = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    if seed > seeds {
                        break;
                    }
                    let outcome = run_seed(&RunSpec::seed(seed));
                    assert!(outcome.passed(), "seed {seed}: {:?}", outcome.failures());
                    let stats = &outcome.report.stats;
                    let mut t = totals.lock().unwrap();
                    for (name, n) in stats.membership_counts() {
                        *t.0.entry(name).or_insert(0) += n;
                    }
                    t.1 += (stats.conf_committed > 0) as u64;
                    t.2 += (stats.leaders_removed > 0) as u64;
                }
            });
        }
    });
    let (counts, with_changes, with_leader_removed) = totals.into_inner().unwrap();
    eprintln!("{seeds} swarm seeds: {with_changes} with committed membership changes, {with_leader_removed} with a leader removed; {counts:?}");
    assert!(with_changes * 2 >= seeds, "only {with_changes} of {seeds} seeds committed a membership change: {counts:?}");
    for kind in ["joint-entered", "joint-left", "learners-added", "learners-promoted", "voters-removed", "leaders-removed"] {
        assert!(counts[kind] > 0, "{kind} never happened in {seeds} seeds: {counts:?}");
    }
    assert!(with_leader_removed > 0);
}

/// Skipping the joint phase (a change of two voters applied directly) is caught by the
/// configuration checker — two configurations one entry apart whose quorums can be disjoint —
/// at the first such change, long before the split brain it allows would have to be observed.
#[test]
fn skipping_the_joint_phase_is_caught_by_the_configuration_checker() {
    let (seed, outcome) = first_catch(Bug::SkipJoint, 40).expect("skip-joint not caught in 40 seeds");
    let first = &outcome.report.violations[0];
    assert!(first.starts_with("configuration change: entry"), "seed {seed} caught by another checker: {first}");
    assert!(first.contains("without a joint phase"), "{first}");
    eprintln!("skip-joint caught at seed {seed}: {first}");
}

/// Small seed-derived compaction thresholds make snapshots an everyday event: nearly every seed
/// compacts, and followers that fell behind (crashes, partitions, pauses) catch up by installing a
/// snapshot in a large share of seeds (single-node clusters and seeds without a lagging follower
/// cannot).
#[test]
fn snapshot_installs_happen_in_a_large_share_of_seeds() {
    let n = 100;
    let batch = run_all((1..=n).map(RunSpec::seed).collect());
    assert!(batch.failures.is_empty(), "failures: {:?}", batch.failures);
    let seeds = |name: &str| batch.snapshots.get(name).map_or(0, |e| e.1);
    eprintln!("snapshot events in {n} swarm seeds (total, seeds): {:?}", batch.snapshots);
    assert!(seeds("snapshots-taken") >= n * 9 / 10, "compaction is rare: {:?}", batch.snapshots);
    assert!(seeds("snapshot-installs") >= n * 35 / 100, "installs in too few seeds: {:?}", batch.snapshots);
    assert!(seeds("snapshot-chunks-resent") > 0 && seeds("snapshot-sends-deferred") > 0, "{:?}", batch.snapshots);
}

/// Each snapshot safety rule has a bug switch, and the raft invariants checker names the rule it
/// broke: a snapshot labelled beyond commit leaves nodes claiming commits of entries they do not
/// hold, and a stale install moves applied backwards.
#[test]
fn snapshot_bugs_are_caught_by_the_raft_invariants() {
    for (bug, limit, needles) in [
        // Labelled beyond commit: a node claims a commit it lacks, or applies past a gap.
        (Bug::CompactUncommitted, 30, &["but lacks entry", "out of order"][..]),
        (Bug::InstallStaleSnapshot, 60, &["applied moved backwards"][..]),
    ] {
        let Some((seed, outcome)) = first_catch(bug, limit) else {
            panic!("bug {bug:?} was not caught in {limit} seeds: the checkers are blind to it");
        };
        let caught = outcome.report.violations.iter().any(|v| needles.iter().any(|n| v.contains(n)));
        assert!(caught, "{bug:?} at seed {seed} was caught, but not by the raft invariants: {:?}", outcome.failures());
        eprintln!("{bug:?} caught at seed {seed}: {}", outcome.report.violations[0]);
    }
}

/// Failover on an otherwise calm world (only the leader crashes): with default timeouts a new
/// leader commits in its own term within a second at the 99th percentile, every crash of a
/// leader (with a majority left up, not cut short by the next crash) is followed by one, and
/// every seed passes every check.
#[test]
fn leader_failover_takes_under_a_second_at_the_99th_percentile() {
    let mut samples = Vec::new();
    for seed in 1..=100u64 {
        let outcome = run_seed(&RunSpec { profile: FaultProfile::Failover, ..RunSpec::seed(seed) });
        assert!(outcome.passed(), "seed {seed}: {:?}", outcome.failures());
        samples.extend_from_slice(&outcome.report.stats.leader_failover_ms);
    }
    samples.sort_unstable();
    assert!(samples.len() >= 200, "only {} leader crashes measured", samples.len());
    let p50 = samples[samples.len() / 2];
    let p99 = samples[(samples.len() - 1) * 99 / 100];
    eprintln!("failover over {} leader crashes: p50 {p50} ms, p99 {p99} ms", samples.len());
    assert!(p50 < 1_000, "median failover {p50} ms");
    assert!(p99 < 1_000, "99th percentile failover {p99} ms");
}

/// The first seed (searching at most `limit`) on which the simulator catches `bug` with the
/// directed fault class `class` on in every seed (the swarm world of the seed otherwise). Seeds run
/// on all cores, a batch at a time; the smallest failing seed of the first batch with one wins,
/// so the answer does not depend on the number of cores.
fn first_directed_catch(bug: Bug, class: DirectedClass, limit: u64) -> Option<(u64, SeedOutcome)> {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let batch = jobs * 4;
    let mut start = 1;
    while start <= limit {
        let end = (start + batch - 1).min(limit);
        let next = Mutex::new(start);
        let caught = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| {
                    loop {
                        let seed = {
                            let mut n = next.lock().unwrap();
                            *n += 1;
                            *n - 1
                        };
                        if seed > end {
                            break;
                        }
                        let spec = RunSpec { bug: Some(bug), directed: Some(class), ..RunSpec::seed(seed) };
                        let outcome = run_seed(&spec);
                        if !outcome.passed() {
                            caught.lock().unwrap().push((seed, outcome));
                        }
                    }
                });
            }
        });
        let mut caught = caught.into_inner().unwrap();
        caught.sort_by_key(|(seed, _)| *seed);
        if let Some(first) = caught.into_iter().next() {
            return Some(first);
        }
        start = end + 1;
    }
    None
}

/// The four Raft switches no random fault mix caught (issue 7), each caught by the directed fault
/// aimed at its race, and by the checker that must see it: the two stale reads of issue 7 and the
/// lease kept across a transfer by the linearizability checker alone (they break no log
/// invariant), the old-term commit by the Raft invariants (a later leader lacks a committed
/// entry). Limits are about four times the first catching seed when this was written
/// (late-packet 7, lease-vote 40, transfer-reads 40, figure 8 10), so they do not pin today's
/// seeds. Late-packet's first catch moved to seed 216 when nodes began to apply entries only
/// once their own copy is durable (the restarted leader's timing changed); its limit is 900.
/// Replay a catch with the command the failure message prints.
#[test]
fn directed_faults_catch_the_four_switches_random_faults_miss() {
    for (bug, class, limit) in [
        (Bug::StaleRoundAck, DirectedClass::LatePacket, 900),
        (Bug::VoteInLease, DirectedClass::LeaseVote, 200),
        (Bug::LeaseAcrossTransfer, DirectedClass::TransferReads, 160),
        (Bug::CommitOldTerm, DirectedClass::Figure8, 50),
    ] {
        let Some((seed, outcome)) = first_directed_catch(bug, class, limit) else {
            panic!("{bug:?} was not caught in {limit} seeds with the {} directed fault", class.flag());
        };
        let replay = RunSpec { bug: Some(bug), directed: Some(class), ..RunSpec::seed(seed) }.replay_command();
        if bug == Bug::CommitOldTerm {
            let first = outcome.report.violations.first().map_or("", String::as_str);
            assert!(
                first.starts_with("leader completeness") || first.contains("commit"),
                "{bug:?} at seed {seed} was caught, but not by the raft invariants: {:?} ({replay})",
                outcome.failures()
            );
            eprintln!("{bug:?} caught by the raft invariants at seed {seed}: {first} ({replay})");
        } else {
            assert!(
                outcome.report.violations.is_empty(),
                "{bug:?} at seed {seed} should be invisible to the log invariants: {:?} ({replay})",
                outcome.report.violations
            );
            let verdict = outcome.linearizability.expect("checked");
            assert!(verdict.to_string().contains("NOT linearizable"), "{bug:?} at seed {seed}: {verdict} ({replay})");
            eprintln!("{bug:?} caught by the linearizability checker at seed {seed} ({replay})");
        }
    }
}

/// With every safety rule in place the directed faults are survivable: seeds of the `directed`
/// profile (every class on, an episode about every second) hold every check, and each class gets
/// to its decisive moment (the late packets replayed and their replies held, the held vote
/// delivered inside the lease, the old leader made deaf after `TimeoutNow`, the replicator
/// crashed at its first commit) in some of them: a directed fault that never fires is a gap.
/// (Also a hundred swarm seeds with only the lease-vote race on, see below.)
#[test]
fn directed_profile_seeds_hold_every_check_and_every_class_fires() {
    // The lease-vote race needs the most coincidences (a pre-vote and a vote request of the next
    // term both held, the follower back in the lease in between): a hundred seeds of that class
    // alone see it a few times, the mixed profile seldom.
    let n = (env_seeds(300) / 5).max(60);
    let specs: Vec<RunSpec> = (1..=n)
        .map(|seed| RunSpec { profile: FaultProfile::Directed, ..RunSpec::seed(seed) })
        .chain((1..=100).map(|seed| RunSpec { directed: Some(DirectedClass::LeaseVote), ..RunSpec::seed(seed) }))
        .collect();
    let n = specs.len();
    let totals = Mutex::new(BTreeMap::<&'static str, u64>::new());
    let failures = Mutex::new(Vec::new());
    for_each_outcome(&specs, |spec, outcome| {
        let mut t = totals.lock().unwrap();
        for (name, k) in outcome.report.stats.directed_counts() {
            *t.entry(name).or_insert(0) += k;
        }
        drop(t);
        if !outcome.passed() {
            failures.lock().unwrap().push((spec.replay_command(), outcome.failures()));
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of {n} directed seeds failed: {failures:?}", failures.len());
    let totals = totals.into_inner().unwrap();
    eprintln!("{n} directed seeds passed; directed episodes: {totals:?}");
    for name in ["late-packets-replayed", "late-replies-held", "lease-vote-races", "transfer-read-windows", "figure8-crashes"] {
        assert!(totals[name] > 0, "{name} never happened in {n} directed seeds: {totals:?}");
    }
}

/// The directed faults are part of the default swarm: about half the seeds run some of them (each
/// class in about a quarter), from a random stream of their own, so the other seeds' worlds are
/// exactly what they were before the directed faults existed.
#[test]
fn swarm_seeds_run_directed_faults_in_about_half_the_worlds() {
    let configs: Vec<_> = (1..=400).map(|s| RunSpec::seed(s).config()).collect();
    let with = configs.iter().filter(|c| c.directed.every.is_some()).count();
    assert!((120..=280).contains(&with), "directed faults in {with} of 400 swarm worlds");
    for class in DirectedClass::ALL {
        let on = configs.iter().filter(|c| c.directed.classes().contains(&class)).count();
        assert!(on >= 40, "{} on in only {on} of 400 swarm worlds", class.flag());
    }
    let mut plain = RunSpec::seed(3).config();
    plain.directed = Default::default();
    assert!(configs.iter().all(|c| c.directed.every.is_some() || c.directed == plain.directed));
}
