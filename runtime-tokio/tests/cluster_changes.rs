//! The change stream (`GET /collections/{c}/changes`, server-sent events) of a real node: every
//! applied change, in log order, with its index; 404 for an unknown collection; a subscriber
//! resumes from its cursor (`Last-Event-ID` or `?after=`), across a kill -9, and a cursor older
//! than the history gets a gap; a cursor taken on one node resumes on another.

mod cluster_common;

use cluster_common::{Cluster, call, create_t, shard_leader};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use vecraft_core::node::sharding::shard_of;

/// Reads SSE frames until `n` events arrived: (event, data).
async fn read_events(
    lines: &mut tokio::io::Lines<BufReader<TcpStream>>,
    n: usize,
) -> Vec<(String, Value)> {
    read_events_with_ids(lines, n).await.into_iter().map(|(e, d, _)| (e, d)).collect()
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
        json!({"collection": "t", "local_shards": [0, 1], "shard_count": 2, "resumed_after": null})
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

/// Reads SSE frames until `n` events arrived: (event, data, id).
async fn read_events_with_ids(
    lines: &mut tokio::io::Lines<BufReader<TcpStream>>,
    n: usize,
) -> Vec<(String, Value, Option<String>)> {
    let mut out = Vec::new();
    let (mut event, mut id, mut data) = (String::new(), None, None::<Value>);
    while out.len() < n {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("an event within 20 s")
            .unwrap()
            .expect("the stream stays open");
        if let Some(e) = line.strip_prefix("event:") {
            event = e.trim().to_string();
        } else if let Some(i) = line.strip_prefix("id:") {
            id = Some(i.trim().to_string());
        } else if let Some(d) = line.strip_prefix("data:") {
            data = Some(serde_json::from_str(d.trim()).unwrap());
        } else if line.is_empty() && data.is_some() {
            // A frame ends at a blank line (chunk-size lines between frames are skipped).
            out.push((std::mem::take(&mut event), data.take().unwrap(), id.take()));
        }
    }
    out
}

/// Opens the change stream of `t` on `node`, with `extra` request headers.
async fn open(addr: std::net::SocketAddr, path: &str, extra: &str) -> tokio::io::Lines<BufReader<TcpStream>> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n{extra}\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    BufReader::new(tcp).lines()
}

async fn put(c: &vecraft_runtime::cli::client::HttpClient, ids: std::ops::Range<u64>) {
    let pts = json!({"points": ids.map(|i| json!({"id": i, "vector": [1.0, i as f32]})).collect::<Vec<_>>()});
    let (s, v) = call(c, hyper::Method::PUT, "/collections/t/points?wait=true", Some(pts)).await;
    assert_eq!(s, 200, "{v}");
}

