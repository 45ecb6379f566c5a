//! Scalar (int8) quantization: every component mapped to one byte on a single, global range.
//!
//! **Global, not per-dimension.** The range `[low, high]` is one pair for all dimensions, taken
//! from a quantile of all sampled components (as Qdrant does): with one step `s` shared by every
//! dimension, `‖x − y‖² ≈ s² · Σ (cx − cy)²` is a pure integer kernel plus one multiply, where a
//! per-dimension range would need a weight per dimension inside the kernel. Components outside the range clamp to 0 or 255; `quantile`
//! (default 0.99) keeps outliers from stretching the step for everyone else.
//!
//! Codes are `u8` (`round((x − low) / s)`) and the query is encoded the same way (symmetric
//! distance). All three metrics rank by that difference kernel (see [`ScalarParams::distance`]);
//! Dot also stores each vector's exact squared norm beside its code row.

use serde::{Deserialize, Serialize};

use super::kernels;
use crate::vector::index::Metric;

/// Quantile bounds: `quantile` must lie in this range (Qdrant accepts 0.5..=1).
pub const MIN_QUANTILE: f32 = 0.5;

/// The trained parameters of a scalar quantizer (what a snapshot keeps).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalarParams {
    /// Value of code 0.
    pub low: f32,
    /// Width of one code step (`(high - low) / 255`, positive).
    pub step: f32,
}

impl ScalarParams {
    /// Trains on `sample` (components of sampled vectors, any order): the central `quantile`
    /// of the values spans the 256 codes. Deterministic: a function of the multiset of values.
    pub fn train(sample: &mut [f32], quantile: f32) -> ScalarParams {
        if sample.is_empty() {
            return ScalarParams {
                low: -1.0,
                step: 2.0 / 255.0,
            };
        }
        let q = quantile.clamp(MIN_QUANTILE, 1.0) as f64;
        let n = sample.len();
        let tail = (1.0 - q) / 2.0;
        let lo_rank = ((n - 1) as f64 * tail).round() as usize;
        let hi_rank = ((n - 1) as f64 * (1.0 - tail)).round() as usize;
        let low = *sample.select_nth_unstable_by(lo_rank, f32::total_cmp).1;
        let high = *sample.select_nth_unstable_by(hi_rank, f32::total_cmp).1;
        let width = (high - low).max(f32::EPSILON * low.abs().max(1.0));
        ScalarParams {
            low,
            step: width / 255.0,
        }
    }

    /// Checks values read from a snapshot: finite, positive step.
    pub fn is_valid(&self) -> bool {
        self.low.is_finite() && self.step.is_finite() && self.step > 0.0
    }

    /// Encodes `vector` into `codes` (same length) and returns the per-vector term `metric`'s
    /// distance needs beside the codes: the exact `‖x‖²` for Dot, nothing (0) otherwise.
    pub fn encode(&self, metric: Metric, vector: &[f32], codes: &mut [u8]) -> f32 {
        debug_assert_eq!(vector.len(), codes.len());
        let inv = 1.0 / self.step;
        for (c, &x) in codes.iter_mut().zip(vector) {
            let q = ((x - self.low) * inv).round();
            // `as u8` saturates and maps NaN to 0, so any input yields a valid code.
            *c = q.clamp(0.0, 255.0) as u8;
        }
        match metric {
            Metric::NegDot => vector.iter().map(|&x| x as f64 * x as f64).sum::<f64>() as f32,
            Metric::L2Squared | Metric::CosineNormalized => 0.0,
        }
    }

    /// The approximate distance under `metric` between two encoded vectors (`*_norm` are what
    /// [`Self::encode`] returned for them).
    ///
    /// Every metric ranks by the difference kernel `s² · Σ (ca − cb)²`, whose rounding error
    /// scales with `a − b` (small for near neighbours); a product kernel's error would scale with
    /// the vectors themselves. Unit vectors (Cosine): `1 − a·b = ‖a − b‖² / 2`. Dot:
    /// `−a·b = (‖a − b‖² − ‖a‖² − ‖b‖²) / 2` with the exact norms stored beside the codes.
    #[inline]
    pub fn distance(&self, metric: Metric, a: &[u8], a_norm: f32, b: &[u8], b_norm: f32) -> f32 {
        let l2 = self.step * self.step * kernels::l2_u8(a, b) as f32;
        match metric {
            Metric::L2Squared => l2,
            Metric::CosineNormalized => l2 / 2.0,
            Metric::NegDot => (l2 - a_norm - b_norm) / 2.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_takes_the_central_quantile_and_encoding_clamps() {
        // 0..=1000: the central 0.99 is [5, 995].
        let mut sample: Vec<f32> = (0..=1000).map(|i| i as f32).collect();
        let p = ScalarParams::train(&mut sample, 0.99);
        assert_eq!(p.low, 5.0);
        assert!((p.step * 255.0 - 990.0).abs() < 1e-3);
        let mut codes = [0u8; 4];
        p.encode(Metric::L2Squared, &[-100.0, 5.0, 995.0, 5000.0], &mut codes);
        assert_eq!(codes, [0, 0, 255, 255]);
        // quantile 1.0 takes the full range.
        let p = ScalarParams::train(&mut sample, 1.0);
        assert_eq!((p.low, (p.step * 255.0).round()), (0.0, 1000.0));
        assert!(p.is_valid());
        // A constant sample still has a positive step.
        let p = ScalarParams::train(&mut [3.0; 10], 0.99);
        assert!(p.is_valid());
    }

    #[test]
    fn decoded_distances_approximate_the_true_ones() {
        let mut sample: Vec<f32> = (0..2000)
            .map(|i| ((i * 7919) % 2000) as f32 / 1000.0 - 1.0)
            .collect();
        let p = ScalarParams::train(&mut sample, 1.0);
        let a = [0.5f32, -0.25, 0.75, -1.0, 0.1];
        let b = [-0.5f32, 0.3, 0.7, 0.9, 0.0];
        let (mut ca, mut cb) = ([0u8; 5], [0u8; 5]);
        let unit = |v: [f32; 5]| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.map(|x| x / n)
        };
        for metric in [Metric::L2Squared, Metric::NegDot, Metric::CosineNormalized] {
            // Cosine distances are defined on unit vectors (the engine normalises them).
            let (a, b) = if metric == Metric::CosineNormalized {
                (unit(a), unit(b))
            } else {
                (a, b)
            };
            let (ka, kb) = (p.encode(metric, &a, &mut ca), p.encode(metric, &b, &mut cb));
            let exact = metric.distance(&a, &b);
            let approx = p.distance(metric, &ca, ka, &cb, kb);
            assert!(
                (exact - approx).abs() < 0.05,
                "{metric:?}: {exact} vs {approx}"
            );
        }
    }
}
