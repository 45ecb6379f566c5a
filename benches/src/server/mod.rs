//! The server benchmark (`src/bin/server_bench.rs`): real `vecraft serve` processes on
//! loopback, measured against a real etcd cluster and against the engine in-process.
//!
//! - [`http`]: a keep-alive HTTP/1.1 client, the same for every server measured.
//! - [`load`]: closed-loop clients and their figures (requests/s, items/s, p50/p99).
//! - [`procs`]: vecraft and etcd clusters of child processes (kill -9, restart).
//! - [`workload`]: request bodies (point batches, etcd puts) and REST helpers.
//! - [`writes`]: the write loads on either cluster.
//! - [`rest_overhead`]: REST search versus in-process search.
//! - [`failover`]: kill -9 of a shard leader under load, time to the next acknowledged write.
//! - [`on_disk_memory`]: the server's memory per point with `vectors.on_disk` and int8 codes.

pub mod failover;
pub mod http;
pub mod load;
pub mod on_disk_memory;
pub mod procs;
pub mod rest_overhead;
pub mod workload;
pub mod writes;
