//! `vecraft serve` with `engine = "node"`: the replicated node behind the REST API.
//!
//! Start-up order: resolve the node id, parse the members (`peers`: `id=host:port`), start the
//! node loop (WAL recovery, incarnation bump, transport, apply worker; see `node_loop`), bind
//! HTTP. The node loop and transport run on a runtime of their own (`vecraft-node` threads),
//! HTTP on the caller's. Without peers the node is a one-node cluster (the same node, WAL and Raft groups, just
//! one member) and its transport listens on an ephemeral loopback port, since nobody dials it.
//! Shutdown: Ctrl-C/SIGTERM stops HTTP (requests in flight finish), then the node loop. If the
//! node loop stops on its own (a failed WAL), HTTP stops too and the server exits with an error:
//! a node that cannot make its writes durable must not keep answering.

use super::serve::ServeError;
use crate::backend::node::NodeBackend;
use crate::config::{Config, ConfigError, parse_peers};
use crate::http::{HttpOptions, router, serve};
use crate::node_loop::{LoopExit, NodeLoopOptions, start};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vecraft_core::node::NodeConfig;

/// The node's configuration for member `id` of `members`.
pub fn node_config(id: u64, members: Vec<u64>) -> NodeConfig {
    // Log compaction on, with the core's defaults (`RaftConfig`: a shard group compacts after
    // 10 000 applied entries or 64 MiB, keeping 1 000 behind the snapshot); the runtime takes,
    // ships and installs the shard snapshots (`node_loop::apply`, `node_loop::snapshot_store`).
    // The metadata group is never compacted by the core. `run` applies the configured values.
    NodeConfig::new(id, members, process_seed(id))
}

/// The seed of this process's node: it only spreads election timeouts, so it must differ
/// between members and between incarnations. It was `id × 0x9E37_79B9_7F4A_7C15`, which the core
/// mixes into each group's generator as `seed ^ group × K ^ id × K` with the same constant: the
/// id cancelled, every member of a group drew the same election timeouts, and two followers
/// that lost their leader on the same heartbeat campaigned in the same millisecond and split the
/// vote (seen in the failover benchmark's role logs). Now: the id hashed with the standard
/// library's per-process random hasher keys (from the OS).
fn process_seed(id: u64) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(id)
}

