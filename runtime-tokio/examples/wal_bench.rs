//! WAL micro-benchmark: records/s and per-batch write+fdatasync latency.
//!
//! ```text
//! cargo run --release -p vecraft-runtime --example wal_bench [DIR] [RECORD_BYTES]
//! ```
//! Part 1 drives the synchronous core with fixed batch sizes (one write + one fdatasync per
//! batch). Part 2 drives the async front with one producer appending as fast as the bounded
//! queue allows, showing the batch sizes group commit forms by itself.

use std::time::{Duration, Instant};
use vecraft_runtime::wal::{Wal, WalOptions, spawn_writer};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let record_bytes: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(256);
    let tmp = tempfile::tempdir_in(&base).expect("temp dir");
    println!(
        "wal_bench: dir {}, {record_bytes}-byte records",
        tmp.path().display()
    );
    println!(
        "{:>6} {:>8} {:>12} {:>10} {:>10} {:>10}",
        "batch", "batches", "records/s", "MB/s", "p50", "p99"
    );
    let payload = vec![0xA5u8; record_bytes];
    for (i, batch) in [1usize, 8, 64, 512].into_iter().enumerate() {
        let dir = tmp.path().join(format!("sync-{i}"));
        let (mut wal, _) = Wal::open(&dir, WalOptions::default()).expect("open wal");
        let payloads = vec![payload.clone(); batch];
        let mut lat = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) && lat.len() < 2000 {
            let t = Instant::now();
            wal.append_batch(&payloads).expect("append");
            lat.push(t.elapsed());
        }
        let secs = start.elapsed().as_secs_f64();
        let records = (lat.len() * batch) as f64;
        lat.sort();
        println!(
            "{batch:>6} {:>8} {:>12.0} {:>10.2} {:>10.2?} {:>10.2?}",
            lat.len(),
            records / secs,
            records * (record_bytes + 16) as f64 / secs / 1e6,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (wal, _) = Wal::open(tmp.path().join("async"), WalOptions::default()).expect("open wal");
        let (mut handle, join) = spawn_writer(wal, 4096, 4096).expect("spawn writer");
        let total = 100_000u64;
        let start = Instant::now();
        let mut last = 0;
        for _ in 0..total {
            last = handle.append(payload.clone()).await.expect("append");
        }
        handle.wait_durable(last).await.expect("durable");
        let secs = start.elapsed().as_secs_f64();
        let d = handle.durable().borrow().clone();
        println!(
            "async front: {total} records in {secs:.2} s = {:.0} records/s, {} fsyncs, mean batch {:.1} records",
            total as f64 / secs,
            d.batches,
            d.records as f64 / d.batches.max(1) as f64
        );
        drop(handle);
        join.join().expect("writer thread");
    });
}
