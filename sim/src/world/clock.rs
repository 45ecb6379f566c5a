//! Per-node clocks: a drifting monotonic clock and a jumping wall clock.
//!
//! Real servers have two clocks and both lie differently. The monotonic clock (what `now` means to
//! a state machine: timeouts, leases) never goes backwards but runs at a slightly wrong rate; the
//! protocol is told the bound on that rate error and must stay safe within it. The wall clock
//! (what NTP steers: HLC timestamps, change-stream times, snapshot names) may jump forwards or
//! backwards by seconds when it is stepped. Raft does not read wall time yet, so the wall clock is
//! modelled and exposed by the host ([`super::World::wall_clock`]) for the protocols that will.

use vecraft_core::contract::Time;

/// One node's pair of clocks, as functions of true virtual time (nanoseconds).
#[derive(Clone, Debug)]
pub struct NodeClock {
    /// Monotonic rate relative to true time (1.0 ± drift, drift within the configured bound).
    rate: f64,
    /// Monotonic reading at true time zero (nodes do not agree on an epoch).
    offset: u64,
    /// Wall clock minus true time, in nanoseconds; changed by jumps.
    wall_skew: i64,
}

/// Wall time at true time zero: 2026-01-01T00:00:00Z, so readings look like real timestamps.
const WALL_EPOCH_NANOS: i64 = 1_767_225_600 * 1_000_000_000;

impl NodeClock {
    /// A clock running at `rate` whose monotonic reading starts at `offset`.
    pub fn new(rate: f64, offset: u64) -> NodeClock {
        NodeClock { rate, offset, wall_skew: 0 }
    }

    /// The monotonic reading at true time `true_now`.
    pub fn monotonic(&self, true_now: u64) -> Time {
        Time(self.offset + (true_now as f64 * self.rate) as u64)
    }

    /// The wall-clock reading (nanoseconds since the Unix epoch) at true time `true_now`. It drifts
    /// with the monotonic rate between jumps and moves by each jump's amount at once.
    pub fn wall(&self, true_now: u64) -> i64 {
        WALL_EPOCH_NANOS + (true_now as f64 * self.rate) as i64 + self.wall_skew
    }

    /// Steps the wall clock by `by` nanoseconds (negative = backwards), as a careless NTP step or
    /// an operator setting the time does.
    pub fn jump(&mut self, by: i64) {
        self.wall_skew = self.wall_skew.saturating_add(by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_drifts_and_wall_jumps_both_ways() {
        let mut c = NodeClock::new(1.01, 5);
        assert_eq!(c.monotonic(1_000_000_000), Time(5 + 1_010_000_000));
        let before = c.wall(1_000);
        c.jump(-3_000_000_000);
        assert_eq!(c.wall(1_000), before - 3_000_000_000);
        // The monotonic clock is untouched by wall jumps.
        assert_eq!(c.monotonic(1_000_000_000), Time(5 + 1_010_000_000));
    }
}
