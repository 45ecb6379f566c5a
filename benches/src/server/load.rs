//! Closed-loop load: `clients` tasks, each issuing its next request as soon as the previous one
//! answered, for a fixed time; per-request latency of successful requests, counts of failures.
//!
//! Closed loop (not a fixed arrival rate) is what the issue's figures ask for ("16 concurrent
//! clients"): throughput at a given concurrency, with latency as seen by those clients.

use crate::measure::quantile;
use std::future::Future;
use std::time::{Duration, Instant};

/// What a request did, as the load generator counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged; carries how many items (points, keys) it wrote or read.
    Ok(u64),
    /// Refused or failed (counted, not timed).
    Failed,
    /// Refused at once with 503 (nothing happened: the server's back-off signal); counted as
    /// failed too.
    Refused,
}

/// Figures of one closed-loop run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadFigures {
    /// Concurrent clients.
    pub clients: usize,
    /// Wall time of the run, seconds.
    pub secs: f64,
    /// Acknowledged requests.
    pub ok: u64,
    /// Failed requests (refused ones included).
    pub failed: u64,
    /// Of those, refused at once with 503 (nothing written, not in doubt).
    pub refused: u64,
    /// Items in acknowledged requests.
    pub items: u64,
    /// Latency of acknowledged requests, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
}

impl LoadFigures {
    /// Acknowledged requests per second.
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.secs
    }

    /// Acknowledged items per second.
    pub fn items_per_s(&self) -> f64 {
        self.items as f64 / self.secs
    }

    /// Summarises per-client samples.
    pub fn from_samples(clients: usize, secs: f64, samples: Vec<ClientSamples>) -> Self {
        let mut lat: Vec<f64> = Vec::new();
        let (mut ok, mut failed, mut refused, mut items) = (0, 0, 0, 0);
        for s in samples {
            ok += s.latencies_ms.len() as u64;
            lat.extend(s.latencies_ms);
            failed += s.failed;
            refused += s.refused;
            items += s.items;
        }
        lat.sort_by(f64::total_cmp);
        let q = |p| {
            if lat.is_empty() {
                f64::NAN
            } else {
                quantile(&lat, p)
            }
        };
        LoadFigures {
            clients,
            secs,
            ok,
            failed,
            refused,
            items,
            p50_ms: q(0.5),
            p99_ms: q(0.99),
        }
    }
}

/// One client's record.
#[derive(Debug, Clone, Default)]
pub struct ClientSamples {
    /// Latency of each acknowledged request, ms.
    pub latencies_ms: Vec<f64>,
    /// Failed requests (refused ones included).
    pub failed: u64,
    /// Of those, refused with 503.
    pub refused: u64,
    /// Items acknowledged.
    pub items: u64,
}

/// Runs `clients` closed-loop clients for `duration`. `make(i)` builds client `i`'s state;
/// `step(state, seq)` issues one request (`seq` counts that client's requests from 0) and hands
/// the state (its connection) back with the outcome, so the future owns what it uses.
/// After a failure the client pauses `failure_pause` so a refusing server is not spun on.
pub async fn run_closed_loop<S, M, F, Fut>(
    clients: usize,
    duration: Duration,
    failure_pause: Duration,
    make: M,
    step: F,
) -> LoadFigures
where
    S: Send + 'static,
    M: Fn(usize) -> S,
    F: Fn(S, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = (S, Outcome)> + Send,
{
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut state = make(i);
        let step = step.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = ClientSamples::default();
            let mut seq = 0;
            while Instant::now() < end {
                let t = Instant::now();
                let (back, outcome) = step(state, seq).await;
                state = back;
                match outcome {
                    Outcome::Ok(n) => {
                        samples.latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
                        samples.items += n;
                    }
                    Outcome::Failed | Outcome::Refused => {
                        samples.failed += 1;
                        samples.refused += u64::from(outcome == Outcome::Refused);
                        tokio::time::sleep(failure_pause).await;
                    }
                }
                seq += 1;
            }
            samples
        }));
    }
    let mut samples = Vec::with_capacity(clients);
    for t in tasks {
        samples.push(t.await.unwrap_or_default());
    }
    LoadFigures::from_samples(clients, start.elapsed().as_secs_f64(), samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_count_and_rank_samples() {
        let a = ClientSamples {
            latencies_ms: vec![1.0, 3.0],
            failed: 1,
            refused: 1,
            items: 200,
        };
        let b = ClientSamples {
            latencies_ms: vec![2.0, 4.0],
            failed: 0,
            refused: 0,
            items: 200,
        };
        let f = LoadFigures::from_samples(2, 2.0, vec![a, b]);
        assert_eq!((f.ok, f.failed, f.refused, f.items), (4, 1, 1, 400));
        assert_eq!((f.rps(), f.items_per_s()), (2.0, 200.0));
        assert!(f.p50_ms >= 2.0 && f.p50_ms <= 3.0, "{}", f.p50_ms);
        assert!(f.p99_ms > 3.9 && f.p99_ms <= 4.0, "{}", f.p99_ms);
    }
}
