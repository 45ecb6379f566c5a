//! What lets a change-stream subscriber resume: a bounded history of the commands this node
//! applied (their bytes, decoded only when replayed) and the cursor a subscriber carries.
//!
//! Why raw bytes: an apply lane must not pay for decoding a command nobody may ever read; it
//! copies the command's bytes (a memcpy, and the copy does not pin a larger network buffer the
//! log entry may share), and a resuming subscriber decodes what it replays.
//!
//! What it promises: for a shard group, every change applied here after `complete_after(group)`
//! is retained, in log order. Older ones were evicted (the byte budget) or applied before this
//! process started (they are in the snapshot it booted from); a cursor from before that point
//! gets a gap, never a silent hole.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use vecraft_core::node::metadata::group_shard;
use vecraft_core::raft::{GroupId, LogIndex};

/// Default bytes of applied commands kept for resuming subscribers.
pub const DEFAULT_HISTORY_BYTES: usize = 64 << 20;

/// One retained change.
#[derive(Clone, Debug, PartialEq)]
pub enum Retained {
    /// A points command and the number of points the engine said it changed.
    Command { bytes: Bytes, affected: usize },
    /// A snapshot install.
    Installed,
}

/// One retained change with where it happened.
#[derive(Clone, Debug, PartialEq)]
pub struct RetainedChange {
    /// The collection's name.
    pub collection: String,
    /// The shard group.
    pub group: GroupId,
    /// The index in the group's log.
    pub index: LogIndex,
    /// What it was.
    pub change: Retained,
}

impl RetainedChange {
    fn cost(&self) -> usize {
        let body = match &self.change {
            Retained::Command { bytes, .. } => bytes.len(),
            Retained::Installed => 0,
        };
        body + self.collection.len() + 64
    }
}

/// The bounded history of one node.
#[derive(Debug, Default)]
pub struct ChangeHistory {
    budget: usize,
    bytes: usize,
    changes: VecDeque<RetainedChange>,
    /// Per group: every change after this index is retained.
    complete_after: BTreeMap<GroupId, LogIndex>,
    /// Per group: the index of its latest change.
    last: BTreeMap<GroupId, LogIndex>,
    /// Per collection name: the newest collection number seen (a dropped and re-created
    /// collection has a new number, and its shards' logs start again at 1).
    numbers: HashMap<String, u32>,
}

impl ChangeHistory {
    /// A history of at most `budget` bytes (0 keeps nothing: no resume, every cursor a gap).
    pub fn new(budget: usize) -> Self {
        ChangeHistory { budget, ..Default::default() }
    }

    /// Records a change (in log order per group, as the lanes apply).
    pub fn push(&mut self, change: RetainedChange) {
        let (group, index) = (change.group, change.index);
        if self.last.get(&group).is_some_and(|&l| index <= l) {
            // The group's replica here started over below what it had (e.g. removed and added
            // again): what it held from that index on is not this log's any more.
            self.changes.retain(|c| c.group != group || c.index < index);
            self.bytes = self.changes.iter().map(RetainedChange::cost).sum();
            self.complete_after.insert(group, index.saturating_sub(1));
        }
        let number = group_shard(group).0;
        let newest = self.numbers.entry(change.collection.clone()).or_insert(number);
        *newest = (*newest).max(number);
        // The first change of a group since this process started: the ones before it are in
        // the snapshot it booted from, not here.
        self.complete_after.entry(group).or_insert(index.saturating_sub(1));
        if let Retained::Installed = change.change {
            // Everything before an install is superseded by it.
            self.complete_after.insert(group, index.saturating_sub(1));
        }
        self.last.insert(group, index);
        self.bytes += change.cost();
        self.changes.push_back(change);
        while self.bytes > self.budget {
            let Some(old) = self.changes.pop_front() else { break };
            self.bytes -= old.cost();
            let after = self.complete_after.entry(old.group).or_default();
            *after = (*after).max(old.index);
        }
    }

    /// The newest collection number of `collection`, if any change of it was seen.
    pub fn number(&self, collection: &str) -> Option<u32> {
        self.numbers.get(collection).copied()
    }

    /// Every change of `group` after this index is retained (`None`: none seen yet).
    pub fn complete_after(&self, group: GroupId) -> Option<LogIndex> {
        self.complete_after.get(&group).copied()
    }

    /// Where a new subscriber to `collection` starts: the latest index of each of its shards.
    pub fn position(&self, collection: &str) -> Cursor {
        let Some(number) = self.number(collection) else {
            return Cursor::default();
        };
        let shards = self
            .last
            .iter()
            .filter(|(g, _)| group_shard(**g).0 == number)
            .map(|(g, i)| (group_shard(*g).1, *i))
            .collect();
        Cursor { collection: Some(number), shards }
    }

