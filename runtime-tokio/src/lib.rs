//! vecraft-runtime: the production driver of the core state machines (files, sockets, timers).

pub mod snapshot_catalog;
pub mod transport;
pub mod wal;
