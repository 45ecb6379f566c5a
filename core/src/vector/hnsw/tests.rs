//! Tests of our own HNSW: recall against brute force and against the `hnsw_rs` graph on the
//! same data, determinism of the single-threaded build, the parallel build's recall, filters.

use super::*;
use crate::vector::distance;
use crate::vector::index::{FlatIndex, IndexKind};
use rand::RngExt;

fn spec(dim: usize, metric: Metric, seed: u64) -> IndexSpec {
    IndexSpec { dim, metric, m: 16, ef_construct: 100, capacity_hint: 2000, seed, kind: IndexKind::Hnsw }
}

/// Clustered data (sum of uniforms around random centres), normalised for Cosine as the engine
/// stores it.
fn clustered(n: usize, dim: usize, clusters: usize, metric: Metric, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> =
        (0..clusters).map(|_| (0..dim).map(|_| rng.random_range(-10.0f32..10.0)).collect()).collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..clusters)];
            let mut v: Vec<f32> =
                c.iter().map(|x| x + (0..3).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>()).collect();
            if metric == Metric::CosineNormalized {
                let norm = distance::norm_squared(&v).sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
            }
            v
        })
        .collect()
}

fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    order
}

/// Mean recall@10 of `index` over `queries` against brute force on `data`; also checks order
/// and that reported distances are true distances.
fn recall(index: &dyn AnnIndex, data: &[Vec<f32>], queries: &[Vec<f32>], metric: Metric, ef: usize) -> f64 {
    let mut flat = FlatIndex::new(data[0].len(), metric);
    for (slot, v) in data.iter().enumerate() {
        flat.insert(slot, v);
    }
    let all = |_: Slot| true;
    let mut found = 0;
    for q in queries {
        let truth: Vec<Slot> = flat.search(q, 10, 0, &all).iter().map(|n| n.slot).collect();
        let got = index.search(q, 10, ef, &all);
        assert_eq!(got.len(), 10);
        assert!(got.windows(2).all(|w| RankedNeighbor(w[0]) < RankedNeighbor(w[1])), "sorted");
        for n in &got {
            let want = metric.distance(q, &data[n.slot]);
            assert!((n.distance - want).abs() <= 1e-3 * (1.0 + want.abs()), "true distance");
        }
        found += got.iter().filter(|n| truth.contains(&n.slot)).count();
    }
    found as f64 / (queries.len() * 10) as f64
}

fn build_own(data: &[Vec<f32>], metric: Metric, seed: u64, order: &[usize]) -> HnswIndex {
    let mut index = HnswIndex::new(&spec(data[0].len(), metric, seed));
    for &slot in order {
        index.insert(slot, &data[slot]);
    }
    index
}

#[test]
fn recall_against_brute_force_and_hnsw_rs() {
    for (metric, ef) in [(Metric::L2Squared, 64), (Metric::CosineNormalized, 64), (Metric::NegDot, 128)] {
        let data = clustered(2000, 24, 20, metric, 7);
        let queries = clustered(50, 24, 20, metric, 8);
        let order = shuffled(data.len(), 9);
        let own = build_own(&data, metric, 1, &order);
        let mut rs = HnswRsIndex::new(&IndexSpec { kind: IndexKind::HnswRs, ..spec(24, metric, 1) });
        for &slot in &order {
            rs.insert(slot, &data[slot]);
        }
        let (r_own, r_rs) = (recall(&own, &data, &queries, metric, ef), recall(&rs, &data, &queries, metric, ef));
        eprintln!("{metric:?}: own {r_own:.3}, hnsw_rs {r_rs:.3}");
        assert!(r_own >= 0.9, "{metric:?} recall {r_own}");
        assert!(r_own >= r_rs - 0.02, "{metric:?}: own {r_own} below hnsw_rs {r_rs}");
    }
}

#[test]
fn single_threaded_build_is_deterministic() {
    let data = clustered(1500, 16, 10, Metric::L2Squared, 3);
    let order = shuffled(data.len(), 4);
    let a = build_own(&data, Metric::L2Squared, 42, &order);
    let b = build_own(&data, Metric::L2Squared, 42, &order);
    assert_eq!(a.graph_fingerprint(), b.graph_fingerprint());
    let q = &data[17];
    assert_eq!(a.search(q, 10, 32, &|_| true), b.search(q, 10, 32, &|_| true));
    let c = build_own(&data, Metric::L2Squared, 43, &order);
    assert_ne!(a.graph_fingerprint(), c.graph_fingerprint(), "the seed drives the levels");
    let d = build_own(&data, Metric::L2Squared, 42, &shuffled(data.len(), 5));
    assert_ne!(a.graph_fingerprint(), d.graph_fingerprint(), "insert order shapes the graph");
}

