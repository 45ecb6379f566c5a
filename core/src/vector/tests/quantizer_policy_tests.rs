//! The replica-local quantizer policy: the training threshold is exact (n - 1 slots untrained,
//! the n-th trains), lowering it trains at once, rebuilds and snapshot restores keep working with
//! it, and the `skip-rescore` bug switch only exists with `bug-injection`.

use super::*;
use crate::vector::collection::{Collection, QuantizerPolicy, SearchRequest};
use crate::vector::quantization::{QuantizationConfig, QuantizationSearchParams, TRAIN_AFTER_SLOTS};
use crate::vector::snapshot::{SnapshotOptions, restore_full, write_full_snapshot};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 6;
const INT8: QuantizationConfig = QuantizationConfig::Scalar { quantile: None, always_ram: None };
const BINARY: QuantizationConfig = QuantizationConfig::Binary { always_ram: None };

fn quantized(quantization: QuantizationConfig, policy: QuantizerPolicy) -> Collection {
    let mut cfg = config(DIM as u32, Distance::Euclid);
    cfg.quantization = Some(quantization);
    let mut c = Collection::new("c", cfg).unwrap();
    c.set_quantizer_policy(policy);
    c
}

fn upsert_one(c: &mut Collection, rng: &mut ChaCha8Rng, id: u64) {
    let v: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    c.apply(PointsOp::Upsert(vec![point(id, &v, serde_json::json!({}))])).unwrap();
}

fn snapshot_restore(c: &Collection) -> Collection {
    let mut bytes = Vec::new();
    write_full_snapshot(c, &mut bytes, &SnapshotOptions::default()).unwrap();
    restore_full(&bytes[..], &mut |_| ()).unwrap()
}

#[test]
fn the_training_threshold_knob_trains_at_exactly_n_slots() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(QuantizerPolicy::default().train_after, TRAIN_AFTER_SLOTS);
    for quantization in [INT8, BINARY] {
        for n in [1usize, 4, 17] {
            let mut c = quantized(quantization, QuantizerPolicy::train_after(n));
            assert_eq!(c.quantizer_policy().train_after, n);
            // Slots count replaced points too: half the inserts before the threshold replace.
            for i in 0..n - 1 {
                upsert_one(&mut c, &mut rng, (i / 2) as u64);
                assert!(!c.quantization_active(), "{quantization:?} n={n}: {} slots train nothing", i + 1);
            }
            assert_eq!(c.quantizer_params(), None);
            upsert_one(&mut c, &mut rng, 1_000);
            assert!(c.quantization_active(), "{quantization:?} n={n}: the n-th slot trains");
            assert!(c.quantizer_params().is_some());
            assert!(c.quantized_heap_bytes() > 0);
        }
    }
}

#[test]
fn lowering_the_threshold_trains_at_once_and_a_trained_quantizer_stays() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut c = quantized(INT8, QuantizerPolicy::default());
    for id in 0..10 {
        upsert_one(&mut c, &mut rng, id);
    }
    assert!(!c.quantization_active(), "10 slots are far below the default threshold");
    c.set_quantizer_policy(QuantizerPolicy::train_after(11));
    assert!(!c.quantization_active(), "still one slot short");
    c.set_quantizer_policy(QuantizerPolicy::train_after(10));
    assert!(c.quantization_active(), "a threshold at the slots held trains at once");
    let params = c.quantizer_params();
    c.set_quantizer_policy(QuantizerPolicy::train_after(500));
    assert_eq!(c.quantizer_params(), params, "raising the threshold never untrains nor retrains");
    c.set_quantizer_policy(QuantizerPolicy::train_after(0));
    assert_eq!(c.quantizer_policy().train_after, 1, "0 counts as 1");
}

#[test]
fn rebuilds_and_snapshot_restores_work_with_the_knob() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut c = quantized(BINARY, QuantizerPolicy::train_after(8));
    for id in 0..20 {
        upsert_one(&mut c, &mut rng, id % 12);
    }
    assert!(c.quantization_active());
    // A trained replica's snapshot carries its parameters; the policy stays behind (local).
    let restored = snapshot_restore(&c);
    assert_eq!(restored.quantizer_policy(), QuantizerPolicy::default());
    assert_eq!(restored.quantizer_params(), c.quantizer_params(), "parameters travel, not retrained");
    assert!(restored.quantization_active());
    let mut restored = restored;
    restored.set_quantizer_policy(QuantizerPolicy::train_after(8));
    assert_eq!(restored.quantizer_params(), c.quantizer_params(), "the policy does not retrain a restored quantizer");
    // A rebuild retrains on the 12 compacted slots under the replica's threshold, not the default.
    c.rebuild_index();
    assert_eq!(c.quantizer_policy().train_after, 8);
    assert!(c.quantization_active(), "12 compacted slots >= 8");
    let mut small = quantized(BINARY, QuantizerPolicy::train_after(8));
    for id in 0..10 {
        upsert_one(&mut small, &mut rng, id % 6);
    }
    small.rebuild_index();
    assert!(!small.quantization_active(), "6 compacted slots < 8");
    // An untrained snapshot restores untrained; the restored replica's policy then decides.
    let mut restored = snapshot_restore(&small);
    assert!(!restored.quantization_active());
    restored.set_quantizer_policy(QuantizerPolicy::train_after(7));
    assert!(!restored.quantization_active(), "6 slots < 7");
    upsert_one(&mut restored, &mut rng, 100);
    assert!(restored.quantization_active(), "the 7th slot trains");
}

#[test]
fn the_skip_rescore_bug_switch_only_exists_with_bug_injection() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let policy = QuantizerPolicy { train_after: 16, bug_skip_rescore: true };
    let mut c = quantized(BINARY, policy);
    for id in 0..40 {
        upsert_one(&mut c, &mut rng, id);
    }
    assert!(c.quantization_active());
    let scores = |c: &Collection, q: &[f32], exact: bool, ignore: bool| -> Vec<(PointId, u32)> {
        let mut r = SearchRequest::new(q.to_vec(), 5);
        r.exact = exact;
        r.quantization = Some(QuantizationSearchParams { ignore, rescore: true, oversampling: 8.0 });
        c.search(&r).unwrap().into_iter().map(|h| (h.id, h.score.to_bits())).collect()
    };
    let mut differ = 0;
    for _ in 0..20 {
        let q: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let exact = scores(&c, &q, true, false);
        // 40 candidates cover all 40 points: a correct rescore returns the exact top 5.
        let on_codes = scores(&c, &q, false, false);
        assert_eq!(scores(&c, &q, false, true), exact, "ignoring the codes walks the f32 vectors");
        if cfg!(feature = "bug-injection") {
            differ += (on_codes != exact) as usize;
        } else {
            assert_eq!(on_codes, exact);
        }
    }
    if cfg!(feature = "bug-injection") {
        assert_eq!(differ, 20, "Hamming counts read as distances never match the f32 scores");
    }
}
