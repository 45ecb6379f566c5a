//! Quiescence: an idle group stops its timers, so a node hosting thousands of idle groups neither
//! ticks nor heartbeats them (CockroachDB's "quiesced ranges").
//!
//! Protocol (driven by the multi-Raft host, which owns the wire marking):
//!
//! 1. At a heartbeat tick, a leader that [`RaftNode::can_quiesce`] (every follower durably holds
//!    its whole log and said it applied all of it, everything is committed, durable and applied
//!    here, and nothing is pending:
//!    proposals, reads, a transfer, writes or deferred messages) sends that round's heartbeats
//!    *marked* quiesce: [`RaftNode::quiesce_round`] names the round and the host sets the flag
//!    on the coalesced heartbeats of that round.
//! 2. A follower that receives a marked heartbeat from its leader of its term, and holds the whole
//!    log as committed, stops its election timer ([`RaftNode::quiesce_as_follower`]).
//! 3. At the next heartbeat tick, if every follower acknowledged the marked round and the leader is
//!    still idle, it stops its heartbeat and check-quorum timers. Otherwise it marks the next round
//!    (a lost quiesce heartbeat is simply repeated).
//! 4. Any message, proposal, read or transfer request wakes the group (see [`RaftNode::wake`]).
//!    A leader only waits for *every* follower, so a follower that missed the mark is never left
//!    with a running election timer while its leader sleeps; and the host does not allow a group to
//!    quiesce while one of its voters is reported down.
//! 5. The failure detector's `PeerDown { node }` wakes every group led by `node`
//!    ([`RaftNode::leader_down`]): its followers campaign in turns within the election-timeout
//!    jitter instead of after a whole election timeout.
//!
//! **Leases and check-quorum across quiescence.** A quiesced leader renews nothing: followers stop
//! hearing from it, so their vote stickiness (which is what a lease relies on) runs out one
//! election timeout after the marked round. The leader therefore drops its lease when it quiesces
//! (`lease_until = 0`): a lease read after waking must first win a new quorum round, exactly like
//! a ReadIndex read. Keeping the old lease would be safe only while its absolute deadline had not
//! passed, and buys nothing for a group that was idle long enough to quiesce. Check-quorum does not
//! run while quiesced (nothing ticks); a quiesced leader may thus have been deposed without knowing
//! it. That is harmless because it serves nothing without a new round: on waking it forgets which
//! followers were recently active, restarts the check-quorum period from the wake instant and sends
//! a heartbeat round at once, so it either re-confirms its leadership within one round trip or
//! learns the newer term and steps down (or, partitioned, steps down at the check-quorum deadline).
//! Followers keep their check-quorum stickiness semantics unchanged: stickiness is measured from the
//! last heartbeat received, so a quiesced follower honours the lease of the marked round for exactly
//! as long as an awake one would, and grants votes after that, which is what lets a group whose
//! leader died while everyone slept elect a new one.

use super::config::InjectedBugs;
use super::message::MessageBody;
use super::node::{RaftNode, RaftOutput, Role};
use crate::contract::{NodeId, Time};
use rand::RngExt;

/// Quiescence bookkeeping of one [`RaftNode`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Quiescence {
    /// The host lets this group quiesce (quiescence is on and none of its voters is down).
    pub(super) allowed: bool,
    /// Timers are stopped: [`RaftNode::next_deadline`] is `None` and `Tick`s are ignored.
    pub(super) quiesced: bool,
    /// Leader: the heartbeat round marked quiesce, while waiting for every follower to echo it.
    pub(super) marked_round: Option<u64>,
    /// Follower: the marked round it slept on (its leader's state then: every entry committed).
    pub(super) slept_round: u64,
}

impl RaftNode {
    /// Lets the group quiesce when idle (`true`) or not (`false`). The multi-Raft host forbids it
    /// while quiescence is off or a voter of the group is down. Forbidding does not wake an
    /// already quiesced group (nothing needs it awake: a down leader wakes it through
    /// [`RaftNode::leader_down`], any traffic through [`RaftNode::wake`]); it stops a leader's
    /// pending request to quiesce.
    pub fn set_quiesce_allowed(&mut self, allowed: bool) {
        self.quiesce.allowed = allowed;
        if !allowed {
            self.quiesce.marked_round = None;
        }
    }

    /// Whether the group's timers are stopped.
    pub fn is_quiesced(&self) -> bool {
        self.quiesce.quiesced
    }

    /// Leader only: the heartbeat round whose heartbeats must carry the quiesce mark, while the
    /// leader is asking its followers to quiesce.
    pub fn quiesce_round(&self) -> Option<u64> {
        if self.role == Role::Leader { self.quiesce.marked_round } else { None }
    }

    /// The current heartbeat round of a leader (the round of its latest heartbeats).
    pub fn heartbeat_round(&self) -> u64 {
        self.round
    }

