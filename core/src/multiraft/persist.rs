//! One persist batch per step for all groups: the node has one durable stream (architecture §2),
//! so every group's records of a step go out as one write with one node-level sequence number,
//! and the driver's single `Persisted { seq }` acknowledges a prefix of that stream. The batcher
//! maps each acknowledged node-level seq back to each group's own `Persisted` seq.

use crate::raft::{GroupId, PersistRecord};
use std::collections::{BTreeMap, VecDeque};

/// Records of the current step, and the mapping of written batches to group sequence numbers.
#[derive(Debug)]
pub(super) struct PersistBatcher {
    /// Records gathered during this step, in the order the groups emitted them.
    records: Vec<PersistRecord>,
    /// The highest group seq of each group in `records`.
    group_seqs: BTreeMap<GroupId, u64>,
    /// Next node-level sequence number.
    next_seq: u64,
    /// Highest node-level seq acknowledged.
    persisted: u64,
    /// Written, unacknowledged batches: node seq, and the highest group seq per group in it.
    in_flight: VecDeque<(u64, BTreeMap<GroupId, u64>)>,
}

impl Default for PersistBatcher {
    fn default() -> Self {
        PersistBatcher {
            records: Vec::new(),
            group_seqs: BTreeMap::new(),
            next_seq: 1,
            persisted: 0,
            in_flight: VecDeque::new(),
        }
    }
}

impl PersistBatcher {
    /// Adds a record a group asked to persist as its own `seq`.
    pub(super) fn push(&mut self, group: GroupId, seq: u64, record: PersistRecord) {
        debug_assert_eq!(record.group, group);
        let s = self.group_seqs.entry(group).or_insert(0);
        debug_assert!(seq > *s, "a group's seqs increase");
        *s = seq;
        self.records.push(record);
    }

    /// Closes the step's batch: its node-level seq and records, if any were gathered.
    pub(super) fn take_batch(&mut self) -> Option<(u64, Vec<PersistRecord>)> {
        if self.records.is_empty() {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push_back((seq, std::mem::take(&mut self.group_seqs)));
        Some((seq, std::mem::take(&mut self.records)))
    }

    /// The driver made every batch up to `seq` durable: the highest group seq now durable, per
    /// group. An unknown or already acknowledged seq (a confused driver) yields nothing.
    pub(super) fn persisted(&mut self, seq: u64) -> BTreeMap<GroupId, u64> {
        let mut done = BTreeMap::new();
        if seq >= self.next_seq || seq <= self.persisted {
            return done;
        }
        self.persisted = seq;
        while self.in_flight.front().is_some_and(|(s, _)| *s <= seq) {
            let (_, groups) = self.in_flight.pop_front().expect("checked");
            for (g, s) in groups {
                let d = done.entry(g).or_insert(0);
                *d = (*d).max(s);
            }
        }
        done
    }

    /// Batches written and not yet acknowledged.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

impl PersistBatcher {
    /// A removed group's acknowledgements must not reach a later group of the same id (its seqs
    /// start over): drop it from every batch in flight and from the current one's mapping. Its
    /// records of this step are still written (the stream is append-only); recovery of a removed
    /// group is the metadata layer's business.
    pub(super) fn forget(&mut self, group: GroupId) {
        self.group_seqs.remove(&group);
        for (_, groups) in self.in_flight.iter_mut() {
            groups.remove(&group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(group: GroupId) -> PersistRecord {
        PersistRecord { group, hard_state: None, entries: Vec::new(), snapshot: None }
    }

    #[test]
    fn a_node_seq_acknowledges_the_highest_group_seq_of_every_batch_up_to_it() {
        let mut b = PersistBatcher::default();
        assert_eq!(b.take_batch(), None, "nothing gathered, no batch");
        b.push(1, 1, rec(1));
        b.push(2, 1, rec(2));
        b.push(1, 2, rec(1));
        let (s1, records) = b.take_batch().expect("batch");
        assert_eq!((s1, records.len()), (1, 3));
        b.push(2, 2, rec(2));
        let (s2, _) = b.take_batch().expect("batch");
        assert_eq!(s2, 2);
        b.push(3, 1, rec(3));
        let (s3, _) = b.take_batch().expect("batch");
        // The driver acknowledges two batches at once.
        assert_eq!(b.persisted(s2), BTreeMap::from([(1, 2), (2, 2)]));
        assert_eq!(b.in_flight(), 1);
        // Repeated, older and unknown seqs are refused.
        assert!(b.persisted(s2).is_empty());
        assert!(b.persisted(s1).is_empty());
        assert!(b.persisted(s3 + 1).is_empty());
        assert_eq!(b.persisted(s3), BTreeMap::from([(3, 1)]));
    }

    #[test]
    fn a_removed_group_receives_no_acknowledgement_of_its_old_writes() {
        let mut b = PersistBatcher::default();
        b.push(1, 1, rec(1));
        b.push(2, 1, rec(2));
        let (s, _) = b.take_batch().expect("batch");
        b.forget(1);
        assert_eq!(b.persisted(s), BTreeMap::from([(2, 1)]));
    }
}
