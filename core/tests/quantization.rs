//! Scalar (int8) and binary quantization through the collection API: when codes start being
//! used (the training threshold, exactly), what `params.quantization` accepts (bounds exactly),
//! recall with rescoring against the f32 walk and exact search, determinism, deleted points,
//! snapshots and digests.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vecraft_core::vector::collection::{
    Collection, CollectionConfig, Distance, PointSelector, PointsOp, SearchRequest,
};
use vecraft_core::vector::error::EngineError;
use vecraft_core::vector::point::{PointId, PointStruct};
use vecraft_core::vector::quantization::{
    MAX_OVERSAMPLING, QuantizationConfig, QuantizationSearchParams, QuantizerParams,
    TRAIN_AFTER_SLOTS,
};
use vecraft_core::vector::snapshot::{SnapshotOptions, restore_full, write_full_snapshot};

const INT8: QuantizationConfig = QuantizationConfig::Scalar {
    quantile: Some(0.99),
    always_ram: None,
};
const BINARY: QuantizationConfig = QuantizationConfig::Binary { always_ram: None };

/// Standard normal by Box-Muller from the seeded generator.
fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let v: f64 = rng.random_range(0.0..1.0);
    ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
}

/// `n` points in `dim` dimensions around `clusters` centres (spread 1 around centres spread 4),
/// plus `queries` query vectors from the same mixture: the shape of real embedding sets.
fn clustered(
    seed: u64,
    n: usize,
    queries: usize,
    dim: usize,
    clusters: usize,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| 4.0 * gaussian(&mut rng)).collect())
        .collect();
    let draw = |rng: &mut ChaCha8Rng| {
        let c = &centres[rng.random_range(0..clusters)];
        c.iter().map(|x| x + gaussian(rng)).collect::<Vec<f32>>()
    };
    let base = (0..n).map(|_| draw(&mut rng)).collect();
    let q = (0..queries).map(|_| draw(&mut rng)).collect();
    (base, q)
}

fn config(
    dim: usize,
    distance: Distance,
    quantization: Option<QuantizationConfig>,
) -> CollectionConfig {
    let mut c = CollectionConfig::new(dim as u32, distance);
    c.hnsw.m = 16;
    c.hnsw.ef_construct = 100;
    c.quantization = quantization;
    c
}

fn load(config: CollectionConfig, base: &[Vec<f32>]) -> Collection {
    let mut c = Collection::new("q", config).unwrap();
    // Batches of 500, as a client would send them.
    for (b, chunk) in base.chunks(500).enumerate() {
        let points = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| PointStruct {
                id: PointId::Num((b * 500 + i) as u64),
                vector: v.clone(),
                payload: Default::default(),
            })
            .collect();
        c.apply(PointsOp::Upsert(points)).unwrap();
    }
    c
}

fn ids(c: &Collection, request: &SearchRequest) -> Vec<PointId> {
    c.search(request)
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect()
}

fn request(
    query: &[f32],
    k: usize,
    ef: usize,
    quantization: Option<QuantizationSearchParams>,
) -> SearchRequest {
    let mut r = SearchRequest::new(query.to_vec(), k);
    r.ef = Some(ef);
    r.quantization = quantization;
    r
}

fn rescore(oversampling: f32) -> Option<QuantizationSearchParams> {
    Some(QuantizationSearchParams {
        ignore: false,
        rescore: true,
        oversampling,
    })
}

const IGNORE: Option<QuantizationSearchParams> = Some(QuantizationSearchParams {
    ignore: true,
    rescore: true,
    oversampling: 1.0,
});

/// Mean recall@k of `quantization` searches against exact search.
fn recall(
    c: &Collection,
    queries: &[Vec<f32>],
    k: usize,
    ef: usize,
    quantization: Option<QuantizationSearchParams>,
) -> f64 {
    let mut found = 0usize;
    for q in queries {
        let mut exact = SearchRequest::new(q.clone(), k);
        exact.exact = true;
        let truth = ids(c, &exact);
        let got = ids(c, &request(q, k, ef, quantization));
        found += got.iter().filter(|id| truth.contains(id)).count();
    }
    found as f64 / (queries.len() * k) as f64
}

#[test]
fn codes_are_used_from_the_training_threshold_on_exactly() {
    let (base, _) = clustered(1, TRAIN_AFTER_SLOTS, 0, 8, 4);
    let mut c = load(
        config(8, Distance::Euclid, Some(INT8)),
        &base[..TRAIN_AFTER_SLOTS - 1],
    );
    assert!(
        !c.quantization_active(),
        "one slot short of the threshold: still f32"
    );
    assert_eq!(c.quantizer_params(), None);
    let last = PointStruct {
        id: PointId::Num(99_999),
        vector: base[TRAIN_AFTER_SLOTS - 1].clone(),
        payload: Default::default(),
    };
    c.apply(PointsOp::Upsert(vec![last])).unwrap();
    assert!(
        c.quantization_active(),
        "the insert reaching the threshold trains"
    );
    assert!(matches!(
        c.quantizer_params(),
        Some(QuantizerParams::Scalar(_))
    ));
    assert!(c.quantized_heap_bytes() >= TRAIN_AFTER_SLOTS * 8, "one byte per component");
    // Without quantization configured nothing is ever trained.
    let plain = load(config(8, Distance::Euclid, None), &base);
    assert!(!plain.quantization_active());
    assert_eq!(plain.quantized_heap_bytes(), 0);
}

