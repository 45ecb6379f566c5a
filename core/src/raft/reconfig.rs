//! Membership changes on the node: proposing a configuration change, activating it when the
//! driver reports it applied (etcd's rule), leaving a joint configuration automatically, and a
//! removed leader handing over to a remaining voter.
//!
//! Rules, and why:
//! * A change is accepted only by a leader that has committed an entry of its term (before that
//!   it may not know the latest committed configuration) and only when no earlier change is
//!   still unapplied (each change is computed from the configuration the previous one made, so
//!   any two configurations in use at once are one step apart and their quorums intersect).
//! * A configuration takes effect on a node when that node applies its entry. A node whose log
//!   holds a *committed* configuration entry it has not applied does not campaign: it would ask
//!   the wrong voters (etcd's `hup` guard; entries not known committed may still be replaced, so
//!   they do not block, or a crashed leader's uncommitted change could silence the group).
//! * At restart the node adopts the newest configuration entry of its durable log, applied or
//!   not. We persist no commit index, so the node cannot tell which of its entries are
//!   committed; falling back to an older configuration (say the initial one) could let nodes
//!   removed long ago elect each other. The newest entry in a log is at most one change ahead of
//!   the group's committed configuration (changes go one at a time), so its quorums intersect
//!   the group's. If that entry is later cut from the log, the node falls back to the newest one
//!   left.
//! * Learners receive the log and never vote, campaign or count in quorums; vote requests from
//!   nodes that are not voters of our configuration are ignored (a removed node that missed its
//!   removal must not disrupt the group with higher terms).
//! * A leader that applies a configuration without itself leads on until then (it may be needed
//!   to commit the change), then transfers leadership to the most up-to-date remaining voter and
//!   steps down once `TimeoutNow` has left (or the transfer gave up).

use super::conf_change::{ConfChange, ConfChangeRefusal, ConfEntry, next_membership};
use super::config::InjectedBugs;
use super::membership::Membership;
use super::message::{ClientError, EntryPayload, LogIndex, Message, MessageBody, RequestId};
use super::node::{Progress, RaftNode, RaftOutput, Role};
use crate::contract::{NodeId, Time};

impl RaftNode {
    /// The membership this node currently uses.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Index of the configuration entry the current membership comes from (0: the initial or
    /// snapshot configuration).
    pub fn membership_index(&self) -> LogIndex {
        self.membership_index
    }

