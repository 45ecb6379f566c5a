//! A point-in-time copy of one shard, read page by page through ordinary linearizable reads
//! while writes go on: what a collection snapshot is made of.
//!
//! Pages of one scroll are read at different log positions, so a scroll taken under writes is
//! torn: it may hold one point from before a command and another from after it. Instead the
//! export reads *changes* ([`ChangesPage`]: every point changed after a sequence number, and
//! every id deleted after it) in rounds:
//!
//! * Invariant `I(mark)`: every point held equals the shard's point at some sequence number in
//!   `[mark, last read]`, and every id the shard held at `mark` and still holds is held.
//!   Nothing held, `mark = 0`, satisfies it.
//! * A round reads the changes after `mark` over the whole id range. A point changed in
//!   `(mark, f]` comes back as it is at `f`; one not changed is already held as it is at `f`.
//!   If the round took one page, it was read at one state `f`: the copy *is* the shard at `f`.
//!   If it took several, read at `f1 <= ... <= fk`, every point held is now at some sequence
//!   in `[f1, fk]`: `I(f1)` holds, and the next round reads the changes after `f1`.
//!
//! Rounds shrink as long as the export reads faster than clients write; a shard that keeps
//! changing faster is reported, not copied torn. Reads must be linearizable: an answer older
//! than one before it is refused ([`ExportError::WentBack`]). A replica restored from a
//! snapshot may have forgotten deletions older than the snapshot; a page that cannot vouch for
//! deletions in a range where the copy holds ids starts the export over.

use super::sharding::ShardId;
use crate::vector::collection::{Change, ChangesPage};
use crate::vector::point::{PointId, Record};
use std::collections::BTreeMap;
use std::ops::Bound;
use thiserror::Error;

/// Rounds of changes before a shard counts as changing too fast to copy.
pub const MAX_EXPORT_ROUNDS: u32 = 32;
/// Fresh starts (deletions forgotten by a restored replica) before the export gives up.
pub const MAX_EXPORT_RESTARTS: u32 = 8;

/// The read an export needs next: changes after `since`, ids past `after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangesRead {
    /// Sequence number the changes are after.
    pub since: u64,
    /// Ids past this one.
    pub after: Option<PointId>,
    /// Changes per page.
    pub limit: usize,
}

/// What an answered page left to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportProgress {
    /// Read [`ShardExport::next_read`] next.
    More,
    /// The copy is the shard as it was at sequence number `seq`.
    Done { seq: u64 },
}

/// Why an export stopped.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ExportError {
    #[error("shard {shard} answered at sequence {got} after answering at {seen}: a read that is not linearizable")]
    WentBack { shard: ShardId, seen: u64, got: u64 },
    #[error("shard {shard} kept changing faster than it could be read ({rounds} rounds of changes); retry when writes are lighter")]
    NotSettling { shard: ShardId, rounds: u32 },
    #[error("shard {shard}: its replicas forgot deletions the copy needed {restarts} times (snapshot installs); retry")]
    TooManyRestarts { shard: ShardId, restarts: u32 },
    #[error("shard {shard} answered a malformed changes page: {reason}")]
    Malformed { shard: ShardId, reason: String },
}

#[derive(Clone, Copy, Debug, Default)]
struct Round {
    /// Sequence number of the round's first page.
    first_seq: Option<u64>,
    /// The last id covered so far.
    after: Option<PointId>,
    pages: u32,
}

/// One shard's copy being read.
#[derive(Debug)]
pub struct ShardExport {
    shard: ShardId,
    limit: usize,
    points: BTreeMap<PointId, Record>,
    mark: u64,
    round: Round,
    rounds: u32,
    restarts: u32,
    /// The newest sequence number answered.
    seen: u64,
    /// Bug switch: finish when any round ends, as a plain scroll would (a torn copy).
    finish_any_round: bool,
}

