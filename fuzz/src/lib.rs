//! Helpers shared by the fuzz targets: invariant checkers that outlive one step, and counters
//! that show whether a target reaches the state it was written to reach.

pub mod raft_check;
pub mod stats;
pub mod snapshot_forge;
pub mod inject;
