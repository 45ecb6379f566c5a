//! [`LocalBackend`]: one [`VectorEngine`] on this node, no replication.
//!
//! **Threading.** The engine sits in an `Arc<RwLock<_>>`. A dedicated OS thread, the *apply
//! worker*, is the only writer: it drains a **bounded** queue of commands in order, applies a
//! batch under one write lock and answers each submitter over a oneshot channel. Reads run on
//! tokio's blocking pool under the read lock, so any number of searches proceed in parallel and
//! always see a state between two applied commands (never half a command). A snapshot-swap design
//! (readers on an immutable copy) would never block readers during inserts, but copying an HNSW
//! index per write batch costs more than the short write-lock pauses this design has; writes are
//! batched (up to [`MAX_APPLY_BATCH`]) to keep those pauses few.
//!
//! **Back-pressure.** When the queue is full, [`Backend::write`] fails at once with
//! [`BackendError::Overloaded`] (HTTP 503), so memory stays bounded however fast clients send.
//!
//! **Consistency levels, honoured trivially.** There is one copy, so every [`AckLevel`] is met once
//! the worker applied the command. Every command gets the next *apply index* when queued, and the
//! worker publishes the highest applied index on a watch channel: `strong` and `quorum` reads wait
//! until everything queued before them is applied (linearizable on one node),
//! `read_your_writes{token}` waits until the token's index is applied, `eventual` reads at once.
//! Tokens are `(shard 0, index)`.
//!
//! **Durability.** There is no WAL yet: the engine lives in memory, and [`LocalBackend::open`]
//! restores each collection from its newest snapshot in the catalogue, so scheduled snapshots
//! bound what a restart loses.

use super::exec::{execute, restore_newest};
use super::precheck::precheck;
use super::{
    Backend, BackendError, BoxFuture, ClusterInfo, ReadAnswer, ReadConsistency, ReadOptions,
    ReadQuery, ReadToken, ReplicaInfo, SnapshotMeta, SnapshotSource, WriteOptions, WriteReceipt,
    WriteStatus,
};
use crate::snapshot_catalog::SnapshotCatalog;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use vecraft_core::vector::collection::{Collection, PointsOp};
use vecraft_core::vector::engine::{Command, CommandOutcome, VectorEngine};
use vecraft_core::vector::error::EngineError;

/// Most commands applied under one write lock.
pub const MAX_APPLY_BATCH: usize = 64;

/// Work for the apply worker.
pub(super) enum Job {
    /// A replicated-style command.
    Command(Command),
    /// Put a restored collection in place (snapshot recovery), ordered with the writes.
    Install(Box<Collection>),
}

struct Queued {
    index: u64,
    job: Job,
    reply: Option<oneshot::Sender<Result<CommandOutcome, EngineError>>>,
}

/// Shared state of the backend and its worker.
pub(super) struct Shared {
    pub(super) engine: RwLock<VectorEngine>,
    pub(super) catalog: Mutex<SnapshotCatalog>,
    alive: AtomicBool,
}

impl Shared {
    /// The engine for reading; a poisoned lock (a panic while applying) still yields the state,
    /// because the worker catches panics per command and the engine validates before changing.
    pub(super) fn read_engine(&self) -> RwLockReadGuard<'_, VectorEngine> {
        self.engine.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_engine(&self) -> RwLockWriteGuard<'_, VectorEngine> {
        self.engine.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn lock_catalog(&self) -> std::sync::MutexGuard<'_, SnapshotCatalog> {
        self.catalog.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Settings of a [`LocalBackend`].
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Where the snapshot catalogue lives (`<data dir>/snapshots`).
    pub snapshot_dir: PathBuf,
    /// Capacity of the write queue.
    pub queue_capacity: usize,
    /// This node's id (reported by cluster info).
    pub node_id: u64,
    /// Restore collections from their newest snapshots when opening.
    pub restore_on_open: bool,
}

/// A single engine behind the [`Backend`] trait. Cheap to clone.
#[derive(Clone)]
pub struct LocalBackend {
    pub(super) shared: Arc<Shared>,
    /// Sender and the index of the last queued command, under one lock so indexes follow queue
    /// order.
    queue: Arc<Mutex<(mpsc::Sender<Queued>, u64)>>,
    applied: watch::Receiver<u64>,
    capacity: usize,
    node_id: u64,
}

