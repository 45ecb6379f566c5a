//! Binary quantization: one bit per dimension, compared by Hamming distance (popcount).
//!
//! Bit `i` is set when component `i` exceeds the per-dimension threshold, the mean of that
//! dimension over the training sample. Qdrant thresholds at zero, which suits embeddings that are
//! already centred; centring on the sample mean gives the same codes for those and still splits
//! every dimension in two for data that is not (all-positive features would otherwise set every
//! bit). The codes rank neighbours coarsely — 32× smaller than f32 — so binary quantization is
//! meant for high-dimensional embeddings with rescoring and oversampling.

use serde::{Deserialize, Serialize};

use super::kernels;

/// The trained parameters of a binary quantizer (what a snapshot keeps).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinaryParams {
    /// Per-dimension threshold (the sample mean).
    pub thresholds: Vec<f32>,
}

impl BinaryParams {
    /// Trains on `vectors` (rows of `dim` floats): the per-dimension means. A function of the
    /// rows in the given order (f64 sums), so every replica computes the same thresholds.
    pub fn train(vectors: &[f32], dim: usize) -> BinaryParams {
        let rows = vectors.len().checked_div(dim).unwrap_or(0);
        let mut sums = vec![0f64; dim];
        for row in vectors.chunks_exact(dim.max(1)).take(rows) {
            for (s, &x) in sums.iter_mut().zip(row) {
                *s += x as f64;
            }
        }
        let thresholds = sums
            .iter()
            .map(|s| {
                if rows == 0 {
                    0.0
                } else {
                    (s / rows as f64) as f32
                }
            })
            .collect();
        BinaryParams { thresholds }
    }

    /// Checks values read from a snapshot: `dim` finite thresholds.
    pub fn is_valid(&self, dim: usize) -> bool {
        self.thresholds.len() == dim && self.thresholds.iter().all(|t| t.is_finite())
    }

    /// `u64` words per code.
    pub fn words(dim: usize) -> usize {
        dim.div_ceil(64)
    }

    /// Encodes `vector` into `words` (`words(dim)` long; unused high bits stay zero).
    pub fn encode(&self, vector: &[f32], words: &mut [u64]) {
        words.fill(0);
        for (i, (&x, &t)) in vector.iter().zip(&self.thresholds).enumerate() {
            if x > t {
                words[i / 64] |= 1 << (i % 64);
            }
        }
    }

    /// The distance between two codes: the number of differing bits.
    #[inline]
    pub fn distance(a: &[u64], b: &[u64]) -> f32 {
        kernels::hamming(a, b) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_split_each_dimension_at_its_mean() {
        // Dimension 0 has mean 2, dimension 1 mean -1; 70 dims exercise the second word.
        let p = BinaryParams::train(&[1.0, 0.0, 3.0, -2.0], 2);
        assert_eq!(p.thresholds, vec![2.0, -1.0]);
        let mut w = [0u64; 1];
        p.encode(&[2.5, -3.0], &mut w);
        assert_eq!(w, [0b01]);
        p.encode(&[2.0, 0.0], &mut w);
        assert_eq!(w, [0b10], "equal to the threshold is a zero bit");
        let wide = BinaryParams {
            thresholds: vec![0.0; 70],
        };
        let mut v = vec![-1.0f32; 70];
        v[69] = 1.0;
        let mut words = vec![0u64; BinaryParams::words(70)];
        wide.encode(&v, &mut words);
        assert_eq!(words, vec![0, 1 << 5]);
        assert_eq!(BinaryParams::distance(&words, &[0, 0]), 1.0);
        assert!(wide.is_valid(70) && !wide.is_valid(69));
    }
}
