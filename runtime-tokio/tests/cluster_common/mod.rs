//! The harness of the multi-process cluster tests: real `vecraft` processes on loopback, each
//! with its own data directory and log file, started, killed with SIGKILL and restarted by the
//! test; REST calls that never panic (a failed call is status 0).

#![allow(dead_code)] // each test file uses a part

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vecraft_runtime::cli::client::HttpClient;

pub const SECRET: &str = "test-cluster-secret";

/// One node process of the cluster (`child` while it runs).
pub struct Node {
    pub id: u64,
    pub http: SocketAddr,
    pub cluster: SocketAddr,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

/// The cluster: its nodes, killed when dropped, and environment variables every node starts
/// with (configuration a test needs, e.g. small compaction thresholds).
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub env: Vec<(&'static str, &'static str)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A loopback address no listener holds now, from ports *below* Linux's ephemeral range
/// (32768 and up by default). A port the kernel hands out for `:0` comes from that range, which
/// every outgoing connection's source port comes from too: in a busy test run one of them took
/// a node's HTTP port between this check and the node's bind (the node then exits with "address
/// in use" and the test times out waiting for it). Ports here are only ever taken by a listener,
/// and the process-wide cursor keeps the tests of one binary from picking the same one.
pub fn free_port() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000; // up to 31,999
    static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);
    // Test binaries of one run start at different points (they run one after another, but a
    // port a node held may still be in TIME_WAIT).
    let _ = CURSOR.compare_exchange(u32::MAX, std::process::id() % SPAN, Ordering::AcqRel, Ordering::Acquire);
    for _ in 0..SPAN {
        let port = LOW + CURSOR.fetch_add(1, Ordering::AcqRel) % SPAN;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port as u16)) {
            return l.local_addr().unwrap();
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN);
}

impl Cluster {
    pub fn new(root: &Path, n: u64) -> Cluster {
        let nodes = (1..=n)
            .map(|id| Node {
                id,
                http: free_port(),
                cluster: free_port(),
                dir: root.join(format!("node-{id}")),
                child: None,
            })
            .collect();
        Cluster {
            nodes,
            env: Vec::new(),
        }
    }

    /// `n` nodes with small compaction and WAL thresholds (a shard snapshot every 30 entries,
    /// keeping 5; 32 KiB segments), so a short test compacts logs, installs snapshots,
    /// checkpoints the WAL and deletes segments.
    #[allow(dead_code)] // not every test file that includes this module uses it
    pub fn with_small_thresholds(root: &Path, n: u64) -> Cluster {
        let mut cl = Cluster::new(root, n);
        cl.env = vec![
            ("VECRAFT_RAFT_SNAPSHOT_ENTRIES", "30"),
            ("VECRAFT_RAFT_SNAPSHOT_KEEP_ENTRIES", "5"),
            ("VECRAFT_WAL_SEGMENT_BYTES", "32768"),
            ("VECRAFT_WAL_CHECKPOINT_BYTES", "65536"),
        ];
        cl
    }

