//! Distance kernels shared by exact search and the ANN indexes.
//!
//! Conventions (used by every [`crate::vector::index::AnnIndex`]): a *distance* is smaller when
//! vectors are closer. `l2_squared` for Euclid, `1 - dot` for Cosine (inputs normalised at insert),
//! `-dot` for Dot (may be negative).

/// Sum of squared component differences.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Inner product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
