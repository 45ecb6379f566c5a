//! Shared code for vecraft's benchmarks and the benchmark harness.
//!
//! The ANN harness (`src/bin/ann_harness/`) is built from these pieces so each can be tested on
//! its own: [`texmex`] reads and writes the `.fvecs`/`.ivecs` formats SIFT1M and friends ship in,
//! [`synthetic`] makes clustered data, [`ground_truth`] computes exact neighbours, [`measure`]
//! runs queries through the engine's `AnnIndex` trait, [`snapshot_bench`] measures snapshot size
//! and write/verify/restore throughput, [`mapped_memory`] reads the resident bytes of mapped
//! vector files, [`report`] formats, parses and compares results (ours and the peers'), and [`rounds`] alternates ours and the peers over several measurement rounds. [`server`] drives real `vecraft` processes for the server
//! benchmark (`src/bin/server_bench.rs`).

pub mod ground_truth;
pub mod mapped_memory;
pub mod measure;
pub mod report;
pub mod rounds;
pub mod server;
pub mod snapshot_bench;
pub mod synthetic;
pub mod texmex;
