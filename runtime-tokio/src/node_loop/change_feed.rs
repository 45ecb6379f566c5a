//! The change stream of the shard replicas this node hosts: every command an apply lane applies
//! (and every snapshot it installs) becomes one event, in log order per shard, for the REST
//! layer's server-sent events (`GET /collections/{c}/changes`).
//!
//! What it promises: per shard replica on this node, events in log order with their Raft index,
//! each applied entry once per apply here; a subscriber that comes back with its cursor (the
//! last event's id) gets every change after it that the bounded history still holds, and a
//! `gap` naming the shards whose changes it no longer holds (see `change_history`); a slow
//! subscriber is made whole from the same history. What it does not: shards this node does not
//! host (a node that hosts every shard streams the whole collection), or history from before
//! this process started.
//!
//! Why a broadcast channel: lanes must never wait for subscribers. Lanes keep each command's
//! bytes in the history always (a copy), and decode it into an event only while someone
//! listens; a resuming subscriber decodes what it replays.

use super::change_history::{ChangeHistory, Cursor, DEFAULT_HISTORY_BYTES, Gap, Retained, RetainedChange};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use vecraft_core::node::metadata::group_shard;
use vecraft_core::node::shard::decode_command;
use vecraft_core::raft::{GroupId, LogIndex};
use vecraft_core::vector::collection::{PointSelector, PointsOp};
use vecraft_core::vector::point::PointId;

/// Events buffered per subscriber before it lags.
pub const FEED_CAPACITY: usize = 4096;

/// What changed.
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeKind {
    /// Points inserted or replaced.
    Upsert {
        /// Their ids.
        ids: Vec<PointId>,
    },
    /// A points command by ids (delete, payload changes).
    ByIds {
        /// `delete`, `set_payload`, `overwrite_payload` or `delete_payload`.
        op: &'static str,
        /// The ids named.
        ids: Vec<PointId>,
    },
    /// A points command by filter: which points it touched is not listed.
    ByFilter {
        /// As for [`ChangeKind::ByIds`].
        op: &'static str,
        /// How many points it changed on this replica.
        affected: usize,
    },
    /// Another command (e.g. a field index declaration).
    Other {
        /// Its name.
        op: &'static str,
    },
    /// The replica's state was replaced by its leader's snapshot at `index`: re-read it.
    SnapshotInstalled,
}

/// One applied change.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    /// The collection.
    pub collection: String,
    /// The shard.
    pub shard: u32,
    /// The shard's group (its collection number and shard).
    pub group: GroupId,
    /// The entry's (or the snapshot's) index in the shard's log.
    pub index: LogIndex,
    /// What changed.
    pub kind: ChangeKind,
}

/// The sending side, shared by the lanes, and the history resuming subscribers read.
#[derive(Clone, Debug)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Arc<ChangeEvent>>,
    /// Pushes and sends happen under this lock, so a subscription taken under it sees every
    /// change exactly once: in the history it reads, or on the channel it opens.
    history: Arc<Mutex<ChangeHistory>>,
    history_bytes: usize,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed::new(DEFAULT_HISTORY_BYTES)
    }
}

/// A subscription to one collection's changes.
#[derive(Debug)]
pub struct Subscription {
    /// Changes applied after the subscription was taken.
    pub rx: broadcast::Receiver<Arc<ChangeEvent>>,
    /// Retained changes after the subscriber's cursor, to send before `rx`'s.
    pub replay: Vec<Arc<ChangeEvent>>,
    /// Shards whose changes after the cursor are no longer all held.
    pub gaps: Vec<Gap>,
    /// The cursor named an earlier collection of the same name.
    pub recreated: bool,
    /// Shards the history knew when the subscription was taken. A resumed subscriber checks
    /// the others against [`ChangeFeed::complete_after`] at their first change (after a
    /// restart the history learns where it starts only then).
    pub known: std::collections::BTreeSet<u32>,
    /// Where the subscriber stands before `replay`: its cursor, or for a new subscriber (or a
    /// re-created collection) the latest change of each shard.
    pub position: Cursor,
}

