//! vecraft-sim: a seeded, deterministic world (virtual time, network, disks, clients) that drives
//! the pure state machines of `vecraft-core`, injects faults, and checks every run.
//!
//! Entry point: [`run::run_seed`]. A run derives its whole world from its seed
//! ([`config::SimConfig::from_seed`]), runs a fault phase and then a liveness phase, checks Raft
//! invariants on every step ([`invariants`]), checks the client history for linearizability
//! ([`linearizability`]) and hashes its trace so two runs of one seed can be compared.

pub mod config;
pub mod directed_faults;
pub mod history;
pub mod invariants;
pub mod kv;
pub mod linearizability;
pub mod node_world;
pub mod run;
pub mod world;
