//! The change stream (`GET /collections/{c}/changes`, server-sent events) of a real node: every
//! applied change, in log order, with its index; 404 for an unknown collection.

mod cluster_common;

use cluster_common::{Cluster, call, create_t};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use vecraft_core::node::sharding::shard_of;

/// Reads SSE frames (`event:` + `data:` lines) until `n` events arrived.
async fn read_events(
    lines: &mut tokio::io::Lines<BufReader<TcpStream>>,
    n: usize,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut event = String::new();
    while out.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("an event within 20 s")
            .unwrap()
            .expect("the stream stays open");
        if let Some(e) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
            event = e.trim().to_string();
        } else if let Some(d) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
            // Chunked transfer: size lines sit between frames; only `data:` lines are JSON.
            out.push((event.clone(), serde_json::from_str(d.trim()).unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_stream_carries_every_applied_change_in_log_order() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 1);
    cl.start_all().await;
    let c = cl.client(0);
    create_t(&c, json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 2})).await;
    let (s, _) = call(&c, hyper::Method::GET, "/collections/nope/changes", None).await;
    assert_eq!(s, 404);

    let mut tcp = TcpStream::connect(cl.nodes[0].http).await.unwrap();
    tcp.write_all(
        b"GET /collections/t/changes HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap();
    let mut lines = BufReader::new(tcp).lines();
    let first = read_events(&mut lines, 1).await;
    assert_eq!(first[0].0, "subscribed");
    assert_eq!(
        first[0].1,
        json!({"collection": "t", "local_shards": [0, 1], "shard_count": 2})
    );

    let pts = json!({"points": (1..=6).map(|i| json!({"id": i, "vector": [1.0, i as f32], "payload": {"k": i % 2}})).collect::<Vec<_>>()});
    let (s, v) = call(
        &c,
        hyper::Method::PUT,
        "/collections/t/points?wait=true",
        Some(pts),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(
        &c,
        hyper::Method::POST,
        "/collections/t/points/delete?wait=true",
        Some(json!({"points": [2]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let by_filter = json!({"payload": {"seen": true}, "filter": {"must": [{"key": "k", "match": {"value": 1}}]}});
    let (s, v) = call(
        &c,
        hyper::Method::POST,
        "/collections/t/points/payload?wait=true",
        Some(by_filter),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // One upsert per shard its ids fall in, one delete (shard of id 2), one set_payload per
    // shard (a by-filter command goes to every shard).
    let shards: std::collections::BTreeSet<u32> = (1..=6u64).map(|i| shard_of(i.into(), 2)).collect();
    let events = read_events(&mut lines, shards.len() + 1 + 2).await;
    assert!(events.iter().all(|(e, _)| e == "change"), "{events:?}");
    let mut upserted: Vec<u64> = Vec::new();
    let mut last_index = std::collections::BTreeMap::new();
    for (_, d) in &events {
        let shard = d["shard"].as_u64().unwrap();
        let index = d["index"].as_u64().unwrap();
        let prev = last_index.insert(shard, index).unwrap_or(0);
        assert!(index > prev, "log order per shard: {events:?}");
        match d["op"].as_str().unwrap() {
            "upsert" => upserted.extend(
                d["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap()),
            ),
            "delete" => assert_eq!(d["ids"], json!([2])),
            "set_payload" => assert!(d["affected"].as_u64().is_some(), "{d}"),
            other => panic!("unexpected op {other}: {d}"),
        }
    }
    upserted.sort_unstable();
    assert_eq!(upserted, [1, 2, 3, 4, 5, 6]);
    let affected: u64 = events
        .iter()
        .filter(|(_, d)| d["op"] == "set_payload")
        .map(|(_, d)| d["affected"].as_u64().unwrap())
        .sum();
    assert_eq!(affected, 3, "ids 1, 3, 5 have k = 1: {events:?}");
}