impl ChangeFeed {
    /// A feed keeping up to `history_bytes` of applied commands for resuming subscribers.
    pub fn new(history_bytes: usize) -> Self {
        ChangeFeed {
            tx: broadcast::channel(FEED_CAPACITY).0,
            history: Arc::new(Mutex::new(ChangeHistory::new(history_bytes))),
            history_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChangeHistory> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes to `collection`'s changes: from `cursor` on if given (replaying what the
    /// history holds after it), else from now on.
    pub fn subscribe(&self, collection: &str, cursor: Option<&Cursor>) -> Subscription {
        let (rx, resume, head) = {
            let history = self.lock();
            let rx = self.tx.subscribe();
            let resume = cursor.map(|c| history.since(collection, c)).unwrap_or_default();
            (rx, resume, history.position(collection))
        };
        let known = head.shards.keys().copied().collect();
        let position = match cursor {
            Some(c) if !resume.recreated => c.clone(),
            _ => head,
        };
        let replay = resume.changes.iter().filter_map(event_of).map(Arc::new).collect();
        Subscription { rx, replay, gaps: resume.gaps, recreated: resume.recreated, known, position }
    }

    /// Every change of `group` after this index is held (`None`: none seen yet).
    pub fn complete_after(&self, group: GroupId) -> Option<LogIndex> {
        self.lock().complete_after(group)
    }

    /// Whether anyone listens (lanes build events only then).
    pub fn listened(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Records the change of an applied command (`affected`: what the engine reported).
    pub fn applied(
        &self,
        collection: &str,
        group: GroupId,
        index: LogIndex,
        command: &[u8],
        affected: usize,
    ) {
        let bytes = if self.history_bytes > 0 { Bytes::copy_from_slice(command) } else { Bytes::new() };
        let retained = RetainedChange {
            collection: collection.to_string(),
            group,
            index,
            change: Retained::Command { bytes, affected },
        };
        let event = if self.listened() {
            decode_command(command).ok().map(|op| ChangeEvent {
                collection: collection.to_string(),
                shard: group_shard(group).1,
                group,
                index,
                kind: kind_of(op, affected),
            })
        } else {
            None
        };
        self.record(retained, event);
    }

    /// Records a snapshot install.
    pub fn installed(&self, collection: &str, group: GroupId, index: LogIndex) {
        let retained = RetainedChange { collection: collection.to_string(), group, index, change: Retained::Installed };
        let event = event_of(&retained);
        self.record(retained, event);
    }

    fn record(&self, retained: RetainedChange, event: Option<ChangeEvent>) {
        let mut history = self.lock();
        history.push(retained);
        if let Some(event) = event {
            // No receiver left is fine: nobody listens any more.
            let _ = self.tx.send(Arc::new(event));
        }
    }
}

/// The event of a retained change (`None` for bytes that no longer decode, which the lane
/// applied, so cannot happen short of a bug; the event is skipped, not the stream).
fn event_of(c: &RetainedChange) -> Option<ChangeEvent> {
    let kind = match &c.change {
        Retained::Command { bytes, affected } => kind_of(decode_command(bytes).ok()?, *affected),
        Retained::Installed => ChangeKind::SnapshotInstalled,
    };
    Some(ChangeEvent { collection: c.collection.clone(), shard: group_shard(c.group).1, group: c.group, index: c.index, kind })
}

fn kind_of(op: PointsOp, affected: usize) -> ChangeKind {
    let by = |op: &'static str, selector: PointSelector| match selector {
        PointSelector::Ids(ids) => ChangeKind::ByIds { op, ids },
        PointSelector::Filter(_) => ChangeKind::ByFilter { op, affected },
    };
    match op {
        PointsOp::Upsert(points) => ChangeKind::Upsert {
            ids: points.into_iter().map(|p| p.id).collect(),
        },
        PointsOp::Delete(selector) => by("delete", selector),
        PointsOp::SetPayload { selector, .. } => by("set_payload", selector),
        PointsOp::OverwritePayload { selector, .. } => by("overwrite_payload", selector),
        PointsOp::DeletePayloadKeys { selector, .. } => by("delete_payload", selector),
        PointsOp::CreateFieldIndex { .. } => ChangeKind::Other { op: "create_field_index" },
        PointsOp::DeleteFieldIndex { .. } => ChangeKind::Other { op: "delete_field_index" },
        PointsOp::SetQuantization { .. } => ChangeKind::Other { op: "set_quantization" },
        PointsOp::SetVectorsOnDisk { .. } => ChangeKind::Other { op: "set_vectors_on_disk" },
    }
}