#[test]
fn search_params_and_config_bounds_are_exact() {
    let (base, queries) = clustered(2, 1_200, 1, 8, 4);
    let c = load(config(8, Distance::Euclid, Some(INT8)), &base);
    let q = &queries[0];
    for ok in [1.0, 2.5, MAX_OVERSAMPLING] {
        assert_eq!(
            c.search(&request(q, 5, 64, rescore(ok))).unwrap().len(),
            5,
            "oversampling {ok}"
        );
    }
    for bad in [0.999, MAX_OVERSAMPLING + 0.01, f32::NAN, 0.0, -1.0] {
        let err = c.search(&request(q, 5, 64, rescore(bad))).unwrap_err();
        assert!(
            matches!(&err, EngineError::InvalidRequest(m) if m.contains("params.quantization.oversampling")),
            "oversampling {bad}: {err}"
        );
    }
    let quantile = |q| {
        config(
            8,
            Distance::Euclid,
            Some(QuantizationConfig::Scalar {
                quantile: Some(q),
                always_ram: Some(true),
            }),
        )
    };
    for ok in [0.5, 0.99, 1.0] {
        assert!(Collection::new("ok", quantile(ok)).is_ok(), "quantile {ok}");
    }
    for bad in [0.499, 1.001, f32::NAN] {
        let err = Collection::new("bad", quantile(bad)).unwrap_err();
        assert!(
            matches!(&err, EngineError::InvalidConfig(m) if m.contains("quantization_config.scalar.quantile")),
            "{err}"
        );
    }
}

