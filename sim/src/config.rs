//! The world a run simulates, derived entirely from its seed (swarm testing, as in TigerBeetle's
//! VOPR): cluster size, fault rates, partition mode, clock drift and client count all vary by seed,
//! so a thousand seeds explore a thousand different worlds, not one world a thousand times.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use vecraft_core::raft::InjectedBugs;

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
    /// Every fault class on, at high rates.
    Chaos,
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
    /// Raft: pre-vote on.
    pub pre_vote: bool,
    /// Raft: check-quorum (and so lease reads) on.
    pub check_quorum: bool,
    /// Fraction of reads that ask for lease mode.
    pub lease_read_fraction: f64,
    /// Client request time-out.
    pub client_timeout: Duration,
    /// Mean time between leadership-transfer requests to the current leader (None = none).
    pub transfer_every: Option<Duration>,
    /// Deliberate Raft bugs (checker sensitivity tests).
    #[serde(skip)]
    pub bugs: InjectedBugs,
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
            pre_vote: true,
            check_quorum: true,
            lease_read_fraction: 0.5,
            client_timeout: ms(1_000),
            transfer_every: None,
            bugs: InjectedBugs::default(),
        };
        // Features added later draw from their own stream, so older fault mixes stay as they were.
        let mut later = ChaCha8Rng::seed_from_u64(seed ^ 0x7EA5_F00D_0000_0002);
        let mut cfg = Self::from_seed_base(profile, calm, &mut rng);
        cfg.transfer_every = match profile {
            FaultProfile::Calm => None,
            FaultProfile::Swarm => later.random_bool(0.6).then(|| ms(later.random_range(300..3_000))),
            FaultProfile::Chaos => Some(ms(later.random_range(300..1_500))),
        };
        cfg
    }

    fn from_seed_base(profile: FaultProfile, calm: SimConfig, rng: &mut ChaCha8Rng) -> SimConfig {
        match profile {
            FaultProfile::Calm => calm,
            FaultProfile::Swarm => {
                let on = |rng: &mut ChaCha8Rng, p: f64| rng.random_bool(p);
                let rng = &mut *rng;
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
                SimConfig {
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
                }
            }
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
                ..calm
            },
        }
    }

    /// Checks a configuration built or edited by hand.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes == 0 || self.nodes > 15 {
            return Err(format!("nodes must be 1..=15, got {}", self.nodes));
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
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be a probability, got {p}"));
            }
        }
        if !(0.0..0.2).contains(&self.clock_drift) {
            return Err("clock_drift must be in [0, 0.2)".into());
        }
        Ok(())
    }
}
