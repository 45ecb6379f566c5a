//! Admission control on apply load: a bound on the points a node has accepted for writing and
//! not yet answered. Why: the node's queues bound *requests*, but a request's cost is its
//! points (HNSW inserts on the apply lanes). Without this, 32 clients sending 2,000-point
//! batches queued more work than the apply lanes could finish within the request deadline,
//! and every request timed out (in doubt) instead of some being refused at once. Beyond the
//! bound a write gets 503 with `Retry-After` (nothing happened; back off and retry), so the
//! node keeps answering the writes it accepted within their deadline.

use super::BackendError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The bound and the points in flight, shared by every request of a node.
#[derive(Clone, Debug)]
pub struct PointsAdmission {
    limit: u64,
    in_flight: Arc<AtomicU64>,
}

/// Points admitted; released when dropped (answered, failed or abandoned alike).
#[derive(Debug)]
pub struct Permit {
    points: u64,
    in_flight: Arc<AtomicU64>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(self.points, Ordering::AcqRel);
    }
}

impl PointsAdmission {
    /// At most `limit` points in flight (a larger single write is admitted only alone).
    pub fn new(limit: u64) -> Self {
        PointsAdmission { limit: limit.max(1), in_flight: Arc::new(AtomicU64::new(0)) }
    }

    /// Admits `points` if they fit beside those in flight (or nothing is in flight), else
    /// refuses with `Overloaded` naming the load.
    pub fn admit(&self, points: u64) -> Result<Permit, BackendError> {
        let mut now = self.in_flight.load(Ordering::Acquire);
        loop {
            if now > 0 && now.saturating_add(points) > self.limit {
                return Err(BackendError::PointsInFlight { in_flight: now, limit: self.limit });
            }
            match self.in_flight.compare_exchange_weak(now, now + points, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(Permit { points, in_flight: self.in_flight.clone() }),
                Err(actual) => now = actual,
            }
        }
    }

    /// Points in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_exact_and_permits_release_on_drop() {
        let a = PointsAdmission::new(100);
        let first = a.admit(60).unwrap();
        let at_bound = a.admit(40).unwrap();
        assert_eq!(a.in_flight(), 100);
        assert!(matches!(a.admit(1), Err(BackendError::PointsInFlight { in_flight: 100, limit: 100 })));
        drop(at_bound);
        assert!(matches!(a.admit(41), Err(BackendError::PointsInFlight { in_flight: 60, .. })));
        let again = a.admit(40).unwrap();
        drop((first, again));
        assert_eq!(a.in_flight(), 0);
        // A write larger than the bound goes alone, and then nothing else does.
        let big = a.admit(150).unwrap();
        assert!(a.admit(1).is_err());
        drop(big);
        assert_eq!(a.in_flight(), 0);
    }
}
