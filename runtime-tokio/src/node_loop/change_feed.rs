//! The change stream of the shard replicas this node hosts: every command an apply lane applies
//! (and every snapshot it installs) becomes one event, in log order per shard, for the REST
//! layer's server-sent events (`GET /collections/{c}/changes`).
//!
//! What it promises: per shard replica on this node, events in log order with their Raft index,
//! each applied entry once per apply here. What it does not: history (a subscriber sees what is
//! applied after it subscribed; no resume from an index), shards this node does not host (a
//! node that hosts every shard streams the whole collection), or keeping a slow subscriber
//! whole (it gets a `lagged` event saying how many it missed, then goes on).
//!
//! Why a broadcast channel: lanes must never wait for subscribers. Events are built only while
//! someone listens (decoding a command twice is not free).

use std::sync::Arc;
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
    /// The entry's (or the snapshot's) index in the shard's log.
    pub index: LogIndex,
    /// What changed.
    pub kind: ChangeKind,
}

/// The sending side, shared by the lanes.
#[derive(Clone, Debug)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Arc<ChangeEvent>>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            tx: broadcast::channel(FEED_CAPACITY).0,
        }
    }
}

impl ChangeFeed {
    /// A new subscriber, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.tx.subscribe()
    }

    /// Whether anyone listens (lanes build events only then).
    pub fn listened(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Publishes the change of an applied command (`affected`: what the engine reported).
    pub fn applied(
        &self,
        collection: &str,
        group: GroupId,
        index: LogIndex,
        command: &[u8],
        affected: usize,
    ) {
        if !self.listened() {
            return;
        }
        let Ok(op) = decode_command(command) else {
            return;
        };
        let kind = kind_of(op, affected);
        self.publish(collection, group, index, kind);
    }

    /// Publishes a snapshot install.
    pub fn installed(&self, collection: &str, group: GroupId, index: LogIndex) {
        if self.listened() {
            self.publish(collection, group, index, ChangeKind::SnapshotInstalled);
        }
    }

    fn publish(&self, collection: &str, group: GroupId, index: LogIndex, kind: ChangeKind) {
        let shard = group_shard(group).1;
        // No receiver left is fine: nobody listens any more.
        let _ = self.tx.send(Arc::new(ChangeEvent {
            collection: collection.to_string(),
            shard,
            index,
            kind,
        }));
    }
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
    }
}
