//! The write loads: vecraft upserts of point batches and etcd puts, closed-loop, clients spread
//! round-robin over the members (client `i` talks to member `i % n`), as a load balancer in
//! front of either cluster would. Followers forward to leaders in both systems.

use super::http::{Answer, HttpError, KeepAlive};
use super::load::{LoadFigures, Outcome, run_closed_loop};
use super::workload::{
    ETCD_PUT_PATH, acknowledged, base64, etcd_put_body, etcd_put_ok, upsert_body, upsert_path,
};
use hyper::Method;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Failures reported on stderr so far (the first few of a run say *why* requests fail).
static FAILURES_SHOWN: AtomicUsize = AtomicUsize::new(0);

/// Prints the first few failed answers of the process to stderr.
fn show_failure(what: &str, answer: &Result<Answer, HttpError>) {
    if FAILURES_SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
        let text = match answer {
            Ok(a) => format!(
                "{} {}",
                a.status,
                String::from_utf8_lossy(&a.body[..a.body.len().min(300)])
            ),
            Err(e) => e.to_string(),
        };
        eprintln!("{what} failed: {text}");
    }
}

/// Per-request client timeout of the write loads (a request over it counts as failed).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Upserts of `batch` points (vectors from `pool`) into `collection` at `write_ack=quorum`,
/// `wait=true`, from `clients` clients for `duration`. Ids are unique per run: client `i`'s
/// request `seq` writes ids `id_base + (i << 32) + seq * batch ..`, so every point is an insert.
/// `timeout_param`: Qdrant's `timeout` query parameter (seconds), the node's deadline for each
/// request (without it the node keeps its own 5 s).
#[allow(clippy::too_many_arguments)]
pub async fn vecraft_upserts(
    members: &[String],
    collection: &str,
    clients: usize,
    batch: usize,
    duration: Duration,
    pool: Arc<Vec<String>>,
    id_base: u64,
    timeout_param: Option<u64>,
) -> LoadFigures {
    let mut path = upsert_path(collection);
    if let Some(t) = timeout_param {
        path.push_str(&format!("&timeout={t}"));
    }
    let path = Arc::new(path);
    let members = members.to_vec();
    run_closed_loop(
        clients,
        duration,
        Duration::from_millis(20),
        |i| {
            (
                KeepAlive::new(members[i % members.len()].clone(), WRITE_TIMEOUT),
                i as u64,
            )
        },
        move |(mut client, me): (KeepAlive, u64), seq| {
            let first = id_base + (me << 32) + seq * batch as u64;
            let body = upsert_body(first, batch, &pool);
            let path = Arc::clone(&path);
            async move {
                let a = client.request(Method::PUT, &path, body).await;
                let outcome = if acknowledged(&a) {
                    Outcome::Ok(batch as u64)
                } else if matches!(&a, Ok(answer) if answer.status == hyper::StatusCode::SERVICE_UNAVAILABLE) {
                    Outcome::Refused
                } else {
                    show_failure("vecraft upsert", &a);
                    Outcome::Failed
                };
                ((client, me), outcome)
            }
        },
    )
    .await
}

/// etcd puts of `value_len`-byte values under distinct keys, from `clients` clients for
/// `duration`, through the v3 JSON gateway (`/v3/kv/put`).
pub async fn etcd_puts(
    members: &[String],
    clients: usize,
    value_len: usize,
    duration: Duration,
) -> LoadFigures {
    let value: Vec<u8> = (0..value_len).map(|i| (i * 131 % 251) as u8).collect();
    let value = Arc::new(base64(&value));
    let members = members.to_vec();
    run_closed_loop(
        clients,
        duration,
        Duration::from_millis(20),
        |i| {
            (
                KeepAlive::new(members[i % members.len()].clone(), WRITE_TIMEOUT),
                i,
            )
        },
        move |(mut client, me): (KeepAlive, usize), seq| {
            let body = etcd_put_body(&format!("bench/{me}/{seq}"), &value);
            async move {
                let a = client.request(Method::POST, ETCD_PUT_PATH, body).await;
                let outcome = if etcd_put_ok(&a) {
                    Outcome::Ok(1)
                } else {
                    show_failure("etcd put", &a);
                    Outcome::Failed
                };
                ((client, me), outcome)
            }
        },
    )
    .await
}

/// Waits until a one-point upsert into `collection` (sent to each member in turn) is
/// acknowledged within `quick`, or `within` passes; returns how long that took. Between two
/// load runs this lets the previous run's backlog (writes the clients gave up on, still being
/// replicated and indexed) drain, so it is not billed to the next run.
pub async fn drain(
    members: &[String],
    collection: &str,
    pool: &[String],
    quick: Duration,
    within: Duration,
) -> Duration {
    let start = std::time::Instant::now();
    let path = upsert_path(collection);
    let mut i = 0;
    while start.elapsed() < within {
        let mut c = KeepAlive::new(members[i % members.len()].clone(), within);
        let t = std::time::Instant::now();
        let a = c
            .request(Method::PUT, &path, upsert_body(u64::MAX >> 2, 1, pool))
            .await;
        if acknowledged(&a) && t.elapsed() <= quick {
            break;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// Searches (`limit` 10, at `consistency`, or the node's default) of vectors from `pool` in
/// `collection`, from `clients` clients spread over the members for `duration`: the read side
/// of a mixed load, run beside [`vecraft_upserts`] to see what ingest does to query latency.
pub async fn vecraft_searches(
    members: &[String],
    collection: &str,
    clients: usize,
    duration: Duration,
    pool: Arc<Vec<String>>,
    consistency: Option<&str>,
) -> LoadFigures {
    let query = consistency.map_or(String::new(), |c| format!("?read_consistency={c}"));
    let path = Arc::new(format!("/collections/{collection}/points/search{query}"));
    let members = members.to_vec();
    run_closed_loop(
        clients,
        duration,
        Duration::from_millis(20),
        |i| (KeepAlive::new(members[i % members.len()].clone(), WRITE_TIMEOUT), i as u64),
        move |(mut client, me): (KeepAlive, u64), seq| {
            let v = &pool[((me * 7_919 + seq) % pool.len() as u64) as usize];
            let body = format!("{{\"vector\":{v},\"limit\":10}}");
            let path = Arc::clone(&path);
            async move {
                let a = client.request(Method::POST, &path, body).await;
                let outcome = match &a {
                    Ok(answer) if answer.status == hyper::StatusCode::OK => Outcome::Ok(1),
                    Ok(answer) if answer.status == hyper::StatusCode::SERVICE_UNAVAILABLE => Outcome::Refused,
                    _ => {
                        show_failure("vecraft search", &a);
                        Outcome::Failed
                    }
                };
                ((client, me), outcome)
            }
        },
    )
    .await
}
