//! 128-bit NEON code kernels for aarch64 (NEON is baseline there).
//!
//! `u8` products and squared differences are at most 255² = 65,025, which fits a `u16` lane, so
//! the baseline path widens with `vmull_u8` and pair-adds into `u32` lanes with `vpadalq_u16`:
//! exact, like every other path. CPUs with the `dotprod` extension (detected at run time) instead
//! run `udot`, which multiplies and sums four bytes per `u32` lane in one instruction. The
//! `udot` intrinsic (`vdotq_u32`) is not stable Rust yet, so that one instruction is inline asm.
//! Hamming counts bits per byte with `vcntq_u8`.

use std::arch::aarch64::*;

/// Accumulates the products of the eight low and eight high bytes of `a` and `b` into `lo` and
/// `hi` (each `u16` product pair-added into a `u32` lane, so nothing can wrap per step).
#[inline]
#[target_feature(enable = "neon")]
fn mul_acc(
    lo: uint32x4_t,
    hi: uint32x4_t,
    a: uint8x16_t,
    b: uint8x16_t,
) -> (uint32x4_t, uint32x4_t) {
    (
        vpadalq_u16(lo, vmull_u8(vget_low_u8(a), vget_low_u8(b))),
        vpadalq_u16(hi, vmull_high_u8(a, b)),
    )
}

/// # Safety
/// The CPU must support NEON (always true on aarch64; kept for the dispatch shape).
#[target_feature(enable = "neon")]
pub(super) unsafe fn dot_u8(a: &[u8], b: &[u8]) -> u32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1, mut acc2, mut acc3) =
        (vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0));
    let mut i = 0;
    // SAFETY (all loads): each reads 16 bytes at `i` (+16) with `i + 32 <= n` or `i + 16 <= n`,
    // and `n` is at most the length of both slices.
    unsafe {
        while i + 32 <= n {
            (acc0, acc1) = mul_acc(acc0, acc1, vld1q_u8(pa.add(i)), vld1q_u8(pb.add(i)));
            (acc2, acc3) =
                mul_acc(acc2, acc3, vld1q_u8(pa.add(i + 16)), vld1q_u8(pb.add(i + 16)));
            i += 32;
        }
        while i + 16 <= n {
            (acc0, acc1) = mul_acc(acc0, acc1, vld1q_u8(pa.add(i)), vld1q_u8(pb.add(i)));
            i += 16;
        }
    }
    // Lane adds wrap modulo 2^32, which is the exact `u32` total (see the module doc).
    vaddvq_u32(vaddq_u32(vaddq_u32(acc0, acc1), vaddq_u32(acc2, acc3)))
        .wrapping_add(super::dot_u8_scalar(&a[i..n], &b[i..n]))
}

/// # Safety
/// The CPU must support NEON (always true on aarch64; kept for the dispatch shape).
#[target_feature(enable = "neon")]
pub(super) unsafe fn l2_u8(a: &[u8], b: &[u8]) -> u32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1, mut acc2, mut acc3) =
        (vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0));
    let mut i = 0;
    // SAFETY (all loads): as in `dot_u8`.
    unsafe {
        while i + 32 <= n {
            // |a - b| is exact in a byte, and its square is the squared difference.
            let d0 = vabdq_u8(vld1q_u8(pa.add(i)), vld1q_u8(pb.add(i)));
            let d1 = vabdq_u8(vld1q_u8(pa.add(i + 16)), vld1q_u8(pb.add(i + 16)));
            (acc0, acc1) = mul_acc(acc0, acc1, d0, d0);
            (acc2, acc3) = mul_acc(acc2, acc3, d1, d1);
            i += 32;
        }
        while i + 16 <= n {
            let d = vabdq_u8(vld1q_u8(pa.add(i)), vld1q_u8(pb.add(i)));
            (acc0, acc1) = mul_acc(acc0, acc1, d, d);
            i += 16;
        }
    }
    vaddvq_u32(vaddq_u32(vaddq_u32(acc0, acc1), vaddq_u32(acc2, acc3)))
        .wrapping_add(super::l2_u8_scalar(&a[i..n], &b[i..n]))
}

