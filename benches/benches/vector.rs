//! Criterion benchmarks for the vector hot paths: distance kernels (SIMD vs scalar) and a search
//! on a small (10k x 128-d clustered) HNSW index through the `AnnIndex` trait.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vecraft_benches::synthetic::{Mixture, MixtureSpec};
use vecraft_core::vector::distance;
use vecraft_core::vector::hnsw::{HnswRsIndex, SearchPath};
use vecraft_core::vector::index::{AnnIndex, IndexKind, IndexSpec, Metric};

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("distance");
    for dim in [128usize, 768] {
        let a: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.11).cos()).collect();
        group.bench_with_input(BenchmarkId::new("l2_scalar", dim), &dim, |bench, _| {
            bench.iter(|| distance::l2_squared_scalar(black_box(&a), black_box(&b)))
        });
        group.bench_with_input(BenchmarkId::new("dot_scalar", dim), &dim, |bench, _| {
            bench.iter(|| distance::dot_scalar(black_box(&a), black_box(&b)))
        });
        if distance::l2_squared_simd(&a, &b).is_some() {
            group.bench_with_input(BenchmarkId::new("l2_avx2", dim), &dim, |bench, _| {
                bench.iter(|| distance::l2_squared_simd(black_box(&a), black_box(&b)))
            });
            group.bench_with_input(BenchmarkId::new("dot_avx2", dim), &dim, |bench, _| {
                bench.iter(|| distance::dot_simd(black_box(&a), black_box(&b)))
            });
        }
        if distance::l2_squared_avx512(&a, &b).is_some() {
            group.bench_with_input(BenchmarkId::new("l2_avx512", dim), &dim, |bench, _| {
                bench.iter(|| distance::l2_squared_avx512(black_box(&a), black_box(&b)))
            });
            group.bench_with_input(BenchmarkId::new("dot_avx512", dim), &dim, |bench, _| {
                bench.iter(|| distance::dot_avx512(black_box(&a), black_box(&b)))
            });
        }
        if distance::l2_squared_neon(&a, &b).is_some() {
            group.bench_with_input(BenchmarkId::new("l2_neon", dim), &dim, |bench, _| {
                bench.iter(|| distance::l2_squared_neon(black_box(&a), black_box(&b)))
            });
            group.bench_with_input(BenchmarkId::new("dot_neon", dim), &dim, |bench, _| {
                bench.iter(|| distance::dot_neon(black_box(&a), black_box(&b)))
            });
        }
    }
    group.finish();
}

fn search(c: &mut Criterion) {
    let dim = 128;
    let mix = Mixture::new(MixtureSpec { dim, clusters: 20, spread: 1.0, seed: 5 });
    let base = mix.sample(10_000, 1);
    let queries = mix.sample(256, 2);
    let spec = IndexSpec { dim, metric: Metric::L2Squared, m: 16, ef_construct: 100, capacity_hint: 10_000, seed: 1, kind: IndexKind::HnswRs };
    let mut group = c.benchmark_group("hnsw_search_10k");
    for path in [SearchPath::Compact, SearchPath::Native] {
        let mut index = HnswRsIndex::with_search_path(&spec, path);
        for (slot, v) in base.chunks_exact(dim).enumerate() {
            index.insert(slot, v);
        }
        let index: Box<dyn AnnIndex> = Box::new(index);
        for ef in [32usize, 128] {
            let name = format!("{path:?}").to_lowercase();
            group.bench_with_input(BenchmarkId::new(name, ef), &ef, |bench, &ef| {
                let mut qs = queries.chunks_exact(dim).cycle();
                bench.iter(|| {
                    let q = qs.next().expect("cycle never ends");
                    black_box(index.search(q, 10, ef, &|_| true))
                })
            });
        }
    }
    group.finish();
}

/// Filtered search on a 50k-point collection: a 1%-selective filter (`cluster == 7`) and a
/// 10%-selective range (`cluster < 10`), each without and with an integer index on `cluster`.
/// Without the index every payload is checked per query; with it only the posting list's points.
fn filtered_search(c: &mut Criterion) {
    use vecraft_core::vector::collection::{Collection, CollectionConfig, Distance, PointsOp, SearchRequest};
    use vecraft_core::vector::filter::{Condition, Filter, MatchValue, NumericRange};
    use vecraft_core::vector::payload::PayloadValue;
    use vecraft_core::vector::payload_index::FieldSchema;
    use vecraft_core::vector::point::{PointId, PointStruct};

    let (dim, n) = (32usize, 50_000usize);
    let mix = Mixture::new(MixtureSpec { dim, clusters: 20, spread: 1.0, seed: 9 });
    let base = mix.sample(n, 1);
    let queries = mix.sample(64, 2);
    let mut collection = Collection::new("filtered", CollectionConfig::new(dim as u32, Distance::Euclid)).unwrap();
    let mut batch = Vec::new();
    for (i, v) in base.chunks_exact(dim).enumerate() {
        let payload = [("cluster".to_string(), PayloadValue::Int((i % 100) as i64))].into();
        batch.push(PointStruct { id: PointId::Num(i as u64), vector: v.to_vec(), payload });
        if batch.len() == 1000 {
            collection.apply(PointsOp::Upsert(std::mem::take(&mut batch))).unwrap();
        }
    }
    let one_percent = Filter::must(vec![Condition::matches_value("cluster", MatchValue::Integer(7))]);
    let ten_percent = Filter::must(vec![Condition::range("cluster", NumericRange { lt: Some(10.0), ..Default::default() })]);
    let mut group = c.benchmark_group("filtered_search_50k");
    for indexed in [false, true] {
        if indexed {
            collection.create_field_index("cluster", FieldSchema::Integer).unwrap();
        }
        for (name, filter) in [("1pct", &one_percent), ("10pct", &ten_percent)] {
            let id = BenchmarkId::new(if indexed { "indexed" } else { "scan" }, name);
            group.bench_with_input(id, &(), |bench, _| {
                let mut qs = queries.chunks_exact(dim).cycle();
                bench.iter(|| {
                    let mut request = SearchRequest::new(qs.next().expect("cycle").to_vec(), 10);
                    request.filter = Some(filter.clone());
                    black_box(collection.search(&request).unwrap())
                })
            });
        }
    }
    group.finish();
}

/// Scatter-gather merge: per-shard top-100 lists from 4 and 16 shards merged into one top-100
/// page (the node's cost per sharded search, on top of the shards' own searches).
fn scatter_merge(c: &mut Criterion) {
    use vecraft_core::node::scatter::merge_hits;
    use vecraft_core::vector::collection::Distance;
    use vecraft_core::vector::point::{PointId, ScoredPoint};
    let mut group = c.benchmark_group("scatter_merge_top100");
    for shards in [4u64, 16] {
        let lists: Vec<Vec<ScoredPoint>> = (0..shards)
            .map(|s| {
                (0..100u64)
                    .map(|i| ScoredPoint {
                        id: PointId::Num(i * shards + s),
                        version: 1,
                        score: 1.0 - (i as f32 * 0.001) - (s as f32 * 0.0001),
                        payload: None,
                        vector: None,
                    })
                    .collect()
            })
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(shards), &shards, |bench, _| {
            bench.iter(|| black_box(merge_hits(Distance::Cosine, lists.clone(), 0, 100)))
        });
    }
    group.finish();
}

criterion_group!(benches, kernels, search, filtered_search, scatter_merge);
criterion_main!(benches);
