//! Collection snapshots through the replicated node: Qdrant's `POST /collections/{c}/snapshots`,
//! list, download, delete and recover, on a catalogue of this node
//! (`<data dir>/collection-snapshots`, apart from the shard snapshots Raft compaction keeps in
//! `<data dir>/snapshots`).
//!
//! Why through the node's public paths and not from the local replicas: a node need not host
//! every shard, and a shard replica here may trail its leader. So a snapshot copies each shard
//! with a [`ShardExport`]: rounds of linearizable "changes after sequence number" reads that
//! end with the shard exactly as it was at one position of its log, however many writes land
//! meanwhile (a shard written faster than it can be read is refused, not copied torn). The
//! copies go into an engine built aside, written in the engine's full snapshot format (zstd
//! chunks, blake3, with the HNSW graph);
//! a recovery fills a collection aside (`<name>.recovering`, the snapshot's configuration and
//! the old shard layout, every point upserted at `quorum`) and then swaps it in with one
//! metadata command ([`Request::ReplaceCollection`]): readers see the old content until that
//! entry applies and the recovered content, whole, from then on (aliases of the name follow),
//! never an empty or partly loaded collection. A recovery that fails midway drops its staging
//! collection and leaves the old one as it was; one cut short by a crash leaves
//! `<name>.recovering` behind, which the next recovery refuses to overwrite (delete it first:
//! it may be a user's own collection of that name).
//!
//! Limits, said plainly: each shard is copied at its own log position, one after the other, so
//! a write spanning shards may be in the copy of one shard and not of another (shards have
//! separate logs; Qdrant's per-shard snapshots are no different). Writes to the old collection
//! while a recovery runs are lost with it at the swap, as with any restore. Incremental
//! snapshots are the single-node server's; the node refuses them (restore their full base).

use super::node::NodeBackend;
use super::snapshots::{blocking, owned_in, restore_source};
use super::{
    BackendError, ReadAnswer, ReadConsistency, ReadOptions, ReadQuery, SnapshotMeta,
    SnapshotSource, WriteOptions,
};
use crate::snapshot_catalog::{CatalogError, SnapshotCatalog};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vecraft_core::node::request::{ReadLevel, ReadOptions as NodeReadOptions, Reply, Request};
use vecraft_core::node::shard_export::{ExportProgress, ShardExport};
use vecraft_core::vector::collection::{Collection, IndexingPolicy, PointsOp, ScrollRequest};
use vecraft_core::vector::engine::Command;
use vecraft_core::vector::error::EngineError;
use vecraft_core::vector::point::{PointStruct, Record};

/// The node's collection-snapshot catalogue.
pub type SharedCatalog = Arc<Mutex<SnapshotCatalog>>;

/// Changes per page while snapshotting.
const PAGE: usize = 1_000;
/// Points per upsert while recovering.
const BATCH: usize = 500;
/// Appended to the collection's name for the collection a recovery fills aside.
const STAGING_SUFFIX: &str = ".recovering";
/// Attempts per recovery batch (upserts are idempotent, so an in-doubt batch is sent again).
const ATTEMPTS: usize = 5;

fn lock(c: &SharedCatalog) -> std::sync::MutexGuard<'_, SnapshotCatalog> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Looks a snapshot up and checks it belongs to `collection`.
fn owned(catalog: &SharedCatalog, collection: &str, id: &str) -> Result<SnapshotMeta, BackendError> {
    owned_in(catalog, collection, id)
}

fn point(r: Record) -> Result<PointStruct, BackendError> {
    let vector = r.vector.ok_or_else(|| {
        BackendError::Unavailable(format!(
            "point {} came back without its vector",
            r.id.to_json()
        ))
    })?;
    Ok(PointStruct {
        id: r.id,
        vector,
        payload: r.payload.unwrap_or_default(),
    })
}

impl NodeBackend {
    fn catalog(&self) -> Result<&SharedCatalog, BackendError> {
        self.snapshots.as_ref().ok_or_else(|| {
            BackendError::Unsupported("this node keeps no collection snapshots".into())
        })
    }

