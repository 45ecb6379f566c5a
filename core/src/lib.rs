//! vecraft-core: every protocol of vecraft as a pure, deterministic state machine.
//!
//! Nothing in this crate reads a clock, touches a file or socket, spawns a thread or uses a global
//! random number generator. Time, randomness and I/O completions are *inputs*; messages, writes and
//! responses are *outputs*. The simulator (`vecraft-sim`) and the tokio runtime drive the very same
//! code, which is what makes a failing seed replayable.

pub mod causality;
pub mod contract;
pub mod crdt;
pub mod node;
pub mod multiraft;
pub mod quorum;
pub mod raft;
pub mod vector;
pub mod wire;
