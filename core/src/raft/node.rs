//! The Raft node: its state, inputs and outputs, and the step that ties the protocol files
//! (`election`, `replication`, `read`, `transfer`) together.

use super::conf_change::ConfChange;
use super::config::{InjectedBugs, RaftConfig};
use super::membership::Membership;
use super::log::RaftLog;
use super::message::{
    ClientError, ClientResponse, Entry, EntryPayload, HardState, LogIndex, Message, MessageBody, RequestId, Term,
};
use super::snapshot::{SnapshotMeta, SnapshotState};
use super::storage::{DurableState, PersistRecord};
use crate::contract::{NodeId, StateMachine, Time};
use crate::quorum::JointQuorum;
use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};

/// How a read is made linearizable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReadMode {
    /// Confirm leadership with a quorum heartbeat round, then read at the commit index (one
    /// round trip, no clock assumptions).
    ReadIndex,
    /// Read at once while the leader's lease holds (no round trip; relies on bounded clock drift
    /// and check-quorum). Falls back to ReadIndex when the lease is not valid.
    Lease,
}

/// Everything that can happen to a Raft node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftInput {
    /// Time passed; step it at (or after) [`RaftNode::next_deadline`]. Stepping it earlier is
    /// harmless.
    Tick,
    /// A message from a peer.
    Message(Message),
    /// The driver made every [`RaftOutput::Persist`] up to and including `seq` durable.
    Persisted {
        /// Sequence number of the newest durable record.
        seq: u64,
    },
    /// A client asks to replicate `command`.
    Propose {
        /// Echoed in the apply output and in error responses.
        id: RequestId,
        /// Opaque command for the state machine (shared, never copied by Raft).
        command: Bytes,
    },
    /// A client asks for a linearizable read; the driver keeps the query itself and serves it
    /// when [`RaftOutput::ReadReady`] names this id.
    Read {
        /// Echoed in the answer.
        id: RequestId,
        /// How to make it linearizable.
        mode: ReadMode,
    },
    /// The driver's state machine has applied every entry up to `index`.
    Applied {
        /// Highest applied index.
        index: LogIndex,
    },
    /// Hand leadership to `to` (a voter): ignored unless this node leads.
    TransferLeadership {
        /// The node that should lead next.
        to: NodeId,
    },
    /// A client asks to change the group's membership (see [`ConfChange`]). Answered like a
    /// proposal: the entry's `Apply` names `id`, or a `Respond` carries the refusal.
    ProposeConfChange {
        /// Echoed in the apply output and in error responses.
        id: RequestId,
        /// The change.
        change: ConfChange,
    },
    /// The driver durably holds a snapshot of its applied state (answer to
    /// [`RaftOutput::TakeSnapshot`]); Raft compacts its log behind it.
    SnapshotTaken {
        /// Its header (index at or above the one asked for, at most what was applied).
        meta: SnapshotMeta,
    },
    /// The driver read a chunk of a snapshot for a transfer (answer to
    /// [`RaftOutput::ReadSnapshotChunk`]); `None` if it no longer holds that snapshot.
    SnapshotChunk {
        /// The follower the chunk is for.
        to: NodeId,
        /// The snapshot's index.
        index: LogIndex,
        /// Where the chunk starts.
        offset: u64,
        /// The bytes (exactly the length asked for), or `None`.
        data: Option<Bytes>,
    },
    /// The driver verified and atomically installed the staged snapshot (answer to
    /// [`RaftOutput::InstallSnapshot`]): its state machine now holds exactly `meta.index`.
    SnapshotInstalled {
        /// The installed snapshot.
        meta: SnapshotMeta,
    },
    /// The driver could not verify or decode the staged snapshot; nothing changed. The transfer
    /// restarts from the beginning.
    SnapshotRejected {
        /// The rejected snapshot.
        meta: SnapshotMeta,
    },
}

