//! Log replication: appends on the follower, progress and flow control on the leader,
//! heartbeat rounds, and commitment by a quorum of durable match indexes.

use super::config::InjectedBugs;
use super::message::{Entry, LogIndex, MessageBody, RejectHint, Term};
use super::node::{RaftNode, RaftOutput, Role};
use crate::contract::{NodeId, Time};

impl RaftNode {
    /// Contact from `from`, the leader of our term (an append or a snapshot chunk): follow it,
    /// keep our vote sticky and our election timer reset, and, while damaged, remember the
    /// commit index it asks us to hold (`commit`). False (and nothing changes) if we lead: two
    /// leaders in one term cannot happen with correct voters, so refuse rather than corrupt.
    pub(super) fn heard_from_leader(
        &mut self,
        now: Time,
        from: NodeId,
        commit: LogIndex,
        out: &mut Vec<RaftOutput>,
    ) -> bool {
        if self.role == Role::Leader {
            return false;
        }
        if self.role != Role::Follower {
            self.become_follower(now, self.term, Some(from), out);
        }
        self.leader = Some(from);
        self.last_leader_contact = Some(now);
        self.stickiness_until = now + self.cfg.election_timeout_min;
        self.reset_election_deadline(now);
        if let Some(damaged_term) = self.damaged
            && self.term > damaged_term
        {
            self.repair_commit = Some(self.repair_commit.unwrap_or(0).max(commit));
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_append(
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
        if !self.heard_from_leader(now, from, commit, out) {
            return;
        }
        let reset = self.damaged.is_some();
        if self.snapshot_installing() {
            return; // commit must not pass a snapshot being installed; the leader retries
        }

        // Validate the shape before trusting anything.
        // (checked: `prev_index` comes off the wire and may be anything, u64::MAX included)
        let contiguous = entries
            .iter()
            .enumerate()
            .all(|(i, e)| prev_index.checked_add(1 + i as u64) == Some(e.index) && e.term <= self.term);
        if !contiguous {
            return;
        }
        // Entries at or below our compacted base are committed and in our snapshot.
        let (prev_index, prev_term, entries) = match self.trim_append_to_snapshot(prev_index, prev_term, entries) {
            Some(trimmed) => trimmed,
            None => return,
        };
        if self.log.term_at(prev_index) != Some(prev_term) {
            let hint = if prev_index > self.log.last_index() {
                RejectHint { conflict_term: None, conflict_index: self.log.last_index() + 1 }
            } else {
                RejectHint {
                    conflict_term: self.log.term_at(prev_index),
                    conflict_index: self.log.first_index_of_term_run(prev_index),
                }
            };
            let body =
                MessageBody::AppendResponse { success: false, match_index: 0, reject: Some((prev_index, hint)), round, reset, applied: self.applied };
            self.send(from, body, out);
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
        self.check_repaired();
        let early = match_index.min(self.durable_index);
        // The full acknowledgement below waits for every write issued so far: the entries this
        // append brought, or earlier ones still on their way to the disk. A heartbeat (no
        // entries) that arrives while an earlier write is in flight waits too, and a follower
        // whose WAL is busy with a long write then says nothing to its leader.
        let waits = self.unpersisted_from.is_some() || !self.pending_writes.is_empty();
        if waits && !self.hard_state_dirty && !self.snapshot_dirty() && early > 0 && !InjectedBugs::on(self.bugs().heartbeat_ack_waits_for_disk) {
            // Only entries wait for the disk (our term and vote are durable): acknowledge at
            // once what already is durable, echoing this append's round. The leader then
            // hears from us, for check-quorum and for its read rounds, even while a long write
            // (a WAL checkpoint of tens of megabytes, durable only after 1.6 s with three
            // nodes on one disk) holds up durability; the full acknowledgement follows once
            // everything is durable. (Until this covered heartbeats, such a checkpoint made
            // every follower silent at once and leaders stepped down by check-quorum.)
            self.send(
                from,
                MessageBody::AppendResponse { success: true, match_index: early, reject: None, round, reset: false, applied: self.applied },
                out,
            );
            if early == match_index {
                // Everything this append matched was durable already (a heartbeat): the answer
                // after the disk would say the same again.
                return;
            }
        }
        self.send_after_persist(
            from,
            MessageBody::AppendResponse { success: true, match_index, reject: None, round, reset: false, applied: self.applied },
            out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_append_response(
        &mut self,
        now: Time,
        from: NodeId,
        success: bool,
        match_index: LogIndex,
        reject: Option<(LogIndex, RejectHint)>,
        round: u64,
        reset: bool,
        applied: LogIndex,
        out: &mut Vec<RaftOutput>,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let last_index = self.log.last_index();
        if !self.progress.contains_key(&from) {
            return;
        }
        self.snapshot_follower_alive(from, out);
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        pr.acked_round = pr.acked_round.max(round.min(self.round));
        // The latest answer, not the highest: a follower that restarted replays its log from its
        // last snapshot, and its status must say so. (An answer overtaken by a later one can
        // only understate, until the next answer.)
        pr.applied = applied;
        if success {
            if match_index > last_index {
                return; // claims entries we never sent: ignore
            }
            if match_index > pr.match_index {
                pr.match_index = match_index;
                pr.last_progress = now;
                pr.last_advance = now;
            }
            pr.next_index = pr.next_index.max(pr.match_index + 1);
            while pr.inflight.front().is_some_and(|&l| l <= pr.match_index) {
                pr.inflight.pop_front();
            }
            if !pr.replicating {
                // The probe that found the match point may still be in flight with entries
                // beyond it: count it as in flight instead of sending its entries again.
                pr.replicating = true;
                let matched = pr.match_index;
                pr.inflight.retain(|&l| l > matched);
                pr.next_index = pr.inflight.back().map_or(matched + 1, |&l| l + 1);
            }
            self.replicate_needed = true;
            self.maybe_send_timeout_now(from, out);
        } else if let Some((rejected_prev, hint)) = reject {
            if reset && hint.conflict_index <= pr.match_index {
                // The follower lost entries we counted as durable there (a damaged disk): its
                // match index is no longer true, whatever order responses arrive in.
                pr.match_index = hint.conflict_index.saturating_sub(1);
                pr.replicating = false;
                pr.inflight.clear();
                pr.next_index = pr.match_index + 1;
                self.send_append(now, from, true, out);
                self.advance_reads();
                return;
            }
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
    /// replicating mode batches while the window allows. Batches are bounded by count and bytes.
    pub(super) fn send_append(&mut self, now: Time, to: NodeId, probe_now: bool, out: &mut Vec<RaftOutput>) {
        let last = self.log.last_index();
        let (max_inflight, max_batch, max_bytes, round, commit) =
            (self.cfg.max_inflight, self.cfg.max_batch_entries, self.cfg.max_batch_bytes, self.round, self.commit);
        if self.needs_snapshot(to) {
            return self.replicate_snapshot(now, to, probe_now, out);
        }
        if self.snap.sends.contains_key(&to) {
            self.finish_snapshot_send(to); // caught up by other means
        }
        let Some(pr) = self.progress.get_mut(&to) else { return };
        let mut msgs = Vec::new();
        if pr.replicating {
            while pr.inflight.len() < max_inflight && pr.next_index <= last {
                let prev_index = pr.next_index - 1;
                let entries = self.log.slice_bounded(pr.next_index, last, max_batch, max_bytes);
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
            let entries = self.log.slice_bounded(pr.next_index, last, max_batch, max_bytes);
            // Remember the probe's entries (only the newest probe counts) so that the switch to
            // pipelining does not send them again.
            pr.inflight.clear();
            if let Some(e) = entries.last() {
                pr.inflight.push_back(e.index);
                pr.last_progress = now;
            }
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
        // A match point compacted away: heartbeat at the base (the follower's rejection sends
        // it to the snapshot path).
        let Some(prev_term) = self.log.term_at(prev_index) else { return self.send_snapshot_heartbeat(to, out) };
        let body = MessageBody::Append { prev_index, prev_term, entries: Vec::new(), commit: self.commit, round: self.round };
        self.send(to, body, out);
    }

    /// Starts a new heartbeat round: every follower hears from us once, carrying the round, and
    /// stalled or probing followers are retried (the network does not retransmit for us).
    pub(super) fn broadcast_round(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        self.round += 1;
        self.round_sent_at.push_back((self.round, now));
        self.heartbeat_deadline = now + self.cfg.heartbeat_interval;
        let stall = self.cfg.heartbeat_interval * 2;
        for to in self.replicas.clone() {
            let pr = self.progress.get_mut(&to).expect("leader has progress for every member");
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

    pub(super) fn maybe_commit(&mut self) {
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
        let own_term = self.log.term_at(candidate) == Some(self.term) || InjectedBugs::on(self.bugs().commit_old_term);
        if candidate > self.commit && own_term {
            for i in self.commit + 1..=candidate {
                if let Some(e) = self.log.get(i)
                    && e.term == self.term
                {
                    self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(e.size());
                }
            }
            self.commit = candidate;
            if !self.own_term_committed && self.log.term_at(candidate) == Some(self.term) {
                self.own_term_committed = true;
                self.release_reads_waiting_commit();
            }
        }
    }
}
