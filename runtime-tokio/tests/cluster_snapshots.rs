//! Snapshot catch-up with real processes: a 3-node cluster on loopback (the built `vecraft`
//! binary) with small compaction thresholds. One node is killed with SIGKILL; the others take
//! enough writes that every shard log compacts far past what the dead node holds; the node is
//! restarted and can only catch up by a snapshot install. The test asserts the install (the
//! node's `vecraft_node_snapshots_installed_total` metric), that the node then serves every
//! acknowledged point from its own replicas (`eventual` reads are answered locally first), and
//! that the leaders took snapshots and deleted WAL segments, and that the node, killed again,
//! restarts from the snapshot files it installed.

mod cluster_common;

use cluster_common::{Cluster, call, create_t, ids_present, metric, points, upsert_until_acked};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_behind_compacted_logs_catches_up_by_snapshot_install() {
    let root = tempfile::tempdir().unwrap();
    let (mut cl, clients) = Cluster::three_small_with_t(root.path()).await;

    let batch = 20u64;
    let mut acked = BTreeSet::new();
    for b in 0..5u64 {
        let r = b * batch..(b + 1) * batch;
        upsert_until_acked(&clients, r.clone(), Duration::from_secs(30), 2).await;
        acked.extend(r);
    }
    cl.kill9(2);
    // Each batch is one entry per shard: 150 batches compact every shard log (30 entries,
    // 5 kept) about five times past where node 3 stopped.
    let live = &clients[..2];
    for b in 5..155u64 {
        let r = b * batch..(b + 1) * batch;
        upsert_until_acked(live, r.clone(), Duration::from_secs(60), 2).await;
        acked.extend(r);
    }
    let taken: f64 = metric(&clients[0], "vecraft_node_snapshots_taken_total").await
        + metric(&clients[1], "vecraft_node_snapshots_taken_total").await;
    assert!(
        taken >= 4.0,
        "the live nodes compacted their shard logs ({taken} snapshots)"
    );

    cl.start(2);
    cl.wait_ready(2, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let installed = loop {
        let n = metric(&clients[2], "vecraft_node_snapshots_installed_total").await;
        let got = ids_present(&clients[2], &acked, "eventual").await.unwrap_or_default();
        if n >= 2.0 && got == acked {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 did not catch up: {n} installs, {} of {} points; log:\n{}",
            got.len(),
            acked.len(),
            cl.log(2)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "node 3 installed {installed} shard snapshots and serves all {} points",
        acked.len()
    );
    assert!(cl.log(2).contains("snapshot installed from the leader"));
    // Its replicas serve every point, and writes continue with it in the cluster.
    upsert_until_acked(&clients, 10_000..10_020, Duration::from_secs(30), 2).await;
    acked.extend(10_000..10_020);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = ids_present(&clients[2], &acked, "eventual").await.unwrap_or_default();
        if got == acked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 misses {} points after the install",
            acked.len() - got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // An `eventual` count reads the local replica, which may still be applying the last
    // entries (it learns the commit index with the next append): it never exceeds what was
    // written and reaches exactly that on every node.
    for (i, client) in clients.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, v) = call(
                client,
                hyper::Method::POST,
                "/collections/t/points/count?read_consistency=eventual",
                Some(json!({"exact": true})),
            )
            .await;
            assert_eq!(s, 200, "node {}: {v}", i + 1);
            let n = v["result"]["count"].as_u64().unwrap();
            assert!(n <= acked.len() as u64, "node {}: {n} points, {} written", i + 1, acked.len());
            if n == acked.len() as u64 {
                break;
            }
            assert!(Instant::now() < deadline, "node {} stays at {n} of {} points", i + 1, acked.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Killed again, node 3 restarts from the snapshots it installed (or took since).
    cl.kill9(2);
    cl.start(2);
    cl.wait_ready(2, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = ids_present(&clients[2], &acked, "eventual").await.unwrap_or_default();
        if got == acked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 3 misses {} points after its restart",
            acked.len() - got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restored = cl
        .log(2)
        .matches("shard engine restored from snapshot")
        .count();
    assert_eq!(
        restored, 2,
        "both shard engines of node 3 restored from snapshot files"
    );
    let deleted = metric(&clients[0], "vecraft_wal_segments_deleted_total").await
        + metric(&clients[1], "vecraft_wal_segments_deleted_total").await;
    println!("wal segments deleted on the live nodes: {deleted}");
    assert!(deleted > 0.0, "the live nodes trimmed their WAL");
    for i in 0..2 {
        let wal = cl.nodes[i].dir.join("wal");
        let bytes: u64 = std::fs::read_dir(&wal)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        println!("node {} wal directory: {bytes} bytes", i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_compactions_and_checkpoints_loses_no_acknowledged_point() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::with_small_thresholds(root.path(), 1);
    let acked = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let mut next = 0u64;
    for round in 0..4u64 {
        cl.start(0);
        cl.wait_ready(0, Duration::from_secs(60)).await;
        let c = cl.client(0);
        if round == 0 {
            let create = json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 2, "replication_factor": 1});
            create_t(&c, create).await;
        }
        let want = acked.lock().unwrap().clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match ids_present(&c, &want, "strong").await {
                Ok(got) if got == want => break,
                r => assert!(
                    Instant::now() < deadline,
                    "round {round}: acknowledged points missing: {r:?}\n{}",
                    cl.log(0)
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Write until the kill, in batches of 20; only answered batches count as acknowledged.
        let writer = {
            let acked = acked.clone();
            let c = cl.client(0);
            let first = next;
            tokio::spawn(async move {
                let mut b = first;
                loop {
                    let r = b * 20..(b + 1) * 20;
                    let (s, _) = call(
                        &c,
                        hyper::Method::PUT,
                        "/collections/t/points?wait=true&write_ack=quorum",
                        Some(points(r.clone())),
                    )
                    .await;
                    if s == 200 {
                        acked.lock().unwrap().extend(r);
                    }
                    b += 1;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(1200 + 300 * round)).await;
        cl.kill9(0);
        writer.abort();
        let _ = writer.await;
        next = acked
            .lock()
            .unwrap()
            .iter()
            .max()
            .map_or(0, |m| m / 20 + 1000);
    }
    cl.start(0);
    cl.wait_ready(0, Duration::from_secs(60)).await;
    let want = acked.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ids_present(&cl.client(0), &want, "strong").await {
            Ok(got) if got == want => break,
            r => assert!(Instant::now() < deadline, "after the last kill: {r:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = cl.log(0);
    let restored = log.matches("shard engine restored from snapshot").count();
    let checkpoints = log.matches("wal checkpoint written").count();
    println!(
        "{} acknowledged points over 4 kill -9 rounds; engines restored from snapshots {restored} times; {checkpoints} wal checkpoints",
        acked.lock().unwrap().len()
    );
    assert!(
        restored > 0,
        "restarts restored engines from snapshot files"
    );
    assert!(checkpoints > 0, "the WAL was checkpointed");
}