impl ShardExport {
    /// An export of `shard`, `limit` changes per page (at least 1).
    pub fn new(shard: ShardId, limit: usize) -> ShardExport {
        ShardExport {
            shard,
            limit: limit.max(1),
            points: BTreeMap::new(),
            mark: 0,
            round: Round::default(),
            rounds: 0,
            restarts: 0,
            seen: 0,
            finish_any_round: false,
        }
    }

    /// The bug switch the simulator proves its checker with: the first full pass counts as the
    /// copy however many pages it took.
    pub fn finish_any_round(mut self) -> ShardExport {
        self.finish_any_round = true;
        self
    }

    /// The shard.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The read to send next.
    pub fn next_read(&self) -> ChangesRead {
        ChangesRead { since: self.mark, after: self.round.after, limit: self.limit }
    }

    /// Rounds finished so far (the first full pass included).
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Fresh starts so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Pages of the round in progress, or of the last one once done (1 unless the
    /// `finish_any_round` bug finished it).
    pub fn final_round_pages(&self) -> u32 {
        self.round.pages
    }

    /// The points copied, in id order (the shard's at the `seq` of [`ExportProgress::Done`]).
    pub fn into_points(self) -> Vec<Record> {
        self.points.into_values().collect()
    }

    /// The answer to [`Self::next_read`].
    pub fn on_page(&mut self, page: ChangesPage) -> Result<ExportProgress, ExportError> {
        let shard = self.shard;
        if page.seq < self.seen {
            return Err(ExportError::WentBack { shard, seen: self.seen, got: page.seq });
        }
        self.check_shape(&page)?;
        self.seen = page.seq;
        let after = self.round.after;
        if !page.complete {
            let from = after.map_or(Bound::Unbounded, Bound::Excluded);
            let to = page.covered_to.map_or(Bound::Unbounded, Bound::Included);
            if self.points.range((from, to)).next().is_some() {
                self.restarts += 1;
                if self.restarts > MAX_EXPORT_RESTARTS {
                    return Err(ExportError::TooManyRestarts { shard, restarts: self.restarts });
                }
                self.points.clear();
                self.mark = 0;
                self.round = Round::default();
                return Ok(ExportProgress::More);
            }
        }
        self.round.first_seq.get_or_insert(page.seq);
        self.round.pages += 1;
        for change in page.changes {
            match change {
                Change::Upsert(r) => {
                    self.points.insert(r.id, r);
                }
                Change::Deleted(id) => {
                    self.points.remove(&id);
                }
            }
        }
        if let Some(last) = page.covered_to {
            self.round.after = Some(last);
            return Ok(ExportProgress::More);
        }
        self.rounds += 1;
        if self.round.pages == 1 || self.finish_any_round {
            return Ok(ExportProgress::Done { seq: page.seq });
        }
        if self.rounds >= MAX_EXPORT_ROUNDS {
            return Err(ExportError::NotSettling { shard, rounds: self.rounds });
        }
        self.mark = self.round.first_seq.expect("set by this page at the latest");
        self.round = Round::default();
        Ok(ExportProgress::More)
    }

    /// A page must list ids past `after`, ascending, within what it says it covers, and cover
    /// something when more follow (or the export would ask for the same page forever).
    fn check_shape(&self, page: &ChangesPage) -> Result<(), ExportError> {
        let malformed = |reason: &str| Err(ExportError::Malformed { shard: self.shard, reason: reason.into() });
        let mut prev = self.round.after;
        for c in &page.changes {
            if prev.is_some_and(|p| c.id() <= p) {
                return malformed("ids not ascending past the page's start");
            }
            prev = Some(c.id());
        }
        if let Some(to) = page.covered_to {
            if self.round.after.is_some_and(|a| to <= a) {
                return malformed("covers nothing past its start");
            }
            if prev.is_some_and(|p| p > to) {
                return malformed("lists ids past what it covers");
            }
            if page.changes.len() > self.limit {
                return malformed("longer than asked");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests/shard_export_tests.rs"]
mod tests;
