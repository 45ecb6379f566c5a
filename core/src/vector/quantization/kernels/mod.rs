//! Distance kernels on quantized codes: `u8` dot product and squared difference for scalar
//! (int8) codes, Hamming distance for binary codes.
//!
//! Integer arithmetic is exact, so unlike the f32 kernels every path (AVX-512BW, AVX2 or scalar)
//! returns the *same* value, not one equal up to rounding; the property tests below check exactly
//! that. On x86_64 the widest available path is chosen once at run time, else the portable loops
//! run (they auto-vectorise to the target's baseline). Sums are `u32`: a `u8` product is at most
//! 65,025, so up to 66,051 dimensions fit, more than `MAX_VECTOR_SIZE` (65,536).
//!
//! Slices of unequal length are a caller bug (`debug_assert!`); in release builds the kernels use
//! the common prefix, so they never read out of bounds.

use std::sync::OnceLock;

/// Which implementation the code kernels use on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKernelLevel {
    /// Portable loops.
    Scalar,
    /// 256-bit AVX2.
    Avx2,
    /// 512-bit AVX-512BW (byte/word instructions).
    Avx512Bw,
}

/// The code kernel implementation chosen for this CPU (detected once).
pub fn code_kernel_level() -> CodeKernelLevel {
    static LEVEL: OnceLock<CodeKernelLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
                return CodeKernelLevel::Avx512Bw;
            }
            if is_x86_feature_detected!("avx2") {
                return CodeKernelLevel::Avx2;
            }
        }
        CodeKernelLevel::Scalar
    })
}

/// Whether the AVX2 kernels may run (also true where AVX-512BW is chosen).
pub fn avx2_available() -> bool {
    code_kernel_level() != CodeKernelLevel::Scalar
}

/// `Σ a[i] * b[i]` over `u8` codes.
#[inline]
pub fn dot_u8(a: &[u8], b: &[u8]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    match code_kernel_level() {
        // SAFETY: AVX-512F and AVX-512BW were detected on this CPU.
        CodeKernelLevel::Avx512Bw => return unsafe { avx512::dot_u8(a, b) },
        // SAFETY: AVX2 was detected on this CPU.
        CodeKernelLevel::Avx2 => return unsafe { avx2::dot_u8(a, b) },
        CodeKernelLevel::Scalar => {}
    }
    dot_u8_scalar(a, b)
}

/// `Σ (a[i] - b[i])²` over `u8` codes.
#[inline]
pub fn l2_u8(a: &[u8], b: &[u8]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    match code_kernel_level() {
        // SAFETY: AVX-512F and AVX-512BW were detected on this CPU.
        CodeKernelLevel::Avx512Bw => return unsafe { avx512::l2_u8(a, b) },
        // SAFETY: AVX2 was detected on this CPU.
        CodeKernelLevel::Avx2 => return unsafe { avx2::l2_u8(a, b) },
        CodeKernelLevel::Scalar => {}
    }
    l2_u8_scalar(a, b)
}

/// Number of differing bits between two bit strings packed in `u64` words.
#[inline]
pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if avx2_available() {
        // SAFETY: AVX2 was detected on this CPU (every AVX2 CPU has POPCNT).
        return unsafe { avx2::hamming(a, b) };
    }
    hamming_scalar(a, b)
}

/// Portable [`dot_u8`]: the fallback and the reference the AVX2 path is tested against.
pub fn dot_u8_scalar(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(&x, &y)| x as u32 * y as u32).sum()
}

/// Portable [`l2_u8`].
pub fn l2_u8_scalar(a: &[u8], b: &[u8]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = x as i32 - y as i32;
            (d * d) as u32
        })
        .sum()
}

