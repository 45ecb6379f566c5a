//! `vecraft-sim`: run seeded chaos simulations of a Raft cluster and check client histories.
//!
//! With no arguments it runs the main job: one chaos seed of a 5-node cluster, printing what
//! happened and whether every check held.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;
use vecraft_sim::config::FaultProfile;
use vecraft_sim::directed_faults::DirectedClass;
use vecraft_sim::history::History;
use vecraft_sim::linearizability::{CheckerConfig, Verdict, check};
use vecraft_sim::run::{Bug, RunSpec, SeedOutcome, run_seed};

#[derive(Parser, Debug)]
#[command(name = "vecraft-sim", about = "Deterministic chaos simulation of vecraft's Raft, with checkers")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// First (or only) seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of consecutive seeds to run, starting at --seed.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Cluster size (default: 5 for the chaos and calm profiles, derived from the seed for swarm).
    #[arg(long)]
    nodes: Option<usize>,
    /// Fault profile.
    #[arg(long, value_enum, default_value_t = FaultProfile::Chaos)]
    profile: FaultProfile,
    /// Length of the fault phase in virtual seconds (default: derived from the seed).
    #[arg(long)]
    fault_secs: Option<u64>,
    /// Switch on a deliberate Raft bug (to watch the checkers catch it).
    #[arg(long, value_enum)]
    bug: Option<Bug>,
    /// Override the probability that a packet between nodes is delayed past every election
    /// timeout (a variation for hunting bugs that need late packets).
    #[arg(long)]
    long_delay: Option<f64>,
    /// Override the probability that sending a packet also replays an old packet of that link.
    #[arg(long)]
    replay: Option<f64>,
    /// Pin the directed faults to one class (on in every seed, an episode about every second).
    #[arg(long, value_enum)]
    directed: Option<DirectedClass>,
    /// Write the client history of the (single) run as JSON lines.
    #[arg(long)]
    history_out: Option<PathBuf>,
    /// Workload: `register` (key-value registers through one Raft group, the sharpest
    /// linearizability test), `vector` (whole nodes: metadata group, sharded replicated
    /// collections, write-ack and read levels, scatter-gather; see `node_world`) or
    /// `node-register` (registers as points through whole nodes, many writers per key, judged by
    /// the linearizability checker).
    #[arg(long, default_value = "register")]
    workload: String,
    /// With `--workload vector`: switch on a node bug (strong-read-at-follower,
    /// quorum-ack-before-commit, merge-without-tie-break, trust-corrupt-wal,
    /// restore-drops-field-indexes, hide-unindexed, skip-rescore, vector-file-loses-row,
    /// quiesce-ignores-follower-apply, restore-reverts-quantization, export-finishes-any-round,
    /// restart-clamps-applied, aliases-only-on-meta-leader, ...).
    #[arg(long)]
    node_bug: Option<String>,
    /// Worker threads for multi-seed runs (each seed is itself single-threaded and deterministic).
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    jobs: usize,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Check a JSON-lines history file (see README) for linearizability.
    CheckHistory {
        /// The history file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Cmd::CheckHistory { file }) => check_history(file),
        None if cli.workload == "vector" || cli.workload == "node-register" => simulate_nodes(&cli),
        None if cli.workload == "register" => simulate(&cli),
        None => Err(anyhow::anyhow!("unknown --workload {:?} (register or vector)", cli.workload)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// Runs node-world seeds (in parallel over `--jobs` threads) and prints one line per seed.
fn simulate_nodes(cli: &Cli) -> Result<ExitCode> {
    use vecraft_sim::node_world::{NodeBug, NodeWorldConfig, NodeWorldReport, run_node_world};
    let bug = match &cli.node_bug {
        None => None,
        Some(b) => Some(NodeBug::parse(b).with_context(|| format!("unknown --node-bug {b:?}"))?),
    };
    let start = Instant::now();
    let next = std::sync::atomic::AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..cli.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= cli.seeds {
                        break;
                    }
                    let seed = cli.seed + i;
                    let cfg = if cli.workload == "vector" {
                        NodeWorldConfig::from_seed(seed, bug)
                    } else {
                        NodeWorldConfig::register_from_seed(seed, bug)
                    };
                    let report = run_node_world(cfg);
                    results.lock().expect("no poisoning").push(report);
                }
            });
        }
    });
    let mut results = results.into_inner().expect("no poisoning");
    results.sort_by_key(|r| r.seed);
    let failed: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
    for r in &results {
        if cli.seeds == 1 || !r.passed() {
            println!("{}", r.summary());
        }
    }
    if cli.seeds == 1 && let Some(r) = results.first() {
        println!("  trace {}", r.trace);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} workload: {} seeds, {} passed, {} failed in {secs:.1} s ({:.0} seeds/min)",
        cli.workload,
        results.len(),
        results.len() - failed.len(),
        failed.len(),
        results.len() as f64 / secs * 60.0
    );
    if cli.seeds > 1 {
        // Seeds in which each fault happened at least once (total events in brackets).
        let mut seen: std::collections::BTreeMap<&str, (u64, u64)> = std::collections::BTreeMap::new();
        for r in &results {
            for (k, v) in &r.faults {
                let e = seen.entry(k).or_default();
                e.0 += (*v > 0) as u64;
                e.1 += v;
            }
        }
        let line: Vec<String> = seen.iter().map(|(k, (n, t))| format!("{k}={n} ({t})")).collect();
        println!("  seeds with each fault (events): {}", line.join(" "));
        // Payload field index commands, quantization switches and shard export reads (vector
        // workload seeds).
        for (prefix, what) in [("index:", "field index command"), ("settings-switch:", "vector settings switch"), ("export:", "shard export read"), ("alias:", "alias change"), ("replace:", "collection replace step or read")] {
            let mut ops: std::collections::BTreeMap<&str, (u64, u64)> = std::collections::BTreeMap::new();
            for r in &results {
                for (k, v) in r.ops.iter().filter(|(k, _)| k.starts_with(prefix)) {
                    let e = ops.entry(k.as_str()).or_default();
                    e.0 += (*v > 0) as u64;
                    e.1 += v;
                }
            }
            if !ops.is_empty() {
                let line: Vec<String> = ops.iter().map(|(k, (n, t))| format!("{k}={n} ({t})")).collect();
                println!("  seeds with each {what} (commands): {}", line.join(" "));
            }
        }
        let deferred: Vec<u64> =
            results.iter().filter_map(|r| r.ops.get("deferred-indexing:waiting-at-end").copied()).collect();
        if !deferred.is_empty() {
            let catch_up: Vec<u64> =
                results.iter().filter_map(|r| r.ops.get("deferred-indexing:catch-up-applies").copied()).collect();
            println!(
                "  deferred indexing: {} seeds, {} of them with points still unindexed at the probe ({} points); {} seeds applied while catching up with a raised bound ({} applies)",
                deferred.len(),
                deferred.iter().filter(|&&w| w > 0).count(),
                deferred.iter().sum::<u64>(),
                catch_up.iter().filter(|&&n| n > 0).count(),
                catch_up.iter().sum::<u64>()
            );
        }
        let quantized: Vec<&NodeWorldReport> =
            results.iter().filter(|r| r.ops.contains_key("quantization:replicas-at-end")).collect();
        if !quantized.is_empty() {
            let sum = |key: &str| quantized.iter().filter_map(|r| r.ops.get(key)).sum::<u64>();
            let probes = sum("quantization:probes");
            println!(
                "  quantization: {} seeds ({} binary), {} of them with trained codes at the end ({} of {} replicas){}",
                quantized.len(),
                sum("quantization:binary"),
                quantized.iter().filter(|r| r.ops.get("quantization:trained-at-end").is_some_and(|&t| t > 0)).count(),
                sum("quantization:trained-at-end"),
                sum("quantization:replicas-at-end"),
                if probes == 0 {
                    String::new()
                } else {
                    let exact = sum("quantization:probes-exact");
                    format!("; {exact} of {probes} probe searches on codes had to be exact (pool covering every shard or codes ignored)")
                }
            );
        }
    }
    for r in &failed {
        let bug = cli.node_bug.as_ref().map(|b| format!(" --node-bug {b}")).unwrap_or_default();
        println!("  replay: cargo run --release -p vecraft-sim -- --workload {} --seed {}{bug}", cli.workload, r.seed);
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn check_history(file: &PathBuf) -> Result<ExitCode> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let history = History::read_jsonl(std::io::BufReader::new(f)).with_context(|| format!("invalid history {}", file.display()))?;
    let verdict = check(&history, &CheckerConfig::default());
    println!("{} operations: {verdict}", history.operations().len());
    Ok(match verdict {
        Verdict::Linearizable => ExitCode::SUCCESS,
        Verdict::NotLinearizable { .. } => ExitCode::from(1),
        Verdict::Unknown { .. } => ExitCode::from(2),
    })
}

