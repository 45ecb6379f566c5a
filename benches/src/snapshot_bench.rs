//! Snapshot figures at the engine level: load a collection through `VectorEngine`, write a full
//! snapshot in the real format (`vecraft_core::vector::snapshot`), verify and restore it, then
//! churn a few points and write, restore and check an incremental snapshot on top.
//!
//! Everything goes through the public engine API the runtime uses, so the figures include what a
//! node pays: postcard encoding, zstd, blake3 checksums, and on restore loading the HNSW graph
//! the full snapshot carries (an incremental restore still rebuilds its base copy's index).

use std::time::Instant;

use thiserror::Error;
use vecraft_core::vector::collection::{CollectionConfig, PointSelector, PointsOp};
use vecraft_core::vector::engine::{Command, VectorEngine};
use vecraft_core::vector::error::EngineError;
use vecraft_core::vector::payload::{Payload, PayloadValue};
use vecraft_core::vector::point::{PointId, PointStruct};
use vecraft_core::vector::snapshot::{
    SnapshotError, SnapshotOptions, verify_snapshot, write_full_snapshot,
    write_incremental_snapshot,
};

/// Name of the collection the measurement creates.
pub const BENCH_COLLECTION: &str = "snapshot-bench";

/// How the snapshot phase is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotBenchSpec {
    /// Collection config (dimension, distance, HNSW parameters).
    pub config: CollectionConfig,
    /// Points per upsert command while loading.
    pub batch: usize,
    /// Snapshot writer knobs.
    pub options: SnapshotOptions,
    /// Every `upsert_every`-th point gets a new vector before the incremental snapshot (100 = 1%).
    pub upsert_every: usize,
    /// Every `delete_every`-th point is deleted before the incremental snapshot (200 = 0.5%).
    pub delete_every: usize,
}

impl SnapshotBenchSpec {
    /// Batches of 1000, default snapshot options, 1% re-upserted and 0.5% deleted.
    pub fn new(config: CollectionConfig) -> Self {
        SnapshotBenchSpec {
            config,
            batch: 1_000,
            options: SnapshotOptions::default(),
            upsert_every: 100,
            delete_every: 200,
        }
    }
}

/// Why the snapshot measurement failed. A digest mismatch means the snapshot format lost or
/// altered data: the harness must stop rather than print figures for a broken round trip.
#[derive(Debug, Error)]
pub enum SnapshotBenchError {
    /// The input is not `n * dim` floats or a knob is zero.
    #[error("bad snapshot bench input: {0}")]
    BadInput(String),
    /// The engine refused a command.
    #[error("engine rejected a command: {0}")]
    Engine(#[from] EngineError),
    /// Writing, verifying or restoring a snapshot failed.
    #[error("snapshot failed: {0}")]
    Snapshot(#[from] SnapshotError),
    /// The writer's summary disagrees with what was written or verified.
    #[error("snapshot summary inconsistent: {0}")]
    Inconsistent(String),
    /// A restore produced a collection whose digest differs from the source's.
    #[error("{stage}: restored digest {restored} differs from the original {original}")]
    DigestMismatch {
        /// Which round trip.
        stage: &'static str,
        /// Source collection digest (hex).
        original: String,
        /// Restored collection digest (hex).
        restored: String,
    },
}

/// Measured figures; seconds are wall-clock.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotFigures {
    /// Points loaded.
    pub points: usize,
    /// Vector dimension.
    pub dim: usize,
    /// Loading all points through upsert commands (builds the HNSW index).
    pub load_s: f64,
    /// Full snapshot size.
    pub full_bytes: u64,
    /// Chunks in the full snapshot.
    pub full_chunks: u64,
    /// Writing the full snapshot into memory.
    pub full_write_s: f64,
    /// Verifying every checksum and entry of the full snapshot.
    pub verify_s: f64,
    /// Restoring the full snapshot into a new engine (includes the index build).
    pub restore_s: f64,
    /// Points re-upserted with new vectors after the full snapshot.
    pub churn_upserts: usize,
    /// Points deleted after the full snapshot.
    pub churn_deletes: usize,
    /// Incremental snapshot size.
    pub incr_bytes: u64,
    /// Writing the incremental snapshot.
    pub incr_write_s: f64,
    /// Applying the incremental snapshot on the restored full one (includes copying the base's
    /// graph, which the restore works on).
    pub incr_restore_s: f64,
    /// Digest after full restore (equal to the source's, checked).
    pub full_digest: [u8; 32],
    /// Digest after full + incremental restore (equal to the churned source's, checked).
    pub incr_digest: [u8; 32],
}

impl SnapshotFigures {
    /// Raw vector bytes (`n * dim * 4`), the yardstick for size and throughput.
    pub fn raw_vector_bytes(&self) -> u64 {
        (self.points * self.dim * 4) as u64
    }

