//! [`NodeBackend`]: the REST API's [`Backend`] over the node state machine.
//!
//! Every call becomes one `node::request::Request` (or a few: a search batch is one request per
//! query, a collection's info is its metadata plus a count) queued to the node loop, whose
//! answer comes back on a oneshot. The mapping of levels:
//!
//! | HTTP / [`Backend`]              | node                              |
//! |---------------------------------|-----------------------------------|
//! | `AckLevel::{Leader,OneCopy,Quorum}` | `WriteAck::{Leader,OneCopy,Quorum}` |
//! | `ReadConsistency::Eventual`     | `ReadLevel::Eventual`             |
//! | `ReadConsistency::Strong`       | `ReadLevel::Strong`               |
//! | `ReadConsistency::Quorum`       | `ReadLevel::Quorum`               |
//! | `ReadConsistency::ReadYourWrites(token)` | `ReadLevel::ReadYourWrites` (token marks per shard) |
//!
//! `wait` chooses the default ack level (see `http::params`: `wait=false` → `leader`); the
//! answer's status says what the level promised: `quorum` writes are committed and applied on
//! the leader (`completed`), `leader` and `one_copy` writes are durable but maybe not applied
//! yet (`acknowledged`). Errors keep the node's meaning: invalid input 400,
//! unknown collection 404, an existing collection 409, a shard that cannot answer or a refused
//! write 503 (nothing happened; retry), a write whose outcome is unknown 500 (it may have taken
//! effect), each message naming the shard.
//!
//! Collection snapshots go through `node_snapshots` (strong scrolls out, quorum upserts in).
//! Payload field indexes are replicated through every shard's log (`node/field_index.rs`).

