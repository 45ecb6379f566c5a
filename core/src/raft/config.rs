//! Configuration of a Raft node.

use super::message::GroupId;
use crate::contract::NodeId;
use std::time::Duration;

/// How a node behaves. All durations are measured on the node's own (possibly drifting) clock.
#[derive(Clone, Debug)]
pub struct RaftConfig {
    /// This node.
    pub id: NodeId,
    /// The group it replicates.
    pub group: GroupId,
    /// The group's initial voters (before any configuration change). This node need not be
    /// among them: a node started outside the group waits to be added as a learner.
    pub voters: Vec<NodeId>,
    /// Election timeouts are drawn uniformly from `[election_timeout_min, election_timeout_max)`.
    pub election_timeout_min: Duration,
    /// See `election_timeout_min`.
    pub election_timeout_max: Duration,
    /// How often a leader sends heartbeats (and retries stalled replication).
    pub heartbeat_interval: Duration,
    /// Max append messages in flight to one follower (pipelining window).
    pub max_inflight: usize,
    /// Max entries in one append message.
    pub max_batch_entries: usize,
    /// Max payload bytes in one append message (at least one entry is always sent, however
    /// large, so a big entry cannot wedge replication).
    pub max_batch_bytes: usize,
    /// Max bytes of entries a leader holds uncommitted; proposals beyond it are refused with
    /// `ClientError::Overloaded` instead of growing memory without bound.
    pub max_uncommitted_bytes: usize,
    /// Run a pre-vote round before a real election, so a partitioned node that rejoins does not
    /// depose a healthy leader.
    pub pre_vote: bool,
    /// A leader that has not heard from a quorum within an election timeout steps down, and
    /// followers ignore vote requests while they hear from a leader. Required for lease reads.
    pub check_quorum: bool,
    /// Serve `ReadMode::Lease` reads from the leader's lease. Ignored (reads fall back to
    /// ReadIndex) unless `check_quorum` is on, because without vote stickiness a lease is unsafe.
    pub lease_reads: bool,
    /// Bound on relative clock-rate error between any two nodes (e.g. 0.05 = 5%); the lease is
    /// shortened accordingly.
    pub max_clock_drift: f64,
    /// Compaction policy: ask the driver for a snapshot once this many entries were applied
    /// since the last one (`u64::MAX`: never by count).
    pub snapshot_entries: u64,
    /// Compaction policy: ... or once this many bytes of entries ([`super::Entry::size`]) were
    /// applied since the last one (`u64::MAX`: never by size).
    pub snapshot_bytes: u64,
    /// Entries kept in the log behind a snapshot, so followers a little behind catch up by
    /// appends instead of a whole snapshot.
    pub snapshot_keep_entries: u64,
    /// Bytes of snapshot per `InstallSnapshot` message.
    pub snapshot_chunk_bytes: usize,
    /// Snapshot chunks in flight to one follower.
    pub snapshot_window: usize,
    /// Snapshot transfers this node runs at once (more followers wait for a slot): a snapshot
    /// is big, and a leader streaming to everyone at once starves its own appends.
    pub max_snapshot_sends: usize,
    /// A voter whose state machine has not applied everything committed waits this much
    /// longer per unapplied entry before it campaigns, capped at
    /// `max_unapplied_campaign_hold`: a leader answers writes only once it applied them, so
    /// after a restart (the whole log replayed into the engine) the survivor that is caught up
    /// should win, not the one still replaying. Zero disables the hold.
    pub unapplied_campaign_hold: Duration,
    /// Cap of that hold, so a voter that is behind still campaigns when nobody else does.
    pub max_unapplied_campaign_hold: Duration,
    /// Seed of the node's private random generator (election timeouts).
    pub seed: u64,
    /// Deliberate protocol bugs, for proving that the simulator's checkers catch them.
    pub bugs: InjectedBugs,
}

impl RaftConfig {
    /// Sensible production defaults for `id` in a group of `voters`.
    pub fn new(id: NodeId, group: GroupId, voters: Vec<NodeId>, seed: u64) -> Self {
        RaftConfig {
            id,
            group,
            voters,
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
            heartbeat_interval: Duration::from_millis(50),
            max_inflight: 8,
            max_batch_entries: 64,
            max_batch_bytes: 1 << 20,
            max_uncommitted_bytes: 64 << 20,
            pre_vote: true,
            check_quorum: true,
            lease_reads: true,
            max_clock_drift: 0.05,
            snapshot_entries: 10_000,
            snapshot_bytes: 64 << 20,
            snapshot_keep_entries: 1_000,
            snapshot_chunk_bytes: 1 << 20,
            snapshot_window: 4,
            max_snapshot_sends: 2,
            unapplied_campaign_hold: Duration::from_micros(100),
            max_unapplied_campaign_hold: Duration::from_millis(600),
            seed,
            bugs: InjectedBugs::default(),
        }
    }