/// Everything a Raft node asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RaftOutput {
    /// Send a message to a peer (best effort).
    Send(Message),
    /// Durably append `record` after every earlier record, then step `Persisted { seq }`.
    Persist {
        /// Strictly increasing per node incarnation.
        seq: u64,
        /// What to write.
        record: PersistRecord,
    },
    /// Apply a committed entry to the state machine. Emitted exactly once per index and
    /// incarnation, in index order, starting after the applied index given at start; the driver
    /// steps [`RaftInput::Applied`] back when done (it may batch).
    Apply {
        /// The committed entry.
        entry: Entry,
        /// The client request that proposed it on this node, if it was proposed here in the
        /// entry's term: the driver answers that request with the apply result.
        request: Option<RequestId>,
    },
    /// The read `id` is linearizable once the state machine has applied `index`: the driver
    /// serves it from the applied state at (or after) that index.
    ReadReady {
        /// The read.
        id: RequestId,
        /// The index the state machine must have applied first.
        index: LogIndex,
    },
    /// Answer a client request that will not be applied or read here (not leader, overloaded,
    /// indeterminate).
    Respond(ClientResponse),
    /// This node now uses `membership` (a configuration entry at `index` was applied, or found
    /// in the log at restart, or a not-yet-applied one it had adopted at restart was cut from the
    /// log). The driver opens connections to new members and may close those to former ones.
    MembershipChanged {
        /// The configuration entry it comes from (0: the initial or snapshot configuration).
        index: LogIndex,
        /// The membership in force.
        membership: Membership,
    },
    /// Snapshot the applied state (at `index` or any later applied index), store it durably
    /// with its [`SnapshotMeta`] header (membership from [`RaftNode::membership`]), then step
    /// [`RaftInput::SnapshotTaken`].
    TakeSnapshot {
        /// The lowest index the snapshot may be taken at.
        index: LogIndex,
    },
    /// Read `len` bytes at `offset` of the snapshot `meta` and step [`RaftInput::SnapshotChunk`].
    ReadSnapshotChunk {
        /// The follower the chunk is for (echo it).
        to: NodeId,
        /// Which snapshot.
        meta: SnapshotMeta,
        /// Where to read.
        offset: u64,
        /// How much (the rest of the snapshot if shorter).
        len: u64,
    },
    /// Stage a received chunk: append it to the staging copy of `meta` (offset 0 starts a new
    /// staging copy, discarding any other). Staging need not survive a crash.
    StageSnapshotChunk {
        /// Which snapshot.
        meta: SnapshotMeta,
        /// Where the chunk starts (always the end of what is staged).
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Every chunk of `meta` is staged: verify size and checksum, install it atomically and
    /// durably as the state machine's state, and step [`RaftInput::SnapshotInstalled`] (or
    /// [`RaftInput::SnapshotRejected`] if it does not verify or decode).
    InstallSnapshot {
        /// The snapshot to install.
        meta: SnapshotMeta,
    },
}

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking whether it could win before disturbing anyone.
    PreCandidate,
    /// Campaigning in its current term.
    Candidate,
    /// Leads its current term.
    Leader,
}

/// What a leader knows about one follower's log.
#[derive(Clone, Debug)]
pub(super) struct Progress {
    /// Highest index known to be durable on the follower and equal to ours.
    pub(super) match_index: LogIndex,
    /// Next index to send.
    pub(super) next_index: LogIndex,
    /// Pipelining (`true`) or probing for the match point (`false`, one message at a time).
    pub(super) replicating: bool,
    /// Last index of each append batch in flight (replicating only).
    pub(super) inflight: VecDeque<LogIndex>,
    /// When we last saw this follower make progress (or last started a flight).
    pub(super) last_progress: Time,
    /// Highest heartbeat round the follower has acknowledged in this term.
    pub(super) acked_round: u64,
    /// Whether the follower answered since the last check-quorum.
    pub(super) recent_active: bool,
    /// When its match index last advanced (replica lag in time, for status reports).
    pub(super) last_advance: Time,
    /// Its applied index as of its latest answer (apply lag, for status reports and quiescence).
    pub(super) applied: LogIndex,
}

