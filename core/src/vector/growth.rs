//! How the engine's big per-slot arrays grow: by an eighth, not by doubling.
//!
//! `Vec::resize` doubles the capacity, so an array of rows built one insert at a time carries
//! 0-100% unused capacity (a third on average): for 256-byte int8 codes measured at 341 bytes per
//! point. Growing by an eighth keeps the spare room under 12.5% for the price of more, cheaper
//! reallocations (large blocks are remapped by the allocator, not copied, on Linux).

/// The least a growth adds, in elements, so that small arrays do not reallocate per insert.
const MIN_GROWTH: usize = 1024;

/// Resizes `v` to `len` elements, new ones `fill`; when it must reallocate, the new capacity is
/// `len` plus at most an eighth of the old capacity (or [`MIN_GROWTH`] elements).
pub(crate) fn resize_gently<T: Clone>(v: &mut Vec<T>, len: usize, fill: T) {
    if len > v.capacity() {
        let target = len.max(v.capacity() + (v.capacity() / 8).max(MIN_GROWTH));
        v.reserve_exact(target - v.len());
    }
    v.resize(len, fill);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_one_row_at_a_time_leaves_at_most_an_eighth_spare() {
        let dim = 256;
        let mut v: Vec<u8> = Vec::new();
        let mut reallocations = 0;
        for slot in 0..20_000 {
            let cap = v.capacity();
            resize_gently(&mut v, (slot + 1) * dim, 0);
            reallocations += usize::from(v.capacity() != cap);
            assert!(v.capacity() <= v.len() + v.len() / 8 + MIN_GROWTH.max(dim), "slot {slot}: {} for {}", v.capacity(), v.len());
        }
        // Doubling would take about 13; an eighth about 80 (log base 1.125 of 20,000 x 256 / 1,024).
        assert!(reallocations <= 90, "{reallocations} reallocations");
    }

    #[test]
    fn a_bulk_resize_takes_exactly_what_it_needs_and_never_shrinks() {
        let mut v: Vec<u8> = Vec::new();
        resize_gently(&mut v, 1_000_000, 0);
        assert_eq!(v.capacity(), 1_000_000);
        resize_gently(&mut v, 10, 0);
        assert_eq!((v.len(), v.capacity()), (10, 1_000_000));
    }
}
