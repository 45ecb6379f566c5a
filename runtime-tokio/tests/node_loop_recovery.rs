//! The node loop's boot recovery with real files: a restart replays the WAL into the node
//! (engines rebuilt by log replay), a torn tail is cut and the node serves, and corruption
//! before valid records leaves the metadata group damaged: it neither votes nor serves
//! (a one-node cluster has no peer to repair it from), instead of silently forgetting data.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use vecraft_core::node::request::{Reply, Request, WriteAck};
use vecraft_core::vector::collection::{CollectionConfig, Distance, PointsOp};
use vecraft_core::vector::point::PointStruct;
use vecraft_runtime::cli::serve_node::node_config;
use vecraft_runtime::node_loop::{NodeHandle, NodeLoopOptions, start};
use vecraft_runtime::wal::format::SEGMENT_HEADER_LEN;

async fn boot(
    dir: &Path,
) -> (
    NodeHandle,
    tokio::task::JoinHandle<vecraft_runtime::node_loop::LoopExit>,
) {
    start(NodeLoopOptions {
        node: node_config(1, vec![1]),
        data_dir: dir.to_path_buf(),
        peers: BTreeMap::new(),
        cluster_addr: "127.0.0.1:0".parse().unwrap(),
        secret: b"s".to_vec(),
        request_queue: 64,
        apply_queue: 64,
        wal_segment_bytes: 16 << 20,
        wal_checkpoint_bytes: 64 << 20,
        indexing_threshold_kb: 20_000,
        change_history_bytes: 0,
    })
    .await
    .unwrap()
}

async fn ask(h: &NodeHandle, r: Request) -> Reply {
    tokio::time::timeout(Duration::from_secs(10), h.submit(r).unwrap())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

async fn ready_within(h: &NodeHandle, d: Duration) -> bool {
    let mut w = h.watch_status();
    tokio::time::timeout(d, w.wait_for(|s| s.ready()))
        .await
        .is_ok()
}

async fn count(h: &NodeHandle) -> u64 {
    let r = Request::Count {
        collection: "c".into(),
        filter: None,
        read: Default::default(),
    };
    match ask(h, r).await {
        Reply::Count { count, .. } => count,
        other => panic!("{other:?}"),
    }
}

async fn stop(h: NodeHandle, task: tokio::task::JoinHandle<vecraft_runtime::node_loop::LoopExit>) {
    h.shutdown();
    task.await.unwrap();
    // Let the WAL writer thread finish its queue and exit.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn fill(dir: &Path) {
    let (h, task) = boot(dir).await;
    assert!(
        ready_within(&h, Duration::from_secs(10)).await,
        "first boot not ready"
    );
    let config = CollectionConfig::new(2, Distance::Dot);
    let create = Request::CreateCollection {
        name: "c".into(),
        config,
        shards: 2,
        replication_factor: 1,
    };
    assert_eq!(ask(&h, create).await, Reply::Done);
    let points = (0..20u64)
        .map(|i| PointStruct {
            id: i.into(),
            vector: vec![1.0, i as f32],
            payload: Default::default(),
        })
        .collect();
    let write = Request::Write {
        collection: "c".into(),
        op: PointsOp::Upsert(points),
        ack: WriteAck::Quorum,
    };
    assert!(matches!(ask(&h, write).await, Reply::Written { .. }));
    assert_eq!(count(&h).await, 20);
    assert_eq!(h.incarnation(), 1);
    stop(h, task).await;
}

fn first_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.remove(0)
}

fn last_nonzero(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_replays_the_wal_into_a_new_incarnation() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path()).await;
    let (h, task) = boot(dir.path()).await;
    assert_eq!(h.incarnation(), 2);
    assert!(ready_within(&h, Duration::from_secs(10)).await);
    assert_eq!(count(&h).await, 20, "engines rebuilt by log replay");
    stop(h, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_is_cut_and_the_node_serves() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path()).await;
    let seg = first_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let end = last_nonzero(&bytes);
    bytes[end] ^= 0xff; // the last record fails its checksum, nothing valid after it
    std::fs::write(&seg, &bytes).unwrap();
    let (h, task) = boot(dir.path()).await;
    assert!(
        ready_within(&h, Duration::from_secs(10)).await,
        "a torn tail must not stop the node"
    );
    assert!(!h.status().meta_damaged);
    stop(h, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_before_valid_records_leaves_the_group_damaged_not_shortened() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path()).await;
    let seg = first_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[SEGMENT_HEADER_LEN + 20] ^= 0xff; // inside the first record; valid records follow
    std::fs::write(&seg, &bytes).unwrap();
    let (h, task) = boot(dir.path()).await;
    assert!(
        !ready_within(&h, Duration::from_secs(3)).await,
        "a damaged metadata group must not elect itself"
    );
    let s = h.status();
    assert!(s.meta_damaged, "{s:?}");
    assert_eq!(s.meta_leader, None);
    stop(h, task).await;
}
