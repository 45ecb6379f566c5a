//! `PATCH /collections/{c}` with `quantization_config` through the replicated node, with real
//! processes: a 3-node cluster on loopback (the built `vecraft` binary) with small compaction
//! thresholds. Quantization is switched on through one node after points are written and the
//! new config is reported through every node, first from the shard leaders (`strong`), then from
//! each node's own replicas (`eventual`, answered locally first). A node killed with SIGKILL
//! keeps the change through its WAL replay; killed again while the others switch to binary and
//! write far past its log, it catches up by a snapshot install whose config carries the switch.
//! Searches on int8 codes with rescoring return exactly what exact searches return, on binary
//! codes exact scores in the right order. `vectors: {"": {"on_disk": true}}` then moves every
//! replica's vectors into its file (reported, and counted in each node's gauge) and back. Bad configs
//! and graph changes answer 400, unknown collections 404, and `"Disabled"` switches it off.

mod cluster_common;

use cluster_common::{Cluster, call, metric, upsert_until_acked};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use vecraft_runtime::cli::client::HttpClient;

const INT8: &str = r#"{"scalar": {"type": "int8", "quantile": 0.99, "always_ram": null}}"#;
const BINARY: &str = r#"{"binary": {"always_ram": null}}"#;

async fn upsert(c: &[HttpClient], ids: std::ops::Range<u64>) {
    upsert_until_acked(c, ids, Duration::from_secs(60), 2).await;
}

/// `quantization_config` of collection `t` as node `c` reports it at `consistency`.
async fn reported(c: &HttpClient, consistency: &str) -> Result<Value, String> {
    let path = format!("/collections/t?read_consistency={consistency}");
    let (s, v) = call(c, hyper::Method::GET, &path, None).await;
    if s != 200 {
        return Err(format!("GET collection answered {s}: {v}"));
    }
    Ok(v["result"]["config"]["quantization_config"].clone())
}

/// `vectors.on_disk` of collection `t` as node `c`'s own replicas report it.
async fn on_disk_locally(c: &HttpClient) -> Option<bool> {
    let (s, v) = call(c, hyper::Method::GET, "/collections/t?read_consistency=eventual", None).await;
    if s != 200 {
        return None;
    }
    v["result"]["config"]["params"]["vectors"]["on_disk"].as_bool()
}