/// Portable [`hamming`].
pub fn hamming_scalar(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(&x, &y)| (x ^ y).count_ones()).sum()
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Adds the eight `u32` lanes of `v`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn horizontal_sum(v: __m256i) -> u32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s) as u32
    }

    /// Widens 16 bytes to 16 `i16` lanes.
    ///
    /// # Safety
    /// `p .. p + 16` must be readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn widen(p: *const u8) -> __m256i {
        // SAFETY: the caller guarantees 16 readable bytes.
        _mm256_cvtepu8_epi16(unsafe { _mm_loadu_si128(p.cast()) })
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot_u8(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        let mut i = 0;
        // SAFETY (all loads): each reads 16 bytes at `i` (+16) with `i + 32 <= n` or `i + 16 <= n`.
        unsafe {
            while i + 32 <= n {
                // Lanes are 0..=255 as i16; madd sums pairs of products (<= 130,050) into i32,
                // which the u32 accumulation reinterprets losslessly.
                acc0 =
                    _mm256_add_epi32(acc0, _mm256_madd_epi16(widen(pa.add(i)), widen(pb.add(i))));
                acc1 = _mm256_add_epi32(
                    acc1,
                    _mm256_madd_epi16(widen(pa.add(i + 16)), widen(pb.add(i + 16))),
                );
                i += 32;
            }
            while i + 16 <= n {
                acc0 =
                    _mm256_add_epi32(acc0, _mm256_madd_epi16(widen(pa.add(i)), widen(pb.add(i))));
                i += 16;
            }
        }
        horizontal_sum(_mm256_add_epi32(acc0, acc1))
            .wrapping_add(super::dot_u8_scalar(&a[i..n], &b[i..n]))
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn l2_u8(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_si256();
        let mut acc1 = _mm256_setzero_si256();
        let mut i = 0;
        // SAFETY (all loads): as in `dot_u8`.
        unsafe {
            while i + 32 <= n {
                let d0 = _mm256_sub_epi16(widen(pa.add(i)), widen(pb.add(i)));
                let d1 = _mm256_sub_epi16(widen(pa.add(i + 16)), widen(pb.add(i + 16)));
                acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(d0, d0));
                acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(d1, d1));
                i += 32;
            }
            while i + 16 <= n {
                let d = _mm256_sub_epi16(widen(pa.add(i)), widen(pb.add(i)));
                acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(d, d));
                i += 16;
            }
        }
        horizontal_sum(_mm256_add_epi32(acc0, acc1))
            .wrapping_add(super::l2_u8_scalar(&a[i..n], &b[i..n]))
    }

    /// Hamming distance with the hardware `popcnt` on each word (four independent sums).
    ///
    /// # Safety
    /// The CPU must support AVX2 (and therefore POPCNT).
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn hamming(a: &[u64], b: &[u64]) -> u32 {
        let n = a.len().min(b.len());
        let (mut s0, mut s1, mut s2, mut s3) = (0u32, 0u32, 0u32, 0u32);
        let mut i = 0;
        while i + 4 <= n {
            s0 += (a[i] ^ b[i]).count_ones();
            s1 += (a[i + 1] ^ b[i + 1]).count_ones();
            s2 += (a[i + 2] ^ b[i + 2]).count_ones();
            s3 += (a[i + 3] ^ b[i + 3]).count_ones();
            i += 4;
        }
        while i < n {
            s0 += (a[i] ^ b[i]).count_ones();
            i += 1;
        }
        s0 + s1 + s2 + s3
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Widens 32 bytes to 32 `i16` lanes.
    ///
    /// # Safety
    /// `p .. p + 32` must be readable.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn widen(p: *const u8) -> __m512i {
        // SAFETY: the caller guarantees 32 readable bytes.
        _mm512_cvtepu8_epi16(unsafe { _mm256_loadu_si256(p.cast()) })
    }

    /// Adds the sixteen 32-bit lanes of `v` modulo 2^32 (the exact `u32` total, see the module
    /// doc).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn total(v: __m512i) -> u32 {
        let lo = _mm512_castsi512_si256(v);
        let hi = _mm512_extracti64x4_epi64::<1>(v);
        let s = _mm256_add_epi32(lo, hi);
        let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s) as u32
    }

    /// # Safety
    /// The CPU must support AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn dot_u8(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_si512();
        let mut acc1 = _mm512_setzero_si512();
        let mut i = 0;
        // SAFETY (all loads): each reads 32 bytes at `i` (+32) with `i + 64 <= n` or `i + 32 <= n`.
        unsafe {
            while i + 64 <= n {
                acc0 =
                    _mm512_add_epi32(acc0, _mm512_madd_epi16(widen(pa.add(i)), widen(pb.add(i))));
                acc1 = _mm512_add_epi32(
                    acc1,
                    _mm512_madd_epi16(widen(pa.add(i + 32)), widen(pb.add(i + 32))),
                );
                i += 64;
            }
            while i + 32 <= n {
                acc0 =
                    _mm512_add_epi32(acc0, _mm512_madd_epi16(widen(pa.add(i)), widen(pb.add(i))));
                i += 32;
            }
        }
        total(_mm512_add_epi32(acc0, acc1)).wrapping_add(super::dot_u8_scalar(&a[i..n], &b[i..n]))
    }

    /// # Safety
    /// The CPU must support AVX-512F and AVX-512BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn l2_u8(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_si512();
        let mut acc1 = _mm512_setzero_si512();
        let mut i = 0;
        // SAFETY (all loads): as in `dot_u8`.
        unsafe {
            while i + 64 <= n {
                let d0 = _mm512_sub_epi16(widen(pa.add(i)), widen(pb.add(i)));
                let d1 = _mm512_sub_epi16(widen(pa.add(i + 32)), widen(pb.add(i + 32)));
                acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(d0, d0));
                acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(d1, d1));
                i += 64;
            }
            while i + 32 <= n {
                let d = _mm512_sub_epi16(widen(pa.add(i)), widen(pb.add(i)));
                acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(d, d));
                i += 32;
            }
        }
        total(_mm512_add_epi32(acc0, acc1)).wrapping_add(super::l2_u8_scalar(&a[i..n], &b[i..n]))
    }
}

#[cfg(test)]
mod tests {
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
        }

        #[test]
        fn hamming_matches_scalar((a, b) in word_pair()) {
            prop_assert_eq!(hamming(&a, &b), hamming_scalar(&a, &b));
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
        assert_eq!(hamming(&[u64::MAX; 3], &[0; 3]), 192);
        assert_eq!(hamming(&[0b1011], &[0b0001]), 2);
    }
}
