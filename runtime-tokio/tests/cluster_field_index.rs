//! Payload field indexes through the replicated node, with real processes: a 3-node cluster on
//! loopback (the built `vecraft` binary) with small compaction thresholds. A keyword index is
//! declared through one node, points are upserted, and filtered counts and searches run through
//! the others; bad declarations answer 400 and unknown collections 404. Then one node is killed
//! with SIGKILL and restarted: it declares the index again from its WAL replay; killed again
//! while the others write far past its log, it restarts and catches up by a snapshot install,
//! and declares the index from the snapshot. The index is checked on that node itself:
//! `eventual` reads are answered by the local replica first (`LocalFirst` routing).

mod cluster_common;

use cluster_common::{Cluster, call, metric};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use vecraft_runtime::cli::client::HttpClient;


const COLORS: [&str; 2] = ["red", "blue"];

/// Points `ids` with a keyword `color` (red for even ids, blue for odd).
fn colored(ids: std::ops::Range<u64>) -> Value {
    let pts: Vec<Value> = ids
        .map(|i| {
            let x = i as f32;
            json!({"id": i, "vector": [1.0, x.sin(), x.cos(), 0.5], "payload": {"n": i, "color": COLORS[(i % 2) as usize]}})
        })
        .collect();
    json!({ "points": pts })
}

