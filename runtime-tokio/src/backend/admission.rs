//! Admission control on apply load: which writes a node accepts, judged by the points it has
//! accepted and not yet answered. Why: the node's queues bound *requests*, but a request's cost
//! is its points (replication and HNSW inserts on the apply lanes). Without a bound, 32 clients
//! sending 2,000-point batches queued more work than the node could finish within the request
//! deadline, and every request timed out *in doubt* instead of some being refused at once.
//!
//! Two rules, both giving 503 with `Retry-After` (nothing happened; back off and retry):
//! - a static bound on points in flight (`max_points_in_flight`), which keeps memory bounded;
//! - a deadline rule: the node measures the rate at which it answers points while it has work
//!   ([`DrainRate`]), and refuses a write whose expected wait, (points in flight + its points) ÷
//!   that rate, exceeds [`QUEUE_BUDGET_SHARE`] of the write's deadline (Qdrant's `timeout`, else
//!   the node's own). So under saturation a write is refused in microseconds instead of failing
//!   in doubt seconds later, and the writes accepted finish within their deadline.
//!
//! A write is always admitted when nothing is in flight, so a node can never refuse everything
//! (the rate recovers from the writes it lets through).

use super::BackendError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default share of a write's deadline its expected wait in line may take; the rest is headroom
/// for the variance of a queue (elections, a slow fsync, a replica catching up).
pub const QUEUE_BUDGET_SHARE: f64 = 0.5;

/// Busy time over which one rate sample is taken.
pub const RATE_SAMPLE: Duration = Duration::from_millis(500);

/// The node's own write deadline when the client gives none (`NodeConfig::request_timeout`).
pub const NODE_DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// The points a node answers per second *while it has points in flight* (idle time does not
/// count, or a quiet minute would make the node refuse the next burst). An exponentially
/// weighted mean of samples over [`RATE_SAMPLE`] of busy time; a stall (busy, nothing answered)
/// is a sample of 0, so the estimate falls while the node cannot keep up.
#[derive(Debug, Clone, Default)]
pub struct DrainRate {
    /// Points per second; `None` until the first sample (then only the static bound applies).
    rate: Option<f64>,
    /// Busy time and points answered since the last sample.
    busy: Duration,
    answered: u64,
    /// When the points in flight last changed, and whether any were in flight since.
    last_change: Option<Instant>,
    busy_since_last_change: bool,
}

impl DrainRate {
    /// Accounts the time since the last change; `in_flight_before` is the count before this one.
    fn advance(&mut self, now: Instant, in_flight_before: u64) {
        if let Some(last) = self.last_change
            && in_flight_before > 0
        {
            self.busy += now.saturating_duration_since(last);
        }
        self.last_change = Some(now);
        self.busy_since_last_change = in_flight_before > 0;
        if self.busy >= RATE_SAMPLE {
            let sample = self.answered as f64 / self.busy.as_secs_f64();
            self.rate = Some(match self.rate {
                None => sample,
                Some(r) => 0.5 * r + 0.5 * sample,
            });
            self.busy = Duration::ZERO;
            self.answered = 0;
        }
    }

    /// `points` answered at `now`, with `in_flight_before` in flight just before.
    pub fn answered(&mut self, now: Instant, in_flight_before: u64, points: u64) {
        self.answered += points;
        self.advance(now, in_flight_before);
    }

    /// Points were admitted or released unanswered at `now`.
    pub fn changed(&mut self, now: Instant, in_flight_before: u64) {
        self.advance(now, in_flight_before);
    }

    /// The estimate, points per second.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// The expected wait of `points` behind `in_flight` at the current rate; `None` without an
    /// estimate. A rate of 0 (a stall) gives `Duration::MAX`.
    pub fn expected_wait(&self, in_flight: u64, points: u64) -> Option<Duration> {
        let rate = self.rate?;
        let work = in_flight.saturating_add(points) as f64;
        if rate <= 0.0 {
            return Some(Duration::MAX);
        }
        Some(Duration::try_from_secs_f64(work / rate).unwrap_or(Duration::MAX))
    }
}

/// The bounds and the points in flight, shared by every request of a node.
#[derive(Clone, Debug)]
pub struct PointsAdmission {
    limit: u64,
    in_flight: Arc<AtomicU64>,
    drain: Arc<Mutex<DrainRate>>,
    /// Share of a write's deadline its expected wait may take; 0 turns the deadline rule off
    /// (the static bound alone: `admission_wait_share_pct = 0`, and the tests' bug switch).
    wait_share: f64,
}

