//! Inserting one node: level draw, neighbour search on each of its layers, neighbour selection
//! with the HNSW paper's heuristic (algorithm 4, as hnswlib applies it) and back-links pruned by
//! the same heuristic.
//!
//! The same [`link_node`] serves the deterministic single-threaded build (no locks, the entry
//! point moves as higher nodes arrive) and the parallel bulk build (a lock per node serialises
//! writers of that node's lists; the entry point is fixed up front).

use std::sync::Mutex;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use super::graph::MAX_LEVEL;
use super::search::{Cand, Scratch, View};
use crate::vector::index::Metric;

/// Draws a node level from the geometric distribution HNSW uses: `floor(-ln(u) / ln(m))`, so
/// each layer holds about `1/m` of the nodes below it.
pub(super) fn draw_level(rng: &mut ChaCha8Rng, m: usize) -> u8 {
    let u: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let ml = 1.0 / (m.max(2) as f64).ln();
    let level = (-u.ln() * ml).floor();
    if level >= MAX_LEVEL as f64 { MAX_LEVEL } else { level as u8 }
}

/// Buffers one inserting thread reuses across nodes.
#[derive(Debug, Default)]
pub(super) struct BuildScratch {
    pub walk: Scratch,
    found: Vec<Cand>,
    selected: Vec<Cand>,
    pool: Vec<Cand>,
    kept: Vec<Cand>,
    ids: Vec<u32>,
}

/// Picks up to `max` neighbours from `candidates` (sorted closest first to the base node):
/// a candidate is kept only if it is closer to the base than to every neighbour already kept.
/// This spreads links across directions instead of spending them all inside one cluster, which
/// is what lets greedy search cross between clusters.
///
/// Inner product is not a metric (a vector need not be closest to itself), so the pruning rule
/// discards too much and leaves nodes with few links; for it, the list is topped up to `max`
/// with the closest pruned candidates (the paper's `keepPrunedConnections`).
pub(super) fn select_neighbours(view: &View, candidates: &[Cand], max: usize, out: &mut Vec<Cand>) {
    out.clear();
    for &c in candidates {
        if out.len() >= max {
            break;
        }
        let cv = view.vector(c.id);
        if out.iter().all(|s| view.metric.distance(cv, view.vector(s.id)) >= c.d) {
            out.push(c);
        }
    }
    if view.metric == Metric::NegDot && out.len() < max {
        let kept = out.len();
        for &c in candidates {
            if out.len() >= max {
                break;
            }
            if !out[..kept].contains(&c) {
                out.push(c);
            }
        }
        out.sort_unstable();
    }
}

/// Locks `slot`'s lists when building in parallel; nothing when single-threaded.
fn lock(locks: Option<&[Mutex<()>]>, slot: u32) -> Option<std::sync::MutexGuard<'_, ()>> {
    // A poisoned lock only means another builder thread panicked; the lists stay valid.
    locks.map(|l| l[slot as usize].lock().unwrap_or_else(|e| e.into_inner()))
}

/// Links `slot` (registered at `level` in `view.links`, its vector in the arena) into the graph
/// reachable from `entry` (a node and its level). `m` neighbours are chosen per layer for the new
/// node; a neighbour whose list is full re-selects among its old links plus the new node.
#[allow(clippy::too_many_arguments)]
pub(super) fn link_node(
    view: &View,
    m: usize,
    ef_construct: usize,
    slot: u32,
    level: u8,
    entry: (u32, u8),
    locks: Option<&[Mutex<()>]>,
    b: &mut BuildScratch,
) {
    let query = view.vector(slot);
    let (entry_id, entry_level) = entry;
    let mut cur = Cand { d: view.dist(query, entry_id), id: entry_id };
    if level < entry_level {
        cur = view.descend(query, cur, entry_level, level, &mut b.walk);
    }
    for layer in (0..=level.min(entry_level)).rev() {
        view.search_layer(query, cur, ef_construct, layer, None, &mut b.walk, &mut b.found);
        b.found.retain(|c| c.id != slot);
        let Some(&closest) = b.found.first() else { continue };
        select_neighbours(view, &b.found, m, &mut b.selected);
        b.ids.clear();
        b.ids.extend(b.selected.iter().map(|c| c.id));
        {
            let _guard = lock(locks, slot);
            view.links.set_neighbours(slot, layer, &b.ids);
        }
        for i in 0..b.selected.len() {
            let n = b.selected[i];
            connect_back(view, n.id, slot, n.d, layer, locks, b);
        }
        cur = closest;
    }
}

/// Adds `new` (at distance `d` from `node`) to `node`'s list on `layer`, pruning with the
/// heuristic when the list is full.
#[allow(clippy::too_many_arguments)]
fn connect_back(
    view: &View,
    node: u32,
    new: u32,
    d: f32,
    layer: u8,
    locks: Option<&[Mutex<()>]>,
    b: &mut BuildScratch,
) {
    let _guard = lock(locks, node);
    if view.links.push_neighbour(node, layer, new) {
        return;
    }
    let base = view.vector(node);
    view.links.neighbours_into(node, layer, &mut b.ids);
    b.pool.clear();
    b.pool.extend(b.ids.iter().filter(|&&n| n != new).map(|&n| Cand { d: view.dist(base, n), id: n }));
    b.pool.push(Cand { d, id: new });
    b.pool.sort_unstable();
    let cap = view.links.capacity(layer);
    select_neighbours(view, &b.pool, cap, &mut b.kept);
    b.ids.clear();
    b.ids.extend(b.kept.iter().map(|c| c.id));
    view.links.set_neighbours(node, layer, &b.ids);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn levels_are_geometric() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let levels: Vec<u8> = (0..100_000).map(|_| draw_level(&mut rng, 16)).collect();
        let at_least_1 = levels.iter().filter(|&&l| l >= 1).count() as f64 / 1e5;
        let at_least_2 = levels.iter().filter(|&&l| l >= 2).count() as f64 / 1e5;
        assert!((at_least_1 - 1.0 / 16.0).abs() < 0.005, "{at_least_1}");
        assert!((at_least_2 - 1.0 / 256.0).abs() < 0.001, "{at_least_2}");
        assert!(levels.iter().all(|&l| l <= MAX_LEVEL));
    }
}