#[test]
fn parallel_build_recall_is_as_good() {
    let metric = Metric::L2Squared;
    let data = clustered(3000, 24, 30, metric, 21);
    let queries = clustered(200, 24, 30, metric, 22);
    let order = shuffled(data.len(), 23);
    let serial = build_own(&data, metric, 5, &order);
    let batch: Vec<(Slot, &[f32])> = order.iter().map(|&s| (s, data[s].as_slice())).collect();
    let mut parallel = HnswIndex::new(&spec(24, metric, 5));
    parallel.insert_batch_parallel(&batch, 2);
    assert_eq!(parallel.len(), data.len());
    // The parallel graph depends on thread timing, so compare mean recall over a sweep of `ef`
    // (one narrow ef on a small set swings by a point or two between runs) with a tolerance.
    let sweep = |index: &HnswIndex| {
        [16, 32, 64].iter().map(|&ef| recall(index, &data, &queries, metric, ef)).sum::<f64>() / 3.0
    };
    let (r_serial, r_par) = (sweep(&serial), sweep(&parallel));
    eprintln!("serial {r_serial:.3}, parallel {r_par:.3}");
    assert!(r_par >= r_serial - 0.03, "parallel {r_par} vs serial {r_serial}");
    // A second parallel batch on a non-empty graph, then single inserts: all searchable.
    let more = clustered(500, 24, 30, metric, 24);
    let batch: Vec<(Slot, &[f32])> = more.iter().enumerate().map(|(i, v)| (3000 + i, v.as_slice())).collect();
    parallel.insert_batch_parallel(&batch, 3);
    parallel.insert(4000, &more[0]);
    assert_eq!(parallel.len(), 3501);
    for (i, v) in more.iter().enumerate().step_by(50) {
        let got = parallel.search(v, 1, 32, &|s| s == 3000 + i);
        assert_eq!(got[0].slot, 3000 + i);
    }
}

#[test]
fn filter_is_honoured_and_k_found() {
    let dim = 16;
    let data = clustered(1500, dim, 10, Metric::L2Squared, 3);
    let index = build_own(&data, Metric::L2Squared, 9, &(0..data.len()).collect::<Vec<_>>());
    let queries = clustered(20, dim, 10, Metric::L2Squared, 4);
    let loose = |s: Slot| s.is_multiple_of(2);
    let strict = |s: Slot| s % 97 == 5;
    let three = |s: Slot| s == 10 || s == 700 || s == 1499;
    for q in &queries {
        let got = index.search(q, 10, 32, &loose);
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|n| n.slot.is_multiple_of(2)));
        let got = index.search(q, 10, 32, &strict);
        assert_eq!(got.len(), 10, "15 accepted exist, want 10");
        assert!(got.iter().all(|n| n.slot % 97 == 5));
        let mut slots: Vec<Slot> = index.search(q, 10, 32, &three).iter().map(|n| n.slot).collect();
        slots.sort();
        assert_eq!(slots, vec![10, 700, 1499]);
        assert!(index.search(q, 10, 32, &|_| false).is_empty());
    }
}

#[test]
fn every_slot_is_findable_right_after_insert() {
    let data = clustered(400, 8, 5, Metric::L2Squared, 11);
    let mut index = HnswIndex::new(&spec(8, Metric::L2Squared, 2));
    for (slot, v) in data.iter().enumerate().rev() {
        index.insert(slot * 3, v);
        let got = index.search(v, 1, 16, &|s| s == slot * 3);
        assert_eq!((got[0].slot, got[0].distance), (slot * 3, 0.0));
    }
    assert_eq!(index.len(), 400);
}

#[test]
fn bad_queries_and_params_do_not_panic() {
    let huge = IndexSpec {
        dim: 4,
        metric: Metric::NegDot,
        m: 100_000,
        ef_construct: 0,
        capacity_hint: usize::MAX,
        seed: 0,
        kind: IndexKind::Hnsw,
    };
    let mut index = HnswIndex::new(&huge);
    assert_eq!(index.params(), (MAX_OWN_M, MAX_OWN_M));
    assert!(index.search(&[1.0; 4], 5, 10, &|_| true).is_empty());
    for i in 0..50 {
        index.insert(i, &[i as f32, -(i as f32), 1.0, 0.5]);
    }
    assert!(index.search(&[1.0; 3], 5, 10, &|_| true).is_empty(), "wrong dimension");
    assert!(index.search(&[f32::NAN, 0.0, 0.0, 0.0], 5, 10, &|_| true).is_empty());
    assert!(index.search(&[1.0; 4], 0, 10, &|_| true).is_empty());
    let got = index.search(&[1.0, 0.0, 0.0, 0.0], 100, 10, &|_| true);
    assert_eq!(got.len(), 50);
    assert_eq!((got[0].slot, got[0].distance), (49, -49.0));
    let tiny = IndexSpec { m: 0, ef_construct: 0, capacity_hint: 0, ..huge };
    assert_eq!(HnswIndex::new(&tiny).params(), (MIN_M, MIN_M));
}

