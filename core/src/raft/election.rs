//! Terms, elections and timers: pre-vote, votes with check-quorum stickiness, becoming leader or
//! follower, and the dispatch of incoming messages by term.

use super::config::InjectedBugs;
use super::message::{ClientError, LogIndex, Message, MessageBody, Term};
use super::node::{Progress, RaftNode, RaftOutput, Role};
use crate::contract::{NodeId, Time};
use crate::quorum::VoteResult;
use rand::RngExt;
use std::time::Duration;

impl RaftNode {
    pub(super) fn reset_election_deadline(&mut self, now: Time) {
        let min = self.cfg.election_timeout_min.as_nanos() as u64;
        let max = self.cfg.election_timeout_max.as_nanos() as u64;
        let jitter = self.rng.random_range(0..max - min);
        self.election_deadline = Time(now.0 + min + jitter);
        self.campaign_held = false;
    }

    /// How much longer than its election timeout this voter waits before campaigning: in
    /// proportion to the committed entries its state machine has not applied yet, capped (see
    /// `RaftConfig::unapplied_campaign_hold`).
    pub(super) fn unapplied_campaign_hold(&self) -> Duration {
        if InjectedBugs::on(self.bugs().campaign_ignores_unapplied) {
            return Duration::ZERO;
        }
        let unapplied = self.commit.saturating_sub(self.applied);
        let per = self.cfg.unapplied_campaign_hold.as_nanos();
        let hold = (unapplied as u128).saturating_mul(per);
        Duration::from_nanos(hold.min(self.cfg.max_unapplied_campaign_hold.as_nanos()) as u64)
    }

    fn set_term(&mut self, term: Term) {
        debug_assert!(term >= self.term, "terms never go backwards");
        if term != self.term {
            self.term = term;
            self.vote = None;
            self.hard_state_dirty = true;
            // A new term starts with a clean lease slate: only a transfer in *this* term can
            // undercut a lease granted in it.
            self.lease_forfeited = false;
        }
    }

    pub(super) fn become_follower(&mut self, now: Time, term: Term, leader: Option<NodeId>, out: &mut Vec<RaftOutput>) {
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
        self.clear_snapshot_sends();
        self.round_sent_at.clear();
        self.lease_until = Time::ZERO;
        self.own_term_committed = false;
        self.transfer = None;
        self.uncommitted_bytes = 0;
        for (_, (id, _)) in std::mem::take(&mut self.pending_proposals) {
            Self::respond_err(id, ClientError::Indeterminate, out);
        }
        let leader = self.leader;
        let reads = std::mem::take(&mut self.pending_reads).into_iter().map(|r| r.id);
        let waiting = std::mem::take(&mut self.reads_waiting_commit).into_iter().map(|r| r.0);
        for id in reads.chain(waiting) {
            Self::respond_err(id, ClientError::NotLeader { leader }, out);
        }
    }

