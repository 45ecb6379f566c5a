//! The world a run simulates, derived entirely from its seed (swarm testing, as in TigerBeetle's
//! VOPR): cluster size, fault rates, partition mode, clock drift and client count all vary by seed,
//! so a thousand seeds explore a thousand different worlds, not one world a thousand times.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use vecraft_core::raft::InjectedBugs;
use crate::directed_faults::DirectedFaults;

/// How the network gets cut during the fault phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum PartitionMode {
    /// Never.
    None,
    /// Split the nodes into two random halves.
    Halves,
    /// Cut the current leader off from everyone.
    IsolateLeader,
    /// Block single directions of random links (asymmetric faults).
    OneWay,
    /// Any of the above, chosen per event.
    Mixed,
}

/// A named bundle of fault rates, for the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum FaultProfile {
    /// No faults at all (the baseline).
    Calm,
    /// Everything derived from the seed (default).
    Swarm,
    /// Every fault class on, at high rates (except the classes that expose the open stale-read
    /// bugs in core, see `SwarmFull`).
    Chaos,
    /// Like `Swarm`, but with very long delays and replays of old packets on in every seed (in
    /// `Swarm` they are on in about 60% of seeds): the late packets that the two open stale-read
    /// bugs of issue 7 need. No seed has failed on them yet (see the README).
    SwarmFull,
    /// `SwarmFull` plus the storage faults that lose or corrupt acknowledged data (bit flips in
    /// synced records, lying fsyncs, misdirected writes), on a minority of nodes. Core does not yet
    /// keep a node with a damaged log from voting, so failures are expected until it does.
    ChaosStorage,
    /// Only leader crashes (every 1.5–3 s, down up to 2 s) on an otherwise calm world: the clean
    /// failover measurement (how long until writes are accepted again), without partitions,
    /// loss or other crashes stretching it.
    Failover,
    /// `Swarm` with every directed fault class on at a high rate (see
    /// [`crate::directed_faults`]): the profile that pins the directed faults.
    Directed,
}

impl FaultProfile {
    /// The command-line spelling.
    pub fn flag(self) -> &'static str {
        match self {
            FaultProfile::Calm => "calm",
            FaultProfile::Swarm => "swarm",
            FaultProfile::Chaos => "chaos",
            FaultProfile::SwarmFull => "swarm-full",
            FaultProfile::ChaosStorage => "chaos-storage",
            FaultProfile::Failover => "failover",
            FaultProfile::Directed => "directed",
        }
    }
}

