//! The boundary between the HTTP layer and whatever holds the data.
//!
//! The REST handlers never touch a [`VectorEngine`] directly: they turn requests into engine
//! [`Command`]s and [`ReadQuery`]s and hand them to a [`Backend`] together with the consistency
//! the client asked for. Today the only implementation is [`local::LocalBackend`] (one engine on
//! an apply worker thread); the replicated node will implement the same trait, which is why the
//! options carry Raft ack levels, read consistency levels and read-your-writes tokens even though
//! a single local engine satisfies all of them trivially.
//!
//! The trait returns boxed futures (instead of `async fn`) so the router can hold an
//! `Arc<dyn Backend>` and the binary can choose the implementation at run time.
//!
//! [`VectorEngine`]: vecraft_core::vector::engine::VectorEngine

mod exec;
pub mod local;
pub mod admission;
pub mod node;
pub mod node_snapshots;
mod precheck;
pub mod schedule;
pub mod snapshots;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use thiserror::Error;
use vecraft_core::vector::collection::{
    CollectionConfig, ScrollPage, ScrollRequest, SearchRequest,
};
use vecraft_core::vector::engine::{Command, CommandOutcome};
use vecraft_core::vector::error::EngineError;
use vecraft_core::vector::filter::Filter;
use vecraft_core::vector::point::{PointId, Record, ScoredPoint};

pub use crate::snapshot_catalog::SnapshotMeta;

/// A boxed, sendable future: what every [`Backend`] method returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// When a write counts as done (the Raft vocabulary of the architecture note, section 5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AckLevel {
    /// The leader applied it locally (fastest; lost if the leader dies before replicating).
    Leader,
    /// One copy besides the leader holds it durably.
    OneCopy,
    /// A majority of the replicas hold it durably (the safe default).
    #[default]
    Quorum,
}

/// How fresh a read must be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Any replica's applied state, possibly stale.
    Eventual,
    /// Linearizable: the leader confirms leadership and reads at its commit index. The default:
    /// Qdrant's clients read right after `wait=true` writes and expect to see them.
    #[default]
    Strong,
    /// At least as new as the write that returned this token.
    ReadYourWrites(ReadToken),
    /// Ask a majority of replicas and merge.
    Quorum,
}

/// Names points in shards' logs: a read with this token sees every write up to each shard's
/// index. A write to several shards gets one mark per shard; clients treat the text form as
/// opaque.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadToken {
    /// Shard → log index (apply position) of the newest write in that shard.
    pub marks: std::collections::BTreeMap<u32, u64>,
}

impl ReadToken {
    /// A token for one shard.
    pub fn single(shard: u32, index: u64) -> ReadToken {
        ReadToken { marks: [(shard, index)].into_iter().collect() }
    }

    /// Text form used in HTTP (`shard:index[,shard:index...]`), opaque to clients.
    pub fn encode(&self) -> String {
        let parts: Vec<String> = self.marks.iter().map(|(s, i)| format!("{s}:{i}")).collect();
        parts.join(",")
    }

    /// Parses [`Self::encode`]'s form (at least one mark, each shard once).
    pub fn decode(text: &str) -> Option<ReadToken> {
        let mut marks = std::collections::BTreeMap::new();
        for part in text.split(',') {
            let (shard, index) = part.split_once(':')?;
            if marks.insert(shard.parse().ok()?, index.parse().ok()?).is_some() {
                return None;
            }
        }
        Some(ReadToken { marks })
    }
}

/// How a write is to be acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// Which copies must hold the write before it counts.
    pub ack: AckLevel,
    /// Answer only once the write is applied (`true`) or once it is accepted (`false`).
    pub wait: bool,
    /// Give up waiting after this long (the write may still happen).
    pub timeout: Option<Duration>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { ack: AckLevel::default(), wait: true, timeout: None }
    }
}

/// How a read is to be served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Required freshness.
    pub consistency: ReadConsistency,
    /// Give up after this long.
    pub timeout: Option<Duration>,
    /// Answer from the shards that could answer (naming the missing ones) instead of failing
    /// when one cannot (vecraft's `allow_partial=true`).
    pub allow_partial: bool,
}

/// What a read's answer does not say by itself: how stale an `eventual` answer may be and
/// which shards a partial answer lacks (sent as the `vecraft-staleness` and
/// `vecraft-missing-shards` headers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadDetails {
    /// Per shard that served an `eventual` read: the replica and how far behind it may be.
    pub staleness: Vec<ShardStaleness>,
    /// Shards missing from a partial answer (sorted).
    pub missing: Vec<u32>,
}