    /// Whether this leader is idle enough to quiesce: every follower durably holds its whole log
    /// and said it applied it, everything is committed, durable and applied, and nothing waits
    /// (proposals, reads, a transfer, unsynced writes, messages held for a write).
    pub fn can_quiesce(&self) -> bool {
        let last = self.log.last_index();
        self.quiesce.allowed
            && self.role == Role::Leader
            && self.transfer.is_none()
            && self.own_term_committed
            && self.commit == last
            && self.applied == self.commit
            && self.durable_index == last
            && self.pending_proposals.is_empty()
            && self.pending_reads.is_empty()
            && self.reads_waiting_commit.is_empty()
            && self.pending_writes.is_empty()
            && self.deferred.is_empty()
            && !self.hard_state_dirty
            && self.unpersisted_from.is_none()
            && self.progress.values().all(|p| p.match_index == last && p.inflight.is_empty())
            && self.followers_applied_everything(last)
    }

    /// Every follower said it has applied the whole log. A group does not sleep while a replica
    /// still replays its log: its leader's status report would go on saying "catching up" (the
    /// last answer before the sleep) long after it caught up. The wait costs one heartbeat round
    /// when followers apply promptly (their answer to the append that brought the commit comes
    /// before the apply; the next one says it is done).
    fn followers_applied_everything(&self, last: super::message::LogIndex) -> bool {
        InjectedBugs::on(self.bugs().quiesce_ignores_follower_apply)
            || self.progress.iter().all(|(id, p)| *id == self.cfg.id || p.applied >= last)
    }

    /// Called right after a `Tick` was handled: if a heartbeat round is due and the leader is
    /// idle, either marks this round quiesce or, when every follower acknowledged the marked
    /// round, stops the timers instead of sending it.
    pub(super) fn quiesce_after_tick(&mut self) {
        if self.role != Role::Leader || !self.broadcast_needed {
            return;
        }
        if !self.can_quiesce() {
            self.quiesce.marked_round = None;
            return;
        }
        match self.quiesce.marked_round {
            Some(r) if self.progress.values().all(|p| p.acked_round >= r) => {
                self.broadcast_needed = false;
                self.quiesce.quiesced = true;
                self.quiesce.marked_round = None;
                // See the module documentation: no lease survives quiescence.
                self.lease_until = Time::ZERO;
            }
            // The round `broadcast_round` is about to send.
            _ => self.quiesce.marked_round = Some(self.round + 1),
        }
    }

    /// Called after every step with what it sent: a leader that sent anything but the marked
    /// round's heartbeats since marking forgets the mark, and marks a fresh round at its next
    /// heartbeat tick. A follower that slept on the mark wakes on any later message (an append
    /// of a proposal that arrived before the leader slept), and its answer echoes the marked
    /// round's number without acknowledging the mark; sleeping on it would leave that
    /// follower's election timer running under a silent leader, which it then deposes.
    pub(super) fn forget_mark_if_overtaken(&mut self, sent: &[RaftOutput]) {
        let Some(r) = self.quiesce.marked_round else { return };
        let overtaken = sent.iter().any(|o| match o {
            RaftOutput::Send(m) => !is_mark_heartbeat(&m.body, r),
            _ => false,
        });
        if overtaken && !InjectedBugs::on(self.bugs().sleep_on_overtaken_mark) {
            self.quiesce.marked_round = None;
        }
    }

    /// A follower received a heartbeat marked quiesce from `from` at `term` (already stepped in
    /// as an ordinary heartbeat): it stops its election timer if `from` is its leader of this term
    /// and it holds the whole log as committed. A stale or reordered mark is ignored.
    ///
    /// Unlike the leader's decision this does not depend on [`RaftNode::set_quiesce_allowed`]:
    /// failure detectors of different nodes may disagree about a third voter, and a follower
    /// that stayed awake under a sleeping leader would time out and depose it, once per idle
    /// period. The host only refuses the mark when it suspects the leader itself.
    pub fn quiesce_as_follower(&mut self, from: NodeId, term: u64, round: u64) {
        if self.role == Role::Follower
            && self.leader == Some(from)
            && self.term == term
            && self.commit == self.log.last_index()
            && self.damaged.is_none()
        {
            self.quiesce.quiesced = true;
            self.quiesce.slept_round = round;
        }
    }

    /// Whether a message reaching this sleeping follower is an old copy from its leader that
    /// must not wake it: an append of its leader's term sent before the marked round it slept
    /// on, or a heartbeat of that very round (a duplicate of the mark). Everything such a
    /// message carries is already here and committed (the follower slept holding the whole
    /// log, and a leader's log only grows within its term), so it is dropped unanswered. Waking
    /// on it would restart this follower's election timer under a leader that sleeps and sends
    /// nothing more: the follower would then depose a live leader. A network that delays or
    /// duplicates packets delivers such copies; an append of the marked round carrying entries
    /// was sent after the mark (the leader then forgot it, see `forget_mark_if_overtaken`) and
    /// does wake.
    pub(super) fn stale_for_sleeper(&self, msg: &super::message::Message) -> bool {
        if !self.quiesce.quiesced
            || self.role != Role::Follower
            || self.leader != Some(msg.from)
            || msg.term != self.term
            || InjectedBugs::on(self.bugs().wake_on_stale_copy)
        {
            return false;
        }
        match &msg.body {
            MessageBody::Append { round, entries, .. } => {
                *round < self.quiesce.slept_round || (*round == self.quiesce.slept_round && entries.is_empty())
            }
            _ => false,
        }
    }

