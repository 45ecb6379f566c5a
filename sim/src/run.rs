//! One seed end to end: build the world, run it, check the history, and say how to replay it.

use crate::config::SimConfig;
use crate::config::FaultProfile;
use crate::linearizability::{CheckerConfig, Verdict, check};
use crate::world::{RunReport, World};
use vecraft_core::raft::InjectedBugs;

/// Which deliberate bug to switch on (checker sensitivity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bug {
    /// The leader commits without a quorum.
    CommitWithoutQuorum,
    /// Nodes vote twice in a term.
    VoteTwice,
    /// ReadIndex reads skip the quorum round.
    ReadWithoutQuorum,
    /// Followers acknowledge appends before they are durable.
    AckBeforePersist,
    /// An append from an older term is answered with its heartbeat round (a late heartbeat of a
    /// leader's previous incarnation confirms reads of its next leadership).
    StaleRoundAck,
    /// Votes at the voter's own term are granted inside a leader's lease.
    VoteInLease,
    /// A leader keeps serving lease reads after its transfer's `TimeoutNow` left.
    LeaseAcrossTransfer,
    /// A leader commits an older term's entry by counting replicas (Raft §5.4.2 ignored).
    CommitOldTerm,
    /// The key-value state machine applies a retried command again instead of answering it from
    /// its session table.
    SessionIgnored,
    /// A configuration change of several voters is applied directly, without the joint phase.
    SkipJoint,
    /// Snapshots are labelled (and the log compacted) at the end of the log, beyond what was
    /// committed and applied.
    CompactUncommitted,
    /// Followers install snapshots at or below their commit index (commit and applied move back).
    InstallStaleSnapshot,
}

impl Bug {
    /// The switch set for this bug.
    pub fn switches(self) -> InjectedBugs {
        let mut b = InjectedBugs::default();
        match self {
            Bug::CommitWithoutQuorum => b.commit_without_quorum = true,
            Bug::VoteTwice => b.vote_twice = true,
            Bug::ReadWithoutQuorum => b.read_without_quorum = true,
            Bug::AckBeforePersist => b.ack_before_persist = true,
            Bug::StaleRoundAck => b.stale_round_ack = true,
            Bug::VoteInLease => b.vote_in_lease = true,
            Bug::LeaseAcrossTransfer => b.lease_across_transfer = true,
            Bug::CommitOldTerm => b.commit_old_term = true,
            Bug::SessionIgnored => b.session_ignored = true,
            Bug::SkipJoint => b.skip_joint = true,
            Bug::CompactUncommitted => b.compact_uncommitted = true,
            Bug::InstallStaleSnapshot => b.install_stale_snapshot = true,
        }
        b
    }

    /// The command-line spelling.
    pub fn flag(self) -> &'static str {
        match self {
            Bug::CommitWithoutQuorum => "commit-without-quorum",
            Bug::VoteTwice => "vote-twice",
            Bug::ReadWithoutQuorum => "read-without-quorum",
            Bug::AckBeforePersist => "ack-before-persist",
            Bug::StaleRoundAck => "stale-round-ack",
            Bug::VoteInLease => "vote-in-lease",
            Bug::LeaseAcrossTransfer => "lease-across-transfer",
            Bug::CommitOldTerm => "commit-old-term",
            Bug::SessionIgnored => "session-ignored",
            Bug::SkipJoint => "skip-joint",
            Bug::CompactUncommitted => "compact-uncommitted",
            Bug::InstallStaleSnapshot => "install-stale-snapshot",
        }
    }
}

/// How a seed's run is specified: enough to replay it exactly.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The seed.
    pub seed: u64,
    /// Fault profile the world is derived under.
    pub profile: FaultProfile,
    /// Override of the node count.
    pub nodes: Option<usize>,
    /// Override of the fault-phase length in seconds.
    pub fault_secs: Option<u64>,
    /// Deliberate bug, if any.
    pub bug: Option<Bug>,
    /// Override of the probability that a packet is delayed past every election timeout.
    pub long_delay: Option<f64>,
    /// Override of the probability that a send also replays an old packet of the link.
    pub replay: Option<f64>,
    /// Directed faults pinned to one class (on in every seed).
    pub directed: Option<crate::directed_faults::DirectedClass>,
}

