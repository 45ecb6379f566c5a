//! Multi-process chaos judged by the simulator's linearizability checker: a real 3-process
//! cluster on loopback, concurrent clients writing and reading a few points as registers
//! (`quorum` writes, `strong` reads, through any node), the shard leader killed with SIGKILL
//! mid-run and restarted. The client history is written in the simulator's `--history-out`
//! format (JSON lines), read back from the file and checked exactly as `vecraft-sim
//! check-history FILE` does. The file is kept when `VECRAFT_HISTORY_OUT` names a path.
//!
//! Outcomes as a client must record them: a write answered 200 took effect; 4xx did not; any
//! other answer (a 5xx, a timeout, a dropped connection) may or may not have taken effect, at
//! any time after it was sent (`info`). A read answered 200 saw what it returned; any other
//! answer is a failed read. `VECRAFT_HISTORY_SECS` lengthens the run (default 8 s).

mod cluster_common;

use cluster_common::{Cluster, call, shard_leader};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vecraft_runtime::cli::client::HttpClient;
use vecraft_sim::history::{History, Operation, Outcome};
use vecraft_sim::linearizability::{CheckerConfig, Verdict, check};

const KEYS: u64 = 3;
const CLIENTS: u64 = 4;

fn nanos_since(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// One client's loop: random writes and reads of the keys through random nodes until `until`.
async fn client_loop(
    id: u64,
    nodes: Vec<HttpClient>,
    history: Arc<Mutex<History>>,
    start: Instant,
    until: Instant,
) -> (u64, u64) {
    let mut seq = 0u64;
    let (mut writes_ok, mut reads_ok) = (0, 0);
    // A small deterministic generator per client (the run itself is not deterministic).
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (id + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while Instant::now() < until {
        let key = next() % KEYS;
        let node = &nodes[(next() % nodes.len() as u64) as usize];
        if next() % 2 == 0 {
            seq += 1;
            let value = (id * 1_000_000 + seq) as i64;
            let op = history.lock().unwrap().invoke(id, Operation::write(key, value), nanos_since(start)).unwrap();
            let body = json!({"points": [{"id": key + 1, "vector": [1.0, 0.5, 0.25, 0.125], "payload": {"v": value}}]});
            let (s, answer) = call(
                node,
                hyper::Method::PUT,
                "/collections/h/points?wait=true&write_ack=quorum&timeout=2",
                Some(body),
            )
            .await;
            let outcome = match s {
                200 => Outcome::Ok,
                400..=499 => Outcome::Fail,
                _ => Outcome::Info,
            };
            writes_ok += (s == 200) as u64;
            if (400..=499).contains(&s) && !answer.to_string().contains("does not exist") {
                // Refusals other than a node that has not applied the collection yet.
                eprintln!("write {value} to key {key} refused: {s} {answer}");
            }
            history.lock().unwrap().complete(op, outcome, nanos_since(start)).unwrap();
        } else {
            let op = history.lock().unwrap().invoke(id, Operation::read(key), nanos_since(start)).unwrap();
            let (s, v) = call(
                node,
                hyper::Method::POST,
                "/collections/h/points?read_consistency=strong&timeout=2",
                Some(json!({"ids": [key + 1], "with_payload": true})),
            )
            .await;
            let outcome = if s == 200 {
                reads_ok += 1;
                let seen = v["result"].as_array().and_then(|a| a.first()).and_then(|p| p["payload"]["v"].as_i64());
                Outcome::ReadOk(seen)
            } else {
                Outcome::Fail
            };
            history.lock().unwrap().complete(op, outcome, nanos_since(start)).unwrap();
        }
        // Think time now and then, so operations overlap in many ways.
        if next() % 3 == 0 {
            tokio::time::sleep(Duration::from_millis(next() % 20)).await;
        }
    }
    (writes_ok, reads_ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_across_kill_9_of_the_shard_leader_is_linearizable() {
    let secs: u64 = std::env::var("VECRAFT_HISTORY_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let root = tempfile::tempdir().unwrap();
    let mut cl = Cluster::new(root.path(), 3);
    cl.start_all().await;
    let create = json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 1, "replication_factor": 3});
    let (s, v) = call(&cl.client(0), hyper::Method::PUT, "/collections/h", Some(create)).await;
    assert_eq!(s, 200, "{v}");

    let history = Arc::new(Mutex::new(History::new()));
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let nodes: Vec<HttpClient> = (0..3).map(|i| cl.client(i)).collect();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client_loop(c, nodes.clone(), history.clone(), start, until)))
        .collect();

    // A third of the way in, SIGKILL the shard leader; restart it a second later.
    tokio::time::sleep(Duration::from_secs(secs / 3)).await;
    let mut leader = None;
    for _ in 0..50 {
        leader = shard_leader(&cl, 0, "h", 0).await;
        if leader.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let victim = leader.expect("the shard has a leader");
    cl.kill9(victim);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cl.start(victim);

    let mut writes_ok = 0;
    let mut reads_ok = 0;
    for t in tasks {
        let (w, r) = t.await.unwrap();
        writes_ok += w;
        reads_ok += r;
    }
    cl.wait_ready(victim, Duration::from_secs(60)).await;

    // The history file, in the simulator's format, read back and checked.
    let path = std::env::var("VECRAFT_HISTORY_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.path().join("history.jsonl"));
    let file = std::fs::File::create(&path).unwrap();
    history.lock().unwrap().write_jsonl(std::io::BufWriter::new(file)).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let read_back = History::from_jsonl_str(&text).unwrap();
    let ops = read_back.operations().len();
    let verdict = check(&read_back, &CheckerConfig::default());
    eprintln!(
        "history: {ops} operations ({writes_ok} writes and {reads_ok} reads answered 200; node {} killed); {verdict}; file {}",
        victim + 1,
        path.display()
    );
    assert!(matches!(verdict, Verdict::Linearizable), "{verdict}");
    assert!(writes_ok > 20 && reads_ok > 20, "the run did real work: {writes_ok} writes, {reads_ok} reads");
}