impl LocalBackend {
    /// Opens the snapshot catalogue, optionally restores collections from it, and starts the
    /// apply worker thread.
    pub fn open(options: LocalOptions) -> Result<LocalBackend, BackendError> {
        let catalog = SnapshotCatalog::open(&options.snapshot_dir)?;
        let mut engine = VectorEngine::new();
        if options.restore_on_open {
            restore_newest(&catalog, &mut engine)?;
        }
        let shared = Arc::new(Shared {
            engine: RwLock::new(engine),
            catalog: Mutex::new(catalog),
            alive: AtomicBool::new(true),
        });
        let capacity = options.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        let (applied_tx, applied_rx) = watch::channel(0);
        let worker_shared = shared.clone();
        std::thread::Builder::new()
            .name("vecraft-apply".into())
            .spawn(move || apply_worker(worker_shared, rx, applied_tx))
            .map_err(|e| BackendError::Unavailable(format!("cannot start apply worker: {e}")))?;
        Ok(LocalBackend {
            shared,
            queue: Arc::new(Mutex::new((tx, 0))),
            applied: applied_rx,
            capacity,
            node_id: options.node_id,
        })
    }

    /// The snapshot catalogue directory.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.shared.lock_catalog().dir().to_path_buf()
    }

    /// Queues a job; returns its apply index and the receiver of its outcome.
    pub(super) fn enqueue(
        &self,
        job: Job,
    ) -> Result<(u64, oneshot::Receiver<Result<CommandOutcome, EngineError>>), BackendError> {
        let (reply, answer) = oneshot::channel();
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let index = queue.1 + 1;
        match queue.0.try_send(Queued { index, job, reply: Some(reply) }) {
            Ok(()) => {
                queue.1 = index;
                Ok((index, answer))
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(BackendError::Overloaded(self.capacity)),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Err(BackendError::Unavailable("apply worker stopped".into()))
            }
        }
    }

    fn last_queued(&self) -> u64 {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Waits until the worker applied `index` (or the timeout passes).
    async fn wait_applied(
        &self,
        index: u64,
        timeout: Option<Duration>,
    ) -> Result<(), BackendError> {
        let mut applied = self.applied.clone();
        let wait = applied.wait_for(|a| *a >= index);
        let done = match timeout {
            Some(t) => tokio::time::timeout(t, wait).await.map_err(|_| BackendError::Timeout(t))?,
            None => wait.await,
        };
        done.map(|_| ()).map_err(|_| BackendError::Unavailable("apply worker stopped".into()))
    }

    async fn do_write(
        &self,
        command: Command,
        options: WriteOptions,
    ) -> Result<WriteReceipt, BackendError> {
        if let Command::CreateCollection { config, .. } = &command
            && config.on_disk
        {
            // Refused rather than accepted and kept on the heap behind the user's back.
            return Err(BackendError::Unsupported(
                "vectors.on_disk needs the node engine (engine = \"node\"); the local engine keeps every vector in memory".into(),
            ));
        }
        if let Command::Points { op: PointsOp::SetQuantization { .. } | PointsOp::SetVectorsOnDisk { .. }, .. } = &command {
            // Its incremental snapshots require the base's config, which a change would break.
            return Err(BackendError::Unsupported(
                "changing quantization_config or vectors.on_disk needs the node engine (engine = \"node\"); the local engine keeps the config it was created with".into(),
            ));
        }
        let command = if options.wait {
            command
        } else {
            // Validate now against the current state so bad input still gets a 4xx; what can
            // only fail later (a race with a concurrent delete) is logged by the worker. The
            // command moves through the blocking task and back (no copy of large upserts).
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || {
                precheck(&shared.read_engine(), &command).map(|()| command)
            })
            .await
            .map_err(|e| BackendError::Unavailable(format!("precheck failed: {e}")))??
        };
        let (index, answer) = self.enqueue(Job::Command(command))?;
        let token = ReadToken::single(0, index);
        let receipt =
            |status, outcome| WriteReceipt { operation_id: index, status, token, outcome };
        if !options.wait {
            return Ok(receipt(WriteStatus::Acknowledged, None));
        }
        let outcome = match options.timeout {
            Some(t) => match tokio::time::timeout(t, answer).await {
                Ok(outcome) => outcome,
                Err(_) => return Ok(receipt(WriteStatus::WaitTimeout, None)),
            },
            None => answer.await,
        };
        let outcome =
            outcome.map_err(|_| BackendError::Unavailable("apply worker stopped".into()))?;
        Ok(receipt(WriteStatus::Completed, Some(outcome?)))
    }

    async fn do_read(
        &self,
        query: ReadQuery,
        options: ReadOptions,
    ) -> Result<ReadAnswer, BackendError> {
        match options.consistency {
            ReadConsistency::Eventual => {}
            ReadConsistency::Strong | ReadConsistency::Quorum => {
                self.wait_applied(self.last_queued(), options.timeout).await?
            }
            ReadConsistency::ReadYourWrites(token) => {
                if let Some(shard) = token.marks.keys().find(|s| **s != 0) {
                    return Err(BackendError::Unsupported(format!(
                        "read token names shard {shard}; this node has only shard 0"
                    )));
                }
                let index = token.marks.get(&0).copied().unwrap_or(0);
                if index > self.last_queued() {
                    return Err(BackendError::Unsupported(format!(
                        "read token index {index} is ahead of this node's log"
                    )));
                }
                self.wait_applied(index, options.timeout).await?
            }
        }
        let shared = self.shared.clone();
        let run = tokio::task::spawn_blocking(move || execute(&shared.read_engine(), query));
        let joined = match options.timeout {
            Some(t) => tokio::time::timeout(t, run).await.map_err(|_| BackendError::Timeout(t))?,
            None => run.await,
        };
        joined.map_err(|e| BackendError::Unavailable(format!("read task failed: {e}")))?
    }
}