/// Waits until node `c`'s replicas all keep their vectors `on_disk` (reported and in the gauge).
async fn wait_on_disk(c: &HttpClient, on_disk: bool, replicas: f64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reported = on_disk_locally(c).await;
        let gauge = metric(c, "vecraft_shard_vectors_on_disk").await;
        if reported == Some(on_disk) && gauge == if on_disk { replicas } else { 0.0 } {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: on_disk {reported:?}, gauge {gauge}, want {on_disk}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until node `c`'s own replicas report `want`.
async fn wait_reported_locally(c: &HttpClient, want: &Value, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = reported(c, "eventual").await;
        if got.as_ref() == Ok(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: quantization_config {got:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn patch(c: &HttpClient, collection: &str, body: Value) -> (u16, Value) {
    call(c, hyper::Method::PATCH, &format!("/collections/{collection}"), Some(body)).await
}

/// Top `limit` (id, score) for `vector`: exact, or on the codes (oversampled 4x, rescored).
async fn top(c: &HttpClient, vector: [f32; 4], limit: usize, exact: bool) -> Vec<(u64, f64)> {
    let params = if exact {
        json!({"exact": true})
    } else {
        json!({"quantization": {"ignore": false, "rescore": true, "oversampling": 4.0}})
    };
    let body = json!({"vector": vector, "limit": limit, "params": params});
    let (s, v) = call(c, hyper::Method::POST, "/collections/t/points/search", Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let hits = v["result"].as_array().unwrap();
    hits.iter().map(|h| (h["id"].as_u64().unwrap(), h["score"].as_f64().unwrap())).collect()
}

fn query(i: usize) -> [f32; 4] {
    [1.0, (i as f32).sin(), 0.3, -0.2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_settings_changes_are_replicated_and_survive_wal_replay_and_snapshot_install() {
    let root = tempfile::tempdir().unwrap();
    let (mut cl, clients) = Cluster::three_small_with_t(root.path()).await;
    // 1,200 points per shard: past the 1,024 slots a quantizer trains at, so the switch trains.
    upsert(&clients, 0..2_400).await;
    assert_eq!(reported(&clients[0], "strong").await, Ok(Value::Null), "created without quantization");

    // Switched on through node 1, reported through node 2 from the shard leaders.
    let int8: Value = serde_json::from_str(INT8).unwrap();
    let (s, v) = patch(&clients[0], "t", json!({"quantization_config": int8})).await;
    assert_eq!((s, &v["result"]), (200, &json!(true)), "{v}");
    assert_eq!(reported(&clients[1], "strong").await, Ok(int8.clone()));
    for (i, c) in clients.iter().enumerate() {
        wait_reported_locally(c, &int8, "every node after the switch").await;
        // int8 codes of 4-d vectors, 40 candidates rescored: exactly the exact top 10.
        assert_eq!(top(c, query(i), 10, false).await, top(c, query(i), 10, true).await, "node {}", i + 1);
    }
    // Setting it again is a no-op; bad configs and graph changes are 400; unknown collections 404.
    let (s, v) = patch(&clients[2], "t", json!({"quantization_config": int8})).await;
    assert_eq!(s, 200, "{v}");
    for (body, needle) in [
        (json!({"quantization_config": {"scalar": {"type": "int4"}}}), "int8"),
        (json!({"quantization_config": {"scalar": {"type": "int8", "quantile": 0.1}}}), "quantile"),
        (json!({"quantization_config": {"product": {"compression": "x16"}}}), "product"),
        (json!({"quantization_config": "Enabled"}), "Disabled"),
        (json!({"hnsw_config": {"m": 4}}), "hnsw_config.m"),
        (json!({"vectors": {"img": {"on_disk": true}}}), "named vectors"),
        (json!({"vectors": {"": {"on_disk": "yes"}}}), "boolean"),
        (json!({"vectors": {"": {"hnsw_config": {"m": 8}}}}), "hnsw_config"),
    ] {
        let (s, v) = patch(&clients[1], "t", body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(v.to_string().contains(needle), "{body}: {v}");
    }
    // Fields that only tune Qdrant's storage, and the graph's own m and ef_construct, are fine.
    let (s, v) = patch(&clients[1], "t", json!({"hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 5000, "on_disk": false}})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = patch(&clients[1], "nope", json!({"quantization_config": int8})).await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(reported(&clients[0], "strong").await, Ok(int8.clone()), "nothing changed");

    // kill -9 and restart: node 3 replays the change from its WAL.
    cl.kill9(2);
    cl.start(2);
    cl.wait_ready(2, Duration::from_secs(60)).await;
    wait_reported_locally(&clients[2], &int8, "node 3 after WAL replay").await;

    // Killed again while the others switch to binary and write far past its log: it catches up
    // by a snapshot install, whose config carries the switch.
    cl.kill9(2);
    let live = &clients[..2];
    let binary: Value = serde_json::from_str(BINARY).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v) = patch(&live[0], "t", json!({"quantization_config": binary})).await;
        if s == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "switch to binary: {s} {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for b in 0..60u64 {
        upsert(live, 3_000 + b * 10..3_010 + b * 10).await;
    }
    cl.start(2);
    cl.wait_ready(2, Duration::from_secs(60)).await;
    wait_reported_locally(&clients[2], &binary, "node 3 after the snapshot install").await;
    let installed = metric(&clients[2], "vecraft_node_snapshots_installed_total").await;
    assert!(installed >= 1.0, "node 3 caught up by a snapshot install ({installed})");

    // On 4-bit binary codes the candidates are coarse, but rescoring makes every score exact
    // and the order right.
    for (i, c) in clients.iter().enumerate() {
        let hits = top(c, query(i), 10, false).await;
        let exact: std::collections::BTreeMap<u64, f64> = top(c, query(i), 2_000, true).await.into_iter().collect();
        assert_eq!(hits.len(), 10, "node {}", i + 1);
        assert!(hits.windows(2).all(|w| w[0].1 >= w[1].1), "node {}: {hits:?}", i + 1);
        for (id, score) in &hits {
            assert!((exact[id] - score).abs() < 1e-5, "node {}: point {id} scored {score}, exactly {}", i + 1, exact[id]);
        }
    }

    // Disabled through node 3: no replica keeps codes any more.
    let (s, v) = patch(&clients[2], "t", json!({"quantization_config": "Disabled"})).await;
    assert_eq!(s, 200, "{v}");
    for c in &clients {
        wait_reported_locally(c, &Value::Null, "after Disabled").await;
    }

    // Vectors to disk and back, through node 2: every node's two replicas move (rf 3, 2 shards).
    for on_disk in [true, false] {
        let (s, v) = patch(&clients[1], "t", json!({"vectors": {"": {"on_disk": on_disk}}})).await;
        assert_eq!(s, 200, "{v}");
        for (i, c) in clients.iter().enumerate() {
            wait_on_disk(c, on_disk, 2.0, &format!("node {} after on_disk {on_disk}", i + 1)).await;
            let q = query(i);
            assert_eq!(top(c, q, 10, true).await.len(), 10);
        }
    }
}