impl RunSpec {
    /// A plain run of `seed` under the swarm profile.
    pub fn seed(seed: u64) -> RunSpec {
        RunSpec { seed, profile: FaultProfile::Swarm, nodes: None, fault_secs: None, bug: None, long_delay: None, replay: None, directed: None }
    }

    /// The world this spec describes.
    pub fn config(&self) -> SimConfig {
        let mut cfg = SimConfig::from_seed(self.seed, self.profile);
        if let Some(n) = self.nodes {
            let before = cfg.nodes;
            cfg.nodes = n;
            // Faulty disks stay a minority of whatever cluster the override makes.
            cfg.faulty_disks = cfg.faulty_disks.min((n.max(1) - 1) / 2);
            // The same number of spare nodes outside the group (if that leaves a voter), and the
            // voter floor of a cluster of this size.
            let spare = before.saturating_sub(cfg.initial_voters);
            cfg.initial_voters = n.saturating_sub(spare).max(1);
            if cfg.membership_every.is_some() {
                cfg.min_voters = SimConfig::voter_floor(n).min(cfg.initial_voters);
                cfg.keep_faulty_disks_a_minority_of_voters();
            } else {
                cfg.initial_voters = n;
                cfg.min_voters = 1;
            }
        }
        if let Some(s) = self.fault_secs {
            cfg.fault_phase = std::time::Duration::from_secs(s);
        }
        if let Some(b) = self.bug {
            cfg.bugs = b.switches();
        }
        if let Some(p) = self.long_delay {
            cfg.long_delay = p;
        }
        if let Some(p) = self.replay {
            cfg.replay = p;
        }
        if let Some(class) = self.directed {
            cfg.directed = cfg.directed.only(class);
        }
        cfg
    }

    /// The single command that replays this run.
    pub fn replay_command(&self) -> String {
        let p = self.profile.flag();
        let mut cmd = format!("cargo run --release -p vecraft-sim -- --seed {} --profile {p}", self.seed);
        if let Some(n) = self.nodes {
            cmd.push_str(&format!(" --nodes {n}"));
        }
        if let Some(s) = self.fault_secs {
            cmd.push_str(&format!(" --fault-secs {s}"));
        }
        if let Some(b) = self.bug {
            cmd.push_str(&format!(" --bug {}", b.flag()));
        }
        if let Some(p) = self.long_delay {
            cmd.push_str(&format!(" --long-delay {p}"));
        }
        if let Some(p) = self.replay {
            cmd.push_str(&format!(" --replay {p}"));
        }
        if let Some(class) = self.directed {
            cmd.push_str(&format!(" --directed {}", class.flag()));
        }
        cmd
    }
}

/// The verdict on one seed.
pub struct SeedOutcome {
    /// What ran and what it did.
    pub report: RunReport,
    /// Linearizability of the client history (`None` if a safety violation stopped the run first).
    pub linearizability: Option<Verdict>,
}

impl SeedOutcome {
    /// Every check held and the history is linearizable (an `Unknown` verdict is not a pass).
    pub fn passed(&self) -> bool {
        self.report.violations.is_empty() && self.linearizability.as_ref().is_some_and(Verdict::is_linearizable)
    }

    /// Why it failed, in one line per problem.
    pub fn failures(&self) -> Vec<String> {
        let mut f = self.report.violations.clone();
        if let Some(v) = &self.linearizability
            && !v.is_linearizable()
        {
            f.push(v.to_string());
        }
        f
    }
}

/// Runs one seed and checks everything.
pub fn run_seed(spec: &RunSpec) -> SeedOutcome {
    let cfg = spec.config();
    let report = World::new(cfg).run();
    let linearizability = report.violations.is_empty().then(|| check(&report.history, &CheckerConfig::default()));
    SeedOutcome { report, linearizability }
}
