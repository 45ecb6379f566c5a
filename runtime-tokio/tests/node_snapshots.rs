//! Shard snapshots and WAL trimming of one node with real files (the node loop in-process):
//! enough writes that the shard logs compact and the WAL checkpoints; the WAL directory shrinks;
//! a restart restores each shard engine from its snapshot file (replay starts after the
//! snapshot index, not at 1) and every acknowledged point is there; a corrupt snapshot file is
//! refused at boot, and the node then replays a whole log, or, with a log compacted past it,
//! reports the shard as waiting for repair instead of serving it short.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use vecraft_core::node::request::{ReadOptions, Reply, Request, WriteAck};
use vecraft_core::vector::collection::{CollectionConfig, Distance, PointsOp};
use vecraft_core::vector::point::PointStruct;
use vecraft_runtime::cli::serve_node::node_config;
use vecraft_runtime::node_loop::snapshot_store::{HEADER_LEN, SNAPSHOT_DIR};
use vecraft_runtime::node_loop::{LoopExit, NodeHandle, NodeLoopOptions, start};

const DIM: usize = 64;
const BATCH: u64 = 10;

struct Policy {
    snapshot_entries: u64,
    keep_entries: u64,
}

async fn boot(dir: &Path, p: &Policy) -> (NodeHandle, tokio::task::JoinHandle<LoopExit>) {
    let mut node = node_config(1, vec![1]);
    node.raft.raft.snapshot_entries = p.snapshot_entries;
    node.raft.raft.snapshot_keep_entries = p.keep_entries;
    start(NodeLoopOptions {
        node,
        data_dir: dir.to_path_buf(),
        peers: BTreeMap::new(),
        cluster_addr: "127.0.0.1:0".parse().unwrap(),
        secret: b"s".to_vec(),
        request_queue: 64,
        apply_queue: 64,
        wal_segment_bytes: 64 << 10,
        wal_checkpoint_bytes: 128 << 10,
        indexing_threshold_kb: 20_000,
        change_history_bytes: 0,
    })
    .await
    .unwrap()
}

async fn ask(h: &NodeHandle, r: Request) -> Result<Reply, String> {
    match tokio::time::timeout(Duration::from_secs(15), h.submit(r).unwrap()).await {
        Ok(Ok(Ok(reply))) => Ok(reply),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        Ok(Err(_)) => Err("dropped".into()),
        Err(_) => Err("timed out".into()),
    }
}

async fn ready(h: &NodeHandle) {
    let mut w = h.watch_status();
    tokio::time::timeout(Duration::from_secs(10), w.wait_for(|s| s.ready()))
        .await
        .expect("node ready")
        .unwrap();
}

async fn count(h: &NodeHandle) -> Result<u64, String> {
    let r = Request::Count {
        collection: "c".into(),
        filter: None,
        read: ReadOptions::default(),
    };
    match ask(h, r).await? {
        Reply::Count { count, .. } => Ok(count),
        other => Err(format!("{other:?}")),
    }
}

