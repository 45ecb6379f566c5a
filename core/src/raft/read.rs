//! Linearizable reads: ReadIndex (a quorum heartbeat round after the read arrived) and leases
//! (no round trip while a quorum acknowledged us recently, shortened by the clock-drift bound).
//! Reads leave the node as `ReadReady { index }`: the driver serves them from its state machine
//! once it has applied that index, so queries never run inside `step`.

use super::config::InjectedBugs;
use super::message::{ClientError, RequestId};
use super::node::{PendingRead, RaftNode, RaftOutput, ReadMode, Role};
use crate::contract::Time;

impl RaftNode {
    /// Whether a lease read at `now` would be served without a round trip.
    pub fn lease_valid(&self, now: Time) -> bool {
        self.role == Role::Leader
            && self.lease_allowed()
            && self.own_term_committed
            && (!self.lease_forfeited || InjectedBugs::on(self.bugs().lease_across_transfer))
            && now < self.lease_until
    }

    fn lease_allowed(&self) -> bool {
        self.cfg.lease_reads && self.cfg.check_quorum
    }

    pub(super) fn handle_read(&mut self, now: Time, id: RequestId, mode: ReadMode, out: &mut Vec<RaftOutput>) {
        if self.role != Role::Leader {
            return Self::respond_err(id, ClientError::NotLeader { leader: self.leader }, out);
        }
        if !self.own_term_committed {
            // Our commit index may lag the true one until an entry of our term commits (§8).
            self.reads_waiting_commit.push((id, mode));
            return;
        }
        let lease = mode == ReadMode::Lease && self.lease_valid(now);
        self.enqueue_read(id, lease);
    }

    /// Called once an entry of our term commits: no lease can be valid yet at this point, so
    /// these reads all take a round.
    pub(super) fn release_reads_waiting_commit(&mut self) {
        for (id, _mode) in std::mem::take(&mut self.reads_waiting_commit) {
            self.enqueue_read(id, false);
        }
    }

    /// Queues a read at the current commit index. Unless `confirmed` (a valid lease), it waits for a
    /// heartbeat round sent after it arrived to be acknowledged by a quorum.
    fn enqueue_read(&mut self, id: RequestId, confirmed: bool) {
        let confirmed = confirmed || InjectedBugs::on(self.bugs().read_without_quorum) || self.peers.is_empty();
        let round = if confirmed {
            0
        } else {
            self.broadcast_needed = true;
            self.round + 1
        };
        self.pending_reads.push(PendingRead { id, index: self.commit, round });
    }

    /// Confirms reads whose heartbeat round a quorum acknowledged and extends the lease.
    pub(super) fn advance_reads(&mut self) {
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

    /// Hands every confirmed read to the driver with the index it must be served at.
    pub(super) fn serve_reads(&mut self, out: &mut Vec<RaftOutput>) {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_reads).into_iter().partition(|r| r.round == 0);
        self.pending_reads = waiting;
        for r in ready {
            out.push(RaftOutput::ReadReady { id: r.id, index: r.index });
        }
    }
}
