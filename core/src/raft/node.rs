//! The Raft node state machine.

use super::config::{InjectedBugs, RaftConfig};
use super::log::RaftLog;
use super::message::{
    ClientError, ClientResponse, Entry, EntryPayload, HardState, LogIndex, Message, MessageBody, RejectHint,
    RequestId, Term,
};
use super::storage::{DurableState, PersistRecord};
use crate::contract::{NodeId, StateMachine, Time};
use crate::quorum::{JointQuorum, VoteResult};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The application Raft replicates: deterministic, so every replica that applies the same
/// commands in the same order reaches the same state.
pub trait ReplicatedStateMachine {
    /// Applies a committed command and returns the answer for the client that proposed it.
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Vec<u8>;
    /// Answers a read-only query from the applied state.
    fn query(&self, query: &[u8]) -> Vec<u8>;
}

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
    /// Time passed; the `now` given to `step` is the node's clock.
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
        /// Echoed in the response.
        id: RequestId,
        /// Opaque command for the state machine.
        command: Vec<u8>,
    },
    /// A client asks for a linearizable read.
    Read {
        /// Echoed in the response.
        id: RequestId,
        /// Opaque query for the state machine.
        query: Vec<u8>,
        /// How to make it linearizable.
        mode: ReadMode,
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
    /// Answer a client.
    Respond(ClientResponse),
    /// The entry at `index` (of `term`) was applied to the state machine.
    Applied {
        /// Its index.
        index: LogIndex,
        /// Its term.
        term: Term,
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
struct Progress {
    /// Highest index known to be durable on the follower and equal to ours.
    match_index: LogIndex,
    /// Next index to send.
    next_index: LogIndex,
    /// Pipelining (`true`) or probing for the match point (`false`, one message at a time).
    replicating: bool,
    /// Last index of each append batch in flight (replicating only).
    inflight: VecDeque<LogIndex>,
    /// When we last saw this follower make progress (or last started a flight).
    last_progress: Time,
    /// Highest heartbeat round the follower has acknowledged in this term.
    acked_round: u64,
    /// Whether the follower answered since the last check-quorum.
    recent_active: bool,
}

#[derive(Clone, Debug)]
struct PendingRead {
    id: RequestId,
    query: Vec<u8>,
    /// Commit index when the read arrived; the read is served once applied reaches it.
    index: LogIndex,
    /// Heartbeat round that must be acknowledged by a quorum first (0 = already confirmed).
    round: u64,
}

/// A Raft node for one group: see the module documentation for how to drive it.
pub struct RaftNode<S> {
    cfg: RaftConfig,
    quorum: JointQuorum,
    peers: Vec<NodeId>,
    sm: S,
    rng: ChaCha8Rng,

    // Durable (once acknowledged) state.
    term: Term,
    vote: Option<NodeId>,
    log: RaftLog,

    // Volatile state.
    role: Role,
    leader: Option<NodeId>,
    commit: LogIndex,
    applied: LogIndex,
    election_deadline: Time,
    heartbeat_deadline: Time,
    check_quorum_deadline: Time,
    /// Vote requests are ignored until then (check-quorum stickiness; also set at restart).
    stickiness_until: Time,
    votes: BTreeMap<NodeId, bool>,
    /// Candidate's own vote: counted only once the write recording it is durable.
    self_vote: Option<(Term, u64)>,
    progress: BTreeMap<NodeId, Progress>,

    // Persistence tracking.
    next_seq: u64,
    persisted_seq: u64,
    /// Writes not yet acknowledged: (seq, last log index they make durable, capped by later
    /// truncations).
    pending_writes: VecDeque<(u64, Option<LogIndex>)>,
    /// Our log is durable, in its current form, up to here.
    durable_index: LogIndex,
    /// Messages that may leave only once the write `seq` is durable.
    deferred: VecDeque<(u64, Message)>,
    hard_state_dirty: bool,
    unpersisted_from: Option<LogIndex>,

    // Leader state.
    pending_proposals: BTreeMap<LogIndex, (RequestId, Term)>,
    round: u64,
    round_sent_at: VecDeque<(u64, Time)>,
    lease_until: Time,
    own_term_committed: bool,
    reads_waiting_commit: Vec<(RequestId, Vec<u8>, ReadMode)>,
    pending_reads: Vec<PendingRead>,
    broadcast_needed: bool,
    replicate_needed: bool,
}

impl<S: ReplicatedStateMachine> RaftNode<S> {
    /// Builds a node from its configuration and whatever durable state survived (empty on first
    /// boot). `now` is the node's clock at start.
    ///
    /// Panics if `cfg` is invalid (see [`RaftConfig::validate`]): configurations are checked by
    /// the caller at its boundary, this is a programming error.
    pub fn new(cfg: RaftConfig, sm: S, durable: DurableState, now: Time) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("invalid RaftConfig: {e}");
        }
        let quorum = JointQuorum::simple(cfg.voters.iter().copied());
        let peers = quorum.voters().into_iter().filter(|&v| v != cfg.id).collect();
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ cfg.id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let log = RaftLog::from_entries(durable.entries);
        let durable_index = log.last_index();
        // After a restart we do not remember whether we recently heard from a leader, so we act
        // as if we had: a lease granted before the crash must not be undercut by our vote.
        let stickiness_until = if cfg.check_quorum { now + cfg.election_timeout_min } else { now };
        let mut node = RaftNode {
            quorum,
            peers,
            sm,
            rng,
            term: durable.hard_state.term,
            vote: durable.hard_state.vote,
            log,
            role: Role::Follower,
            leader: None,
            commit: 0,
            applied: 0,
            election_deadline: now,
            heartbeat_deadline: now,
            check_quorum_deadline: now,
            stickiness_until,
            votes: BTreeMap::new(),
            self_vote: None,
            progress: BTreeMap::new(),
            next_seq: 1,
            persisted_seq: 0,
            pending_writes: VecDeque::new(),
            durable_index,
            deferred: VecDeque::new(),
            hard_state_dirty: false,
            unpersisted_from: None,
            pending_proposals: BTreeMap::new(),
            round: 0,
            round_sent_at: VecDeque::new(),
            lease_until: Time::ZERO,
            own_term_committed: false,
            reads_waiting_commit: Vec::new(),
            pending_reads: Vec::new(),
            broadcast_needed: false,
            replicate_needed: false,
            cfg,
        };
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
    /// Highest index known committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }
    /// Highest index applied to the state machine.
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }
    /// Highest index of our log known durable.
    pub fn durable_index(&self) -> LogIndex {
        self.durable_index
    }
    /// The in-memory log (durable or not).
    pub fn log(&self) -> &RaftLog {
        &self.log
    }
    /// The replicated state machine.
    pub fn state_machine(&self) -> &S {
        &self.sm
    }
    /// The configuration.
    pub fn config(&self) -> &RaftConfig {
        &self.cfg
    }
    /// Whether a lease read at `now` would be served without a round trip.
    pub fn lease_valid(&self, now: Time) -> bool {
        self.role == Role::Leader && self.lease_allowed() && self.own_term_committed && now < self.lease_until
    }

    fn bugs(&self) -> InjectedBugs {
        self.cfg.bugs
    }

    fn lease_allowed(&self) -> bool {
        self.cfg.lease_reads && self.cfg.check_quorum
    }

    /// How long a quorum acknowledgement keeps the lease, on our clock: the followers' election
    /// timeout, shrunk by the worst relative clock-rate error in both directions.
    fn lease_duration(&self) -> Duration {
        let d = self.cfg.max_clock_drift;
        self.cfg.election_timeout_min.mul_f64((1.0 - d) / (1.0 + d))
    }

    fn reset_election_deadline(&mut self, now: Time) {
        let min = self.cfg.election_timeout_min.as_nanos() as u64;
        let max = self.cfg.election_timeout_max.as_nanos() as u64;
        let jitter = self.rng.random_range(0..max - min);
        self.election_deadline = Time(now.0 + min + jitter);
    }

    fn send(&mut self, to: NodeId, body: MessageBody, out: &mut Vec<RaftOutput>) {
        let msg = Message { group: self.cfg.group, from: self.cfg.id, to, term: self.term, body };
        out.push(RaftOutput::Send(msg));
    }

    /// Queues a message that must not leave before everything written so far is durable.
    fn send_after_persist(&mut self, to: NodeId, body: MessageBody, out: &mut Vec<RaftOutput>) {
        if InjectedBugs::on(self.bugs().ack_before_persist) {
            return self.send(to, body, out);
        }
        let msg = Message { group: self.cfg.group, from: self.cfg.id, to, term: self.term, body };
        let dirty = self.hard_state_dirty || self.unpersisted_from.is_some();
        let requires = if dirty { self.next_seq } else { self.next_seq - 1 };
        self.deferred.push_back((requires, msg));
    }

    fn set_term(&mut self, term: Term) {
        debug_assert!(term >= self.term, "terms never go backwards");
        if term != self.term {
            self.term = term;
            self.vote = None;
            self.hard_state_dirty = true;
        }
    }

    fn become_follower(&mut self, now: Time, term: Term, leader: Option<NodeId>, out: &mut Vec<RaftOutput>) {
        let was_leader = self.role == Role::Leader;
        self.set_term(term);
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.self_vote = None;
        if was_leader {
            self.step_down_cleanup(out);
        }
        self.reset_election_deadline(now);
    }

    /// Answers everything a leader was holding for clients when it loses leadership.
    fn step_down_cleanup(&mut self, out: &mut Vec<RaftOutput>) {
        self.progress.clear();
        self.round_sent_at.clear();
        self.lease_until = Time::ZERO;
        self.own_term_committed = false;
        for (_, (id, _)) in std::mem::take(&mut self.pending_proposals) {
            out.push(RaftOutput::Respond(ClientResponse { id, result: Err(ClientError::Indeterminate) }));
        }
        let leader = self.leader;
        let reads = std::mem::take(&mut self.pending_reads).into_iter().map(|r| r.id);
        let waiting = std::mem::take(&mut self.reads_waiting_commit).into_iter().map(|r| r.0);
        for id in reads.chain(waiting) {
            out.push(RaftOutput::Respond(ClientResponse { id, result: Err(ClientError::NotLeader { leader }) }));
        }
    }

    fn campaign(&mut self, now: Time, pre: bool, out: &mut Vec<RaftOutput>) {
        self.leader = None;
        self.votes.clear();
        self.reset_election_deadline(now);
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        if pre {
            self.role = Role::PreCandidate;
            self.self_vote = None;
            self.votes.insert(self.cfg.id, true);
            let term = self.term + 1;
            for to in self.peers.clone() {
                let msg = Message {
                    group: self.cfg.group,
                    from: self.cfg.id,
                    to,
                    term,
                    body: MessageBody::PreVote { last_index, last_term },
                };
                out.push(RaftOutput::Send(msg));
            }
            self.check_pre_vote_tally(now, out);
        } else {
            self.role = Role::Candidate;
            let term = self.term + 1;
            self.set_term(term);
            self.vote = Some(self.cfg.id);
            self.hard_state_dirty = true;
            // Our own vote counts once the write that records it is durable.
            self.self_vote = Some((self.term, self.next_seq));
            for to in self.peers.clone() {
                self.send(to, MessageBody::Vote { last_index, last_term }, out);
            }
        }
    }

    fn check_pre_vote_tally(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        match self.quorum.vote_result(|v| self.votes.get(&v).copied()) {
            VoteResult::Won => self.campaign(now, false, out),
            VoteResult::Lost => {
                self.role = Role::Follower;
                self.votes.clear();
            }
            VoteResult::Pending => {}
        }
    }

    fn check_vote_tally(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        match self.quorum.vote_result(|v| self.votes.get(&v).copied()) {
            // Peers alone may form a quorum, but we must not lead before our own (term, vote)
            // is durable: a crash would bring us back in an older term, free to campaign for
            // (and win) this term again with a different log. `handle_persisted` re-tallies.
            VoteResult::Won if self.votes.get(&self.cfg.id) == Some(&true) => self.become_leader(now),
            VoteResult::Won => {}
            VoteResult::Lost => self.become_follower(now, self.term, None, out),
            VoteResult::Pending => {}
        }
    }

    fn become_leader(&mut self, now: Time) {
        debug_assert!(
            self.vote == Some(self.cfg.id) || InjectedBugs::on(self.bugs().vote_twice),
            "a leader voted for itself in its term"
        );
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.votes.clear();
        self.self_vote = None;
        let next = self.log.last_index() + 1;
        self.progress = self
            .peers
            .iter()
            .map(|&p| {
                (p, Progress {
                    match_index: 0,
                    next_index: next,
                    replicating: false,
                    inflight: VecDeque::new(),
                    last_progress: now,
                    acked_round: 0,
                    recent_active: true,
                })
            })
            .collect();
        self.own_term_committed = false;
        self.lease_until = Time::ZERO;
        self.check_quorum_deadline = now + self.cfg.election_timeout_min;
        self.append_entry(EntryPayload::Noop);
        self.broadcast_needed = true;
    }

    fn append_entry(&mut self, payload: EntryPayload) -> LogIndex {
        let index = self.log.last_index() + 1;
        self.log.push(Entry { term: self.term, index, payload });
        self.unpersisted_from.get_or_insert(index);
        self.replicate_needed = true;
        index
    }

    /// Cuts our log at `index`, keeping durability bookkeeping honest: nothing at or after the
    /// cut counts as durable until rewritten.
    fn truncate_log(&mut self, index: LogIndex) {
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

    fn in_lease(&self, now: Time) -> bool {
        self.cfg.check_quorum && (self.role == Role::Leader || now < self.stickiness_until)
    }

    fn handle_message(&mut self, now: Time, msg: Message, out: &mut Vec<RaftOutput>) {
        if msg.group != self.cfg.group || msg.to != self.cfg.id || !self.quorum.contains(msg.from) || msg.from == self.cfg.id {
            return; // not for us, or from a stranger: ignore, never trust
        }
        if msg.term == Term::MAX {
            return; // no term can follow it: adopting it would make our next campaign overflow
        }
        if msg.term > self.term {
            match &msg.body {
                MessageBody::PreVote { .. } => {}
                MessageBody::PreVoteResponse { granted: true } => {}
                MessageBody::Vote { .. } if self.in_lease(now) => return,
                MessageBody::Append { .. } => self.become_follower(now, msg.term, Some(msg.from), out),
                _ => self.become_follower(now, msg.term, None, out),
            }
        } else if msg.term < self.term {
            match &msg.body {
                MessageBody::Append { round, .. } => {
                    let round = *round;
                    self.send(
                        msg.from,
                        MessageBody::AppendResponse { success: false, match_index: 0, reject: None, round },
                        out,
                    );
                }
                MessageBody::PreVote { .. } => {
                    self.send(msg.from, MessageBody::PreVoteResponse { granted: false }, out);
                }
                _ => {}
            }
            return;
        }
        match msg.body {
            MessageBody::PreVote { last_index, last_term } => {
                let granted = msg.term > self.term && !self.in_lease(now) && self.log.is_up_to_date(last_index, last_term);
                let m = Message {
                    group: self.cfg.group,
                    from: self.cfg.id,
                    to: msg.from,
                    term: if granted { msg.term } else { self.term },
                    body: MessageBody::PreVoteResponse { granted },
                };
                out.push(RaftOutput::Send(m));
            }
            MessageBody::PreVoteResponse { granted } => {
                if self.role == Role::PreCandidate && msg.term == self.term + 1 {
                    self.votes.insert(msg.from, granted);
                    self.check_pre_vote_tally(now, out);
                }
            }
            MessageBody::Vote { last_index, last_term } => {
                let free = self.vote.is_none() || self.vote == Some(msg.from) || InjectedBugs::on(self.bugs().vote_twice);
                let granted = free && self.role != Role::Leader && self.log.is_up_to_date(last_index, last_term);
                if granted {
                    if self.vote != Some(msg.from) {
                        self.vote = Some(msg.from);
                        self.hard_state_dirty = true;
                    }
                    self.reset_election_deadline(now);
                    self.send_after_persist(msg.from, MessageBody::VoteResponse { granted: true }, out);
                } else {
                    self.send(msg.from, MessageBody::VoteResponse { granted: false }, out);
                }
            }
            MessageBody::VoteResponse { granted } => {
                if self.role == Role::Candidate {
                    self.votes.insert(msg.from, granted);
                    self.check_vote_tally(now, out);
                }
            }
            MessageBody::Append { prev_index, prev_term, entries, commit, round } => {
                self.handle_append(now, msg.from, prev_index, prev_term, entries, commit, round, out);
            }
            MessageBody::AppendResponse { success, match_index, reject, round } => {
                self.handle_append_response(now, msg.from, success, match_index, reject, round, out);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_append(
        &mut self,
        now: Time,
        from: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: LogIndex,
        round: u64,
        out: &mut Vec<RaftOutput>,
    ) {
        if self.role == Role::Leader {
            // Two leaders in one term cannot happen with correct voters; refuse rather than corrupt.
            return;
        }
        if self.role != Role::Follower {
            self.become_follower(now, self.term, Some(from), out);
        }
        self.leader = Some(from);
        self.stickiness_until = now + self.cfg.election_timeout_min;
        self.reset_election_deadline(now);

        // Validate the shape before trusting anything.
        // (checked: `prev_index` comes off the wire and may be anything, u64::MAX included)
        let contiguous = entries
            .iter()
            .enumerate()
            .all(|(i, e)| prev_index.checked_add(1 + i as u64) == Some(e.index) && e.term <= self.term);
        if !contiguous {
            return;
        }
        if self.log.term_at(prev_index) != Some(prev_term) {
            let hint = if prev_index > self.log.last_index() {
                RejectHint { conflict_term: None, conflict_index: self.log.last_index() + 1 }
            } else {
                RejectHint {
                    conflict_term: self.log.term_at(prev_index),
                    conflict_index: self.log.first_index_of_term_run(prev_index),
                }
            };
            self.send(
                from,
                MessageBody::AppendResponse { success: false, match_index: 0, reject: Some((prev_index, hint)), round },
                out,
            );
            return;
        }
        let match_index = prev_index + entries.len() as u64;
        let mut to_append = entries.len();
        for (i, e) in entries.iter().enumerate() {
            match self.log.term_at(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    if e.index <= self.commit {
                        // A leader asking us to overwrite a committed entry is broken; refuse.
                        return;
                    }
                    self.truncate_log(e.index);
                    to_append = i;
                    break;
                }
                None => {
                    to_append = i;
                    break;
                }
            }
        }
        if to_append < entries.len() {
            for e in entries.into_iter().skip(to_append) {
                let index = e.index;
                self.log.push(e);
                self.unpersisted_from.get_or_insert(index);
            }
        }
        let new_commit = commit.min(match_index);
        if new_commit > self.commit {
            self.commit = new_commit;
        }
        self.send_after_persist(
            from,
            MessageBody::AppendResponse { success: true, match_index, reject: None, round },
            out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_append_response(
        &mut self,
        now: Time,
        from: NodeId,
        success: bool,
        match_index: LogIndex,
        reject: Option<(LogIndex, RejectHint)>,
        round: u64,
        out: &mut Vec<RaftOutput>,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(round.min(self.round));
        if success {
            if match_index > last_index {
                return; // claims entries we never sent: ignore
            }
            if match_index > pr.match_index {
                pr.match_index = match_index;
                pr.last_progress = now;
            }
            pr.next_index = pr.next_index.max(pr.match_index + 1);
            while pr.inflight.front().is_some_and(|&l| l <= pr.match_index) {
                pr.inflight.pop_front();
            }
            if !pr.replicating {
                pr.replicating = true;
                pr.inflight.clear();
                pr.next_index = pr.match_index + 1;
            }
            self.replicate_needed = true;
        } else if let Some((rejected_prev, hint)) = reject {
            // We never send a prev_index beyond our log: such a rejection is garbage, and
            // following its hint would move next_index where no append can be built.
            // A rejection at or below the match index is stale too (the follower durably
            // acknowledged that far). Treating it as fresh would leave `next_index` where it is
            // and re-probe at once: a livelock that duplicated packets turn into a storm. So
            // every accepted rejection strictly moves `next_index` back.
            let stale = rejected_prev > last_index
                || rejected_prev <= pr.match_index
                || (!pr.replicating && rejected_prev + 1 != pr.next_index);
            if stale {
                return;
            }
            let candidate = match hint.conflict_term {
                Some(t) => match self.log.last_index_of_term(t) {
                    Some(i) => i + 1,
                    None => hint.conflict_index,
                },
                None => hint.conflict_index,
            };
            let pr = self.progress.get_mut(&from).expect("checked above");
            pr.replicating = false;
            pr.inflight.clear();
            pr.next_index = candidate.clamp(pr.match_index + 1, rejected_prev.max(pr.match_index + 1));
            self.send_append(now, from, true, out);
        }
        self.advance_reads();
    }

    /// Sends what `to` needs: in probe mode one append at `next_index` (empty if caught up), in
    /// replicating mode batches while the window allows.
    fn send_append(&mut self, now: Time, to: NodeId, probe_now: bool, out: &mut Vec<RaftOutput>) {
        let last = self.log.last_index();
        let (max_inflight, max_batch, round, commit) =
            (self.cfg.max_inflight, self.cfg.max_batch_entries, self.round, self.commit);
        let Some(pr) = self.progress.get_mut(&to) else { return };
        let mut msgs = Vec::new();
        if pr.replicating {
            while pr.inflight.len() < max_inflight && pr.next_index <= last {
                let prev_index = pr.next_index - 1;
                let entries = self.log.slice(pr.next_index, last, max_batch);
                let batch_last = entries.last().map_or(prev_index, |e| e.index);
                if pr.inflight.is_empty() {
                    pr.last_progress = now;
                }
                pr.inflight.push_back(batch_last);
                pr.next_index = batch_last + 1;
                msgs.push((prev_index, entries));
            }
        } else if probe_now {
            let prev_index = pr.next_index - 1;
            let entries = self.log.slice(pr.next_index, last, max_batch);
            msgs.push((prev_index, entries));
        }
        for (prev_index, entries) in msgs {
            let Some(prev_term) = self.log.term_at(prev_index) else { continue };
            self.send(to, MessageBody::Append { prev_index, prev_term, entries, commit, round }, out);
        }
    }

    fn send_heartbeat(&mut self, to: NodeId, out: &mut Vec<RaftOutput>) {
        let Some(pr) = self.progress.get(&to) else { return };
        let prev_index = pr.match_index;
        let Some(prev_term) = self.log.term_at(prev_index) else { return };
        let body = MessageBody::Append { prev_index, prev_term, entries: Vec::new(), commit: self.commit, round: self.round };
        self.send(to, body, out);
    }

    /// Starts a new heartbeat round: every follower hears from us once, carrying the round, and
    /// stalled or probing followers are retried (the network does not retransmit for us).
    fn broadcast_round(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        self.round += 1;
        self.round_sent_at.push_back((self.round, now));
        self.heartbeat_deadline = now + self.cfg.heartbeat_interval;
        let stall = self.cfg.heartbeat_interval * 2;
        for to in self.peers.clone() {
            let pr = self.progress.get_mut(&to).expect("leader has progress for every peer");
            if pr.replicating && !pr.inflight.is_empty() && now.saturating_since(pr.last_progress) >= stall {
                // A batch was lost: fall back to probing from what we know they hold.
                pr.replicating = false;
                pr.inflight.clear();
                pr.next_index = pr.match_index + 1;
            }
            if !pr.replicating {
                self.send_append(now, to, true, out);
            } else {
                let sent_data = pr.inflight.len() < self.cfg.max_inflight && pr.next_index <= self.log.last_index();
                if sent_data {
                    self.send_append(now, to, false, out);
                } else {
                    self.send_heartbeat(to, out);
                }
            }
        }
        if self.peers.is_empty() {
            self.advance_reads();
        }
    }

    fn handle_propose(&mut self, id: RequestId, command: Vec<u8>, out: &mut Vec<RaftOutput>) {
        if self.role != Role::Leader {
            let leader = self.leader;
            out.push(RaftOutput::Respond(ClientResponse { id, result: Err(ClientError::NotLeader { leader }) }));
            return;
        }
        let index = self.append_entry(EntryPayload::Command(command));
        self.pending_proposals.insert(index, (id, self.term));
    }

    fn handle_read(&mut self, now: Time, id: RequestId, query: Vec<u8>, mode: ReadMode, out: &mut Vec<RaftOutput>) {
        if self.role != Role::Leader {
            let leader = self.leader;
            out.push(RaftOutput::Respond(ClientResponse { id, result: Err(ClientError::NotLeader { leader }) }));
            return;
        }
        if !self.own_term_committed {
            // Our commit index may lag the true one until an entry of our term commits (§8).
            self.reads_waiting_commit.push((id, query, mode));
            return;
        }
        self.register_read(now, id, query, mode);
    }

    fn register_read(&mut self, now: Time, id: RequestId, query: Vec<u8>, mode: ReadMode) {
        let lease = mode == ReadMode::Lease && self.lease_valid(now);
        self.enqueue_read(id, query, lease);
    }

    /// Queues a read at the current commit index. Unless `confirmed` (a valid lease), it waits for a
    /// heartbeat round sent after it arrived to be acknowledged by a quorum.
    fn enqueue_read(&mut self, id: RequestId, query: Vec<u8>, confirmed: bool) {
        let confirmed = confirmed || InjectedBugs::on(self.bugs().read_without_quorum) || self.peers.is_empty();
        let round = if confirmed {
            0
        } else {
            self.broadcast_needed = true;
            self.round + 1
        };
        self.pending_reads.push(PendingRead { id, query, index: self.commit, round });
    }

    /// Confirms reads whose heartbeat round a quorum acknowledged and extends the lease.
    fn advance_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let me = self.cfg.id;
        let confirmed = self.quorum.committed_index(|v| {
            if v == me { Some(self.round) } else { self.progress.get(&v).map(|p| p.acked_round) }
        });
        // The lease runs from the *send* time of the newest round a quorum acknowledged: every
        // member of that quorum heard from us after that instant and will refuse votes for an
        // election timeout (on its own clock) afterwards.
        let mut newest_sent = None;
        while let Some(&(r, sent)) = self.round_sent_at.front() {
            if r > confirmed {
                break;
            }
            newest_sent = Some(sent);
            self.round_sent_at.pop_front();
        }
        if let Some(sent) = newest_sent {
            self.lease_until = self.lease_until.max(sent + self.lease_duration());
        }
        for read in self.pending_reads.iter_mut() {
            if read.round != 0 && read.round <= confirmed {
                read.round = 0;
            }
        }
    }

    fn maybe_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let me = self.cfg.id;
        let durable = self.durable_index;
        let mut candidate = self.quorum.committed_index(|v| {
            if v == me { Some(durable) } else { self.progress.get(&v).map(|p| p.match_index) }
        });
        if InjectedBugs::on(self.bugs().commit_without_quorum) {
            candidate = durable;
        }
        // Raft §5.4.2: only entries of our own term are committed by counting replicas.
        if candidate > self.commit && self.log.term_at(candidate) == Some(self.term) {
            self.commit = candidate;
            if !self.own_term_committed {
                self.own_term_committed = true;
                // No lease can be valid yet at this point, so these reads all take a round.
                for (id, query, _mode) in std::mem::take(&mut self.reads_waiting_commit) {
                    self.enqueue_read(id, query, false);
                }
            }
        }
    }

    fn apply_committed(&mut self, out: &mut Vec<RaftOutput>) {
        while self.applied < self.commit {
            let index = self.applied + 1;
            let Some(entry) = self.log.get(index) else {
                debug_assert!(false, "committed entry {index} missing from the log");
                return;
            };
            let (term, result) = match &entry.payload {
                EntryPayload::Noop => (entry.term, Vec::new()),
                EntryPayload::Command(cmd) => {
                    let term = entry.term;
                    let cmd = cmd.clone();
                    (term, self.sm.apply(index, &cmd))
                }
            };
            self.applied = index;
            out.push(RaftOutput::Applied { index, term });
            if let Some((id, proposed_term)) = self.pending_proposals.remove(&index) {
                let result = if proposed_term == term { Ok(result) } else { Err(ClientError::Indeterminate) };
                out.push(RaftOutput::Respond(ClientResponse { id, result }));
            }
        }
    }

    fn serve_reads(&mut self, out: &mut Vec<RaftOutput>) {
        let applied = self.applied;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.pending_reads).into_iter().partition(|r| r.round == 0 && r.index <= applied);
        self.pending_reads = waiting;
        for r in ready {
            let answer = self.sm.query(&r.query);
            out.push(RaftOutput::Respond(ClientResponse { id: r.id, result: Ok(answer) }));
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

    fn handle_tick(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        match self.role {
            Role::Leader => {
                if self.cfg.check_quorum && now >= self.check_quorum_deadline {
                    let me = self.cfg.id;
                    let active = self
                        .quorum
                        .is_active(|v| v == me || self.progress.get(&v).is_some_and(|p| p.recent_active));
                    for p in self.progress.values_mut() {
                        p.recent_active = false;
                    }
                    self.check_quorum_deadline = now + self.cfg.election_timeout_min;
                    if !active {
                        self.become_follower(now, self.term, None, out);
                        return;
                    }
                }
                if now >= self.heartbeat_deadline {
                    self.broadcast_needed = true;
                }
            }
            Role::Follower | Role::PreCandidate | Role::Candidate => {
                if now >= self.election_deadline {
                    self.campaign(now, self.cfg.pre_vote, out);
                }
            }
        }
    }

    /// Emits the write for everything changed in this step, releases messages whose writes are
    /// durable, and moves commit/apply/reads forward.
    fn flush(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        if self.role == Role::Leader {
            if self.broadcast_needed {
                self.broadcast_round(now, out);
            } else if self.replicate_needed {
                for to in self.peers.clone() {
                    if self.progress.get(&to).is_some_and(|p| p.replicating) {
                        self.send_append(now, to, false, out);
                    }
                }
            }
        }
        self.broadcast_needed = false;
        self.replicate_needed = false;
        if self.hard_state_dirty || self.unpersisted_from.is_some() {
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
            out.push(RaftOutput::Persist { seq, record: PersistRecord { hard_state, entries } });
        }
        while self.deferred.front().is_some_and(|(s, _)| *s <= self.persisted_seq) {
            let (_, msg) = self.deferred.pop_front().expect("checked");
            out.push(RaftOutput::Send(msg));
        }
        self.maybe_commit();
        self.apply_committed(out);
        self.advance_reads();
        self.serve_reads(out);
        // Reads that became pending during this flush (after our first commit) need their round.
        if self.broadcast_needed && self.role == Role::Leader {
            self.broadcast_needed = false;
            self.broadcast_round(now, out);
        }
    }
}

impl<S: ReplicatedStateMachine> StateMachine for RaftNode<S> {
    type Input = RaftInput;
    type Output = RaftOutput;

    fn step(&mut self, now: Time, input: RaftInput, out: &mut Vec<RaftOutput>) {
        match input {
            RaftInput::Tick => self.handle_tick(now, out),
            RaftInput::Message(msg) => self.handle_message(now, msg, out),
            RaftInput::Persisted { seq } => self.handle_persisted(now, seq, out),
            RaftInput::Propose { id, command } => self.handle_propose(id, command, out),
            RaftInput::Read { id, query, mode } => self.handle_read(now, id, query, mode, out),
        }
        self.flush(now, out);
    }
}
