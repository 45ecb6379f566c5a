//! Distance kernels shared by exact search and the ANN indexes.
//!
//! Conventions (used by every [`crate::vector::index::AnnIndex`]): a *distance* is smaller when
//! vectors are closer. `l2_squared` for Euclid, `1 - dot` for Cosine (inputs normalised at insert),
//! `-dot` for Dot (may be negative).
//!
//! Search time is dominated by these two loops, so on x86_64 they run an AVX-512F implementation
//! when the CPU has it, else AVX2+FMA, else a portable scalar loop; on aarch64 they run
//! hand-written NEON kernels (`neon.rs`). The choice is made once at run time, then cached.
//! Every path is public so benchmarks and tests can compare them. SIMD paths sum in a different
//! order, so results differ from the scalar path by float rounding only.
//!
//! Slices of unequal length are a caller bug (`debug_assert!`); in release builds the kernels
//! use the common prefix, so they never read out of bounds.

/// Which kernel implementation the dispatching functions use on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelLevel {
    /// Portable scalar loops (the only path off x86_64 and aarch64).
    Scalar,
    /// 256-bit AVX2 with fused multiply-add.
    Avx2Fma,
    /// 512-bit AVX-512F (masked tail loads, so no scalar remainder loop).
    Avx512,
    /// 128-bit NEON with fused multiply-add (aarch64 baseline).
    Neon,
}

/// The kernel implementation chosen for this CPU (detected on first use, then cached), so
/// benchmark reports can say which path they measured.
pub fn kernel_level() -> KernelLevel {
    detect::level()
}

/// Sum of squared component differences.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    match detect::level() {
        // SAFETY: `detect::level` returns `Avx512` only after `is_x86_feature_detected!`
        // confirmed AVX-512F on this CPU.
        KernelLevel::Avx512 => return unsafe { avx512::l2_squared(a, b) },
        // SAFETY: `Avx2Fma` only after AVX2 and FMA were detected.
        KernelLevel::Avx2Fma => return unsafe { avx2::l2_squared(a, b) },
        KernelLevel::Scalar | KernelLevel::Neon => {}
    }
    #[cfg(target_arch = "aarch64")]
    if detect::level() == KernelLevel::Neon {
        // SAFETY: `detect::level` returns `Neon` only after `is_aarch64_feature_detected!`
        // confirmed NEON on this CPU.
        return unsafe { neon::l2_squared(a, b) };
    }
    l2_squared_scalar(a, b)
}

/// Inner product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    match detect::level() {
        // SAFETY: `detect::level` returns `Avx512` only after `is_x86_feature_detected!`
        // confirmed AVX-512F on this CPU.
        KernelLevel::Avx512 => return unsafe { avx512::dot(a, b) },
        // SAFETY: `Avx2Fma` only after AVX2 and FMA were detected.
        KernelLevel::Avx2Fma => return unsafe { avx2::dot(a, b) },
        KernelLevel::Scalar | KernelLevel::Neon => {}
    }
    #[cfg(target_arch = "aarch64")]
    if detect::level() == KernelLevel::Neon {
        // SAFETY: `detect::level` returns `Neon` only after `is_aarch64_feature_detected!`
        // confirmed NEON on this CPU.
        return unsafe { neon::dot(a, b) };
    }
    dot_scalar(a, b)
}

/// Squared L2 norm (`dot(a, a)`), used to normalise vectors for Cosine.
#[inline]
pub fn norm_squared(a: &[f32]) -> f32 {
    dot(a, a)
}