/// Every knob of one simulated run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimConfig {
    /// The seed everything derives from.
    pub seed: u64,
    /// Raft voters.
    pub nodes: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Distinct register keys (few keys = more contention).
    pub keys: u64,
    /// Virtual time with faults.
    pub fault_phase: Duration,
    /// Virtual time after faults stop, in which the cluster must recover and serve.
    pub liveness_phase: Duration,
    /// One-way network delay range.
    pub min_delay: Duration,
    /// See `min_delay`.
    pub max_delay: Duration,
    /// Probability a message is dropped.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplication: f64,
    /// Partition style.
    pub partitions: PartitionMode,
    /// Mean time between partition events (None = no partitions).
    pub partition_every: Option<Duration>,
    /// Mean time between crashes (None = no crashes).
    pub crash_every: Option<Duration>,
    /// Longest time a crashed node stays down.
    pub max_downtime: Duration,
    /// Probability that a crash tears the write in progress.
    pub torn_write: f64,
    /// Probability that a crash event is a correlated power loss taking down a majority at once.
    pub power_loss: f64,
    /// Probability that a disk write stalls (a slow fsync of 50-250 ms, as real disks do).
    pub disk_stall: f64,
    /// Disk write latency range.
    pub min_disk: Duration,
    /// See `min_disk`.
    pub max_disk: Duration,
    /// Largest relative clock-rate error of any node (0.02 = ±2%).
    pub clock_drift: f64,
    /// Probability a packet between nodes is delayed by a second or more (past every election
    /// timeout, so it arrives in a later term).
    pub long_delay: f64,
    /// Longest such delay.
    pub long_delay_max: Duration,
    /// Probability that sending a packet also re-delivers an old packet of the same link.
    pub replay: f64,
    /// Mean time between asymmetric link faults (one direction degraded or restored).
    pub degrade_every: Option<Duration>,
    /// Mean time between flapping episodes (a link going up and down repeatedly).
    pub flap_every: Option<Duration>,
    /// Mean time between process pauses.
    pub pause_every: Option<Duration>,
    /// Longest process pause.
    pub max_pause: Duration,
    /// Mean time between wall-clock jumps (of one node, forwards or backwards).
    pub clock_jump_every: Option<Duration>,
    /// Largest wall-clock jump.
    pub max_clock_jump: Duration,
    /// Nodes whose disks suffer the data-losing storage faults below (always a minority: no
    /// protocol survives a majority of lying disks). The host picks which, from the seed.
    pub faulty_disks: usize,
    /// Mean time between bit flips in synced records of a faulty disk.
    pub bit_flip_every: Option<Duration>,
    /// Probability that a faulty disk acknowledges a sync without making it durable.
    pub lying_fsync: f64,
    /// Probability that a faulty disk writes a synced record at the wrong offset.
    pub misdirected_write: f64,
    /// Probability that recovery fails with a read error (any node; it retries later).
    pub read_error: f64,
    /// Probability that a write fails because the disk is full (any node; it stops).
    pub disk_full: f64,
    /// Raft: pre-vote on.
    pub pre_vote: bool,
    /// Raft: check-quorum (and so lease reads) on.
    pub check_quorum: bool,
    /// Fraction of reads that ask for lease mode.
    pub lease_read_fraction: f64,
    /// Client request time-out.
    pub client_timeout: Duration,
    /// Share of crashes aimed at the leader when there is one (the rest hit a random node).
    pub crash_leader_share: f64,
    /// Mean time between leadership-transfer requests to the current leader (None = none).
    pub transfer_every: Option<Duration>,
    /// Client sessions each node's state machine keeps (registering one more evicts the least
    /// recently used by apply index). Some seeds keep fewer than there are clients, so live
    /// sessions get evicted and clients must see "session expired" and register again.
    pub session_capacity: usize,
    /// Nodes `1..=initial_voters` form the group at start; the others start outside it and wait
    /// to be added (as learners) by the membership nemesis.
    pub initial_voters: usize,
    /// Mean time between membership changes asked of the leader (None = the group never changes).
    pub membership_every: Option<Duration>,
    /// The membership nemesis never shrinks the voters below this many (so the workload can
    /// make progress).
    pub min_voters: usize,
    /// Snapshot/compaction settings (None = the production defaults, which a run never reaches).
    #[serde(default)]
    pub snapshots: Option<SnapshotSettings>,
    /// Directed faults (episodes timed off what the nodes do), see [`crate::directed_faults`].
    #[serde(default)]
    pub directed: DirectedFaults,
    /// Deliberate Raft bugs (checker sensitivity tests).
    #[serde(skip)]
    pub bugs: InjectedBugs,
}

