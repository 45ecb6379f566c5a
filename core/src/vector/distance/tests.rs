use super::*;
use proptest::prelude::*;

fn naive_l2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum()
}

fn naive_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Bound on rounding error: relative to the sum of absolute terms, which stays meaningful
/// when a dot product cancels to near zero.
fn close(got: f32, want: f64, abs_terms: f64) -> bool {
    (got as f64 - want).abs() <= 1e-5 * abs_terms + 1e-6
}

#[test]
fn known_values() {
    let a = [1.0, 2.0, 3.0];
    let b = [4.0, 6.0, 3.0];
    assert_eq!(l2_squared(&a, &b), 25.0);
    assert_eq!(dot(&a, &b), 4.0 + 12.0 + 9.0);
    assert_eq!(norm_squared(&a), 14.0);
    assert_eq!(l2_squared(&[], &[]), 0.0);
    assert_eq!(dot(&[], &[]), 0.0);
}

#[test]
fn every_length_and_remainder_matches_reference() {
    for len in 0..300usize {
        let a: Vec<f32> = (0..len).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.03).collect();
        let b: Vec<f32> = (0..len).map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.02).collect();
        let abs_dot: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum();
        let l2 = naive_l2(&a, &b);
        assert!(close(l2_squared(&a, &b), l2, l2), "l2 len {len}");
        assert!(close(l2_squared_scalar(&a, &b), l2, l2), "l2 scalar len {len}");
        assert!(close(dot(&a, &b), naive_dot(&a, &b), abs_dot), "dot len {len}");
        assert!(close(dot_scalar(&a, &b), naive_dot(&a, &b), abs_dot), "dot scalar {len}");
        for (name, l2_path, dot_path) in SIMD_PATHS {
            if let (Some(l), Some(d)) = (l2_path(&a, &b), dot_path(&a, &b)) {
                assert!(close(l, l2, l2), "l2 {name} len {len}");
                assert!(close(d, naive_dot(&a, &b), abs_dot), "dot {name} len {len}");
            }
        }
    }
}

#[test]
fn level_is_cached_and_consistent() {
    assert_eq!(kernel_level(), kernel_level());
    let a = [1.0f32; 40];
    let simd = matches!(kernel_level(), KernelLevel::Avx2Fma | KernelLevel::Avx512);
    assert_eq!(l2_squared_simd(&a, &a).is_some(), simd);
    assert_eq!(dot_simd(&a, &a).is_some(), simd);
    let avx512 = kernel_level() == KernelLevel::Avx512;
    assert_eq!(l2_squared_avx512(&a, &a).is_some(), avx512);
    assert_eq!(dot_avx512(&a, &a).is_some(), avx512);
    let neon = kernel_level() == KernelLevel::Neon;
    assert_eq!(l2_squared_neon(&a, &a).is_some(), neon);
    assert_eq!(dot_neon(&a, &a).is_some(), neon);
    assert_eq!(neon, cfg!(target_arch = "aarch64"), "NEON is baseline on aarch64 and only there");
}

#[test]
fn unequal_lengths_use_common_prefix_in_release() {
    // In debug builds this is a caller bug caught by `debug_assert!`; only check release.
    if cfg!(debug_assertions) {
        return;
    }
    let a = [1.0f32; 37];
    let b = [2.0f32; 9];
    assert_eq!(l2_squared(&a, &b), 9.0);
    assert_eq!(dot(&b, &a), 18.0);
    for (name, l2_path, dot_path) in SIMD_PATHS {
        if let (Some(l), Some(d)) = (l2_path(&a, &b), dot_path(&b, &a)) {
            assert_eq!((l, d), (9.0, 18.0), "{name}");
        }
    }
}

type Kernel = fn(&[f32], &[f32]) -> Option<f32>;

/// Every explicit SIMD entry point; each is `None` where this CPU (or target) lacks it, so the
/// tests below cover whichever paths the machine running them has.
const SIMD_PATHS: [(&str, Kernel, Kernel); 3] = [
    ("avx2", l2_squared_simd, dot_simd),
    ("avx512", l2_squared_avx512, dot_avx512),
    ("neon", l2_squared_neon, dot_neon),
];

