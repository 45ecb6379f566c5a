//! The `memory` phase: what `vectors.on_disk` saves in a running server. One fresh one-node
//! `vecraft serve` per variant (f32 or int8 codes, vectors in RAM or on disk), the same seeded
//! points upserted through REST, then the process's memory read from `/proc/<pid>`: anonymous
//! resident bytes (heap and stacks: what the vectors cost when they are in RAM) and the resident
//! bytes of its mappings of `<data dir>/vectors` (page cache the searches pulled in: memory too,
//! but evictable), each per point over a baseline taken after the collection was created. Then
//! sequential searches for stored points (each must find itself first) and the figures again.
//!
//! The nodes keep no change-stream history and compact their Raft logs every 64 entries: a log holds its entries' bytes (the
//! upserted vectors) in memory until compacted, which would otherwise hide what the engine keeps.
//! A compaction snapshots the shard (linking its deferred points first), so upserts get a long
//! `timeout`.

use super::http::KeepAlive;
use super::procs::VecraftCluster;
use crate::mapped_memory::sum_mappings;
use anyhow::{Context, bail};
use hyper::Method;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// What one run measures.
#[derive(Clone, Copy, Debug)]
pub struct OnDiskMemorySpec {
    /// Points upserted.
    pub points: usize,
    /// Their dimension.
    pub dim: usize,
    /// Points per upsert.
    pub batch: usize,
    /// Searches after the ingest (each for a stored point).
    pub queries: usize,
}

/// One server configuration.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// `vectors.on_disk`.
    pub on_disk: bool,
    /// Scalar int8 codes (`quantization_config`), searched with rescoring.
    pub int8: bool,
}

impl Variant {
    /// The four variants, in the order reported.
    pub const ALL: [Variant; 4] = [
        Variant { on_disk: false, int8: false },
        Variant { on_disk: true, int8: false },
        Variant { on_disk: false, int8: true },
        Variant { on_disk: true, int8: true },
    ];

    /// Its name in the report.
    pub fn name(&self) -> String {
        format!("{}_{}", if self.int8 { "int8" } else { "f32" }, if self.on_disk { "on_disk" } else { "in_ram" })
    }
}

/// Memory of the server process at one moment, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessMemory {
    /// `RssAnon` of `/proc/<pid>/status`.
    pub anon: u64,
    /// Resident bytes of its mappings of files under `<data dir>/vectors`.
    pub vector_files: u64,
}

/// What one variant cost.
#[derive(Clone, Copy, Debug)]
pub struct VariantFigures {
    /// The variant.
    pub variant: Variant,
    /// Anonymous resident bytes per point over the baseline, after the ingest.
    pub anon_per_point: f64,
    /// Mapped vector-file resident bytes per point after the ingest.
    pub files_per_point_after_ingest: f64,
    /// The same two after the searches.
    pub anon_per_point_after_queries: f64,
    /// Mapped vector-file resident bytes per point after the searches.
    pub files_per_point_after_queries: f64,
    /// Searches per second, one client, sequential (a rough figure: REST round trips included).
    pub qps: f64,
    /// Share of the searches that found their own point first.
    pub self_first: f64,
}

fn memory_of(pid: u32, vectors_dir: &Path) -> anyhow::Result<ProcessMemory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("read /proc/<pid>/status")?;
    let anon = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .context("no RssAnon in /proc/<pid>/status")?
        * 1024;
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).context("read /proc/<pid>/smaps")?;
    let dir = vectors_dir.canonicalize().unwrap_or_else(|_| vectors_dir.to_path_buf());
    let vector_files = sum_mappings(&smaps, &dir.to_string_lossy()).rss;
    Ok(ProcessMemory { anon, vector_files })
}

/// The seeded vector of point `id` (components uniform in [-1, 1)).
fn vector(id: usize, dim: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x000D_15CF_11E5 ^ id as u64);
    (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

async fn send(client: &mut KeepAlive, method: Method, path: &str, body: String) -> anyhow::Result<serde_json::Value> {
    let a = client.request(method, path, body).await.map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    if !a.status.is_success() {
        bail!("{path}: {} {}", a.status, String::from_utf8_lossy(&a.body));
    }
    Ok(a.json())
}

/// Runs one variant on a fresh node under `dir`.
pub async fn measure(binary: &Path, dir: &Path, spec: OnDiskMemorySpec, variant: Variant) -> anyhow::Result<VariantFigures> {
    let env = [
        ("VECRAFT_RAFT_SNAPSHOT_ENTRIES", "64"),
        ("VECRAFT_RAFT_SNAPSHOT_KEEP_ENTRIES", "4"),
        // The change stream's history (default 64 MiB of applied commands) is a bounded buffer,
        // not a cost per point: left on, it would dominate a run of this size.
        ("VECRAFT_CHANGE_HISTORY_BYTES", "0"),
    ];
    let cluster = VecraftCluster::start_with_env(binary, dir, 1, &env)?;
    let node = &cluster.nodes[0];
    let pid = node.pid().context("node not running")?;
    let vectors_dir = node.data.join("vectors");
    let mut client = KeepAlive::new(node.http.clone(), Duration::from_secs(120));
    let mut create = json!({
        "vectors": {"size": spec.dim, "distance": "Cosine", "on_disk": variant.on_disk},
        "hnsw_config": {"m": 16, "ef_construct": 100},
    });
    if variant.int8 {
        create["quantization_config"] = json!({"scalar": {"type": "int8", "always_ram": true}});
    }
    send(&mut client, Method::PUT, "/collections/m", create.to_string()).await?;
    let base = memory_of(pid, &vectors_dir)?;
    for first in (0..spec.points).step_by(spec.batch.max(1)) {
        let ids = first..(first + spec.batch).min(spec.points);
        let points: Vec<_> = ids.map(|i| json!({"id": i, "vector": vector(i, spec.dim)})).collect();
        send(&mut client, Method::PUT, "/collections/m/points?wait=true&timeout=120", json!({"points": points}).to_string()).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        // A busy shard (linking, snapshotting) may answer 503 for a moment: ask again.
        match send(&mut client, Method::GET, "/collections/m", String::new()).await {
            Ok(info) if info["result"]["status"] == "green" => break,
            Ok(_) => {}
            Err(e) if Instant::now() > deadline => bail!("collection not indexed within 600 s: {e}"),
            Err(_) => {}
        }
        if Instant::now() > deadline {
            bail!("collection not indexed within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ingested = memory_of(pid, &vectors_dir)?;
    let mut found_self = 0;
    let start = Instant::now();
    for q in 0..spec.queries {
        let id = (q * 7919) % spec.points;
        let body = json!({"vector": vector(id, spec.dim), "limit": 10, "params": {"hnsw_ef": 64}});
        let answer = send(&mut client, Method::POST, "/collections/m/points/search", body.to_string()).await?;
        if answer["result"][0]["id"] == json!(id) {
            found_self += 1;
        }
    }
    let qps = spec.queries as f64 / start.elapsed().as_secs_f64();
    let queried = memory_of(pid, &vectors_dir)?;
    let per_point = |bytes: u64| bytes as f64 / spec.points as f64;
    Ok(VariantFigures {
        variant,
        anon_per_point: per_point(ingested.anon.saturating_sub(base.anon)),
        files_per_point_after_ingest: per_point(ingested.vector_files),
        anon_per_point_after_queries: per_point(queried.anon.saturating_sub(base.anon)),
        files_per_point_after_queries: per_point(queried.vector_files),
        qps,
        self_first: found_self as f64 / spec.queries.max(1) as f64,
    })
}