/// Small compaction thresholds, so that runs of a few thousand entries compact often and lagging
/// followers (crashed, partitioned, paused) need snapshots to catch up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSettings {
    /// Snapshot after this many applied entries.
    pub entries: u64,
    /// Entries kept behind a snapshot.
    pub keep: u64,
    /// Bytes per chunk (small ones make multi-chunk transfers, large ones single-chunk).
    pub chunk: usize,
    /// Chunks in flight per follower.
    pub window: usize,
    /// Concurrent transfers per leader.
    pub max_sends: usize,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl SimConfig {
    /// Derives a whole world from `seed` under `profile`.
    pub fn from_seed(seed: u64, profile: FaultProfile) -> SimConfig {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_C0FF_EE00_0001);
        let nodes = [3, 3, 5, 5, 5, 7, 1][rng.random_range(0..7)];
        let calm = SimConfig {
            seed,
            nodes,
            clients: rng.random_range(2..=6),
            keys: rng.random_range(1..=4),
            fault_phase: ms(rng.random_range(8_000..=15_000)),
            liveness_phase: ms(10_000),
            min_delay: ms(1),
            max_delay: ms(rng.random_range(2..=30)),
            loss: 0.0,
            duplication: 0.0,
            partitions: PartitionMode::None,
            partition_every: None,
            crash_every: None,
            max_downtime: ms(2_000),
            torn_write: 0.0,
            power_loss: 0.0,
            disk_stall: 0.0,
            min_disk: Duration::from_micros(100),
            max_disk: ms(rng.random_range(1..=10)),
            clock_drift: 0.0,
            long_delay: 0.0,
            long_delay_max: ms(1_000),
            replay: 0.0,
            degrade_every: None,
            flap_every: None,
            pause_every: None,
            max_pause: ms(1_000),
            clock_jump_every: None,
            max_clock_jump: ms(1_000),
            faulty_disks: 0,
            bit_flip_every: None,
            lying_fsync: 0.0,
            misdirected_write: 0.0,
            read_error: 0.0,
            disk_full: 0.0,
            pre_vote: true,
            check_quorum: true,
            lease_read_fraction: 0.5,
            client_timeout: ms(1_000),
            crash_leader_share: 0.3,
            transfer_every: None,
            session_capacity: 64,
            initial_voters: nodes,
            membership_every: None,
            min_voters: 1,
            snapshots: None,
            directed: DirectedFaults::default(),
            bugs: InjectedBugs::default(),
        };
        // Workload features added later draw from their own stream, so fault mixes stay as they were.
        let mut later = ChaCha8Rng::seed_from_u64(seed ^ 0x7EA5_F00D_0000_0002);
        let mut cfg = Self::derive(profile, calm, &mut rng);
        cfg.transfer_every = match profile {
            FaultProfile::Calm | FaultProfile::Failover => None,
            FaultProfile::Chaos => Some(ms(later.random_range(300..1_500))),
            _ => later.random_bool(0.6).then(|| ms(later.random_range(300..3_000))),
        };
        // Drawn last from `later`, so earlier draws (and the worlds they describe) stay as they were.
        cfg.session_capacity = if later.random_bool(0.25) {
            cfg.clients.saturating_sub(1).max(1)
        } else {
            cfg.clients + later.random_range(0..=4)
        };
        // Membership changes draw from their own stream too.
        let mut members = ChaCha8Rng::seed_from_u64(seed ^ 0x3E3B_E125_0000_0003);
        cfg.membership_every = match profile {
            FaultProfile::Calm | FaultProfile::Failover => None,
            FaultProfile::Chaos => Some(ms(members.random_range(300..1_500))),
            _ => members.random_bool(0.85).then(|| ms(members.random_range(300..2_000))),
        };
        if cfg.membership_every.is_some() {
            cfg.min_voters = Self::voter_floor(cfg.nodes);
            // Some worlds start with nodes outside the group, to be added as learners.
            let spare = cfg.nodes.saturating_sub(cfg.min_voters).min(2);
            cfg.initial_voters = cfg.nodes - members.random_range(0..=spare);
            cfg.keep_faulty_disks_a_minority_of_voters();
        }
        // Snapshots draw from a stream of their own too.
        let mut snap = ChaCha8Rng::seed_from_u64(seed ^ 0x5A4B_5407_0000_0003);
        cfg.snapshots = match profile {
            FaultProfile::Calm | FaultProfile::Failover => None,
            _ => Some(SnapshotSettings {
                entries: snap.random_range(8..=64),
                keep: [0, 0, 2, 8][snap.random_range(0..4)],
                chunk: [16, 64, 256, 4096][snap.random_range(0..4)],
                window: snap.random_range(1..=4),
                max_sends: snap.random_range(1..=2),
            }),
        };
        // Directed faults draw from a stream of their own too.
        let mut directed = ChaCha8Rng::seed_from_u64(seed ^ 0xD1EC_7ED0_0000_0005);
        cfg.directed = DirectedFaults::roll(&mut directed, profile);
        cfg
    }

    /// The faulty disks are a seeded minority of all nodes; with nodes outside the group, or
    /// too few voters, they could be a majority of the voters, and a group whose voters are
    /// mostly damaged cannot recover (no protocol can help). So such worlds start with every
    /// node a voter and never shrink below a healthy majority (the nemesis checks each change).
    pub fn keep_faulty_disks_a_minority_of_voters(&mut self) {
        if self.faulty_disks > 0 {
            self.initial_voters = self.nodes;
            self.min_voters = self.min_voters.max(2 * self.faulty_disks + 1).min(self.nodes);
        }
    }

    /// The fewest voters the membership nemesis keeps in a group of `nodes` nodes.
    pub fn voter_floor(nodes: usize) -> usize {
        match nodes {
            0..=2 => nodes.max(1),
            3..=4 => 2,
            _ => 3,
        }
    }

    fn derive(profile: FaultProfile, calm: SimConfig, rng: &mut ChaCha8Rng) -> SimConfig {
        match profile {
            FaultProfile::Calm => calm,
            FaultProfile::Failover => SimConfig {
                nodes: calm.nodes.max(3),
                initial_voters: calm.nodes.max(3),
                crash_every: Some(ms(rng.random_range(1_500..3_000))),
                crash_leader_share: 1.0,
                ..calm
            },
            FaultProfile::Swarm | FaultProfile::SwarmFull | FaultProfile::ChaosStorage => {
                let on = |rng: &mut ChaCha8Rng, p: f64| rng.random_bool(p);
                let loss = if on(rng, 0.6) { rng.random_range(0.0..0.15) } else { 0.0 };
                let duplication = if on(rng, 0.5) { rng.random_range(0.0..0.1) } else { 0.0 };
                let partitions = [
                    PartitionMode::None,
                    PartitionMode::Halves,
                    PartitionMode::IsolateLeader,
                    PartitionMode::OneWay,
                    PartitionMode::Mixed,
                    PartitionMode::Mixed,
                ][rng.random_range(0..6)];
                let partition_every = (partitions != PartitionMode::None).then(|| ms(rng.random_range(300..3_000)));
                let crash_every = on(rng, 0.7).then(|| ms(rng.random_range(300..4_000)));
                let torn_write = if on(rng, 0.5) { rng.random_range(0.0..1.0) } else { 0.0 };
                let clock_drift = if on(rng, 0.6) { rng.random_range(0.0..0.05) } else { 0.0 };
                let power_loss = if crash_every.is_some() && on(rng, 0.4) { rng.random_range(0.1..0.5) } else { 0.0 };
                let disk_stall = if on(rng, 0.5) { rng.random_range(0.0..0.05) } else { 0.0 };
                let check_quorum = on(rng, 0.8);
                let pre_vote = on(rng, 0.8);
                let base = SimConfig {
                    loss,
                    duplication,
                    partitions,
                    partition_every,
                    crash_every,
                    torn_write,
                    power_loss,
                    disk_stall,
                    clock_drift,
                    check_quorum,
                    pre_vote,
                    max_downtime: ms(rng.random_range(100..3_000)),
                    lease_read_fraction: rng.random_range(0.0..1.0),
                    ..calm
                };
                // Drawn after (and independently of) the classic classes, so a seed describes the
                // same world under every swarm profile except for the classes a profile gates.
                let extra = NewFaults::roll(rng, base.nodes);
                extra.apply(base, profile)
            }
            FaultProfile::Directed => Self::derive(FaultProfile::Swarm, calm, rng),
            FaultProfile::Chaos => SimConfig {
                loss: rng.random_range(0.05..0.2),
                duplication: rng.random_range(0.02..0.1),
                partitions: PartitionMode::Mixed,
                partition_every: Some(ms(rng.random_range(300..1_500))),
                crash_every: Some(ms(rng.random_range(300..1_500))),
                torn_write: 0.5,
                power_loss: 0.2,
                disk_stall: 0.02,
                clock_drift: 0.05,
                max_downtime: ms(rng.random_range(200..2_000)),
                degrade_every: Some(ms(rng.random_range(500..2_000))),
                flap_every: Some(ms(rng.random_range(1_000..4_000))),
                pause_every: Some(ms(rng.random_range(1_000..4_000))),
                max_pause: ms(rng.random_range(300..3_000)),
                clock_jump_every: Some(ms(rng.random_range(500..3_000))),
                max_clock_jump: ms(rng.random_range(1_000..60_000)),
                read_error: 0.2,
                disk_full: 0.001,
                ..calm
            },
        }
    }

    /// Checks a configuration built or edited by hand.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 || self.nodes > 15 {
            return Err(format!("nodes must be 1..=15, got {}", self.nodes));
        }
        if self.session_capacity == 0 {
            return Err("session_capacity must be positive".into());
        }
        if self.clients == 0 || self.keys == 0 {
            return Err("clients and keys must be positive".into());
        }
        if self.min_delay > self.max_delay || self.min_disk > self.max_disk {
            return Err("delay ranges must have min <= max".into());
        }
        for (name, p) in [
            ("loss", self.loss),
            ("duplication", self.duplication),
            ("torn_write", self.torn_write),
            ("power_loss", self.power_loss),
            ("disk_stall", self.disk_stall),
            ("long_delay", self.long_delay),
            ("replay", self.replay),
            ("lying_fsync", self.lying_fsync),
            ("misdirected_write", self.misdirected_write),
            ("read_error", self.read_error),
            ("disk_full", self.disk_full),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be a probability, got {p}"));
            }
        }
        if self.faulty_disks * 2 >= self.nodes && self.faulty_disks > 0 {
            return Err(format!("faulty_disks must be a minority of {} nodes, got {}", self.nodes, self.faulty_disks));
        }
        if self.initial_voters == 0 || self.initial_voters > self.nodes {
            return Err(format!("initial_voters must be 1..={}, got {}", self.nodes, self.initial_voters));
        }
        if self.min_voters == 0 || self.min_voters > self.initial_voters {
            return Err(format!("min_voters must be 1..={}, got {}", self.initial_voters, self.min_voters));
        }
        if !(0.0..0.2).contains(&self.clock_drift) {
            return Err("clock_drift must be in [0, 0.2)".into());
        }
        Ok(())
    }
}

