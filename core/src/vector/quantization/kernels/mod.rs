//! Distance kernels on quantized codes: `u8` dot product and squared difference for scalar
//! (int8) codes, Hamming distance for binary codes.
//!
//! Integer arithmetic is exact, so unlike the f32 kernels every path (AVX-512BW, AVX2, NEON with
//! or without `dotprod`, or scalar) returns the *same* value, not one equal up to rounding; the
//! property tests (`tests.rs`) check exactly that. On x86_64 and aarch64 the widest available path
//! is chosen once at run time (NEON kernels in `neon.rs`), elsewhere the portable loops run (they
//! auto-vectorise to the target's baseline). Sums are `u32`: a `u8` product is at most 65,025, so
//! up to 66,051 dimensions fit, more than `MAX_VECTOR_SIZE` (65,536).
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
    /// 128-bit NEON, widening multiplies (aarch64 baseline).
    Neon,
    /// NEON with the `dotprod` extension (`udot`) for the `u8` kernels; Hamming as `Neon`.
    NeonDotProd,
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
        // NEON is aarch64 baseline, so this picks a NEON path there; the check keeps the shape.
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                if std::arch::is_aarch64_feature_detected!("dotprod") {
                    return CodeKernelLevel::NeonDotProd;
                }
                return CodeKernelLevel::Neon;
            }
        }
        CodeKernelLevel::Scalar
    })
}

/// Whether the AVX2 kernels may run (also true where AVX-512BW is chosen).
pub fn avx2_available() -> bool {
    matches!(code_kernel_level(), CodeKernelLevel::Avx2 | CodeKernelLevel::Avx512Bw)
}

/// Whether the NEON kernels may run (also true where `dotprod` is chosen).
pub fn neon_available() -> bool {
    matches!(code_kernel_level(), CodeKernelLevel::Neon | CodeKernelLevel::NeonDotProd)
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
        CodeKernelLevel::Scalar | CodeKernelLevel::Neon | CodeKernelLevel::NeonDotProd => {}
    }
    #[cfg(target_arch = "aarch64")]
    match code_kernel_level() {
        // SAFETY: NEON and `dotprod` were detected on this CPU.
        CodeKernelLevel::NeonDotProd => return unsafe { neon::dot_u8_dotprod(a, b) },
        // SAFETY: NEON was detected on this CPU.
        CodeKernelLevel::Neon => return unsafe { neon::dot_u8(a, b) },
        CodeKernelLevel::Scalar | CodeKernelLevel::Avx2 | CodeKernelLevel::Avx512Bw => {}
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
        CodeKernelLevel::Scalar | CodeKernelLevel::Neon | CodeKernelLevel::NeonDotProd => {}
    }
    #[cfg(target_arch = "aarch64")]
    match code_kernel_level() {
        // SAFETY: NEON and `dotprod` were detected on this CPU.
        CodeKernelLevel::NeonDotProd => return unsafe { neon::l2_u8_dotprod(a, b) },
        // SAFETY: NEON was detected on this CPU.
        CodeKernelLevel::Neon => return unsafe { neon::l2_u8(a, b) },
        CodeKernelLevel::Scalar | CodeKernelLevel::Avx2 | CodeKernelLevel::Avx512Bw => {}
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
    #[cfg(target_arch = "aarch64")]
    if neon_available() {
        // SAFETY: NEON was detected on this CPU.
        return unsafe { neon::hamming(a, b) };
    }
    hamming_scalar(a, b)
}

/// NEON [`dot_u8`] (the baseline widening path, even where `dotprod` is chosen), or `None` when
/// this CPU (or target) lacks NEON. For benchmarks and tests that must exercise it explicitly.
pub fn dot_u8_neon(a: &[u8], b: &[u8]) -> Option<u32> {
    #[cfg(target_arch = "aarch64")]
    if neon_available() {
        // SAFETY: NEON was detected on this CPU.
        return Some(unsafe { neon::dot_u8(a, b) });
    }
    let _ = (a, b);
    None
}

/// NEON [`l2_u8`] (the baseline widening path), or `None` when this CPU (or target) lacks NEON.
pub fn l2_u8_neon(a: &[u8], b: &[u8]) -> Option<u32> {
    #[cfg(target_arch = "aarch64")]
    if neon_available() {
        // SAFETY: NEON was detected on this CPU.
        return Some(unsafe { neon::l2_u8(a, b) });
    }
    let _ = (a, b);
    None
}

/// NEON [`hamming`], or `None` when this CPU (or target) lacks NEON.
pub fn hamming_neon(a: &[u64], b: &[u64]) -> Option<u32> {
    #[cfg(target_arch = "aarch64")]
    if neon_available() {
        // SAFETY: NEON was detected on this CPU.
        return Some(unsafe { neon::hamming(a, b) });
    }
    let _ = (a, b);
    None
}

/// NEON `dotprod` (`udot`) [`dot_u8`], or `None` when this CPU (or target) lacks the extension.
pub fn dot_u8_neon_dotprod(a: &[u8], b: &[u8]) -> Option<u32> {
    #[cfg(target_arch = "aarch64")]
    if code_kernel_level() == CodeKernelLevel::NeonDotProd {
        // SAFETY: NEON and `dotprod` were detected on this CPU.
        return Some(unsafe { neon::dot_u8_dotprod(a, b) });
    }
    let _ = (a, b);
    None
}

/// NEON `dotprod` (`udot`) [`l2_u8`], or `None` when this CPU (or target) lacks the extension.
pub fn l2_u8_neon_dotprod(a: &[u8], b: &[u8]) -> Option<u32> {
    #[cfg(target_arch = "aarch64")]
    if code_kernel_level() == CodeKernelLevel::NeonDotProd {
        // SAFETY: NEON and `dotprod` were detected on this CPU.
        return Some(unsafe { neon::l2_u8_dotprod(a, b) });
    }
    let _ = (a, b);
    None
}

/// Portable [`dot_u8`]: the fallback and the reference the SIMD paths are tested against.
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

#[cfg(target_arch = "aarch64")]
mod neon;

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
pub(crate) mod tests;
