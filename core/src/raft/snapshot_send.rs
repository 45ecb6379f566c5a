//! The leader's side of `InstallSnapshot`: a follower whose `next_index` lies in the compacted
//! prefix gets the snapshot streamed in chunks.
//!
//! Raft never holds the bytes: it asks the driver for chunk (offset, len) of the snapshot
//! ([`RaftOutput::ReadSnapshotChunk`]), the driver steps [`RaftInput::SnapshotChunk`] back, and the
//! chunk leaves as an `InstallSnapshot` message. At most `snapshot_window` chunks are in flight per
//! follower; the follower acknowledges the next offset it expects, so a lost or reordered chunk is
//! resent from that offset (and only from there) when the transfer stalls for two heartbeat
//! intervals, and a transfer restarted by either side resumes where the follower's staging ends.
//! Heartbeats keep flowing to the follower meanwhile (rejected, but they reset its election timer
//! and confirm read rounds). At most `max_snapshot_sends` transfers run at once; the rest wait for
//! the next heartbeat round after a slot frees.
//!
//! [`RaftOutput::ReadSnapshotChunk`]: super::RaftOutput::ReadSnapshotChunk
//! [`RaftInput::SnapshotChunk`]: super::RaftInput::SnapshotChunk

use super::message::{LogIndex, MessageBody};
use super::node::{RaftNode, RaftOutput, Role};
use super::snapshot::SnapshotMeta;
use crate::contract::{NodeId, Time};
use bytes::Bytes;

/// One transfer in progress.
#[derive(Clone, Debug)]
pub(super) struct SnapshotSend {
    pub(super) meta: SnapshotMeta,
    /// The follower holds every byte before this offset (it asked for this one next).
    pub(super) acked: u64,
    /// Next offset to ask the driver for.
    pub(super) next: u64,
    /// Highest offset ever asked for (chunks below it that are asked for again are resends).
    pub(super) high: u64,
    /// The last chunk has been asked for since the last rewind.
    pub(super) requested_last: bool,
    /// When the follower last acknowledged progress (or the transfer started or rewound).
    pub(super) last_progress: Time,
    /// Stalls in a row without a sign of life: each doubles the wait before the next resend (up
    /// to [`MAX_STALL_DOUBLINGS`]), so a follower that is down is not sent a window per round.
    pub(super) stalls: u32,
    /// After a stall only one chunk is in flight until the follower answers anything: a whole
    /// window is not resent to a follower that may not be listening.
    pub(super) probing: bool,
}

/// Cap on the stall back-off: the wait before a resend grows 2, 4, 8 heartbeat intervals.
pub(super) const MAX_STALL_DOUBLINGS: u32 = 2;

impl SnapshotSend {
    /// Offset of the last chunk (the one a finished transfer resends to learn the outcome).
    fn last_chunk_offset(&self, chunk: u64) -> u64 {
        self.meta.size.saturating_sub(1) / chunk * chunk
    }
}

impl RaftNode {
    /// Whether `to` needs a snapshot: its next entry was compacted away.
    pub(super) fn needs_snapshot(&self, to: NodeId) -> bool {
        self.progress.get(&to).is_some_and(|p| p.next_index <= self.log.base_index())
    }

