//! What a Raft node writes to disk, and how its durable state is rebuilt from those writes.
//!
//! The node emits [`PersistRecord`]s in order; the driver appends each to a write-ahead log and
//! acknowledges it once synced. Recovery replays the records in order. Keeping replay here (pure,
//! in core) means the simulator's disk and the runtime's file WAL recover identically.

use super::message::{Entry, GroupId, HardState, LogIndex, Term};
use super::snapshot::{SnapshotMeta, SnapshotRecord};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One durable write: an optional new hard state, and entries that replace the log from
/// `entries[0].index` onwards (truncating anything at or after it).
///
/// Records carry their group because every group of a node shares one durable stream: recovery
/// splits the stream by owner and, when it finds corruption, knows which groups it hit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistRecord {
    /// The group that wrote it.
    pub group: GroupId,
    /// New term/vote, if changed.
    pub hard_state: Option<HardState>,
    /// Contiguous entries; the log is cut at the first one's index before they are appended.
    pub entries: Vec<Entry>,
    /// A snapshot now in force and where the log starts behind it (applied before the hard
    /// state and the entries).
    pub snapshot: Option<SnapshotRecord>,
}

/// The durable state of a node: what it may rely on after a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableState {
    /// Term and vote.
    pub hard_state: HardState,
    /// The durable log, contiguous from `base_index + 1`.
    pub entries: Vec<Entry>,
    /// Last compacted index (0 without compaction): the log before it lives in `snapshot`.
    pub base_index: LogIndex,
    /// Term of the entry at `base_index`.
    pub base_term: Term,
    /// The newest snapshot a compaction or an install recorded.
    pub snapshot: Option<SnapshotMeta>,
    /// Recovery found acknowledged records destroyed (corruption followed by valid records):
    /// this node may have lost votes and entries it promised, so it must not vote or campaign
    /// until a leader of a later term has repaired it (see `RaftNode`).
    pub damaged: bool,
}

impl DurableState {
    /// The highest term anywhere in this state: after damage, no vote is cast at or below it.
    pub fn max_term(&self) -> Term {
        self.entries.iter().map(|e| e.term).max().unwrap_or(0).max(self.hard_state.term).max(self.base_term)
    }

    /// Index of the last durable entry (the base if none follows it).
    pub fn last_index(&self) -> LogIndex {
        self.base_index + self.entries.len() as u64
    }

    /// The durable entry at `index`, if held (not compacted, not beyond the end).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.base_index {
            return None;
        }
        self.entries.get((index - self.base_index - 1) as usize)
    }

    /// Applies a snapshot record: the log now starts after `log_base` (or is empty after it, if
    /// the record resets it, or if what we hold does not join the base).
    fn apply_snapshot_record(&mut self, r: &SnapshotRecord) {
        let base = r.log_base;
        if base < self.base_index {
            return; // older than what we already compacted: nothing to learn
        }
        if r.reset || base > self.last_index() {
            self.entries.clear();
        } else {
            self.entries.drain(..(base - self.base_index) as usize);
        }
        self.base_index = base;
        self.base_term = r.log_base_term;
        if self.snapshot.as_ref().is_none_or(|m| m.index < r.meta.index) {
            self.snapshot = Some(r.meta.clone());
        }
    }

    /// Makes a snapshot the driver holds (perhaps newer than the last one the WAL recorded: a
    /// crash can fall between storing a snapshot and writing its record) the node's starting
    /// point: entries up to it are dropped if the log holds it with its term, the whole log
    /// otherwise. A snapshot the WAL already recorded still cuts a log that ends before it
    /// (entries kept behind it, then lost with a damaged tail): the log must reach the state
    /// machine's index. Older snapshots change nothing.
    pub fn adopt_snapshot(&mut self, meta: SnapshotMeta) {
        let recorded = self.snapshot.as_ref().is_some_and(|m| m.index >= meta.index);
        if recorded && self.last_index() >= meta.index {
            return;
        }
        let holds = meta.index >= self.base_index
            && (self.entry(meta.index).map(|e| e.term) == Some(meta.term)
                || (meta.index == self.base_index && self.base_term == meta.term));
        let record = SnapshotRecord { log_base: meta.index, log_base_term: meta.term, reset: !holds, meta };
        self.apply_snapshot_record(&record);
    }
}

