//! The production driver of the node state machine (`vecraft_core::node::Node`).
//!
//! - [`recovery`]: the incarnation counter and each group's durable state rebuilt from the WAL;
//! - [`apply`]: the apply worker thread owning the shard engines (and taking, serving and
//!   installing their snapshots through [`snapshot_store`]);
//! - [`boot_snapshots`]: which engines start from their snapshot file at boot;
//! - [`checkpoint`], [`wal_trim`]: WAL checkpoints, so old segments can be deleted;
//! - `driver.rs`: the loop task, the only caller of `Node::step`.
//!
//! [`start`] wires them: open the WAL (recovery), load the snapshot files, bump the
//! incarnation, bind the transport, boot the node (`Node::restore` with the restored engines'
//! indexes), spawn the worker and the loop. Every task talks to the loop over bounded
//! channels (the apply worker's results excepted, see [`apply`]), so overload turns into
//! back-pressure. The runtime makes no protocol decision: everything is `Node::step`.

pub mod apply;
pub(crate) mod apply_lane;
pub mod boot_snapshots;
pub mod change_feed;
pub mod change_history;
pub mod checkpoint;
pub mod group_status;
mod indexer;
mod driver;
mod read_pool;
pub mod recovery;
mod role_watch;
pub mod shard_engines;
pub mod snapshot_store;
pub mod wal_trim;

pub use driver::LoopExit;

use crate::transport::{PeerAddr, Transport, TransportConfig, TransportError};
use crate::wal::{Wal, WalError, WalOptions, spawn_writer};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vecraft_core::contract::NodeId;
use vecraft_core::node::message::NodeEnvelope;
use vecraft_core::node::request::{NodeError, Reply, Request};
use vecraft_core::node::{Node, NodeConfig};
use vecraft_core::raft::{GroupId, LogIndex};

/// A client request, how long the node may work on it (`None`: the node's own request
/// time-out) and where its answer goes.
pub type ClientCall = (Request, Option<Duration>, oneshot::Sender<Result<Reply, NodeError>>);

/// What the loop publishes after every step that changed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node.
    pub node_id: NodeId,
    /// The metadata group's leader, if known.
    pub meta_leader: Option<NodeId>,
    /// The metadata group's term here.
    pub meta_term: u64,
    /// The metadata group's commit index here.
    pub meta_commit: u64,
    /// The metadata group's applied index here.
    pub meta_applied: u64,
    /// Whether the metadata replica here waits for repair after WAL damage.
    pub meta_damaged: bool,
    /// Shard replicas hosted here.
    pub shard_groups: usize,
    /// Of those, how many know their leader.
    pub shard_leaders_known: usize,
    /// Client requests not yet answered.
    pub requests_in_flight: usize,
}

impl NodeStatus {
    /// Ready: the node applied the metadata group (at least its first entry, the leader's
    /// no-op) and knows its leader, so it can route requests.
    pub fn ready(&self) -> bool {
        self.meta_leader.is_some() && self.meta_applied > 0
    }
}

/// How to start a node loop.
#[derive(Clone, Debug)]
pub struct NodeLoopOptions {
    /// The node's configuration; `incarnation` is overwritten from the counter file.
    pub node: NodeConfig,
    /// Data directory (WAL under `wal/`, the incarnation counter).
    pub data_dir: PathBuf,
    /// Peers' cluster addresses (every member but this node).
    pub peers: BTreeMap<NodeId, PeerAddr>,
    /// Where the transport listens.
    pub cluster_addr: SocketAddr,
    /// The cluster secret.
    pub secret: Vec<u8>,
    /// Capacity of the client request queue (beyond it requests get 503).
    pub request_queue: usize,
    /// Capacity of the apply worker's job queue.
    pub apply_queue: usize,
    /// WAL segment size (a segment is the unit of deletion; see [`wal_trim`]).
    pub wal_segment_bytes: u64,
    /// Write a WAL checkpoint after this many bytes (0: never; then no segment is deleted).
    pub wal_checkpoint_bytes: u64,
    /// Unindexed vector data a shard replica may hold, KB; a background indexer at the lowest
    /// CPU priority links it (0: link at apply). See `vecraft_core::vector::collection::IndexingPolicy`.
    pub indexing_threshold_kb: u64,
    /// Bytes of applied commands kept so change-stream subscribers can resume (0: none).
    pub change_history_bytes: usize,
}

