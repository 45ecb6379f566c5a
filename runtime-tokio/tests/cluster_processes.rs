//! A real 3-process cluster on loopback: the built `vecraft` binary, three data directories,
//! TCP between the nodes, REST from the test. Creates a 2-shard × 3-replica collection, writes
//! and reads through every node, kill -9s a node and then a shard leader while writing at
//! `quorum`, restarts them and checks that every acknowledged write is there and that the
//! restarted nodes serve reads again. Prints the time from each kill -9 to the next
//! acknowledged write.

mod cluster_common;

use cluster_common::{Cluster, call, free_port, ids_present, shard_leader, upsert_until_acked, create_t};
use serde_json::json;
use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vecraft_runtime::cli::client::HttpClient;

async fn count(c: &HttpClient, consistency: &str) -> Option<u64> {
    let (s, v) = call(
        c,
        hyper::Method::POST,
        &format!("/collections/t/points/count?read_consistency={consistency}"),
        Some(json!({"exact": true})),
    )
    .await;
    (s == 200).then(|| v["result"]["count"].as_u64()).flatten()
}

/// Every id in `acked` can be retrieved through node client `c` (strong reads).
async fn all_present(c: &HttpClient, acked: &BTreeSet<u64>) -> Result<(), String> {
    let got = ids_present(c, acked, "strong").await?;
    let missing: Vec<_> = acked.difference(&got).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} acknowledged points missing: {missing:?}",
            missing.len()
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_survive_kill_9_of_a_node_and_of_a_shard_leader() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 3);
    cl.start_all().await;
    let clients: Vec<HttpClient> = (0..3).map(|i| cl.client(i)).collect();

    // Create: 2 shards x 3 replicas, through node 2.
    let create = json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 2, "replication_factor": 3});
    create_t(&clients[1], create.clone()).await;
    let (s, v) = call(
        &clients[0],
        hyper::Method::PUT,
        "/collections/t",
        Some(create),
    )
    .await;
    assert_eq!(s, 409, "a second create conflicts: {v}");
    // Bad input is refused with a 4xx naming it, and changes nothing.
    let (s, v) = call(
        &clients[0],
        hyper::Method::PUT,
        "/collections/t/points?wait=true",
        Some(json!({"points": [{"id": 1, "vector": [1.0]}]})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = call(
        &clients[0],
        hyper::Method::POST,
        "/collections/nope/points/count",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 404);

    // 200 points through the three nodes in turn.
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    for b in 0..4u64 {
        let range = b * 50..b * 50 + 50;
        upsert_until_acked(
            &clients[b as usize % 3..b as usize % 3 + 1],
            range.clone(),
            Duration::from_secs(30),
            1,
        )
        .await;
        acked.extend(range);
    }
    for (i, c) in clients.iter().enumerate() {
        assert_eq!(
            count(c, "strong").await,
            Some(200),
            "strong count through node {}",
            i + 1
        );
        all_present(c, &acked)
            .await
            .unwrap_or_else(|e| panic!("node {}: {e}", i + 1));
        let (s, v) = call(
            c,
            hyper::Method::POST,
            "/collections/t/points/search?read_consistency=strong",
            Some(json!({"vector": [1.0, 0.0, 1.0, 0.0], "limit": 5})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v["result"].as_array().unwrap().len(),
            5,
            "search through node {}",
            i + 1
        );
        let (s, v) = call(
            c,
            hyper::Method::POST,
            "/collections/t/points/scroll?read_consistency=strong",
            Some(json!({"limit": 300})),
        )
        .await;
        assert_eq!(
            (s, v["result"]["points"].as_array().map(|a| a.len())),
            (200, Some(200)),
            "scroll via node {}",
            i + 1
        );
    }
    // An `eventual` search says which replica served each shard and how far behind it may be
    // (`vecraft-staleness`); a strong one has nothing to say.
    for (i, c) in clients.iter().enumerate() {
        let body = json!({"vector": [1.0, 0.0, 1.0, 0.0], "limit": 5});
        let eventual = c
            .call(hyper::Method::POST, "/collections/t/points/search?read_consistency=eventual", Some(&body))
            .await
            .unwrap();
        assert_eq!(eventual.status, 200);
        let header = eventual.headers.get("vecraft-staleness").unwrap_or_else(|| panic!("node {}: no staleness", i + 1));
        let lines: serde_json::Value = serde_json::from_str(header.to_str().unwrap()).unwrap();
        let shards: Vec<u64> = lines.as_array().unwrap().iter().map(|l| l["shard"].as_u64().unwrap()).collect();
        assert_eq!(shards, [0, 1], "{lines}");
        for l in lines.as_array().unwrap() {
            assert!((1..=3).contains(&l["node"].as_u64().unwrap()), "{l}");
            assert!(l["commit"].as_u64() >= l["applied"].as_u64(), "{l}");
        }
        let strong = c
            .call(hyper::Method::POST, "/collections/t/points/search?read_consistency=strong", Some(&body))
            .await
            .unwrap();
        assert!(strong.headers.get("vecraft-staleness").is_none());
    }
    // Eventual reads at each replica converge to the same count.
    for c in &clients {
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(c, "eventual").await != Some(200) {
            assert!(Instant::now() < deadline, "eventual count did not converge");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Leaders export each follower's lag; with every replica caught up, it is 0 everywhere.
    // (2 shard groups + the metadata group, each with 2 followers: 6 series in all.)
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut lags = Vec::new();
        for c in &clients {
            let m = c.call(hyper::Method::GET, "/metrics", None).await.unwrap();
            let text = String::from_utf8_lossy(&m.body).to_string();
            lags.extend(
                text.lines()
                    .filter(|l| l.starts_with("vecraft_replication_lag_entries{") && l.contains("follower=\""))
                    .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap()),
            );
        }
        if lags.len() >= 6 && lags.iter().all(|&l| l == 0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "follower lags not reported or not zero: {lags:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // kill -9 node 3, keep writing at quorum through the others.
    cl.kill9(2);
    let killed = Instant::now();
    let live = [cl.client(0), cl.client(1)];
    let first = upsert_until_acked(&live, 200..220, Duration::from_secs(30), 1).await;
    eprintln!(
        "kill -9 of node 3 -> next acknowledged write: {:?}",
        first - killed
    );
    acked.extend(200..220);
    for b in 0..3u64 {
        let range = 220 + b * 10..230 + b * 10;
        upsert_until_acked(&live, range.clone(), Duration::from_secs(30), 1).await;
        acked.extend(range);
    }
    // Restart it: it rejoins from its own data (no wipe) and serves reads again.
    cl.start(2);
    cl.wait_ready(2, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match all_present(&cl.client(2), &acked).await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "restarted node 3: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // kill -9 the leader of shard 0, keep writing.
    let leader = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = shard_leader(&cl, 0, "t", 0).await {
                break l;
            }
            assert!(Instant::now() < deadline, "no leader of shard 0 reported");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    cl.kill9(leader);
    let killed = Instant::now();
    let live: Vec<HttpClient> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| cl.client(i))
        .collect();
    let first = upsert_until_acked(&live, 300..320, Duration::from_secs(30), 1).await;
    eprintln!(
        "kill -9 of the shard-0 leader (node {}) -> next acknowledged write: {:?}",
        leader + 1,
        first - killed
    );
    acked.extend(300..320);
    cl.start(leader);
    cl.wait_ready(leader, Duration::from_secs(60)).await;
    let total = acked.len() as u64;
    for i in 0..3 {
        let c = cl.client(i);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok =
                all_present(&c, &acked).await.is_ok() && count(&c, "eventual").await == Some(total);
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {}: acknowledged writes not all visible: {:?}",
                i + 1,
                all_present(&c, &acked).await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The restarted nodes booted a new incarnation each time.
    let inc = std::fs::read_to_string(cl.nodes[2].dir.join("incarnation")).unwrap();
    assert!(inc.trim().parse::<u64>().unwrap() >= 2, "{inc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_cluster_keeps_its_data_across_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let http = free_port();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_vecraft"))
            .args(["serve", "--data-dir"])
            .arg(root.path())
            .args(["--node-id", "1", "--http-addr", &http.to_string()])
            .env_remove("VECRAFT_PEERS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .unwrap()
    };
    let c = HttpClient::new(&format!("http://{http}"), None).unwrap();
    let ready = |c: HttpClient| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(a) = c.call(hyper::Method::GET, "/readyz", None).await
                && a.status.is_success()
            {
                return;
            }
            assert!(Instant::now() < deadline, "not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let child = start();
    ready(c.clone()).await;
    create_t(&c, json!({"vectors": {"size": 4, "distance": "Dot"}})).await;
    upsert_until_acked(std::slice::from_ref(&c), 0..30, Duration::from_secs(10), 1).await;
    // `wait=false` is acknowledged once durable in the leader's log (`acknowledged`), `wait=true`
    // once committed and applied (`completed`); both are there after a restart.
    for (id, wait, status) in [(30, "false", "acknowledged"), (31, "true", "completed")] {
        let body = json!({"points": [{"id": id, "vector": [1.0, 0.0, 0.0, 0.0]}]});
        let (s, v) = call(&c, hyper::Method::PUT, &format!("/collections/t/points?wait={wait}"), Some(body)).await;
        assert_eq!((s, v["result"]["status"].as_str()), (200, Some(status)), "{v}");
    }
    drop(child); // kill -9
    let _child = start();
    ready(c.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&c, "strong").await != Some(32) {
        assert!(Instant::now() < deadline, "data not replayed after restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The local shard's point count and the per-group gauges (the node loop refreshes its
    // per-group picture once a second, so wait for it).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = call(&c, hyper::Method::GET, "/collections/t/cluster", None).await;
        let local = &v["result"]["local_shards"];
        let metrics = c.call(hyper::Method::GET, "/metrics", None).await.unwrap();
        let text = String::from_utf8_lossy(&metrics.body).to_string();
        let gauge = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l.contains("collection=\"t\"") && l.contains("shard=\"0\""))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        // The shard's engine holds its points as soon as the log is replayed; its group
        // elects itself an election timeout later (a random 300-600 ms), and the picture shows
        // it at its next refresh: wait for both.
        let leading = gauge("vecraft_raft_is_leader{") == Some(1.0);
        if local[0]["points_count"] == 32 && gauge("vecraft_shard_points{") == Some(32.0) && leading {
            assert_eq!(local.as_array().map(Vec::len), Some(1), "{v}");
            assert!(gauge("vecraft_raft_term{").is_some_and(|t| t >= 1.0), "{text}");
            let commit = gauge("vecraft_raft_commit_index{").unwrap();
            assert!(commit >= 3.0 && gauge("vecraft_raft_applied_index{") == Some(commit), "{text}");
            let meta_term = |l: &&str| l.starts_with("vecraft_raft_term{") && l.contains("collection=\"_meta\"");
            assert!(text.lines().any(|l| meta_term(&l)), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no local point count or group gauges: {v}\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A server process killed (SIGKILL) and reaped when dropped, so a failing assertion does not
/// leave it running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_beyond_the_points_in_flight_bound_are_refused_at_once_and_the_rest_complete() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 1);
    cl.env.push(("VECRAFT_MAX_POINTS_IN_FLIGHT", "1500"));
    cl.start_all().await;
    let c = cl.client(0);
    create_t(&c, json!({"vectors": {"size": 4, "distance": "Dot"}})).await;
    // 12 writers of 1,000-point batches at once: two batches never fit under 1,500, so every
    // overlap is refused with 503 + Retry-After (nothing happened), never timed out in doubt.
    let mut tasks = Vec::new();
    for w in 0..12u64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let body = cluster_common::points(w * 1000..w * 1000 + 1000);
            let mut refused = 0;
            loop {
                let a = c.call(hyper::Method::PUT, "/collections/t/points?wait=true", Some(&body)).await.unwrap();
                match a.status.as_u16() {
                    200 => return refused,
                    503 => {
                        let text = String::from_utf8_lossy(&a.body).to_string();
                        assert!(text.contains("points accepted and not yet applied (limit 1500)"), "{text}");
                        assert_eq!(a.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20 + 10 * w)).await;
                    }
                    other => panic!("writer {w}: unexpected {other}: {}", String::from_utf8_lossy(&a.body)),
                }
            }
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await.unwrap();
    }
    assert!(refused > 0, "12 concurrent 1,000-point writes under a 1,500 bound: some must be refused");
    assert_eq!(count(&c, "strong").await, Some(12_000));
}
