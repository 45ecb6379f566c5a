//! What changed in a collection after a sequence number, a page of ids at a time: the read a
//! point-in-time export is built from (see `node/shard_export.rs`). Every point carries the
//! sequence number of the command that last changed it, and the deletion log keeps the ids
//! deleted since its floor, so "changed after `since`" is exact for live points and for
//! deletions once `since` is at or above the floor.

use super::*;
use std::ops::Bound;

/// Largest page of changes a replica answers (a bound on one answer's size, as scroll pages).
pub const MAX_CHANGES_PAGE: usize = 10_000;

/// One change after the page's `since`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// The point as it is now (with payload and vector).
    Upsert(Record),
    /// The point is gone.
    Deleted(PointId),
}

impl Change {
    /// The id this change is about.
    pub fn id(&self) -> PointId {
        match self {
            Change::Upsert(r) => r.id,
            Change::Deleted(id) => *id,
        }
    }
}

/// Changes after `since` with ids in `(after, covered_to]`, all read at one state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangesPage {
    /// The collection's sequence number when the page was read.
    pub seq: u64,
    /// False when the deletion log no longer reaches back to `since` (a replica restored
    /// from a snapshot forgets older deletions): the page lists no deletion it cannot vouch
    /// for, so a reader holding ids of this range must start over.
    pub complete: bool,
    /// Changes in id order.
    pub changes: Vec<Change>,
    /// The last id this page covers when more follow; `None` when it covers every id past
    /// `after`.
    pub covered_to: Option<PointId>,
}

impl Collection {
    /// The changes after `since` among ids past `after`, at most `limit` of them (1 at least).
    pub fn changes(&self, since: u64, after: Option<PointId>, limit: usize) -> Result<ChangesPage, EngineError> {
        if limit == 0 || limit > MAX_CHANGES_PAGE {
            return Err(EngineError::InvalidRequest(format!(
                "changes page limit {limit} not in 1..={MAX_CHANGES_PAGE}"
            )));
        }
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut live = self
            .points
            .range((from, Bound::Unbounded))
            .filter(|(_, p)| p.version > since)
            .map(|(id, p)| Change::Upsert(self.record(*id, p, true, true)))
            .peekable();
        let mut gone = self
            .deletion_log
            .range((from, Bound::Unbounded))
            .filter(|(_, s)| **s > since)
            .map(|(id, _)| Change::Deleted(*id))
            .peekable();
        let mut changes = Vec::new();
        loop {
            // The two maps never share an id (an upsert takes its id out of the log).
            let next = match (live.peek(), gone.peek()) {
                (Some(a), Some(b)) if a.id() < b.id() => live.next(),
                (Some(_), Some(_)) => gone.next(),
                (Some(_), None) => live.next(),
                (None, Some(_)) => gone.next(),
                (None, None) => None,
            };
            let Some(change) = next else {
                return Ok(ChangesPage { seq: self.seq, complete: since >= self.deletion_log_floor, changes, covered_to: None });
            };
            debug_assert!(changes.last().is_none_or(|c: &Change| c.id() < change.id()), "ids ascend");
            changes.push(change);
            if changes.len() == limit {
                let more = live.peek().is_some() || gone.peek().is_some();
                let covered_to = more.then(|| changes[changes.len() - 1].id());
                return Ok(ChangesPage { seq: self.seq, complete: since >= self.deletion_log_floor, changes, covered_to });
            }
        }
    }
}