/// Lengths 0..=70 cover every remainder of the 16-, 8- and 4-wide loops and the short-row
/// branch; the large ones cover long accumulation (65,536 is `MAX_VECTOR_SIZE`).
fn lengths() -> impl Iterator<Item = usize> {
    (0..=70).chain([127, 128, 129, 255, 768, 1000, 1536, 4099, 65_536])
}

/// Deterministic xorshift values in `[-scale, scale)`, so a failure names a reproducible case.
fn values(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    crate::vector::quantization::kernels::tests::words(len, seed)
        .into_iter()
        .map(|x| ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale)
        .collect()
}

/// Checks every available SIMD path against the scalar one (and the f64 reference) on `a`, `b`.
/// Rows shorter than 8 must match the scalar path exactly: every path sums them sequentially.
fn check_all_paths(a: &[f32], b: &[f32], case: &str) {
    let l2_ref = l2_squared_scalar(a, b);
    let dot_ref = dot_scalar(a, b);
    let abs_dot: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum();
    assert!(close(l2_ref, naive_l2(a, b), naive_l2(a, b)), "scalar l2 {case}");
    assert!(close(dot_ref, naive_dot(a, b), abs_dot), "scalar dot {case}");
    let dispatched = [("dispatch", Some(l2_squared(a, b)), Some(dot(a, b)))];
    let explicit =
        SIMD_PATHS.map(|(name, l2_path, dot_path)| (name, l2_path(a, b), dot_path(a, b)));
    for (name, l2_got, dot_got) in dispatched.into_iter().chain(explicit) {
        let (Some(l2_got), Some(dot_got)) = (l2_got, dot_got) else { continue };
        if a.len() < 8 {
            assert_eq!(l2_got, l2_ref, "{name} l2 short row {case}");
            assert_eq!(dot_got, dot_ref, "{name} dot short row {case}");
        }
        let l2_ref = l2_ref as f64;
        assert!(close(l2_got, l2_ref, l2_ref), "{name} l2 {l2_got} vs {l2_ref} {case}");
        let dot_ok = close(dot_got, dot_ref as f64, abs_dot);
        assert!(dot_ok, "{name} dot {dot_got} vs {dot_ref} {case}");
    }
}

#[test]
fn every_path_matches_scalar_on_every_length() {
    for len in lengths() {
        for seed in 0..3 {
            let a = values(len, 2 * seed + 1, 100.0);
            let b = values(len, 2 * seed + 2, 100.0);
            check_all_paths(&a, &b, &format!("len {len} seed {seed}"));
        }
        // Identical rows: l2 is exactly zero on every path, dot is the squared norm.
        let a = values(len, 99, 3.0);
        check_all_paths(&a, &a, &format!("len {len} same row"));
        for (name, l2_path, _) in SIMD_PATHS {
            if let Some(l) = l2_path(&a, &a) {
                assert_eq!(l, 0.0, "{name} l2 of a row with itself, len {len}");
            }
        }
    }
}

#[test]
fn every_path_matches_scalar_on_special_values() {
    for len in lengths() {
        let zeros = vec![0.0f32; len];
        let neg_zeros = vec![-0.0f32; len];
        let ones: Vec<f32> = (0..len).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
        // Subnormals (their squares flush to zero or round) and magnitudes from 1e-15 to 1e15
        // whose squares, summed over 65,536 dimensions, still stay finite.
        let subnormal: Vec<f32> =
            (0..len).map(|i| f32::MIN_POSITIVE / (2 + i % 7) as f32).collect();
        let wide: Vec<f32> = values(len, 7, 1.0)
            .iter()
            .enumerate()
            .map(|(i, v)| v * 10f32.powi((i % 31) as i32 - 15))
            .collect();
        let random = values(len, 8, 100.0);
        let rows = [
            ("zeros", &zeros),
            ("-0.0", &neg_zeros),
            ("+-1", &ones),
            ("subnormal", &subnormal),
            ("wide", &wide),
            ("random", &random),
        ];
        for (na, a) in rows {
            for (nb, b) in rows {
                check_all_paths(a, b, &format!("len {len} {na} x {nb}"));
            }
        }
    }
}

