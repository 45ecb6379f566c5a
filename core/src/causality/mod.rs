//! Causality tracking for leaderless replication: vector clocks, hybrid logical clocks and dotted
//! version vectors.
//!
//! - [`VectorClock`]: is one version's history contained in another's, or are they concurrent?
//! - [`HybridClock`] / [`HlcTimestamp`]: a total order close to wall time for last-write-wins.
//! - [`Dot`] / [`CausalContext`]: unique event ids and compact sets of them, the metadata of the
//!   delta-state CRDTs in [`crate::crdt`].
//! - [`DvvSet`]: per-key siblings with dotted version vectors.

mod dot;
mod dvv;
mod hlc;
mod vector_clock;

pub use dot::{CausalContext, Dot};
pub use dvv::DvvSet;
pub use hlc::{HlcError, HlcTimestamp, HybridClock};
pub use vector_clock::{CausalOrder, VectorClock};

use thiserror::Error;

/// Decoded causal metadata that breaks an invariant (corrupt or hostile bytes). Raised at decode
/// time so the rest of the code can rely on the invariants.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InvalidCausalState {
    /// A stored value's dot is not covered by the causal context that should include it.
    #[error("dot {0:?} is not covered by the causal context")]
    DotOutsideContext(Dot),
    /// The same dot tags two different stored entries, so it no longer identifies one event.
    #[error("dot {0:?} appears more than once in the store")]
    DuplicateDot(Dot),
}
