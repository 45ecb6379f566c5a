//! Qdrant's collection aliases on three real processes: create through one node, read and write
//! through the alias on another, the blue/green switch in one request, a request whose last
//! action fails changes nothing, names shared with collections refused, aliases kept across a
//! kill -9 (the metadata log replays them), and dropped with their collection.

mod cluster_common;

use cluster_common::{Cluster, call};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use vecraft_runtime::cli::client::HttpClient;

async fn color_of(c: &HttpClient, collection: &str, id: u64) -> Option<String> {
    let (s, v) = call(c, hyper::Method::GET, &format!("/collections/{collection}/points/{id}?read_consistency=strong"), None).await;
    if s != 200 {
        eprintln!("GET {collection}/{id}: {s} {v}");
    }
    (s == 200).then(|| v["result"]["payload"]["color"].as_str().unwrap_or_default().to_string())
}

async fn aliases(c: &HttpClient, path: &str) -> (u16, Value) {
    call(c, hyper::Method::GET, path, None).await
}

async fn change(c: &HttpClient, actions: Value) -> (u16, Value) {
    call(c, hyper::Method::POST, "/collections/aliases", Some(json!({"actions": actions}))).await
}

/// Polls `node` until `collection`/`id` reads `want` (other nodes learn metadata a heartbeat
/// after the node that answered the change).
async fn until_color(c: &HttpClient, collection: &str, id: u64, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = color_of(c, collection, id).await;
        if got.as_deref() == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{collection}/{id}: {got:?}, want {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_route_requests_switch_atomically_and_survive_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 3);
    cl.start_all().await;
    let c: Vec<_> = (0..3).map(|i| cl.client(i)).collect();
    for color in ["blue", "green"] {
        let body = json!({"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 2, "replication_factor": 3});
        let (s, v) = call(&c[0], hyper::Method::PUT, &format!("/collections/{color}"), Some(body)).await;
        assert_eq!(s, 200, "{v}");
        let pts: Vec<Value> = (1..=10).map(|i| json!({"id": i, "vector": [1.0, i as f32], "payload": {"color": color}})).collect();
        let (s, v) = call(&c[0], hyper::Method::PUT, &format!("/collections/{color}/points?wait=true"), Some(json!({"points": pts}))).await;
        assert_eq!(s, 200, "{v}");
    }

    // Create through node 1; read, search and write through the alias on node 3.
    let (s, v) = change(&c[0], json!([{"create_alias": {"collection_name": "blue", "alias_name": "prod"}}])).await;
    assert_eq!((s, &v["result"]), (200, &json!(true)), "{v}");
    until_color(&c[2], "prod", 3, "blue").await;
    let (s, v) = call(&c[2], hyper::Method::POST, "/collections/prod/points/search", Some(json!({"vector": [1.0, 1.0], "limit": 3, "with_payload": true}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"][0]["id"], 10);
    assert_eq!(v["result"][0]["payload"]["color"], "blue");
    let (s, v) = call(&c[2], hyper::Method::PUT, "/collections/prod/points?wait=true", Some(json!({"points": [{"id": 100, "vector": [0.5, 0.5], "payload": {"color": "via-alias"}}]}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(color_of(&c[1], "blue", 100).await.as_deref(), Some("via-alias"), "the write went to the alias's collection");
    let (s, v) = call(&c[1], hyper::Method::GET, "/collections/prod", None).await;
    assert_eq!((s, v["result"]["points_count"].as_u64()), (200, Some(11)), "{v}");
    let (_, v) = call(&c[1], hyper::Method::GET, "/collections/prod/exists", None).await;
    assert_eq!(v["result"]["exists"], true);
    let (s, v) = aliases(&c[1], "/aliases").await;
    assert_eq!((s, &v["result"]), (200, &json!({"aliases": [{"alias_name": "prod", "collection_name": "blue"}]})));
    let (_, v) = aliases(&c[1], "/collections/blue/aliases").await;
    assert_eq!(v["result"]["aliases"].as_array().map(Vec::len), Some(1), "{v}");
    let (_, v) = aliases(&c[1], "/collections/green/aliases").await;
    assert_eq!(v["result"]["aliases"], json!([]));
    let (s, _) = aliases(&c[1], "/collections/nope/aliases").await;
    assert_eq!(s, 404);

    // The blue/green switch in one request.
    let switch = json!([
        {"delete_alias": {"alias_name": "prod"}},
        {"create_alias": {"collection_name": "green", "alias_name": "prod"}}
    ]);
    let (s, v) = change(&c[1], switch).await;
    assert_eq!(s, 200, "{v}");
    for node in &c {
        until_color(node, "prod", 3, "green").await;
    }

    // All or nothing: the second action fails, so the first did not happen either.
    let (s, v) = change(&c[0], json!([
        {"create_alias": {"collection_name": "blue", "alias_name": "staging"}},
        {"create_alias": {"collection_name": "missing", "alias_name": "x"}}
    ])).await;
    assert_eq!(s, 404, "{v}");
    // Names shared with collections are refused both ways; a rename of a missing alias too.
    let (s, v) = change(&c[0], json!([{"create_alias": {"collection_name": "green", "alias_name": "blue"}}])).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(&c[0], hyper::Method::PUT, "/collections/prod", Some(json!({"vectors": {"size": 2, "distance": "Dot"}}))).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = change(&c[0], json!([{"rename_alias": {"old_alias_name": "nope", "new_alias_name": "x"}}])).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = change(&c[0], json!([{"create_alias": {"alias_name": "x"}}])).await;
    assert_eq!(s, 400, "a malformed action: {v}");
    let (_, v) = aliases(&c[0], "/aliases").await;
    assert_eq!(v["result"], json!({"aliases": [{"alias_name": "prod", "collection_name": "green"}]}));

    // kill -9 and restart node 2: the aliases come back from its metadata log.
    cl.kill9(1);
    cl.start(1);
    cl.wait_ready(1, Duration::from_secs(30)).await;
    let c1 = cl.client(1);
    until_color(&c1, "prod", 5, "green").await;
    let (_, v) = aliases(&c1, "/aliases").await;
    assert_eq!(v["result"], json!({"aliases": [{"alias_name": "prod", "collection_name": "green"}]}));

    // Rename, then drop the collection: its aliases go with it.
    let (s, v) = change(&c1, json!([{"rename_alias": {"old_alias_name": "prod", "new_alias_name": "live"}}])).await;
    assert_eq!(s, 200, "{v}");
    until_color(&c[2], "live", 1, "green").await;
    let (s, v) = call(&c[2], hyper::Method::DELETE, "/collections/live", None).await;
    assert!(s == 404 || v["result"] == json!(false), "an alias is not dropped in its collection's place: {s} {v}");
    let (s, _) = call(&c[0], hyper::Method::DELETE, "/collections/green", None).await;
    assert_eq!(s, 200);
    let (_, v) = aliases(&c[0], "/aliases").await;
    assert_eq!(v["result"], json!({"aliases": []}));
}
