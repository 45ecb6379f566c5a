//! The follower's side of `InstallSnapshot`: accepted, in-order chunks go to the driver to stage
//! ([`RaftOutput::StageSnapshotChunk`]); on the explicit last chunk the driver verifies size and
//! checksum and installs atomically ([`RaftOutput::InstallSnapshot`]), and only its answer
//! ([`RaftInput::SnapshotInstalled`], or [`RaftInput::SnapshotRejected`], which restarts the
//! transfer) changes Raft's state: the log is reset to the snapshot (keeping entries after it if
//! they match), commit and applied move up to it (never back), the snapshot's membership is
//! adopted, the snapshot record is written and the leader is answered once it is durable.
//!
//! A snapshot at or below our commit index is stale: it is acknowledged as done, never installed.
//! Installing counts as repair of a damaged node: the snapshot holds everything up to its index,
//! committed by a leader of a later term.
//!
//! [`RaftOutput::StageSnapshotChunk`]: super::RaftOutput::StageSnapshotChunk
//! [`RaftOutput::InstallSnapshot`]: super::RaftOutput::InstallSnapshot
//! [`RaftInput::SnapshotInstalled`]: super::RaftInput::SnapshotInstalled
//! [`RaftInput::SnapshotRejected`]: super::RaftInput::SnapshotRejected

use super::config::InjectedBugs;
use super::message::{LogIndex, MessageBody};
use super::node::{RaftNode, RaftOutput};
use super::snapshot::{SnapshotMeta, SnapshotRecord};
use crate::contract::{NodeId, Time};
use bytes::Bytes;

/// The snapshot a follower is receiving.
#[derive(Clone, Debug)]
pub(super) struct SnapshotRecv {
    pub(super) meta: SnapshotMeta,
    /// Bytes staged so far (the next chunk must start here).
    pub(super) next_offset: u64,
    /// Whom to answer.
    pub(super) leader: NodeId,
    /// Every chunk is staged and the driver is installing: appends and chunks wait.
    pub(super) installing: bool,
}

impl RaftNode {
    /// Whether the driver is installing a snapshot (appends are ignored meanwhile, so commit
    /// cannot pass the snapshot before it lands).
    pub(super) fn snapshot_installing(&self) -> bool {
        self.snap.recv.as_ref().is_some_and(|r| r.installing)
    }

    fn answer_snapshot(&mut self, to: NodeId, index: LogIndex, next_offset: u64, done: bool, restart: bool, out: &mut Vec<RaftOutput>) {
        let body = MessageBody::InstallSnapshotResponse { index, next_offset, done, restart };
        if done {
            self.send_after_persist(to, body, out);
        } else {
            self.send(to, body, out);
        }
    }

    /// One chunk of a snapshot from the leader `from`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_install_snapshot(
        &mut self,
        now: Time,
        from: NodeId,
        meta: SnapshotMeta,
        offset: u64,
        data: Bytes,
        last: bool,
        commit: LogIndex,
        out: &mut Vec<RaftOutput>,
    ) {
        if !self.heard_from_leader(now, from, commit.min(meta.index), out) {
            return;
        }
        // Never trust the wire: the shape must be consistent before anything is staged.
        let end = offset.checked_add(data.len() as u64);
        let shaped = meta.index > 0
            && end.is_some_and(|e| e <= meta.size && last == (e == meta.size))
            && meta.membership.validate().is_ok();
        if !shaped {
            return;
        }
        if meta.index <= self.commit && !InjectedBugs::on(self.bugs().install_stale_snapshot) {
            if self.snap.recv.as_ref().is_some_and(|r| r.meta == meta && !r.installing) {
                self.snap.recv = None;
            }
            return self.answer_snapshot(from, meta.index, meta.size, true, false, out);
        }
        if self.snapshot_installing() {
            return;
        }
        if self.snap.recv.as_ref().is_some_and(|r| r.leader == from && meta.index < r.meta.index) {
            return; // a late chunk of an older transfer from the same leader: keep the newer one
        }
        let expected = match &self.snap.recv {
            Some(r) if r.meta == meta => r.next_offset,
            _ => 0,
        };
        if offset != expected {
            // Out of order, duplicated, or a transfer we hold nothing of: say where to go on.
            let restart = expected == 0;
            return self.answer_snapshot(from, meta.index, expected, false, restart, out);
        }
        let len = data.len() as u64;
        out.push(RaftOutput::StageSnapshotChunk { meta: meta.clone(), offset, data });
        let next_offset = offset + len;
        self.snap.recv = Some(SnapshotRecv { meta: meta.clone(), next_offset, leader: from, installing: last });
        if last {
            out.push(RaftOutput::InstallSnapshot { meta: meta.clone() });
        }
        self.answer_snapshot(from, meta.index, next_offset, false, false, out);
    }

    /// The driver installed the snapshot `meta` atomically: Raft's state follows it.
    pub(super) fn handle_snapshot_installed(&mut self, meta: SnapshotMeta, out: &mut Vec<RaftOutput>) {
        let Some(recv) = self.snap.recv.take_if(|r| r.installing && r.meta == meta) else {
            return; // not ours to install: a confused driver
        };
        let bug = InjectedBugs::on(self.bugs().install_stale_snapshot);
        debug_assert!(meta.index > self.commit || bug, "appends wait while installing");
        let keep = self.log.term_at(meta.index) == Some(meta.term) && meta.index >= self.log.base_index();
        if keep {
            self.log.compact_to(meta.index);
            self.clamp_unpersisted_to_log();
        } else {
            self.log.reset_to(meta.index, meta.term);
            self.unpersisted_from = None;
            for (_, last) in self.pending_writes.iter_mut() {
                if let Some(l) = last {
                    *l = (*l).min(meta.index);
                }
            }
            self.durable_index = self.durable_index.min(meta.index);
        }
        // The driver holds the snapshot durably: everything up to its index is durable here.
        self.durable_index = self.durable_index.max(meta.index);
        if bug {
            self.commit = meta.index;
            self.apply_sent = meta.index;
            self.applied = meta.index;
        } else {
            self.commit = self.commit.max(meta.index);
            self.apply_sent = self.apply_sent.max(meta.index);
            self.applied = self.applied.max(meta.index);
        }
        self.adopt_snapshot_membership(meta.index, &meta.membership);
        out.push(RaftOutput::MembershipChanged { index: self.membership_index, membership: self.membership.clone() });
        self.snap.unpersisted = Some(SnapshotRecord {
            meta: meta.clone(),
            log_base: meta.index,
            log_base_term: meta.term,
            reset: !keep,
        });
        self.snap.bytes_since = 0;
        self.snap.stats.installed += 1;
        self.snap.meta = Some(meta.clone());
        self.check_repaired();
        // Leaves once the snapshot record is durable.
        self.answer_snapshot(recv.leader, meta.index, meta.size, true, false, out);
    }

    /// The driver could not verify or decode the snapshot: drop it and have the leader restart.
    pub(super) fn handle_snapshot_rejected(&mut self, meta: SnapshotMeta, out: &mut Vec<RaftOutput>) {
        let Some(recv) = self.snap.recv.take_if(|r| r.installing && r.meta == meta) else { return };
        self.snap.stats.rejected += 1;
        self.answer_snapshot(recv.leader, meta.index, 0, false, true, out);
    }
}
