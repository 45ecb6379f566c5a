//! When to checkpoint the WAL and which segments to delete after it (the checkpoint itself:
//! `checkpoint`).
//!
//! Policy: once the bytes appended since the last checkpoint began exceed
//! `max(bound, 2 × the live state)` (the live state: what a checkpoint would write now, the
//! retained entries of every group), the loop copies the mirror and has the checkpoint built
//! off the loop, then writes it; once it is durable (the WAL's durable seq passed its `End`),
//! every segment whose records all precede its id (the first seq the copy did not cover) is
//! deleted. The factor 2 keeps the rewrite amortised when the live state itself is large: at
//! most a third of the bytes written are checkpoint copies. It also waits out a burst: under
//! ingest every byte written is live until the groups compact behind their snapshots, and a
//! checkpoint then would copy all of it (67 MB on each of three nodes sharing a disk, whose
//! write made every later record wait 1.6 s); a little later the compactions have shrunk the
//! live state and the checkpoint is small. One checkpoint is in flight at a time. The WAL then
//! holds at most about `max(bound, 2 × live)` + the live state + one segment.
//!
//! The live state is summed over the mirror's entries, so it is measured only once `bound` is
//! exceeded, and then again after every further `bound / 8` bytes, not on every record.

use super::checkpoint::Mirror;
use vecraft_core::raft::PersistRecord;

/// Default of `wal_checkpoint_bytes`.
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 64 << 20;

/// Framing bytes of a WAL record around its payload (length, seq, crc).
const RECORD_OVERHEAD: u64 = 16;

/// The loop's WAL trimming state.
#[derive(Debug)]
pub struct WalTrim {
    mirror: Mirror,
    bound: u64,
    since: u64,
    /// `(id, end seq)` of a written checkpoint whose old segments (all records below `id`) are
    /// not deleted yet.
    in_flight: Option<(u64, u64)>,
    /// A checkpoint is being built off the loop.
    building: bool,
    /// The live state as last measured, and the value of `since` then.
    live: Option<(u64, u64)>,
    /// Checkpoints written in this process.
    pub checkpoints: u64,
}

impl WalTrim {
    /// `wal_checkpoint_bytes` (0: checkpoints off).
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// Starts with `mirror` (from recovery); `bound` is `wal_checkpoint_bytes` (0 disables).
    pub fn new(mirror: Mirror, bound: u64) -> WalTrim {
        WalTrim {
            mirror,
            bound,
            since: 0,
            in_flight: None,
            building: false,
            live: None,
            checkpoints: 0,
        }
    }

    /// A record was queued to the WAL with a payload of `len` bytes.
    pub fn persisted(&mut self, record: &PersistRecord, len: usize) {
        self.mirror.apply(record);
        self.since += len as u64 + RECORD_OVERHEAD;
    }

    /// A shard was dropped: its state leaves the next checkpoint.
    pub fn dropped(&mut self, group: vecraft_core::raft::GroupId) {
        self.mirror.drop_group(group);
    }

    /// The mirror (for tests and status).
    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    /// If a checkpoint is due: a copy of the mirror as of `next_seq` (the WAL seq of the next
    /// record, which becomes the checkpoint's id), for [`Mirror::checkpoint`] to encode off the
    /// loop; the caller then reports [`WalTrim::written`] or [`WalTrim::abandoned`]. The copy is
    /// cheap: entries share their command bytes.
    pub fn due(&mut self, next_seq: u64) -> Option<(u64, Mirror)> {
        if self.bound == 0
            || self.building
            || self.in_flight.is_some()
            || self.mirror.broken().is_some()
            || self.since <= self.bound
        {
            return None;
        }
        let stale = self.live.is_none_or(|(_, at)| self.since >= at + (self.bound / 8).max(1));
        if stale {
            self.live = Some((self.mirror.live_bytes(), self.since));
        }
        let live = self.live.map_or(0, |(l, _)| l);
        if self.since <= 2 * live {
            return None;
        }
        self.building = true;
        self.live = None;
        Some((next_seq, self.mirror.clone()))
    }

    /// The checkpoint `id` was queued to the WAL; its last record (`End`) has seq `end`, and it
    /// took `bytes` of payload.
    pub fn written(&mut self, id: u64, end: u64, bytes: u64) {
        debug_assert!(self.building);
        self.building = false;
        // Everything from `id` on stays in the WAL beside the checkpoint.
        self.since = bytes;
        self.in_flight = Some((id, end));
        self.checkpoints += 1;
    }

    /// The build gave up (a group too large for one record, or checkpoints off): not retried
    /// before another `bound` of bytes.
    pub fn abandoned(&mut self) {
        self.building = false;
        self.since = 0;
        self.live = None;
    }