    /// Starts a (pre-)campaign. `transfer` marks a campaign the old leader asked for.
    pub(super) fn campaign(&mut self, now: Time, pre: bool, transfer: bool, out: &mut Vec<RaftOutput>) {
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
                self.send(to, MessageBody::Vote { last_index, last_term, transfer }, out);
            }
        }
    }

    fn check_pre_vote_tally(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        match self.quorum.vote_result(|v| self.votes.get(&v).copied()) {
            VoteResult::Won => self.campaign(now, false, false, out),
            VoteResult::Lost => {
                self.role = Role::Follower;
                self.votes.clear();
            }
            VoteResult::Pending => {}
        }
    }

    pub(super) fn check_vote_tally(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
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
        // Any entry of our log may be an unapplied configuration change (etcd does the same).
        self.pending_conf_index = self.log.last_index();
        self.progress = self
            .replicas
            .iter()
            .map(|&p| {
                (p, Progress::fresh(next, now))
            })
            .collect();
        self.own_term_committed = false;
        self.lease_until = Time::ZERO;
        self.uncommitted_bytes = 0;
        self.transfer = None;
        self.check_quorum_deadline = now + self.cfg.election_timeout_min;
        self.append_entry(super::message::EntryPayload::Noop);
        self.broadcast_needed = true;
    }

    /// Whether we still honour a leader's lease (or hold one): vote requests are refused then.
    pub(super) fn in_lease(&self, now: Time) -> bool {
        self.cfg.check_quorum && (self.role == Role::Leader || now < self.stickiness_until)
    }

    pub(super) fn handle_message(&mut self, now: Time, msg: Message, out: &mut Vec<RaftOutput>) {
        if msg.group != self.cfg.group || msg.to != self.cfg.id || !self.accepts_from(&msg) || msg.from == self.cfg.id {
            return; // not for us, or a vote request from a non-voter: ignore, never trust
        }
        if msg.term == Term::MAX {
            return; // no term can follow it: adopting it would make our next campaign overflow
        }
        if msg.term > self.term {
            match &msg.body {
                MessageBody::PreVote { .. } => {}
                MessageBody::PreVoteResponse { granted: true } => {}
                MessageBody::Vote { transfer, .. } if self.in_lease(now) && !transfer => return,
                MessageBody::Append { .. } => self.become_follower(now, msg.term, Some(msg.from), out),
                MessageBody::InstallSnapshot { .. } => self.become_follower(now, msg.term, Some(msg.from), out),
                _ => self.become_follower(now, msg.term, None, out),
            }
        } else if msg.term < self.term {
            match &msg.body {
                MessageBody::Append { round, .. } => {
                    // The round belongs to an older leadership (perhaps a previous incarnation of
                    // today's leader, whose rounds restarted from zero): echoing it would let a
                    // long-delayed heartbeat confirm a read of a later leadership.
                    let round = if InjectedBugs::on(self.bugs().stale_round_ack) { *round } else { 0 };
                    let body = MessageBody::AppendResponse { success: false, match_index: 0, reject: None, round, reset: false, applied: self.applied };
                    self.send(msg.from, body, out);
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
                let granted = msg.term > self.term
                    && !self.in_lease(now)
                    && self.damaged.is_none()
                    && self.log.is_up_to_date(last_index, last_term);
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
            MessageBody::Vote { last_index, last_term, transfer } => {
                self.handle_vote(now, msg.from, last_index, last_term, transfer, out)
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
            MessageBody::AppendResponse { success, match_index, reject, round, reset, applied } => {
                self.handle_append_response(now, msg.from, success, match_index, reject, round, reset, applied, out);
            }
            MessageBody::TimeoutNow => self.handle_timeout_now(now, msg.from, out),
            MessageBody::InstallSnapshot { meta, offset, data, last, commit } => {
                self.handle_install_snapshot(now, msg.from, meta, offset, data, last, commit, out);
            }
            MessageBody::InstallSnapshotResponse { index, next_offset, done, restart } => {
                self.handle_install_snapshot_response(now, msg.from, index, next_offset, done, restart, out);
            }
        }
    }

    fn handle_vote(
        &mut self,
        now: Time,
        from: NodeId,
        last_index: LogIndex,
        last_term: Term,
        transfer: bool,
        out: &mut Vec<RaftOutput>,
    ) {
        let free = self.vote.is_none() || self.vote == Some(from) || InjectedBugs::on(self.bugs().vote_twice);
        // The lease guard holds at our own term too: we may have moved to this term on some
        // other message while still honouring the previous leader's lease.
        let lease_blocks = self.in_lease(now)
            && self.vote != Some(from)
            && !transfer
            && !InjectedBugs::on(self.bugs().vote_in_lease);
        let granted = free
            && !lease_blocks
            && self.damaged.is_none()
            && self.role != Role::Leader
            && self.log.is_up_to_date(last_index, last_term);
        if granted {
            if self.vote != Some(from) {
                self.vote = Some(from);
                self.hard_state_dirty = true;
            }
            self.reset_election_deadline(now);
            self.send_after_persist(from, MessageBody::VoteResponse { granted: true }, out);
        } else {
            self.send(from, MessageBody::VoteResponse { granted: false }, out);
        }
    }

    pub(super) fn handle_tick(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
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
                self.check_transfer_timeout(now);
                if now >= self.heartbeat_deadline {
                    self.broadcast_needed = true;
                }
            }
            Role::Follower | Role::PreCandidate | Role::Candidate => {
                if now >= self.election_deadline {
                    if self.damaged.is_some() {
                        // A damaged node waits to be repaired; it must not lead with a log
                        // that may have lost committed entries.
                        self.reset_election_deadline(now);
                    } else if !self.may_campaign() {
                        // Not a voter, or a committed configuration change is not applied yet.
                        self.reset_election_deadline(now);
                    } else {
                        let hold = self.unapplied_campaign_hold();
                        if !self.campaign_held && !hold.is_zero() {
                            // Behind in applying: a caught-up voter goes first (once per timeout).
                            self.campaign_held = true;
                            self.election_deadline = now + hold;
                        } else {
                            self.campaign(now, self.cfg.pre_vote, false, out);
                        }
                    }
                }
            }
        }
    }

    /// How long a quorum acknowledgement keeps the lease, on our clock: the followers' election
    /// timeout, shrunk by the worst relative clock-rate error in both directions.
    pub(super) fn lease_duration(&self) -> Duration {
        let d = self.cfg.max_clock_drift;
        self.cfg.election_timeout_min.mul_f64((1.0 - d) / (1.0 + d))
    }
}
