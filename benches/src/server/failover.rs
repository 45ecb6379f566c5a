//! Failover on real processes: under a steady quorum write load on a 3-node cluster, kill -9
//! the leader of the collection's shard and time the gap until the next acknowledged write;
//! restart the killed node, wait until every replica is `Active` again, repeat.
//!
//! Client retry policy (what the figure depends on): `writers` clients, each with one
//! keep-alive connection to one node, write batches at `write_ack=quorum`, `wait=true`, with a
//! 2 s client timeout; after any failure (refused connection, reset, timeout, non-2xx) the
//! client moves to the next node round-robin and retries after 10 ms. "Next acknowledged write"
//! is the first acknowledgement of a request *sent after* the kill, so a write that was already
//! committed before the kill does not count.

use super::http::KeepAlive;
use super::procs::{ProcError, VecraftCluster};
use super::workload::{
    acknowledged, all_active, create_collection, shard_leader, upsert_body, upsert_path,
    vector_texts, wait_collection_everywhere,
};
use hyper::Method;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why the failover phase failed.
#[derive(Debug, Error)]
pub enum FailoverError {
    /// A node did not start or restart.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// The cluster did not reach the state a run starts from.
    #[error("{0}")]
    Setup(String),
}

/// Shape of the measurement.
#[derive(Debug, Clone, Copy)]
pub struct FailoverSpec {
    /// Kill/restart rounds.
    pub runs: usize,
    /// Concurrent writers.
    pub writers: usize,
    /// Points per write.
    pub batch: usize,
    /// Dimension.
    pub dim: usize,
    /// A run without an acknowledged write this long after the kill counts as failed.
    pub give_up: Duration,
}

/// One kill.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverRun {
    /// The killed node (the shard's leader).
    pub victim: u64,
    /// Kill to the first acknowledgement of a write sent after it, ms (`None`: none within
    /// `give_up`).
    pub gap_ms: Option<f64>,
    /// Writes that failed between the kill and that acknowledgement (client-side retries).
    pub failed_writes: u64,
    /// Restart of the victim to every replica `Active` again, ms.
    pub rejoin_ms: f64,
}

/// What the writers share with the harness.
struct Log {
    /// (sent, acknowledged) of every acknowledged write.
    acks: Mutex<Vec<(Instant, Instant)>>,
    failed: AtomicU64,
    /// Failed writes by kind (status and the start of the error, or the transport failure),
    /// reset every run and printed with it: what a failover's gap was spent on.
    failures: Mutex<std::collections::BTreeMap<String, u64>>,
    stop: AtomicBool,
}

/// A short name for why a write failed.
fn failure_kind(a: &Result<super::http::Answer, super::http::HttpError>) -> String {
    match a {
        Ok(a) => {
            let error = a.json()["status"]["error"].as_str().unwrap_or("").to_string();
            let error: String = error.chars().filter(|c| !c.is_ascii_digit()).take(60).collect();
            format!("{} {error}", a.status.as_u16())
        }
        Err(super::http::HttpError::Timeout { .. }) => "client timeout (2 s)".into(),
        Err(e) => {
            let e = e.to_string();
            let e = e.split_once(": ").map_or(e.as_str(), |(_, m)| m).to_string();
            e.chars().take(40).collect()
        }
    }
}

const COLLECTION: &str = "failover";