/// Builds the node and serves until `shutdown` resolves or the node loop stops.
pub async fn run(
    config: Config,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let node_id = config.resolve_node_id()?;
    let peers = parse_peers(&config.peers, node_id)?;
    let secret = match (&config.cluster_secret, peers.is_empty()) {
        (Some(s), _) => s.clone().into_bytes(),
        (None, true) => b"vecraft-one-node-cluster".to_vec(),
        (None, false) => {
            return Err(ConfigError::Invalid {
                key: "cluster_secret",
                message: "required when peers are set".into(),
            }
            .into());
        }
    };
    let mut members: Vec<u64> = peers.iter().map(|p| p.id).chain([node_id]).collect();
    members.sort_unstable();
    let cluster_addr = if peers.is_empty() {
        "127.0.0.1:0".parse().expect("literal")
    } else {
        config.cluster_addr
    };
    let mut node = node_config(node_id, members);
    node.raft.raft.snapshot_entries = config.raft_snapshot_entries;
    node.raft.raft.snapshot_keep_entries = config.raft_snapshot_keep_entries;
    node.set_raft_timing(config.raft_heartbeat, config.raft_election_timeout)
        .map_err(|e| ServeError::Node(format!("raft timing: {e}")))?;
    // The node loop and the transport run on a runtime of their own: HTTP work on the main
    // runtime (decoding a large upsert's JSON takes milliseconds of a worker) must never queue
    // ahead of heartbeats, votes or appends, or a loaded node misses its election timeouts.
    let node_rt = NodeRuntime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vecraft-node")
            .enable_all()
            .build()
            .map_err(|e| ServeError::Node(format!("node runtime: {e}")))?,
    ));
    let (handle, loop_task) = node_rt.handle().spawn(start(NodeLoopOptions {
        node,
        data_dir: config.data_dir.clone(),
        peers: peers.iter().map(|p| (p.id, p.addr.clone())).collect(),
        cluster_addr,
        secret,
        request_queue: config.write_queue_capacity,
        // Deep enough that the loop never waits for the apply worker: a restarted replica
        // catching up is handed thousands of committed entries in one step, and waiting for
        // room for each (4,096 before) held the loop, and every group's heartbeats, for up to
        // a second. The jobs share their command bytes with the log, and Raft bounds the
        // committed-but-unapplied backlog, so depth costs little memory.
        apply_queue: 1 << 20,
        wal_segment_bytes: config.wal_segment_bytes,
        wal_checkpoint_bytes: config.wal_checkpoint_bytes,
        indexing_threshold_kb: config.indexing_threshold_kb,
        change_history_bytes: config.change_history_bytes,
    }))
    .await
    .map_err(|e| ServeError::Node(format!("node start: {e}")))?
    .map_err(|e| ServeError::Node(e.to_string()))?;

    crate::http::metrics::install();
    let options = HttpOptions {
        body_limit: config.body_limit_bytes,
        api_keys: config.api_keys.clone(),
        read_only_keys: config.read_only_api_keys.clone(),
        upload_dir: config.data_dir.join("uploads"),
        allow_file_locations: true,
        max_concurrent_requests: config.max_concurrent_requests,
        request_timeout: config.request_timeout,
    };
    let peer_list = peers.iter().map(|p| (p.id, p.addr.to_string())).collect();
    let catalog = crate::snapshot_catalog::SnapshotCatalog::open(config.data_dir.join("collection-snapshots"))
        .map_err(|e| ServeError::Node(format!("collection snapshot catalogue: {e}")))?;
    let backend = NodeBackend::new(handle.clone(), peer_list, config.request_timeout)
        .with_snapshots(catalog)
        .with_admission(config.max_points_in_flight, config.admission_wait_share_pct as f64 / 100.0);
    let schedule = config.snapshot_interval.map(|interval| {
        tokio::spawn(crate::backend::node_snapshots::run_schedule(
            backend.clone(),
            interval,
            config.snapshot_retain,
        ))
    });
    let app = router(Arc::new(backend), options);
    let addr = config.http_addr;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Http { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Http { addr, source })?;

    // Stop HTTP on the user's signal or when the node loop ends by itself.
    let stop = CancellationToken::new();
    let loop_exit = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let exit = loop_task.await.unwrap_or(LoopExit::Shutdown);
            stop.cancel();
            exit
        })
    };
    let http_stop = stop.clone();
    let combined = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = http_stop.cancelled() => {}
        }
    };
    tracing::info!(%bound, node_id, cluster = %handle.cluster_addr(), members = ?handle.members(),
        incarnation = handle.incarnation(), data_dir = %config.data_dir.display(), "vecraft node serving");
    on_bound(bound);
    let served = serve(listener, app, combined).await;
    if let Some(task) = schedule {
        task.abort();
    }
    handle.shutdown();
    let exit = loop_exit.await.unwrap_or(LoopExit::Shutdown);
    // The loop and the transport have stopped; what is left there (idle timers) just ends
    // (`NodeRuntime`'s drop, as on every early return above).
    drop(node_rt);
    served.map_err(|source| ServeError::Http {
        addr: bound,
        source,
    })?;
    match exit {
        LoopExit::Shutdown => Ok(()),
        e => Err(ServeError::Node(e.to_string())),
    }
}

/// The node loop's runtime. Dropping a tokio runtime inside async code panics, and this one is
/// owned by the `serve` future, so every way out of it (an HTTP address already in use, a
/// snapshot catalogue that cannot be opened) must shut it down in the background instead: the
/// user then sees the error, not a panic.
struct NodeRuntime(Option<tokio::runtime::Runtime>);

impl NodeRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("present until dropped").handle()
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use vecraft_core::contract::Time;
    use vecraft_core::node::Node;
    use vecraft_core::node::metadata::METADATA_GROUP;

    /// Members booted at the same instant draw different election timeouts for the same group
    /// (with the old seeds all three drew the same), and a restarted member draws anew.
    #[test]
    fn members_draw_different_election_timeouts() {
        let members = vec![1, 2, 3];
        let first_deadline = |id| {
            let node = Node::new(node_config(id, members.clone()), BTreeMap::new(), Time::ZERO);
            node.group(METADATA_GROUP).and_then(|g| g.next_deadline()).expect("a follower waits for a leader")
        };
        let deadlines: Vec<Time> = [1, 2, 3, 1].into_iter().map(first_deadline).collect();
        for i in 0..deadlines.len() {
            for j in i + 1..deadlines.len() {
                assert_ne!(deadlines[i], deadlines[j], "{deadlines:?}");
            }
        }
    }
}
