//! Counters replicated without coordination: grow-only and increment/decrement.

use crate::contract::NodeId;
use crate::crdt::Crdt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A grow-only counter: each node counts its own increments, the value is the sum, and merge takes
/// the per-node maximum (a node's count only grows, so the larger one is the newer one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GCounter {
    counts: BTreeMap<NodeId, u64>,
}

impl GCounter {
    /// A zero counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `by` on behalf of `actor` and returns the delta to ship: just that node's new count.
    /// Saturates at `u64::MAX` per node rather than wrapping (wrapping would look like a decrease and
    /// be lost in merges).
    pub fn increment(&mut self, actor: NodeId, by: u64) -> GCounter {
        let count = self.counts.entry(actor).or_insert(0);
        *count = count.saturating_add(by);
        GCounter { counts: BTreeMap::from([(actor, *count)]) }
    }

    /// The total over all nodes (u128 so the sum of u64 counts cannot overflow).
    pub fn value(&self) -> u128 {
        self.counts.values().map(|&c| u128::from(c)).sum()
    }

    /// One node's contribution.
    pub fn count_of(&self, actor: NodeId) -> u64 {
        self.counts.get(&actor).copied().unwrap_or(0)
    }

    /// Number of nodes with an entry (the metadata size driver).
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// True when no node ever incremented.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

impl Crdt for GCounter {
    type Delta = GCounter;

    fn merge(&mut self, other: &Self) {
        for (&actor, &count) in &other.counts {
            let mine = self.counts.entry(actor).or_insert(0);
            *mine = (*mine).max(count);
        }
    }

    fn merge_delta(&mut self, delta: &Self::Delta) {
        self.merge(delta);
    }
}

/// A counter that can go up and down: two grow-only counters, one for increments and one for
/// decrements; the value is their difference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnCounter {
    increments: GCounter,
    decrements: GCounter,
}

impl PnCounter {
    /// A zero counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `by` (negative to subtract) on behalf of `actor`; returns the delta to ship.
    pub fn add(&mut self, actor: NodeId, by: i64) -> PnCounter {
        let mut delta = PnCounter::new();
        if by >= 0 {
            delta.increments = self.increments.increment(actor, by.unsigned_abs());
        } else {
            delta.decrements = self.decrements.increment(actor, by.unsigned_abs());
        }
        delta
    }

    /// Increments minus decrements.
    pub fn value(&self) -> i128 {
        // Each side is at most (#nodes * u64::MAX), far inside i128.
        self.increments.value() as i128 - self.decrements.value() as i128
    }
}

impl Crdt for PnCounter {
    type Delta = PnCounter;

    fn merge(&mut self, other: &Self) {
        self.increments.merge(&other.increments);
        self.decrements.merge(&other.decrements);
    }

    fn merge_delta(&mut self, delta: &Self::Delta) {
        self.merge(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_across_nodes_and_deltas_are_tiny() {
        let mut a = PnCounter::new();
        let mut b = PnCounter::new();
        let d1 = a.add(1, 5);
        let d2 = b.add(2, -3);
        let d3 = a.add(1, 2);
        b.merge_delta(&d3);
        b.merge_delta(&d1); // stale delta after a newer one: harmless
        a.merge_delta(&d2);
        assert_eq!(a, b);
        assert_eq!(a.value(), 4);
        assert_eq!(d3.increments.len(), 1);
        assert_eq!(d3.increments.count_of(1), 7);
    }
}