/// Hamming distance: XOR, per-byte popcount, then pair-add the counts up into `u32` lanes.
///
/// # Safety
/// The CPU must support NEON (always true on aarch64; kept for the dispatch shape).
#[target_feature(enable = "neon")]
pub(super) unsafe fn hamming(a: &[u64], b: &[u64]) -> u32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let bits = |x: uint64x2_t, y: uint64x2_t| vcntq_u8(vreinterpretq_u8_u64(veorq_u64(x, y)));
    let mut acc = vdupq_n_u32(0);
    let mut i = 0;
    // SAFETY (all loads): each reads 2 words at `i` (+2, +4, +6) with `i + 8 <= n` or
    // `i + 2 <= n`, and `n` is at most the length of both slices.
    unsafe {
        while i + 8 <= n {
            // Four byte counts of at most 8 each: at most 32 per byte lane, no wrap.
            let c = vaddq_u8(
                vaddq_u8(
                    bits(vld1q_u64(pa.add(i)), vld1q_u64(pb.add(i))),
                    bits(vld1q_u64(pa.add(i + 2)), vld1q_u64(pb.add(i + 2))),
                ),
                vaddq_u8(
                    bits(vld1q_u64(pa.add(i + 4)), vld1q_u64(pb.add(i + 4))),
                    bits(vld1q_u64(pa.add(i + 6)), vld1q_u64(pb.add(i + 6))),
                ),
            );
            acc = vpadalq_u16(acc, vpaddlq_u8(c));
            i += 8;
        }
        while i + 2 <= n {
            acc = vpadalq_u16(acc, vpaddlq_u8(bits(vld1q_u64(pa.add(i)), vld1q_u64(pb.add(i)))));
            i += 2;
        }
    }
    vaddvq_u32(acc) + super::hamming_scalar(&a[i..n], &b[i..n])
}

/// `acc + udot(a, b)`: each `u32` lane gains the sum of the four byte products in its lane.
///
/// # Safety
/// The CPU must support the `dotprod` extension.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn udot(mut acc: uint32x4_t, a: uint8x16_t, b: uint8x16_t) -> uint32x4_t {
    // SAFETY: `udot` only reads and writes the three vector registers named here; the caller
    // guarantees the CPU implements it.
    unsafe {
        std::arch::asm!(
            "udot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// `dot_u8` with `udot` (16 products summed into four `u32` lanes per instruction).
///
/// # Safety
/// The CPU must support NEON and the `dotprod` extension.
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn dot_u8_dotprod(a: &[u8], b: &[u8]) -> u32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1, mut acc2, mut acc3) =
        (vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0));
    let mut i = 0;
    // SAFETY (all loads): each reads 16 bytes at `i` (+16, +32, +48) with `i + 64 <= n` or
    // `i + 16 <= n`, and `n` is at most the length of both slices; `udot` needs `dotprod`,
    // which the caller guarantees.
    unsafe {
        while i + 64 <= n {
            acc0 = udot(acc0, vld1q_u8(pa.add(i)), vld1q_u8(pb.add(i)));
            acc1 = udot(acc1, vld1q_u8(pa.add(i + 16)), vld1q_u8(pb.add(i + 16)));
            acc2 = udot(acc2, vld1q_u8(pa.add(i + 32)), vld1q_u8(pb.add(i + 32)));
            acc3 = udot(acc3, vld1q_u8(pa.add(i + 48)), vld1q_u8(pb.add(i + 48)));
            i += 64;
        }
        while i + 16 <= n {
            acc0 = udot(acc0, vld1q_u8(pa.add(i)), vld1q_u8(pb.add(i)));
            i += 16;
        }
    }
    vaddvq_u32(vaddq_u32(vaddq_u32(acc0, acc1), vaddq_u32(acc2, acc3)))
        .wrapping_add(super::dot_u8_scalar(&a[i..n], &b[i..n]))
}

/// `l2_u8` with `udot` on the absolute differences.
///
/// # Safety
/// The CPU must support NEON and the `dotprod` extension.
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn l2_u8_dotprod(a: &[u8], b: &[u8]) -> u32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1, mut acc2, mut acc3) =
        (vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0), vdupq_n_u32(0));
    let mut i = 0;
    // SAFETY (all loads and `udot`): as in `dot_u8_dotprod`.
    unsafe {
        while i + 64 <= n {
            let d0 = vabdq_u8(vld1q_u8(pa.add(i)), vld1q_u8(pb.add(i)));
            let d1 = vabdq_u8(vld1q_u8(pa.add(i + 16)), vld1q_u8(pb.add(i + 16)));
            let d2 = vabdq_u8(vld1q_u8(pa.add(i + 32)), vld1q_u8(pb.add(i + 32)));
            let d3 = vabdq_u8(vld1q_u8(pa.add(i + 48)), vld1q_u8(pb.add(i + 48)));
            acc0 = udot(acc0, d0, d0);
            acc1 = udot(acc1, d1, d1);
            acc2 = udot(acc2, d2, d2);
            acc3 = udot(acc3, d3, d3);
            i += 64;
        }
        while i + 16 <= n {
            let d = vabdq_u8(vld1q_u8(pa.add(i)), vld1q_u8(pb.add(i)));
            acc0 = udot(acc0, d, d);
            i += 16;
        }
    }
    vaddvq_u32(vaddq_u32(vaddq_u32(acc0, acc1), vaddq_u32(acc2, acc3)))
        .wrapping_add(super::l2_u8_scalar(&a[i..n], &b[i..n]))
}
