//! Deferred indexing at the collection level: the bound is exact, the digest and every exact
//! answer ignore the policy, deferred and immediate replicas end with the same graph, and a
//! snapshot of a collection with an unindexed tail restores whole.

use super::*;
use crate::vector::collection::{Collection, IndexingPolicy, SearchRequest};
use crate::vector::snapshot::{FLAG_HNSW_GRAPH, SnapshotOptions, restore_full, write_full_snapshot};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 8;

fn batch(rng: &mut ChaCha8Rng, first: u64, n: usize) -> Vec<PointStruct> {
    (0..n as u64)
        .map(|i| {
            let v: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            point(first + i, &v, serde_json::json!({"i": first + i}))
        })
        .collect()
}

fn hits(c: &Collection, q: &[f32], exact: bool) -> Vec<(PointId, u32)> {
    let mut r = SearchRequest::new(q.to_vec(), 10);
    r.exact = exact;
    r.ef = Some(16);
    c.search(&r).unwrap().into_iter().map(|h| (h.id, h.score.to_bits())).collect()
}

fn coll(engine: &mut VectorEngine) -> &mut Collection {
    engine.collection_mut("c").unwrap()
}

#[test]
fn the_unindexed_bound_is_exact_and_invisible_to_answers() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut deferred = engine_with(config(DIM as u32, Distance::Euclid));
    let mut immediate = engine_with(config(DIM as u32, Distance::Euclid));
    coll(&mut deferred).set_indexing_policy(IndexingPolicy::deferred(40));
    assert_eq!(coll(&mut deferred).indexing_policy(), IndexingPolicy::deferred(40));
    assert_eq!(coll(&mut immediate).indexing_policy(), IndexingPolicy::IMMEDIATE);
    let first = batch(&mut rng, 0, 40);
    upsert(&mut deferred, first.clone());
    upsert(&mut immediate, first);
    assert_eq!(coll(&mut deferred).unindexed(), 40, "exactly the bound waits");
    let one_more = batch(&mut rng, 40, 1);
    upsert(&mut deferred, one_more.clone());
    upsert(&mut immediate, one_more);
    assert_eq!(coll(&mut deferred).unindexed(), 40, "bound + 1 links the oldest");
    assert_eq!(coll(&mut immediate).unindexed(), 0);
    // Replacements and deletes while points wait.
    let again = batch(&mut rng, 10, 30);
    upsert(&mut deferred, again.clone());
    upsert(&mut immediate, again);
    delete_ids(&mut deferred, &[1, 2, 50]);
    delete_ids(&mut immediate, &[1, 2, 50]);
    let (d, i) = (coll(&mut deferred), &*coll(&mut immediate));
    assert_eq!(d.digest(), i.digest(), "the digest covers points, not the index");
    for _ in 0..20 {
        let q: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        assert_eq!(hits(d, &q, true), hits(i, &q, true));
        // With this few points the walk is exact too, and the tail scan always is.
        assert_eq!(hits(d, &q, false), hits(i, &q, true));
    }
    assert_eq!(d.index_pending(15), 15);
    assert_eq!(d.unindexed(), 25);
    d.set_indexing_policy(IndexingPolicy::deferred(5));
    assert_eq!(d.unindexed(), 5, "a lower bound links the excess at once");
    d.set_indexing_policy(IndexingPolicy::IMMEDIATE);
    assert_eq!(d.unindexed(), 0);
}

