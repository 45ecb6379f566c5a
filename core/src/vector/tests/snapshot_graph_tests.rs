//! The HNSW graph in full snapshots: it travels, loads instead of rebuilding, keeps inserting
//! the same levels afterwards, and is left out when tombstones would gut it.

use super::*;
use crate::vector::collection::{Collection, GRAPH_EXPORT_MAX_TOMBSTONE_PERCENT, SearchRequest};
use crate::vector::snapshot::{FLAG_HNSW_GRAPH, SnapshotOptions, restore_full, verify_snapshot, write_full_snapshot};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 16;
const OPTIONS: SnapshotOptions = SnapshotOptions { chunk_target_bytes: 4096, zstd_level: 1 };

fn vectors(seed: u64, n: usize) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()).collect()
}

fn points(first_id: u64, vs: &[Vec<f32>]) -> Vec<PointStruct> {
    vs.iter().enumerate().map(|(i, v)| point(first_id + i as u64, v, serde_json::json!({}))).collect()
}

fn l2_engine() -> VectorEngine {
    engine_with(config(DIM as u32, Distance::Euclid))
}

fn snapshot(c: &Collection) -> (Vec<u8>, u32) {
    let mut out = Vec::new();
    let summary = write_full_snapshot(c, &mut out, &OPTIONS).unwrap();
    (out, summary.header.flags)
}

fn fingerprint(c: &Collection) -> [u8; 32] {
    c.graph_export().map(|(g, _, _)| g.graph_fingerprint()).expect("HNSW collection")
}

/// Approximate (small ef) results: they depend on the exact links, so equal results across many
/// queries mean equal graphs, not merely equal points.
fn approximate_results(c: &Collection, queries: &[Vec<f32>]) -> Vec<Vec<(PointId, u32)>> {
    queries
        .iter()
        .map(|q| {
            let mut r = SearchRequest::new(q.clone(), 10);
            r.ef = Some(10);
            c.search(&r).unwrap().into_iter().map(|h| (h.id, h.score.to_bits())).collect()
        })
        .collect()
}

#[test]
fn the_graph_travels_and_inserts_continue_identically() {
    let mut original = l2_engine();
    // Ascending ids in one batch: slot = ordinal, so the restored graph must be bit-identical.
    upsert(&mut original, points(0, &vectors(1, 1500)));
    let (bytes, flags) = snapshot(original.collection("c").unwrap());
    assert_eq!(flags & FLAG_HNSW_GRAPH, FLAG_HNSW_GRAPH);
    assert!(verify_snapshot(&bytes[..]).unwrap().chunks > 2);
    let restored = restore_full(&bytes[..], &mut |_| ()).unwrap();
    let c = original.collection("c").unwrap();
    assert_eq!(restored.digest(), c.digest());
    assert_eq!(fingerprint(&restored), fingerprint(c), "links loaded, not rebuilt");
    let queries = vectors(2, 50);
    assert_eq!(approximate_results(&restored, &queries), approximate_results(c, &queries));

    // The level generator's position came along: later inserts build the same graph.
    let mut restored_engine = VectorEngine::new();
    restored_engine.install_collection(restored);
    let more = points(1500, &vectors(3, 300));
    upsert(&mut original, more.clone());
    upsert(&mut restored_engine, more);
    let (a, b) = (original.collection("c").unwrap(), restored_engine.collection("c").unwrap());
    assert_eq!(fingerprint(a), fingerprint(b));
    assert_eq!(approximate_results(a, &queries), approximate_results(b, &queries));
}

