//! Many Raft groups on one node (multi-Raft), as one deterministic state machine.
//!
//! [`MultiRaft`] hosts any number of [`crate::raft::RaftNode`]s, created and removed at run time
//! and routed by [`crate::raft::GroupId`]. Toward its driver it is one machine with the usual
//! contract (`step(now, input, &mut out)` and [`MultiRaft::next_deadline`]):
//!
//! * one [`Envelope`] per destination node per step, carrying every group's messages, with
//!   heartbeats and their acknowledgements coalesced into compact per-group entries
//!   (`envelope.rs`);
//! * one persist batch per step for all groups, under a node-level sequence number that is mapped
//!   back to each group's own `Persisted` seq (`persist.rs`);
//! * timers of awake groups kept in an ordered set aligned to a tick grid, so an idle node costs
//!   nothing per group (`schedule.rs`), and idle groups quiesce (`raft/quiesce.rs`);
//! * routing, group lifecycle and failure-detector input in `host.rs`.

mod envelope;
mod host;
mod io;
mod persist;
mod schedule;

pub use envelope::{Envelope, Heartbeat, HeartbeatAck};
pub use host::{HostStats, MultiRaft};
pub use io::{MultiRaftConfig, MultiRaftInput, MultiRaftOutput};
