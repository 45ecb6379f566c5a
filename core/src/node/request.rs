//! What a client asks a node and what it gets back, with the write-acknowledgement and read
//! consistency levels it chooses per request.
//!
//! Write acknowledgement (`WriteAck`), and what each guarantees when the shard leader dies right
//! after answering:
//! * `leader`: the entry is durable on the leader's disk. If that leader dies before a follower
//!   holds the entry, the next leader may not have it and the write is lost (it is *not* lost if
//!   the old leader comes back as a follower and the new leader had it — Raft then keeps it).
//!   The simulator checks nothing for these writes beyond "never applied twice".
//! * `one_copy`: durable on the leader and on at least one follower. A single crash (of the
//!   leader or of that follower) loses nothing once a majority of the group is back, *unless*
//!   the new leader is elected from a majority that lacks it (possible with 5 replicas, impossible
//!   with 3: two copies among three replicas always intersect a majority). The simulator checks
//!   it as durable for replication factor ≤ 3.
//! * `quorum` (the default): committed by a majority and applied on the leader. Never lost while a
//!   majority of the group's disks keep what they synced; the simulator checks exactly that.
//!
//! Read consistency (`ReadLevel`):
//! * `eventual`: one replica's applied state, chosen by the node's router policy; may be stale.
//!   The answer reports the replica and how far its applied index is behind the commit index it
//!   knows.
//! * `strong`: linearizable, at the shard leader, by lease when the lease holds and ReadIndex
//!   otherwise.
//! * `read_your_writes(token)`: any replica, after it has applied the token's index for its
//!   shard (waits, within the request's timeout).
//! * `quorum`: linearizable by ReadIndex only (a majority heartbeat round confirms leadership on
//!   every read; no clock assumption). We chose this over a majority-of-replicas comparison:
//!   with Raft the leader's confirmed commit index already is the majority's answer.

use super::scatter::GatherError;
use super::sharding::ShardId;
use crate::raft::LogIndex;
use crate::vector::collection::{CollectionConfig, PointsOp, ScrollPage, ScrollRequest, SearchRequest};
use crate::vector::filter::Filter;
use crate::vector::point::{PointId, Record, ScoredPoint};
use crate::contract::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use thiserror::Error;

/// The driver's handle of one client request, echoed in [`super::NodeOutput::Respond`].
pub type ClientId = u64;

/// How durable a write must be before it is acknowledged (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WriteAck {
    /// Durable on the shard leader.
    Leader,
    /// Durable on the leader and one follower.
    OneCopy,
    /// Committed (majority) and applied on the leader.
    #[default]
    Quorum,
}

/// Per shard, the log index a write reached: reads at `read_your_writes` wait for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadToken {
    /// Shard → index of the newest write of this token's writes in that shard.
    pub marks: BTreeMap<ShardId, LogIndex>,
}

impl ReadToken {
    /// The newer of two tokens, shard by shard (a client folds the tokens of its writes).
    pub fn merge(&mut self, other: &ReadToken) {
        for (shard, index) in &other.marks {
            let e = self.marks.entry(*shard).or_insert(0);
            *e = (*e).max(*index);
        }
    }
}

/// How fresh a read must be (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadLevel {
    /// Any replica's applied state.
    Eventual,
    /// Linearizable at the leader (lease or ReadIndex).
    #[default]
    Strong,
    /// Any replica that applied the token's writes.
    ReadYourWrites(ReadToken),
    /// Linearizable at the leader, always by a ReadIndex majority round.
    Quorum,
}

/// Read options of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOptions {
    /// Consistency.
    pub level: ReadLevel,
    /// Return what the shards that answered hold, marked partial, instead of failing when a
    /// shard cannot answer in time.
    pub allow_partial: bool,
}