/// How stale one shard replica's answer may be (see the node's `ReplicaStaleness`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardStaleness {
    /// The shard.
    pub shard: u32,
    /// The node whose replica answered.
    pub node: u64,
    /// Its applied index.
    pub applied: u64,
    /// The commit index it knew (so `commit - applied` entries it knew it lacked).
    pub commit: u64,
    /// Time since it last heard its shard leader (zero at the leader, `None` if never since
    /// it started). Not a bound: see the node's documentation.
    pub since_leader: Option<Duration>,
}

/// Where a write stands when its receipt is issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStatus {
    /// Accepted and ordered, not yet applied (`wait=false`).
    Acknowledged,
    /// Applied at the requested ack level.
    Completed,
    /// Accepted, but not applied within the timeout.
    WaitTimeout,
}

/// What a write returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteReceipt {
    /// Monotonic id of the operation on this node (Qdrant's `operation_id`).
    pub operation_id: u64,
    /// Where the write stands.
    pub status: WriteStatus,
    /// Read-your-writes token; reads carrying it see this write.
    pub token: ReadToken,
    /// What the engine did, when the write was applied before answering.
    pub outcome: Option<CommandOutcome>,
}

/// A read request, as data (the replicated backend must route it, so it cannot be a closure).
#[derive(Clone, Debug)]
pub enum ReadQuery {
    /// Names of all collections.
    ListCollections,
    /// Configuration and counts of one collection.
    CollectionInfo(String),
    /// Points by id.
    Retrieve {
        /// Collection.
        collection: String,
        /// Ids, answered in this order; missing ids are skipped.
        ids: Vec<PointId>,
        /// Return payloads.
        with_payload: bool,
        /// Return vectors.
        with_vector: bool,
    },
    /// Nearest-neighbour searches (one or a batch) against the same state.
    Search {
        /// Collection.
        collection: String,
        /// The searches.
        requests: Vec<SearchRequest>,
    },
    /// A page of points in id order.
    Scroll {
        /// Collection.
        collection: String,
        /// The page request.
        request: ScrollRequest,
    },
    /// Number of (matching) points.
    Count {
        /// Collection.
        collection: String,
        /// Only points matching this filter.
        filter: Option<Filter>,
    },
}

/// Summary of one collection.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionSummary {
    /// Its name.
    pub name: String,
    /// Its fixed configuration.
    pub config: CollectionConfig,
    /// Stored points.
    pub points: u64,
    /// Points linked into the ANN graph (the rest wait for an idle apply lane and are
    /// searched exactly meanwhile; on the replicated node, as far as this node's replicas know).
    pub indexed: u64,
    /// Whether deferred indexing work is pending (Qdrant's `yellow` status).
    pub indexing: bool,
    /// Collection sequence number.
    pub seq: u64,
    /// Shards (Qdrant's `shard_number`; 1 on a single-engine backend).
    pub shards: u32,
    /// Replicas of each shard (Qdrant's `replication_factor`).
    pub replication_factor: u32,
    /// Payload field indexes: field -> (schema, points indexed).
    pub field_indexes: std::collections::BTreeMap<String, (vecraft_core::vector::payload_index::FieldSchema, usize)>,
}

/// The answer to a [`ReadQuery`], variant for variant.
#[derive(Clone, Debug)]
pub enum ReadAnswer {
    /// For [`ReadQuery::ListCollections`].
    Collections(Vec<String>),
    /// For [`ReadQuery::CollectionInfo`].
    Collection(CollectionSummary),
    /// For [`ReadQuery::Retrieve`].
    Records(Vec<Record>),
    /// For [`ReadQuery::Search`], one hit list per request.
    Hits(Vec<Vec<ScoredPoint>>),
    /// For [`ReadQuery::Scroll`].
    Page(ScrollPage),
    /// For [`ReadQuery::Count`].
    Count(u64),
}

/// A replica of a shard, as cluster info reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// Shard id.
    pub shard_id: u32,
    /// Node holding the replica.
    pub peer_id: u64,
    /// Qdrant replica state name (`Active`, `Dead`, `Partial`, ...).
    pub state: &'static str,
    /// Points it holds (local replicas only).
    pub points_count: Option<u64>,
    /// Whether it leads its shard (as the shard's leader reports; vecraft's addition to
    /// Qdrant's shape, so a client can see where writes go).
    pub leader: bool,
    /// Log entries it lacks behind its leader (vecraft's addition).
    pub lag_entries: u64,
    /// Entries it holds but has not applied to its engine yet, so its answers are that much
    /// older than its log (vecraft's addition; a follower's as of its last answer to the
    /// leader, this node's own replicas as of now).
    pub apply_lag_entries: u64,
}

