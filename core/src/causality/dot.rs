//! Dots (unique event ids) and causal contexts (compact sets of dots): the metadata that lets
//! delta-state CRDTs and dotted version vectors forget removed data without keeping tombstones.

use crate::causality::VectorClock;
use crate::contract::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One event: the `counter`-th event issued by `node`. Globally unique as long as each node issues
/// its own counters sequentially.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The node that issued the event.
    pub node: NodeId,
    /// Its position in that node's sequence, starting at 1.
    pub counter: u64,
}

impl Dot {
    /// The `counter`-th event of `node`.
    pub const fn new(node: NodeId, counter: u64) -> Self {
        Dot { node, counter }
    }
}

/// A set of dots stored compactly: a version vector for the gap-free prefix of each node's events
/// plus a "dot cloud" for the events received out of order.
///
/// Removing an element from a dot-based CRDT just forgets its dots from the store while the
/// context keeps remembering them, so a late copy of the element is recognised as already removed.
/// Because each node's events eventually arrive gap-free, the cloud folds back into the vector and
/// the context costs O(nodes), not O(history).
///
/// Invariant (kept by every operation and re-established on decode): every cloud dot has a counter
/// at least two above its node's compact entry (anything at or just above the prefix is folded in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "CausalContextRepr")]
pub struct CausalContext {
    compact: VectorClock,
    cloud: BTreeSet<Dot>,
}

/// The wire shape of a [`CausalContext`], normalised on the way in.
#[derive(Deserialize)]
struct CausalContextRepr {
    compact: VectorClock,
    cloud: BTreeSet<Dot>,
}

impl From<CausalContextRepr> for CausalContext {
    fn from(repr: CausalContextRepr) -> Self {
        let mut ctx = CausalContext { compact: repr.compact, cloud: repr.cloud };
        ctx.compact_cloud();
        ctx
    }
}

impl FromIterator<Dot> for CausalContext {
    fn from_iter<I: IntoIterator<Item = Dot>>(iter: I) -> Self {
        let mut ctx = CausalContext::new();
        for dot in iter {
            ctx.insert(dot);
        }
        ctx
    }
}

impl CausalContext {
    /// The empty context (nothing seen).
    pub fn new() -> Self {
        Self::default()
    }

    /// A context holding exactly the history described by a version vector.
    pub fn from_clock(clock: VectorClock) -> Self {
        CausalContext { compact: clock, cloud: BTreeSet::new() }
    }

    /// Whether the event `dot` is part of this history.
    pub fn contains(&self, dot: &Dot) -> bool {
        dot.counter <= self.compact.get(dot.node) || self.cloud.contains(dot)
    }

    /// The largest counter of `node` in this history (zero if none).
    pub fn max_counter(&self, node: NodeId) -> u64 {
        let in_cloud = self.cloud.range(Dot::new(node, 0)..=Dot::new(node, u64::MAX)).next_back();
        in_cloud.map_or(0, |d| d.counter).max(self.compact.get(node))
    }

    /// The next fresh dot for `node` (not yet in the context; call [`CausalContext::insert`] to
    /// claim it). Saturates at `u64::MAX`, unreachable in practice.
    pub fn next_dot(&self, node: NodeId) -> Dot {
        Dot::new(node, self.max_counter(node).saturating_add(1))
    }

    /// Adds one event.
    pub fn insert(&mut self, dot: Dot) {
        if dot.counter == 0 || self.contains(&dot) {
            return;
        }
        if dot.counter == self.compact.get(dot.node).saturating_add(1) {
            self.compact.observe(dot.node, dot.counter);
            self.fold_node(dot.node);
        } else {
            self.cloud.insert(dot);
        }
    }

    /// Set union of two histories.
    pub fn merge(&mut self, other: &CausalContext) {
        self.compact.merge(&other.compact);
        self.cloud.extend(other.cloud.iter().copied());
        self.compact_cloud();
    }

    /// The gap-free part as a version vector (what clients get as a read context).
    pub fn compact(&self) -> &VectorClock {
        &self.compact
    }

    /// The dots held outside the compact prefix, in order.
    pub fn cloud(&self) -> impl Iterator<Item = &Dot> {
        self.cloud.iter()
    }

    /// Number of dots held outside the compact prefix (a measure of out-of-order delivery debt).
    pub fn cloud_len(&self) -> usize {
        self.cloud.len()
    }

    /// True when nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.compact.is_empty() && self.cloud.is_empty()
    }

    /// Folds cloud dots of `node` that extend its compact prefix into it.
    fn fold_node(&mut self, node: NodeId) {
        while let Some(counter) = self.compact.get(node).checked_add(1)
            && self.cloud.remove(&Dot::new(node, counter))
        {
            self.compact.observe(node, counter);
        }
    }

    /// Re-establishes the invariant: drops cloud dots already covered, folds contiguous ones.
    fn compact_cloud(&mut self) {
        let nodes: BTreeSet<NodeId> = self.cloud.iter().map(|d| d.node).collect();
        for node in nodes {
            self.fold_node(node);
        }
        let compact = &self.compact;
        self.cloud.retain(|d| d.counter > compact.get(d.node));
        debug_assert!(self.cloud.iter().all(|d| d.counter > self.compact.get(d.node).saturating_add(1)));
    }

    /// How many distinct nodes appear in the history (the context's size driver).
    pub fn node_count(&self) -> usize {
        let mut nodes: BTreeSet<NodeId> = self.compact.iter().map(|(n, _)| n).collect();
        nodes.extend(self.cloud.iter().map(|d| d.node));
        nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn out_of_order_dots_fold_into_the_prefix() {
        let mut ctx = CausalContext::new();
        ctx.insert(Dot::new(1, 3));
        ctx.insert(Dot::new(1, 2));
        assert_eq!(ctx.cloud_len(), 2);
        assert!(!ctx.contains(&Dot::new(1, 1)));
        ctx.insert(Dot::new(1, 1));
        assert_eq!(ctx.cloud_len(), 0);
        assert_eq!(ctx.compact().get(1), 3);
        assert_eq!(ctx.next_dot(1), Dot::new(1, 4));
        assert_eq!(ctx.next_dot(2), Dot::new(2, 1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The context behaves exactly like the plain set of dots it represents.
        #[test]
        fn behaves_like_a_set_of_dots(
            a in prop::collection::vec((0u64..3, 1u64..6), 0..12),
            b in prop::collection::vec((0u64..3, 1u64..6), 0..12),
        ) {
            let set_a: BTreeSet<Dot> = a.iter().map(|&(n, c)| Dot::new(n, c)).collect();
            let set_b: BTreeSet<Dot> = b.iter().map(|&(n, c)| Dot::new(n, c)).collect();
            let mut ctx: CausalContext = set_a.iter().copied().collect();
            let ctx_b: CausalContext = set_b.iter().copied().collect();
            ctx.merge(&ctx_b);
            let union: BTreeSet<Dot> = set_a.union(&set_b).copied().collect();
            for n in 0..3 {
                for c in 1..7 {
                    let d = Dot::new(n, c);
                    prop_assert_eq!(ctx.contains(&d), union.contains(&d));
                }
            }
            let same: CausalContext = union.iter().copied().collect();
            prop_assert_eq!(&ctx, &same);
            let decoded: CausalContext = postcard::from_bytes(&postcard::to_stdvec(&ctx).unwrap()).unwrap();
            prop_assert_eq!(decoded, ctx);
        }
    }
}