use super::{
    AckLevel, Backend, BackendError, BoxFuture, ClusterInfo, CollectionSummary, GroupReport, ReadAnswer,
    ReadConsistency, ReadDetails, ReadOptions, ReadQuery, ReadToken, ReplicaInfo, ShardStaleness,
    SnapshotMeta, SnapshotSource,
    WriteOptions, WriteReceipt, WriteStatus,
};
use super::admission::PointsAdmission;
use crate::node_loop::{NodeHandle, SubmitError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use vecraft_core::node::request::{
    self as nreq, NodeError, ReadLevel, ReplicaState, Reply, Request, WriteAck,
};
use vecraft_core::vector::collection::CollectionConfig;
use vecraft_core::vector::engine::{Command, CommandOutcome};
use vecraft_core::vector::error::EngineError;

mod field_index;
mod vector_settings;

/// Default replicas per shard when the create body names none: three copies (or every node
/// of a smaller cluster). Qdrant defaults to one; vecraft's point is surviving a node loss.
pub const DEFAULT_REPLICATION: u32 = 3;

/// Default bound on points accepted and not yet answered: about ten seconds of one node's
/// measured apply rate on this project's 2-core machine (~5k points/s), so accepted writes
/// finish well within the default request timeout.
pub const DEFAULT_MAX_POINTS_IN_FLIGHT: u64 = 50_000;

/// The node's [`Backend`].
#[derive(Clone, Debug)]
pub struct NodeBackend {
    node: NodeHandle,
    peers: Vec<(u64, String)>,
    operations: std::sync::Arc<AtomicU64>,
    /// Client-side bound on one request (the node answers within its own request timeout).
    default_timeout: Duration,
    /// Collection snapshots of this node (see `node_snapshots`); `None` refuses them.
    pub(super) snapshots: Option<super::node_snapshots::SharedCatalog>,
    /// The bound on points accepted and not yet answered (see `admission`).
    admission: PointsAdmission,
}

impl NodeBackend {
    /// A backend over a running node loop; `peers` are listed by `/cluster`.
    pub fn new(
        node: NodeHandle,
        peers: Vec<(u64, String)>,
        default_timeout: Duration,
    ) -> Self {
        NodeBackend {
            node,
            peers,
            operations: Default::default(),
            default_timeout,
            snapshots: None,
            admission: PointsAdmission::new(DEFAULT_MAX_POINTS_IN_FLIGHT),
        }
    }

    /// Admission's bound and deadline rule (`wait_share` of a write's deadline; 0: off).
    pub fn with_admission(mut self, limit: u64, wait_share: f64) -> Self {
        self.admission = PointsAdmission::new(limit).with_wait_share(wait_share);
        self
    }

    /// Keeps collection snapshots in `catalog` (see `node_snapshots`).
    pub fn with_snapshots(mut self, catalog: crate::snapshot_catalog::SnapshotCatalog) -> Self {
        self.snapshots = Some(std::sync::Arc::new(std::sync::Mutex::new(catalog)));
        self
    }

    /// The node loop handle.
    pub fn handle(&self) -> &NodeHandle {
        &self.node
    }

    /// One request to the node. A name is resolved at a metadata index the metadata leader
    /// confirmed (the node's name barrier, `node/name_barrier.rs`), so a collection created or
    /// replaced through another node a moment ago is found here without a retry.
    pub(super) async fn call(
        &self,
        request: Request,
        timeout: Option<Duration>,
    ) -> Result<Reply, BackendError> {
        // A change the node accepted goes on after the client stops waiting: its time-out is
        // an unknown outcome (500), not a 4xx a client could take for "nothing happened".
        let changes = !request.is_read();
        let limit = timeout.unwrap_or(self.default_timeout);
        // A client's own time-out (Qdrant's `timeout`) is the node's deadline too, shorter or
        // longer than the node's default (see `NodeInput::Request`); without one the node keeps
        // its own, which also bounds how long a replica keeps a part it serves.
        let rx = self.node.submit_within(request, timeout).map_err(|e| match e {
            SubmitError::Overloaded(n) => BackendError::Overloaded(n),
            SubmitError::Stopped => BackendError::Unavailable("node loop stopped".into()),
        })?;
        match tokio::time::timeout(limit, rx).await {
            Err(_) if changes => Err(BackendError::InDoubt(format!(
                "not acknowledged within the {limit:?} time-out; it may still take effect"
            ))),
            Err(_) => Err(BackendError::Timeout(limit)),
            Ok(Err(_)) => Err(BackendError::Unavailable(
                "node loop stopped before answering".into(),
            )),
            Ok(Ok(result)) => result.map_err(node_error),
        }
    }

    pub(super) async fn do_write(
        &self,
        command: Command,
        options: WriteOptions,
    ) -> Result<WriteReceipt, BackendError> {
        let op_id = self.operations.fetch_add(1, Ordering::Relaxed);
        let receipt = |token: ReadToken, outcome| WriteReceipt {
            operation_id: op_id,
            status: WriteStatus::Completed,
            token,
            outcome: Some(outcome),
        };
        match command {
            Command::CreateCollection { name, config } => {
                self.do_create(name, config, None, None, options).await
            }
            Command::DeleteCollection { name } => {
                match self
                    .call(Request::DropCollection { name }, options.timeout)
                    .await
                {
                    Ok(_) => Ok(receipt(
                        ReadToken::default(),
                        CommandOutcome::CollectionDeleted { existed: true },
                    )),
                    Err(BackendError::Engine(EngineError::UnknownCollection(_))) => Ok(receipt(
                        ReadToken::default(),
                        CommandOutcome::CollectionDeleted { existed: false },
                    )),
                    Err(e) => Err(e),
                }
            }
            Command::Points { collection, op } => {
                let affected = match &op {
                    vecraft_core::vector::collection::PointsOp::Upsert(p) => p.len(),
                    _ => 0,
                };
                // Held until the node answers (or the request is dropped).
                let mut permit = self.admission.admit(affected.max(1) as u64, options.timeout)?;
                let (token, status) = self.write_op(collection, op, &options).await?;
                permit.answered();
                let seq = token.marks.values().copied().max().unwrap_or(0);
                let mut r = receipt(token, CommandOutcome::PointsApplied { seq, affected });
                r.status = status;
                Ok(r)
            }
            // Replicated through every shard's log: see `node/field_index.rs`.
            Command::CreateFieldIndex { collection, field, schema } => {
                self.write_field_index(collection, field, Some(schema), options, op_id).await
            }
            Command::DeleteFieldIndex { collection, field } => {
                self.write_field_index(collection, field, None, options, op_id).await
            }
        }
    }

    /// Writes one points command (points or field-index declarations) at the requested ack:
    /// the read token, and `completed` at `quorum` (applied) or `acknowledged` below it.
    pub(super) async fn write_op(
        &self,
        collection: String,
        op: vecraft_core::vector::collection::PointsOp,
        options: &WriteOptions,
    ) -> Result<(ReadToken, WriteStatus), BackendError> {
        let ack = write_ack(options.ack);
        let Reply::Written { token } = self.call(Request::Write { collection, op, ack }, options.timeout).await? else {
            return Err(unexpected());
        };
        let status = match ack {
            WriteAck::Quorum => WriteStatus::Completed,
            WriteAck::Leader | WriteAck::OneCopy => WriteStatus::Acknowledged,
        };
        Ok((ReadToken { marks: token.marks }, status))
    }

    pub(super) async fn do_create(
        &self,
        name: String,
        config: CollectionConfig,
        shards: Option<u32>,
        replication: Option<u32>,
        options: WriteOptions,
    ) -> Result<WriteReceipt, BackendError> {
        let members = self.node.members().len() as u32;
        let request = Request::CreateCollection {
            name,
            config,
            shards: shards.unwrap_or(1),
            replication_factor: replication.unwrap_or(DEFAULT_REPLICATION.min(members)),
        };
        self.call(request, options.timeout).await?;
        Ok(WriteReceipt {
            operation_id: self.operations.fetch_add(1, Ordering::Relaxed),
            status: WriteStatus::Completed,
            token: ReadToken::default(),
            outcome: Some(CommandOutcome::CollectionCreated),
        })
    }

    pub(super) async fn do_read(
        &self,
        query: ReadQuery,
        options: ReadOptions,
    ) -> Result<(ReadAnswer, ReadDetails), BackendError> {
        let read = nreq::ReadOptions {
            level: read_level(&options.consistency),
            allow_partial: options.allow_partial,
        };
        let mut details = ReadDetails::default();
        let t = options.timeout;
        match query {
            ReadQuery::ListCollections => match self.call(Request::ListCollections, t).await? {
                Reply::Collections(list) => Ok((
                    ReadAnswer::Collections(list.into_iter().map(|c| c.name).collect()),
                    details,
                )),
                _ => Err(unexpected()),
            },
            ReadQuery::CollectionInfo(name) => {
                let Reply::Collections(list) = self.call(Request::ListCollections, t).await? else {
                    return Err(unexpected());
                };
                // An alias answers as its collection (under the collection's own name).
                let name = match list.iter().any(|c| c.name == name) {
                    true => name,
                    false => match self.call(Request::ListAliases, t).await? {
                        Reply::Aliases(aliases) => aliases.into_iter().find(|(a, _)| *a == name).map_or(name, |(_, c)| c),
                        _ => return Err(unexpected()),
                    },
                };
                let info = list.into_iter().find(|c| c.name == name).ok_or_else(|| {
                    BackendError::Engine(EngineError::UnknownCollection(name.clone()))
                })?;
                let name_for_indexes = name.clone();
                let Reply::Count { count, missing } = self
                    .call(
                        Request::Count {
                            collection: name.clone(),
                            filter: None,
                            read,
                        },
                        t,
                    )
                    .await?
                else {
                    return Err(unexpected());
                };
                details.add(missing, None);
                let field_indexes = self.field_indexes(name_for_indexes, &options.consistency, t).await?;
                // The create-time config, with the quantization and `on_disk` the shards' logs
                // last set.
                let mut config = info.config;
                let settings = self.vector_settings(name.clone(), &options.consistency, t).await?;
                config.quantization = settings.quantization;
                config.on_disk = settings.on_disk;
                // Deferred indexing as far as this node's replicas know (Qdrant's count is
                // approximate too).
                let unindexed = self.node.collection_unindexed(&name);
                Ok((
                    ReadAnswer::Collection(CollectionSummary {
                        name,
                        config,
                        points: count,
                        indexed: count.saturating_sub(unindexed),
                        indexing: unindexed > 0,
                        seq: 0,
                        shards: info.replicas.len() as u32,
                        replication_factor: info.replicas.first().map_or(1, |r| r.len() as u32),
                        field_indexes,
                    }),
                    details,
                ))
            }
            ReadQuery::Retrieve {
                collection,
                ids,
                with_payload,
                with_vector,
            } => {
                match self
                    .call(
                        Request::Get {
                            collection,
                            ids,
                            with_payload,
                            with_vector,
                            read,
                        },
                        t,
                    )
                    .await?
                {
                    Reply::Records {
                        records,
                        missing,
                        staleness,
                    } => {
                        details.add(missing, staleness);
                        Ok((ReadAnswer::Records(records), details))
                    }
                    _ => Err(unexpected()),
                }
            }
            ReadQuery::Search {
                collection,
                requests,
            } => {
                let calls = requests.into_iter().map(|request| {
                    let r = Request::Search {
                        collection: collection.clone(),
                        request,
                        read: read.clone(),
                    };
                    self.call(r, t)
                });
                let mut all = Vec::new();
                for reply in futures::future::join_all(calls).await {
                    match reply? {
                        Reply::Hits {
                            hits,
                            missing,
                            staleness,
                        } => {
                            details.add(missing, staleness);
                            all.push(hits)
                        }
                        _ => return Err(unexpected()),
                    }
                }
                Ok((ReadAnswer::Hits(all), details))
            }
            ReadQuery::Scroll {
                collection,
                request,
            } => {
                match self
                    .call(
                        Request::Scroll {
                            collection,
                            request,
                            read,
                        },
                        t,
                    )
                    .await?
                {
                    Reply::Page { page, missing } => {
                        details.add(missing, None);
                        Ok((ReadAnswer::Page(page), details))
                    }
                    _ => Err(unexpected()),
                }
            }
            ReadQuery::Count { collection, filter } => {
                match self
                    .call(
                        Request::Count {
                            collection,
                            filter,
                            read,
                        },
                        t,
                    )
                    .await?
                {
                    Reply::Count { count, missing } => {
                        details.add(missing, None);
                        Ok((ReadAnswer::Count(count), details))
                    }
                    _ => Err(unexpected()),
                }
            }
        }
    }
}

/// Folds a shard answer's missing shards and staleness into the read's details (a search
/// batch folds one per query: every serving replica is listed once per shard and node).
trait FoldDetails {
    fn add(&mut self, missing: Vec<u32>, staleness: Option<nreq::Staleness>);
}

impl FoldDetails for ReadDetails {
    fn add(&mut self, missing: Vec<u32>, staleness: Option<nreq::Staleness>) {
        self.missing.extend(missing);
        self.missing.sort_unstable();
        self.missing.dedup();
        for (shard, r) in staleness.map(|s| s.replicas).unwrap_or_default() {
            let line = ShardStaleness {
                shard,
                node: r.node,
                applied: r.applied,
                commit: r.commit,
                since_leader: r.since_leader,
            };
            if !self.staleness.iter().any(|l| l.shard == shard && l.node == r.node) {
                self.staleness.push(line);
            }
        }
        self.staleness.sort_by_key(|l| (l.shard, l.node));
    }
}

/// The node's ack level for an [`AckLevel`].
pub fn write_ack(a: AckLevel) -> WriteAck {
    match a {
        AckLevel::Leader => WriteAck::Leader,
        AckLevel::OneCopy => WriteAck::OneCopy,
        AckLevel::Quorum => WriteAck::Quorum,
    }
}

/// The node's read level for a [`ReadConsistency`].
pub fn read_level(c: &ReadConsistency) -> ReadLevel {
    match c {
        ReadConsistency::Eventual => ReadLevel::Eventual,
        ReadConsistency::Strong => ReadLevel::Strong,
        ReadConsistency::Quorum => ReadLevel::Quorum,
        ReadConsistency::ReadYourWrites(t) => ReadLevel::ReadYourWrites(nreq::ReadToken {
            marks: t.marks.clone(),
        }),
    }
}

/// A node error as the HTTP layer classifies it.
pub fn node_error(e: NodeError) -> BackendError {
    match e {
        NodeError::Invalid(m) => BackendError::Engine(EngineError::InvalidRequest(m)),
        NodeError::NoSuchCollection(c) => BackendError::Engine(EngineError::UnknownCollection(c)),
        NodeError::CollectionExists(c) => {
            BackendError::Conflict(format!("collection `{c}` already exists"))
        }
        e @ NodeError::Shard(_) => BackendError::Unavailable(e.to_string()),
        e @ NodeError::Refused { .. } => BackendError::Unavailable(e.to_string()),
        e @ NodeError::Indeterminate { .. } => BackendError::InDoubt(e.to_string()),
    }
}

/// Qdrant's name for a replica's state. The leader judges replicas by their logs; a replica
/// whose log is complete but which is still catching up in applying it (`unapplied` entries,
/// as after a restart, which replays the log into the engine) is `Partial` too: it cannot yet
/// answer writes at once as a leader, and an operator restarting nodes one by one should wait
/// for it. (This node's own replicas as of now; the others as their last answer to the leader
/// said, at most a heartbeat old while the group is awake, exact while it sleeps.)
fn replica_state_name(state: ReplicaState, unapplied: u64) -> &'static str {
    match state {
        ReplicaState::Active if crate::node_loop::apply_lane::catching_up(unapplied) => "Partial",
        ReplicaState::Active => "Active",
        ReplicaState::CatchingUp => "Partial",
        ReplicaState::Snapshotting => "Recovery",
        ReplicaState::Dead => "Dead",
    }
}

