//! vecraft-sim: a seeded, deterministic world (virtual time, network, disks, clients) that drives
//! the pure state machines of `vecraft-core`, injects faults, and checks every run.

pub mod history;
pub mod linearizability;
