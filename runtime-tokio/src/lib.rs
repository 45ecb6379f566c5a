//! vecraft-runtime: the production driver of the core state machines (files, sockets, timers).

pub mod backend;
pub mod cli;
pub mod config;
pub mod http;
pub mod mmap_vectors;
pub mod node_loop;
pub mod snapshot_catalog;
pub use vecraft_transport as transport;
pub mod wal;
