//! Depth counters for fuzz targets.
//!
//! libFuzzer's `cov:`/`ft:` say how much code ran, not whether the interesting states (a leader,
//! a commit) were reached. Targets count those here; with `VECRAFT_FUZZ_STATS=1` in the
//! environment the counts are printed to stderr at every power of two of inputs, so a one-off
//! run answers "how often was a leader elected" without slowing normal runs down.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts inputs that reached one state.
pub struct Counter {
    target: &'static str,
    what: &'static str,
    hits: AtomicU64,
}

impl Counter {
    /// A counter printed as `target: hits/inputs what`.
    pub const fn new(target: &'static str, what: &'static str) -> Self {
        Counter { target, what, hits: AtomicU64::new(0) }
    }

    /// Records one input that reached the state.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
}

static INPUTS: AtomicU64 = AtomicU64::new(0);

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("VECRAFT_FUZZ_STATS").is_some())
}

/// Ends one input; prints `counters` when stats are enabled and the input count is a power of two.
pub fn input_done(counters: &[&Counter]) {
    let n = INPUTS.fetch_add(1, Ordering::Relaxed) + 1;
    if enabled() && n.is_power_of_two() {
        for c in counters {
            let hits = c.hits.load(Ordering::Relaxed);
            eprintln!("#stats {}: {hits}/{n} {}", c.target, c.what);
        }
    }
}