    /// Whether `msg` wakes this quiesced node. A message of an older term never does (it is
    /// answered, never acted on: a delayed vote request of a long-past election). On a
    /// follower that has a leader of its term, only news from that leader does (an append, a
    /// snapshot chunk, a transfer's `TimeoutNow`; an answer is a stray copy), or a higher
    /// term other than a pre-vote: a pre-vote is answered from the stickiness the last
    /// heartbeat left, no timer needed (a candidate that then wins sends a higher-term vote,
    /// which wakes); anything else of its own term from another node (a vote of a candidate
    /// that cannot win this term, answers meant for a leader) is a stray or an old copy. Each
    /// of those restarted a sleeper's election timer under a leader that sleeps on, and the
    /// sleeper then deposed a live leader. A leader (or a node without a leader) wakes on any
    /// message of its term or later: a pre-vote reaching a sleeping leader gets a fresh
    /// heartbeat round that reasserts it.
    pub(super) fn message_wakes(&self, msg: &super::message::Message) -> bool {
        if InjectedBugs::on(self.bugs().wake_on_stale_copy) {
            return true;
        }
        if msg.term < self.term {
            return false;
        }
        if self.role == Role::Follower && self.leader.is_some() {
            if msg.term > self.term {
                return !matches!(msg.body, MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { .. });
            }
            return self.leader == Some(msg.from)
                && matches!(msg.body, MessageBody::Append { .. } | MessageBody::InstallSnapshot { .. } | MessageBody::TimeoutNow);
        }
        true
    }

    /// Restarts the timers of a quiesced group. A leader forgets which followers were active,
    /// restarts its check-quorum period and sends a heartbeat round in this step (re-confirming
    /// its leadership before any read); a follower restarts its election timer.
    pub fn wake(&mut self, now: Time) {
        if !self.quiesce.quiesced {
            return;
        }
        self.quiesce.quiesced = false;
        self.quiesce.marked_round = None;
        match self.role {
            Role::Leader => {
                for p in self.progress.values_mut() {
                    p.recent_active = false;
                }
                self.check_quorum_deadline = now + self.cfg.election_timeout_min;
                self.heartbeat_deadline = now;
                self.broadcast_needed = true;
                if InjectedBugs::on(self.bugs().wake_renews_lease) {
                    // The bug: the followers stopped honouring this leader long ago and may
                    // have elected another one (see the module documentation).
                    self.lease_until = now + self.lease_duration();
                }
            }
            Role::Follower | Role::PreCandidate | Role::Candidate => self.reset_election_deadline(now),
        }
    }

    /// The failure detector reports `node` down. If it is our leader, wake and campaign soon
    /// instead of after a whole election timeout.
    ///
    /// Followers of a failed leader all learn it at about the same moment, so independent random
    /// delays often collide and split the vote (a full election timeout lost). Instead the
    /// surviving voters take turns: the election-timeout jitter is cut into one slot per survivor,
    /// the order rotates with the group id (so the leaderships of a failed node spread over the
    /// survivors) and each campaigns at a random point in the first half of its slot. The next in
    /// line only campaigns if the first has not won by then (its pre-vote is refused while it
    /// hears the new leader).
    pub fn leader_down(&mut self, now: Time, node: NodeId) {
        if self.role != Role::Follower || self.leader != Some(node) {
            return;
        }
        self.wake(now);
        let mut survivors: Vec<NodeId> = self.cfg.voters.iter().copied().filter(|&v| v != node).collect();
        survivors.sort_unstable();
        survivors.dedup();
        let count = survivors.len().max(1) as u64;
        let position = survivors.iter().position(|&v| v == self.cfg.id).unwrap_or(0) as u64;
        let turn = (position + self.cfg.group % count) % count;
        let spread = (self.cfg.election_timeout_max - self.cfg.election_timeout_min).as_nanos() as u64;
        let slot = spread / count;
        let delay = turn * slot + self.rng.random_range(0..(slot / 2).max(1));
        self.election_deadline = self.election_deadline.min(Time(now.0 + delay));
        // A turn that comes earlier is a new timeout: the unapplied hold applies to it afresh.
        self.campaign_held = false;
    }
}

/// Whether `body` is a heartbeat of round `round` that the multi-Raft host sends with the
/// quiesce mark (see `multiraft::envelope::Outbox::push`: an empty append at or below commit).
fn is_mark_heartbeat(body: &MessageBody, round: u64) -> bool {
    matches!(body, MessageBody::Append { prev_index, entries, commit, round: r, .. }
        if entries.is_empty() && prev_index <= commit && *r == round)
}