/// The fault classes added for the "simulator faults" issue, rolled per seed (swarm testing: each
/// class on or off, with its own intensity) and then gated by the profile.
struct NewFaults {
    long_delay: f64,
    long_delay_max: Duration,
    replay: f64,
    degrade_every: Option<Duration>,
    flap_every: Option<Duration>,
    pause_every: Option<Duration>,
    max_pause: Duration,
    clock_jump_every: Option<Duration>,
    max_clock_jump: Duration,
    faulty_disks: usize,
    bit_flip_every: Option<Duration>,
    lying_fsync: f64,
    misdirected_write: f64,
    read_error: f64,
    disk_full: f64,
}

impl NewFaults {
    fn roll(rng: &mut ChaCha8Rng, nodes: usize) -> NewFaults {
        let on = |rng: &mut ChaCha8Rng, p: f64| rng.random_bool(p);
        let minority = (nodes - 1) / 2;
        NewFaults {
            long_delay: if on(rng, 0.6) { rng.random_range(0.001..0.02) } else { 0.0 },
            long_delay_max: ms(rng.random_range(1_500..6_000)),
            replay: if on(rng, 0.6) { rng.random_range(0.001..0.03) } else { 0.0 },
            degrade_every: on(rng, 0.5).then(|| ms(rng.random_range(500..4_000))),
            flap_every: on(rng, 0.5).then(|| ms(rng.random_range(1_000..5_000))),
            pause_every: on(rng, 0.6).then(|| ms(rng.random_range(800..5_000))),
            max_pause: ms(rng.random_range(200..4_000)),
            clock_jump_every: on(rng, 0.5).then(|| ms(rng.random_range(500..5_000))),
            max_clock_jump: ms(rng.random_range(500..120_000)),
            faulty_disks: if minority > 0 && on(rng, 0.7) { rng.random_range(1..=minority) } else { 0 },
            bit_flip_every: on(rng, 0.6).then(|| ms(rng.random_range(500..5_000))),
            lying_fsync: if on(rng, 0.6) { rng.random_range(0.01..0.3) } else { 0.0 },
            misdirected_write: if on(rng, 0.5) { rng.random_range(0.001..0.02) } else { 0.0 },
            read_error: if on(rng, 0.4) { rng.random_range(0.05..0.5) } else { 0.0 },
            disk_full: if on(rng, 0.4) { rng.random_range(0.0002..0.003) } else { 0.0 },
        }
    }