#[test]
fn catching_up_defers_to_the_catch_up_bound_and_the_excess_drains_per_insert() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut deferred = engine_with(config(DIM as u32, Distance::Euclid));
    let mut immediate = engine_with(config(DIM as u32, Distance::Euclid));
    coll(&mut deferred).set_indexing_policy(IndexingPolicy::deferred_with_catch_up(10, 40));
    coll(&mut deferred).set_catching_up(true);
    let first = batch(&mut rng, 0, 40);
    upsert(&mut deferred, first.clone());
    upsert(&mut immediate, first);
    assert_eq!(coll(&mut deferred).unindexed(), 40, "catching up: exactly the catch-up bound waits");
    let one = batch(&mut rng, 40, 1);
    upsert(&mut deferred, one.clone());
    upsert(&mut immediate, one);
    assert_eq!(coll(&mut deferred).unindexed(), 40, "catch-up bound + 1 links the oldest");
    // Caught up: nothing is linked by the switch itself; each insert links two and adds one.
    coll(&mut deferred).set_catching_up(false);
    assert_eq!(coll(&mut deferred).unindexed(), 40);
    for (k, expect) in [(41u64, 39), (42, 38)] {
        let b = batch(&mut rng, k, 1);
        upsert(&mut deferred, b.clone());
        upsert(&mut immediate, b);
        assert_eq!(coll(&mut deferred).unindexed(), expect);
    }
    // Drained to the normal bound, an insert links exactly one again.
    let d = coll(&mut deferred);
    assert_eq!(d.index_pending(28), 28);
    assert_eq!(d.unindexed(), 10);
    let b = batch(&mut rng, 43, 1);
    upsert(&mut deferred, b.clone());
    upsert(&mut immediate, b);
    assert_eq!(coll(&mut deferred).unindexed(), 10);
    let (d, i) = (coll(&mut deferred), &*coll(&mut immediate));
    assert_eq!(d.digest(), i.digest());
    for _ in 0..20 {
        let q: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        assert_eq!(hits(d, &q, false), hits(i, &q, true));
    }
    // Lowering the policy while not catching up links down to the normal bound at once.
    d.set_catching_up(true);
    assert_eq!(d.index_pending(0), 0);
    d.set_indexing_policy(IndexingPolicy::deferred(4));
    assert_eq!(d.unindexed(), 4);
}

#[test]
fn deferred_and_immediate_replicas_build_the_same_graph() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut deferred = engine_with(config(DIM as u32, Distance::Cosine));
    let mut immediate = engine_with(config(DIM as u32, Distance::Cosine));
    coll(&mut deferred).set_indexing_policy(IndexingPolicy::deferred(1000));
    for round in 0..10 {
        let b = batch(&mut rng, round * 50, 50);
        upsert(&mut deferred, b.clone());
        upsert(&mut immediate, b);
        coll(&mut deferred).index_pending(rng.random_range(0..40));
    }
    coll(&mut deferred).index_pending(usize::MAX);
    let fp = |c: &Collection| c.graph_export().map(|(g, _, _)| g.graph_fingerprint()).expect("exportable");
    assert_eq!(fp(coll(&mut deferred)), fp(coll(&mut immediate)));
}

#[test]
fn a_snapshot_with_an_unindexed_tail_restores_whole() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut engine = engine_with(config(DIM as u32, Distance::Dot));
    coll(&mut engine).set_indexing_policy(IndexingPolicy::deferred(100));
    upsert(&mut engine, batch(&mut rng, 0, 300));
    let c = coll(&mut engine);
    assert_eq!(c.unindexed(), 100);
    let options = SnapshotOptions { chunk_target_bytes: 4096, zstd_level: 1 };
    let mut bytes = Vec::new();
    let summary = write_full_snapshot(c, &mut bytes, &options).unwrap();
    assert_eq!(summary.header.flags & FLAG_HNSW_GRAPH, 0, "no graph with unlinked nodes");
    let restored = restore_full(&bytes[..], &mut |_| ()).unwrap();
    assert_eq!(restored.digest(), c.digest());
    assert_eq!(restored.unindexed(), 0, "a restore links everything (policy is local)");
    assert_eq!(restored.indexing_policy(), IndexingPolicy::IMMEDIATE);
    // Once linked, the graph travels again.
    c.index_pending(usize::MAX);
    let mut bytes = Vec::new();
    let summary = write_full_snapshot(c, &mut bytes, &options).unwrap();
    assert_ne!(summary.header.flags & FLAG_HNSW_GRAPH, 0);
}

#[test]
fn the_hide_unindexed_bug_switch_only_exists_with_bug_injection() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut engine = engine_with(config(DIM as u32, Distance::Euclid));
    let points = batch(&mut rng, 0, 20);
    let q = points[7].vector.clone();
    coll(&mut engine).set_indexing_policy(IndexingPolicy { bug_hide_unindexed: true, ..IndexingPolicy::deferred(100) });
    upsert(&mut engine, points);
    let got = hits(coll(&mut engine), &q, false);
    if cfg!(feature = "bug-injection") {
        assert!(got.is_empty(), "every point is unindexed and hidden: {got:?}");
    } else {
        assert_eq!(got[0].0, PointId::Num(7));
    }
    assert_eq!(hits(coll(&mut engine), &q, true)[0].0, PointId::Num(7), "exact search never hides");
}
