//! Where an index keeps its f32 vectors (the "originals"): slot-indexed rows of `dim` values,
//! contiguous, behind a small trait so the storage can come from outside `core`.
//!
//! The default is an [`AlignedVec<f32>`] on the heap ([`InMemoryVectors`]), rows on cache-line
//! boundaries. A runtime may supply another
//! [`VectorStoreProvider`] (a memory-mapped file, in `runtime-tokio`) so that a quantized
//! collection keeps only its codes in RAM: the graph walk then ranks by codes and reads the
//! originals only to rescore the top candidates, for exact search, snapshots and digests.
//!
//! Why contiguous rows behind one `values()` call rather than a `get(slot)` per row: the f32 walk
//! borrows the whole slice once per search and indexes it directly, exactly as before, so the
//! default (in-RAM) walk pays no dynamic dispatch per distance. A store grows only through
//! `&mut self`, so no borrowed slice can outlive a remap.
//!
//! A store is a cache of the collection's points, like the graph: the log and snapshots stay the
//! source of truth, and a store is never read back after a restart. Its methods cannot fail: a
//! store that cannot grow where it lives must keep the rows elsewhere (in RAM) and report that
//! through its own channels, because the replicated state machine cannot refuse a committed
//! insert on one replica only.

use std::fmt::Debug;

pub use crate::vector::aligned::AlignedVec;

/// The f32 rows of one index: row `slot` is `values()[slot * dim..(slot + 1) * dim]`.
pub trait VectorStore: Send + Sync + Debug {
    /// Every stored value (rows of slots never written are zero).
    fn values(&self) -> &[f32];
    /// Every stored value, writable.
    fn values_mut(&mut self) -> &mut [f32];
    /// Grows to `len` values, new ones zero; never shrinks.
    fn grow_to(&mut self, len: usize);
    /// Room for `additional` more values without moving them (a capacity hint).
    fn reserve(&mut self, additional: usize);
    /// Heap bytes the store holds (a file mapping holds none: its pages are the page cache's).
    fn heap_bytes(&self) -> usize;
    /// An independent copy, or `None` if this store cannot copy itself (the caller then
    /// rebuilds from the points).
    fn try_clone(&self) -> Option<Box<dyn VectorStore>>;
    /// Tells the store its rows will not be read soon (after a bulk build, say): an external
    /// store may drop its resident pages, which come back on the next read. Changes no value.
    fn release_resident(&self) {}

    /// Appends one row at the end.
    fn push_row(&mut self, row: &[f32]) {
        let start = self.values().len();
        self.grow_to(start + row.len());
        self.values_mut()[start..].copy_from_slice(row);
    }
}

/// The default store: the rows on the heap, the first on a cache line (so every row is, when
/// its byte size is a multiple of 64).
impl VectorStore for AlignedVec<f32> {
    fn values(&self) -> &[f32] {
        self
    }

    fn values_mut(&mut self) -> &mut [f32] {
        self
    }

    fn grow_to(&mut self, len: usize) {
        if self.len() < len {
            self.resize_gently(len, 0.0);
        }
    }

    fn reserve(&mut self, additional: usize) {
        // Exact: a bulk load knows its size.
        self.reserve_exact(additional);
    }

    fn heap_bytes(&self) -> usize {
        AlignedVec::heap_bytes(self)
    }

    fn try_clone(&self) -> Option<Box<dyn VectorStore>> {
        Some(Box::new(self.clone()))
    }
}

/// Makes the [`VectorStore`] of each index a collection builds (at creation, on every rebuild,
/// restore and copy). A replica-local choice, like the indexing policy: never replicated, never
/// in a snapshot or the digest, and results never depend on it.
pub trait VectorStoreProvider: Send + Sync + Debug {
    /// An empty store for rows of `dim` values with room for about `capacity_rows` rows.
    fn create(&self, dim: usize, capacity_rows: usize) -> Box<dyn VectorStore>;
    /// Whether stores keep their rows outside the heap (shown to operators; no behaviour hangs
    /// on it).
    fn is_external(&self) -> bool {
        false
    }
}

/// The default provider: aligned rows on the heap.
#[derive(Clone, Copy, Debug, Default)]
pub struct InMemoryVectors;

/// Largest number of values a capacity hint pre-allocates (the hint comes from API callers).
const MAX_RESERVED_VALUES: usize = 1 << 28;

impl VectorStoreProvider for InMemoryVectors {
    fn create(&self, dim: usize, capacity_rows: usize) -> Box<dyn VectorStore> {
        Box::new(AlignedVec::<f32>::with_capacity(capacity_rows.saturating_mul(dim).min(MAX_RESERVED_VALUES)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_rows_grow_zeroed_and_append() {
        let mut store = InMemoryVectors.create(2, 4);
        assert!(store.values().is_empty());
        assert!(store.heap_bytes() >= 4 * 2 * 4, "capacity hint reserved");
        store.push_row(&[1.0, 2.0]);
        store.grow_to(6);
        store.values_mut()[4..6].copy_from_slice(&[5.0, 6.0]);
        store.grow_to(2);
        assert_eq!(store.values(), &[1.0, 2.0, 0.0, 0.0, 5.0, 6.0]);
        assert_eq!(store.values().as_ptr() as usize % 64, 0, "rows start on a cache line");
        let copy = store.try_clone().expect("heap rows copy");
        store.values_mut()[0] = 9.0;
        assert_eq!(copy.values()[0], 1.0, "the copy is independent");
        assert!(!InMemoryVectors.is_external());
    }
}