/// Durable records that do not fit together: the disk contents are corrupt in a way checksums did
/// not catch, or were written by a buggy driver.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecoveryError {
    /// A record's entries are not contiguous.
    #[error("record {record}: entries are not contiguous at index {index}")]
    NotContiguous {
        /// Position of the record in the write order.
        record: usize,
        /// Where the gap is.
        index: LogIndex,
    },
    /// A record starts past the end of the log (a gap).
    #[error("record {record}: starts at index {start} but the log ends at {last}")]
    Gap {
        /// Position of the record in the write order.
        record: usize,
        /// First index in the record.
        start: LogIndex,
        /// Last index of the log before it.
        last: LogIndex,
    },
    /// Term went backwards: a vote could be cast twice.
    #[error("record {record}: term went backwards from {from} to {to}")]
    TermRegressed {
        /// Position of the record in the write order.
        record: usize,
        /// Term before.
        from: u64,
        /// Term in the record.
        to: u64,
    },
}

impl DurableState {
    /// Applies one record on top of this state.
    pub fn apply(&mut self, record_no: usize, record: &PersistRecord) -> Result<(), RecoveryError> {
        if let Some(hs) = record.hard_state {
            if hs.term < self.hard_state.term {
                return Err(RecoveryError::TermRegressed { record: record_no, from: self.hard_state.term, to: hs.term });
            }
            self.hard_state = hs;
        }
        if let Some(snapshot) = &record.snapshot {
            self.apply_snapshot_record(snapshot);
        }
        if let Some(first) = record.entries.first() {
            for (i, e) in record.entries.iter().enumerate() {
                if first.index.checked_add(i as u64) != Some(e.index) {
                    return Err(RecoveryError::NotContiguous { record: record_no, index: e.index });
                }
            }
            let last = self.last_index();
            // `first - 1 > last`, not `first > last + 1`: a log may end at `u64::MAX`.
            if first.index <= self.base_index || first.index - 1 > last {
                return Err(RecoveryError::Gap { record: record_no, start: first.index, last });
            }
            self.entries.truncate((first.index - 1 - self.base_index) as usize);
            self.entries.extend_from_slice(&record.entries);
        }
        Ok(())
    }