    /// The snapshot path of `send_append`: keeps (or starts, or defers) the transfer to `to`, and
    /// on heartbeat rounds (`probe_now`) sends `to` a heartbeat and resends stalled chunks.
    pub(super) fn replicate_snapshot(&mut self, now: Time, to: NodeId, probe_now: bool, out: &mut Vec<RaftOutput>) {
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.replicating = false;
            pr.inflight.clear();
        }
        if probe_now {
            self.send_snapshot_heartbeat(to, out);
        }
        let chunk = self.cfg.snapshot_chunk_bytes as u64;
        if let Some(s) = self.snap.sends.get_mut(&to) {
            let stall = self.cfg.heartbeat_interval * (2u32 << s.stalls.min(MAX_STALL_DOUBLINGS));
            if probe_now && now.saturating_since(s.last_progress) >= stall {
                // Something was lost: probe from what the follower acknowledged, or, if it has
                // every byte, with the last chunk (whose answer tells the outcome).
                s.next = s.acked.min(s.last_chunk_offset(chunk));
                s.requested_last = false;
                s.last_progress = now;
                s.stalls += 1;
                s.probing = true;
            }
            self.pump_snapshot(to, out);
            return;
        }
        let Some(meta) = self.snap.meta.clone() else {
            debug_assert!(false, "a compacted log without a snapshot");
            return;
        };
        if self.snap.sends.len() >= self.cfg.max_snapshot_sends {
            if self.snap.waiting.insert(to) {
                self.snap.stats.sends_deferred += 1;
            }
            return;
        }
        self.snap.waiting.remove(&to);
        self.snap.stats.sends_started += 1;
        let send = SnapshotSend {
            meta,
            acked: 0,
            next: 0,
            high: 0,
            requested_last: false,
            last_progress: now,
            stalls: 0,
            probing: false,
        };
        self.snap.sends.insert(to, send);
        self.pump_snapshot(to, out);
    }

    /// An empty append at the log base: the follower cannot match it (its log is behind the
    /// base), so it rejects, but it resets its election timer and echoes the round.
    pub(super) fn send_snapshot_heartbeat(&mut self, to: NodeId, out: &mut Vec<RaftOutput>) {
        let prev_index = self.log.base_index();
        let Some(prev_term) = self.log.term_at(prev_index) else { return };
        let body = MessageBody::Append { prev_index, prev_term, entries: Vec::new(), commit: self.commit, round: self.round };
        self.send(to, body, out);
    }

    /// Asks the driver for the chunks the window allows.
    fn pump_snapshot(&mut self, to: NodeId, out: &mut Vec<RaftOutput>) {
        let chunk = self.cfg.snapshot_chunk_bytes as u64;
        let Some(s) = self.snap.sends.get_mut(&to) else { return };
        let window = if s.probing { 1 } else { self.cfg.snapshot_window as u64 };
        while !s.requested_last && (s.next - s.acked.min(s.next)).div_ceil(chunk) < window {
            let len = chunk.min(s.meta.size - s.next);
            if s.next < s.high {
                self.snap.stats.chunks_resent += 1;
            }
            out.push(RaftOutput::ReadSnapshotChunk { to, meta: s.meta.clone(), offset: s.next, len });
            s.next += len;
            s.high = s.high.max(s.next);
            s.requested_last = s.next >= s.meta.size;
        }
    }

    /// The driver read a chunk (or no longer holds the snapshot: `data` is `None`, and the
    /// transfer is dropped, to restart from the newest snapshot at the next round).
    pub(super) fn handle_snapshot_chunk(
        &mut self,
        to: NodeId,
        index: LogIndex,
        offset: u64,
        data: Option<Bytes>,
        out: &mut Vec<RaftOutput>,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let chunk = self.cfg.snapshot_chunk_bytes as u64;
        let Some(s) = self.snap.sends.get(&to).filter(|s| s.meta.index == index) else { return };
        let expected = chunk.min(s.meta.size.saturating_sub(offset));
        let Some(data) = data.filter(|d| d.len() as u64 == expected && offset <= s.meta.size) else {
            self.finish_snapshot_send(to);
            return;
        };
        if offset < s.acked {
            return; // the follower has it already
        }
        let last = offset + expected == s.meta.size;
        let body = MessageBody::InstallSnapshot { meta: s.meta.clone(), offset, data, last, commit: self.commit };
        self.snap.stats.chunks_sent += 1;
        self.send(to, body, out);
    }

    /// A follower acknowledged chunks (`next_offset`), finished (`done`: it holds the log up to
    /// `index`), or lost its staging (`restart`: resend from `next_offset`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_install_snapshot_response(
        &mut self,
        now: Time,
        from: NodeId,
        index: LogIndex,
        next_offset: u64,
        done: bool,
        restart: bool,
        out: &mut Vec<RaftOutput>,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        if done {
            // Only a snapshot we could have sent (our commit covers it) proves anything.
            if index > self.commit {
                return;
            }
            if index > pr.match_index {
                pr.match_index = index;
                pr.last_progress = now;
                pr.last_advance = now;
            }
            pr.next_index = pr.next_index.max(pr.match_index + 1);
            pr.replicating = false;
            pr.inflight.clear();
            if self.snap.sends.get(&from).is_some_and(|s| s.meta.index <= index) {
                self.finish_snapshot_send(from);
            }
            self.send_append(now, from, true, out);
            self.start_waiting_snapshot_sends(now, out);
            self.advance_reads();
            return;
        }
        self.snapshot_follower_alive(from, out);
        let Some(s) = self.snap.sends.get_mut(&from).filter(|s| s.meta.index == index) else { return };
        let next_offset = next_offset.min(s.meta.size);
        if restart {
            s.acked = next_offset;
            s.next = next_offset;
            s.requested_last = false;
            s.last_progress = now;
        } else if next_offset > s.acked {
            s.acked = next_offset;
            s.next = s.next.max(next_offset);
            s.last_progress = now;
        } else {
            return; // stale or duplicate: a stall resends if something was really lost
        }
        self.pump_snapshot(from, out);
    }

    /// `from` answered something (a heartbeat, a chunk): it is listening, so a probing transfer
    /// to it reopens its window (without rewinding: the probe already restarted from the
    /// acknowledged offset) and its back-off ends.
    pub(super) fn snapshot_follower_alive(&mut self, from: NodeId, out: &mut Vec<RaftOutput>) {
        let Some(s) = self.snap.sends.get_mut(&from) else { return };
        s.stalls = 0;
        if s.probing {
            s.probing = false;
            self.pump_snapshot(from, out);
        }
    }

    /// Ends the transfer to `to` and frees its slot.
    pub(super) fn finish_snapshot_send(&mut self, to: NodeId) {
        self.snap.sends.remove(&to);
    }

    /// Starts transfers that waited for a slot.
    fn start_waiting_snapshot_sends(&mut self, now: Time, out: &mut Vec<RaftOutput>) {
        for to in self.snap.waiting.clone() {
            if self.snap.sends.len() >= self.cfg.max_snapshot_sends {
                break;
            }
            if self.needs_snapshot(to) {
                self.replicate_snapshot(now, to, false, out);
            } else {
                self.snap.waiting.remove(&to);
            }
        }
    }

    /// A leader stepping down forgets its transfers (the next leader starts its own).
    pub(super) fn clear_snapshot_sends(&mut self) {
        self.snap.sends.clear();
        self.snap.waiting.clear();
    }
}