    /// Three started nodes with small thresholds and their clients, holding collection `t` of
    /// 2 shards x 3 replicas of 4-d Cosine vectors: the setup of the tests that kill a node
    /// behind compacted logs.
    #[allow(dead_code)] // not every test file that includes this module uses it
    pub async fn three_small_with_t(root: &Path) -> (Cluster, Vec<HttpClient>) {
        let mut cl = Cluster::with_small_thresholds(root, 3);
        cl.start_all().await;
        let clients: Vec<HttpClient> = (0..3).map(|i| cl.client(i)).collect();
        let create = json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 2, "replication_factor": 3});
        create_t(&clients[0], create).await;
        (cl, clients)
    }

    pub fn start(&mut self, i: usize) {
        let peers: Vec<String> = self
            .nodes
            .iter()
            .filter(|p| p.id != self.nodes[i].id)
            .map(|p| format!("{}={}", p.id, p.cluster))
            .collect();
        let n = &mut self.nodes[i];
        std::fs::create_dir_all(&n.dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(n.dir.join("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_vecraft"))
            .args(["serve", "--data-dir"])
            .arg(&n.dir)
            .args([
                "--node-id",
                &n.id.to_string(),
                "--http-addr",
                &n.http.to_string(),
            ])
            .args([
                "--cluster-addr",
                &n.cluster.to_string(),
                "--peers",
                &peers.join(","),
            ])
            .env("VECRAFT_CLUSTER_SECRET", SECRET)
            .env("VECRAFT_LOG", "info,hnsw_rs=warn")
            .envs(self.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        n.child = Some(child);
    }

    pub fn kill9(&mut self, i: usize) {
        let mut c = self.nodes[i].child.take().expect("running");
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }

    /// Starts every node and waits until each is ready (a minute at most).
    pub async fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
        for i in 0..self.nodes.len() {
            self.wait_ready(i, Duration::from_secs(60)).await;
        }
    }

    /// Node `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].dir.join("log")).unwrap_or_default()
    }

    pub fn client(&self, i: usize) -> HttpClient {
        HttpClient::new(&format!("http://{}", self.nodes[i].http), None).unwrap()
    }

    pub async fn wait_ready(&self, i: usize, within: Duration) {
        let deadline = Instant::now() + within;
        let c = self.client(i);
        loop {
            if let Ok(a) = c.call(hyper::Method::GET, "/readyz", None).await
                && a.status.is_success()
            {
                return;
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.nodes[i].dir.join("log")).unwrap_or_default();
                panic!(
                    "node {} not ready in {within:?}; log:\n{log}",
                    self.nodes[i].id
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub async fn call(
    c: &HttpClient,
    method: hyper::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    match c.json(method, path, body.as_ref()).await {
        Ok((s, v)) => (s.as_u16(), v),
        Err(e) => (0, json!({"error": e.to_string()})),
    }
}

/// The node (index) leading shard `shard`, asked of node `via`.
pub async fn shard_leader(cl: &Cluster, via: usize, collection: &str, shard: u64) -> Option<usize> {
    let (s, v) = call(
        &cl.client(via),
        hyper::Method::GET,
        &format!("/collections/{collection}/cluster"),
        None,
    )
    .await;
    if s != 200 {
        return None;
    }
    let r = &v["result"];
    let me = r["peer_id"].as_u64()?;
    let mut leaders = Vec::new();
    for e in r["local_shards"].as_array()? {
        if e["shard_id"].as_u64() == Some(shard) && e["leader"] == json!(true) {
            leaders.push(me);
        }
    }
    for e in r["remote_shards"].as_array()? {
        if e["shard_id"].as_u64() == Some(shard) && e["leader"] == json!(true) {
            leaders.push(e["peer_id"].as_u64()?);
        }
    }
    let id = *leaders.first()?;
    cl.nodes.iter().position(|n| n.id == id)
}

/// A batch of points `ids` of the 4-d test collections (payload `{"n": id}`).
pub fn points(ids: std::ops::Range<u64>) -> Value {
    let pts: Vec<Value> = ids
        .map(|i| {
            let x = i as f32;
            json!({"id": i, "vector": [1.0, x.sin(), x.cos(), (x / 7.0).sin()], "payload": {"n": i}})
        })
        .collect();
    json!({ "points": pts })
}

/// Upserts a batch into collection `t` at quorum (REST `timeout` of `timeout_secs`), through
/// the nodes `c` in turn, retrying until acknowledged (an upsert is idempotent, so a retry after
/// an in-doubt answer is safe). Returns when it was acknowledged.
pub async fn upsert_until_acked(
    c: &[HttpClient],
    ids: std::ops::Range<u64>,
    within: Duration,
    timeout_secs: u32,
) -> Instant {
    let deadline = Instant::now() + within;
    let body = points(ids.clone());
    let path = format!("/collections/t/points?wait=true&write_ack=quorum&timeout={timeout_secs}");
    let mut k = 0;
    loop {
        let (s, v) = call(
            &c[k % c.len()],
            hyper::Method::PUT,
            &path,
            Some(body.clone()),
        )
        .await;
        if s == 200 {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "batch {ids:?} not acknowledged within {within:?}: last answer {s} {v}"
        );
        k += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids of `ids` that node `c` returns from collection `t`, read at `consistency`.
pub async fn ids_present(
    c: &HttpClient,
    ids: &BTreeSet<u64>,
    consistency: &str,
) -> Result<BTreeSet<u64>, String> {
    let list: Vec<u64> = ids.iter().copied().collect();
    let path = format!("/collections/t/points?read_consistency={consistency}");
    let (s, v) = call(c, hyper::Method::POST, &path, Some(json!({"ids": list}))).await;
    if s != 200 {
        return Err(format!("retrieve answered {s}: {v}"));
    }
    Ok(v["result"]
        .as_array()
        .ok_or("no result")?
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect())
}

/// Creates collection `t` with `body` through `c` and asserts it was created (200).
pub async fn create_t(c: &HttpClient, body: Value) {
    let (s, v) = call(c, hyper::Method::PUT, "/collections/t", Some(body)).await;
    assert_eq!(s, 200, "create t: {v}");
}

/// Sum of a counter over its label sets in a node's `/metrics` (0 if absent).
pub async fn metric(c: &HttpClient, name: &str) -> f64 {
    let Ok(a) = c.call(hyper::Method::GET, "/metrics", None).await else {
        return 0.0;
    };
    let text = String::from_utf8_lossy(&a.body).into_owned();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