impl Progress {
    /// What a leader knows of a follower it has not heard from yet: nothing matched, probing
    /// from `next_index`, counted active so check-quorum gives it a full period.
    pub(super) fn fresh(next_index: LogIndex, now: Time) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            replicating: false,
            inflight: VecDeque::new(),
            last_progress: now,
            acked_round: 0,
            recent_active: true,
            last_advance: now,
            applied: 0,
        }
    }
}

/// A read waiting for leadership confirmation.
#[derive(Clone, Debug)]
pub(super) struct PendingRead {
    pub(super) id: RequestId,
    /// Commit index when the read arrived; the state machine must apply it first.
    pub(super) index: LogIndex,
    /// Heartbeat round that must be acknowledged by a quorum first (0 = already confirmed).
    pub(super) round: u64,
}

/// A leadership transfer in progress.
#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    pub(super) to: NodeId,
    /// Abandoned at this instant if the target has not taken over.
    pub(super) deadline: Time,
    /// Whether `TimeoutNow` went out (then our lease is gone for the rest of the term).
    pub(super) timeout_now_sent: bool,
}

/// A Raft node for one group: see the module documentation for how to drive it.
pub struct RaftNode {
    pub(super) cfg: RaftConfig,
    pub(super) quorum: JointQuorum,
    pub(super) peers: Vec<NodeId>,
    /// Who belongs to the group as far as this node knows (`quorum` and `peers` are derived
    /// from it: see `reconfig.rs`).
    pub(super) membership: Membership,
    /// Index of the configuration entry `membership` comes from (0: `base_membership`).
    pub(super) membership_index: LogIndex,
    /// The membership before any configuration entry in our log: the initial voters, or the
    /// configuration of the state machine's snapshot.
    pub(super) base_membership: Membership,
    /// Every member except us: whom a leader replicates to (voters and learners).
    pub(super) replicas: Vec<NodeId>,
    /// Applied entries up to here have been checked for configuration changes.
    pub(super) conf_scanned: LogIndex,
    /// Leader: index of the newest configuration change it may have in flight (at election, its
    /// last index, conservatively): no new change is accepted until it is applied.
    pub(super) pending_conf_index: LogIndex,
    /// Leader removed from the configuration: handing over to a remaining voter.
    pub(super) handing_over: bool,
    pub(super) rng: ChaCha8Rng,

    // Durable (once acknowledged) state.
    pub(super) term: Term,
    pub(super) vote: Option<NodeId>,
    pub(super) log: RaftLog,

    // Volatile state.
    pub(super) role: Role,
    pub(super) leader: Option<NodeId>,
    pub(super) commit: LogIndex,
    /// Highest index handed to the driver as `Apply`.
    pub(super) apply_sent: LogIndex,
    /// Highest index the driver reported applied.
    pub(super) applied: LogIndex,
    pub(super) election_deadline: Time,
    /// The due election timer was already postponed for the unapplied backlog (see
    /// `RaftConfig::unapplied_campaign_hold`); the next due time campaigns.
    pub(super) campaign_held: bool,
    pub(super) heartbeat_deadline: Time,
    pub(super) check_quorum_deadline: Time,
    /// Vote requests are refused until then (check-quorum stickiness; also set at restart).
    pub(super) stickiness_until: Time,
    /// When we last heard from the leader of our term (an append, a heartbeat or a snapshot
    /// chunk); `None` until we first do. What an `eventual` read's staleness is measured from.
    pub(super) last_leader_contact: Option<Time>,
    pub(super) votes: BTreeMap<NodeId, bool>,
    /// Candidate's own vote: counted only once the write recording it is durable.
    pub(super) self_vote: Option<(Term, u64)>,
    pub(super) progress: BTreeMap<NodeId, Progress>,
    /// `Some(t)` while recovery found this node's disk damaged: it neither votes nor campaigns
    /// until a leader of a term above `t` has brought it up to that leader's commit index.
    pub(super) damaged: Option<Term>,
    /// While damaged: the commit index a leader of a later term asked us to hold.
    pub(super) repair_commit: Option<LogIndex>,

