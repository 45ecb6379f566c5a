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