    /// The collection's shard count and replication factor, if it exists.
    async fn layout(
        &self,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<(u32, u32)>, BackendError> {
        let Reply::Collections(list) = self.call(Request::ListCollections, timeout).await? else {
            return Err(BackendError::Unavailable(
                "unexpected reply to a collection list".into(),
            ));
        };
        Ok(list.into_iter().find(|c| c.name == name).map(|c| {
            let rf = c.replicas.first().map_or(1, Vec::len) as u32;
            (c.replicas.len() as u32, rf)
        }))
    }

    /// Copies every shard as of one position of its log (a [`ShardExport`] each, read through
    /// linearizable changes reads), builds the collection aside from the copies, then writes it.
    pub(super) async fn node_snapshot_create(
        &self,
        collection: String,
    ) -> Result<SnapshotMeta, BackendError> {
        let catalog = self.catalog()?.clone();
        let info = match self
            .do_read(ReadQuery::CollectionInfo(collection.clone()), strong())
            .await?
        {
            (ReadAnswer::Collection(info), _) => info,
            _ => {
                return Err(BackendError::Unavailable(
                    "unexpected reply to a collection info".into(),
                ));
            }
        };
        let mut points = Vec::new();
        let mut cut = Vec::with_capacity(info.shards as usize);
        let mut rounds = Vec::with_capacity(info.shards as usize);
        for shard in 0..info.shards {
            let (records, seq, r) = self.export_shard(&collection, shard).await?;
            for r in records {
                points.push(point(r)?);
            }
            cut.push(seq);
            rounds.push(r);
        }
        tracing::info!(%collection, points = points.len(), shard_seqs = ?cut, shard_rounds = ?rounds, "collection read for a snapshot: each shard as of one position of its log");
        let indexes = info.field_indexes.clone();
        blocking(move || {
            let mut engine = Collection::new(&collection, info.config)?;
            // Store first, then build the graph once on every core (the snapshot carries it, so
            // a restore does not rebuild): linking at each insert ran on one thread.
            engine.set_indexing_policy(IndexingPolicy::deferred(usize::MAX));
            for (field, (schema, _)) in indexes {
                engine.create_field_index(&field, schema)?;
            }
            for chunk in points.chunks(BATCH) {
                engine.apply(PointsOp::Upsert(chunk.to_vec()))?;
            }
            engine.rebuild_index_parallel(std::thread::available_parallelism().map_or(1, |n| n.get()));
            debug_assert_eq!(engine.unindexed(), 0);
            // Ids name the creation time: two snapshots of different contents never share one.
            let mut at = now_ms();
            let mut catalog = lock(&catalog);
            loop {
                match catalog.create_full_tagged(&engine, &format!("{at:020}"), at) {
                    Err(CatalogError::AlreadyExists(_)) => at += 1,
                    other => return Ok(other?),
                }
            }
        })
        .await
    }

    /// One shard's points as of one position of its log, that position's sequence number, and
    /// the rounds of changes it took.
    async fn export_shard(&self, collection: &str, shard: u32) -> Result<(Vec<Record>, u64, u32), BackendError> {
        let mut export = ShardExport::new(shard, PAGE);
        loop {
            let read = export.next_read();
            let request = Request::ShardChanges {
                collection: collection.to_string(),
                shard,
                since: read.since,
                after: read.after,
                limit: read.limit as u32,
                read: NodeReadOptions { level: ReadLevel::Strong, allow_partial: false },
            };
            let Reply::Changes(page) = self.call(request, Some(Duration::from_secs(30))).await? else {
                return Err(BackendError::Unavailable("unexpected reply to a changes read".into()));
            };
            match export.on_page(page) {
                Ok(ExportProgress::More) => {}
                Ok(ExportProgress::Done { seq }) => {
                    let rounds = export.rounds();
                    tracing::debug!(collection, shard, seq, rounds, restarts = export.restarts(), "shard copied");
                    return Ok((export.into_points(), seq, rounds));
                }
                Err(e) => return Err(BackendError::Unavailable(format!("snapshot of collection {collection:?}: {e}"))),
            }
        }
    }

    pub(super) async fn node_snapshot_list(
        &self,
        collection: String,
    ) -> Result<Vec<SnapshotMeta>, BackendError> {
        let catalog = self.catalog()?.clone();
        blocking(move || {
            Ok(lock(&catalog)
                .list(Some(&collection))
                .into_iter()
                .cloned()
                .collect())
        })
        .await
    }

    pub(super) async fn node_snapshot_delete(
        &self,
        collection: String,
        id: String,
    ) -> Result<(), BackendError> {
        let catalog = self.catalog()?.clone();
        blocking(move || {
            owned(&catalog, &collection, &id)?;
            Ok(lock(&catalog).delete(&id)?)
        })
        .await
    }

    pub(super) async fn node_snapshot_path(
        &self,
        collection: String,
        id: String,
    ) -> Result<(SnapshotMeta, PathBuf), BackendError> {
        let catalog = self.catalog()?.clone();
        blocking(move || {
            let meta = owned(&catalog, &collection, &id)?;
            let dir = lock(&catalog).dir().to_path_buf();
            Ok((meta, dir.join(format!("{id}.snap"))))
        })
        .await
    }

    /// Replaces `collection` with the snapshot's content through the replicated paths: filled
    /// aside, swapped in by one metadata command.
    pub(super) async fn node_snapshot_recover(
        &self,
        collection: String,
        source: SnapshotSource,
    ) -> Result<u64, BackendError> {
        let staging = staging_name(&collection)?;
        let catalog = self.catalog()?.clone();
        let name = collection.clone();
        let restored = blocking(move || build(&catalog, &name, source)).await?;
        let timeout = Some(Duration::from_secs(30));
        if self.layout(&staging, timeout).await?.is_some() {
            return Err(BackendError::Conflict(format!(
                "collection {staging:?} exists (left by an interrupted recovery, or a collection of \
                 that name): delete it and recover again"
            )));
        }
        let layout = self.layout(&collection, timeout).await?;
        let options = WriteOptions {
            timeout,
            ..WriteOptions::default()
        };
        let (shards, rf) = layout.unzip();
        self.do_create(staging.clone(), *restored.config(), shards, rf, options)
            .await?;
        let filled = self.fill(&staging, &restored, options).await;
        let swapped = match filled {
            Ok(()) => {
                let replace = Request::ReplaceCollection {
                    name: collection.clone(),
                    with: staging.clone(),
                };
                self.call(replace, timeout).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = swapped {
            // The old collection is untouched; the staging one goes (best effort: if even
            // this fails, the next recovery names it).
            let drop = Request::DropCollection { name: staging.clone() };
            if let Err(d) = self.call(drop, timeout).await {
                tracing::warn!(collection, staging, error = %d, "cannot drop the staging collection of a failed recovery");
            }
            return Err(e);
        }
        tracing::info!(collection, points = restored.len(), "collection recovered from a snapshot and swapped in");
        Ok(restored.len() as u64)
    }

    /// Declares the snapshot's field indexes on `target` and upserts every point, at `quorum`.
    async fn fill(
        &self,
        target: &str,
        restored: &Collection,
        options: WriteOptions,
    ) -> Result<(), BackendError> {
        for (field, (schema, _)) in restored.field_indexes() {
            let command = Command::CreateFieldIndex {
                collection: target.to_string(),
                field,
                schema,
            };
            self.write_retrying(command, options).await?;
        }
        let mut offset = None;
        loop {
            let request = ScrollRequest {
                offset,
                limit: BATCH,
                filter: None,
                with_payload: true,
                with_vector: true,
            };
            let page = restored.scroll(&request)?;
            let batch = page
                .points
                .into_iter()
                .map(point)
                .collect::<Result<Vec<_>, _>>()?;
            if !batch.is_empty() {
                let command = Command::Points {
                    collection: target.to_string(),
                    op: PointsOp::Upsert(batch),
                };
                self.write_retrying(command, options).await?;
            }
            match page.next_offset {
                Some(next) => offset = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// A write sent again while its outcome is unknown or no leader answers (idempotent
    /// commands only).
    async fn write_retrying(
        &self,
        command: Command,
        options: WriteOptions,
    ) -> Result<(), BackendError> {
        let mut last = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt.min(4))).await;
            }
            match self.do_write(command.clone(), options).await {
                Ok(_) => return Ok(()),
                Err(
                    e @ (BackendError::InDoubt(_)
                    | BackendError::Unavailable(_)
                    | BackendError::Overloaded(_)),
                ) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| BackendError::Unavailable("no attempt made".into())))
    }
}

/// Where a recovery of `collection` fills the new content before the swap.
fn staging_name(collection: &str) -> Result<String, BackendError> {
    let staging = format!("{collection}{STAGING_SUFFIX}");
    vecraft_core::vector::collection::validate_collection_name(&staging).map_err(|_| {
        BackendError::Engine(EngineError::InvalidCollectionName {
            name: collection.to_string(),
            reason: "too long to recover into: the staging collection's name adds `.recovering`",
        })
    })?;
    Ok(staging)
}

fn strong() -> ReadOptions {
    ReadOptions {
        consistency: ReadConsistency::Strong,
        timeout: Some(Duration::from_secs(30)),
        allow_partial: false,
    }
}

/// The snapshot's collection, verified (every checksum) and built aside.
fn build(
    catalog: &SharedCatalog,
    collection: &str,
    source: SnapshotSource,
) -> Result<Collection, BackendError> {
    restore_source(catalog, collection, source, |_| {
        Err(BackendError::Restore(
            "an incremental snapshot cannot be recovered through the replicated node; \
             recover its full base"
                .into(),
        ))
    })
}

/// Scheduled collection snapshots of a replicated node, with retention: every `interval`, each
/// collection whose newest snapshot here is older than `interval` gets a new one (always full:
/// the node's snapshots are built afresh), then only the newest `retain` are kept (0 keeps all).
/// Each node snapshots into its own catalogue (as Qdrant's per-node snapshots). Failures are
/// logged and retried at the next round; they never stop the server.
pub async fn run_schedule(backend: NodeBackend, interval: Duration, retain: usize) {
    let mut ticker = tokio::time::interval(interval.min(Duration::from_secs(60)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = schedule_round(&backend, interval, retain).await {
            tracing::warn!(error = %e, "scheduled collection snapshots failed; retried next round");
        }
    }
}

/// One round of [`run_schedule`]; returns the snapshots taken.
pub async fn schedule_round(
    backend: &NodeBackend,
    interval: Duration,
    retain: usize,
) -> Result<Vec<SnapshotMeta>, BackendError> {
    let catalog = backend.catalog()?.clone();
    let (ReadAnswer::Collections(names), _) = backend.do_read(ReadQuery::ListCollections, strong()).await? else {
        return Err(BackendError::Unavailable("unexpected reply to a collection list".into()));
    };
    let mut taken = Vec::new();
    for name in names {
        let newest = lock(&catalog).list(Some(&name)).last().map(|m| m.created_at_ms);
        if newest.is_some_and(|at| now_ms().saturating_sub(at) < interval.as_millis() as u64) {
            continue;
        }
        let meta = backend.node_snapshot_create(name.clone()).await?;
        tracing::info!(snapshot = %meta.id, bytes = meta.size_bytes, "scheduled collection snapshot taken");
        if retain > 0 {
            let c = catalog.clone();
            let deleted = blocking(move || Ok(lock(&c).retain_newest(&name, retain)?)).await?;
            if !deleted.is_empty() {
                tracing::info!(?deleted, "snapshot retention removed old snapshots");
            }
        }
        taken.push(meta);
    }
    Ok(taken)
}
