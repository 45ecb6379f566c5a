use super::*;
use proptest::prelude::*;

fn code_pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (0usize..300).prop_flat_map(|n| {
        (
            prop::collection::vec(any::<u8>(), n),
            prop::collection::vec(any::<u8>(), n),
        )
    })
}

fn word_pair() -> impl Strategy<Value = (Vec<u64>, Vec<u64>)> {
    (0usize..40).prop_flat_map(|n| {
        (
            prop::collection::vec(any::<u64>(), n),
            prop::collection::vec(any::<u64>(), n),
        )
    })
}

proptest! {
    /// Every SIMD path this CPU has equals the scalar kernels exactly, for every length
    /// (tails of 0..63 bytes included).
    #[test]
    fn u8_kernels_match_scalar((a, b) in code_pair()) {
        prop_assert_eq!(dot_u8(&a, &b), dot_u8_scalar(&a, &b));
        prop_assert_eq!(l2_u8(&a, &b), l2_u8_scalar(&a, &b));
        #[cfg(target_arch = "x86_64")]
        if avx2_available() {
            // SAFETY: AVX2 was detected.
            prop_assert_eq!(unsafe { avx2::dot_u8(&a, &b) }, dot_u8_scalar(&a, &b));
            // SAFETY: AVX2 was detected.
            prop_assert_eq!(unsafe { avx2::l2_u8(&a, &b) }, l2_u8_scalar(&a, &b));
        }
        for (name, dot_path, l2_path) in U8_PATHS {
            if let (Some(d), Some(l)) = (dot_path(&a, &b), l2_path(&a, &b)) {
                prop_assert_eq!(d, dot_u8_scalar(&a, &b), "{} dot", name);
                prop_assert_eq!(l, l2_u8_scalar(&a, &b), "{} l2", name);
            }
        }
    }

    #[test]
    fn hamming_matches_scalar((a, b) in word_pair()) {
        prop_assert_eq!(hamming(&a, &b), hamming_scalar(&a, &b));
        if let Some(h) = hamming_neon(&a, &b) {
            prop_assert_eq!(h, hamming_scalar(&a, &b));
        }
    }
}

type U8Kernel = fn(&[u8], &[u8]) -> Option<u32>;

/// The explicit entry points of the NEON `u8` paths (`None` off aarch64 or without `dotprod`),
/// plus the dispatcher, so every path this CPU has is compared with the scalar one.
const U8_PATHS: [(&str, U8Kernel, U8Kernel); 3] = [
    ("dispatch", |a, b| Some(dot_u8(a, b)), |a, b| Some(l2_u8(a, b))),
    ("neon", dot_u8_neon, l2_u8_neon),
    ("neon dotprod", dot_u8_neon_dotprod, l2_u8_neon_dotprod),
];

/// Lengths 0..=70 cover every tail of the 64-, 32- and 16-byte (and 8- and 2-word) loops; the
/// large ones cover long accumulation (65,536 is `MAX_VECTOR_SIZE`).
fn lengths() -> impl Iterator<Item = usize> {
    (0..=70).chain([127, 128, 129, 255, 768, 1000, 1536, 4099, 65_536])
}

/// Deterministic xorshift words, so a failure names a reproducible case (the f32 kernel tests
/// draw their values from the same sequence).
pub(crate) fn words(len: usize, seed: u64) -> Vec<u64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect()
}

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    words(len.div_ceil(8), seed).iter().flat_map(|w| w.to_le_bytes()).take(len).collect()
}

#[test]
fn every_u8_path_matches_scalar_on_every_length_and_special_codes() {
    for len in lengths() {
        let rows = [
            ("random", bytes(len, 1)),
            ("random2", bytes(len, 2)),
            ("zeros", vec![0u8; len]),
            ("255", vec![255u8; len]),
            ("0/255", (0..len).map(|i| if i % 2 == 0 { 0 } else { 255 }).collect()),
            ("ramp", (0..len).map(|i| i as u8).collect()),
        ];
        for (na, a) in &rows {
            for (nb, b) in &rows {
                let (dot_ref, l2_ref) = (dot_u8_scalar(a, b), l2_u8_scalar(a, b));
                for (name, dot_path, l2_path) in U8_PATHS {
                    if let (Some(d), Some(l)) = (dot_path(a, b), l2_path(a, b)) {
                        assert_eq!(d, dot_ref, "{name} dot, len {len} {na} x {nb}");
                        assert_eq!(l, l2_ref, "{name} l2, len {len} {na} x {nb}");
                    }
                }
            }
        }
    }
}

