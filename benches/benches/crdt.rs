//! CRDT costs: full-state merge, delta production + delta merge, and metadata size after churn.
//!
//! Sizes are not times, so they are printed once (postcard bytes via the wire encoder) before the
//! timed benchmarks run; the matching boundedness assertions live in vecraft-core's unit tests.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use vecraft_core::causality::{DvvSet, HlcTimestamp, VectorClock};
use vecraft_core::contract::NodeId;
use vecraft_core::crdt::{Crdt, GCounter, LwwRegister, MvRegister, OrMap, OrSet, OrSetStore, PnCounter};
use vecraft_core::wire;

const REPLICAS: usize = 3;

/// Wire size without the one-byte version prefix (i.e. the postcard encoding). A plain function
/// per type because this crate does not depend on serde itself.
fn orset_bytes(set: &OrSet<u32>) -> usize {
    wire::encode(set).map(|b| b.len() - 1).unwrap_or(0)
}

/// See [`orset_bytes`].
fn dvv_bytes(key: &DvvSet<u32>) -> usize {
    wire::encode(key).map(|b| b.len() - 1).unwrap_or(0)
}

/// Three replicas churn an ORSet over 100 elements (55% adds); deltas go out shuffled, a fifth of
/// them one round late. Returns the converged state.
fn orset_churn(ops: usize, seed: u64) -> OrSet<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut replicas: Vec<OrSet<u32>> = vec![OrSet::default(); REPLICAS];
    let mut late = Vec::new();
    for _ in 0..ops / REPLICAS {
        let mut in_flight = std::mem::take(&mut late);
        for (r, replica) in replicas.iter_mut().enumerate() {
            let element = rng.random_range(0..100u32);
            let delta = if rng.random_bool(0.55) {
                replica.add(r as NodeId + 1, element)
            } else {
                replica.remove(&element)
            };
            for to in (0..REPLICAS).filter(|&to| to != r) {
                if rng.random_bool(0.2) { late.push((to, delta.clone())) } else { in_flight.push((to, delta.clone())) }
            }
        }
        in_flight.shuffle(&mut rng);
        for (to, delta) in &in_flight {
            replicas[*to].merge_delta(delta);
        }
    }
    for (to, delta) in &late {
        replicas[*to].merge_delta(delta);
    }
    replicas.swap_remove(0)
}

/// Three servers take read-modify-write puts (10% blind) on one key and sync after each.
fn dvv_churn(ops: usize, seed: u64) -> DvvSet<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut servers: Vec<DvvSet<u32>> = vec![DvvSet::new(); REPLICAS];
    for i in 0..ops {
        let s = rng.random_range(0..REPLICAS);
        let ctx = if rng.random_bool(0.1) { VectorClock::new() } else { servers[s].context().clone() };
        servers[s].put(&ctx, i as u32, s as NodeId + 1);
        let other = rng.random_range(0..REPLICAS);
        let copy = servers[s].clone();
        servers[other].sync(&copy);
    }
    let snapshot = servers.clone();
    for other in &snapshot {
        servers[0].sync(other);
    }
    servers.swap_remove(0)
}

fn report_metadata_sizes() {
    println!("metadata size after churn (postcard bytes):");
    for ops in [1_000, 10_000, 100_000] {
        let set = orset_churn(ops, 7);
        println!(
            "  ORSet  {ops:>7} ops: {:>5} live elements, {:>6} bytes, context cloud {} dots",
            set.len(),
            orset_bytes(&set),
            set.context().cloud_len()
        );
    }
    for ops in [1_000, 10_000, 100_000] {
        let key = dvv_churn(ops, 7);
        println!(
            "  DvvSet {ops:>7} ops: {:>5} siblings, {:>6} bytes, {} context entries",
            key.len(),
            dvv_bytes(&key),
            key.context().len()
        );
    }
}

/// Two replicas of a set of `n` elements that diverged by `n / 10` operations each.
fn diverged_orsets(n: u32) -> (OrSet<u32>, OrSet<u32>) {
    let mut a = OrSet::default();
    for e in 0..n {
        a.add(1, e);
    }
    let mut b = a.clone();
    for e in 0..n / 10 {
        a.remove(&(e * 7 % n));
        b.add(2, n + e);
    }
    (a, b)
}