fn unexpected() -> BackendError {
    BackendError::Unavailable("the node answered with an unexpected reply kind (a bug)".into())
}


impl Backend for NodeBackend {
    fn write(
        &self,
        command: Command,
        options: WriteOptions,
    ) -> BoxFuture<'_, Result<WriteReceipt, BackendError>> {
        Box::pin(self.do_write(command, options))
    }

    fn create_collection(
        &self,
        name: String,
        config: CollectionConfig,
        shard_number: Option<u32>,
        replication_factor: Option<u32>,
        options: WriteOptions,
    ) -> BoxFuture<'_, Result<WriteReceipt, BackendError>> {
        Box::pin(self.do_create(name, config, shard_number, replication_factor, options))
    }

    fn update_aliases(
        &self,
        actions: Vec<vecraft_core::node::metadata::AliasAction>,
        options: WriteOptions,
    ) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            match self.call(Request::UpdateAliases { actions }, options.timeout).await? {
                Reply::Done => Ok(()),
                _ => Err(unexpected()),
            }
        })
    }

    fn list_aliases(&self) -> BoxFuture<'_, Result<Vec<(String, String)>, BackendError>> {
        Box::pin(async move {
            match self.call(Request::ListAliases, None).await? {
                Reply::Aliases(list) => Ok(list),
                _ => Err(unexpected()),
            }
        })
    }

    fn read(
        &self,
        query: ReadQuery,
        options: ReadOptions,
    ) -> BoxFuture<'_, Result<ReadAnswer, BackendError>> {
        Box::pin(async move { Ok(self.do_read(query, options).await?.0) })
    }

    fn read_detailed(
        &self,
        query: ReadQuery,
        options: ReadOptions,
    ) -> BoxFuture<'_, Result<(ReadAnswer, ReadDetails), BackendError>> {
        Box::pin(self.do_read(query, options))
    }

    fn cluster_info(&self) -> BoxFuture<'_, ClusterInfo> {
        let s = self.node.status();
        Box::pin(async move {
            ClusterInfo {
                node_id: s.node_id,
                replicated: true,
                peers: self.peers.clone(),
                term: s.meta_term,
                commit: s.meta_commit,
                leader: s.meta_leader,
            }
        })
    }

    fn collection_replicas(
        &self,
        collection: String,
    ) -> BoxFuture<'_, Result<Vec<ReplicaInfo>, BackendError>> {
        Box::pin(async move {
            let me = self.node.status().node_id;
            // This node's replicas of the collection: shard → (group, entries committed and
            // not applied here), to count their points and tell a replica still replaying.
            let local: BTreeMap<u32, (u64, u64)> = self
                .node
                .groups()
                .iter()
                .filter_map(|g| match &g.shard {
                    Some((c, shard)) if *c == collection => {
                        Some((*shard, (g.group, g.commit.saturating_sub(g.applied))))
                    }
                    _ => None,
                })
                .collect();
            match self
                .call(Request::ReplicaStatus { collection }, None)
                .await?
            {
                Reply::Status(list) => Ok(list
                    .into_iter()
                    .map(|r| {
                        // This node's own replicas as of now; the others as their last answer
                        // to the shard's leader said.
                        let here = (r.node == me).then(|| local.get(&r.shard).map(|l| l.1)).flatten();
                        let apply_lag = here.unwrap_or(r.index.saturating_sub(r.applied));
                        (r, apply_lag)
                    })
                    .map(|(r, apply_lag)| ReplicaInfo {
                        shard_id: r.shard,
                        peer_id: r.node,
                        state: replica_state_name(r.state, apply_lag),
                        // Only this node's own replicas are counted (as Qdrant's local shards).
                        points_count: (r.node == me)
                            .then(|| local.get(&r.shard).and_then(|l| self.node.local_points(l.0)))
                            .flatten(),
                        leader: r.leader,
                        lag_entries: r.lag_entries,
                        apply_lag_entries: apply_lag,
                    })
                    .collect()),
                _ => Err(unexpected()),
            }
        })
    }

    fn snapshot_create(
        &self,
        collection: String,
    ) -> BoxFuture<'_, Result<SnapshotMeta, BackendError>> {
        Box::pin(self.node_snapshot_create(collection))
    }

    fn snapshot_list(
        &self,
        collection: String,
    ) -> BoxFuture<'_, Result<Vec<SnapshotMeta>, BackendError>> {
        Box::pin(self.node_snapshot_list(collection))
    }

    fn snapshot_delete(
        &self,
        collection: String,
        id: String,
    ) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.node_snapshot_delete(collection, id))
    }

    fn snapshot_path(
        &self,
        collection: String,
        id: String,
    ) -> BoxFuture<'_, Result<(SnapshotMeta, PathBuf), BackendError>> {
        Box::pin(self.node_snapshot_path(collection, id))
    }

    fn snapshot_recover(
        &self,
        collection: String,
        source: SnapshotSource,
    ) -> BoxFuture<'_, Result<u64, BackendError>> {
        Box::pin(self.node_snapshot_recover(collection, source))
    }

    fn ready(&self) -> bool {
        self.node.status().ready()
    }

    fn queue_depth(&self) -> usize {
        self.node.queue_depth()
    }

    fn changes(
        &self,
    ) -> Option<crate::node_loop::change_feed::ChangeFeed> {
        Some(self.node.change_feed())
    }

    fn groups(&self) -> Vec<GroupReport> {
        let me = self.node.status().node_id;
        self.node
            .groups()
            .iter()
            .map(|g| GroupReport {
                group: g.group,
                shard: g.shard.clone(),
                term: g.term,
                is_leader: g.leader == Some(me),
                last_index: g.last_index,
                commit: g.commit,
                applied: g.applied,
                damaged: g.damaged,
                points: g.shard.as_ref().and_then(|_| self.node.local_points(g.group)),
                unindexed: g.shard.as_ref().and_then(|_| self.node.local_unindexed(g.group)),
                vectors_on_disk: g.shard.as_ref().and_then(|_| self.node.local_vectors_on_disk(g.group)),
                follower_lag: g.follower_lag.clone(),
                follower_apply_lag: g.follower_apply_lag.clone(),
            })
            .collect()
    }

    fn vector_files(&self) -> Option<crate::mmap_vectors::MmapVectorStatus> {
        Some(self.node.vector_files())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_replica_256_entries_behind_in_applying_is_partial_and_255_active() {
        assert_eq!(replica_state_name(ReplicaState::Active, 0), "Active");
        assert_eq!(replica_state_name(ReplicaState::Active, 255), "Active");
        assert_eq!(replica_state_name(ReplicaState::Active, 256), "Partial");
        assert_eq!(replica_state_name(ReplicaState::CatchingUp, 0), "Partial");
        assert_eq!(replica_state_name(ReplicaState::Snapshotting, 0), "Recovery");
        assert_eq!(replica_state_name(ReplicaState::Dead, 1_000), "Dead");
    }

    #[test]
    fn levels_and_errors_map_as_documented() {
        let t = ReadToken {
            marks: [(0, 3), (1, 8)].into_iter().collect(),
        };
        let ReadLevel::ReadYourWrites(nt) = read_level(&ReadConsistency::ReadYourWrites(t.clone()))
        else {
            panic!("read_your_writes expected")
        };
        assert_eq!(nt.marks, t.marks);
        assert_eq!(read_level(&ReadConsistency::Quorum), ReadLevel::Quorum);
        let status = |e: NodeError| {
            crate::http::envelope::ApiError::from(node_error(e))
                .status
                .as_u16()
        };
        assert_eq!(status(NodeError::Invalid("x".into())), 400);
        assert_eq!(status(NodeError::NoSuchCollection("c".into())), 404);
        assert_eq!(status(NodeError::CollectionExists("c".into())), 409);
        assert_eq!(
            status(NodeError::Refused {
                shard: 1,
                reason: "no leader".into()
            }),
            503
        );
        let in_doubt = NodeError::Indeterminate {
            shards: vec![2],
            reason: "timeout".into(),
        };
        let msg = node_error(in_doubt.clone()).to_string();
        assert!(msg.contains("[2]"), "{msg}");
        assert_eq!(status(in_doubt), 500);
        // The node types refusals of the metadata state machine (also at apply time).
        assert_eq!(status(NodeError::CollectionExists("t".into())), 409);
        assert!(matches!(
            node_error(NodeError::NoSuchCollection("t".into())),
            BackendError::Engine(EngineError::UnknownCollection(c)) if c == "t"
        ));
        let no_leader = NodeError::Refused {
            shard: 0,
            reason: "no leader".into(),
        };
        assert_eq!(status(no_leader), 503);
    }
}