/// A client request; any node accepts any request and routes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// Create a collection (a metadata command).
    CreateCollection {
        /// Its name.
        name: String,
        /// Dimension, metric, HNSW parameters.
        config: CollectionConfig,
        /// Number of shards (1..=MAX_SHARDS).
        shards: u32,
        /// Replicas per shard (1..=cluster size).
        replication_factor: u32,
    },
    /// Drop a collection and its shards (a metadata command).
    DropCollection {
        /// Its name.
        name: String,
    },
    /// The collections this node's applied metadata holds.
    ListCollections,
    /// A points command, split by shard.
    Write {
        /// The collection.
        collection: String,
        /// The command.
        op: PointsOp,
        /// When to acknowledge.
        ack: WriteAck,
    },
    /// Top-k search over every shard.
    Search {
        /// The collection.
        collection: String,
        /// The query (each shard is asked for `offset + limit`).
        request: SearchRequest,
        /// Consistency.
        read: ReadOptions,
    },
    /// Points by id.
    Get {
        /// The collection.
        collection: String,
        /// The ids.
        ids: Vec<PointId>,
        /// Return payloads.
        with_payload: bool,
        /// Return vectors.
        with_vector: bool,
        /// Consistency.
        read: ReadOptions,
    },
    /// Number of points (matching a filter).
    Count {
        /// The collection.
        collection: String,
        /// Optional filter.
        filter: Option<Filter>,
        /// Consistency.
        read: ReadOptions,
    },
    /// One page of points in id order across shards.
    Scroll {
        /// The collection.
        collection: String,
        /// The page asked for.
        request: ScrollRequest,
        /// Consistency.
        read: ReadOptions,
    },
    /// Replication status and lag of every replica of every shard, as each shard's leader sees it.
    ReplicaStatus {
        /// The collection.
        collection: String,
    },
    /// The payload field indexes the collection's shards declare (see
    /// [`super::field_index`]); declared with `Write` of `PointsOp::CreateFieldIndex`.
    FieldIndexes {
        /// The collection.
        collection: String,
        /// Consistency.
        read: ReadOptions,
    },
    /// The quantization and `on_disk` the collection's shards use (see
    /// [`super::vector_settings`]); set with `Write` of `PointsOp::SetQuantization` /
    /// `SetVectorsOnDisk` (every shard's log), so they may differ from the create-time config.
    VectorSettings {
        /// The collection.
        collection: String,
        /// Consistency.
        read: ReadOptions,
    },
    /// Change aliases (Qdrant's `POST /collections/aliases`): all actions or none.
    UpdateAliases {
        /// The actions, in order.
        actions: Vec<super::metadata::AliasAction>,
    },
    /// Every alias and its collection (from this node's applied metadata).
    ListAliases,
    /// `with` takes the name `name` in one metadata command, replacing (dropping) a collection
    /// of that name: how a snapshot recovery swaps in a collection it filled aside.
    ReplaceCollection {
        /// The name whose content changes.
        name: String,
        /// The collection, by its own name, that takes it.
        with: String,
    },
    /// One shard's changes after a sequence number: a page of a point-in-time export (see
    /// `shard_export.rs`). Use a linearizable level, or the export refuses the answers.
    ShardChanges {
        /// The collection.
        collection: String,
        /// The shard.
        shard: ShardId,
        /// The sequence number the changes are after.
        since: u64,
        /// Ids past this one.
        after: Option<PointId>,
        /// Changes per page.
        limit: u32,
        /// Consistency.
        read: ReadOptions,
    },
}

impl Request {
    /// A short name for metrics and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::CreateCollection { .. } => "create_collection",
            Request::DropCollection { .. } => "drop_collection",
            Request::ListCollections => "list_collections",
            Request::Write { op: PointsOp::Upsert(_), .. } => "upsert",
            Request::Write { op: PointsOp::Delete(_), .. } => "delete",
            Request::Write { op: PointsOp::CreateFieldIndex { .. }, .. } => "create_field_index",
            Request::Write { op: PointsOp::DeleteFieldIndex { .. }, .. } => "delete_field_index",
            Request::Write { op: PointsOp::SetQuantization { .. }, .. } => "set_quantization",
            Request::Write { op: PointsOp::SetVectorsOnDisk { .. }, .. } => "set_vectors_on_disk",
            Request::Write { .. } => "set_payload",
            Request::Search { .. } => "search",
            Request::Get { .. } => "get",
            Request::Count { .. } => "count",
            Request::Scroll { .. } => "scroll",
            Request::ReplicaStatus { .. } => "replica_status",
            Request::FieldIndexes { .. } => "field_indexes",
            Request::VectorSettings { .. } => "vector_settings",
            Request::ShardChanges { .. } => "shard_changes",
            Request::UpdateAliases { .. } => "update_aliases",
            Request::ListAliases => "list_aliases",
            Request::ReplaceCollection { .. } => "replace_collection",
        }
    }

    /// Whether the request only reads points or shard state (no metadata, no log entry).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Request::Search { .. }
                | Request::Get { .. }
                | Request::Count { .. }
                | Request::Scroll { .. }
                | Request::ReplicaStatus { .. }
                | Request::FieldIndexes { .. }
                | Request::VectorSettings { .. }
                | Request::ShardChanges { .. }
        )
    }
}

/// How stale an `eventual` answer may be: per shard, the replica that served it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staleness {
    /// Shard → the replica that served it and how far behind it may be.
    pub replicas: BTreeMap<ShardId, ReplicaStaleness>,
}

/// How stale one replica's answer may be, in entries and in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStaleness {
    /// The serving node.
    pub node: NodeId,
    /// Its applied index.
    pub applied: LogIndex,
    /// The commit index it knew.
    pub commit: LogIndex,
    /// Time since it last heard from its shard leader (zero at the leader; `None` if it has
    /// not heard one since it started): how long it has been without news. A replica that
    /// keeps hearing its leader is usually within a heartbeat of it, but this is not a bound
    /// on staleness in time (the leader's last message may have carried an older commit), and
    /// an idle (quiesced) group sends nothing, so the age grows while nothing changes.
    pub since_leader: Option<std::time::Duration>,
}

