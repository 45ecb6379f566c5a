//! The node: the one state machine per process that composes multi-Raft, the metadata group,
//! replicated sharded collections, request routing and scatter-gather (see
//! `../shared/design/architecture.md`, section 1). The simulator and the runtime drive only
//! [`Node`], through `step(now, input, &mut out)` and [`Node::next_deadline`].
//!
//! * [`metadata`]: the metadata group's state machine (collections, shard placement);
//! * [`vector_settings`]: quantization and `on_disk` as the shards use them (changed in their logs);
//! * [`shard`]: shard commands and queries, applied and answered by the driver's engines;
//! * [`sharding`]: which shard holds a point; [`scatter`]: merging shard answers;
//! * [`request`]: client requests, write-ack and read levels and what they guarantee;
//! * [`message`]: what nodes send each other; [`router`]: replica choice for reads;
//! * `machine.rs` (the step loop), `serve.rs` (parts served here), `origin.rs` (requests split
//!   into parts, routed and retried), `gather.rs` (answers gathered into one reply),
//!   `name_barrier.rs` (names resolved at a metadata index the metadata leader confirmed).

pub mod field_index;
mod gather;
mod io;
mod machine;
pub mod message;
pub mod metadata;
mod name_barrier;
pub mod vector_settings;
mod origin;
pub mod request;
pub mod router;
pub mod scatter;
mod serve;
pub mod shard;
pub mod shard_export;
pub mod sharding;

pub use io::{NodeBugs, NodeConfig, NodeInput, NodeOutput};
pub use machine::{Node, NodeStats};
pub use name_barrier::INTERNAL_CLIENTS;
