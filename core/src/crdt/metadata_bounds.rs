//! Size tests: after long add/remove churn with out-of-order delivery, the encoded metadata of the
//! causal CRDTs and of DVV sets is bounded by live data and actors, not by history length.

use crate::causality::{DvvSet, VectorClock};
use crate::contract::NodeId;
use crate::crdt::{Crdt, OrMap, OrSet, OrSetStore};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const REPLICAS: usize = 3;
const UNIVERSE: u32 = 40;
/// Worst-case postcard size of one dot (two u64 varints) and of one version-vector entry.
const DOT_BYTES: usize = 20;

fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    postcard::to_stdvec(value).map(|b| b.len()).unwrap_or(usize::MAX)
}

/// Runs `rounds` of churn over replicas of an [`OrSet<u32>`]: every replica adds or removes a random
/// element each round; deltas are delivered to the other replicas shuffled, a fifth of them one
/// round late. Returns the converged state and the largest dot cloud any replica had on the way
/// (non-zero shows out-of-order delivery really happened).
fn orset_churn(rounds: usize, seed: u64) -> (OrSet<u32>, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut replicas: Vec<OrSet<u32>> = vec![OrSet::default(); REPLICAS];
    let mut late: Vec<(usize, OrSet<u32>)> = Vec::new();
    let mut max_cloud = 0;
    for _ in 0..rounds {
        let mut in_flight = std::mem::take(&mut late);
        for (r, replica) in replicas.iter_mut().enumerate() {
            let element = rng.random_range(0..UNIVERSE);
            let delta = if rng.random_bool(0.55) {
                replica.add(r as NodeId + 1, element)
            } else {
                replica.remove(&element)
            };
            for to in (0..REPLICAS).filter(|&to| to != r) {
                if rng.random_bool(0.2) {
                    late.push((to, delta.clone()));
                } else {
                    in_flight.push((to, delta.clone()));
                }
            }
        }
        in_flight.shuffle(&mut rng);
        for (to, delta) in &in_flight {
            replicas[*to].merge_delta(delta);
            max_cloud = max_cloud.max(replicas[*to].context().cloud_len());
        }
    }
    for (to, delta) in &late {
        replicas[*to].merge_delta(delta);
    }
    assert!(replicas.iter().all(|r| r == &replicas[0]), "replicas did not converge");
    (replicas.swap_remove(0), max_cloud)
}

/// Bound for a set of `live` u32 elements where each element carries at most one dot per actor.
fn orset_bound(live: usize) -> usize {
    8 + live * (5 + 1 + REPLICAS * DOT_BYTES) + REPLICAS * DOT_BYTES
}

#[test]
fn orset_metadata_is_bounded_by_live_elements_and_actors() {
    let (short, _) = orset_churn(100, 1);
    let (long, max_cloud) = orset_churn(4_000, 1);
    assert!(max_cloud > 0, "the churn should have delivered deltas out of order");
    for set in [&short, &long] {
        assert_eq!(set.context().cloud_len(), 0, "all deltas delivered: the context must be compact");
        assert!(set.context().node_count() <= REPLICAS);
        let size = encoded_len(set);
        assert!(size <= orset_bound(set.len()), "{size} bytes for {} live elements", set.len());
    }
    // 40x more history, yet the long run costs no more than the bound of its live elements; the
    // history itself (12,000 operations) would need far more than that.
    assert!(encoded_len(&long) < 12_000);
}

#[test]
fn removing_everything_leaves_only_a_version_vector() {
    let (mut set, _) = orset_churn(2_000, 2);
    set.clear();
    assert!(set.is_empty());
    assert!(encoded_len(&set) <= 4 + REPLICAS * DOT_BYTES);
}

#[test]
fn ormap_metadata_after_key_churn_is_bounded() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut a: OrMap<u32, OrSetStore<u32>> = OrMap::default();
    let mut b: OrMap<u32, OrSetStore<u32>> = OrMap::default();
    for _ in 0..3_000 {
        let key = rng.random_range(0..10);
        let element = rng.random_range(0..5);
        let actor = rng.random_range(1..=2);
        let (src, dst) = if actor == 1 { (&mut a, &mut b) } else { (&mut b, &mut a) };
        let delta = match rng.random_range(0..3) {
            0 => src.update(key, |s, ctx| s.add_delta(ctx, actor, element)),
            1 => src.update(key, |s, _| s.remove_delta(&element)),
            _ => src.remove(&key),
        };
        dst.merge_delta(&delta);
    }
    assert_eq!(a, b);
    let live_elements: usize = a.entries().map(|(_, s)| s.len()).sum();
    assert_eq!(a.context().cloud_len(), 0);
    let bound = 8 + a.len() * 6 + live_elements * (6 + 2 * DOT_BYTES) + 2 * DOT_BYTES;
    assert!(encoded_len(&a) <= bound, "{} > {bound}", encoded_len(&a));
}

#[test]
fn dvv_metadata_is_bounded_by_servers_not_writes() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut servers: Vec<DvvSet<u32>> = vec![DvvSet::new(); REPLICAS];
    let mut stale_reads: Vec<VectorClock> = vec![VectorClock::new()];
    for i in 0..5_000u32 {
        let s = rng.random_range(0..REPLICAS);
        // Mostly read-modify-write; sometimes a client writes with a stale read or blindly.
        let ctx = match rng.random_range(0..10) {
            0 => VectorClock::new(),
            1 => stale_reads[rng.random_range(0..stale_reads.len())].clone(),
            _ => servers[s].context().clone(),
        };
        if i % 100 == 0 {
            stale_reads.push(servers[s].context().clone());
        }
        servers[s].put(&ctx, i, s as NodeId + 1);
        let other = rng.random_range(0..REPLICAS);
        let copy = servers[s].clone();
        servers[other].sync(&copy);
        assert!(servers[s].context().len() <= REPLICAS);
    }
    // Every server answers one last read-modify-write, then anti-entropy runs.
    for (s, server) in servers.iter_mut().enumerate() {
        let ctx = server.context().clone();
        server.put(&ctx, 0, s as NodeId + 1);
    }
    let snapshot = servers.clone();
    for server in servers.iter_mut() {
        for other in &snapshot {
            server.sync(other);
        }
    }
    assert!(servers.iter().all(|s| s == &servers[0]));
    let key = &servers[0];
    assert!(key.len() <= REPLICAS, "{} siblings", key.len());
    let bound = 4 + REPLICAS * DOT_BYTES + key.len() * (DOT_BYTES + 5);
    assert!(encoded_len(key) <= bound, "{} > {bound}", encoded_len(key));
}
