//! Which directed faults a world runs, derived from its seed (the episodes themselves live in
//! `world::directed`).
//!
//! Random faults alone almost never line up into the few-millisecond races that break leases and
//! commitment: a late packet must cross a restart of its sender, a vote must land between two
//! other messages, a crash must hit a leader right as it counts replicas. A directed fault
//! (TigerBeetle's and Jepsen's targeted nemeses) watches the cluster and times its cuts, crashes
//! and late deliveries off what the nodes are doing, so that such a race happens in most
//! episodes instead of once in a hundred thousand seeds. Each class is a real fault, not a script
//! for one bug: with every safety rule in place the cluster must ride it out.

use crate::config::FaultProfile;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The directed fault classes, for the command line and the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum DirectedClass {
    /// Capture a leader's heartbeats, crash-restart it, and once it leads again deliver the
    /// captured packets and (much later, across a cut) their replies.
    LatePacket,
    /// Cut a leader from a minority, let a follower lose and regain its lease while a candidate
    /// of the next term courts it, and deliver that candidate's held vote request late.
    LeaseVote,
    /// Ask the leader for a transfer and, once `TimeoutNow` has left, cut every link into the old
    /// leader while clients keep reading from it.
    TransferReads,
    /// Raft's figure 8: a leader's entries reach only a minority, the next leader is cut off at
    /// once, the first comes back and replicates, and is crashed at its first commit.
    Figure8,
}

impl DirectedClass {
    /// Every class, in a fixed order.
    pub const ALL: [DirectedClass; 4] = [
        DirectedClass::LatePacket,
        DirectedClass::LeaseVote,
        DirectedClass::TransferReads,
        DirectedClass::Figure8,
    ];

    /// The command-line spelling (and the summary's name for an episode of this class).
    pub fn flag(self) -> &'static str {
        match self {
            DirectedClass::LatePacket => "late-packet",
            DirectedClass::LeaseVote => "lease-vote",
            DirectedClass::TransferReads => "transfer-reads",
            DirectedClass::Figure8 => "figure8",
        }
    }
}

/// The directed faults of one world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DirectedFaults {
    /// Mean time between episodes (None = no directed faults). One episode runs at a time.
    pub every: Option<Duration>,
    /// Classes on in this world.
    pub late_packet: bool,
    /// See [`DirectedClass::LeaseVote`].
    pub lease_vote: bool,
    /// See [`DirectedClass::TransferReads`].
    pub transfer_reads: bool,
    /// See [`DirectedClass::Figure8`].
    pub figure8: bool,
    /// Raft's batch bound (entries per append) in this world, if not the default. Small batches,
    /// as flow-controlled production links send, let a new leader's old-term entries reach a
    /// follower ahead of its own first entry: the moment figure 8 is about.
    pub batch_entries: Option<usize>,
}

impl DirectedFaults {
    /// The classes that are on, in a fixed order.
    pub fn classes(&self) -> Vec<DirectedClass> {
        let on = [
            self.late_packet,
            self.lease_vote,
            self.transfer_reads,
            self.figure8,
        ];
        DirectedClass::ALL
            .into_iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(c, _)| c)
            .collect()
    }

    /// Only `class` on (the `--directed` flag pins one class).
    pub fn only(mut self, class: DirectedClass) -> DirectedFaults {
        self.late_packet = class == DirectedClass::LatePacket;
        self.lease_vote = class == DirectedClass::LeaseVote;
        self.transfer_reads = class == DirectedClass::TransferReads;
        self.figure8 = class == DirectedClass::Figure8;
        if self.every.is_none() {
            self.every = Some(Duration::from_millis(1_000));
        }
        if class == DirectedClass::Figure8 && self.batch_entries.is_none() {
            self.batch_entries = Some(1);
        }
        self
    }

    /// Draws the directed faults of a world under `profile` from `rng` (a stream of their own, so
    /// every other draw of a seed stays what it was).
    pub fn roll(rng: &mut ChaCha8Rng, profile: FaultProfile) -> DirectedFaults {
        let ms = |n: u64| Duration::from_millis(n);
        match profile {
            FaultProfile::Swarm | FaultProfile::SwarmFull | FaultProfile::ChaosStorage => {
                if !rng.random_bool(0.5) {
                    return DirectedFaults::default();
                }
                let mut d = DirectedFaults {
                    every: Some(ms(rng.random_range(800..3_000))),
                    late_packet: rng.random_bool(0.5),
                    lease_vote: rng.random_bool(0.5),
                    transfer_reads: rng.random_bool(0.5),
                    figure8: rng.random_bool(0.5),
                    batch_entries: None,
                };
                if d.classes().is_empty() {
                    let class = DirectedClass::ALL[rng.random_range(0..4)];
                    d = d.only(class);
                }
                if d.figure8 {
                    d.batch_entries = Some([1, 1, 2, 4, 64][rng.random_range(0..5)]);
                }
                d
            }
            FaultProfile::Directed => DirectedFaults {
                every: Some(ms(rng.random_range(500..1_500))),
                late_packet: true,
                lease_vote: true,
                transfer_reads: true,
                figure8: true,
                batch_entries: Some([1, 1, 2, 4, 64][rng.random_range(0..5)]),
            },
            FaultProfile::Calm | FaultProfile::Chaos | FaultProfile::Failover => {
                DirectedFaults::default()
            }
        }
    }
}