async fn upsert_until_acked(c: &[HttpClient], ids: std::ops::Range<u64>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = colored(ids.clone());
    let mut k = 0;
    loop {
        let path = "/collections/t/points?wait=true&write_ack=quorum&timeout=2";
        let (s, v) = call(
            &c[k % c.len()],
            hyper::Method::PUT,
            path,
            Some(body.clone()),
        )
        .await;
        if s == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "batch {ids:?} not acknowledged: {s} {v}"
        );
        k += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `payload_schema` of collection `t` as node `c` reports it at `consistency`.
async fn payload_schema(c: &HttpClient, consistency: &str) -> Result<Value, String> {
    let (s, v) = call(
        c,
        hyper::Method::GET,
        &format!("/collections/t?read_consistency={consistency}"),
        None,
    )
    .await;
    if s != 200 {
        return Err(format!("GET collection answered {s}: {v}"));
    }
    Ok(v["result"]["payload_schema"].clone())
}

/// Waits until node `c`'s own replicas report `color` indexed as a keyword over `points` points.
async fn wait_declared_locally(c: &HttpClient, points: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let want = json!({"color": {"data_type": "keyword", "params": null, "points": points}});
    loop {
        let got = payload_schema(c, "eventual").await;
        if got.as_ref() == Ok(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: payload_schema {got:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn red_count(c: &HttpClient) -> (u16, Value) {
    let body =
        json!({"filter": {"must": [{"key": "color", "match": {"value": "red"}}]}, "exact": true});
    call(
        c,
        hyper::Method::POST,
        "/collections/t/points/count",
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyword_index_is_replicated_and_survives_wal_replay_and_snapshot_install() {
    let root = tempfile::tempdir().unwrap();
    let (mut cl, clients) = Cluster::three_small_with_t(root.path()).await;
    // The collection's info reports the layout it was created with, on any node (once that
    // node's metadata has caught up with the create).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let v = loop {
        let (s, v) = call(&clients[2], hyper::Method::GET, "/collections/t", None).await;
        if s == 200 {
            break v;
        }
        assert!(s == 404 && std::time::Instant::now() < deadline, "{s} {v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let params = &v["result"]["config"]["params"];
    assert_eq!(
        (&params["shard_number"], &params["replication_factor"], &params["write_consistency_factor"]),
        (&json!(2), &json!(3), &json!(2)),
        "{v}"
    );
    upsert_until_acked(&clients, 0..40).await;

    // Declared through node 1, reported through node 2 (strong: gathered from the shard leaders).
    let index = json!({"field_name": "color", "field_schema": "keyword"});
    let (s, v) = call(
        &clients[0],
        hyper::Method::PUT,
        "/collections/t/index?wait=true",
        Some(index.clone()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["status"], "completed");
    let schema = payload_schema(&clients[1], "strong").await.unwrap();
    assert_eq!(
        schema,
        json!({"color": {"data_type": "keyword", "params": null, "points": 40}})
    );
    // Declaring it again is a no-op; another schema, an unsupported one, no field: 400; an
    // unknown collection: 404. Nothing changed.
    let (s, v) = call(
        &clients[2],
        hyper::Method::PUT,
        "/collections/t/index?wait=true",
        Some(index.clone()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // As for points: without `wait` the answer comes once the shard leaders hold it durably.
    let (s, v) = call(&clients[2], hyper::Method::PUT, "/collections/t/index?wait=false", Some(index.clone())).await;
    assert_eq!((s, v["result"]["status"].clone()), (200, json!("acknowledged")), "{v}");
    let conflicting = json!({"field_name": "color", "field_schema": "integer"});
    let (s, v) = call(
        &clients[2],
        hyper::Method::PUT,
        "/collections/t/index",
        Some(conflicting),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("already indexed as Keyword"), "{v}");
    let (s, v) = call(
        &clients[1],
        hyper::Method::PUT,
        "/collections/t/index",
        Some(json!({"field_name": "color", "field_schema": "geo"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(
        &clients[1],
        hyper::Method::PUT,
        "/collections/t/index",
        Some(json!({"field_name": "a..b", "field_schema": "keyword"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(
        &clients[1],
        hyper::Method::PUT,
        "/collections/nope/index",
        Some(index.clone()),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = call(
        &clients[1],
        hyper::Method::DELETE,
        "/collections/nope/index/color",
        None,
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(
        payload_schema(&clients[0], "strong").await.unwrap()["color"]["data_type"],
        "keyword"
    );

    // Points written after the declaration are indexed; filtered reads through another node.
    upsert_until_acked(&clients, 40..60).await;
    let (s, v) = red_count(&clients[2]).await;
    assert_eq!((s, v["result"]["count"].as_u64()), (200, Some(30)), "{v}");
    let search = json!({"vector": [1.0, 0.0, 1.0, 0.5], "limit": 10, "with_payload": true,
        "filter": {"must": [{"key": "color", "match": {"value": "blue"}}]}});
    let (s, v) = call(
        &clients[1],
        hyper::Method::POST,
        "/collections/t/points/search",
        Some(search),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let hits = v["result"].as_array().unwrap();
    assert_eq!(hits.len(), 10);
    assert!(
        hits.iter()
            .all(|h| h["payload"]["color"] == "blue" && h["id"].as_u64().unwrap() % 2 == 1),
        "{v}"
    );

    // kill -9 and restart: node 3 rebuilds its replicas from its WAL, index included.
    wait_declared_locally(&clients[2], 60, "node 3 before the kill").await;
    cl.kill9(2);
    cl.start(2);
    cl.wait_ready(2, Duration::from_secs(60)).await;
    wait_declared_locally(&clients[2], 60, "node 3 after WAL replay").await;

    // Killed again while the others write far past its log: it catches up by a snapshot
    // install, whose engine snapshot carries the declaration.
    cl.kill9(2);
    let live = &clients[..2];
    for b in 0..60u64 {
        upsert_until_acked(live, 100 + b * 10..110 + b * 10).await;
    }
    let total = 60 + 600;
    cl.start(2);
    cl.wait_ready(2, Duration::from_secs(60)).await;
    wait_declared_locally(&clients[2], total, "node 3 after the snapshot install").await;
    let installed = metric(&clients[2], "vecraft_node_snapshots_installed_total").await;
    assert!(
        installed >= 1.0,
        "node 3 caught up by a snapshot install ({installed})"
    );
    let (s, v) = red_count(&clients[2]).await;
    assert_eq!(
        (s, v["result"]["count"].as_u64()),
        (200, Some(total / 2)),
        "{v}"
    );

    // Dropped through node 3: no replica declares it any more.
    let (s, v) = call(
        &clients[2],
        hyper::Method::DELETE,
        "/collections/t/index/color?wait=true",
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for c in &clients {
        let deadline = Instant::now() + Duration::from_secs(30);
        while payload_schema(c, "eventual").await != Ok(json!({})) {
            assert!(
                Instant::now() < deadline,
                "index still declared: {:?}",
                payload_schema(c, "eventual").await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