    /// Checks the configuration before a node is built from it.
    pub fn validate(&self) -> Result<(), String> {
        if self.voters.is_empty() || self.voters.contains(&0) {
            return Err(format!("the initial voters {:?} must be non-empty node ids", self.voters));
        }
        if self.election_timeout_min >= self.election_timeout_max {
            return Err("election_timeout_min must be below election_timeout_max".into());
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval * 2 > self.election_timeout_min {
            return Err("heartbeat_interval must be positive and at most half of election_timeout_min".into());
        }
        if self.max_inflight == 0 || self.max_batch_entries == 0 || self.max_batch_bytes == 0 {
            return Err("max_inflight, max_batch_entries and max_batch_bytes must be positive".into());
        }
        if self.max_uncommitted_bytes == 0 {
            return Err("max_uncommitted_bytes must be positive".into());
        }
        if self.snapshot_entries == 0 || self.snapshot_bytes == 0 {
            return Err("snapshot_entries and snapshot_bytes must be positive (u64::MAX disables)".into());
        }
        if self.snapshot_chunk_bytes == 0 || self.snapshot_window == 0 || self.max_snapshot_sends == 0 {
            return Err("snapshot_chunk_bytes, snapshot_window and max_snapshot_sends must be positive".into());
        }
        if !(0.0..0.5).contains(&self.max_clock_drift) {
            return Err("max_clock_drift must be in [0, 0.5)".into());
        }
        Ok(())
    }
}

/// Bugs that can be switched on to prove the checkers bite. Only with the `bug-injection` feature
/// can they be turned on; in a normal build every switch stays off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedBugs {
    /// The leader commits as soon as its own disk has an entry (no quorum).
    pub commit_without_quorum: bool,
    /// A node grants its vote to every candidate, even after voting for another in the term.
    pub vote_twice: bool,
    /// ReadIndex reads are served without confirming leadership with a quorum.
    pub read_without_quorum: bool,
    /// Followers acknowledge appends before the entries are durable.
    pub ack_before_persist: bool,
    /// A node answers an append from an older term with the append's heartbeat round, so a
    /// heartbeat of a leader's previous incarnation confirms reads of its next leadership.
    pub stale_round_ack: bool,
    /// A node grants a vote at its own current term even while it still honours a leader's
    /// lease (the lease guard only covers votes at a higher term).
    pub vote_in_lease: bool,
    /// A leader keeps serving lease reads after sending `TimeoutNow` for a transfer.
    pub lease_across_transfer: bool,
    /// A leader commits an entry of an older term by counting replicas (Raft §5.4.2 ignored).
    pub commit_old_term: bool,
    /// The state machine's session table is not consulted: a retried command (same session and
    /// sequence) is applied again instead of answered with its recorded response.
    pub session_ignored: bool,
    /// A configuration change of several voters is applied directly, without the joint phase.
    pub skip_joint: bool,
    /// A snapshot is labelled (and the log compacted) at the end of the log, beyond what was
    /// committed and applied, while its bytes hold only the applied state.
    pub compact_uncommitted: bool,
    /// A follower installs a snapshot at or below its commit index, moving commit and applied
    /// backwards.
    pub install_stale_snapshot: bool,
    /// A quiesced leader that wakes treats its lease as renewed (as if its followers had kept
    /// hearing from it) instead of re-confirming leadership with a quorum round first.
    pub wake_renews_lease: bool,
    /// A leader that marked a quiesce round sleeps on its followers' echo of the round number
    /// even when it sent them more than the marked heartbeats since (which woke them).
    pub sleep_on_overtaken_mark: bool,
    /// A sleeping follower wakes on an old copy of its leader's append or heartbeat (sent
    /// before, or as, the mark it slept on), and a sleeping node on any message of an older
    /// term, though the leader sleeps on.
    pub wake_on_stale_copy: bool,
    /// A follower answers a heartbeat only once every write it issued before is durable (no
    /// early acknowledgement of its durable match), so a long WAL write silences it.
    pub heartbeat_ack_waits_for_disk: bool,
    /// A voter campaigns at its election timeout however much of the committed log its state
    /// machine still has to apply (no unapplied-campaign hold).
    pub campaign_ignores_unapplied: bool,
    /// A leader quiesces once its followers hold the whole log, whether or not they said they
    /// applied it, so its report of their apply lag stays as it was before the sleep.
    pub quiesce_ignores_follower_apply: bool,
    /// Committed entries are handed to the state machine before this node's own copy is
    /// durable, so a crash can leave the state machine (and its snapshots) ahead of the log
    /// that survives, and the restarted node applies those entries a second time.
    pub apply_before_durable: bool,
    /// A restarted node whose state machine holds more than its surviving log (entries rotted
    /// after they were applied) takes the log's end as what it applied, and applies the
    /// entries in between a second time once its leader sends them again.
    pub restart_clamps_applied: bool,
}

impl InjectedBugs {
    /// Whether any switch is on (and allowed to be, in this build).
    pub fn any(&self) -> bool {
        cfg!(feature = "bug-injection")
            && (self.commit_without_quorum
                || self.vote_twice
                || self.read_without_quorum
                || self.ack_before_persist
                || self.stale_round_ack
                || self.vote_in_lease
                || self.lease_across_transfer
                || self.commit_old_term
                || self.session_ignored
                || self.skip_joint
                || self.compact_uncommitted
                || self.install_stale_snapshot
                || self.wake_renews_lease
                || self.sleep_on_overtaken_mark
                || self.wake_on_stale_copy
                || self.heartbeat_ack_waits_for_disk
                || self.campaign_ignores_unapplied
                || self.quiesce_ignores_follower_apply
                || self.apply_before_durable
                || self.restart_clamps_applied)
    }

    /// `flag`, forced off in builds without the `bug-injection` feature.
    #[inline]
    pub(crate) fn on(flag: bool) -> bool {
        cfg!(feature = "bug-injection") && flag
    }
}