/// Portable `l2_squared`: the fallback path and the reference the SIMD path is tested against.
///
/// Eight independent accumulators keep the dependency chain short (and let the compiler use
/// whatever vector width the target baseline has) without changing the result's meaning.
pub fn l2_squared_scalar(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let mut chunks_a = a.chunks_exact(8);
    let mut chunks_b = b.chunks_exact(8);
    for (ca, cb) in (&mut chunks_a).zip(&mut chunks_b) {
        for i in 0..8 {
            let d = ca[i] - cb[i];
            acc[i] += d * d;
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in chunks_a.remainder().iter().zip(chunks_b.remainder()) {
        let d = x - y;
        tail += d * d;
    }
    acc.iter().sum::<f32>() + tail
}

/// Portable `dot`: the fallback path and the reference the SIMD path is tested against.
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let mut chunks_a = a.chunks_exact(8);
    let mut chunks_b = b.chunks_exact(8);
    for (ca, cb) in (&mut chunks_a).zip(&mut chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in chunks_a.remainder().iter().zip(chunks_b.remainder()) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// AVX2+FMA `l2_squared`, or `None` when this CPU (or target) lacks it. For benchmarks and tests
/// that must exercise the SIMD path explicitly.
pub fn l2_squared_simd(a: &[f32], b: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if matches!(detect::level(), KernelLevel::Avx2Fma | KernelLevel::Avx512) {
        // SAFETY: AVX2 and FMA were detected at run time (see `detect::level`; every
        // AVX-512 CPU we select also reports both).
        return Some(unsafe { avx2::l2_squared(a, b) });
    }
    let _ = (a, b);
    None
}

/// AVX2+FMA `dot`, or `None` when this CPU (or target) lacks it.
pub fn dot_simd(a: &[f32], b: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if matches!(detect::level(), KernelLevel::Avx2Fma | KernelLevel::Avx512) {
        // SAFETY: AVX2 and FMA were detected at run time (see `detect::level`; every
        // AVX-512 CPU we select also reports both).
        return Some(unsafe { avx2::dot(a, b) });
    }
    let _ = (a, b);
    None
}

/// AVX-512F `l2_squared`, or `None` when this CPU (or target) lacks it.
pub fn l2_squared_avx512(a: &[f32], b: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if detect::level() == KernelLevel::Avx512 {
        // SAFETY: AVX-512F was detected at run time (see `detect::level`).
        return Some(unsafe { avx512::l2_squared(a, b) });
    }
    let _ = (a, b);
    None
}

/// AVX-512F `dot`, or `None` when this CPU (or target) lacks it.
pub fn dot_avx512(a: &[f32], b: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    if detect::level() == KernelLevel::Avx512 {
        // SAFETY: AVX-512F was detected at run time (see `detect::level`).
        return Some(unsafe { avx512::dot(a, b) });
    }
    let _ = (a, b);
    None
}

/// NEON `l2_squared`, or `None` when this CPU (or target) lacks it.
pub fn l2_squared_neon(a: &[f32], b: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "aarch64")]
    if detect::level() == KernelLevel::Neon {
        // SAFETY: NEON was detected at run time (see `detect::level`).
        return Some(unsafe { neon::l2_squared(a, b) });
    }
    let _ = (a, b);
    None
}

/// NEON `dot`, or `None` when this CPU (or target) lacks it.
pub fn dot_neon(a: &[f32], b: &[f32]) -> Option<f32> {
    #[cfg(target_arch = "aarch64")]
    if detect::level() == KernelLevel::Neon {
        // SAFETY: NEON was detected at run time (see `detect::level`).
        return Some(unsafe { neon::dot(a, b) });
    }
    let _ = (a, b);
    None
}

/// Run-time CPU feature detection, cached so the hot path pays one relaxed atomic load.
mod detect {
    use super::KernelLevel;
    use std::sync::atomic::{AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const SCALAR: u8 = 1;
    const AVX2_FMA: u8 = 2;
    const AVX512: u8 = 3;
    const NEON: u8 = 4;

    static LEVEL: AtomicU8 = AtomicU8::new(UNKNOWN);

    #[inline]
    pub(super) fn level() -> KernelLevel {
        match LEVEL.load(Ordering::Relaxed) {
            SCALAR => KernelLevel::Scalar,
            AVX2_FMA => KernelLevel::Avx2Fma,
            AVX512 => KernelLevel::Avx512,
            NEON => KernelLevel::Neon,
            _ => detect_and_cache(),
        }
    }

    #[cold]
    fn detect_and_cache() -> KernelLevel {
        let level = detect_now();
        let code = match level {
            KernelLevel::Scalar => SCALAR,
            KernelLevel::Avx2Fma => AVX2_FMA,
            KernelLevel::Avx512 => AVX512,
            KernelLevel::Neon => NEON,
        };
        // Racing first callers compute the same answer, so a plain store is enough.
        LEVEL.store(code, Ordering::Relaxed);
        level
    }

    #[cfg(target_arch = "x86_64")]
    fn detect_now() -> KernelLevel {
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
            KernelLevel::Avx512
        } else if avx2 {
            KernelLevel::Avx2Fma
        } else {
            KernelLevel::Scalar
        }
    }

    /// NEON is part of the aarch64 baseline, so this is always `Neon`; the check keeps the
    /// same shape as x86_64 (and costs one call, once).
    #[cfg(target_arch = "aarch64")]
    fn detect_now() -> KernelLevel {
        if std::arch::is_aarch64_feature_detected!("neon") {
            KernelLevel::Neon
        } else {
            KernelLevel::Scalar
        }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn detect_now() -> KernelLevel {
        KernelLevel::Scalar
    }
}

#[cfg(target_arch = "aarch64")]
mod neon;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Adds the eight lanes of `v`.
    ///
    /// # Safety
    /// The CPU must support AVX2 (callers are themselves `avx2`-enabled functions).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn horizontal_sum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY (all loads below): every load reads 8 floats starting at index `i` (+ offset)
        // with `i + offset + 8 <= n`, and `n` is at most the length of both slices.
        unsafe {
            while i + 32 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                let d1 = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                );
                let d2 = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 16)),
                    _mm256_loadu_ps(pb.add(i + 16)),
                );
                let d3 = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 24)),
                    _mm256_loadu_ps(pb.add(i + 24)),
                );
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                acc1 = _mm256_fmadd_ps(d1, d1, acc1);
                acc2 = _mm256_fmadd_ps(d2, d2, acc2);
                acc3 = _mm256_fmadd_ps(d3, d3, acc3);
                i += 32;
            }
            while i + 8 <= n {
                let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                acc0 = _mm256_fmadd_ps(d, d, acc0);
                i += 8;
            }
        }
        let acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        // SAFETY: this function is compiled with AVX2 and its caller guarantees CPU support.
        let mut sum = unsafe { horizontal_sum(acc) };
        while i < n {
            let d = a[i] - b[i];
            sum += d * d;
            i += 1;
        }
        sum
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY (all loads below): every load reads 8 floats starting at index `i` (+ offset)
        // with `i + offset + 8 <= n`, and `n` is at most the length of both slices.
        unsafe {
            while i + 32 <= n {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                    acc1,
                );
                acc2 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 16)),
                    _mm256_loadu_ps(pb.add(i + 16)),
                    acc2,
                );
                acc3 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 24)),
                    _mm256_loadu_ps(pb.add(i + 24)),
                    acc3,
                );
                i += 32;
            }
            while i + 8 <= n {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                i += 8;
            }
        }
        let acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        // SAFETY: this function is compiled with AVX2 and its caller guarantees CPU support.
        let mut sum = unsafe { horizontal_sum(acc) };
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Mask selecting the first `n` (< 16) lanes.
    #[inline]
    fn tail_mask(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        if n < 16 {
            // Short rows: the same plain sequential sum as the other paths' tails, so tiny
            // vectors score bit-identically on every CPU (exact-search ties stay put).
            let mut sum = 0.0f32;
            for i in 0..n {
                let d = a[i] - b[i];
                sum += d * d;
            }
            return sum;
        }
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY (all loads below): full loads read 16 floats at `i` (+16) with the end at most
        // `n`, which is within both slices; the masked tail load reads only lanes below `n - i`
        // (masked-off lanes are neither read nor able to fault).
        unsafe {
            while i + 32 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                let d1 = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                );
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                acc1 = _mm512_fmadd_ps(d1, d1, acc1);
                i += 32;
            }
            if i + 16 <= n {
                let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                acc0 = _mm512_fmadd_ps(d, d, acc0);
                i += 16;
            }
            if i < n {
                let m = tail_mask(n - i);
                let d = _mm512_sub_ps(
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                );
                acc1 = _mm512_fmadd_ps(d, d, acc1);
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        if n < 16 {
            // Short rows: the same plain sequential sum as the other paths' tails, so tiny
            // vectors score bit-identically on every CPU (exact-search ties stay put).
            let mut sum = 0.0f32;
            for i in 0..n {
                sum += a[i] * b[i];
            }
            return sum;
        }
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: as in `l2_squared` above.
        unsafe {
            while i + 32 <= n {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                    acc1,
                );
                i += 32;
            }
            if i + 16 <= n {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                i += 16;
            }
            if i < n {
                let m = tail_mask(n - i);
                acc1 = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                    acc1,
                );
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }
}

#[cfg(test)]
mod tests;