/// What the node knows about the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterInfo {
    /// This node's id.
    pub node_id: u64,
    /// Whether replication is on (false for the local backend).
    pub replicated: bool,
    /// Known peers: id and address.
    pub peers: Vec<(u64, String)>,
    /// Raft term of the metadata group, when replicated.
    pub term: u64,
    /// Commit index of the metadata group, when replicated.
    pub commit: u64,
    /// Current leader, when known.
    pub leader: Option<u64>,
}

/// One Raft group hosted by this node, for `/metrics` (empty for the local backend).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupReport {
    /// The group.
    pub group: u64,
    /// Collection and shard it serves (`None` for the metadata group).
    pub shard: Option<(String, u32)>,
    /// Current term here.
    pub term: u64,
    /// Whether this node leads it.
    pub is_leader: bool,
    /// Last index of the local log.
    pub last_index: u64,
    /// Commit index known here.
    pub commit: u64,
    /// Applied index here.
    pub applied: u64,
    /// Waiting for repair after storage damage.
    pub damaged: bool,
    /// Points in this replica's engine (shard groups).
    pub points: Option<u64>,
    /// Points stored in this replica's engine and not yet linked into its graph.
    pub unindexed: Option<u64>,
    /// Whether this replica keeps its f32 vectors in a mapped file (`on_disk` collections).
    pub vectors_on_disk: Option<bool>,
    /// Where this node leads: each follower's lag in entries.
    pub follower_lag: Vec<(u64, u64)>,
    /// Where this node leads: entries each follower holds and has not applied, as of its last
    /// answer.
    pub follower_apply_lag: Vec<(u64, u64)>,
}

/// Where snapshot bytes to recover from are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotSource {
    /// A file on this node (an upload spooled to disk, or a `file://` location).
    File(PathBuf),
    /// A snapshot in this node's catalogue.
    Catalog(String),
}

/// Why a backend call failed. The HTTP layer maps each to a status code.
#[derive(Debug, Error)]
pub enum BackendError {
    /// The engine rejected the command or query (bad input or unknown collection).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The write queue is full: the client should back off and retry.
    #[error("node overloaded: write queue is full ({0} pending); retry later")]
    Overloaded(usize),
    /// Too many points accepted and not yet answered (see `admission`): back off and retry.
    #[error("node overloaded: {in_flight} points accepted and not yet applied (limit {limit}); retry later")]
    PointsInFlight {
        /// Points in flight when refused.
        in_flight: u64,
        /// The node's bound.
        limit: u64,
    },
    /// The write's expected wait behind the points in flight exceeds its share of its deadline
    /// (see `admission`): refused at once instead of timing out in doubt; back off and retry.
    #[error(
        "node overloaded: {in_flight} points in flight would take ~{expected_ms} ms to answer, over this write's budget of {budget_ms} ms (half its deadline); retry later or with a longer timeout"
    )]
    QueueWait {
        /// Points in flight when refused.
        in_flight: u64,
        /// The expected wait at the node's measured rate, ms.
        expected_ms: u64,
        /// Half the write's deadline, ms.
        budget_ms: u64,
    },
    /// The operation did not finish in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The backend is shutting down or its worker died.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A snapshot operation failed.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot_catalog::CatalogError),
    /// A snapshot could not be restored.
    #[error("snapshot restore failed: {0}")]
    Restore(String),
    /// The request asks for something this backend cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The request conflicts with existing state (a collection of that name exists); nothing
    /// happened.
    #[error("{0}")]
    Conflict(String),
    /// A write may or may not have taken effect (its shard lost its leader or it timed out
    /// after being proposed); the message names the shards.
    #[error("{0}")]
    InDoubt(String),
}

