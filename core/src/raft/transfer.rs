//! Leadership transfer (Raft thesis §3.10): the leader stops taking proposals, brings the target
//! up to date, then sends it `TimeoutNow`; the target campaigns at once and voters disregard the
//! old leader's lease for that campaign. The transfer is abandoned after an election timeout.
//!
//! Leases: once `TimeoutNow` has left, voters may elect the target at any later moment (the
//! message can be delayed arbitrarily), so the old leader never serves a lease read again in this
//! term; ReadIndex reads stay correct because they need a fresh quorum round.

use super::message::MessageBody;
use super::node::{RaftNode, RaftOutput, Role, Transfer};
use crate::contract::{NodeId, Time};

impl RaftNode {
    pub(super) fn start_transfer(&mut self, now: Time, to: NodeId, out: &mut Vec<RaftOutput>) {
        if self.role != Role::Leader || to == self.cfg.id || !self.progress.contains_key(&to) || !self.membership.is_voter(to) {
            return;
        }
        if self.transfer.is_some_and(|t| t.to == to) {
            return; // already under way: do not extend its deadline
        }
        self.transfer = Some(Transfer { to, deadline: now + self.cfg.election_timeout_max, timeout_now_sent: false });
        if !self.maybe_send_timeout_now(to, out) {
            // Catch the target up now rather than at the next stall check: probe from what it is
            // known to hold (batches in flight may have been lost; one resend is cheap).
            if let Some(pr) = self.progress.get_mut(&to) {
                pr.replicating = false;
                pr.inflight.clear();
                pr.next_index = pr.match_index + 1;
            }
            self.send_append(now, to, true, out);
        }
    }

    /// Sends `TimeoutNow` if `to` is the pending transfer's target and holds our whole log.
    /// Returns whether it was sent.
    pub(super) fn maybe_send_timeout_now(&mut self, to: NodeId, out: &mut Vec<RaftOutput>) -> bool {
        let last = self.log.last_index();
        let caught_up = self.progress.get(&to).is_some_and(|p| p.match_index == last);
        match self.transfer.as_mut() {
            Some(t) if t.to == to && !t.timeout_now_sent && caught_up => {
                t.timeout_now_sent = true;
                self.lease_forfeited = true;
                self.lease_until = Time::ZERO;
                self.send(to, MessageBody::TimeoutNow, out);
                true
            }
            _ => false,
        }
    }

    pub(super) fn check_transfer_timeout(&mut self, now: Time) {
        if self.transfer.is_some_and(|t| now >= t.deadline) {
            // The target did not take over: lead on (the lease stays forfeited for this term).
            self.transfer = None;
        }
    }

    pub(super) fn handle_timeout_now(&mut self, now: Time, from: NodeId, out: &mut Vec<RaftOutput>) {
        // Only our current leader may ask, in its term; a damaged node must not lead.
        if self.role == Role::Leader || self.leader != Some(from) || self.damaged.is_some() || !self.may_campaign() {
            return;
        }
        self.campaign(now, false, true, out);
    }
}
