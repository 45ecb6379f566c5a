//! The in-memory Raft log: entries that may or may not be durable yet.

use super::message::{Entry, LogIndex, Term};

/// The log of one node. Index `first_index()` is the first entry held: entries up to
/// `base_index()` were compacted behind a snapshot, and only the base's term is still known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftLog {
    /// Index and term just before the first held entry (0/0 without a snapshot).
    base_index: LogIndex,
    base_term: Term,
    entries: Vec<Entry>,
}

impl RaftLog {
    /// A log holding `entries`, which must be contiguous from index 1.
    pub fn from_entries(entries: Vec<Entry>) -> Self {
        let log = RaftLog { base_index: 0, base_term: 0, entries };
        log.assert_contiguous();
        log
    }

    /// A log whose entries follow a compacted prefix ending at (`base_index`, `base_term`);
    /// `entries` must be contiguous from `base_index + 1`.
    pub fn from_parts(base_index: LogIndex, base_term: Term, entries: Vec<Entry>) -> Self {
        let log = RaftLog { base_index, base_term, entries };
        log.assert_contiguous();
        log
    }

    /// Index of the last compacted entry (0 before any compaction): `term_at` still answers for
    /// it, `get` does not.
    pub fn base_index(&self) -> LogIndex {
        self.base_index
    }

    /// Term of the entry at [`Self::base_index`].
    pub fn base_term(&self) -> Term {
        self.base_term
    }

    /// Drops every entry up to and including `index` (which must be held, or be the base).
    pub fn compact_to(&mut self, index: LogIndex) {
        if index <= self.base_index {
            return;
        }
        let Some(term) = self.term_at(index) else {
            debug_assert!(false, "compact_to({index}) beyond the log end {}", self.last_index());
            return;
        };
        let drop = (index - self.base_index) as usize;
        self.entries.drain(..drop);
        self.base_index = index;
        self.base_term = term;
    }

    /// Replaces the whole log by a compacted prefix ending at (`index`, `term`) (an installed
    /// snapshot that our log does not contain).
    pub fn reset_to(&mut self, index: LogIndex, term: Term) {
        self.entries.clear();
        self.base_index = index;
        self.base_term = term;
    }

    fn assert_contiguous(&self) {
        debug_assert!(
            self.entries.iter().enumerate().all(|(i, e)| e.index == self.base_index + 1 + i as u64),
            "log entries must be contiguous"
        );
    }

    /// Index of the last entry (0 if empty).
    pub fn last_index(&self) -> LogIndex {
        self.base_index + self.entries.len() as u64
    }

    /// Term of the last entry (0 if empty).
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.base_term, |e| e.term)
    }

    /// First index held.
    pub fn first_index(&self) -> LogIndex {
        self.base_index + 1
    }

    /// Term of the entry at `index`, `Some(0)` for index 0, `None` if not held.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        self.get(index).map(|e| e.term)
    }

    /// The entry at `index`, if held.
    pub fn get(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.base_index {
            return None;
        }
        self.entries.get((index - self.base_index - 1) as usize)
    }

    /// Entries in `[from, to]` (clamped to what is held), at most `max` of them.
    pub fn slice(&self, from: LogIndex, to: LogIndex, max: usize) -> Vec<Entry> {
        if from > to || from <= self.base_index {
            return Vec::new();
        }
        let start = (from - self.base_index - 1) as usize;
        let end = ((to - self.base_index) as usize).min(self.entries.len());
        if start >= end {
            return Vec::new();
        }
        self.entries[start..end.min(start.saturating_add(max))].to_vec()
    }

    /// Entries in `[from, to]`, at most `max` of them and, past the first, at most `max_bytes`
    /// of [`Entry::size`] in total (a single oversized entry still goes alone).
    pub fn slice_bounded(&self, from: LogIndex, to: LogIndex, max: usize, max_bytes: usize) -> Vec<Entry> {
        if from > to || from <= self.base_index {
            return Vec::new();
        }
        let start = (from - self.base_index - 1) as usize;
        let end = ((to - self.base_index) as usize).min(self.entries.len()).min(start.saturating_add(max));
        let mut bytes = 0usize;
        let mut stop = start;
        while stop < end {
            let size = self.entries[stop].size();
            if stop > start && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            stop += 1;
        }
        self.entries[start..stop].to_vec()
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as up to date as this one
    /// (Raft §5.4.1: higher last term wins, then longer log).
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Appends one entry at the end.
    pub fn push(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index() + 1, "append must extend the log");
        self.entries.push(entry);
    }

    /// Removes every entry at `index` and after.
    pub fn truncate_from(&mut self, index: LogIndex) {
        assert!(index > self.base_index, "cannot truncate below the log base");
        self.entries.truncate((index - self.base_index - 1) as usize);
    }

    /// Last index whose entry has term `term`, if any (for fast backtracking on the leader).
    pub fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        self.entries.iter().rev().find(|e| e.term == term).map(|e| e.index)
    }

    /// First index of the run of `term` that contains `index` (for the follower's reject hint).
    pub fn first_index_of_term_run(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index) else { return index };
        let mut i = index;
        while i > self.first_index() && self.term_at(i - 1) == Some(term) {
            i -= 1;
        }
        i
    }

    /// All held entries (for checkers and tests).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}