    // Persistence tracking.
    pub(super) next_seq: u64,
    pub(super) persisted_seq: u64,
    /// Writes not yet acknowledged: (seq, last log index they make durable, capped by later
    /// truncations).
    pub(super) pending_writes: VecDeque<(u64, Option<LogIndex>)>,
    /// Our log is durable, in its current form, up to here.
    pub(super) durable_index: LogIndex,
    /// Messages that may leave only once the write `seq` is durable.
    pub(super) deferred: VecDeque<(u64, Message)>,
    pub(super) hard_state_dirty: bool,
    pub(super) unpersisted_from: Option<LogIndex>,

    // Leader state.
    pub(super) pending_proposals: BTreeMap<LogIndex, (RequestId, Term)>,
    /// Bytes of entries appended by this leadership and not yet committed.
    pub(super) uncommitted_bytes: usize,
    pub(super) round: u64,
    pub(super) round_sent_at: VecDeque<(u64, Time)>,
    pub(super) lease_until: Time,
    /// A `TimeoutNow` left during this term: the lease may be undercut at any later time (the
    /// message can be delayed without bound), so no lease read is served until the term ends.
    pub(super) lease_forfeited: bool,
    pub(super) own_term_committed: bool,
    pub(super) reads_waiting_commit: Vec<(RequestId, ReadMode)>,
    pub(super) pending_reads: Vec<PendingRead>,
    pub(super) transfer: Option<Transfer>,
    /// The configuration entry `membership` came from was cut from the log (only possible for
    /// one adopted unapplied at restart): fall back at the next flush.
    pub(super) membership_truncated: bool,
    pub(super) broadcast_needed: bool,
    pub(super) replicate_needed: bool,

    /// Snapshots: the newest one held, the compaction policy's counters, transfers in flight.
    pub(super) snap: SnapshotState,
    /// Idle groups stop their timers (see `quiesce.rs`).
    pub(super) quiesce: super::quiesce::Quiescence,
}

impl RaftNode {
    /// Builds a node from its configuration, whatever durable state survived (empty on first
    /// boot) and the index its state machine has already applied (from the state machine's own
    /// snapshot: nothing at or below it is applied again). `now` is the node's clock at start.
    ///
    /// If `durable` holds a snapshot (see [`DurableState::adopt_snapshot`]), the state machine
    /// must have been restored from it: `applied` is at least the log's compacted base, and the
    /// group's membership comes from the snapshot rather than `cfg.voters`.
    ///
    /// Panics if `cfg` is invalid (see [`RaftConfig::validate`]): configurations are checked by
    /// the caller at its boundary, this is a programming error.
    pub fn new(cfg: RaftConfig, durable: DurableState, applied: LogIndex, now: Time) -> Self {
        Self::restore(cfg, durable, applied, None, now)
    }