/// Deferred linking in any chunking, interleaved with searches, builds exactly the graph an
/// immediate insert builds: the graph is a function of insert order, not of when work happens.
#[test]
fn deferred_linking_builds_the_immediate_graph() {
    let data = clustered(600, 16, 8, Metric::L2Squared, 21);
    let immediate = build_own(&data, Metric::L2Squared, 5, &(0..data.len()).collect::<Vec<_>>());
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let mut deferred = HnswIndex::new(&spec(16, Metric::L2Squared, 5));
    for (slot, v) in data.iter().enumerate() {
        if rng.random_bool(0.7) || slot + 5 >= data.len() {
            deferred.insert_unindexed(slot, v);
        } else {
            // A plain insert links everything waiting first.
            deferred.insert(slot, v);
            assert_eq!(deferred.unindexed_len(), 0);
        }
        if rng.random_bool(0.2) && slot + 5 < data.len() {
            let before = deferred.unindexed_len();
            let want = rng.random_range(0..5);
            assert_eq!(deferred.index_pending(want), want.min(before));
            let _ = deferred.search(&data[slot], 5, 32, &|_| true);
        }
    }
    assert!(deferred.unindexed_len() > 0, "the test leaves a tail to link");
    assert_ne!(deferred.graph_fingerprint(), immediate.graph_fingerprint(), "unlinked nodes have no lists yet");
    deferred.index_pending(usize::MAX);
    assert_eq!(deferred.unindexed_len(), 0);
    assert_eq!(deferred.graph_fingerprint(), immediate.graph_fingerprint());
    assert_eq!(deferred.index_pending(10), 0, "nothing left");
}

/// Every unindexed point is found from the moment it is stored: the tail is scanned exactly
/// and merged with the walk (a query equal to a stored vector finds it at distance 0), filters
/// apply to the tail, and a graph with no linked node at all still answers.
#[test]
fn unindexed_tail_is_searched_exactly() {
    let data = clustered(800, 16, 8, Metric::L2Squared, 31);
    let mut index = HnswIndex::new(&spec(16, Metric::L2Squared, 6));
    for (slot, v) in data.iter().enumerate().take(200) {
        index.insert_unindexed(slot, v);
    }
    // Nothing linked yet: the whole answer is the exact scan.
    assert!(index.entry.is_none());
    let got = index.search(&data[17], 3, 16, &|_| true);
    assert_eq!((got[0].slot, got[0].distance), (17, 0.0));
    index.index_pending(usize::MAX);
    for (slot, v) in data.iter().enumerate().skip(200) {
        index.insert_unindexed(slot, v);
    }
    assert_eq!(index.unindexed_len(), 600);
    assert!(index.is_unindexed(200) && index.is_unindexed(799) && !index.is_unindexed(199));
    assert!(!index.is_unindexed(800), "never stored");
    for probe in [3usize, 250, 799] {
        let got = index.search(&data[probe], 10, 16, &|_| true);
        assert_eq!(got.len(), 10);
        assert_eq!((got[0].slot, got[0].distance), (probe, 0.0), "probe {probe}");
        assert!(got.windows(2).all(|w| RankedNeighbor(w[0]) < RankedNeighbor(w[1])), "sorted, no duplicates");
        let odd = index.search(&data[probe], 10, 16, &|s| s % 2 == 1);
        assert!(odd.iter().all(|n| n.slot % 2 == 1));
    }
    // Recall with a mostly unindexed collection is at least the linked graph's.
    let queries = clustered(40, 16, 8, Metric::L2Squared, 32);
    let with_tail = recall(&index, &data, &queries, Metric::L2Squared, 16);
    index.index_pending(usize::MAX);
    let linked = recall(&index, &data, &queries, Metric::L2Squared, 16);
    assert!(with_tail >= linked, "exact tail {with_tail} vs linked {linked}");
}
