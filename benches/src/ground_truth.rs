//! Exact k-nearest neighbours by brute force: the reference recall is measured against.
//!
//! 10k queries against 100k base vectors is ~10^9 distance evaluations, so the scan is tiled
//! (a block of base vectors stays in cache while every query of a thread's share passes over it)
//! and split across threads. Ties are broken by the smaller id ([`RankedNeighbor`]'s order, as in
//! `FlatIndex`).

use std::collections::BinaryHeap;

use vecraft_core::vector::index::{Metric, Neighbor, RankedNeighbor};

/// Base vectors per tile: 256 x 128-d f32 = 128 KiB, comfortably inside L2.
const TILE_ROWS: usize = 256;

/// The `k` nearest base rows (ids = row numbers) for every query row, closest first; rows have
/// `dim` floats. Uses up to `threads` threads (at least one).
pub fn exact_knn(
    metric: Metric,
    dim: usize,
    base: &[f32],
    queries: &[f32],
    k: usize,
    threads: usize,
) -> Vec<Vec<u32>> {
    assert!(dim > 0 && base.len().is_multiple_of(dim) && queries.len().is_multiple_of(dim));
    let nq = queries.len() / dim;
    let threads = threads.clamp(1, nq.max(1));
    let per_thread = nq.div_ceil(threads).max(1);
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); nq];
    std::thread::scope(|scope| {
        for (chunk_index, out_chunk) in out.chunks_mut(per_thread).enumerate() {
            let first = chunk_index * per_thread;
            let qs = &queries[first * dim..(first + out_chunk.len()) * dim];
            scope.spawn(move || knn_block(metric, dim, base, qs, k, out_chunk));
        }
    });
    out
}

fn knn_block(metric: Metric, dim: usize, base: &[f32], queries: &[f32], k: usize, out: &mut [Vec<u32>]) {
    let mut heaps: Vec<BinaryHeap<RankedNeighbor>> = (0..out.len()).map(|_| BinaryHeap::with_capacity(k + 1)).collect();
    if k == 0 {
        return;
    }
    for (tile_index, tile) in base.chunks(TILE_ROWS * dim).enumerate() {
        let first_id = tile_index * TILE_ROWS;
        for (q, heap) in queries.chunks_exact(dim).zip(heaps.iter_mut()) {
            for (i, v) in tile.chunks_exact(dim).enumerate() {
                let d = metric.distance(q, v);
                let hit = RankedNeighbor(Neighbor { slot: first_id + i, distance: d });
                if heap.len() < k {
                    heap.push(hit);
                } else if heap.peek().is_some_and(|worst| hit < *worst) {
                    heap.pop();
                    heap.push(hit);
                }
            }
        }
    }
    for (heap, slot) in heaps.into_iter().zip(out.iter_mut()) {
        *slot = heap.into_sorted_vec().into_iter().map(|h| h.0.slot as u32).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::vector::index::{AnnIndex, FlatIndex};

    #[test]
    fn matches_flat_index() {
        let dim = 5;
        let base: Vec<f32> = (0..600 * dim).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
        let queries: Vec<f32> = (0..17 * dim).map(|i| ((i * 104_729) % 997) as f32 / 90.0).collect();
        for metric in [Metric::L2Squared, Metric::NegDot] {
            let mut flat = FlatIndex::new(dim, metric);
            for (slot, v) in base.chunks_exact(dim).enumerate() {
                flat.insert(slot, v);
            }
            let got = exact_knn(metric, dim, &base, &queries, 7, 3);
            assert_eq!(got.len(), 17);
            for (q, ids) in queries.chunks_exact(dim).zip(&got) {
                let want: Vec<u32> =
                    flat.search(q, 7, 0, &|_| true).iter().map(|n| n.slot as u32).collect();
                assert_eq!(ids, &want);
            }
        }
    }

    #[test]
    fn fewer_base_rows_than_k() {
        let got = exact_knn(Metric::L2Squared, 1, &[3.0, 1.0], &[0.0], 5, 2);
        assert_eq!(got, vec![vec![1, 0]]);
    }
}