/// Points admitted; released when dropped (answered, failed or abandoned alike). Only a permit
/// marked [`Permit::answered`] counts towards the drain rate.
#[derive(Debug)]
pub struct Permit {
    points: u64,
    answered: bool,
    released: bool,
    in_flight: Arc<AtomicU64>,
    drain: Arc<Mutex<DrainRate>>,
}

impl Permit {
    /// The node answered these points (they count towards the rate when the permit drops).
    pub fn answered(&mut self) {
        self.answered = true;
    }

    /// Releases the points at `now` (dropping releases them at the current instant).
    pub fn release_at(mut self, now: Instant) {
        self.release(now);
    }

    fn release(&mut self, now: Instant) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let mut drain = self.drain.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.in_flight.fetch_sub(self.points, Ordering::AcqRel);
        if self.answered {
            drain.answered(now, before, self.points);
        } else {
            drain.changed(now, before);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release(Instant::now());
    }
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Beyond the static bound.
    Bound { in_flight: u64, limit: u64 },
    /// Its expected wait exceeds its share of the deadline.
    Wait { in_flight: u64, expected: Duration, budget: Duration },
}

impl From<Refusal> for BackendError {
    fn from(r: Refusal) -> BackendError {
        match r {
            Refusal::Bound { in_flight, limit } => BackendError::PointsInFlight { in_flight, limit },
            Refusal::Wait { in_flight, expected, budget } => BackendError::QueueWait {
                in_flight,
                expected_ms: expected.as_millis().min(u64::MAX as u128) as u64,
                budget_ms: budget.as_millis() as u64,
            },
        }
    }
}

impl PointsAdmission {
    /// At most `limit` points in flight (a larger single write is admitted only alone), and
    /// the deadline rule on.
    pub fn new(limit: u64) -> Self {
        PointsAdmission {
            limit: limit.max(1),
            in_flight: Arc::new(AtomicU64::new(0)),
            drain: Arc::default(),
            wait_share: QUEUE_BUDGET_SHARE,
        }
    }

    /// The deadline rule with `share` of the deadline (0: off, the static bound only).
    pub fn with_wait_share(mut self, share: f64) -> Self {
        debug_assert!((0.0..=1.0).contains(&share));
        self.wait_share = share;
        self
    }

    /// Admits `points` whose request must be answered within `deadline` (the client's, or
    /// [`NODE_DEFAULT_DEADLINE`]), or says why not.
    pub fn admit(&self, points: u64, deadline: Option<Duration>) -> Result<Permit, BackendError> {
        use crate::http::metrics::{ADMISSION_DRAIN_RATE, ADMISSION_POINTS_IN_FLIGHT, ADMISSION_REFUSED};
        let result = self.admit_at(Instant::now(), points, deadline);
        metrics::gauge!(ADMISSION_POINTS_IN_FLIGHT).set(self.in_flight() as f64);
        if let Some(rate) = self.rate() {
            metrics::gauge!(ADMISSION_DRAIN_RATE).set(rate);
        }
        result.map_err(|refusal| {
            let rule = match refusal {
                Refusal::Bound { .. } => "bound",
                Refusal::Wait { .. } => "wait",
            };
            metrics::counter!(ADMISSION_REFUSED, "rule" => rule).increment(1);
            refusal.into()
        })
    }

    /// [`PointsAdmission::admit`] at `now` (tests drive time).
    pub fn admit_at(&self, now: Instant, points: u64, deadline: Option<Duration>) -> Result<Permit, Refusal> {
        let budget = deadline.unwrap_or(NODE_DEFAULT_DEADLINE).mul_f64(self.wait_share);
        // The lock orders admissions with releases, so the rate sees every change in order.
        let mut drain = self.drain.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.in_flight.load(Ordering::Acquire);
        if before > 0 {
            if before.saturating_add(points) > self.limit {
                return Err(Refusal::Bound { in_flight: before, limit: self.limit });
            }
            if self.wait_share > 0.0
                && let Some(expected) = drain.expected_wait(before, points)
                && expected > budget
            {
                return Err(Refusal::Wait { in_flight: before, expected, budget });
            }
        }
        self.in_flight.fetch_add(points, Ordering::AcqRel);
        drain.changed(now, before);
        Ok(Permit { points, answered: false, released: false, in_flight: self.in_flight.clone(), drain: self.drain.clone() })
    }

