//! Snapshots: what one is (its [`SnapshotMeta`] header), the policy that asks the driver for one,
//! and the log compaction that follows once the driver has taken it.
//!
//! Raft never holds the state machine nor a snapshot's bytes. It asks the driver to snapshot its
//! applied state ([`RaftOutput::TakeSnapshot`]); the driver writes the snapshot durably (the vector
//! engine's snapshot format, with this header) and steps [`RaftInput::SnapshotTaken`] back; only
//! then is the log compacted behind it and a [`SnapshotRecord`] written so recovery knows where the
//! log now starts. Streaming a snapshot to a follower lives in `snapshot_send` (leader) and
//! `snapshot_recv` (follower).
//!
//! [`RaftOutput::TakeSnapshot`]: super::RaftOutput::TakeSnapshot
//! [`RaftInput::SnapshotTaken`]: super::RaftInput::SnapshotTaken

use super::config::InjectedBugs;
use super::membership::Membership;
use super::message::{Entry, LogIndex, Term};
use super::node::{RaftNode, RaftOutput, Role};
use super::snapshot_recv::SnapshotRecv;
use super::snapshot_send::SnapshotSend;
use crate::contract::{NodeId, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// The header of a snapshot: which log prefix it replaces, who the group was at that point, and
/// how to verify its bytes. Travels with every chunk of an `InstallSnapshot` and in the WAL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Last log index the snapshot includes.
    pub index: LogIndex,
    /// Term of the entry at `index`.
    pub term: Term,
    /// The group's configuration as of `index` (a node restored from the snapshot knows its group
    /// without the entries the snapshot replaced).
    pub membership: Membership,
    /// Length of the snapshot's bytes.
    pub size: u64,
    /// blake3 of the snapshot's bytes: an install is verified against it before anything changes.
    pub checksum: [u8; 32],
}

impl SnapshotMeta {
    /// The header for `bytes` taken at (`index`, `term`) with `membership`.
    pub fn for_bytes(index: LogIndex, term: Term, membership: Membership, bytes: &[u8]) -> Self {
        SnapshotMeta { index, term, membership, size: bytes.len() as u64, checksum: *blake3::hash(bytes).as_bytes() }
    }

    /// Checks that `bytes` are exactly the snapshot this header describes.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), SnapshotError> {
        if bytes.len() as u64 != self.size {
            return Err(SnapshotError::Size { expected: self.size, got: bytes.len() as u64 });
        }
        if *blake3::hash(bytes).as_bytes() != self.checksum {
            return Err(SnapshotError::Checksum);
        }
        Ok(())
    }
}

/// Why a snapshot could not be used.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// The assembled bytes have the wrong length.
    #[error("snapshot size mismatch: expected {expected} bytes, got {got}")]
    Size {
        /// From the header.
        expected: u64,
        /// Assembled.
        got: u64,
    },
    /// The assembled bytes do not hash to the header's checksum.
    #[error("snapshot checksum mismatch")]
    Checksum,
    /// The bytes verified but the state machine could not decode them.
    #[error("snapshot does not decode: {0}")]
    Decode(String),
}

/// What a compaction or an install makes durable: the snapshot now in force and where the log
/// starts behind it. Recovery applies it before the record's hard state and entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The snapshot the driver holds durably.
    pub meta: SnapshotMeta,
    /// The log holds entries after this index only (at most `meta.index`: entries kept behind
    /// the snapshot for slow followers stay).
    pub log_base: LogIndex,
    /// Term of the entry at `log_base`.
    pub log_base_term: Term,
    /// The log was discarded (an install whose index we did not hold with its term): nothing
    /// before the record's own entries survives.
    pub reset: bool,
}