/// Why a node loop could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The WAL could not be opened.
    #[error("wal: {0}")]
    Wal(#[from] WalError),
    /// The transport could not bind.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// A file or thread could not be created.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory for `on_disk` collections' vector files is unusable.
    #[error("vector files: {0}")]
    VectorFiles(#[from] crate::mmap_vectors::MmapVectorError),
}

/// Growth step of the vector files of `on_disk` collections: small enough that a node hosting
/// many small shards does not reserve much disk, large enough that remaps stay rare (a million
/// 128-d vectors remap 61 times).
const VECTOR_FILE_CHUNK_BYTES: usize = 8 << 20;

/// A running node loop: submit requests, watch its status, stop it.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    requests: mpsc::Sender<ClientCall>,
    status: watch::Receiver<NodeStatus>,
    shutdown: CancellationToken,
    cluster_addr: SocketAddr,
    members: Vec<NodeId>,
    incarnation: u64,
    restored: BTreeMap<GroupId, LogIndex>,
    need_repair: Vec<GroupId>,
    groups: watch::Receiver<std::sync::Arc<Vec<group_status::GroupStatus>>>,
    engines: shard_engines::ShardEngines,
    feed: change_feed::ChangeFeed,
    vector_files: std::sync::Arc<crate::mmap_vectors::MmapVectorProvider>,
}

/// Why a request could not even be queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// The request queue is full.
    #[error("node overloaded: request queue is full ({0} pending)")]
    Overloaded(usize),
    /// The loop stopped.
    #[error("node loop stopped")]
    Stopped,
}

impl NodeHandle {
    /// Every hosted group as of the loop's last refresh (at most a second old while the node is
    /// busy; see `group_status`).
    pub fn groups(&self) -> std::sync::Arc<Vec<group_status::GroupStatus>> {
        self.groups.borrow().clone()
    }

    /// The changes applied here, and their history (see `change_feed`).
    pub fn change_feed(&self) -> change_feed::ChangeFeed {
        self.feed.clone()
    }

    /// Points held by this node's replica of `group` now (`None` if not hosted). Read from the
    /// engine under its read lock: what this replica applied, not a consistent count.
    pub fn local_points(&self, group: GroupId) -> Option<u64> {
        let engine = self.engines.get(group)?;
        Some(shard_engines::read(&engine).len() as u64)
    }

    /// Points stored in this node's replica of `group` and not yet linked into its graph
    /// (`None` if not hosted).
    pub fn local_unindexed(&self, group: GroupId) -> Option<u64> {
        let engine = self.engines.get(group)?;
        Some(shard_engines::read(&engine).unindexed() as u64)
    }

    /// Whether this node's replica of `group` keeps its f32 vectors in a mapped file (`None` if
    /// not hosted).
    pub fn local_vectors_on_disk(&self, group: GroupId) -> Option<bool> {
        let engine = self.engines.get(group)?;
        Some(shard_engines::read(&engine).vector_store().is_external())
    }

    /// The vector files of this node's `on_disk` replicas: their bytes, and fallbacks to the heap.
    pub fn vector_files(&self) -> crate::mmap_vectors::MmapVectorStatus {
        self.vector_files.status()
    }

    /// Points of `collection` stored in this node's replicas and not yet linked into their
    /// graphs (0 where none is hosted).
    pub fn collection_unindexed(&self, collection: &str) -> u64 {
        self.engines
            .all()
            .iter()
            .map(|(_, e)| shard_engines::read(e))
            .filter(|c| c.name() == collection)
            .map(|c| c.unindexed() as u64)
            .sum()
    }

