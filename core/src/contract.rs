//! The one contract every vecraft protocol follows.
//!
//! A protocol is a value that changes only when an input is stepped into it. Inputs carry the
//! current time (the node's own clock reading, possibly drifted), so the protocol never reads a
//! clock; outputs are plain data the driver acts on (send bytes, persist records, answer clients).
//! The deterministic simulator and the tokio runtime are two drivers of the same values.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Identifies a node (a process holding replicas) everywhere in the cluster.
pub type NodeId = u64;

/// A reading of some node's clock, in nanoseconds since an arbitrary per-node epoch.
///
/// It is only ever compared with readings of the *same* node's clock; clocks of different nodes may
/// drift apart and protocols must not assume otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Time(pub u64);

impl Time {
    /// The epoch of a clock.
    pub const ZERO: Time = Time(0);

    /// Builds a reading from whole milliseconds (handy in tests and configs).
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms * 1_000_000)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, zero if `earlier` is in the future (clocks may be compared
    /// across a restart that reset nothing, but never go backwards within one process).
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Time {
    type Output = Time;
    fn add(self, rhs: Duration) -> Time {
        Time(self.0.saturating_add(rhs.as_nanos().min(u64::MAX as u128) as u64))
    }
}

/// A deterministic protocol state machine.
///
/// `step` is the only way in. It must be a pure function of the machine's state, `now` and
/// `input`: same state + same inputs => same outputs, bit for bit. Randomness comes from a seeded
/// generator the machine owns (seeded from its configuration), never from the environment.
pub trait StateMachine {
    /// Everything that can happen to the machine: a message, a tick, a client request, an I/O
    /// completion such as "persisted up to N".
    type Input;
    /// Everything the machine asks its driver to do.
    type Output;

    /// Advance the machine by one input observed at `now`, appending its reactions to `out`.
    fn step(&mut self, now: Time, input: Self::Input, out: &mut Vec<Self::Output>);
}