fn spec(cli: &Cli, seed: u64) -> RunSpec {
    let nodes = cli.nodes.or(match cli.profile {
        FaultProfile::Swarm | FaultProfile::SwarmFull | FaultProfile::ChaosStorage => None,
        FaultProfile::Calm | FaultProfile::Chaos => Some(5),
        FaultProfile::Failover => None,
        FaultProfile::Directed => None,
    });
    RunSpec {
        seed,
        profile: cli.profile,
        nodes,
        fault_secs: cli.fault_secs,
        bug: cli.bug,
        long_delay: cli.long_delay,
        replay: cli.replay,
        directed: cli.directed,
    }
}

fn print_single(spec: &RunSpec, outcome: &SeedOutcome, wall: f64) {
    let r = &outcome.report;
    let c = &r.config;
    let s = &r.stats;
    println!("vecraft-sim seed {} ({:?} profile)", spec.seed, spec.profile);
    println!(
        "  world: {} nodes, {} clients on {} keys; delay {:?}..{:?}, loss {:.1}%, duplication {:.1}%, partitions {:?}, crashes {}, torn writes {:.0}%, clock drift ±{:.1}%, pre-vote {}, check-quorum {}",
        c.nodes,
        c.clients,
        c.keys,
        c.min_delay,
        c.max_delay,
        c.loss * 100.0,
        c.duplication * 100.0,
        c.partitions,
        c.crash_every.map_or("off".to_string(), |d| format!("every ~{d:?}")),
        c.torn_write * 100.0,
        c.clock_drift * 100.0,
        c.pre_vote,
        c.check_quorum,
    );
    println!(
        "  ran {:.1} virtual s ({:.1} s faults + {:.1} s recovery) in {:.2} wall s: {} events",
        s.virtual_ms as f64 / 1000.0,
        c.fault_phase.as_secs_f64(),
        c.liveness_phase.as_secs_f64(),
        wall,
        s.events
    );
    println!(
        "  more faults: long delays {:.2}% (up to {:?}), replays {:.2}%, link degrade {}, flaps {}, pauses {} (up to {:?}), wall-clock jumps {} (up to {:?}); faulty disks {} (bit flips {}, lying fsync {:.0}%, misdirected {:.1}%), read errors {:.0}%, full disk {:.2}%",
        c.long_delay * 100.0,
        c.long_delay_max,
        c.replay * 100.0,
        every(c.degrade_every),
        every(c.flap_every),
        every(c.pause_every),
        c.max_pause,
        every(c.clock_jump_every),
        c.max_clock_jump,
        c.faulty_disks,
        every(c.bit_flip_every),
        c.lying_fsync * 100.0,
        c.misdirected_write * 100.0,
        c.read_error * 100.0,
        c.disk_full * 100.0,
    );
    println!(
        "  faults: {} messages, {} heals; {}",
        s.messages,
        s.heals,
        fault_line(&s.fault_counts())
    );
    println!("  protocol events: {}", fault_line(&s.precondition_counts()));
    println!("  client sessions: {}", fault_line(&s.session_counts()));
    println!("  membership: {}", fault_line(&s.membership_counts()));
    println!("  snapshots: {}", fault_line(&s.snapshot_counts()));
    println!("  directed: {}", fault_line(&s.directed_counts()));
    println!("  storage: {} committed entries below a quorum only because damaged disks lost them (allowed)", s.storage_lost_entries);
    println!(
        "  raft: {} terms with a leader, {} entries committed, {} disk writes; recovered in {} after faults stopped",
        s.leader_terms,
        s.committed,
        s.disk_writes,
        s.recovery_ms.map_or("-".to_string(), |m| format!("{m} ms"))
    );
    println!(
        "  clients: {} operations: {} ok, {} fail, {} indeterminate; {} redirects",
        s.ops_invoked, s.ops_ok, s.ops_fail, s.ops_info, s.redirects
    );
    let lin = outcome.linearizability.as_ref().map_or("not checked (run stopped at a violation)".to_string(), |v| v.to_string());
    println!("  checks: raft invariants {}; liveness {}; linearizability: {lin}",
        if r.violations.iter().any(|v| !v.starts_with("liveness")) { "VIOLATED" } else { "held" },
        if r.violations.iter().any(|v| v.starts_with("liveness")) { "VIOLATED" } else { "held" },
    );
    println!("  trace hash: {}", hex(&r.trace_hash));
    for v in &r.violations {
        println!("  VIOLATION: {v}");
    }
}