    /// Rebuilds the durable state from records in write order.
    pub fn replay<'a>(records: impl IntoIterator<Item = &'a PersistRecord>) -> Result<Self, RecoveryError> {
        let mut state = DurableState::default();
        for (i, r) in records.into_iter().enumerate() {
            state.apply(i, r)?;
        }
        Ok(state)
    }

    /// Recovers one group's state from a node's durable stream. Records that do not fit together
    /// despite valid checksums (a misdirected write, a buggy driver) and corruption before valid
    /// records both yield a damaged state: never a silently shortened log that still votes.
    pub fn recover(replay: &WalReplay, group: GroupId) -> DurableState {
        let mine = replay.records.iter().filter(|r| r.group == group);
        if !matches!(replay.tail, WalTail::Corrupt { .. })
            && let Ok(state) = DurableState::replay(mine.clone())
        {
            return state;
        }
        DurableState::replay_damaged(mine)
    }

    /// Rebuilds the state after recovery found corruption: records are applied in write order
    /// where they fit (a destroyed record may leave a gap; a record that does not fit onto the log
    /// is skipped, a later one that does — a repair written after the damage — is applied), the
    /// highest hard state survives, and the state is marked damaged. Nothing here is trusted as
    /// complete; the node repairs itself from a leader before it votes again.
    pub fn replay_damaged<'a>(records: impl IntoIterator<Item = &'a PersistRecord>) -> Self {
        let mut state = DurableState { damaged: true, ..DurableState::default() };
        let mut seen_term = 0;
        for r in records {
            seen_term = r.entries.iter().map(|e| e.term).chain(r.hard_state.map(|h| h.term)).fold(seen_term, u64::max);
            if let Some(hs) = r.hard_state
                && hs.term >= state.hard_state.term
            {
                state.hard_state = hs;
            }
            if let Some(snapshot) = &r.snapshot {
                seen_term = seen_term.max(snapshot.meta.term);
                state.apply_snapshot_record(snapshot);
            }
            if r.entries.is_empty() {
                continue;
            }
            let first = r.entries[0].index;
            let contiguous = r.entries.iter().enumerate().all(|(k, e)| first.checked_add(k as u64) == Some(e.index));
            if contiguous && first > state.base_index && first - 1 <= state.last_index() {
                state.entries.truncate((first - 1 - state.base_index) as usize);
                state.entries.extend_from_slice(&r.entries);
            }
        }
        // Entries of terms above the hard state still prove the term was reached, placed or not.
        let max = state.max_term().max(seen_term);
        if max > state.hard_state.term {
            state.hard_state = HardState { term: max, vote: None };
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::message::EntryPayload;

    fn e(term: u64, index: u64) -> Entry {
        Entry { term, index, payload: EntryPayload::Noop }
    }

    #[test]
    fn replay_truncates_and_appends() {
        let records = [
            PersistRecord { group: 1, hard_state: Some(HardState { term: 1, vote: Some(1) }), entries: vec![e(1, 1), e(1, 2), e(1, 3)], snapshot: None },
            PersistRecord { group: 1, hard_state: Some(HardState { term: 2, vote: None }), entries: vec![e(2, 2)], snapshot: None },
            PersistRecord { group: 1, hard_state: None, entries: vec![e(2, 3)], snapshot: None },
        ];
        let s = DurableState::replay(&records).unwrap();
        assert_eq!(s.hard_state, HardState { term: 2, vote: None });
        assert_eq!(s.entries, vec![e(1, 1), e(2, 2), e(2, 3)]);
    }

    fn meta(index: u64, term: u64) -> crate::raft::SnapshotMeta {
        crate::raft::SnapshotMeta::for_bytes(index, term, crate::raft::Membership::simple([1, 2, 3]), b"state")
    }

    fn snap_record(index: u64, term: u64, log_base: u64) -> PersistRecord {
        let record = SnapshotRecord { meta: meta(index, term), log_base, log_base_term: term, reset: false };
        PersistRecord { group: 1, hard_state: None, entries: vec![], snapshot: Some(record) }
    }

    #[test]
    fn replay_starts_the_log_after_a_compaction_record() {
        let records = [
            PersistRecord { group: 1, hard_state: None, entries: (1..=6).map(|i| e(1, i)).collect(), snapshot: None },
            snap_record(5, 1, 3),
            PersistRecord { group: 1, hard_state: None, entries: vec![e(2, 7)], snapshot: None },
        ];
        let s = DurableState::replay(&records).unwrap();
        assert_eq!((s.base_index, s.base_term, s.last_index()), (3, 1, 7));
        assert_eq!(s.entry(3), None);
        assert_eq!(s.entry(4), Some(&e(1, 4)));
        assert_eq!(s.snapshot.as_ref().map(|m| m.index), Some(5));
        // Entries may not be written into the compacted prefix.
        let bad = [records[0].clone(), records[1].clone(), PersistRecord { group: 1, hard_state: None, entries: vec![e(2, 3)], snapshot: None }];
        assert!(matches!(DurableState::replay(&bad), Err(RecoveryError::Gap { .. })));
    }

    #[test]
    fn adopting_a_snapshot_cuts_the_log_to_reach_it() {
        // The store holds a snapshot newer than the WAL's record: entries up to it go.
        let mut s = DurableState::replay(&[PersistRecord { group: 1, hard_state: None, entries: (1..=6).map(|i| e(1, i)).collect(), snapshot: None }]).unwrap();
        s.adopt_snapshot(meta(4, 1));
        assert_eq!((s.base_index, s.last_index()), (4, 6));
        // A recorded snapshot whose kept entries were lost (the log ends before it): the log is
        // reset to it, so the node's log reaches what its state machine holds.
        let mut s = DurableState::replay(&[snap_record(9, 2, 5)]).unwrap();
        assert_eq!(s.last_index(), 5);
        s.adopt_snapshot(meta(9, 2));
        assert_eq!((s.base_index, s.base_term, s.last_index()), (9, 2, 9));
        // A snapshot whose term the log contradicts replaces the log.
        let mut s = DurableState::replay(&[PersistRecord { group: 1, hard_state: None, entries: (1..=6).map(|i| e(1, i)).collect(), snapshot: None }]).unwrap();
        s.adopt_snapshot(meta(4, 3));
        assert_eq!((s.base_index, s.base_term, s.last_index()), (4, 3, 4));
    }

    #[test]
    fn hostile_indexes_are_errors_not_overflows() {
        let wrap = [PersistRecord { group: 1, hard_state: None, entries: vec![e(1, u64::MAX), e(1, 0)], snapshot: None }];
        assert!(matches!(DurableState::replay(&wrap), Err(RecoveryError::NotContiguous { .. })));
    }

    #[test]
    fn damaged_replay_keeps_the_highest_term_and_stops_the_log_at_a_gap() {
        let records = [
            PersistRecord { group: 1, hard_state: Some(HardState { term: 2, vote: Some(1) }), entries: vec![e(1, 1), e(2, 2)], snapshot: None },
            // The record holding index 3 was destroyed; index 4 survives but cannot be placed.
            PersistRecord { group: 1, hard_state: None, entries: vec![e(3, 4)], snapshot: None },
        ];
        let s = DurableState::replay_damaged(&records);
        assert!(s.damaged);
        assert_eq!(s.entries, vec![e(1, 1), e(2, 2)]);
        assert_eq!(s.hard_state.term, 3, "a surviving entry of term 3 proves term 3 was reached");
    }

    #[test]
    fn replay_rejects_gaps_and_term_regression() {
        let gap = [PersistRecord { group: 1, hard_state: None, entries: vec![e(1, 2)], snapshot: None }];
        assert_eq!(DurableState::replay(&gap), Err(RecoveryError::Gap { record: 0, start: 2, last: 0 }));
        let regress = [
            PersistRecord { group: 1, hard_state: Some(HardState { term: 3, vote: None }), entries: vec![], snapshot: None },
            PersistRecord { group: 1, hard_state: Some(HardState { term: 2, vote: None }), entries: vec![], snapshot: None },
        ];
        assert!(matches!(DurableState::replay(&regress), Err(RecoveryError::TermRegressed { .. })));
    }
}

/// Bytes of framing around each record in a write-ahead log: `len: u32 LE`, then the first 16
/// bytes of the blake3 hash of the body, then the body (a versioned postcard [`PersistRecord`]).
pub const WAL_FRAME_HEADER: usize = 4 + 16;

/// Frames one record for appending to a write-ahead log file.
pub fn encode_wal_frame(record: &PersistRecord) -> Vec<u8> {
    let body = crate::wire::encode(record).expect("PersistRecord always encodes");
    let mut out = Vec::with_capacity(WAL_FRAME_HEADER + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&blake3::hash(&body).as_bytes()[..16]);
    out.extend_from_slice(&body);
    out
}

/// How a write-ahead log ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WalTail {
    /// Every byte belonged to a valid record.
    #[default]
    Clean,
    /// The last record is incomplete or fails its checksum and nothing valid follows: a write torn
    /// by a crash, never acknowledged. Safe to truncate.
    Torn {
        /// Bytes cut.
        bytes: usize,
    },
    /// A bad record is followed by valid ones: acknowledged data was destroyed. The valid records
    /// after the damage are still returned; the node must be repaired, not silently truncated.
    Corrupt {
        /// Offset of the first bad byte range.
        at: usize,
        /// How many valid records were found after it.
        valid_after: usize,
    },
}

