//! Replica status and lag as a shard's leader reports them, with real processes (3 `vecraft`
//! nodes on loopback): `GET /collections/{c}/cluster` gives every replica's state, the log
//! entries it lacks (`lag_entries`) and the entries it holds but has not applied
//! (`apply_lag_entries`, from the applied index followers send with every append answer), and
//! `/metrics` has `vecraft_replication_apply_lag_entries` per follower. After writes stop, the
//! leader's report of every replica becomes exact (0 and 0, `Active`) and stays so while the
//! group sleeps; a follower killed with SIGKILL, written past and restarted is reported lagging
//! while it is down and `Active` with no lag once it has caught up.

mod cluster_common;

use cluster_common::{Cluster, call, create_t, shard_leader, upsert_until_acked};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use vecraft_runtime::cli::client::HttpClient;

/// (peer id, state, lag_entries, apply_lag_entries) of every replica of shard 0 of `t`, as
/// node `c` reports them.
async fn replicas(c: &HttpClient) -> Vec<(u64, String, u64, u64)> {
    let (s, v) = call(c, hyper::Method::GET, "/collections/t/cluster", None).await;
    if s != 200 {
        return Vec::new();
    }
    let r = &v["result"];
    let me = r["peer_id"].as_u64().unwrap_or(0);
    let line = |e: &Value, peer: u64| {
        (
            peer,
            e["state"].as_str().unwrap_or("?").to_string(),
            e["lag_entries"].as_u64().unwrap(),
            e["apply_lag_entries"].as_u64().unwrap(),
        )
    };
    let mut out: Vec<_> = r["local_shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| line(e, me))
        .collect();
    out.extend(
        r["remote_shards"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| line(e, e["peer_id"].as_u64().unwrap())),
    );
    out.sort();
    out
}

/// Waits until the leader (node index `leader`) reports every replica `Active` with no lag.
async fn wait_all_caught_up(
    cl: &Cluster,
    leader: usize,
    within: Duration,
) -> Vec<(u64, String, u64, u64)> {
    let deadline = Instant::now() + within;
    let want: Vec<_> = cl
        .nodes
        .iter()
        .map(|n| (n.id, "Active".to_string(), 0, 0))
        .collect();
    loop {
        let got = replicas(&cl.client(leader)).await;
        if got == want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "leader's report after {within:?}: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sum of gauge `name` over the series of collection `t` on node `c`, and how many there are.
async fn gauge_t(c: &HttpClient, name: &str) -> (f64, usize) {
    let Ok(a) = c.call(hyper::Method::GET, "/metrics", None).await else {
        return (0.0, 0);
    };
    let text = String::from_utf8_lossy(&a.body).to_string();
    let vals: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("collection=\"t\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (vals.iter().sum(), vals.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_reports_each_replicas_log_and_apply_lag_and_it_settles_exactly() {
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 3);
    cl.start_all().await;
    let c: Vec<HttpClient> = (0..3).map(|i| cl.client(i)).collect();
    create_t(&c[0], json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1, "replication_factor": 3})).await;
    for start in (0..300).step_by(30) {
        upsert_until_acked(&c, start..start + 30, Duration::from_secs(30), 5).await;
    }
    let leader = loop {
        if let Some(l) = shard_leader(&cl, 0, "t", 0).await {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Exact once writes stop: the followers' last answers said they applied everything.
    wait_all_caught_up(&cl, leader, Duration::from_secs(10)).await;
    // And it stays exact (the group may sleep now: nothing refreshes the report).
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_all_caught_up(&cl, leader, Duration::from_millis(1)).await;
    // The gauges (refreshed about once a second): one series per follower, all 0.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (sum, n) = gauge_t(&c[leader], "vecraft_replication_apply_lag_entries").await;
        if n == 2 {
            assert_eq!(sum, 0.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} apply-lag series on the leader, want 2"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A follower dies; the leader goes on with the other one.
    let victim = (0..3).find(|&i| i != leader).unwrap();
    let victim_id = cl.nodes[victim].id;
    cl.kill9(victim);
    let live: Vec<HttpClient> = (0..3)
        .filter(|&i| i != victim)
        .map(|i| cl.client(i))
        .collect();
    for start in (300..600).step_by(10) {
        upsert_until_acked(&live, start..start + 10, Duration::from_secs(30), 5).await;
    }
    let down = replicas(&c[leader]).await;
    let line = down
        .iter()
        .find(|r| r.0 == victim_id)
        .expect("the dead replica is still listed");
    assert!(
        line.2 >= 30,
        "the dead follower lacks the 30 batches written since: {down:?}"
    );
    assert_ne!(line.1, "Active", "{down:?}");

    // Back: it replays its log, catches up, and is reported caught up again.
    cl.start(victim);
    cl.wait_ready(victim, Duration::from_secs(30)).await;
    wait_all_caught_up(&cl, leader, Duration::from_secs(20)).await;
    // Its own view of itself agrees (its local line is measured on the spot).
    let own = replicas(&cl.client(victim)).await;
    let me = own
        .iter()
        .find(|r| r.0 == victim_id)
        .expect("the node lists its own replica");
    assert_eq!((me.1.as_str(), me.3), ("Active", 0), "{own:?}");
}