    /// Queues a request without waiting for room; the receiver yields the node's answer.
    pub fn submit(
        &self,
        request: Request,
    ) -> Result<oneshot::Receiver<Result<Reply, NodeError>>, SubmitError> {
        self.submit_within(request, None)
    }

    /// [`Self::submit`] with the node's deadline for it: `timeout` from now (`None`: the
    /// node's request time-out).
    pub fn submit_within(
        &self,
        request: Request,
        timeout: Option<Duration>,
    ) -> Result<oneshot::Receiver<Result<Reply, NodeError>>, SubmitError> {
        let (tx, rx) = oneshot::channel();
        match self.requests.try_send((request, timeout, tx)) {
            Ok(()) => Ok(rx),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(SubmitError::Overloaded(self.requests.max_capacity()))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SubmitError::Stopped),
        }
    }

    /// The latest status.
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// A receiver of status changes.
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.status.clone()
    }

    /// Requests queued, not yet taken by the loop.
    pub fn queue_depth(&self) -> usize {
        self.requests.max_capacity() - self.requests.capacity()
    }

    /// The transport's bound address.
    pub fn cluster_addr(&self) -> SocketAddr {
        self.cluster_addr
    }

    /// The cluster's members.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// This boot's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Shard engines restored from their snapshot file at boot, and the index each holds
    /// (their log replay started after it).
    pub fn restored_from_snapshots(&self) -> &BTreeMap<GroupId, LogIndex> {
        &self.restored
    }

    /// Groups whose log was compacted past every usable snapshot at boot: they wait for a
    /// snapshot from a peer (see `boot_snapshots`).
    pub fn groups_needing_repair(&self) -> &[GroupId] {
        &self.need_repair
    }

    /// Asks the loop to stop.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

