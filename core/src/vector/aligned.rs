//! A growable array whose first element sits on a 64-byte (cache-line) boundary.
//!
//! Why: the f32 arena and the quantized codes are read row by row, and a row of 128 floats (512
//! bytes) that starts 16 bytes into a cache line touches 9 lines instead of 8 and splits every
//! 64-byte AVX-512 load in two. `Vec` only promises the element's alignment, and glibc hands out
//! large blocks 16 bytes past a page. Measured with one graph and the same walk alternated in one
//! process over the arena at a 64-byte and at a 16-byte offset: +4-8% queries per CPU second on the
//! 100k x 128-d set, +5-6% on 256-d text embeddings; and storing each node's links next to its
//! vector (hnswlib's layout) gained nothing beyond the alignment (benches/README.md, "Rows on
//! cache lines").

//! How: a plain `Vec<T>` with one cache line of slack, and the values kept at the offset that is
//! aligned. Growing still goes through `realloc` (so the allocator may remap large blocks rather
//! than copy them, which an over-aligned `Vec` could not); when the block moves to a different
//! offset within its line, the values are shifted to the new aligned offset.
//! Rows are aligned when the row's byte size is a multiple of 64 (every common embedding
//! dimension: 128, 256, 384, 768, 1024, 1536 floats).

use std::ops::{Deref, DerefMut};

/// Byte alignment of the first element.
pub const ALIGN: usize = 64;

/// Element types the array holds: plain values whose size divides [`ALIGN`].
pub trait Plain: Copy + Default + Send + Sync + std::fmt::Debug + 'static {}
impl Plain for f32 {}
impl Plain for u8 {}
impl Plain for u64 {}

/// A `Vec<T>`-like array whose element 0 is 64-byte aligned.
#[derive(Debug, Default)]
pub struct AlignedVec<T: Plain> {
    /// `slack() + len` elements; the values are `buf[off..off + len]`.
    buf: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Plain> AlignedVec<T> {
    /// Elements of slack: enough to reach an aligned offset from any `T`-aligned start.
    const fn slack() -> usize {
        ALIGN / std::mem::size_of::<T>()
    }

    /// An empty array (allocates nothing).
    pub fn new() -> Self {
        const { assert!(ALIGN.is_multiple_of(std::mem::size_of::<T>())) };
        AlignedVec { buf: Vec::new(), off: 0, len: 0 }
    }

    /// An empty array with room for `capacity` elements.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut v = Self::new();
        v.reserve_exact(capacity);
        v
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Values the array can hold without reallocating.
    pub fn capacity(&self) -> usize {
        self.buf.capacity().saturating_sub(Self::slack())
    }

    /// Heap bytes held (capacity, slack included).
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<T>()
    }

    /// The aligned offset for the current block.
    fn aligned_offset(&self) -> usize {
        let misalign = self.buf.as_ptr() as usize % ALIGN;
        (ALIGN - misalign) % ALIGN / std::mem::size_of::<T>()
    }

    /// Room for `additional` more values (exactly, as a capacity hint).
    pub fn reserve_exact(&mut self, additional: usize) {
        let want = self.len + additional + Self::slack();
        if want > self.buf.capacity() {
            let old_off = self.off;
            self.buf.reserve_exact(want - self.buf.len());
            self.realign(old_off);
        }
    }

    /// Resizes to `len` values (new ones `fill`); when it must reallocate, the new capacity is
    /// `len` plus at most an eighth of the old (see [`crate::vector::growth`]). Never shrinks
    /// the allocation.
    pub fn resize_gently(&mut self, len: usize, fill: T) {
        let old_off = self.off;
        let old_len = self.len;
        if self.buf.len() < len + Self::slack() {
            crate::vector::growth::resize_gently(&mut self.buf, len + Self::slack(), T::default());
        }
        self.realign(old_off);
        if len > old_len {
            self.buf[self.off + old_len..self.off + len].fill(fill);
        }
        self.len = len;
        debug_assert!(self.off + self.len <= self.buf.len());
    }