    /// The WAL is durable up to `durable`: the seq below which segments may now be deleted, once
    /// (the caller queues the deletion and calls [`WalTrim::truncation_queued`]).
    pub fn deletable_below(&self, durable: u64) -> Option<u64> {
        match self.in_flight {
            Some((id, end)) if durable >= end => Some(id),
            _ => None,
        }
    }

    /// The deletion was queued.
    pub fn truncation_queued(&mut self) {
        self.in_flight = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use vecraft_core::raft::{Entry, EntryPayload};

    #[test]
    fn checkpoints_after_the_bound_and_deletes_only_once_durable() {
        let mut t = WalTrim::new(Mirror::new(&BTreeMap::new(), BTreeMap::new()), 1000);
        let rec = |i| PersistRecord {
            group: 1,
            entries: vec![Entry {
                term: 1,
                index: i,
                payload: EntryPayload::Noop,
            }],
            ..PersistRecord::default()
        };
        for i in 1..=9 {
            t.persisted(&rec(i), 90);
        }
        assert!(t.due(10).is_none(), "{} bytes: not yet", t.since);
        t.persisted(&rec(10), 90);
        let (id, copy) = t.due(11).expect("due");
        assert_eq!(id, 11);
        assert!(t.due(12).is_none(), "one being built");
        // Records keep coming while the copy is encoded; the copy does not see them.
        t.persisted(&rec(11), 90);
        let p = copy.checkpoint(id, 1 << 20).expect("built");
        assert_eq!(p.len(), 3, "begin, group 1, end");
        assert_eq!(copy.state(1).unwrap().entries.len(), 10);
        // Written at seqs 12..=14 (record 11 went to seq 11 meanwhile).
        t.written(id, 14, p.iter().map(|x| x.len() as u64).sum());
        assert!(t.due(20).is_none(), "one in flight");
        assert_eq!(t.deletable_below(13), None);
        assert_eq!(t.deletable_below(14), Some(11), "segments below the id, not below the Begin");
        t.truncation_queued();
        assert_eq!(t.deletable_below(100), None);
    }

    #[test]
    fn a_large_live_state_waits_for_its_compaction() {
        use vecraft_core::raft::{Membership, SnapshotMeta, SnapshotRecord};
        let mut t = WalTrim::new(Mirror::new(&BTreeMap::new(), BTreeMap::new()), 1000);
        let entry = |i| Entry { term: 1, index: i, payload: EntryPayload::Command(vec![7u8; 300].into()) };
        for i in 1..=4 {
            t.persisted(&PersistRecord { group: 1, entries: vec![entry(i)], ..PersistRecord::default() }, 330);
        }
        // 4 × 346 = 1,384 bytes written, past the bound, but all of it live (4 × 324 bytes):
        // a checkpoint now would copy everything.
        assert_eq!(t.mirror().live_bytes(), 4 * 324);
        assert!(t.due(5).is_none());
        // The group compacts behind a snapshot; its next record (past bound / 8 more bytes)
        // finds the live state empty, and the checkpoint is due.
        let meta = SnapshotMeta::for_bytes(4, 1, Membership::simple([1, 2, 3]), b"state");
        let compaction = SnapshotRecord { meta, log_base: 4, log_base_term: 1, reset: false };
        t.persisted(&PersistRecord { group: 1, snapshot: Some(compaction), ..PersistRecord::default() }, 100);
        assert!(t.due(6).is_none(), "1,500 bytes: measured 116 bytes ago, not measured again yet");
        t.persisted(&PersistRecord { group: 1, ..PersistRecord::default() }, 0);
        assert_eq!(t.mirror().live_bytes(), 0);
        let (id, copy) = t.due(7).expect("due once the live state is measured again");
        assert_eq!(id, 7);
        let bytes: usize = copy.checkpoint(id, 1 << 20).unwrap().iter().map(Vec::len).sum();
        assert!(bytes < 200, "a small checkpoint: {bytes} bytes");
    }

    #[test]
    fn an_abandoned_build_waits_for_another_bound() {
        let mut t = WalTrim::new(Mirror::new(&BTreeMap::new(), BTreeMap::new()), 100);
        t.persisted(&PersistRecord { group: 1, ..PersistRecord::default() }, 200);
        assert!(t.due(2).is_some());
        t.abandoned();
        assert!(t.due(3).is_none(), "since was reset");
        t.persisted(&PersistRecord { group: 1, ..PersistRecord::default() }, 200);
        assert!(t.due(4).is_some());
    }
}