/// Counters of snapshot activity on this node (monotonic per incarnation), for summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Snapshots the driver took and the log was compacted behind.
    pub taken: u64,
    /// Transfers to a follower started (including restarts after a rejection or a stall).
    pub sends_started: u64,
    /// Transfers not started because `max_snapshot_sends` were already running.
    pub sends_deferred: u64,
    /// Chunks sent.
    pub chunks_sent: u64,
    /// Chunks sent again (after a stall or a follower asking from an earlier offset).
    pub chunks_resent: u64,
    /// Snapshots installed from a leader.
    pub installed: u64,
    /// Installs the driver rejected (verification or decoding failed).
    pub rejected: u64,
}

/// Everything a node knows about snapshots. One field of [`RaftNode`], so the other protocol
/// files are untouched by it.
#[derive(Clone, Debug, Default)]
pub(super) struct SnapshotState {
    /// The newest snapshot the driver holds durably (taken here or installed from a leader).
    pub(super) meta: Option<SnapshotMeta>,
    /// A `TakeSnapshot` is outstanding (one at a time).
    pub(super) take_pending: bool,
    /// Bytes (as [`super::Entry::size`]) of entries applied since the last snapshot.
    pub(super) bytes_since: u64,
    /// A record to write with the next persist.
    pub(super) unpersisted: Option<SnapshotRecord>,
    /// Leader: transfers in progress, by follower.
    pub(super) sends: BTreeMap<NodeId, SnapshotSend>,
    /// Leader: followers that need a snapshot but wait for a free transfer slot.
    pub(super) waiting: BTreeSet<NodeId>,
    /// Follower: the snapshot being received.
    pub(super) recv: Option<SnapshotRecv>,
    pub(super) stats: SnapshotStats,
}

impl RaftNode {
    /// The newest snapshot this node holds, if any.
    pub fn snapshot_meta(&self) -> Option<&SnapshotMeta> {
        self.snap.meta.as_ref()
    }

    /// Counters of snapshot activity in this incarnation.
    pub fn snapshot_stats(&self) -> SnapshotStats {
        self.snap.stats
    }

    /// Adopts the membership a snapshot at `index` carries (at install): it becomes the base,
    /// and configuration entries after the snapshot still in the log decide as at a restart.
    /// Only followers install snapshots, so no leader state depends on it.
    pub(super) fn adopt_snapshot_membership(&mut self, index: LogIndex, m: &Membership) {
        if m.validate().is_err() {
            debug_assert!(false, "snapshot membership was validated at the boundary");
            return;
        }
        debug_assert_ne!(self.role, Role::Leader, "leaders do not install snapshots");
        self.base_membership = m.clone();
        self.conf_scanned = self.conf_scanned.max(index);
        self.adopt_membership_from_log(Time::ZERO);
    }

    /// Counts applied entry bytes towards the compaction policy.
    pub(super) fn snapshot_note_applied(&mut self, from: LogIndex, to: LogIndex) {
        for i in from..=to {
            if let Some(e) = self.log.get(i) {
                self.snap.bytes_since += e.size() as u64;
            }
        }
    }

    /// Asks the driver for a snapshot once the policy says so: `snapshot_entries` entries or
    /// `snapshot_bytes` bytes applied since the last snapshot (both counted at `>=`).
    pub(super) fn maybe_request_snapshot(&mut self, out: &mut Vec<RaftOutput>) {
        if self.snap.take_pending || self.snap.recv.as_ref().is_some_and(|r| r.installing) {
            return;
        }
        let base = self.snap.meta.as_ref().map_or(0, |m| m.index);
        if self.applied <= base {
            return;
        }
        let entries = self.applied - base;
        if entries >= self.cfg.snapshot_entries || self.snap.bytes_since >= self.cfg.snapshot_bytes {
            self.snap.take_pending = true;
            out.push(RaftOutput::TakeSnapshot { index: self.applied });
        }
    }