/// Recovers, boots and spawns the node loop. The join handle yields why it stopped.
pub async fn start(
    opts: NodeLoopOptions,
) -> Result<(NodeHandle, JoinHandle<LoopExit>), StartError> {
    let io = |context| move |source| StartError::Io { context, source };
    std::fs::create_dir_all(&opts.data_dir).map_err(io("create data directory"))?;
    // Segments of `wal_segment_bytes` (16 MiB in `vecraft serve`, not the WAL's 64 MiB
    // default): boot reads every segment, including the preallocated zero tail of each (every
    // open starts a new segment), and a segment is the unit a checkpoint deletes, so smaller
    // segments keep restarts quick and the WAL close to its bound. Records may be larger than
    // a segment (one shard append of a large upsert): the WAL then grows that segment.
    let wal_options = WalOptions {
        segment_size: opts.wal_segment_bytes.max(4096),
        max_record_len: 256 << 20,
        ..WalOptions::default()
    };
    let (wal, recovery) = Wal::open(opts.data_dir.join("wal"), wal_options)?;
    let mut recovered = recovery::recover_groups(&recovery);
    if !recovery.torn_tails.is_empty() {
        tracing::warn!(
            bytes = recovery.bytes_cut(),
            "wal: torn tail of an unacknowledged write cut"
        );
    }
    drop(recovery);
    // The mirror starts from the WAL's own replay, before boot adjusts states for snapshots.
    let mirror = checkpoint::Mirror::new(
        &recovered.groups,
        std::mem::take(&mut recovered.damaged_records),
    );
    let store =
        snapshot_store::SnapshotStore::open(&opts.data_dir).map_err(io("open snapshot directory"))?;
    let found = store.load_all().map_err(io("read snapshot directory"))?;
    let boot_snapshots = boot_snapshots::plan(&mut recovered.groups, found);
    let restored = boot_snapshots.restored_applied();
    let need_repair = boot_snapshots.need_repair.clone();
    if let Some(damage) = &recovered.damage {
        tracing::error!(groups = ?recovered.damaged, %damage, "wal damage: these groups wait for repair from peers");
    }
    let incarnation =
        recovery::next_incarnation(&opts.data_dir).map_err(io("incarnation counter"))?;
    let (wal, _wal_thread) = spawn_writer(wal, 4096, 1024).map_err(io("start wal writer"))?;
    let durable = wal.durable();

    let mut tcfg = TransportConfig::new(opts.node.id, opts.cluster_addr, opts.secret.clone());
    tcfg.max_frame_len = 300 << 20; // a shard's append of one large upsert must fit
    let (transport, inbound) = Transport::<NodeEnvelope>::bind(tcfg).await?;
    for (&id, addr) in &opts.peers {
        transport.add_peer(id, addr.clone());
    }

    let mut cfg = opts.node.clone();
    cfg.incarnation = incarnation;
    let members = cfg.members.clone();
    let start = Instant::now();
    let mut node = Node::restore(
        cfg,
        recovered.groups,
        restored.clone(),
        vecraft_core::contract::Time(0),
    );
    let boot = node.take_boot_outputs();
    tracing::info!(
        node = node.id(),
        incarnation,
        wal_records = recovered.records,
        wal_checkpoint_seq = recovered.checkpoint_seq,
        restored_from_snapshots = ?restored,
        "node booted"
    );

    let (jobs_tx, jobs_rx) = mpsc::channel(opts.apply_queue.max(1));
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    // Vector files are unnamed (see `mmap_vectors`): nothing in this directory survives a
    // restart, so it needs no recovery.
    let vectors_dir = opts.data_dir.join("vectors");
    std::fs::create_dir_all(&vectors_dir).map_err(io("create vector file directory"))?;
    let vector_files = std::sync::Arc::new(crate::mmap_vectors::MmapVectorProvider::with_chunk_bytes(
        vectors_dir,
        VECTOR_FILE_CHUNK_BYTES,
    )?);
    let engines = shard_engines::ShardEngines::with_indexing_threshold(opts.indexing_threshold_kb.saturating_mul(1024))
        .with_on_disk_vectors(vector_files.clone());
    let feed = change_feed::ChangeFeed::new(opts.change_history_bytes);
    apply::spawn_apply_worker_threads(
        jobs_rx,
        done_tx,
        Some(store),
        boot_snapshots.engines,
        apply::ApplyThreads::default(),
        engines.clone(),
        feed.clone(),
    )
    .map_err(io("start apply worker"))?;
    let (groups_tx, groups_rx) = watch::channel(std::sync::Arc::new(Vec::new()));
    let (req_tx, req_rx) = mpsc::channel(opts.request_queue.max(1));
    let (status_tx, status_rx) = watch::channel(NodeStatus {
        node_id: node.id(),
        ..NodeStatus::default()
    });
    let shutdown = CancellationToken::new();
    let cluster_addr = transport.local_addr();
    let driver = driver::Driver {
        node,
        start,
        transport: transport.clone(),
        wal,
        durable,
        jobs: jobs_tx,
        done: done_rx,
        requests: req_rx,
        inbound,
        status: status_tx,
        shutdown: shutdown.clone(),
        pending: VecDeque::new(),
        clients: HashMap::new(),
        next_client: 1,
        trim: wal_trim::WalTrim::new(mirror, opts.wal_checkpoint_bytes),
        checkpoint_build: None,
        checkpoint_ready: std::sync::Arc::new(tokio::sync::Notify::new()),
        checkpoint_writing: None,
        groups: groups_tx,
        groups_due: tokio::time::Instant::now(),
        groups_dirty: false,
        roles: Default::default(),
        last_turn_end: std::time::Instant::now(),
    };
    let task = tokio::spawn(async move {
        let exit = driver.run(boot).await;
        transport.shutdown().await;
        exit
    });
    let handle = NodeHandle {
        requests: req_tx,
        status: status_rx,
        shutdown,
        cluster_addr,
        members,
        incarnation,
        restored,
        need_repair,
        groups: groups_rx,
        engines,
        feed,
        vector_files,
    };
    Ok((handle, task))
}