#[test]
fn int8_with_rescoring_keeps_recall_within_one_percent_of_f32() {
    let (base, queries) = clustered(3, 4_000, 60, 48, 16);
    let (k, ef) = (10, 64);
    let mut failures = Vec::new();
    for (distance, oversampling) in [
        (Distance::Euclid, 2.0),
        (Distance::Cosine, 2.0),
        (Distance::Dot, 2.0),
    ] {
        let c = load(config(48, distance, Some(INT8)), &base);
        assert!(c.quantization_active());
        let f32_recall = recall(&c, &queries, k, ef, IGNORE);
        let int8_recall = recall(&c, &queries, k, ef, rescore(oversampling));
        let int8_plain = recall(
            &c,
            &queries,
            k,
            ef,
            Some(QuantizationSearchParams {
                ignore: false,
                rescore: false,
                oversampling: 1.0,
            }),
        );
        eprintln!(
            "{distance:?}: f32 {f32_recall:.4}, int8+rescore x{oversampling} {int8_recall:.4}, int8 without rescore {int8_plain:.4}"
        );
        assert!(
            f32_recall > 0.9,
            "{distance:?}: the f32 walk itself is sound ({f32_recall})"
        );
        if int8_recall < 0.99 * f32_recall {
            failures.push(format!(
                "{distance:?}: int8 {int8_recall} vs f32 {f32_recall}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// `n` points in `dim` dimensions with a low intrinsic dimension, as sentence embeddings have:
/// `W z + noise` for a Gaussian `z` of `latent` dimensions and a fixed random `W`.
fn low_rank(
    seed: u64,
    n: usize,
    queries: usize,
    dim: usize,
    latent: usize,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w: Vec<f32> = (0..dim * latent).map(|_| gaussian(&mut rng)).collect();
    let draw = |rng: &mut ChaCha8Rng| {
        let z: Vec<f32> = (0..latent).map(|_| gaussian(rng)).collect();
        (0..dim)
            .map(|i| {
                w[i * latent..(i + 1) * latent]
                    .iter()
                    .zip(&z)
                    .map(|(a, b)| a * b)
                    .sum::<f32>()
                    + 0.3 * gaussian(rng)
            })
            .collect::<Vec<f32>>()
    };
    let base = (0..n).map(|_| draw(&mut rng)).collect();
    let q = (0..queries).map(|_| draw(&mut rng)).collect();
    (base, q)
}

#[test]
fn binary_with_rescoring_reaches_stated_recall_on_high_dimensional_data() {
    let (base, queries) = low_rank(4, 3_000, 40, 512, 24);
    let c = load(config(512, Distance::Cosine, Some(BINARY)), &base);
    assert!(c.quantization_active());
    assert!(matches!(
        c.quantizer_params(),
        Some(QuantizerParams::Binary(_))
    ));
    // 512 dims: 64 bytes of codes per point, 1/32 of the f32 vector.
    assert!(c.quantized_heap_bytes() >= 3_000 * 64);
    let (k, ef) = (10, 64);
    let f32_recall = recall(&c, &queries, k, ef, IGNORE);
    let binary_x4 = recall(&c, &queries, k, ef, rescore(4.0));
    let binary_x1 = recall(&c, &queries, k, ef, rescore(1.0));
    eprintln!(
        "binary 512-d: f32 {f32_recall:.4}, binary+rescore x4 {binary_x4:.4}, x1 {binary_x1:.4}"
    );
    assert!(
        binary_x4 >= 0.9,
        "binary + rescoring x4 reaches 0.9 ({binary_x4})"
    );
    assert!(
        binary_x4 >= binary_x1,
        "oversampling never hurts ({binary_x4} vs {binary_x1})"
    );
}

#[test]
fn results_are_deterministic_and_deleted_points_never_returned() {
    let (base, queries) = clustered(5, 2_000, 20, 16, 8);
    for quantization in [INT8, BINARY] {
        let mut a = load(config(16, Distance::Euclid, Some(quantization)), &base);
        let b = load(config(16, Distance::Euclid, Some(quantization)), &base);
        for q in &queries {
            assert_eq!(
                a.search(&request(q, 10, 32, rescore(3.0))).unwrap(),
                b.search(&request(q, 10, 32, rescore(3.0))).unwrap()
            );
        }
        // Delete every even id, then every search (rescored or not, any oversampling) must skip them.
        let even: Vec<PointId> = (0..2_000).step_by(2).map(PointId::Num).collect();
        a.apply(PointsOp::Delete(PointSelector::Ids(even))).unwrap();
        for q in &queries {
            for params in [
                rescore(1.0),
                rescore(10.0),
                Some(QuantizationSearchParams {
                    ignore: false,
                    rescore: false,
                    oversampling: 1.0,
                }),
            ] {
                let hits = a.search(&request(q, 20, 32, params)).unwrap();
                assert_eq!(hits.len(), 20);
                assert!(
                    hits.iter()
                        .all(|h| matches!(h.id, PointId::Num(i) if i % 2 == 1)),
                    "{quantization:?}: deleted point returned"
                );
            }
        }
        // A rebuild retrains on the live points; still nothing deleted comes back.
        a.rebuild_index();
        assert!(a.quantization_active() == (1_000 >= TRAIN_AFTER_SLOTS));
        let hits = a
            .search(&request(&queries[0], 20, 32, rescore(2.0)))
            .unwrap();
        assert!(
            hits.iter()
                .all(|h| matches!(h.id, PointId::Num(i) if i % 2 == 1))
        );
    }
}

#[test]
fn quantization_leaves_the_digest_unchanged() {
    let (base, _) = clustered(6, 1_500, 0, 12, 4);
    let plain = load(config(12, Distance::Dot, None), &base);
    let digest = plain.digest();
    for quantization in [
        INT8,
        BINARY,
        QuantizationConfig::Scalar {
            quantile: None,
            always_ram: Some(false),
        },
    ] {
        let q = load(config(12, Distance::Dot, Some(quantization)), &base);
        assert!(q.quantization_active());
        assert_eq!(q.digest(), digest, "{quantization:?}");
    }
}

#[test]
fn snapshots_keep_the_config_and_quantizer_and_restore_identical_rankings() {
    let (base, queries) = clustered(7, 2_500, 15, 24, 8);
    for quantization in [INT8, BINARY] {
        let mut c = load(config(24, Distance::Cosine, Some(quantization)), &base);
        let snapshot = |c: &Collection| {
            let mut bytes = Vec::new();
            write_full_snapshot(c, &mut bytes, &SnapshotOptions::default()).unwrap();
            let restored = restore_full(&bytes[..], &mut |_| ()).unwrap();
            assert_eq!(restored.config(), c.config());
            assert_eq!(restored.config().quantization, Some(quantization));
            assert_eq!(restored.digest(), c.digest());
            assert_eq!(
                restored.quantizer_params(),
                c.quantizer_params(),
                "parameters travel, not retrained"
            );
            assert!(restored.quantization_active());
            restored
        };
        // Same slot layout (no tombstones): the restored collection ranks exactly as its source.
        let restored = snapshot(&c);
        for q in &queries {
            let r = request(q, 10, 40, rescore(2.0));
            assert_eq!(ids(&restored, &r), ids(&c, &r), "{quantization:?}");
        }
        // After deletions the restore renumbers slots. Code distances tie (often, for Hamming
        // distances) and ties break by slot, so candidate sets may differ; results stay valid.
        c.apply(PointsOp::Delete(PointSelector::Ids(
            (0..50).map(PointId::Num).collect(),
        )))
        .unwrap();
        let restored = snapshot(&c);
        for q in &queries {
            let hits = ids(&restored, &request(q, 10, 40, rescore(2.0)));
            assert_eq!(hits.len(), 10);
            assert!(
                hits.iter()
                    .all(|id| matches!(id, PointId::Num(i) if *i >= 50))
            );
        }
    }
}