fn ops(events: &[(String, Value, Option<String>)]) -> Vec<(String, Value)> {
    events.iter().map(|(e, d, _)| (e.clone(), json!({"op": d["op"], "ids": d["ids"]}))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_resumes_from_its_cursor_across_a_reconnect_and_a_kill_9() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 1);
    cl.start_all().await;
    let c = cl.client(0);
    create_t(&c, json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 1})).await;
    let addr = cl.nodes[0].http;

    let mut lines = open(addr, "/collections/t/changes", "").await;
    let first = read_events_with_ids(&mut lines, 1).await;
    assert_eq!((first[0].0.as_str(), &first[0].1["resumed_after"]), ("subscribed", &Value::Null));
    put(&c, 1..4).await;
    let seen = read_events_with_ids(&mut lines, 1).await;
    let cursor = seen[0].2.clone().expect("a change carries its cursor as its id");
    assert!(cursor.ends_with(&format!("/0:{}", seen[0].1["index"])), "{cursor}: {seen:?}");
    drop(lines);

    // Missed while away: an upsert and a delete.
    put(&c, 4..6).await;
    let (s, v) = call(&c, hyper::Method::POST, "/collections/t/points/delete?wait=true", Some(json!({"points": [1]}))).await;
    assert_eq!(s, 200, "{v}");
    let missed = vec![
        ("change".to_string(), json!({"op": "upsert", "ids": [4, 5]})),
        ("change".to_string(), json!({"op": "delete", "ids": [1]})),
    ];

    // `Last-Event-ID` (what an EventSource sends) and `?after=` resume alike, and a resumed
    // stream carries on live.
    let mut lines = open(addr, "/collections/t/changes", &format!("last-event-id: {cursor}\r\n")).await;
    let got = read_events_with_ids(&mut lines, 3).await;
    assert_eq!(got[0].1["resumed_after"], json!(cursor));
    assert_eq!(ops(&got[1..]), missed, "{got:?}");
    put(&c, 6..7).await;
    let live = read_events_with_ids(&mut lines, 1).await;
    assert_eq!(ops(&live), vec![("change".to_string(), json!({"op": "upsert", "ids": [6]}))]);
    let head = live[0].2.clone().unwrap();
    drop(lines);
    let mut lines = open(addr, &format!("/collections/t/changes?after={cursor}"), "").await;
    let again = read_events_with_ids(&mut lines, 4).await;
    assert_eq!(ops(&again[1..3]), missed);
    assert_eq!(again[3].2.as_deref(), Some(head.as_str()));
    drop(lines);

    // After kill -9 the node re-applies its log, and the history with it: the same cursor
    // gets the same changes, no gap.
    cl.kill9(0);
    cl.start(0);
    cl.wait_ready(0, Duration::from_secs(60)).await;
    let mut lines = open(addr, &format!("/collections/t/changes?after={cursor}"), "").await;
    let after_restart = read_events_with_ids(&mut lines, 4).await;
    assert_eq!(ops(&after_restart[1..3]), missed, "{after_restart:?}");
    assert_eq!(after_restart[3].2.as_deref(), Some(head.as_str()));
    drop(lines);

    // A bad cursor is refused, naming it.
    let (s, v) = call(&c, hyper::Method::GET, "/collections/t/changes?after=7/x", None).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("7/x"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_history_gets_a_gap_then_the_changes_it_holds() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 1);
    // Room for about one small command (a one-point upsert costs ~110 bytes): older ones are
    // evicted.
    cl.env.push(("VECRAFT_CHANGE_HISTORY_BYTES", "150"));
    cl.start_all().await;
    let c = cl.client(0);
    create_t(&c, json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 1})).await;
    let addr = cl.nodes[0].http;
    let mut lines = open(addr, "/collections/t/changes", "").await;
    read_events_with_ids(&mut lines, 1).await;
    put(&c, 1..2).await;
    let cursor = read_events_with_ids(&mut lines, 1).await[0].2.clone().unwrap();
    drop(lines);
    for i in 2..6 {
        put(&c, i..i + 1).await;
    }
    let mut lines = open(addr, &format!("/collections/t/changes?after={cursor}"), "").await;
    let got = read_events_with_ids(&mut lines, 3).await;
    assert_eq!(got[1].0, "gap", "{got:?}");
    let after = got[1].1["after"].as_u64().unwrap();
    let complete_after = got[1].1["complete_after"].as_u64().unwrap();
    assert!(cursor.ends_with(&format!("/0:{after}")) && complete_after > after, "{got:?}");
    // Then what it holds, right after the gap, up to the newest change (ids 5).
    let mut changes = vec![got[2].clone()];
    while changes.last().unwrap().1["ids"] != json!([5]) {
        changes.extend(read_events_with_ids(&mut lines, 1).await);
    }
    assert!(changes.len() < 4, "the history holds about one command: {changes:?}");
    let first = changes[0].1["index"].as_u64().unwrap();
    assert!(first > complete_after, "the stream goes on after the gap: {changes:?}");
}

/// A cursor names the collection and log positions, which every replica shares: a subscriber
/// whose node dies resumes on another node with the same cursor and gets exactly what it
/// missed, in order, then the live changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_from_one_node_resumes_on_another_after_its_node_is_killed() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 3);
    cl.start_all().await;
    create_t(&cl.client(0), json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 1, "replication_factor": 3})).await;
    // The subscriber's node leads neither the shard nor the metadata, so the writes below are
    // acknowledged without an election (this test is about the cursor, not failover).
    let shard = shard_leader(&cl, 0, "t", 0).await.expect("a shard leader");
    let (_, v) = call(&cl.client(0), hyper::Method::GET, "/cluster", None).await;
    let meta = v["result"]["raft_info"]["leader"].as_u64().expect("a metadata leader");
    let sub = (0..3).find(|&i| i != shard && cl.nodes[i].id != meta).unwrap();
    let (other, writer) = ((sub + 1) % 3, (sub + 2) % 3);
    let c = cl.client(writer);

    let mut lines = open(cl.nodes[sub].http, "/collections/t/changes", "").await;
    read_events_with_ids(&mut lines, 1).await;
    put(&c, 1..4).await;
    let seen = read_events_with_ids(&mut lines, 1).await;
    assert_eq!(ops(&seen), vec![("change".to_string(), json!({"op": "upsert", "ids": [1, 2, 3]}))]);
    let cursor = seen[0].2.clone().unwrap();
    drop(lines);

    // The subscriber's node dies; changes go on through the others.
    cl.kill9(sub);
    put(&c, 4..6).await;
    let (s, v) = call(&c, hyper::Method::POST, "/collections/t/points/delete?wait=true", Some(json!({"points": [2]}))).await;
    assert_eq!(s, 200, "{v}");

    let mut lines = open(cl.nodes[other].http, "/collections/t/changes", &format!("last-event-id: {cursor}\r\n")).await;
    let got = read_events_with_ids(&mut lines, 3).await;
    assert_eq!((got[0].0.as_str(), &got[0].1["resumed_after"]), ("subscribed", &json!(cursor)), "{got:?}");
    assert_eq!(
        ops(&got[1..]),
        vec![
            ("change".to_string(), json!({"op": "upsert", "ids": [4, 5]})),
            ("change".to_string(), json!({"op": "delete", "ids": [2]})),
        ],
        "exactly what was missed, nothing seen twice: {got:?}"
    );
    put(&c, 6..7).await;
    let live = read_events_with_ids(&mut lines, 1).await;
    assert_eq!(ops(&live), vec![("change".to_string(), json!({"op": "upsert", "ids": [6]}))]);
}
