//! Hybrid logical clocks (Kulkarni et al., "Logical Physical Clocks"): timestamps that stay close to
//! wall-clock time yet never go backwards and always order a message's receipt after its sending.
//! They give last-write-wins a total order that respects causality between nodes that talk.
//!
//! The physical reading is an *input* (milliseconds of some wall clock, supplied by the caller):
//! this module never reads a clock, so the simulator can drive it with skewed and backwards clocks.

use crate::contract::NodeId;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A hybrid timestamp. The derived total order compares wall time, then the logical counter, then
/// the node id as tie-breaker, so two distinct nodes never produce equal timestamps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HlcTimestamp {
    /// The largest wall-clock reading (milliseconds) known when the timestamp was made.
    pub wall_millis: u64,
    /// Events seen since `wall_millis` last advanced; orders events within one millisecond.
    pub logical: u32,
    /// The node that issued the timestamp: the final tie-breaker.
    pub node: NodeId,
}

/// Why a hybrid clock refused to advance. The clock's state is unchanged when an error is returned.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HlcError {
    /// A remote timestamp is further ahead of our physical clock than the configured bound; accepting
    /// it would drag our clock (and every later last-write-wins decision) into the future.
    #[error(
        "remote timestamp {remote_wall_millis} ms is more than {max_drift_millis} ms ahead of local \
         physical time {local_physical_millis} ms"
    )]
    DriftExceeded { remote_wall_millis: u64, local_physical_millis: u64, max_drift_millis: u64 },
    /// More than `u32::MAX` events in one millisecond without the wall clock moving: the logical
    /// counter would wrap and break monotonicity.
    #[error("logical counter overflow at wall time {wall_millis} ms")]
    LogicalOverflow { wall_millis: u64 },
}

/// One node's hybrid logical clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HybridClock {
    node: NodeId,
    max_drift_millis: u64,
    last: HlcTimestamp,
}

impl HybridClock {
    /// A clock for `node` that rejects remote timestamps more than `max_drift_millis` ahead of the
    /// local physical reading.
    pub fn new(node: NodeId, max_drift_millis: u64) -> Self {
        HybridClock { node, max_drift_millis, last: HlcTimestamp { wall_millis: 0, logical: 0, node } }
    }

    /// Restores a clock after a restart from the last timestamp it issued (persisted by the caller),
    /// so it cannot reissue timestamps it already handed out.
    pub fn resume(node: NodeId, max_drift_millis: u64, last_issued: HlcTimestamp) -> Self {
        HybridClock { node, max_drift_millis, last: HlcTimestamp { node, ..last_issued } }
    }

    /// The most recent timestamp issued or observed (re-stamped with this node's id).
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// The node this clock belongs to.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Issues a timestamp for a local event or an outgoing message, given the current physical
    /// reading. Strictly greater than every timestamp this clock issued or observed before, even if
    /// `physical_millis` went backwards.
    pub fn now(&mut self, physical_millis: u64) -> Result<HlcTimestamp, HlcError> {
        let next = if physical_millis > self.last.wall_millis {
            HlcTimestamp { wall_millis: physical_millis, logical: 0, node: self.node }
        } else {
            let logical = self
                .last
                .logical
                .checked_add(1)
                .ok_or(HlcError::LogicalOverflow { wall_millis: self.last.wall_millis })?;
            HlcTimestamp { wall_millis: self.last.wall_millis, logical, node: self.node }
        };
        debug_assert!(next > self.last);
        self.last = next;
        Ok(next)
    }