    /// What a subscriber at `cursor` missed of `collection`: the retained changes after it, in
    /// the order they were applied, and the shards with a gap (changes after the cursor that
    /// are no longer retained), each with the index from which the history is complete.
    pub fn since(&self, collection: &str, cursor: &Cursor) -> Resume {
        let Some(number) = self.number(collection) else {
            return Resume::default();
        };
        if cursor.collection.is_some_and(|n| n != number) {
            return Resume { recreated: true, ..Resume::default() };
        }
        let seen = |shard: u32| cursor.shards.get(&shard).copied().unwrap_or(0);
        let gaps = self
            .complete_after
            .iter()
            .filter(|(g, _)| group_shard(**g).0 == number)
            .filter(|(g, after)| **after > seen(group_shard(**g).1))
            .map(|(g, after)| Gap { shard: group_shard(*g).1, after: seen(group_shard(*g).1), complete_after: *after })
            .collect();
        let changes = self
            .changes
            .iter()
            .filter(|c| {
                // Past a gap the stream resumes after it: what is retained below its end
                // belongs to the log before the gap.
                let from = seen(group_shard(c.group).1).max(self.complete_after(c.group).unwrap_or(0));
                group_shard(c.group).0 == number && c.index > from
            })
            .cloned()
            .collect();
        Resume { changes, gaps, recreated: false }
    }
}

/// What a resuming subscriber gets.
#[derive(Debug, Default, PartialEq)]
pub struct Resume {
    /// Retained changes after the cursor.
    pub changes: Vec<RetainedChange>,
    /// Shards whose changes after the cursor are partly gone.
    pub gaps: Vec<Gap>,
    /// The cursor names an earlier collection of the same name (dropped and created again).
    pub recreated: bool,
}

/// Changes of `shard` in `(after, complete_after]` are not retained: re-read the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The shard.
    pub shard: u32,
    /// The subscriber's position.
    pub after: LogIndex,
    /// The history is complete after this index.
    pub complete_after: LogIndex,
}

/// A subscriber's position: the collection number and, per shard, the index of the last change
/// it saw. Written as the SSE event id, `7/0:17,1:40` (collection number 7, shard 0 at index 17,
/// shard 1 at 40), so an `EventSource` resumes by itself with `Last-Event-ID`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The collection number (`None` until one change of it was seen).
    pub collection: Option<u32>,
    /// Shard -> index of the last change seen.
    pub shards: BTreeMap<u32, LogIndex>,
}

impl Cursor {
    /// Advances past a change.
    pub fn saw(&mut self, group: GroupId, index: LogIndex) {
        let (number, shard) = group_shard(group);
        self.collection = Some(number);
        let at = self.shards.entry(shard).or_default();
        *at = (*at).max(index);
    }

    /// The wire form.
    pub fn encode(&self) -> String {
        let shards: Vec<String> = self.shards.iter().map(|(s, i)| format!("{s}:{i}")).collect();
        match self.collection {
            Some(n) => format!("{n}/{}", shards.join(",")),
            None => String::new(),
        }
    }

