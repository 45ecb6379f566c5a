//! What a Raft node writes to disk, and how its durable state is rebuilt from those writes.
//!
//! The node emits [`PersistRecord`]s in order; the driver appends each to a write-ahead log and
//! acknowledges it once synced. Recovery replays the records in order. Keeping replay here (pure,
//! in core) means the simulator's disk and the runtime's file WAL recover identically.

use super::message::{Entry, HardState, LogIndex};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One durable write: an optional new hard state, and entries that replace the log from
/// `entries[0].index` onwards (truncating anything at or after it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistRecord {
    /// New term/vote, if changed.
    pub hard_state: Option<HardState>,
    /// Contiguous entries; the log is cut at the first one's index before they are appended.
    pub entries: Vec<Entry>,
}

/// The durable state of a node: what it may rely on after a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableState {
    /// Term and vote.
    pub hard_state: HardState,
    /// The durable log, contiguous from index 1.
    pub entries: Vec<Entry>,
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
        if let Some(first) = record.entries.first() {
            for (i, e) in record.entries.iter().enumerate() {
                if e.index != first.index + i as u64 {
                    return Err(RecoveryError::NotContiguous { record: record_no, index: e.index });
                }
            }
            let last = self.entries.len() as u64;
            if first.index == 0 || first.index > last + 1 {
                return Err(RecoveryError::Gap { record: record_no, start: first.index, last });
            }
            self.entries.truncate((first.index - 1) as usize);
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
            PersistRecord { hard_state: Some(HardState { term: 1, vote: Some(1) }), entries: vec![e(1, 1), e(1, 2), e(1, 3)] },
            PersistRecord { hard_state: Some(HardState { term: 2, vote: None }), entries: vec![e(2, 2)] },
            PersistRecord { hard_state: None, entries: vec![e(2, 3)] },
        ];
        let s = DurableState::replay(&records).unwrap();
        assert_eq!(s.hard_state, HardState { term: 2, vote: None });
        assert_eq!(s.entries, vec![e(1, 1), e(2, 2), e(2, 3)]);
    }

    #[test]
    fn replay_rejects_gaps_and_term_regression() {
        let gap = [PersistRecord { hard_state: None, entries: vec![e(1, 2)] }];
        assert_eq!(DurableState::replay(&gap), Err(RecoveryError::Gap { record: 0, start: 2, last: 0 }));
        let regress = [
            PersistRecord { hard_state: Some(HardState { term: 3, vote: None }), entries: vec![] },
            PersistRecord { hard_state: Some(HardState { term: 2, vote: None }), entries: vec![] },
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

/// What reading a write-ahead log found.
#[derive(Debug, Default)]
pub struct WalReplay {
    /// Records that passed their checksum, in order.
    pub records: Vec<PersistRecord>,
    /// Length of the valid prefix; the driver truncates the file here before appending again.
    pub valid_len: usize,
    /// Bytes after the valid prefix (a torn or corrupt tail), if any.
    pub discarded_tail: usize,
}

/// Reads framed records until the end or the first frame that is incomplete or fails its
/// checksum (a write torn by a crash). Never panics, whatever the bytes.
pub fn decode_wal(bytes: &[u8]) -> WalReplay {
    let mut replay = WalReplay::default();
    let mut pos = 0usize;
    while bytes.len() - pos >= WAL_FRAME_HEADER {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let body_start = pos + WAL_FRAME_HEADER;
        let Some(body_end) = body_start.checked_add(len).filter(|&e| e <= bytes.len()) else { break };
        let body = &bytes[body_start..body_end];
        if blake3::hash(body).as_bytes()[..16] != bytes[pos + 4..body_start] {
            break;
        }
        let Ok(record) = crate::wire::decode::<PersistRecord>(body) else { break };
        replay.records.push(record);
        pos = body_end;
    }
    replay.valid_len = pos;
    replay.discarded_tail = bytes.len() - pos;
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
                hard_state: Some(HardState { term: i, vote: Some(i % 3) }),
                entries: vec![Entry { term: i, index: i, payload: EntryPayload::Command(vec![i as u8; i as usize]) }],
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
        fn torn_or_flipped_tail_is_cut_at_a_frame_boundary(cut in 0usize..400, flip in proptest::option::of((0usize..400, 0u8..8))) {
            let frames: Vec<Vec<u8>> = sample().iter().map(encode_wal_frame).collect();
            let mut bytes: Vec<u8> = frames.concat();
            let cut = cut.min(bytes.len());
            bytes.truncate(cut);
            if let Some((pos, bit)) = flip && pos < bytes.len() {
                bytes[pos] ^= 1 << bit;
            }
            let r = decode_wal(&bytes);
            // Whatever survives is an exact prefix of what was written.
            prop_assert_eq!(&r.records[..], &sample()[..r.records.len()]);
            let boundary: usize = frames[..r.records.len()].iter().map(Vec::len).sum();
            prop_assert_eq!(r.valid_len, boundary);
        }
    }
}