/// What reading a write-ahead log found.
#[derive(Debug, Default)]
pub struct WalReplay {
    /// Records that passed their checksum, in order (after a corruption: those before it, then
    /// those found after it).
    pub records: Vec<PersistRecord>,
    /// Length of the valid prefix; the driver truncates the file here before appending again
    /// (only after a torn tail: after corruption the driver rewrites what it recovered).
    pub valid_len: usize,
    /// Bytes after the valid prefix (a torn or corrupt tail), if any.
    pub discarded_tail: usize,
    /// Whether the log ended cleanly, torn, or corrupt.
    pub tail: WalTail,
}

/// Decodes one frame at `pos`, if a complete, checksum-valid record starts there.
fn frame_at(bytes: &[u8], pos: usize) -> Option<(PersistRecord, usize)> {
    let header = bytes.get(pos..pos.checked_add(WAL_FRAME_HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let body_start = pos + WAL_FRAME_HEADER;
    let body = bytes.get(body_start..body_start.checked_add(len)?)?;
    if len == 0 || blake3::hash(body).as_bytes()[..16] != header[4..] {
        return None;
    }
    let record = crate::wire::decode::<PersistRecord>(body).ok()?;
    Some((record, body_start + len))
}

/// Reads framed records until the end or the first frame that is incomplete or fails its
/// checksum, then tells a torn tail (nothing valid after it) from corruption (valid frames
/// after it, found by scanning forward byte by byte: a 128-bit checksum does not match by
/// chance). Never panics, whatever the bytes.
pub fn decode_wal(bytes: &[u8]) -> WalReplay {
    let mut replay = WalReplay::default();
    let mut pos = 0usize;
    while let Some((record, next)) = frame_at(bytes, pos) {
        replay.records.push(record);
        pos = next;
    }
    replay.valid_len = pos;
    replay.discarded_tail = bytes.len() - pos;
    if pos == bytes.len() {
        return replay;
    }
    let bad = pos;
    let mut scan = bad + 1;
    let mut valid_after = 0;
    while scan + WAL_FRAME_HEADER <= bytes.len() {
        match frame_at(bytes, scan) {
            Some((record, next)) => {
                replay.records.push(record);
                valid_after += 1;
                scan = next;
            }
            None => scan += 1,
        }
    }
    replay.tail = if valid_after == 0 {
        WalTail::Torn { bytes: bytes.len() - bad }
    } else {
        WalTail::Corrupt { at: bad, valid_after }
    };
    replay
}

#[cfg(test)]
mod wal_tests {
    use super::*;
    use crate::raft::message::EntryPayload;
    use proptest::prelude::*;

    fn sample() -> Vec<PersistRecord> {
        (1..=5)
            .map(|i| PersistRecord {
                group: 1,
                hard_state: Some(HardState { term: i, vote: Some(i % 3) }),
                entries: vec![Entry { term: i, index: i, payload: EntryPayload::Command(vec![i as u8; i as usize].into()) }],
                snapshot: None,
            })
            .collect()
    }

    #[test]
    fn round_trip() {
        let bytes: Vec<u8> = sample().iter().flat_map(encode_wal_frame).collect();
        let r = decode_wal(&bytes);
        assert_eq!(r.records, sample());
        assert_eq!(r.valid_len, bytes.len());
        assert_eq!(r.discarded_tail, 0);
    }

    proptest! {
        #[test]
        fn torn_tail_is_cut_at_a_frame_boundary(cut in 0usize..400) {
            let frames: Vec<Vec<u8>> = sample().iter().map(encode_wal_frame).collect();
            let mut bytes: Vec<u8> = frames.concat();
            let cut = cut.min(bytes.len());
            bytes.truncate(cut);
            let r = decode_wal(&bytes);
            // Whatever survives is an exact prefix of what was written, and a cut is never
            // mistaken for corruption.
            prop_assert_eq!(&r.records[..], &sample()[..r.records.len()]);
            let boundary: usize = frames[..r.records.len()].iter().map(Vec::len).sum();
            prop_assert_eq!(r.valid_len, boundary);
            let corrupt = matches!(r.tail, WalTail::Corrupt { .. });
            prop_assert!(!corrupt, "a cut is a torn tail: {:?}", r.tail);
        }

        #[test]
        fn a_flip_before_the_last_record_is_corruption_never_a_torn_tail(pos in 0usize..400, bit in 0u8..8) {
            let frames: Vec<Vec<u8>> = sample().iter().map(encode_wal_frame).collect();
            let mut bytes: Vec<u8> = frames.concat();
            let last_start = bytes.len() - frames[4].len();
            let pos = pos % last_start;
            bytes[pos] ^= 1 << bit;
            let r = decode_wal(&bytes);
            let hit = frames.iter().scan(0, |end, f| { *end += f.len(); Some(*end) }).position(|end| pos < end).unwrap();
            prop_assert_eq!(&r.records[..hit], &sample()[..hit]);
            prop_assert!(matches!(r.tail, WalTail::Corrupt { valid_after, .. } if valid_after >= 1), "{:?}", r.tail);
            // The last record survives the damage.
            let written = sample();
            prop_assert_eq!(r.records.last(), written.last());
        }
    }
}