    /// After the block may have moved: shifts the values from `old_off` to the aligned offset.
    fn realign(&mut self, old_off: usize) {
        if self.buf.len() < Self::slack() {
            self.buf.resize(Self::slack(), T::default());
        }
        let off = self.aligned_offset();
        if off != old_off {
            self.buf.copy_within(old_off..old_off + self.len, off);
            self.off = off;
        }
        debug_assert_eq!(self.as_ptr() as usize % ALIGN, 0, "first value on a cache line");
    }

    /// Appends `values` at the end.
    pub fn extend_from_slice(&mut self, values: &[T]) {
        let start = self.len;
        self.resize_gently(start + values.len(), T::default());
        self[start..].copy_from_slice(values);
    }
}

impl<T: Plain> Clone for AlignedVec<T> {
    /// An exact-size copy (aligned in its own block).
    fn clone(&self) -> Self {
        let mut copy = Self::with_capacity(self.len);
        copy.extend_from_slice(self);
        copy
    }
}

impl<T: Plain> Deref for AlignedVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match self.buf.get(self.off..self.off + self.len) {
            Some(values) => values,
            None => &[],
        }
    }
}

impl<T: Plain> DerefMut for AlignedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let (off, len) = (self.off, self.len);
        match self.buf.get_mut(off..off + len) {
            Some(values) => values,
            None => &mut [],
        }
    }
}

impl<T: Plain> PartialEq for AlignedVec<T>
where
    T: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aligned<T: Plain>(v: &AlignedVec<T>) -> bool {
        (v.as_ptr() as usize).is_multiple_of(ALIGN)
    }

    #[test]
    fn values_stay_aligned_and_intact_through_growth() {
        let mut v: AlignedVec<f32> = AlignedVec::new();
        assert!(v.is_empty());
        assert_eq!(&*v, &[] as &[f32]);
        let mut expect = Vec::new();
        for row in 0..3000u32 {
            let values: Vec<f32> = (0..7).map(|i| (row * 7 + i) as f32).collect();
            v.extend_from_slice(&values);
            expect.extend_from_slice(&values);
            assert!(aligned(&v), "row {row}");
        }
        assert_eq!(&*v, &expect[..]);
        v[5] = -1.0;
        assert_eq!(v[5], -1.0);
        let copy = v.clone();
        assert!(aligned(&copy));
        assert_eq!(copy, v);
        assert!(copy.capacity() >= copy.len() && copy.heap_bytes() >= copy.len() * 4);
    }

    #[test]
    fn resize_fills_new_values_and_never_loses_old_ones() {
        let mut bytes: AlignedVec<u8> = AlignedVec::with_capacity(10);
        assert!(bytes.capacity() >= 10);
        bytes.resize_gently(3, 9);
        assert_eq!(&*bytes, &[9, 9, 9]);
        bytes.resize_gently(100_000, 1);
        assert!(aligned(&bytes));
        assert_eq!(&bytes[..4], &[9, 9, 9, 1]);
        assert_eq!(bytes.len(), 100_000);
        bytes.resize_gently(2, 0);
        assert_eq!(&*bytes, &[9, 9]);
        bytes.resize_gently(4, 7);
        assert_eq!(&*bytes, &[9, 9, 7, 7], "values past a shrink are refilled, not stale");
        let mut words: AlignedVec<u64> = AlignedVec::new();
        words.resize_gently(5, u64::MAX);
        assert!(aligned(&words));
        assert_eq!(&*words, &[u64::MAX; 5]);
    }

    #[test]
    fn a_block_that_moved_within_its_line_has_its_values_shifted_to_the_aligned_offset() {
        // As after a reallocation that returned a block at a different offset: the values sit at
        // an offset that is no longer the aligned one.
        let mut v: AlignedVec<f32> = AlignedVec::with_capacity(40);
        let aligned_off = v.aligned_offset();
        let stale_off = (aligned_off + 3) % AlignedVec::<f32>::slack();
        v.buf.resize(AlignedVec::<f32>::slack() + 20, 0.0);
        for i in 0..20 {
            v.buf[stale_off + i] = i as f32 + 1.0;
        }
        v.off = stale_off;
        v.len = 20;
        v.realign(stale_off);
        assert_eq!(v.off, aligned_off);
        assert!(aligned(&v));
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32 + 1.0), "{:?}", &*v);
    }
}
