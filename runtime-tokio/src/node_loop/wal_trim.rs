//! When to checkpoint the WAL and which segments to delete after it (the checkpoint itself:
//! `checkpoint`).
//!
//! Policy: once the bytes appended since the last checkpoint began exceed
//! `max(bound, 2 × the last checkpoint's size)`, the loop writes a checkpoint; once it is
//! durable (the WAL's durable seq passed its `End`), every segment whose records all precede its
//! `Begin` is deleted. The factor 2 keeps the rewrite amortised when the live state itself is
//! large: at most a third of the bytes written are checkpoint copies. One checkpoint is in
//! flight at a time. The WAL then holds at most about `bound` + the live state + one segment.

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
    last_size: u64,
    /// `(begin seq, end seq)` of a written checkpoint whose old segments are not deleted yet.
    in_flight: Option<(u64, u64)>,
    /// Checkpoints written in this process.
    pub checkpoints: u64,
}

impl WalTrim {
    /// Starts with `mirror` (from recovery); `bound` is `wal_checkpoint_bytes` (0 disables).
    pub fn new(mirror: Mirror, bound: u64) -> WalTrim {
        WalTrim {
            mirror,
            bound,
            since: 0,
            last_size: 0,
            in_flight: None,
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

    /// If a checkpoint is due, its payloads, to be appended from seq `next_seq` on (the
    /// `Begin` marker carries `next_seq` as the checkpoint's id).
    pub fn due(&mut self, next_seq: u64, max_record_len: usize) -> Option<Vec<Vec<u8>>> {
        if self.bound == 0
            || self.in_flight.is_some()
            || self.since <= self.bound.max(2 * self.last_size)
        {
            return None;
        }
        let Some(payloads) = self.mirror.checkpoint(next_seq, max_record_len) else {
            // Off (broken mirror) or too large: do not retry at every step.
            self.since = 0;
            return None;
        };
        let size: u64 = payloads
            .iter()
            .map(|p| p.len() as u64 + RECORD_OVERHEAD)
            .sum();
        self.last_size = size;
        self.since = size;
        self.in_flight = Some((next_seq, next_seq + payloads.len() as u64 - 1));
        self.checkpoints += 1;
        Some(payloads)
    }

    /// The WAL is durable up to `durable`: the seq below which segments may now be deleted, once
    /// (the caller queues the deletion and calls [`WalTrim::truncation_queued`]).
    pub fn deletable_below(&self, durable: u64) -> Option<u64> {
        match self.in_flight {
            Some((begin, end)) if durable >= end => Some(begin),
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
        assert!(t.due(10, 1 << 20).is_none(), "{} bytes: not yet", t.since);
        t.persisted(&rec(10), 90);
        let p = t.due(11, 1 << 20).expect("due");
        assert_eq!(p.len(), 3, "begin, group 1, end");
        assert!(t.due(20, 1 << 20).is_none(), "one in flight");
        assert_eq!(t.deletable_below(12), None);
        assert_eq!(t.deletable_below(13), Some(11));
        t.truncation_queued();
        assert_eq!(t.deletable_below(100), None);
    }
}