/// Infinities and NaN: whatever the summation order, a NaN term or `inf - inf` gives NaN and a
/// lone infinite term gives that infinity, so every path must agree with the scalar one exactly.
#[test]
fn every_path_propagates_inf_and_nan_like_scalar() {
    for len in lengths().filter(|&l| l > 0) {
        let base = values(len, 11, 10.0);
        let cases = [
            (f32::INFINITY, 0),
            (f32::NEG_INFINITY, len / 2),
            (f32::NAN, len - 1),
            (f32::INFINITY, len - 1),
        ];
        for (special, at) in cases {
            let mut a = base.clone();
            a[at] = special;
            let b = values(len, 12, 10.0);
            let same = |got: f32, want: f32| got == want || (got.is_nan() && want.is_nan());
            let (l2_ref, dot_ref) = (l2_squared_scalar(&a, &b), dot_scalar(&a, &b));
            assert!(!l2_ref.is_finite() && !dot_ref.is_finite());
            assert!(same(l2_squared(&a, &b), l2_ref), "dispatch l2, len {len}");
            assert!(same(dot(&a, &b), dot_ref), "dispatch dot, len {len}");
            for (name, l2_path, dot_path) in SIMD_PATHS {
                if let (Some(l), Some(d)) = (l2_path(&a, &b), dot_path(&a, &b)) {
                    let case = format!("{special} at {at} of {len}");
                    assert!(same(l, l2_ref), "{name} l2 {l} vs {l2_ref}, {case}");
                    assert!(same(d, dot_ref), "{name} dot {d} vs {dot_ref}, {case}");
                }
            }
            // Both rows infinite at the same place: `inf - inf` is NaN for l2.
            let mut b = b;
            b[at] = special;
            let l2_ref = l2_squared_scalar(&a, &b);
            assert!(l2_ref.is_nan());
            for (name, l2_path, _) in SIMD_PATHS {
                if let Some(l) = l2_path(&a, &b) {
                    assert!(l.is_nan(), "{name} l2 {l}, {special} in both rows at {at} of {len}");
                }
            }
        }
    }
}

fn pair() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (0usize..300).prop_flat_map(|len| {
        (
            proptest::collection::vec(-100.0f32..100.0, len),
            proptest::collection::vec(-100.0f32..100.0, len),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn simd_matches_scalar((a, b) in pair()) {
        let l2_ref = l2_squared_scalar(&a, &b) as f64;
        let abs_dot: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64 * *y as f64).abs()).sum();
        let dot_ref = dot_scalar(&a, &b) as f64;
        // Dispatching path (SIMD when available) against the scalar path.
        prop_assert!(close(l2_squared(&a, &b), l2_ref, l2_ref), "l2 {} vs {}", l2_squared(&a, &b), l2_ref);
        prop_assert!(close(dot(&a, &b), dot_ref, abs_dot), "dot {} vs {}", dot(&a, &b), dot_ref);
        if let Some(s) = l2_squared_simd(&a, &b) {
            prop_assert!(close(s, l2_ref, l2_ref));
        }
        if let Some(s) = dot_simd(&a, &b) {
            prop_assert!(close(s, dot_ref, abs_dot));
        }
        if let Some(s) = l2_squared_avx512(&a, &b) {
            prop_assert!(close(s, l2_ref, l2_ref), "avx512 l2 {} vs {}", s, l2_ref);
        }
        if let Some(s) = dot_avx512(&a, &b) {
            prop_assert!(close(s, dot_ref, abs_dot), "avx512 dot {} vs {}", s, dot_ref);
        }
        if let Some(s) = l2_squared_neon(&a, &b) {
            prop_assert!(close(s, l2_ref, l2_ref), "neon l2 {} vs {}", s, l2_ref);
        }
        if let Some(s) = dot_neon(&a, &b) {
            prop_assert!(close(s, dot_ref, abs_dot), "neon dot {} vs {}", s, dot_ref);
        }
        // Both against an f64 reference, so neither path can drift unnoticed.
        prop_assert!(close(l2_squared(&a, &b), naive_l2(&a, &b), l2_ref));
        prop_assert!(close(dot(&a, &b), naive_dot(&a, &b), abs_dot));
    }
}