async fn writer(
    members: Vec<String>,
    me: usize,
    batch: usize,
    pool: Arc<Vec<String>>,
    log: Arc<Log>,
) {
    let path = upsert_path(COLLECTION);
    let mut target = me % members.len();
    let mut client = KeepAlive::new(members[target].clone(), Duration::from_secs(2));
    let mut seq: u64 = 0;
    while !log.stop.load(Ordering::Relaxed) {
        let first = ((me as u64 + 1) << 40) + seq * batch as u64;
        seq += 1;
        let body = upsert_body(first, batch, &pool);
        let sent = Instant::now();
        let answer = client.request(Method::PUT, &path, body).await;
        if acknowledged(&answer) {
            let mut acks = log.acks.lock().unwrap_or_else(|e| e.into_inner());
            acks.push((sent, Instant::now()));
        } else {
            log.failed.fetch_add(1, Ordering::Relaxed);
            *log.failures.lock().unwrap_or_else(|e| e.into_inner()).entry(failure_kind(&answer)).or_insert(0) += 1;
            target = (target + 1) % members.len();
            client.retarget(members[target].clone());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// First acknowledgement of a write sent at or after `t`, as time since `t`.
fn first_ack_after(log: &Log, t: Instant) -> Option<Duration> {
    let acks = log.acks.lock().unwrap_or_else(|e| e.into_inner());
    acks.iter()
        .filter(|(sent, _)| *sent >= t)
        .map(|(_, acked)| *acked - t)
        .min()
}

async fn leader(cluster: &VecraftCluster) -> Option<u64> {
    for addr in cluster.running_http() {
        let mut c = KeepAlive::new(addr, Duration::from_secs(2));
        if let Some(l) = shard_leader(&mut c, COLLECTION, 0).await {
            return Some(l);
        }
    }
    None
}

async fn wait_all_active(addr: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut c = KeepAlive::new(addr.to_string(), Duration::from_secs(2));
    while Instant::now() < deadline {
        if let Ok(a) = c.get(&format!("/collections/{COLLECTION}/cluster")).await
            && all_active(&a.json())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Runs the phase on a fresh 3-node cluster under `dir`.
pub async fn measure(
    binary: &Path,
    dir: &Path,
    spec: FailoverSpec,
) -> Result<Vec<FailoverRun>, FailoverError> {
    let mut cluster = tokio::task::block_in_place(|| VecraftCluster::start(binary, dir, 3))?;
    let members: Vec<String> = cluster.nodes.iter().map(|n| n.http.clone()).collect();
    let mut admin = KeepAlive::new(members[0].clone(), Duration::from_secs(30));
    create_collection(&mut admin, COLLECTION, spec.dim, 1, 3)
        .await
        .map_err(FailoverError::Setup)?;
    wait_collection_everywhere(&members, COLLECTION, Duration::from_secs(30))
        .await
        .map_err(FailoverError::Setup)?;
    let log = Arc::new(Log {
        acks: Mutex::new(Vec::new()),
        failed: AtomicU64::new(0),
        failures: Mutex::new(Default::default()),
        stop: AtomicBool::new(false),
    });
    let pool = Arc::new(vector_texts(spec.dim, 1000, 5));
    let mut tasks = Vec::new();
    for me in 0..spec.writers {
        tasks.push(tokio::spawn(writer(
            members.clone(),
            me,
            spec.batch,
            Arc::clone(&pool),
            Arc::clone(&log),
        )));
    }
    let mut runs = Vec::new();
    let result = async {
        for _ in 0..spec.runs {
            // Steady state: a write sent at least a second after the previous restart was
            // acknowledged (writes queued behind a rejoin may take longer), a known leader.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let settle = Instant::now();
            while first_ack_after(&log, settle).is_none() {
                if settle.elapsed() > spec.give_up {
                    return Err(FailoverError::Setup(format!(
                        "no write acknowledged within {:?} after the previous rejoin",
                        spec.give_up
                    )));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let victim = leader(&cluster)
                .await
                .ok_or_else(|| FailoverError::Setup("no node names the shard's leader".into()))?;
            let index = cluster
                .nodes
                .iter()
                .position(|n| n.id == victim)
                .ok_or_else(|| FailoverError::Setup(format!("leader {victim} is not a member")))?;
            let failed_before = log.failed.load(Ordering::Relaxed);
            log.failures.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let killed_at = Instant::now();
            let killed_unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            cluster.kill9(index);
            let gap = loop {
                if let Some(gap) = first_ack_after(&log, killed_at) {
                    break Some(gap);
                }
                if killed_at.elapsed() > spec.give_up {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            let failed_writes = log.failed.load(Ordering::Relaxed) - failed_before;
            let kinds = log.failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let restarted = Instant::now();
            tokio::task::block_in_place(|| cluster.restart(index))?;
            if !wait_all_active(&members[index], Duration::from_secs(60)).await {
                return Err(FailoverError::Setup(format!(
                    "node {victim} did not rejoin within 60 s"
                )));
            }
            let run = FailoverRun {
                victim,
                gap_ms: gap.map(|g| g.as_secs_f64() * 1e3),
                failed_writes,
                rejoin_ms: restarted.elapsed().as_secs_f64() * 1e3,
            };
            println!(
                "FAILOVER run={} victim={} killed_unix={killed_unix:.3} gap_ms={} failed_writes={} rejoin_ms={:.0}",
                runs.len() + 1,
                run.victim,
                run.gap_ms.map_or("none".into(), |g| format!("{g:.1}")),
                run.failed_writes,
                run.rejoin_ms
            );
            for (kind, n) in kinds {
                println!("#   {n} × {kind}");
            }
            runs.push(run);
        }
        Ok(())
    }
    .await;
    log.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    match result {
        Ok(()) => Ok(runs),
        // Keep what was measured: the rounds before a failed one are valid figures.
        Err(e) if !runs.is_empty() => {
            println!("FAILOVER stopped after {} runs: {e}", runs.len());
            Ok(runs)
        }
        Err(e) => Err(e),
    }
}