    /// [`RaftNode::new`] for a state machine restored from a snapshot whose configuration was
    /// `snapshot_membership` (`None`: the initial voters of `cfg`). The membership in force is
    /// then that of the newest configuration entry in the durable log, else this one.
    pub fn restore(
        cfg: RaftConfig,
        durable: DurableState,
        applied: LogIndex,
        snapshot_membership: Option<Membership>,
        now: Time,
    ) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("invalid RaftConfig: {e}");
        }
        // The durable snapshot's configuration is the newest the state machine holds.
        let base_membership = durable
            .snapshot
            .as_ref()
            .map(|meta| meta.membership.clone())
            .or(snapshot_membership)
            .unwrap_or_else(|| Membership::simple(cfg.voters.iter().copied()));
        let quorum = base_membership.voters.clone();
        let peers = quorum.voters().into_iter().filter(|&v| v != cfg.id).collect();
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ cfg.id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let damaged = durable.damaged.then(|| durable.max_term());
        let log = RaftLog::from_parts(durable.base_index, durable.base_term, durable.entries);
        let durable_index = log.last_index();
        assert!(
            applied >= log.base_index(),
            "the state machine must be restored from the snapshot before the node starts ({applied} < {})",
            log.base_index()
        );
        let snapshot = durable.snapshot;
        // Whatever was applied was committed; never re-apply it. The state machine may hold
        // more than the log that survived: entries rotted on disk after they were applied (a
        // damaged group, repaired from its leader). Those come back from the leader and are
        // appended, never handed to the state machine again: commit and apply start at
        // `applied` even above the log's last index.
        let applied = if InjectedBugs::on(cfg.bugs.restart_clamps_applied) { applied.min(log.last_index()) } else { applied };
        // After a restart we do not remember whether we recently heard from a leader, so we act
        // as if we had: a lease granted before the crash must not be undercut by our vote.
        let stickiness_until = if cfg.check_quorum { now + cfg.election_timeout_min } else { now };
        let mut node = RaftNode {
            quorum,
            peers,
            membership: base_membership.clone(),
            membership_index: 0,
            base_membership,
            replicas: Vec::new(),
            conf_scanned: applied.min(log.last_index()),
            pending_conf_index: 0,
            handing_over: false,
            rng,
            term: durable.hard_state.term,
            vote: durable.hard_state.vote,
            log,
            role: Role::Follower,
            leader: None,
            commit: applied,
            apply_sent: applied,
            applied,
            election_deadline: now,
            campaign_held: false,
            heartbeat_deadline: now,
            check_quorum_deadline: now,
            stickiness_until,
            last_leader_contact: None,
            votes: BTreeMap::new(),
            self_vote: None,
            progress: BTreeMap::new(),
            damaged,
            repair_commit: None,
            next_seq: 1,
            persisted_seq: 0,
            pending_writes: VecDeque::new(),
            durable_index,
            deferred: VecDeque::new(),
            hard_state_dirty: false,
            unpersisted_from: None,
            pending_proposals: BTreeMap::new(),
            uncommitted_bytes: 0,
            round: 0,
            round_sent_at: VecDeque::new(),
            lease_until: Time::ZERO,
            lease_forfeited: false,
            own_term_committed: false,
            reads_waiting_commit: Vec::new(),
            pending_reads: Vec::new(),
            transfer: None,
            membership_truncated: false,
            broadcast_needed: false,
            replicate_needed: false,
            snap: SnapshotState::default(),
            quiesce: Default::default(),
            cfg,
        };
        node.adopt_membership_from_log(now);
        if let Some(meta) = snapshot {
            // The driver's snapshot may be newer than the WAL's last snapshot record (a crash
            // between storing it and writing the record): record it again before any entry is
            // written after it, so that the WAL alone replays without a gap.
            let (log_base, log_base_term) = (node.log.base_index(), node.log.base_term());
            node.snap.unpersisted = Some(super::snapshot::SnapshotRecord { meta: meta.clone(), log_base, log_base_term, reset: false });
            node.snap.meta = Some(meta);
        }
        node.reset_election_deadline(now);
        node
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Current term.
    pub fn term(&self) -> Term {
        self.term
    }
    /// Whom this node voted for in its current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }
    /// The leader this node follows, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// When this follower last heard from its leader (`None` if it never did in this process).
    pub fn last_leader_contact(&self) -> Option<Time> {
        self.last_leader_contact
    }
    /// Highest index known committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }
    /// Highest index the driver reported applied.
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }
    /// Highest index handed to the driver for applying.
    pub fn apply_sent_index(&self) -> LogIndex {
        self.apply_sent
    }
    /// Highest index of our log known durable.
    pub fn durable_index(&self) -> LogIndex {
        self.durable_index
    }
    /// The in-memory log (durable or not).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    /// The configuration.
    pub fn config(&self) -> &RaftConfig {
        &self.cfg
    }
    /// Whether recovery found this node's disk damaged and it has not been repaired yet.
    pub fn is_damaged(&self) -> bool {
        self.damaged.is_some()
    }
    /// The transfer target, while a leadership transfer is pending.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|t| t.to)
    }
    /// Bytes of proposals this leader holds uncommitted.
    pub fn uncommitted_bytes(&self) -> usize {
        self.uncommitted_bytes
    }

    /// The earliest instant at which this node needs a [`RaftInput::Tick`]: a driver may sleep
    /// until then (or until any other input arrives).
    pub fn next_deadline(&self) -> Option<Time> {
        if self.quiesce.quiesced {
            return None; // woken by the next input instead (see `quiesce.rs`)
        }
        match self.role {
            Role::Leader => {
                let mut at = self.heartbeat_deadline;
                if self.cfg.check_quorum {
                    at = at.min(self.check_quorum_deadline);
                }
                if let Some(t) = self.transfer {
                    at = at.min(t.deadline);
                }
                Some(at)
            }
            Role::Follower | Role::PreCandidate | Role::Candidate => Some(self.election_deadline),
        }
    }

    /// Whether the driver has anything outstanding to answer (a snapshot to take or install).
    pub fn snapshot_busy(&self) -> bool {
        self.snap.take_pending || self.snapshot_installing()
    }

    pub(super) fn bugs(&self) -> InjectedBugs {
        self.cfg.bugs
    }

    pub(super) fn send(&mut self, to: NodeId, body: MessageBody, out: &mut Vec<RaftOutput>) {
        let msg = Message { group: self.cfg.group, from: self.cfg.id, to, term: self.term, body };
        out.push(RaftOutput::Send(msg));
    }

    pub(super) fn respond_err(id: RequestId, err: ClientError, out: &mut Vec<RaftOutput>) {
        out.push(RaftOutput::Respond(ClientResponse { id, result: Err(err) }));
    }

    /// Queues a message that must not leave before everything written so far is durable.
    pub(super) fn send_after_persist(&mut self, to: NodeId, body: MessageBody, out: &mut Vec<RaftOutput>) {
        if InjectedBugs::on(self.bugs().ack_before_persist) {
            return self.send(to, body, out);
        }
        let msg = Message { group: self.cfg.group, from: self.cfg.id, to, term: self.term, body };
        let dirty = self.hard_state_dirty || self.unpersisted_from.is_some() || self.snapshot_dirty();
        let requires = if dirty { self.next_seq } else { self.next_seq - 1 };
        self.deferred.push_back((requires, msg));
    }

    /// Cuts our log at `index`, keeping durability bookkeeping honest: nothing at or after the
    /// cut counts as durable until rewritten.
    pub(super) fn truncate_log(&mut self, index: LogIndex) {
        if self.membership_depends_on(index) {
            self.membership_truncated = true;
        }
        self.log.truncate_from(index);
        let keep = index - 1;
        self.durable_index = self.durable_index.min(keep);
        for (_, last) in self.pending_writes.iter_mut() {
            if let Some(l) = last {
                *l = (*l).min(keep);
            }
        }
        if let Some(from) = self.unpersisted_from.as_mut() {
            *from = (*from).min(index);
        } else {
            self.unpersisted_from = Some(index);
        }
    }

    pub(super) fn append_entry(&mut self, payload: EntryPayload) -> LogIndex {
        let index = self.log.last_index() + 1;
        let entry = Entry { term: self.term, index, payload };
        self.uncommitted_bytes += entry.size();
        self.log.push(entry);
        self.unpersisted_from.get_or_insert(index);
        self.replicate_needed = true;
        index
    }

    fn handle_propose(&mut self, id: RequestId, command: Bytes, out: &mut Vec<RaftOutput>) {
        if self.role != Role::Leader {
            return Self::respond_err(id, ClientError::NotLeader { leader: self.leader }, out);
        }
        if let Some(t) = self.transfer {
            return Self::respond_err(id, ClientError::Transferring { to: t.to }, out);
        }
        // One proposal is always accepted into an empty pipeline, so a single huge command can
        // still make progress; beyond that the bound holds.
        if self.uncommitted_bytes > 0 && self.uncommitted_bytes + command.len() + 24 > self.cfg.max_uncommitted_bytes {
            return Self::respond_err(id, ClientError::Overloaded, out);
        }
        let index = self.append_entry(EntryPayload::Command(command));
        self.pending_proposals.insert(index, (id, self.term));
    }

    fn handle_applied(&mut self, index: LogIndex) {
        // A driver can only report what it was given; anything else is a confused driver.
        if index > self.applied && index <= self.apply_sent {
            self.snapshot_note_applied(self.applied + 1, index);
            self.applied = index;
        }
    }

    /// Hands committed entries to the driver, answering proposals of older terms as
    /// indeterminate (their entry was replaced, or committed by another leader). Only entries
    /// durable here: one applied before its own copy is durable can be lost from this log by a
    /// crash while the state machine (or a snapshot of it) keeps it, and the restarted node
    /// would apply it again over a state that already holds it (a filtered delete re-run
    /// there removes points a later command wrote; sequence numbers shift). etcd's raft
    /// likewise applies only stable entries.
    fn emit_applies(&mut self, out: &mut Vec<RaftOutput>) {
        let limit = if InjectedBugs::on(self.bugs().apply_before_durable) {
            self.commit
        } else {
            self.commit.min(self.durable_index.max(self.apply_sent))
        };
        while self.apply_sent < limit {
            let index = self.apply_sent + 1;
            if index <= self.log.base_index() {
                // Compacted before it was applied: only a log compacted beyond what was applied
                // (the `compact_uncommitted` injected bug) gets here.
                self.apply_sent = self.log.base_index().min(self.commit);
                continue;
            }
            let Some(entry) = self.log.get(index) else {
                debug_assert!(false, "committed entry {index} missing from the log");
                return;
            };
            let entry = entry.clone();
            let request = match self.pending_proposals.remove(&index) {
                Some((id, term)) if term == entry.term => Some(id),
                Some((id, _)) => {
                    Self::respond_err(id, ClientError::Indeterminate, out);
                    None
                }
                None => None,
            };
            self.apply_sent = index;
            out.push(RaftOutput::Apply { entry, request });
        }
    }

    fn handle_persisted(&mut self, now: Time, seq: u64, out: &mut Vec<RaftOutput>) {
        if seq >= self.next_seq || seq <= self.persisted_seq {
            return; // unknown or already acknowledged: a confused driver, never trust it
        }
        self.persisted_seq = seq;
        while let Some(&(s, last)) = self.pending_writes.front() {
            if s > seq {
                break;
            }
            if let Some(l) = last {
                self.durable_index = self.durable_index.max(l);
            }
            self.pending_writes.pop_front();
        }
        debug_assert!(self.durable_index <= self.log.last_index());
        self.check_repaired();
        if let Some((term, vote_seq)) = self.self_vote
            && self.role == Role::Candidate
            && term == self.term
            && vote_seq <= seq
        {
            self.self_vote = None;
            self.votes.insert(self.cfg.id, true);
            self.check_vote_tally(now, out);
        }
    }

    /// A damaged node is whole again once it durably holds everything a leader of a later term
    /// had committed: every vote it may have lost was cast in a term at or below the damaged
    /// term, and every entry it may have lost is committed, so it is below that commit index.
    pub(super) fn check_repaired(&mut self) {
        if let (Some(_), Some(c)) = (self.damaged, self.repair_commit)
            && self.durable_index >= c
        {
            self.damaged = None;
            self.repair_commit = None;
        }
    }

    /// Emits the write for everything changed in this step, releases messages whose writes are
    /// durable, and moves commit/apply/reads forward.
    fn flush(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        self.reconfigure(now, out);
        if self.role == Role::Leader {
            if self.broadcast_needed {
                self.broadcast_round(now, out);
            } else if self.replicate_needed {
                for to in self.replicas.clone() {
                    if self.progress.get(&to).is_some_and(|p| p.replicating) {
                        self.send_append(now, to, false, out);
                    }
                }
            }
        }
        self.broadcast_needed = false;
        self.replicate_needed = false;
        if self.hard_state_dirty || self.unpersisted_from.is_some() || self.snapshot_dirty() {
            let snapshot = self.take_unpersisted_snapshot();
            let hard_state = self.hard_state_dirty.then_some(HardState { term: self.term, vote: self.vote });
            let entries = match self.unpersisted_from {
                Some(from) => self.log.slice(from, self.log.last_index(), usize::MAX),
                None => Vec::new(),
            };
            let last = entries.last().map(|e| e.index);
            let seq = self.next_seq;
            self.next_seq += 1;
            self.pending_writes.push_back((seq, last));
            self.hard_state_dirty = false;
            self.unpersisted_from = None;
            out.push(RaftOutput::Persist { seq, record: PersistRecord { group: self.cfg.group, hard_state, entries, snapshot } });
        }
        while self.deferred.front().is_some_and(|(s, _)| *s <= self.persisted_seq) {
            let (_, mut msg) = self.deferred.pop_front().expect("checked");
            // An answer held for the disk reports what is applied when it leaves, not when it
            // was queued (a long write can outlast many applies).
            if let MessageBody::AppendResponse { applied, .. } = &mut msg.body {
                *applied = self.applied;
            }
            out.push(RaftOutput::Send(msg));
        }
        self.maybe_commit();
        self.emit_applies(out);
        self.maybe_request_snapshot(out);
        self.advance_reads();
        self.serve_reads(out);
        // Reads that became pending during this flush (after our first commit) need their round.
        if self.broadcast_needed && self.role == Role::Leader {
            self.broadcast_needed = false;
            self.broadcast_round(now, out);
        }
    }
}