/// The apply worker: drains the queue in order, applies batches under one write lock.
fn apply_worker(shared: Arc<Shared>, mut rx: mpsc::Receiver<Queued>, applied: watch::Sender<u64>) {
    let mut batch = Vec::with_capacity(MAX_APPLY_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_APPLY_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut last = 0;
        let mut results = Vec::with_capacity(batch.len());
        {
            let mut engine = shared.write_engine();
            for queued in batch.drain(..) {
                last = queued.index;
                let outcome = apply_one(&mut engine, queued.job);
                results.push((queued.reply, outcome));
            }
        }
        applied.send_replace(last);
        for (reply, outcome) in results {
            if let Err(e) = &outcome {
                tracing::debug!(error = %e, "command rejected");
            }
            if let Some(reply) = reply
                && let Err(Err(e)) = reply.send(outcome)
            {
                // Nobody waits (wait=false): the only place the rejection can surface.
                tracing::warn!(error = %e, "unwaited command rejected by the engine");
            }
        }
    }
    shared.alive.store(false, Ordering::SeqCst);
}

fn apply_one(engine: &mut VectorEngine, job: Job) -> Result<CommandOutcome, EngineError> {
    let run = std::panic::AssertUnwindSafe(|| match job {
        Job::Command(command) => engine.apply(command),
        Job::Install(collection) => {
            engine.install_collection(*collection);
            Ok(CommandOutcome::CollectionCreated)
        }
    });
    std::panic::catch_unwind(run).unwrap_or_else(|_| {
        tracing::error!("engine panicked while applying a command; command dropped");
        Err(EngineError::InvalidRequest("internal error while applying the command".into()))
    })
}

