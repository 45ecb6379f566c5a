//! The snapshot phase of the ANN harness on a small data set: every round trip must reproduce the
//! source digest and the figures must describe real, non-empty snapshots.

use vecraft_benches::snapshot_bench::{SnapshotBenchError, SnapshotBenchSpec, measure_snapshots};
use vecraft_benches::synthetic::{Mixture, MixtureSpec};
use vecraft_core::vector::collection::{CollectionConfig, Distance, HnswParams};

fn small_config(dim: u32) -> CollectionConfig {
    CollectionConfig {
        hnsw: HnswParams {
            m: 8,
            ef_construct: 32,
            ef: 32,
        },
        ..CollectionConfig::new(dim, Distance::Euclid)
    }
}

#[test]
fn snapshot_phase_round_trips_and_reports_sizes() {
    let (n, dim) = (2_000, 16);
    let mix = Mixture::new(MixtureSpec {
        dim,
        clusters: 10,
        spread: 1.0,
        seed: 7,
    });
    let base = mix.sample(n, 1);
    let spec = SnapshotBenchSpec::new(small_config(dim as u32));
    let f = measure_snapshots(&base, &spec).expect("snapshot phase succeeds");

    assert_eq!((f.points, f.dim), (n, dim));
    assert_eq!(f.churn_upserts, n / 100);
    assert_eq!(f.churn_deletes, n / 200);
    assert_ne!(f.full_digest, f.incr_digest, "churn changed the collection");
    assert!(f.full_bytes > 0 && f.full_chunks > 0);
    assert!(
        f.incr_bytes > 0 && f.incr_bytes < f.full_bytes / 10,
        "incremental {} vs full {}",
        f.incr_bytes,
        f.full_bytes
    );
    // Random floats barely compress, but the snapshot must not be much larger than the vectors.
    assert!(
        f.full_bytes < f.raw_vector_bytes() * 2,
        "{} bytes for {} raw",
        f.full_bytes,
        f.raw_vector_bytes()
    );
    let rows = f.rows();
    assert!(
        rows.iter()
            .any(|(k, v)| k == "snap_full_size" && v.contains(&f.full_bytes.to_string()))
    );
    assert!(
        rows.iter()
            .all(|(k, v)| k.starts_with("snap_") && !v.is_empty())
    );
}

#[test]
fn snapshot_phase_rejects_ragged_input() {
    let spec = SnapshotBenchSpec::new(small_config(16));
    let err = measure_snapshots(&[0.0; 17], &spec).unwrap_err();
    assert!(matches!(err, SnapshotBenchError::BadInput(_)), "{err}");
}