/// What the HTTP layer needs from the data side of a node.
pub trait Backend: Send + Sync + 'static {
    /// Submits a state-changing command (collection create/delete, points changes).
    fn write(
        &self,
        command: Command,
        options: WriteOptions,
    ) -> BoxFuture<'_, Result<WriteReceipt, BackendError>>;

    /// Creates a collection with Qdrant's `shard_number` and `replication_factor` (`None`: the
    /// backend's default). A backend without shards ignores them (the default does).
    fn create_collection(
        &self,
        name: String,
        config: CollectionConfig,
        shard_number: Option<u32>,
        replication_factor: Option<u32>,
        options: WriteOptions,
    ) -> BoxFuture<'_, Result<WriteReceipt, BackendError>> {
        let _ = (shard_number, replication_factor);
        self.write(Command::CreateCollection { name, config }, options)
    }

    /// Answers a query at the requested consistency.
    fn read(
        &self,
        query: ReadQuery,
        options: ReadOptions,
    ) -> BoxFuture<'_, Result<ReadAnswer, BackendError>>;

    /// [`Self::read`] with the answer's staleness and missing shards (none for a backend
    /// whose every read is complete and current).
    fn read_detailed(
        &self,
        query: ReadQuery,
        options: ReadOptions,
    ) -> BoxFuture<'_, Result<(ReadAnswer, ReadDetails), BackendError>> {
        let answer = self.read(query, options);
        Box::pin(async move { Ok((answer.await?, ReadDetails::default())) })
    }

    /// Cluster membership and consensus state.
    fn cluster_info(&self) -> BoxFuture<'_, ClusterInfo>;

    /// Replicas of each shard of a collection.
    fn collection_replicas(
        &self,
        collection: String,
    ) -> BoxFuture<'_, Result<Vec<ReplicaInfo>, BackendError>>;

    /// Takes a full snapshot of a collection now.
    fn snapshot_create(
        &self,
        collection: String,
    ) -> BoxFuture<'_, Result<SnapshotMeta, BackendError>>;

    /// Snapshots of a collection, oldest first.
    fn snapshot_list(
        &self,
        collection: String,
    ) -> BoxFuture<'_, Result<Vec<SnapshotMeta>, BackendError>>;

    /// Deletes one snapshot of a collection.
    fn snapshot_delete(
        &self,
        collection: String,
        id: String,
    ) -> BoxFuture<'_, Result<(), BackendError>>;

    /// Path of a snapshot file, to stream it to a client.
    fn snapshot_path(
        &self,
        collection: String,
        id: String,
    ) -> BoxFuture<'_, Result<(SnapshotMeta, PathBuf), BackendError>>;

    /// Replaces (or creates) a collection from a snapshot; returns the restored point count.
    fn snapshot_recover(
        &self,
        collection: String,
        source: SnapshotSource,
    ) -> BoxFuture<'_, Result<u64, BackendError>>;

    /// Whether the node can serve requests (for `/readyz`).
    fn ready(&self) -> bool;

    /// Writes waiting for the apply worker (a gauge for `/metrics`).
    fn queue_depth(&self) -> usize;

    /// The Raft groups hosted here (gauges for `/metrics`); none without replication.
    fn groups(&self) -> Vec<GroupReport> {
        Vec::new()
    }

    /// The vector files of `on_disk` collections here (`None`: this backend keeps every vector
    /// on the heap).
    fn vector_files(&self) -> Option<crate::mmap_vectors::MmapVectorStatus> {
        None
    }

    /// The changes applied on this node and their history (`None`: no change stream here).
    fn changes(
        &self,
    ) -> Option<crate::node_loop::change_feed::ChangeFeed> {
        None
    }

    /// Qdrant's collection aliases: applies `actions` all or none. Only the replicated node
    /// keeps aliases (in its metadata group); the default refuses.
    fn update_aliases(
        &self,
        actions: Vec<vecraft_core::node::metadata::AliasAction>,
        options: WriteOptions,
    ) -> BoxFuture<'_, Result<(), BackendError>> {
        let _ = (actions, options);
        Box::pin(async { Err(no_aliases()) })
    }

    /// Every (alias, collection), by alias.
    fn list_aliases(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, BackendError>> {
        Box::pin(async { Err(no_aliases()) })
    }
}

fn no_aliases() -> BackendError {
    BackendError::Unsupported("collection aliases need the replicated node (`--engine node`)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_token_round_trips_and_rejects_garbage() {
        let t = ReadToken::single(3, 991);
        assert_eq!(t.encode(), "3:991");
        assert_eq!(ReadToken::decode(&t.encode()), Some(t));
        let two = ReadToken { marks: [(0, 5), (1, 9)].into_iter().collect() };
        assert_eq!(two.encode(), "0:5,1:9");
        assert_eq!(ReadToken::decode("0:5,1:9"), Some(two));
        for bad in ["", "3", "3:", ":5", "a:1", "1:-2", "1:2:3", "1:2,", "1:2,1:3"] {
            assert_eq!(ReadToken::decode(bad), None, "{bad}");
        }
    }
}