    /// `(name, value)` rows for the harness's summary table.
    pub fn rows(&self) -> Vec<(String, String)> {
        let n = self.points as f64;
        let raw_mb = self.raw_vector_bytes() as f64 / 1e6;
        let rate = |s: f64| if s > 0.0 { n / s } else { f64::INFINITY };
        let mbps = |s: f64| if s > 0.0 { raw_mb / s } else { f64::INFINITY };
        let row = |k: &str, v: String| (k.to_string(), v);
        vec![
            row(
                "snap_load",
                format!(
                    "{:.2} s, {:.0} points/s (upserts of batches, builds HNSW)",
                    self.load_s,
                    rate(self.load_s)
                ),
            ),
            row(
                "snap_full_size",
                format!(
                    "{} bytes, {:.1} bytes/point, {} chunks, raw vectors / snapshot = {:.3}",
                    self.full_bytes,
                    self.full_bytes as f64 / n,
                    self.full_chunks,
                    self.raw_vector_bytes() as f64 / self.full_bytes as f64
                ),
            ),
            row(
                "snap_full_write",
                format!(
                    "{:.3} s, {:.0} MB/s raw vectors, {:.0} points/s",
                    self.full_write_s,
                    mbps(self.full_write_s),
                    rate(self.full_write_s)
                ),
            ),
            row(
                "snap_verify",
                format!(
                    "{:.3} s, {:.0} MB/s raw vectors, {:.0} points/s",
                    self.verify_s,
                    mbps(self.verify_s),
                    rate(self.verify_s)
                ),
            ),
            row(
                "snap_restore",
                format!(
                    "{:.2} s, {:.0} points/s (loads the HNSW graph), digest ok",
                    self.restore_s,
                    rate(self.restore_s)
                ),
            ),
            row(
                "snap_incr",
                format!(
                    "{} upserts + {} deletes: {} bytes ({:.2}% of full), write {:.4} s",
                    self.churn_upserts,
                    self.churn_deletes,
                    self.incr_bytes,
                    100.0 * self.incr_bytes as f64 / self.full_bytes as f64,
                    self.incr_write_s
                ),
            ),
            row(
                "snap_incr_restore",
                format!(
                    "{:.2} s (full + incremental, copies the base graph), digest ok",
                    self.incr_restore_s
                ),
            ),
        ]
    }
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_digest(
    stage: &'static str,
    original: [u8; 32],
    restored: [u8; 32],
) -> Result<(), SnapshotBenchError> {
    if original == restored {
        Ok(())
    } else {
        Err(SnapshotBenchError::DigestMismatch {
            stage,
            original: hex(&original),
            restored: hex(&restored),
        })
    }
}

fn point(id: usize, vector: &[f32]) -> PointStruct {
    let mut payload = Payload::new();
    payload.insert("cluster".into(), PayloadValue::Int((id % 100) as i64));
    PointStruct {
        id: PointId::Num(id as u64),
        vector: vector.to_vec(),
        payload,
    }
}

fn points_op(collection: &str, op: PointsOp) -> Command {
    Command::Points {
        collection: collection.to_string(),
        op,
    }
}

/// Runs the whole snapshot phase on `base` (row-major, `spec.config.vector_size` floats a row):
/// load, full write, verify, restore, churn, incremental write and restore. Fails if any round
/// trip does not reproduce the source's digest.
pub fn measure_snapshots(
    base: &[f32],
    spec: &SnapshotBenchSpec,
) -> Result<SnapshotFigures, SnapshotBenchError> {
    let dim = spec.config.vector_size as usize;
    if dim == 0 || base.is_empty() || !base.len().is_multiple_of(dim) {
        return Err(SnapshotBenchError::BadInput(format!(
            "{} floats is not a non-empty multiple of dimension {dim}",
            base.len()
        )));
    }
    if spec.batch == 0 || spec.upsert_every == 0 || spec.delete_every == 0 {
        return Err(SnapshotBenchError::BadInput(
            "batch and churn periods must be > 0".into(),
        ));
    }
    let n = base.len() / dim;
    let name = BENCH_COLLECTION;

    let mut engine = VectorEngine::new();
    engine.apply(Command::CreateCollection {
        name: name.into(),
        config: spec.config,
    })?;
    let start = Instant::now();
    for (b, rows) in base.chunks(spec.batch * dim).enumerate() {
        let first = b * spec.batch;
        let batch = rows
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| point(first + i, v))
            .collect();
        engine.apply(points_op(name, PointsOp::Upsert(batch)))?;
    }
    let load_s = start.elapsed().as_secs_f64();
    let source = engine.collection(name)?;
    debug_assert_eq!(source.len(), n);
    let source_digest = source.digest();