#[test]
fn tombstones_are_dropped_and_the_graph_still_finds_everything_live() {
    let mut e = l2_engine();
    upsert(&mut e, points(0, &vectors(4, 1000)));
    delete_ids(&mut e, &(0..1000).step_by(20).collect::<Vec<_>>()); // 50 deleted
    // 30 live points replaced (id 20 was deleted above): 30 more tombstones.
    upsert(&mut e, points(1, &vectors(5, 19)));
    upsert(&mut e, points(21, &vectors(13, 11)));
    let c = e.collection("c").unwrap();
    assert_eq!(c.tombstone_count(), 80);
    let (bytes, flags) = snapshot(c);
    assert_eq!(flags & FLAG_HNSW_GRAPH, FLAG_HNSW_GRAPH, "8% tombstones: exported");
    let restored = restore_full(&bytes[..], &mut |_| ()).unwrap();
    assert_eq!(restored.digest(), c.digest());
    assert_eq!(restored.tombstone_count(), 0);
    let mut found = 0;
    let queries = vectors(6, 100);
    for q in &queries {
        let mut approx = SearchRequest::new(q.clone(), 10);
        approx.ef = Some(64);
        let mut exact = approx.clone();
        exact.exact = true;
        let got = restored.search(&approx).unwrap();
        let truth = restored.search(&exact).unwrap();
        assert!(got.iter().all(|h| c.point(h.id).is_some()), "no deleted point comes back");
        found += got.iter().filter(|h| truth.iter().any(|t| t.id == h.id)).count();
    }
    let recall = found as f64 / (10.0 * queries.len() as f64);
    assert!(recall >= 0.95, "recall@10 of the loaded graph at ef 64: {recall}");
}

#[test]
fn the_tombstone_bound_is_exact() {
    // 900 points, then 100 replaced: 100 tombstones of 1000 slots = exactly the bound.
    let mut e = l2_engine();
    upsert(&mut e, points(0, &vectors(7, 900)));
    upsert(&mut e, points(0, &vectors(8, 100)));
    let c = e.collection("c").unwrap();
    assert_eq!((c.tombstone_count(), c.len() + c.tombstone_count()), (100, 1000));
    assert_eq!(GRAPH_EXPORT_MAX_TOMBSTONE_PERCENT, 10);
    assert_eq!(snapshot(c).1 & FLAG_HNSW_GRAPH, FLAG_HNSW_GRAPH, "10% exported");
    // One more replacement: 101 of 1001 slots is above 10%.
    upsert(&mut e, points(100, &vectors(9, 1)));
    let c = e.collection("c").unwrap();
    let (bytes, flags) = snapshot(c);
    assert_eq!(flags, 0, "above the bound the restore rebuilds");
    let restored = restore_full(&bytes[..], &mut |_| ()).unwrap();
    assert_eq!(restored.digest(), c.digest());
    let q = vectors(10, 1).remove(0);
    let mut exact = SearchRequest::new(q, 5);
    exact.exact = true;
    assert_eq!(restored.search(&exact).unwrap(), c.search(&exact).unwrap());
}

#[test]
fn cosine_collections_restore_their_graph_too() {
    let mut e = engine_with(config(DIM as u32, Distance::Cosine));
    upsert(&mut e, points(0, &vectors(11, 400)));
    let c = e.collection("c").unwrap();
    let (bytes, flags) = snapshot(c);
    assert_eq!(flags, FLAG_HNSW_GRAPH);
    let restored = restore_full(&bytes[..], &mut |_| ()).unwrap();
    assert_eq!(fingerprint(&restored), fingerprint(c));
    let queries = vectors(12, 20);
    assert_eq!(approximate_results(&restored, &queries), approximate_results(c, &queries));
}

#[test]
fn incremental_restores_extend_the_loaded_graph_instead_of_rebuilding() {
    use crate::vector::snapshot::{restore_incremental, write_incremental_snapshot};
    let mut original = l2_engine();
    upsert(&mut original, points(0, &vectors(14, 800)));
    let (full, _) = snapshot(original.collection("c").unwrap());
    let base_header = crate::vector::snapshot::read_header(&full[..]).unwrap();
    let restored = restore_full(&full[..], &mut |_| ()).unwrap();
    upsert(&mut original, points(800, &vectors(15, 100)));
    delete_ids(&mut original, &[3, 300, 500]);
    let c = original.collection("c").unwrap();
    let mut incremental = Vec::new();
    write_incremental_snapshot(c, base_header.as_base(), &mut incremental, &OPTIONS).unwrap();
    let after = restore_incremental(&restored, &incremental[..], &mut |_| ()).unwrap();
    assert_eq!(after.digest(), c.digest());
    assert_eq!(after.tombstone_count(), 3, "the base's slots were kept, not compacted by a rebuild");
    assert_eq!(fingerprint(&after), fingerprint(c), "same graph as the original's");
    assert_eq!(fingerprint(&restored), fingerprint(&restore_full(&full[..], &mut |_| ()).unwrap()), "base untouched");
}
