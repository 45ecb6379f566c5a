//! Runs queries through the engine's [`AnnIndex`] trait (the exact path the engine uses) on one
//! thread and summarises recall and latency.
//!
//! Every query is timed twice: wall clock, and the thread's CPU clock. On a shared machine the
//! wall figures include time the thread was preempted (a 2-core box running other builds shows
//! ~8 ms p99 spikes that say nothing about the index); the CPU figures do not, so comparisons
//! between engines use them.

use std::time::Instant;

use cpu_time::ThreadTime;

use vecraft_core::vector::index::{AnnIndex, Slot};

/// Recall and speed of one pass over the queries at one `ef`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchFigures {
    /// Search breadth used.
    pub ef: usize,
    /// Mean fraction of the true `k` nearest found in the returned `k`.
    pub recall: f64,
    /// Queries per second on one thread (queries / summed wall-clock query time).
    pub qps: f64,
    /// Median wall-clock query latency, microseconds.
    pub p50_us: f64,
    /// 99th-percentile wall-clock query latency, microseconds.
    pub p99_us: f64,
    /// Queries per second of thread CPU time (queries / summed CPU time).
    pub cpu_qps: f64,
    /// Median CPU time per query, microseconds.
    pub cpu_p50_us: f64,
    /// 99th-percentile CPU time per query, microseconds.
    pub cpu_p99_us: f64,
}

/// Value at quantile `q` (0..=1) of sorted `values` (nearest-rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Fraction of `truth[..k]` present in `found` (duplicates in `found` count once).
pub fn recall(found: &[Slot], truth: &[u32], k: usize) -> f64 {
    let truth = &truth[..k.min(truth.len())];
    if truth.is_empty() {
        return 1.0;
    }
    let hits = truth.iter().filter(|t| found.contains(&(**t as Slot))).count();
    hits as f64 / truth.len() as f64
}

/// Searches every query (rows of `dim` floats) for `k` neighbours at breadth `ef`, accepting
/// every slot (the engine always passes a filter, so we do too), after `warmup` untimed queries.
pub fn run_queries(
    index: &dyn AnnIndex,
    dim: usize,
    queries: &[f32],
    truth: &[Vec<u32>],
    k: usize,
    ef: usize,
    warmup: usize,
) -> SearchFigures {
    let accept_all = |_: Slot| true;
    for q in queries.chunks_exact(dim).take(warmup) {
        std::hint::black_box(index.search(q, k, ef, &accept_all));
    }
    let mut wall = Vec::with_capacity(truth.len());
    let mut cpu = Vec::with_capacity(truth.len());
    let mut recall_sum = 0.0;
    for (q, t) in queries.chunks_exact(dim).zip(truth) {
        let cpu_start = ThreadTime::now();
        let start = Instant::now();
        let hits = index.search(q, k, ef, &accept_all);
        wall.push(start.elapsed().as_secs_f64() * 1e6);
        cpu.push(cpu_start.elapsed().as_secs_f64() * 1e6);
        let slots: Vec<Slot> = hits.iter().map(|h| h.slot).collect();
        recall_sum += recall(&slots, t, k);
    }
    let per_second = |us: &[f64]| {
        let total: f64 = us.iter().sum();
        if total > 0.0 { us.len() as f64 * 1e6 / total } else { f64::INFINITY }
    };
    let (qps, cpu_qps) = (per_second(&wall), per_second(&cpu));
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    SearchFigures {
        ef,
        recall: recall_sum / wall.len().max(1) as f64,
        qps,
        p50_us: quantile(&wall, 0.50),
        p99_us: quantile(&wall, 0.99),
        cpu_qps,
        cpu_p50_us: quantile(&cpu, 0.50),
        cpu_p99_us: quantile(&cpu, 0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::vector::index::{FlatIndex, Metric};

    #[test]
    fn quantiles_and_recall() {
        let v: Vec<f64> = (1..=100).map(|x| x as f64).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
        assert_eq!(recall(&[1, 2, 3], &[3, 4, 1, 9], 2), 0.5);
        assert_eq!(recall(&[1, 1], &[1, 2], 2), 0.5);
    }

    #[test]
    fn exact_index_has_full_recall() {
        let dim = 3;
        let base: Vec<f32> = (0..300).map(|i| (i % 17) as f32 + i as f32 * 0.001).collect();
        let mut flat = FlatIndex::new(dim, Metric::L2Squared);
        for (slot, v) in base.chunks_exact(dim).enumerate() {
            flat.insert(slot, v);
        }
        let queries = &base[..30];
        let truth = crate::ground_truth::exact_knn(Metric::L2Squared, dim, &base, queries, 5, 1);
        let figs = run_queries(&flat, dim, queries, &truth, 5, 10, 2);
        assert_eq!(figs.recall, 1.0);
        assert!(figs.qps > 0.0 && figs.p50_us <= figs.p99_us);
        assert!(figs.cpu_qps > 0.0 && figs.cpu_p50_us <= figs.cpu_p99_us);
    }
}