    let mut full = Vec::new();
    let start = Instant::now();
    let full_summary = write_full_snapshot(source, &mut full, &spec.options)?;
    let full_write_s = start.elapsed().as_secs_f64();
    if full_summary.bytes != full.len() as u64 {
        return Err(SnapshotBenchError::Inconsistent(format!(
            "writer reported {} bytes, wrote {}",
            full_summary.bytes,
            full.len()
        )));
    }

    let start = Instant::now();
    let verified = verify_snapshot(full.as_slice())?;
    let verify_s = start.elapsed().as_secs_f64();
    if verified.file_hash != full_summary.file_hash {
        return Err(SnapshotBenchError::Inconsistent(
            "verify saw a different file hash".into(),
        ));
    }

    let mut restored = VectorEngine::new();
    let start = Instant::now();
    restored.restore_snapshot(full.as_slice(), &mut |_| {})?;
    let restore_s = start.elapsed().as_secs_f64();
    let full_digest = restored.collection(name)?.digest();
    check_digest("full restore", source_digest, full_digest)?;

    // Churn: new vectors (borrowed from the opposite half of the data) for 1%, then delete 0.5%.
    let upserts: Vec<PointStruct> = (0..n)
        .filter(|i| i % spec.upsert_every == spec.upsert_every / 2)
        .map(|i| {
            let donor = (i + n / 2) % n;
            point(i, &base[donor * dim..(donor + 1) * dim])
        })
        .collect();
    let deletes: Vec<PointId> = (0..n)
        .filter(|i| i % spec.delete_every == 1)
        .map(|i| PointId::Num(i as u64))
        .collect();
    let (churn_upserts, churn_deletes) = (upserts.len(), deletes.len());
    for batch in upserts.chunks(spec.batch) {
        engine.apply(points_op(name, PointsOp::Upsert(batch.to_vec())))?;
    }
    engine.apply(points_op(
        name,
        PointsOp::Delete(PointSelector::Ids(deletes)),
    ))?;
    let churned = engine.collection(name)?;
    let churned_digest = churned.digest();

    let mut incr = Vec::new();
    let start = Instant::now();
    write_incremental_snapshot(
        churned,
        full_summary.header.as_base(),
        &mut incr,
        &spec.options,
    )?;
    let incr_write_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    restored.restore_snapshot(incr.as_slice(), &mut |_| {})?;
    let incr_restore_s = start.elapsed().as_secs_f64();
    let incr_digest = restored.collection(name)?.digest();
    check_digest("full + incremental restore", churned_digest, incr_digest)?;

    Ok(SnapshotFigures {
        points: n,
        dim,
        load_s,
        full_bytes: full.len() as u64,
        full_chunks: full_summary.chunks,
        full_write_s,
        verify_s,
        restore_s,
        churn_upserts,
        churn_deletes,
        incr_bytes: incr.len() as u64,
        incr_write_s,
        incr_restore_s,
        full_digest,
        incr_digest,
    })
}
