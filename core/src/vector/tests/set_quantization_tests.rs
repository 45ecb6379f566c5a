//! `PointsOp::SetQuantization`: a collection's quantization changed after it holds points. The
//! change trains at once from the slots held (exactly at the threshold, not one slot before),
//! re-setting the same config is a no-op that keeps the trained parameters, points / `seq` /
//! digest never move, a bad config changes nothing, two replicas applying the same log train the
//! same codes, and a snapshot carries the new config and parameters.

use super::*;
use crate::vector::collection::{Collection, QuantizerPolicy, SearchRequest};
use crate::vector::error::EngineError;
use crate::vector::quantization::{QuantizationConfig, QuantizationSearchParams};
use crate::vector::snapshot::{SnapshotOptions, restore_full, write_full_snapshot};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 8;
const INT8: QuantizationConfig = QuantizationConfig::Scalar { quantile: None, always_ram: None };
const BINARY: QuantizationConfig = QuantizationConfig::Binary { always_ram: None };

fn filled(points: u64, seed: u64) -> Collection {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut c = Collection::new("c", config(DIM as u32, Distance::Cosine)).unwrap();
    c.set_quantizer_policy(QuantizerPolicy::train_after(10));
    for id in 0..points {
        let v: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        c.apply(PointsOp::Upsert(vec![point(id, &v, serde_json::json!({}))])).unwrap();
    }
    c
}

fn set(c: &mut Collection, q: Option<QuantizationConfig>) -> Result<usize, EngineError> {
    c.apply(PointsOp::SetQuantization { quantization: q })
}

fn top(c: &Collection, q: &[f32]) -> Vec<(PointId, u32)> {
    let mut r = SearchRequest::new(q.to_vec(), 5);
    r.quantization = Some(QuantizationSearchParams { ignore: false, rescore: false, oversampling: 1.0 });
    c.search(&r).unwrap().into_iter().map(|h| (h.id, h.score.to_bits())).collect()
}

#[test]
fn setting_quantization_trains_from_the_points_held_and_moves_no_point() {
    let mut c = filled(40, 1);
    let (seq, digest) = (c.seq(), c.digest());
    assert_eq!(set(&mut c, Some(INT8)).unwrap(), 1);
    assert_eq!(c.config().quantization, Some(INT8));
    assert!(c.quantization_active(), "40 slots >= 10: trained at once");
    let params = c.quantizer_params();
    assert!(params.is_some());
    assert_eq!(set(&mut c, Some(INT8)).unwrap(), 0, "the same config again is a no-op");
    assert_eq!(c.quantizer_params(), params, "and keeps the trained parameters");
    assert_eq!(set(&mut c, Some(BINARY)).unwrap(), 1);
    assert!(c.quantization_active());
    assert_ne!(c.quantizer_params(), params, "binary codes are trained anew");
    assert_eq!(set(&mut c, None).unwrap(), 1);
    assert!(!c.quantization_active());
    assert_eq!(c.quantized_heap_bytes(), 0, "disabling drops the codes");
    assert_eq!((c.seq(), c.digest()), (seq, digest), "points, seq and digest never move");
}

#[test]
fn below_the_threshold_the_insert_that_reaches_it_trains() {
    let mut c = filled(9, 2);
    set(&mut c, Some(INT8)).unwrap();
    assert!(!c.quantization_active(), "9 slots < 10");
    c.apply(PointsOp::Upsert(vec![point(100, &[0.5; DIM], serde_json::json!({}))])).unwrap();
    assert!(c.quantization_active(), "the 10th slot trains");
    let mut exact = filled(10, 2);
    set(&mut exact, Some(BINARY)).unwrap();
    assert!(exact.quantization_active(), "exactly 10 slots train at once");
}

#[test]
fn a_bad_config_is_refused_and_changes_nothing() {
    let mut c = filled(20, 3);
    set(&mut c, Some(INT8)).unwrap();
    let params = c.quantizer_params();
    for quantile in [0.1, f32::NAN, 1.5] {
        let bad = QuantizationConfig::Scalar { quantile: Some(quantile), always_ram: None };
        assert!(matches!(set(&mut c, Some(bad)), Err(EngineError::InvalidConfig(_))), "{quantile}");
        assert_eq!((c.config().quantization, c.quantizer_params()), (Some(INT8), params.clone()));
    }
}

#[test]
fn replicas_applying_the_same_log_train_the_same_codes_and_snapshots_carry_them() {
    let mut a = filled(60, 4);
    let mut b = filled(60, 4);
    for c in [&mut a, &mut b] {
        set(c, Some(INT8)).unwrap();
        set(c, Some(BINARY)).unwrap();
    }
    assert_eq!(a.quantizer_params(), b.quantizer_params());
    let mut bytes = Vec::new();
    write_full_snapshot(&a, &mut bytes, &SnapshotOptions::default()).unwrap();
    let restored = restore_full(&bytes[..], &mut |_| ()).unwrap();
    assert_eq!(restored.config().quantization, Some(BINARY));
    assert_eq!(restored.quantizer_params(), a.quantizer_params(), "parameters travel, not retrained");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..10 {
        let q: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        assert_eq!(top(&a, &q), top(&b, &q));
        assert_eq!(top(&a, &q), top(&restored, &q), "the restored replica ranks on the same codes");
    }
}