fn bench_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("crdt_merge");
    for n in [100u32, 1_000, 10_000] {
        let (a, b) = diverged_orsets(n);
        group.bench_with_input(BenchmarkId::new("orset_full_state", n), &n, |bench, _| {
            bench.iter(|| {
                let mut x = a.clone();
                x.merge(black_box(&b));
                x
            })
        });
    }
    let (mut g1, mut g2) = (GCounter::new(), GCounter::new());
    let (mut p1, mut p2) = (PnCounter::new(), PnCounter::new());
    for actor in 0..32 {
        g1.increment(actor, actor + 1);
        g2.increment(actor + 16, 3);
        p1.add(actor, -(actor as i64));
        p2.add(actor + 16, 5);
    }
    group.bench_function("gcounter_32_actors", |bench| {
        bench.iter(|| {
            let mut x = g1.clone();
            x.merge(black_box(&g2));
            x
        })
    });
    group.bench_function("pncounter_32_actors", |bench| {
        bench.iter(|| {
            let mut x = p1.clone();
            x.merge(black_box(&p2));
            x
        })
    });
    let (mut m1, mut m2): (MvRegister<u64>, MvRegister<u64>) = Default::default();
    m1.write(1, 1);
    m2.write(2, 2);
    group.bench_function("mv_register_siblings", |bench| {
        bench.iter(|| {
            let mut x = m1.clone();
            x.merge(black_box(&m2));
            x
        })
    });
    let (mut l1, mut l2) = (LwwRegister::new(), LwwRegister::new());
    l1.set(HlcTimestamp { wall_millis: 5, logical: 0, node: 1 }, 10u64);
    l2.set(HlcTimestamp { wall_millis: 6, logical: 0, node: 2 }, 20u64);
    group.bench_function("lww_register", |bench| {
        bench.iter(|| {
            let mut x = l1.clone();
            x.merge(black_box(&l2));
            x
        })
    });
    let mut map1: OrMap<u32, OrSetStore<u32>> = OrMap::default();
    for k in 0..100 {
        for e in 0..10 {
            map1.update(k, |s, ctx| s.add_delta(ctx, 1, e));
        }
    }
    let mut map2 = map1.clone();
    for k in 0..10 {
        map1.remove(&k);
        map2.update(k + 50, |s, ctx| s.add_delta(ctx, 2, 99));
    }
    group.bench_function("ormap_100x10_full_state", |bench| {
        bench.iter(|| {
            let mut x = map1.clone();
            x.merge(black_box(&map2));
            x
        })
    });
    let mut d1 = DvvSet::new();
    d1.put(&VectorClock::new(), 1u32, 1);
    let mut d2 = d1.clone();
    d1.put(&VectorClock::new(), 2, 1);
    d2.put(&VectorClock::new(), 3, 2);
    group.bench_function("dvv_sync_concurrent", |bench| {
        bench.iter(|| {
            let mut x = d1.clone();
            x.sync(black_box(&d2));
            x
        })
    });
    group.finish();
}

fn bench_delta(c: &mut Criterion) {
    let mut group = c.benchmark_group("crdt_delta");
    for n in [1_000u32, 10_000] {
        let (origin, _) = diverged_orsets(n);
        let replica = origin.clone();
        group.bench_with_input(BenchmarkId::new("orset_add_ship_merge", n), &n, |bench, _| {
            let mut origin = origin.clone();
            let mut replica = replica.clone();
            let mut next = 0u32;
            bench.iter(|| {
                next = next.wrapping_add(1);
                let delta = origin.add(1, next % (2 * n));
                replica.merge_delta(black_box(&delta));
                let delta = origin.remove(&((next * 31) % (2 * n)));
                replica.merge_delta(black_box(&delta));
            })
        });
    }
    group.bench_function("pncounter_add_ship_merge", |bench| {
        let (mut a, mut b) = (PnCounter::new(), PnCounter::new());
        bench.iter(|| {
            let delta = a.add(1, 1);
            b.merge_delta(black_box(&delta));
        })
    });
    group.bench_function("ormap_nested_update_ship_merge", |bench| {
        let (mut a, mut b): (OrMap<u32, OrSetStore<u32>>, OrMap<u32, OrSetStore<u32>>) = Default::default();
        let mut next = 0u32;
        bench.iter(|| {
            next = next.wrapping_add(1);
            let delta = a.update(next % 100, |s, ctx| s.add_delta(ctx, 1, next % 7));
            b.merge_delta(black_box(&delta));
        })
    });
    group.bench_function("dvv_put_read_modify_write", |bench| {
        let mut key = DvvSet::new();
        let mut next = 0u32;
        bench.iter(|| {
            next = next.wrapping_add(1);
            let ctx = key.context().clone();
            key.put(&ctx, next, 1 + u64::from(next % 3));
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    report_metadata_sizes();
    bench_merge(c);
    bench_delta(c);
}

criterion_group!(crdt_benches, benches);
criterion_main!(crdt_benches);