    /// The world of `base` with the classes `profile` allows.
    fn apply(self, base: SimConfig, profile: FaultProfile) -> SimConfig {
        let full = matches!(profile, FaultProfile::SwarmFull | FaultProfile::ChaosStorage);
        let storage = profile == FaultProfile::ChaosStorage;
        let mut cfg = SimConfig {
            degrade_every: self.degrade_every,
            flap_every: self.flap_every,
            pause_every: self.pause_every,
            max_pause: self.max_pause,
            clock_jump_every: self.clock_jump_every,
            max_clock_jump: self.max_clock_jump,
            read_error: self.read_error,
            disk_full: self.disk_full,
            ..base
        };
        // Long delays and replays are per-seed swarm classes like the rest (20,000 seeds did not
        // fail with them on). The full profiles switch them on in every seed, to hunt for the
        // stale-read bugs of issue 7, which need late packets.
        cfg.long_delay = self.long_delay;
        cfg.long_delay_max = self.long_delay_max;
        cfg.replay = self.replay;
        if full {
            cfg.long_delay = if self.long_delay > 0.0 { self.long_delay } else { 0.01 };
            cfg.replay = if self.replay > 0.0 { self.replay } else { 0.02 };
        }
        if storage && self.faulty_disks > 0 {
            cfg.faulty_disks = self.faulty_disks;
            cfg.bit_flip_every = self.bit_flip_every;
            cfg.lying_fsync = self.lying_fsync;
            cfg.misdirected_write = self.misdirected_write;
        }
        cfg
    }
}