    /// Whether a message from `msg.from` may be looked at: vote requests only from voters of our
    /// configuration; appends from anyone but a second leader of our term (a leader is whoever
    /// won a term, and our configuration may be too old to name it: a learner added late starts
    /// from the initial one); everything else from anyone (responses only count for members, see
    /// the tallies and `progress`).
    pub(super) fn accepts_from(&self, msg: &Message) -> bool {
        match msg.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => self.membership.is_voter(msg.from),
            MessageBody::Append { .. } => msg.term != self.term || self.leader.is_none_or(|l| l == msg.from),
            _ => true,
        }
    }

    /// Whether this node may start a campaign: it votes in its configuration and has applied every
    /// configuration entry it knows committed.
    /// Nor while the driver installs a snapshot: the state machine is being replaced by a
    /// leader's, and a node that won meanwhile would then adopt that leader's log as its own.
    pub(super) fn may_campaign(&self) -> bool {
        self.membership.is_voter(self.cfg.id)
            && !self.has_committed_unapplied_conf()
            && !self.snap.recv.as_ref().is_some_and(|r| r.installing)
    }

    fn has_committed_unapplied_conf(&self) -> bool {
        (self.applied + 1..=self.commit).any(|i| self.conf_entry(i).is_some())
    }

    fn conf_entry(&self, index: LogIndex) -> Option<&ConfEntry> {
        match self.log.get(index).map(|e| &e.payload) {
            Some(EntryPayload::ConfChange(c)) => Some(c),
            _ => None,
        }
    }

    /// The configuration in force at the applied index, which a snapshot of the applied state
    /// carries: the newest configuration entry at or below it, else the base (the configuration
    /// at the log's start). Unlike [`Self::membership`] it is never provisional.
    pub fn applied_membership(&self) -> Membership {
        self.newest_conf_in_log(self.applied).map_or_else(|| self.base_membership.clone(), |(_, m)| m)
    }

    /// The newest configuration entry of the log at or below `below`, if any.
    pub(super) fn newest_conf_in_log(&self, below: LogIndex) -> Option<(LogIndex, Membership)> {
        (1..=below.min(self.log.last_index())).rev().find_map(|i| self.conf_entry(i).map(|c| (i, c.membership.clone())))
    }

    /// At restart (and when the entry our membership came from was cut from the log), when we
    /// cannot tell which of our entries are committed: the newest configuration entry of the log
    /// `C_n` may or may not be committed, the one before it `C_{n-1}` (else the base) is (a leader
    /// proposes a change only once the previous one is applied). Until `C_n` is applied we use
    /// both at once: voters of either, quorums of both (a quorum of both is a quorum of whichever
    /// is the group's). Using `C_n` alone could silence the group (its new voters may not hold
    /// the log yet, since `C_n` commits under `C_{n-1}`); using `C_{n-1}` alone could let removed
    /// nodes elect each other.
    pub(super) fn adopt_membership_from_log(&mut self, now: Time) {
        let newest = self.newest_conf_in_log(self.log.last_index());
        let Some((n, newest)) = newest else {
            return self.set_membership(now, 0, self.base_membership.clone());
        };
        let (prev_index, prev) = self.newest_conf_in_log(n - 1).unwrap_or_else(|| (0, self.base_membership.clone()));
        if n <= self.applied {
            return self.set_membership(now, n, newest); // applied, so committed: no doubt
        }
        self.set_membership(now, prev_index, either_of(&prev, &newest));
    }

    /// Switches to `membership` and derives what depends on it: the vote/commit quorum, whom we
    /// campaign to, whom a leader replicates to.
    fn set_membership(&mut self, now: Time, index: LogIndex, membership: Membership) {
        let me = self.cfg.id;
        self.quorum = membership.voters.clone();
        self.peers = self.quorum.voters().into_iter().filter(|&v| v != me).collect();
        self.replicas = membership.members().into_iter().filter(|&v| v != me).collect();
        self.membership = membership;
        self.membership_index = index;
        self.membership_truncated = false;
        if self.role == Role::Leader {
            let next = self.log.last_index() + 1;
            self.progress.retain(|id, _| self.replicas.contains(id));
            // A snapshot transfer to a node that left would hold its send slot for ever.
            self.snap.sends.retain(|id, _| self.replicas.contains(id));
            self.snap.waiting.retain(|id| self.replicas.contains(id));
            for &id in &self.replicas {
                self.progress.entry(id).or_insert_with(|| Progress::fresh(next, now));
            }
            if self.transfer.is_some_and(|t| !self.membership.is_voter(t.to)) {
                self.transfer = None;
            }
            // New members hear from us at once, not at the next heartbeat.
            self.broadcast_needed = true;
        }
    }

    pub(super) fn handle_propose_conf_change(&mut self, id: RequestId, change: ConfChange, out: &mut Vec<RaftOutput>) {
        if self.role != Role::Leader {
            return Self::respond_err(id, ClientError::NotLeader { leader: self.leader }, out);
        }
        if let Some(t) = self.transfer {
            return Self::respond_err(id, ClientError::Transferring { to: t.to }, out);
        }
        if let Err(refusal) = self.check_conf_change(&change) {
            return Self::respond_err(id, ClientError::ConfChangeRefused(refusal), out);
        }
        let index = self.propose_conf_change(change).expect("checked above");
        self.pending_proposals.insert(index, (id, self.term));
    }

    fn check_conf_change(&self, change: &ConfChange) -> Result<Membership, ConfChangeRefusal> {
        if !self.own_term_committed {
            return Err(ConfChangeRefusal::NoOwnTermCommit);
        }
        if self.pending_conf_index > self.applied {
            return Err(ConfChangeRefusal::Pending { index: self.pending_conf_index });
        }
        Ok(next_membership(&self.membership, change, InjectedBugs::on(self.bugs().skip_joint))?)
    }

    /// Appends a configuration entry (the caller checked the rules). Returns its index.
    fn propose_conf_change(&mut self, change: ConfChange) -> Result<LogIndex, ConfChangeRefusal> {
        let membership = self.check_conf_change(&change)?;
        let index = self.append_entry(EntryPayload::ConfChange(Box::new(ConfEntry { change, membership })));
        self.pending_conf_index = index;
        Ok(index)
    }

    /// Called at the start of every flush: activates applied configuration entries, falls back
    /// if ours was cut from the log, leaves a joint configuration on its own, hands leadership
    /// over when removed.
    pub(super) fn reconfigure(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        let mut changed = false;
        if self.membership_truncated {
            self.adopt_membership_from_log(now);
            changed = true;
        }
        // Up to what the log holds: after a restart whose state machine is ahead of a log that
        // lost rotted entries, a configuration entry in that gap is activated when the leader
        // sends it again, not skipped as missing.
        while self.conf_scanned < self.applied.min(self.log.last_index()) {
            self.conf_scanned += 1;
            let index = self.conf_scanned;
            // Entries at or below the one adopted at restart are older configurations.
            if index <= self.membership_index {
                continue;
            }
            let Some(entry) = self.conf_entry(index) else { continue };
            let membership = entry.membership.clone();
            if let Err(e) = membership.validate() {
                // A committed entry no correct leader could have built: keep what we have.
                debug_assert!(false, "committed configuration entry {index} is invalid: {e}");
                continue;
            }
            self.set_membership(now, index, membership);
            changed = true;
        }
        if changed {
            out.push(RaftOutput::MembershipChanged { index: self.membership_index, membership: self.membership.clone() });
        }
        if self.role != Role::Leader {
            self.handing_over = false;
            return;
        }
        if self.membership.is_joint()
            && self.membership.auto_leave
            && self.transfer.is_none()
            && self.check_conf_change(&ConfChange::leave_joint()).is_ok()
        {
            let _ = self.propose_conf_change(ConfChange::leave_joint());
        }
        if !self.membership.is_voter(self.cfg.id) {
            self.hand_over(now, out);
        }
    }

    /// We lead a configuration we are not a voter of: transfer to the most up-to-date remaining
    /// voter, and step down once `TimeoutNow` has left or the transfer was given up.
    fn hand_over(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        if !self.handing_over {
            let target = self
                .membership
                .voters
                .voters()
                .into_iter()
                .filter(|&v| v != self.cfg.id)
                .max_by_key(|v| (self.progress.get(v).map_or(0, |p| p.match_index), std::cmp::Reverse(*v)));
            self.handing_over = true;
            if let Some(to) = target {
                self.start_transfer(now, to, out);
            }
        }
        if self.transfer.is_none_or(|t| t.timeout_now_sent) {
            self.handing_over = false;
            self.become_follower(now, self.term, None, out);
        }
    }

    /// Whether cutting the log at `index` removes an entry our membership depends on (the one it
    /// came from, or an unapplied one a provisional membership was built from).
    pub(super) fn membership_depends_on(&self, index: LogIndex) -> bool {
        index <= self.membership_index
            || (self.membership_is_provisional() && (index..=self.log.last_index()).any(|i| self.conf_entry(i).is_some()))
    }

    /// Whether the membership in use is a combination adopted at restart (see
    /// [`RaftNode::adopt_membership_from_log`]) rather than a configuration of the log.
    pub fn membership_is_provisional(&self) -> bool {
        self.membership_index < self.log.last_index()
            && ((self.membership_index + 1)..=self.log.last_index()).any(|i| self.conf_entry(i).is_some())
    }

    /// A node id the leader replicates to (tests and drivers).
    pub fn replicates_to(&self, id: NodeId) -> bool {
        self.replicas.contains(&id)
    }
}

/// A membership whose quorums are quorums of both `a` and `b` (two configurations one change
/// apart: then one of them is joint and contains the other's voters, or both are simple and
/// they make a joint pair), whose voters and learners are those of either.
fn either_of(a: &Membership, b: &Membership) -> Membership {
    use crate::quorum::JointQuorum;
    // Same voters (a learner-only change), or `b` joint (entering: it holds `a`'s voters).
    let same_voters = !a.is_joint() && !b.is_joint() && a.voters.incoming == b.voters.incoming;
    let voters = if same_voters || b.is_joint() {
        b.voters.clone()
    } else if a.is_joint() {
        a.voters.clone()
    } else {
        JointQuorum { incoming: b.voters.incoming.clone(), outgoing: a.voters.incoming.clone() }
    };
    let all_voters = voters.voters();
    let learners = a.members().union(&b.members()).copied().filter(|id| !all_voters.contains(id)).collect();
    let m = Membership { voters, learners, learners_next: Default::default(), auto_leave: false };
    debug_assert!(m.validate().is_ok(), "{m:?}");
    m
}