async fn stop(h: NodeHandle, task: tokio::task::JoinHandle<LoopExit>) {
    h.shutdown();
    task.await.unwrap();
    // Let the WAL writer and the apply worker finish their queues and exit.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Bytes of the files in `dir` now. The node deletes WAL segments while this lists them: a
/// file gone between the listing and its `metadata` holds no bytes any more.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

fn snapshot_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join(SNAPSHOT_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    v.sort();
    v
}

/// Creates `c` (2 shards) and writes `batches` upserts of `BATCH` points; returns the WAL
/// directory's largest size seen and its size at the end.
async fn fill(h: &NodeHandle, dir: &Path, batches: u64) -> (u64, u64) {
    let create = Request::CreateCollection {
        name: "c".into(),
        config: CollectionConfig::new(DIM as u32, Distance::Dot),
        shards: 2,
        replication_factor: 1,
    };
    assert_eq!(ask(h, create).await.unwrap(), Reply::Done);
    let mut max_seen = 0;
    for b in 0..batches {
        let points = (b * BATCH..(b + 1) * BATCH)
            .map(|i| PointStruct {
                id: i.into(),
                vector: (0..DIM)
                    .map(|d| ((i as usize * 31 + d) % 97) as f32)
                    .collect(),
                payload: Default::default(),
            })
            .collect();
        let write = Request::Write {
            collection: "c".into(),
            op: PointsOp::Upsert(points),
            ack: WriteAck::Quorum,
        };
        let r = ask(h, write).await.unwrap();
        assert!(matches!(r, Reply::Written { .. }), "{r:?}");
        max_seen = max_seen.max(dir_bytes(&dir.join("wal")));
    }
    // Let the last snapshots and the segment deletion land.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (max_seen, dir_bytes(&dir.join("wal")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_compact_the_wal_shrinks_and_a_restart_restores_from_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        snapshot_entries: 40,
        keep_entries: 5,
    };
    let (h, task) = boot(dir.path(), &policy).await;
    ready(&h).await;
    let batches = 250;
    let (max_seen, end) = fill(&h, dir.path(), batches).await;
    println!("wal directory: largest {max_seen} bytes, at the end {end} bytes");
    assert!(
        end < max_seen,
        "the WAL shrank after a checkpoint ({end} < {max_seen})"
    );
    // About 2.5 MB of points went through the WAL; what stays is bounded by the checkpoint
    // bound (128 KiB), the live state (at most 45 entries of ~3 KB per shard, the metadata
    // log) and a few 64 KiB segments.
    assert!(end < 1 << 20, "the WAL stays bounded: {end} bytes");
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), 2, "one snapshot file per shard: {files:?}");
    assert_eq!(count(&h).await.unwrap(), batches * BATCH);
    stop(h, task).await;

    let (h, task) = boot(dir.path(), &policy).await;
    let restored = h.restored_from_snapshots().clone();
    assert_eq!(
        restored.len(),
        2,
        "both shard engines restored: {restored:?}"
    );
    assert!(
        restored.values().all(|&i| i >= 40),
        "replay starts after the snapshot, not at 1: {restored:?}"
    );
    assert!(h.groups_needing_repair().is_empty());
    ready(&h).await;
    assert_eq!(
        count(&h).await.unwrap(),
        batches * BATCH,
        "every acknowledged point is there"
    );
    // Points written first and last come back with their exact vectors.
    let ids: Vec<u64> = vec![0, 7, batches * BATCH / 2, batches * BATCH - 1];
    let get = Request::Get {
        collection: "c".into(),
        ids: ids.iter().map(|&i| i.into()).collect(),
        with_payload: false,
        with_vector: true,
        read: ReadOptions::default(),
    };
    match ask(&h, get).await.unwrap() {
        Reply::Records { records, .. } => {
            assert_eq!(records.len(), ids.len());
            for (r, &i) in records.iter().zip(&ids) {
                let want: Vec<f32> = (0..DIM)
                    .map(|d| ((i as usize * 31 + d) % 97) as f32)
                    .collect();
                assert_eq!(r.vector.as_deref(), Some(&want[..]), "point {i}");
            }
        }
        other => panic!("{other:?}"),
    }
    stop(h, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_is_refused_and_a_whole_log_replays() {
    let dir = tempfile::tempdir().unwrap();
    // Snapshots are taken, but 10 000 entries stay behind each: the log stays whole.
    let policy = Policy {
        snapshot_entries: 20,
        keep_entries: 10_000,
    };
    let (h, task) = boot(dir.path(), &policy).await;
    ready(&h).await;
    fill(&h, dir.path(), 60).await;
    stop(h, task).await;
    let files = snapshot_files(dir.path());
    assert!(!files.is_empty());
    for f in &files {
        let mut raw = std::fs::read(f).unwrap();
        raw[HEADER_LEN + 5] ^= 0x55;
        std::fs::write(f, raw).unwrap();
    }
    let (h, task) = boot(dir.path(), &policy).await;
    assert!(
        h.restored_from_snapshots().is_empty(),
        "corrupt files are refused"
    );
    assert!(
        h.groups_needing_repair().is_empty(),
        "the whole log is there"
    );
    ready(&h).await;
    assert_eq!(
        count(&h).await.unwrap(),
        60 * BATCH,
        "replayed from the log"
    );
    stop(h, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_behind_a_compacted_log_is_reported_never_served_short() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        snapshot_entries: 20,
        keep_entries: 2,
    };
    let (h, task) = boot(dir.path(), &policy).await;
    ready(&h).await;
    fill(&h, dir.path(), 60).await;
    stop(h, task).await;
    let files = snapshot_files(dir.path());
    assert_eq!(files.len(), 2);
    let mut raw = std::fs::read(&files[0]).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    std::fs::write(&files[0], raw).unwrap();
    let (h, task) = boot(dir.path(), &policy).await;
    assert_eq!(
        h.restored_from_snapshots().len(),
        1,
        "the intact shard is restored"
    );
    assert_eq!(
        h.groups_needing_repair().len(),
        1,
        "the other waits for repair"
    );
    ready(&h).await; // the metadata group is fine: the node starts
    let r = count(&h).await;
    assert!(
        r.is_err(),
        "a one-node cluster cannot repair the shard; never a short count: {r:?}"
    );
    stop(h, task).await;
}
