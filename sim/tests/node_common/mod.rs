//! What the node-world test files share: the seed count from the environment and a parallel
//! runner over a range of seeds.

use std::sync::Mutex;
use vecraft_sim::node_world::{NodeBug, NodeWorldConfig, NodeWorldReport, run_node_world};

/// `VECRAFT_NODE_SEEDS`, or `default`.
pub fn env_seeds(default: u64) -> u64 {
    std::env::var("VECRAFT_NODE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Runs the worlds `make` builds for `seeds` (with `bug`) whose configuration `keep` accepts,
/// on every core; reports in seed order.
pub fn run_seeds(
    seeds: std::ops::Range<u64>,
    bug: Option<NodeBug>,
    make: fn(u64, Option<NodeBug>) -> NodeWorldConfig,
    keep: fn(&NodeWorldConfig) -> bool,
) -> Vec<NodeWorldReport> {
    let next = Mutex::new(seeds);
    let out = Mutex::new(Vec::new());
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                while let Some(seed) = next.lock().unwrap().next() {
                    let cfg = make(seed, bug);
                    if !keep(&cfg) {
                        continue;
                    }
                    let r = run_node_world(cfg);
                    out.lock().unwrap().push(r);
                }
            });
        }
    });
    let mut v = out.into_inner().unwrap();
    v.sort_by_key(|r| r.seed);
    v
}