    /// Points in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The measured drain rate, points per second.
    pub fn rate(&self) -> Option<f64> {
        self.drain.lock().unwrap_or_else(|p| p.into_inner()).rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_exact_and_permits_release_on_drop() {
        let a = PointsAdmission::new(100);
        let first = a.admit(60, None).unwrap();
        let at_bound = a.admit(40, None).unwrap();
        assert_eq!(a.in_flight(), 100);
        assert!(matches!(a.admit(1, None), Err(BackendError::PointsInFlight { in_flight: 100, limit: 100 })));
        drop(at_bound);
        assert!(matches!(a.admit(41, None), Err(BackendError::PointsInFlight { in_flight: 60, .. })));
        let again = a.admit(40, None).unwrap();
        drop((first, again));
        assert_eq!(a.in_flight(), 0);
        // A write larger than the bound goes alone, and then nothing else does.
        let big = a.admit(150, None).unwrap();
        assert!(a.admit(1, None).is_err());
        drop(big);
        assert_eq!(a.in_flight(), 0);
    }

    #[test]
    fn the_rate_counts_busy_time_only_and_answered_points_only() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut d = DrainRate::default();
        d.changed(ms(0), 0); // 0 -> 100 in flight
        d.answered(ms(400), 100, 100); // 100 answered after 400 ms busy: no sample yet
        assert_eq!(d.rate(), None);
        // Idle for ten seconds: not busy time.
        d.changed(ms(10_400), 0);
        // 100 more answered after 100 ms busy: 500 ms busy, 200 points, 400 points/s.
        d.answered(ms(10_500), 100, 100);
        assert_eq!(d.rate(), Some(400.0));
        // A stall: 500 ms busy, one unanswered release (a time-out), a sample of 0.
        d.changed(ms(10_600), 0);
        d.changed(ms(11_100), 50);
        assert_eq!(d.rate(), Some(200.0));
        assert_eq!(d.expected_wait(100, 100), Some(Duration::from_secs(1)));
        assert_eq!(DrainRate::default().expected_wait(1, 1), None);
    }

    /// An admission with a measured rate of `rate` points/s (samples taken with nothing left in
    /// flight).
    fn with_rate(rate: u64) -> (PointsAdmission, Instant) {
        let a = PointsAdmission::new(1_000_000);
        let t0 = Instant::now();
        let mut p = a.admit_at(t0, rate / 2, None).unwrap();
        p.answered();
        // Answered half a second later: `rate / 2` points in 500 ms.
        p.release_at(t0 + RATE_SAMPLE);
        assert_eq!(a.rate(), Some(rate as f64));
        (a, t0 + RATE_SAMPLE)
    }

    #[test]
    fn a_write_is_refused_exactly_when_its_expected_wait_exceeds_half_its_deadline() {
        // 1,000 points/s; the default deadline 5 s gives a 2.5 s budget = 2,500 points.
        let (a, now) = with_rate(1_000);
        let first = a.admit_at(now, 1_000, None).unwrap();
        // 1,000 + 1,500 = 2,500 points: 2.5 s, exactly the budget: admitted.
        let second = a.admit_at(now, 1_500, None).unwrap();
        // One point more is 2.501 s: refused, and nothing changed.
        let refused = a.admit_at(now, 1, None).unwrap_err();
        assert_eq!(
            refused,
            Refusal::Wait {
                in_flight: 2_500,
                expected: Duration::from_millis(2_501),
                budget: Duration::from_millis(2_500)
            }
        );
        assert_eq!(a.in_flight(), 2_500);
        // The client's own deadline sets the budget: 10 s admits 5,000 points in line.
        let third = a.admit_at(now, 2_500, Some(Duration::from_secs(10))).unwrap();
        assert!(a.admit_at(now, 1, Some(Duration::from_secs(10))).is_err());
        // A short deadline refuses what the default admits.
        drop(third);
        assert!(a.admit_at(now, 1, Some(Duration::from_secs(4))).is_err());
        drop((first, second));
        // Nothing in flight: admitted whatever the estimate says.
        let alone = a.admit_at(now, 100_000, Some(Duration::from_millis(1))).unwrap();
        drop(alone);
        // The bug switch: the static bound alone admits what the deadline rule refuses.
        let (b, now) = with_rate(1_000);
        let b = b.with_wait_share(0.0);
        let _x = b.admit_at(now, 2_500, None).unwrap();
        assert!(b.admit_at(now, 10_000, None).is_ok());
    }

    #[test]
    fn the_default_deadline_is_the_nodes() {
        let cfg = vecraft_core::node::NodeConfig::new(1, vec![1], 0);
        assert_eq!(NODE_DEFAULT_DEADLINE, cfg.request_timeout);
    }
}