fn every(d: Option<std::time::Duration>) -> String {
    d.map_or("off".to_string(), |d| format!("every ~{d:?}"))
}

/// "name n, name n, ..." for fault counters.
fn fault_line(counts: &[(&str, u64)]) -> String {
    counts.iter().map(|(name, n)| format!("{name} {n}")).collect::<Vec<_>>().join(", ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn simulate(cli: &Cli) -> Result<ExitCode> {
    if cli.seeds == 1 {
        let spec = spec(cli, cli.seed);
        spec.config().validate().map_err(anyhow::Error::msg)?;
        let t = Instant::now();
        let outcome = run_seed(&spec);
        print_single(&spec, &outcome, t.elapsed().as_secs_f64());
        if let Some(path) = &cli.history_out {
            let f = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            outcome.report.history.write_jsonl(std::io::BufWriter::new(f))?;
            println!("  history written to {}", path.display());
        }
        if outcome.passed() {
            println!("PASS: every check held");
            return Ok(ExitCode::SUCCESS);
        }
        println!("FAIL: replay with: {}", spec.replay_command());
        return Ok(ExitCode::FAILURE);
    }
    let seeds: Vec<u64> = (cli.seed..cli.seed + cli.seeds).collect();
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::<(u64, Vec<String>, String)>::new());
    let totals = Mutex::new((0u64, 0u64, 0u64, 0u64)); // events, virtual ms, ops, unknown
    // Per fault class: (total fired, seeds in which it fired).
    let failovers = Mutex::new(Vec::<u64>::new());
    let leader_failovers = Mutex::new(Vec::<u64>::new());
    let interrupted = std::sync::atomic::AtomicU64::new(0);
    let fault_totals = Mutex::new(Vec::<(&'static str, u64, u64)>::new());
    let t = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..cli.jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().expect("lock");
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(&seed) = seeds.get(i) else { break };
                    let spec = spec(cli, seed);
                    let outcome = run_seed(&spec);
                    {
                        let mut tot = totals.lock().expect("lock");
                        tot.0 += outcome.report.stats.events;
                        tot.1 += outcome.report.stats.virtual_ms;
                        tot.2 += outcome.report.stats.ops_invoked;
                        if matches!(outcome.linearizability, Some(Verdict::Unknown { .. })) {
                            tot.3 += 1;
                        }
                        failovers.lock().expect("lock").extend_from_slice(&outcome.report.stats.failover_ms);
                        leader_failovers.lock().expect("lock").extend_from_slice(&outcome.report.stats.leader_failover_ms);
                        interrupted.fetch_add(outcome.report.stats.failovers_interrupted, std::sync::atomic::Ordering::Relaxed);
                        let mut ft = fault_totals.lock().expect("lock");
                        let stats = &outcome.report.stats;
                        let counts: Vec<(&'static str, u64)> =
                            stats.fault_counts().into_iter().chain(stats.precondition_counts()).chain(stats.session_counts()).chain(stats.membership_counts()).chain(stats.snapshot_counts()).chain(stats.directed_counts()).collect();
                        if ft.is_empty() {
                            ft.extend(counts.iter().map(|&(name, _)| (name, 0, 0)));
                        }
                        for (slot, (_, n)) in ft.iter_mut().zip(counts) {
                            slot.1 += n;
                            slot.2 += (n > 0) as u64;
                        }
                    }
                    if !outcome.passed() {
                        let line = format!("seed {seed} FAILED: replay with: {}", spec.replay_command());
                        println!("{line}");
                        for f in outcome.failures() {
                            println!("    {f}");
                        }
                        let _ = std::io::stdout().flush();
                        failures.lock().expect("lock").push((seed, outcome.failures(), spec.replay_command()));
                    }
                }
            });
        }
    });
    let wall = t.elapsed().as_secs_f64();
    let failures = failures.into_inner().expect("lock");
    let (events, virtual_ms, ops, unknown) = totals.into_inner().expect("lock");
    println!(
        "{} seeds ({:?} profile{}): {} passed, {} failed ({} with an unknown linearizability verdict)",
        seeds.len(),
        cli.profile,
        cli.bug.map_or(String::new(), |b| format!(", bug {}", b.flag())),
        seeds.len() - failures.len(),
        failures.len(),
        unknown
    );
    println!(
        "  {events} events, {ops} client operations, {:.0} virtual s in {wall:.1} wall s ({:.0} virtual s per wall s, {:.0} seeds per minute)",
        virtual_ms as f64 / 1000.0,
        virtual_ms as f64 / 1000.0 / wall,
        seeds.len() as f64 * 60.0 / wall
    );
    let mut lfo = leader_failovers.into_inner().expect("lock");
    lfo.sort_unstable();
    if !lfo.is_empty() {
        let pct = |p: f64| lfo[((lfo.len() - 1) as f64 * p).round() as usize];
        println!(
            "  failover (leader crashed with a majority left up -> a new leader committed in its term, virtual ms, {} samples, {} more cut short by another crash): p50 {} p99 {} max {}",
            lfo.len(),
            interrupted.load(std::sync::atomic::Ordering::Relaxed),
            pct(0.5),
            pct(0.99),
            lfo[lfo.len() - 1]
        );
    }
    let mut fo = failovers.into_inner().expect("lock");
    fo.sort_unstable();
    if !fo.is_empty() {
        let pct = |p: f64| fo[((fo.len() - 1) as f64 * p).round() as usize];
        println!(
            "  failover (leader crashed -> next successful client write, virtual ms, {} samples): p50 {} p99 {} max {}",
            fo.len(),
            pct(0.5),
            pct(0.99),
            fo[fo.len() - 1]
        );
    }
    let ft = fault_totals.into_inner().expect("lock");
    println!(
        "  faults (and issue-7 preconditions) fired (total / seeds): {}",
        ft.iter().map(|(name, n, seeds)| format!("{name} {n}/{seeds}")).collect::<Vec<_>>().join(", ")
    );
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
