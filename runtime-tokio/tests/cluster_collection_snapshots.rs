//! Collection snapshots through the replicated node (`node_snapshots`), on three real
//! processes: create on one node (read from every shard), list, download, verify, recover
//! into the cluster from the node's catalogue and from an upload to another node; a snapshot
//! taken while a client keeps writing holds every shard as of one position of its log.

mod cluster_common;

use cluster_common::{Cluster, call, create_t, ids_present, shard_leader, upsert_until_acked};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use vecraft_core::node::sharding::shard_of;
use vecraft_core::vector::payload::PayloadValue;
use vecraft_core::vector::point::PointId;
use vecraft_core::vector::snapshot::{restore_full, verify_snapshot};

async fn strong_count(c: &vecraft_runtime::cli::client::HttpClient) -> u64 {
    let (s, v) = call(
        c,
        hyper::Method::POST,
        "/collections/t/points/count?read_consistency=strong",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["result"]["count"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_snapshot_is_taken_downloaded_and_recovered_through_the_cluster() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 3);
    cl.start_all().await;
    let c: Vec<_> = (0..3).map(|i| cl.client(i)).collect();
    let create = json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 3, "replication_factor": 2});
    create_t(&c[0], create).await;
    upsert_until_acked(&c, 0..300, Duration::from_secs(30), 5).await;

    // Taken through node 2, which does not host every shard (3 shards x 2 replicas on 3 nodes).
    let (s, snap) = call(&c[1], hyper::Method::POST, "/collections/t/snapshots", None).await;
    assert_eq!(s, 200, "{snap}");
    let name = snap["result"]["name"].as_str().unwrap().to_string();
    let (_, list) = call(&c[1], hyper::Method::GET, "/collections/t/snapshots", None).await;
    assert_eq!(list["result"].as_array().map(Vec::len), Some(1), "{list}");
    // Snapshots are per node, as in Qdrant: node 1 has none.
    let (_, other) = call(&c[0], hyper::Method::GET, "/collections/t/snapshots", None).await;
    assert_eq!(other["result"], json!([]), "{other}");

    let file = root.path().join("t.snap");
    let got = c[1]
        .download(
            &format!("/collections/t/snapshots/{name}"),
            &file,
            &mut |_, _| (),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, snap["result"]["size"].as_u64().unwrap());
    let summary = verify_snapshot(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(summary.header.point_count, 300);
    assert_eq!(
        blake3::Hash::from_bytes(summary.file_hash)
            .to_hex()
            .as_str(),
        snap["result"]["checksum"].as_str().unwrap()
    );

    // Change the collection, recover from node 2's catalogue: back to exactly the 300 points,
    // payloads included, and the shard layout kept.
    let (s, v) = call(
        &c[2],
        hyper::Method::POST,
        "/collections/t/points/delete?wait=true",
        Some(json!({"points": (0..100).collect::<Vec<u64>>()})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    upsert_until_acked(&c, 1000..1010, Duration::from_secs(30), 5).await;
    assert_eq!(strong_count(&c[0]).await, 210);
    let (s, v) = call(
        &c[1],
        hyper::Method::PUT,
        "/collections/t/snapshots/recover",
        Some(json!({"snapshot": name})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for node in &c {
        assert_eq!(strong_count(node).await, 300);
    }
    let all: BTreeSet<u64> = (0..300).collect();
    assert_eq!(ids_present(&c[2], &all, "strong").await.unwrap(), all);
    let (_, p) = call(&c[0], hyper::Method::GET, "/collections/t/points/42", None).await;
    assert_eq!(p["result"]["payload"], json!({"n": 42}), "{p}");
    let (_, info) = call(&c[0], hyper::Method::GET, "/collections/t/cluster", None).await;
    assert_eq!(info["result"]["shard_count"], 3, "{info}");

    // Drop it, recover from the downloaded file uploaded to node 3.
    let (s, _) = call(&c[0], hyper::Method::DELETE, "/collections/t", None).await;
    assert_eq!(s, 200);
    let answer = c[2]
        .upload("/collections/t/snapshots/upload", &file, |_| ())
        .await
        .unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    assert_eq!(strong_count(&c[1]).await, 300);

    // A snapshot of another collection's name is refused and changes nothing; deletion works.
    let (s, v) = call(
        &c[1],
        hyper::Method::PUT,
        "/collections/u/snapshots/recover",
        Some(json!({"snapshot": name})),
    )
    .await;
    assert!((400..500).contains(&s), "{s} {v}");
    let (s, _) = call(
        &c[1],
        hyper::Method::DELETE,
        &format!("/collections/t/snapshots/{name}"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (_, list) = call(&c[1], hyper::Method::GET, "/collections/t/snapshots", None).await;
    assert_eq!(list["result"], json!([]), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_takes_scheduled_snapshots_and_keeps_the_newest() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 1);
    cl.env.push(("VECRAFT_SNAPSHOT_INTERVAL_SECS", "1"));
    cl.env.push(("VECRAFT_SNAPSHOT_RETAIN", "2"));
    cl.start_all().await;
    let c = cl.client(0);
    create_t(&c, json!({"vectors": {"size": 4, "distance": "Dot"}})).await;
    upsert_until_acked(std::slice::from_ref(&c), 0..50, Duration::from_secs(20), 5).await;
    // About one snapshot a second; retention keeps two. Wait until the first two have been
    // rotated out (ids name their creation time, so a newer pair differs from the first).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut first: Option<Vec<String>> = None;
    loop {
        let (_, list) = call(&c, hyper::Method::GET, "/collections/t/snapshots", None).await;
        let names: Vec<String> = list["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect();
        // A round writes its snapshot, then deletes the oldest: a listing in between sees
        // three (never more).
        assert!(names.len() <= 3, "retention keeps 2, plus one being rotated in: {names:?}");
        if names.len() == 2 {
            match &first {
                None => first = Some(names.clone()),
                Some(f) if names.iter().all(|n| !f.contains(n)) => {
                    let last = list["result"].as_array().unwrap().last().unwrap().clone();
                    assert!(last["size"].as_u64().unwrap() > 0, "{last}");
                    break;
                }
                Some(_) => {}
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rotation of scheduled snapshots: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A writer keeps stamping the lowest and the highest id of each shard with the same
/// generation, in one request (so one command per shard's log). A shard copied at one log
/// position has both at the same generation; a copy paged at different positions (a scroll,
/// pages of 1,000, 3,000 points per shard) ends up with the low one older than the high one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_taken_under_writes_holds_each_shard_as_of_one_log_position() {
    const POINTS: u64 = 6_000;
    const SHARDS: u32 = 2;
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 3);
    cl.start_all().await;
    let c: Vec<_> = (0..3).map(|i| cl.client(i)).collect();
    create_t(&c[0], json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": SHARDS, "replication_factor": 3})).await;
    let point = |id: u64, generation: u64| json!({"id": id, "vector": [1.0, 0.5, id as f32, generation as f32], "payload": {"gen": generation}});
    for chunk in (0..POINTS).collect::<Vec<_>>().chunks(1_000) {
        let body = json!({"points": chunk.iter().map(|&id| point(id, 0)).collect::<Vec<_>>()});
        let (s, v) = call(&c[0], hyper::Method::PUT, "/collections/t/points?wait=true", Some(body)).await;
        assert_eq!(s, 200, "{v}");
    }
    let ends: Vec<(u64, u64)> = (0..SHARDS)
        .map(|s| {
            let mine = (0..POINTS).filter(|&id| shard_of(PointId::Num(id), SHARDS) == s);
            (mine.clone().min().unwrap(), mine.max().unwrap())
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, acked, w) = (stop.clone(), acked.clone(), cl.client(2));
        let ends = ends.clone();
        tokio::spawn(async move {
            let mut generation = 0;
            while !stop.load(Ordering::Relaxed) {
                generation += 1;
                let pts: Vec<_> = ends.iter().flat_map(|&(lo, hi)| [point(lo, generation), point(hi, generation)]).collect();
                let (s, v) = call(&w, hyper::Method::PUT, "/collections/t/points?wait=true", Some(json!({"points": pts}))).await;
                assert_eq!(s, 200, "{v}");
                acked.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while acked.load(Ordering::Relaxed) < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = acked.load(Ordering::Relaxed);
    let (s, snap) = call(&c[1], hyper::Method::POST, "/collections/t/snapshots", None).await;
    let during = acked.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert_eq!(s, 200, "{snap}");
    assert!(during >= 2, "the writer kept writing while the snapshot was taken ({during} writes)");

    let name = snap["result"]["name"].as_str().unwrap().to_string();
    let file = root.path().join("under-writes.snap");
    c[1].download(&format!("/collections/t/snapshots/{name}"), &file, &mut |_, _| ()).await.unwrap().unwrap();
    let copy = restore_full(std::fs::File::open(&file).unwrap(), &mut |_| {}).unwrap();
    assert_eq!(copy.len() as u64, POINTS);
    let generation = |id: u64| match copy.point(PointId::Num(id)).unwrap().payload.get("gen") {
        Some(PayloadValue::Int(g)) => *g,
        other => panic!("point {id}: gen {other:?}"),
    };
    for (shard, &(lo, hi)) in ends.iter().enumerate() {
        assert_eq!(
            generation(lo),
            generation(hi),
            "shard {shard}: its lowest and highest ids were written together, the copy has them apart ({during} writes during the snapshot)"
        );
    }
    assert!(ends.iter().any(|&(lo, _)| generation(lo) > 0), "the copy saw some of the writes");
}

/// A snapshot whose shard loses its leader (kill -9, 30 ms after the request, while its pages
/// are read) finishes with every point: the node sends a changes read that found no leader to
/// the next replica, within the read's deadline, as it does any read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_outlives_the_kill_of_a_shard_leader() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 3);
    cl.start_all().await;
    let c: Vec<_> = (0..3).map(|i| cl.client(i)).collect();
    create_t(&c[0], json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1, "replication_factor": 3})).await;
    for chunk in (0..20_000u64).collect::<Vec<_>>().chunks(2_000) {
        let pts: Vec<_> = chunk.iter().map(|&id| json!({"id": id, "vector": [1.0, 0.5, id as f32, 2.0]})).collect();
        let (s, v) = call(&c[0], hyper::Method::PUT, "/collections/t/points?wait=true", Some(json!({"points": pts}))).await;
        assert_eq!(s, 200, "{v}");
    }
    // The leader is another node than the one taking the snapshot.
    let mut leader = None;
    for _ in 0..100 {
        leader = shard_leader(&cl, 0, "t", 0).await;
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leader = leader.expect("the shard has a leader");
    let via = (leader + 1) % 3;
    let taker = cl.client(via);
    let snapshot = tokio::spawn(async move { call(&taker, hyper::Method::POST, "/collections/t/snapshots", None).await });
    tokio::time::sleep(Duration::from_millis(30)).await;
    cl.kill9(leader);
    let (s, snap) = snapshot.await.unwrap();
    assert_eq!(s, 200, "{snap}");
    let name = snap["result"]["name"].as_str().unwrap().to_string();
    let file = root.path().join("after-kill.snap");
    c[via].download(&format!("/collections/t/snapshots/{name}"), &file, &mut |_, _| ()).await.unwrap().unwrap();
    let summary = verify_snapshot(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(summary.header.point_count, 20_000);
    // Built aside in one parallel pass, the graph is in the file: a restore does not rebuild it.
    assert_ne!(summary.header.flags & vecraft_core::vector::snapshot::FLAG_HNSW_GRAPH, 0, "the snapshot carries its HNSW graph");
}

async fn count_of(c: &vecraft_runtime::cli::client::HttpClient, name: &str) -> (u16, u64) {
    let path = format!("/collections/{name}/points/count?read_consistency=strong");
    let (s, v) = call(c, hyper::Method::POST, &path, Some(json!({}))).await;
    if s != 200 {
        eprintln!("count of {name}: {s} {v}");
    }
    (s, v["result"]["count"].as_u64().unwrap_or(0))
}

/// A recovery fills a collection aside and swaps it in with one metadata command: readers on
/// the other nodes, counting all the while, see the old content or the recovered one, never an
/// empty, missing or half-loaded collection; an alias follows; a leftover staging collection
/// is refused, not overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_swaps_the_collection_in_whole_while_readers_count() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 3);
    cl.start_all().await;
    let c: Vec<_> = (0..3).map(|i| cl.client(i)).collect();
    create_t(&c[0], json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 2, "replication_factor": 3})).await;
    for k in 0..6 {
        upsert_until_acked(&c, k * 500..(k + 1) * 500, Duration::from_secs(30), 5).await;
    }
    let (s, snap) = call(&c[0], hyper::Method::POST, "/collections/t/snapshots", None).await;
    assert_eq!(s, 200, "{snap}");
    let name = snap["result"]["name"].as_str().unwrap().to_string();
    let (s, v) = call(&c[0], hyper::Method::POST, "/collections/t/points/delete?wait=true", Some(json!({"points": (0..1000).collect::<Vec<u64>>()}))).await;
    assert_eq!(s, 200, "{v}");
    let alias = json!({"actions": [{"create_alias": {"alias_name": "live", "collection_name": "t"}}]});
    let (s, v) = call(&c[0], hyper::Method::POST, "/collections/aliases", Some(alias)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(count_of(&c[1], "t").await, (200, 2000));

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = [1usize, 2]
        .into_iter()
        .map(|i| {
            let (client, stop) = (cl.client(i), stop.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    seen.push(count_of(&client, if seen.len() % 2 == 0 { "t" } else { "live" }).await);
                }
                seen
            })
        })
        .collect();
    let (s, v) = call(&c[0], hyper::Method::PUT, "/collections/t/snapshots/recover", Some(json!({"snapshot": name}))).await;
    assert_eq!(s, 200, "{v}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for r in readers {
        all.extend(r.await.unwrap());
    }
    let odd: Vec<_> = all.iter().filter(|&&a| a != (200, 2000) && a != (200, 3000)).collect();
    assert!(odd.is_empty(), "reads outside the old and the recovered content: {odd:?} of {}", all.len());
    assert!(all.contains(&(200, 2000)) && all.last() == Some(&(200, 3000)), "both contents seen, the recovered one last");
    for node in &c {
        assert_eq!(count_of(node, "t").await, (200, 3000));
        assert_eq!(count_of(node, "live").await, (200, 3000));
        let (_, list) = call(node, hyper::Method::GET, "/collections", None).await;
        assert_eq!(list["result"]["collections"], json!([{"name": "t"}]), "no staging collection left");
    }
    eprintln!("{} reads during the recovery, none outside the two contents", all.len());

    // A collection under the staging name (a crashed recovery's, or a user's) is not
    // overwritten: the recovery is refused and `t` stays as it is.
    let (s, v) = call(&c[1], hyper::Method::PUT, "/collections/t.recovering", Some(json!({"vectors": {"size": 4, "distance": "Dot"}}))).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(&c[0], hyper::Method::PUT, "/collections/t/snapshots/recover", Some(json!({"snapshot": name}))).await;
    assert_eq!(s, 409, "{v}");
    assert!(v["status"]["error"].as_str().unwrap_or("").contains("t.recovering"), "{v}");
    assert_eq!(count_of(&c[2], "t").await, (200, 3000));
}