impl StateMachine for RaftNode {
    type Input = RaftInput;
    type Output = RaftOutput;

    fn step(&mut self, now: Time, input: RaftInput, out: &mut Vec<RaftOutput>) {
        let first = out.len();
        if let RaftInput::Message(msg) = &input
            && self.stale_for_sleeper(msg)
        {
            return;
        }
        if self.quiesce.quiesced
            && match &input {
                RaftInput::Message(m) => self.message_wakes(m),
                RaftInput::Propose { .. } | RaftInput::Read { .. } | RaftInput::TransferLeadership { .. } => true,
                _ => false,
            }
        {
            self.wake(now);
        }
        match input {
            RaftInput::Tick if self.quiesce.quiesced => {}
            RaftInput::Tick => {
                self.handle_tick(now, out);
                self.quiesce_after_tick();
            }
            RaftInput::Message(msg) => self.handle_message(now, msg, out),
            RaftInput::Persisted { seq } => self.handle_persisted(now, seq, out),
            RaftInput::Propose { id, command } => self.handle_propose(id, command, out),
            RaftInput::Read { id, mode } => self.handle_read(now, id, mode, out),
            RaftInput::Applied { index } => self.handle_applied(index),
            RaftInput::TransferLeadership { to } => self.start_transfer(now, to, out),
            RaftInput::ProposeConfChange { id, change } => self.handle_propose_conf_change(id, change, out),
            RaftInput::SnapshotTaken { meta } => self.handle_snapshot_taken(meta),
            RaftInput::SnapshotChunk { to, index, offset, data } => self.handle_snapshot_chunk(to, index, offset, data, out),
            RaftInput::SnapshotInstalled { meta } => self.handle_snapshot_installed(meta, out),
            RaftInput::SnapshotRejected { meta } => self.handle_snapshot_rejected(meta, out),
        }
        self.flush(now, out);
        self.forget_mark_if_overtaken(&out[first..]);
    }
}
