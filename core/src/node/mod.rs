//! The node: the one state machine per process that composes multi-Raft, replication, routing and
//! scatter-gather (see `../shared/design/architecture.md`, section 1).
//!
//! What is here so far are its pure building blocks: which shard holds a point
//! ([`sharding`]) and how the answers of many shards become one ([`scatter`]).

pub mod scatter;
pub mod sharding;
