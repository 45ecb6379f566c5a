//! `vectors.on_disk` through the replicated node, with real processes: a 3-node cluster on
//! loopback (the built `vecraft` binary) with small compaction thresholds. A collection created
//! with `on_disk: true` keeps every replica's f32 vectors in a mapped file (per-shard gauge
//! `vecraft_shard_vectors_on_disk` = 1, `vecraft_vector_file_bytes` > 0) while one created
//! without it keeps them on the heap (gauge 0); searches, exact and approximate, answer what a
//! brute-force ranking of the written vectors says. A node killed with SIGKILL restarts from its
//! shard snapshots and WAL, and its replicas are on the file again with the same answers. A bad
//! `on_disk` is a 400 naming the field.

mod cluster_common;

use cluster_common::{Cluster, call, upsert_until_acked};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use vecraft_runtime::cli::client::HttpClient;

const POINTS: u64 = 400;

/// The 4-d vector `cluster_common::points` writes for id `i`.
fn vector(i: u64) -> [f32; 4] {
    let x = i as f32;
    [1.0, x.sin(), x.cos(), (x / 7.0).sin()]
}

fn cosine(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32; 4]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The ids of the `k` written vectors closest to `query` by cosine, ties by id.
fn brute_force(query: &[f32; 4], k: usize) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = (0..POINTS).map(|i| (cosine(query, &vector(i)), i)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

/// Sum of gauge `name` over the label sets whose labels contain `labels` (0 if absent).
async fn gauge(c: &HttpClient, name: &str, labels: &str) -> f64 {
    let Ok(a) = c.call(hyper::Method::GET, "/metrics", None).await else {
        return 0.0;
    };
    String::from_utf8_lossy(&a.body)
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until node `c` reports `want` replicas of `collection` with vectors on disk (the node
/// refreshes its per-group picture about once a second).
async fn wait_on_disk_replicas(c: &HttpClient, collection: &str, want: f64) {
    let labels = format!("collection=\"{collection}\"");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = gauge(c, "vecraft_shard_vectors_on_disk", &labels).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{collection}: {got} replicas on disk, want {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Top-5 ids of a search of `collection` through `c` (`exact` or HNSW), read at `consistency`.
async fn top5(c: &HttpClient, collection: &str, query: &[f32; 4], exact: bool, consistency: &str) -> Vec<u64> {
    let body = json!({"vector": query, "limit": 5, "params": {"exact": exact, "hnsw_ef": 128}});
    let path = format!("/collections/{collection}/points/search?read_consistency={consistency}");
    let (s, v) = call(c, hyper::Method::POST, &path, Some(body)).await;
    assert_eq!(s, 200, "search {collection}: {v}");
    v["result"].as_array().unwrap().iter().map(|p| p["id"].as_u64().unwrap()).collect()
}

async fn create(c: &HttpClient, name: &str, vectors: Value) -> (u16, Value) {
    let body = json!({"vectors": vectors, "shard_number": 2, "replication_factor": 3});
    call(c, hyper::Method::PUT, &format!("/collections/{name}"), Some(body)).await
}

const QUERIES: [[f32; 4]; 4] = [[1.0, 0.0, 0.0, 0.0], [0.2, 1.0, -0.5, 0.3], [1.0, -1.0, 1.0, -1.0], [0.0, 0.3, 0.9, 0.1]];

/// Every query's top 5, exact and approximate, against the brute-force ranking: the first
/// difference, if any.
async fn mismatch(c: &HttpClient, collection: &str, consistency: &str) -> Option<String> {
    for q in &QUERIES {
        let want = brute_force(q, 5);
        for exact in [true, false] {
            let got = top5(c, collection, q, exact, consistency).await;
            if got != want {
                return Some(format!("{collection}, query {q:?}, exact {exact}: {got:?}, want {want:?}"));
            }
        }
    }
    None
}

/// [`mismatch`] finds none, within 30 s (an `eventual` read of a replica still catching up
/// may lag).
async fn answers_match_brute_force(c: &HttpClient, collection: &str, consistency: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(m) = mismatch(c, collection, consistency).await {
        assert!(Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_disk_vectors_live_in_mapped_files_on_every_replica_and_after_a_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 3);
    cl.env = vec![
        ("VECRAFT_RAFT_SNAPSHOT_ENTRIES", "20"),
        ("VECRAFT_RAFT_SNAPSHOT_KEEP_ENTRIES", "5"),
        ("VECRAFT_WAL_SEGMENT_BYTES", "32768"),
        ("VECRAFT_WAL_CHECKPOINT_BYTES", "65536"),
    ];
    cl.start_all().await;
    let c: Vec<HttpClient> = (0..3).map(|i| cl.client(i)).collect();

    let (s, v) = create(&c[0], "bad", json!({"size": 4, "distance": "Cosine", "on_disk": "yes"})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("vectors.on_disk"), "the error names the field: {v}");

    let (s, v) = create(&c[0], "t", json!({"size": 4, "distance": "Cosine", "on_disk": true})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = create(&c[1], "m", json!({"size": 4, "distance": "Cosine"})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(&c[2], hyper::Method::GET, "/collections/t", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["config"]["params"]["vectors"]["on_disk"], json!(true), "{v}");
    let (_, v) = call(&c[2], hyper::Method::GET, "/collections/m", None).await;
    assert_eq!(v["result"]["config"]["params"]["vectors"]["on_disk"], json!(false), "{v}");

    // Batches of 10: about 40 entries per shard, past the snapshot threshold of 20.
    for start in (0..POINTS).step_by(10) {
        upsert_until_acked(&c, start..start + 10, Duration::from_secs(60), 5).await;
    }
    let body = cluster_common::points(0..POINTS);
    let (s, v) = call(&c[1], hyper::Method::PUT, "/collections/m/points?wait=true", Some(body)).await;
    assert_eq!(s, 200, "{v}");

    for node in &c {
        // Every node hosts both shards of each collection (rf 3 of 3 nodes).
        wait_on_disk_replicas(node, "t", 2.0).await;
        wait_on_disk_replicas(node, "m", 0.0).await;
        let bytes = gauge(node, "vecraft_vector_file_bytes", "").await;
        assert!(bytes >= (POINTS * 4 * 4) as f64, "vector files hold the vectors: {bytes} bytes");
        assert_eq!(gauge(node, "vecraft_vector_file_fallbacks", "").await, 0.0);
    }
    answers_match_brute_force(&c[0], "t", "strong").await;
    answers_match_brute_force(&c[0], "m", "strong").await;

    // A restarted node rebuilds its replicas from its shard snapshots and WAL: on the file again.
    cl.kill9(2);
    cl.start(2);
    cl.wait_ready(2, Duration::from_secs(60)).await;
    let log = cl.log(2);
    assert!(log.contains("shard engine restored from snapshot"), "the restart used a shard snapshot:\n{log}");
    wait_on_disk_replicas(&c[2], "t", 2.0).await;
    wait_on_disk_replicas(&c[2], "m", 0.0).await;
    assert!(gauge(&c[2], "vecraft_vector_file_bytes", "").await >= (POINTS * 4 * 4) as f64);
    // `eventual` reads are answered by the local replica first: these are node 3's own files.
    answers_match_brute_force(&c[2], "t", "eventual").await;
}