impl Backend for LocalBackend {
    fn write(
        &self,
        command: Command,
        options: WriteOptions,
    ) -> BoxFuture<'_, Result<WriteReceipt, BackendError>> {
        // Every AckLevel (leader, one_copy, quorum) is met by the single copy once applied, so
        // `options.ack` needs no handling here.
        Box::pin(self.do_write(command, options))
    }

    fn read(
        &self,
        query: ReadQuery,
        options: ReadOptions,
    ) -> BoxFuture<'_, Result<ReadAnswer, BackendError>> {
        Box::pin(self.do_read(query, options))
    }

    fn cluster_info(&self) -> BoxFuture<'_, ClusterInfo> {
        Box::pin(async move {
            ClusterInfo {
                node_id: self.node_id,
                replicated: false,
                peers: Vec::new(),
                term: 0,
                commit: *self.applied.borrow(),
                leader: Some(self.node_id),
            }
        })
    }

    fn collection_replicas(
        &self,
        collection: String,
    ) -> BoxFuture<'_, Result<Vec<ReplicaInfo>, BackendError>> {
        Box::pin(async move {
            let points = self.shared.read_engine().collection(&collection)?.len() as u64;
            Ok(vec![ReplicaInfo {
                shard_id: 0,
                peer_id: self.node_id,
                state: "Active",
                points_count: Some(points),
                leader: true,
                lag_entries: 0,
                apply_lag_entries: 0,
            }])
        })
    }

    fn snapshot_create(
        &self,
        collection: String,
    ) -> BoxFuture<'_, Result<SnapshotMeta, BackendError>> {
        Box::pin(super::snapshots::create(self.shared.clone(), collection))
    }

    fn snapshot_list(
        &self,
        collection: String,
    ) -> BoxFuture<'_, Result<Vec<SnapshotMeta>, BackendError>> {
        Box::pin(super::snapshots::list(self.shared.clone(), collection))
    }

    fn snapshot_delete(
        &self,
        collection: String,
        id: String,
    ) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(super::snapshots::delete(self.shared.clone(), collection, id))
    }

    fn snapshot_path(
        &self,
        collection: String,
        id: String,
    ) -> BoxFuture<'_, Result<(SnapshotMeta, PathBuf), BackendError>> {
        Box::pin(super::snapshots::path(self.shared.clone(), collection, id))
    }

    fn snapshot_recover(
        &self,
        collection: String,
        source: SnapshotSource,
    ) -> BoxFuture<'_, Result<u64, BackendError>> {
        Box::pin(super::snapshots::recover(self, collection, source))
    }

    fn ready(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst)
    }

    fn queue_depth(&self) -> usize {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        self.capacity - queue.0.capacity()
    }
}

/// Milliseconds since the Unix epoch (wall clock, for snapshot times).
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether `path` looks like a snapshot catalogue this backend could use (exists or creatable).
pub fn snapshot_dir_of(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::WriteOptions;
    use vecraft_core::vector::collection::{CollectionConfig, Distance};

    fn backend(dir: &Path, capacity: usize) -> LocalBackend {
        LocalBackend::open(LocalOptions {
            snapshot_dir: dir.join("snapshots"),
            queue_capacity: capacity,
            node_id: 1,
            restore_on_open: true,
        })
        .unwrap()
    }

    fn create(name: &str) -> Command {
        Command::CreateCollection {
            name: name.into(),
            config: CollectionConfig::new(2, Distance::Dot),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_is_overloaded_not_unbounded() {
        let dir = tempfile::tempdir().unwrap();
        let b = backend(dir.path(), 1);
        // Hold the read lock: the worker takes at most one batch and blocks on the write lock,
        // so with a queue of 1 at most MAX_APPLY_BATCH + 1 writes are accepted, then refusals.
        let guard = b.shared.read_engine();
        let mut accepted = 0;
        let mut overloaded = false;
        for i in 0..(MAX_APPLY_BATCH + 10) {
            match b.enqueue(Job::Command(create(&format!("c{i}")))) {
                Ok(_) => accepted += 1,
                Err(BackendError::Overloaded(1)) => {
                    overloaded = true;
                    break;
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(overloaded, "a queue of 1 must refuse once full");
        assert!(accepted <= MAX_APPLY_BATCH + 1, "bounded: {accepted}");
        drop(guard);
        // Once drained, writes are accepted again and applied in order.
        let receipt = loop {
            match b.write(create("late"), WriteOptions::default()).await {
                Ok(r) => break r,
                Err(BackendError::Overloaded(_)) => tokio::task::yield_now().await,
                Err(e) => panic!("unexpected {e}"),
            }
        };
        assert_eq!(receipt.status, WriteStatus::Completed);
        assert!(receipt.token.marks[&0] > accepted as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restart_restores_from_newest_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = backend(dir.path(), 8);
            b.write(create("keep"), WriteOptions::default()).await.unwrap();
            b.snapshot_create("keep".into()).await.unwrap();
            b.write(create("lost"), WriteOptions::default()).await.unwrap();
        }
        let b = backend(dir.path(), 8);
        let answer = b.read(ReadQuery::ListCollections, ReadOptions::default()).await.unwrap();
        let ReadAnswer::Collections(names) = answer else { panic!("wrong answer") };
        assert_eq!(
            names,
            vec!["keep".to_string()],
            "snapshotted data survives; the rest has no WAL yet"
        );
    }
}
