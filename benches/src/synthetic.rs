//! Seeded clustered data for ANN benchmarks.
//!
//! Uniform noise is the worst case for graph indexes and looks nothing like embeddings, so the
//! default data is a Gaussian mixture: cluster centres drawn from `N(0, 1)` per component, and
//! each point a centre plus per-dimension Gaussian noise whose scale differs per cluster and per
//! dimension (log-uniform in `[0.05, 1] * spread`). The uneven scales give each cluster a lower
//! intrinsic dimension than the ambient one, as real embedding data has.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Shape of a synthetic data set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixtureSpec {
    /// Vector dimension.
    pub dim: usize,
    /// Number of Gaussian clusters.
    pub clusters: usize,
    /// Largest per-dimension noise scale relative to the centre spread (1.0 = same scale).
    pub spread: f32,
    /// Seed for everything (same seed, same data).
    pub seed: u64,
}

/// A Gaussian mixture from which base and query vectors are sampled independently.
#[derive(Clone, Debug)]
pub struct Mixture {
    dim: usize,
    centres: Vec<f32>,
    scales: Vec<f32>,
    clusters: usize,
}

/// One standard normal sample (Box-Muller; `rand` 0.10 has no normal distribution built in).
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    // 1 - u keeps the logarithm's argument in (0, 1].
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

impl Mixture {
    /// Draws the cluster centres and scales for `spec`.
    pub fn new(spec: MixtureSpec) -> Self {
        assert!(spec.dim > 0 && spec.clusters > 0, "mixture needs dim > 0 and clusters > 0");
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let n = spec.dim * spec.clusters;
        let centres = (0..n).map(|_| standard_normal(&mut rng)).collect();
        let scales = (0..n)
            .map(|_| spec.spread * (-3.0 * rng.random::<f32>()).exp().max(0.05))
            .collect();
        Mixture { dim: spec.dim, centres, scales, clusters: spec.clusters }
    }

    /// `count` vectors (row-major, `count * dim` floats) from the stream named by `stream_seed`,
    /// so base and query sets are independent samples of the same mixture.
    pub fn sample(&self, count: usize, stream_seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed);
        let mut out = Vec::with_capacity(count * self.dim);
        for _ in 0..count {
            let c = rng.random_range(0..self.clusters);
            let centre = &self.centres[c * self.dim..(c + 1) * self.dim];
            let scale = &self.scales[c * self.dim..(c + 1) * self.dim];
            for (m, s) in centre.iter().zip(scale) {
                out.push(m + s * standard_normal(&mut rng));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_shaped() {
        let spec = MixtureSpec { dim: 8, clusters: 4, spread: 0.5, seed: 1 };
        let a = Mixture::new(spec).sample(100, 2);
        let b = Mixture::new(spec).sample(100, 2);
        assert_eq!(a.len(), 800);
        assert_eq!(a, b, "same seeds, same data");
        assert_ne!(a, Mixture::new(spec).sample(100, 3), "other stream, other data");
        assert!(a.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn points_cluster_around_centres() {
        // With small noise every point must be far closer to some centre than centres are to
        // each other, i.e. the data really is clustered, not uniform.
        let spec = MixtureSpec { dim: 32, clusters: 5, spread: 0.1, seed: 9 };
        let mix = Mixture::new(spec);
        let pts = mix.sample(200, 4);
        let d2 = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
        let centre = |c: usize| &mix.centres[c * 32..(c + 1) * 32];
        let mut min_centre_gap = f32::MAX;
        for i in 0..5 {
            for j in 0..i {
                min_centre_gap = min_centre_gap.min(d2(centre(i), centre(j)));
            }
        }
        for p in pts.chunks_exact(32) {
            let nearest = (0..5).map(|c| d2(p, centre(c))).fold(f32::MAX, f32::min);
            assert!(nearest < min_centre_gap / 4.0, "{nearest} vs gap {min_centre_gap}");
        }
        let mean = pts.iter().sum::<f32>() / pts.len() as f32;
        assert!(mean.abs() < 1.0);
    }
}