    /// Parses the wire form (an empty string is the start), or says what is wrong.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Cursor::default());
        }
        let bad = || format!("bad change-stream cursor `{text}`: expected `<collection>/<shard>:<index>,...` as sent in an event's id");
        let (number, rest) = text.split_once('/').ok_or_else(bad)?;
        let number: u32 = number.parse().map_err(|_| bad())?;
        let mut shards = BTreeMap::new();
        for part in rest.split(',').filter(|p| !p.is_empty()) {
            let (s, i) = part.split_once(':').ok_or_else(bad)?;
            let (s, i): (u32, LogIndex) = (s.parse().map_err(|_| bad())?, i.parse().map_err(|_| bad())?);
            if shards.insert(s, i).is_some() {
                return Err(bad());
            }
        }
        Ok(Cursor { collection: Some(number), shards })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::node::metadata::shard_group;

    fn cmd(collection: &str, number: u32, shard: u32, index: LogIndex, len: usize) -> RetainedChange {
        RetainedChange {
            collection: collection.into(),
            group: shard_group(number, shard),
            index,
            change: Retained::Command { bytes: Bytes::from(vec![0u8; len]), affected: 1 },
        }
    }

    fn indexes(r: &Resume) -> Vec<(u32, LogIndex)> {
        r.changes.iter().map(|c| (group_shard(c.group).1, c.index)).collect()
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_named() {
        let mut c = Cursor::default();
        assert_eq!(c.encode(), "");
        c.saw(shard_group(7, 1), 40);
        c.saw(shard_group(7, 0), 17);
        assert_eq!(c.encode(), "7/0:17,1:40");
        assert_eq!(Cursor::parse("7/0:17,1:40").unwrap(), c);
        assert_eq!(Cursor::parse(" ").unwrap(), Cursor::default());
        assert_eq!(Cursor::parse("7/").unwrap().collection, Some(7));
        for bad in ["7", "x/0:1", "7/0", "7/0:x", "7/0:1,0:2", "7/-1:2"] {
            let e = Cursor::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_resume_replays_exactly_what_follows_the_cursor() {
        let mut h = ChangeHistory::new(1 << 20);
        for i in 1..=5 {
            h.push(cmd("t", 3, 0, i, 10));
            h.push(cmd("t", 3, 1, i + 100, 10));
        }
        h.push(cmd("other", 4, 0, 9, 10));
        let cursor = Cursor::parse("3/0:3,1:104").unwrap();
        let r = h.since("t", &cursor);
        assert_eq!(indexes(&r), vec![(0, 4), (0, 5), (1, 105)]);
        assert_eq!(r.gaps, vec![], "complete from the first change of each group");
        assert!(!r.recreated);
        assert_eq!(h.position("t"), Cursor::parse("3/0:5,1:105").unwrap());
        // At the head: nothing to replay.
        assert_eq!(h.since("t", &h.position("t")), Resume::default());
        // A cursor that never saw shard 1: its first change here is 101, so 1..=100 may have
        // been applied before this process started: a gap.
        let r = h.since("t", &Cursor::parse("3/0:5").unwrap());
        assert_eq!(r.gaps, vec![Gap { shard: 1, after: 0, complete_after: 100 }]);
        assert_eq!(indexes(&r).len(), 5);
    }

    #[test]
    fn eviction_turns_a_stale_cursor_into_a_gap_exactly_past_the_evicted_index() {
        // Each change costs 10 + 1 + 64 = 75 bytes: a budget of 300 keeps 4.
        let mut h = ChangeHistory::new(300);
        for i in 1..=6 {
            h.push(cmd("t", 1, 0, i, 10));
        }
        // Changes 1 and 2 were evicted: complete after 2.
        let at = |i: u64| h.since("t", &Cursor::parse(&format!("1/0:{i}")).unwrap());
        assert_eq!(at(2).gaps, vec![], "a cursor at the evicted edge misses nothing");
        assert_eq!(indexes(&at(2)), vec![(0, 3), (0, 4), (0, 5), (0, 6)]);
        assert_eq!(at(1).gaps, vec![Gap { shard: 0, after: 1, complete_after: 2 }]);
        // A budget of 0 keeps nothing: every cursor behind the head has a gap.
        let mut none = ChangeHistory::new(0);
        none.push(cmd("t", 1, 0, 1, 10));
        none.push(cmd("t", 1, 0, 2, 10));
        assert_eq!(none.since("t", &Cursor::parse("1/0:1").unwrap()).gaps.len(), 1);
        assert_eq!(none.since("t", &Cursor::parse("1/0:2").unwrap()).gaps, vec![]);
    }

    #[test]
    fn a_restart_and_an_install_and_a_recreated_collection_are_told_apart() {
        let mut h = ChangeHistory::new(1 << 20);
        // After a restart the first change applied here is at 11: 1..=10 are not retained.
        h.push(cmd("t", 1, 0, 11, 10));
        assert_eq!(h.since("t", &Cursor::parse("1/0:9").unwrap()).gaps.len(), 1);
        assert_eq!(h.since("t", &Cursor::parse("1/0:10").unwrap()).gaps, vec![]);
        // An install at 20 supersedes what came before; the install itself is replayed.
        h.push(RetainedChange { collection: "t".into(), group: shard_group(1, 0), index: 20, change: Retained::Installed });
        let r = h.since("t", &Cursor::parse("1/0:11").unwrap());
        assert_eq!(r.gaps, vec![Gap { shard: 0, after: 11, complete_after: 19 }]);
        assert_eq!(r.changes.last().unwrap().change, Retained::Installed);
        // A replica that starts over below its last index (removed and added again): what it
        // held from there on is gone, and the history is complete only from the restart.
        let mut again = ChangeHistory::new(1 << 20);
        for i in 1..=5 {
            again.push(cmd("t", 1, 0, i, 10));
        }
        again.push(cmd("t", 1, 0, 3, 10));
        let r = again.since("t", &Cursor::parse("1/0:1").unwrap());
        assert_eq!(r.gaps, vec![Gap { shard: 0, after: 1, complete_after: 2 }]);
        assert_eq!(indexes(&r), vec![(0, 3)]);
        // Dropped and created again: a new number; an old cursor is told, not replayed into.
        h.push(cmd("t", 2, 0, 1, 10));
        let r = h.since("t", &Cursor::parse("1/0:20").unwrap());
        assert!(r.recreated && r.changes.is_empty());
        assert_eq!(indexes(&h.since("t", &Cursor::default())), vec![(0, 1)]);
    }
}