#[test]
fn every_hamming_path_matches_scalar_on_every_length_and_special_words() {
    for len in lengths().filter(|&l| l <= 4099) {
        let rows = [
            ("random", words(len, 3)),
            ("random2", words(len, 4)),
            ("zeros", vec![0u64; len]),
            ("ones", vec![u64::MAX; len]),
            ("alternating", vec![0xAAAA_AAAA_AAAA_AAAA; len]),
        ];
        for (na, a) in &rows {
            for (nb, b) in &rows {
                let want = hamming_scalar(a, b);
                assert_eq!(hamming(a, b), want, "dispatch, {len} words {na} x {nb}");
                if let Some(h) = hamming_neon(a, b) {
                    assert_eq!(h, want, "neon, {len} words {na} x {nb}");
                }
            }
        }
    }
}

#[test]
fn level_matches_the_target() {
    let level = code_kernel_level();
    assert_eq!(level, code_kernel_level());
    assert_eq!(neon_available(), cfg!(target_arch = "aarch64"), "NEON is aarch64 baseline");
    assert!(!(avx2_available() && neon_available()));
    let (a, b) = ([1u8; 40], [2u8; 40]);
    assert_eq!(dot_u8_neon(&a, &b).is_some(), neon_available());
    assert_eq!(l2_u8_neon(&a, &b).is_some(), neon_available());
    assert_eq!(hamming_neon(&[1], &[2]).is_some(), neon_available());
    let dotprod = level == CodeKernelLevel::NeonDotProd;
    assert_eq!(dot_u8_neon_dotprod(&a, &b).is_some(), dotprod);
    assert_eq!(l2_u8_neon_dotprod(&a, &b).is_some(), dotprod);
    #[cfg(target_arch = "aarch64")]
    assert_eq!(dotprod, std::arch::is_aarch64_feature_detected!("dotprod"));
}

#[test]
fn unequal_lengths_use_common_prefix_in_release() {
    // In debug builds this is a caller bug caught by `debug_assert!`; only check release.
    if cfg!(debug_assertions) {
        return;
    }
    let (a, b) = (vec![3u8; 37], vec![1u8; 21]);
    for (name, dot_path, l2_path) in U8_PATHS {
        if let (Some(d), Some(l)) = (dot_path(&a, &b), l2_path(&b, &a)) {
            assert_eq!((d, l), (63, 84), "{name}");
        }
    }
    let (a, b) = (vec![u64::MAX; 11], vec![0u64; 5]);
    assert_eq!(hamming(&a, &b), 320);
    if let Some(h) = hamming_neon(&b, &a) {
        assert_eq!(h, 320);
    }
}

#[test]
fn extreme_codes_do_not_overflow_at_the_largest_dimension() {
    let n = 65_536;
    let (hi, lo) = (vec![255u8; n], vec![0u8; n]);
    assert_eq!(dot_u8(&hi, &hi), 65_025 * n as u32);
    assert_eq!(l2_u8(&hi, &lo), 65_025 * n as u32);
    assert_eq!(l2_u8(&lo, &hi), 65_025 * n as u32);
    assert_eq!(dot_u8_scalar(&hi, &hi), 65_025 * n as u32);
    assert_eq!(dot_u8(&hi, &lo), 0);
    let want = 65_025 * n as u32;
    for (name, dot_path, l2_path) in U8_PATHS {
        let got = (dot_path(&hi, &hi), l2_path(&hi, &lo), l2_path(&lo, &hi));
        if let (Some(d), Some(l), Some(l_rev)) = got {
            assert_eq!((d, l, l_rev), (want, want, want), "{name}");
        }
    }
    let words = n / 64;
    assert_eq!(hamming(&vec![u64::MAX; words], &vec![0; words]), n as u32);
    if let Some(h) = hamming_neon(&vec![u64::MAX; words], &vec![0; words]) {
        assert_eq!(h, n as u32);
    }
    assert_eq!(hamming(&[u64::MAX; 3], &[0; 3]), 192);
    assert_eq!(hamming(&[0b1011], &[0b0001]), 2);
}
