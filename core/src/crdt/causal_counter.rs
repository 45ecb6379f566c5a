//! A counter that can live inside an [`crate::crdt::OrMap`] and be reset by removing its key.

use crate::causality::{CausalContext, Dot};
use crate::contract::NodeId;
use crate::crdt::dot_store::{Causal, DotFun};
use serde::{Deserialize, Serialize};

/// The dot store of a causal counter: for each node, its running total tagged by the dot of its
/// latest change (each change supersedes the node's previous dot). Unlike [`crate::crdt::PnCounter`]
/// it is dot-based, so removing it from a map drops every observed contribution (reset-remove).
/// A node that increments concurrently with the removal carries its whole running total, including
/// its pre-removal part, into the result: the known semantics of causal counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CounterStore(DotFun<i64>);

delegate_dot_store!([] CounterStore);

impl CounterStore {
    /// Delta that adds `by` (negative to subtract) to `actor`'s running total. Saturates at the
    /// i64 range instead of wrapping.
    pub fn add_delta(&self, ctx: &CausalContext, actor: NodeId, by: i64) -> Causal<Self> {
        let own: Vec<(Dot, i64)> =
            self.0.0.iter().filter(|(d, _)| d.node == actor).map(|(d, v)| (*d, *v)).collect();
        // Normally a node has one running total (each change supersedes its previous dot), but a
        // state decoded from untrusted bytes may carry several. They are summed, and the delta's
        // context covers all of them, so this write collapses them back into one.
        let total = own.iter().fold(0i64, |acc, (_, v)| acc.saturating_add(*v)).saturating_add(by);
        let dot = ctx.next_dot(actor);
        let mut delta_ctx: CausalContext = own.iter().map(|(d, _)| *d).collect();
        delta_ctx.insert(dot);
        Causal::from_parts(CounterStore(DotFun([(dot, total)].into())), delta_ctx)
    }

    /// The sum of every node's running total.
    pub fn value(&self) -> i128 {
        self.0.0.values().map(|&v| i128::from(v)).sum()
    }
}

/// A standalone causal counter (delta-state); mostly useful as a map value via [`CounterStore`].
pub type CausalCounter = Causal<CounterStore>;

impl Causal<CounterStore> {
    /// Adds `by` on behalf of `actor`; returns the delta to ship.
    pub fn add(&mut self, actor: NodeId, by: i64) -> CausalCounter {
        let delta = self.store.add_delta(&self.context, actor, by);
        self.apply(delta)
    }

    /// The counter's value.
    pub fn value(&self) -> i128 {
        self.store.value()
    }
}

#[cfg(test)]
mod hostile_state_tests {
    use super::*;

    #[test]
    fn several_totals_for_one_node_are_summed_and_collapsed_by_its_next_write() {
        // Two dots of node 1 (only possible from decoded hostile bytes), both in the context.
        let d1 = Dot { node: 1, counter: 1 };
        let d2 = Dot { node: 1, counter: 2 };
        let ctx: CausalContext = [d1, d2].into_iter().collect();
        let store = CounterStore(DotFun([(d1, 5), (d2, 7)].into()));
        let mut counter = Causal::from_parts(store, ctx);
        assert_eq!(counter.value(), 12);
        counter.add(1, 1);
        assert_eq!(counter.value(), 13);
        assert_eq!(counter.store.0.0.len(), 1, "the write superseded both old totals");
    }
}