    /// The driver durably holds a snapshot of its applied state at `meta.index`: compact the log
    /// behind it, keeping `snapshot_keep_entries` entries for followers that are only a little
    /// behind, and write the record that tells recovery where the log starts.
    pub(super) fn handle_snapshot_taken(&mut self, mut meta: SnapshotMeta) {
        self.snap.take_pending = false;
        let current = self.snap.meta.as_ref().map_or(0, |m| m.index);
        if InjectedBugs::on(self.bugs().compact_uncommitted) && self.log.last_index() > meta.index {
            // The bug: label (and compact) the snapshot at the end of the log, beyond what was
            // committed and applied. The bytes hold the applied state only.
            meta.index = self.log.last_index();
            meta.term = self.log.last_term();
        }
        // A driver may only snapshot what it applied, at an entry we hold with that term.
        let sane = meta.index > current
            && (meta.index <= self.applied || InjectedBugs::on(self.bugs().compact_uncommitted))
            && self.log.term_at(meta.index) == Some(meta.term)
            && meta.membership.validate().is_ok();
        if !sane {
            return;
        }
        let keep_from = meta.index.saturating_sub(self.cfg.snapshot_keep_entries);
        let base = keep_from.max(self.log.base_index());
        self.compact_log(base, &meta);
        self.snap.bytes_since = 0;
        self.snap.stats.taken += 1;
        self.snap.meta = Some(meta);
    }

    /// Drops log entries up to `base` (covered by the durable snapshot `meta`) and queues the
    /// record that makes the compaction known to recovery.
    fn compact_log(&mut self, base: LogIndex, meta: &SnapshotMeta) {
        let Some(base_term) = self.log.term_at(base) else {
            debug_assert!(false, "compaction point {base} not in the log");
            return;
        };
        // The base configuration follows the log's start: configuration entries compacted away
        // are summed up in it.
        self.base_membership = self.newest_conf_in_log(base).map_or_else(|| self.base_membership.clone(), |(_, m)| m);
        self.log.compact_to(base);
        // The snapshot is durable (the driver wrote it before telling us), so everything it
        // covers is durable here whatever the WAL holds.
        self.durable_index = self.durable_index.max(meta.index.min(self.log.last_index()));
        self.clamp_unpersisted_to_log();
        self.snap.unpersisted =
            Some(SnapshotRecord { meta: meta.clone(), log_base: base, log_base_term: base_term, reset: false });
    }

    /// Entries not yet written but already compacted away need no writing: the snapshot holds
    /// them. The write resumes after the log base.
    pub(super) fn clamp_unpersisted_to_log(&mut self) {
        let first = self.log.first_index();
        if let Some(from) = self.unpersisted_from
            && from < first
        {
            self.unpersisted_from = (first <= self.log.last_index()).then_some(first);
        }
    }

    /// The snapshot record to write with the next persist, if any.
    pub(super) fn take_unpersisted_snapshot(&mut self) -> Option<SnapshotRecord> {
        self.snap.unpersisted.take()
    }

    /// An append reaching below our compacted base: what is at or below the base is committed
    /// and held by our snapshot, so it is cut off and the append continues at the base. `None`
    /// if the append contradicts the base's term (a broken leader: refuse it).
    pub(super) fn trim_append_to_snapshot(
        &self,
        prev_index: LogIndex,
        prev_term: Term,
        mut entries: Vec<Entry>,
    ) -> Option<(LogIndex, Term, Vec<Entry>)> {
        let base = self.log.base_index();
        if prev_index >= base {
            return Some((prev_index, prev_term, entries));
        }
        let base_term = self.log.term_at(base)?;
        let skip = ((base - prev_index) as usize).min(entries.len());
        if entries.get(skip.wrapping_sub(1)).is_some_and(|e| e.index == base && e.term != base_term) {
            return None;
        }
        entries.drain(..skip);
        Some((base, base_term, entries))
    }

    /// Whether a snapshot record waits to be written.
    pub(super) fn snapshot_dirty(&self) -> bool {
        self.snap.unpersisted.is_some()
    }
}