    /// Merges a timestamp received from another node and issues the receipt's timestamp, which is
    /// strictly greater than both `remote` and everything this clock issued before. Rejects (with no
    /// state change) a `remote` whose wall time is more than the drift bound ahead of
    /// `physical_millis`.
    pub fn observe(&mut self, remote: HlcTimestamp, physical_millis: u64) -> Result<HlcTimestamp, HlcError> {
        if remote.wall_millis > physical_millis.saturating_add(self.max_drift_millis) {
            return Err(HlcError::DriftExceeded {
                remote_wall_millis: remote.wall_millis,
                local_physical_millis: physical_millis,
                max_drift_millis: self.max_drift_millis,
            });
        }
        let wall = physical_millis.max(self.last.wall_millis).max(remote.wall_millis);
        let base = match (wall == self.last.wall_millis, wall == remote.wall_millis) {
            (true, true) => Some(self.last.logical.max(remote.logical)),
            (true, false) => Some(self.last.logical),
            (false, true) => Some(remote.logical),
            (false, false) => None,
        };
        let logical = match base {
            None => 0,
            Some(l) => l.checked_add(1).ok_or(HlcError::LogicalOverflow { wall_millis: wall })?,
        };
        let next = HlcTimestamp { wall_millis: wall, logical, node: self.node };
        debug_assert!(next > self.last && (next.wall_millis, next.logical) > (remote.wall_millis, remote.logical));
        self.last = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn monotonic_when_physical_clock_goes_backwards() {
        let mut clock = HybridClock::new(1, 1_000);
        let t1 = clock.now(10_000).unwrap();
        let t2 = clock.now(5_000).unwrap(); // NTP stepped the clock back five seconds
        let t3 = clock.now(5_001).unwrap();
        assert!(t1 < t2 && t2 < t3);
        assert_eq!((t2.wall_millis, t2.logical), (10_000, 1));
        assert_eq!((t3.wall_millis, t3.logical), (10_000, 2));
        let t4 = clock.now(10_001).unwrap();
        assert_eq!((t4.wall_millis, t4.logical), (10_001, 0));
    }

    #[test]
    fn receipt_is_after_send_and_drift_is_bounded() {
        let mut a = HybridClock::new(1, 500);
        let mut b = HybridClock::new(2, 500);
        let sent = a.now(2_000).unwrap();
        // b's physical clock is 300 ms behind: still within the drift bound.
        let received = b.observe(sent, 1_700).unwrap();
        assert!(received > sent);
        assert_eq!((received.wall_millis, received.logical, received.node), (2_000, 1, 2));
        // A timestamp 501 ms ahead is refused and leaves the clock untouched.
        let before = b.clone();
        let far = HlcTimestamp { wall_millis: 2_201, logical: 0, node: 1 };
        assert_eq!(
            b.observe(far, 1_700),
            Err(HlcError::DriftExceeded {
                remote_wall_millis: 2_201,
                local_physical_millis: 1_700,
                max_drift_millis: 500
            })
        );
        assert_eq!(b, before);
    }

    #[test]
    fn node_id_breaks_ties_and_overflow_is_an_error() {
        let mut a = HybridClock::new(1, 0);
        let mut b = HybridClock::new(2, 0);
        let ta = a.now(7).unwrap();
        let tb = b.now(7).unwrap();
        assert!(ta < tb && ta != tb);
        let mut full = HybridClock::resume(3, 0, HlcTimestamp { wall_millis: 9, logical: u32::MAX, node: 99 });
        assert_eq!(full.now(9), Err(HlcError::LogicalOverflow { wall_millis: 9 }));
        assert_eq!(full.now(10).unwrap().logical, 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any interleaving of local events and receipts, under any physical readings, yields a
        /// strictly increasing sequence that stays within drift of the largest physical reading.
        #[test]
        fn strictly_monotonic_under_any_physical_readings(
            events in prop::collection::vec((any::<bool>(), 0u64..1_000, 0u64..1_200, 0u32..3), 1..64)
        ) {
            let mut clock = HybridClock::new(1, 100);
            let mut prev = clock.last();
            let mut max_physical = 0;
            for (local, physical, remote_wall, remote_logical) in events {
                max_physical = max_physical.max(physical);
                let result = if local {
                    clock.now(physical)
                } else {
                    let remote = HlcTimestamp { wall_millis: remote_wall, logical: remote_logical, node: 2 };
                    let r = clock.observe(remote, physical);
                    match &r {
                        Ok(t) => prop_assert!(*t > remote),
                        Err(HlcError::DriftExceeded { .. }) => prop_assert!(remote_wall > physical + 100),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                    r
                };
                if let Ok(t) = result {
                    prop_assert!(t > prev);
                    prop_assert!(t.wall_millis <= max_physical + 100);
                    prev = t;
                }
                prop_assert_eq!(clock.last(), prev);
            }
        }
    }
}