impl Staleness {
    /// The largest `commit - applied` over the shards (entries the replica knew it lacked).
    pub fn max_lag(&self) -> u64 {
        self.replicas.values().map(|r| r.commit.saturating_sub(r.applied)).max().unwrap_or(0)
    }

    /// The largest time since a serving replica heard its leader (`None` if one never did).
    pub fn max_age(&self) -> Option<std::time::Duration> {
        self.replicas.values().try_fold(std::time::Duration::ZERO, |m, r| r.since_leader.map(|a| m.max(a)))
    }
}

/// One collection as the metadata holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// Its name.
    pub name: String,
    /// Its configuration.
    pub config: CollectionConfig,
    /// Replica nodes of each shard; the first is the preferred leader.
    pub replicas: Vec<Vec<NodeId>>,
}

/// One replica's state as its shard leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Up to date with the leader's log.
    Active,
    /// Behind, receiving entries.
    CatchingUp,
    /// Receiving a snapshot.
    Snapshotting,
    /// Not heard from within an election timeout.
    Dead,
}

/// Replication status of one replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// The shard.
    pub shard: ShardId,
    /// The replica's node.
    pub node: NodeId,
    /// Whether it leads the shard.
    pub leader: bool,
    /// Highest index known to be on it (applied index for the leader itself).
    pub index: LogIndex,
    /// Its applied index (a follower's as of its latest answer to the leader): a replica
    /// that holds the log but has not applied it yet serves older state than its `index`.
    pub applied: LogIndex,
    /// Entries it lacks behind the leader's last index.
    pub lag_entries: u64,
    /// Time since the leader last saw it make progress (zero for the leader and for replicas
    /// that are up to date).
    pub lag_time: Duration,
    /// Its state.
    pub state: ReplicaState,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A metadata command was applied.
    Done,
    /// The collections.
    Collections(Vec<CollectionInfo>),
    /// The write reached its acknowledgement level.
    Written {
        /// For `read_your_writes` reads.
        token: ReadToken,
    },
    /// Search hits.
    Hits {
        /// Best first, ties by id.
        hits: Vec<ScoredPoint>,
        /// Shards missing from a partial answer.
        missing: Vec<ShardId>,
        /// Set for `eventual` reads.
        staleness: Option<Staleness>,
    },
    /// Points by id, in the order asked (absent ids skipped).
    Records {
        /// The points.
        records: Vec<Record>,
        /// Shards missing from a partial answer.
        missing: Vec<ShardId>,
        /// Set for `eventual` reads.
        staleness: Option<Staleness>,
    },
    /// A count.
    Count {
        /// Points counted.
        count: u64,
        /// Shards missing from a partial answer.
        missing: Vec<ShardId>,
    },
    /// A scroll page.
    Page {
        /// The page.
        page: ScrollPage,
        /// Shards missing from a partial answer.
        missing: Vec<ShardId>,
    },
    /// Replica status, by shard then node.
    Status(Vec<ReplicaStatus>),
    /// Declared payload field indexes, by normalised field name.
    FieldIndexes {
        /// Field -> what the shards declare.
        fields: BTreeMap<String, super::field_index::FieldIndexInfo>,
        /// Shards missing from a partial answer.
        missing: Vec<ShardId>,
    },
    /// The collection's quantization and `on_disk`, as its shards use them.
    VectorSettings {
        /// The lowest answering shard's settings.
        settings: super::vector_settings::VectorSettings,
        /// Whether some shard differs (a change still in flight, or in doubt, on some shard:
        /// shards have separate logs).
        conflicting: bool,
        /// Shards missing from a partial answer.
        missing: Vec<ShardId>,
    },
    /// One shard's page of changes.
    Changes(crate::vector::collection::ChangesPage),
    /// (alias, collection) pairs, by alias.
    Aliases(Vec<(String, String)>),
}

/// Why a request failed. Every variant says whether the request may have taken effect.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NodeError {
    /// The request is invalid; nothing happened.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No such collection in this node's applied metadata; nothing happened.
    #[error("collection {0:?} not found")]
    NoSuchCollection(String),
    /// A collection of this name exists; nothing happened.
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    /// A shard could not answer a read (names the shard); nothing happened.
    #[error("{0}")]
    Shard(GatherError),
    /// A write did not reach its level within the timeout, or its leader lost leadership: each
    /// named shard's part may or may not take effect.
    #[error("write outcome unknown on shards {shards:?}: {reason}")]
    Indeterminate {
        /// The shards whose part is in doubt.
        shards: Vec<ShardId>,
        /// What happened.
        reason: String,
    },
    /// A write was refused by every shard it touched before anything was proposed (no leader,
    /// overloaded); nothing happened. Retry later.
    #[error("write refused on shard {shard}: {reason}")]
    Refused {
        /// The first refusing shard.
        shard: ShardId,
        /// Why.
        reason: String,
    },
}
