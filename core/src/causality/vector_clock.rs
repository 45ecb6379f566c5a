//! Vector clocks: one counter per node, the classic way to decide whether two versions are causally
//! ordered or concurrent.

use crate::contract::NodeId;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// How two causal histories relate. Unlike [`Ordering`] this has a fourth answer, `Concurrent`,
/// because causality is only a partial order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CausalOrder {
    /// The left history is a strict prefix of the right one (left happened before right).
    Before,
    /// The left history strictly contains the right one (left happened after right).
    After,
    /// Both histories are identical.
    Equal,
    /// Neither contains the other: the versions were produced without seeing each other.
    Concurrent,
}

impl CausalOrder {
    /// Converts to a total [`Ordering`] when the histories are comparable, `None` when concurrent.
    pub fn to_ordering(self) -> Option<Ordering> {
        match self {
            CausalOrder::Before => Some(Ordering::Less),
            CausalOrder::After => Some(Ordering::Greater),
            CausalOrder::Equal => Some(Ordering::Equal),
            CausalOrder::Concurrent => None,
        }
    }

    /// The relation seen from the other side (`a.compare(b).reverse() == b.compare(a)`).
    pub fn reverse(self) -> CausalOrder {
        match self {
            CausalOrder::Before => CausalOrder::After,
            CausalOrder::After => CausalOrder::Before,
            other => other,
        }
    }
}

/// A vector clock: for each node, how many of its events are in this history.
///
/// Absent nodes count as zero, and zero entries are never stored, so two clocks describing the same
/// history are `==` and encode to the same bytes. The derived `Ord` is a canonical *total* order
/// (lexicographic over entries) for sorting and deduplication only; use [`VectorClock::compare`]
/// for causality.
///
/// Pruning ([`VectorClock::prune`]) bounds the clock to the live membership. The trade-off: once a
/// departed node's entry is dropped, a version that only differs from another by that node's events
/// compares as ordered (or equal) instead of concurrent, so a concurrent write can be silently
/// overwritten. Pruning is therefore only safe once every replica has received all of the departed
/// node's writes (e.g. after a full anti-entropy round that followed its removal), at which point
/// its entry is identical everywhere and carries no information.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "BTreeMap<NodeId, u64>", into = "BTreeMap<NodeId, u64>")]
pub struct VectorClock {
    entries: BTreeMap<NodeId, u64>,
}

impl From<BTreeMap<NodeId, u64>> for VectorClock {
    /// Builds a clock from raw entries (e.g. decoded from the wire), dropping zero entries so the
    /// no-zeros invariant holds whatever the sender did.
    fn from(mut entries: BTreeMap<NodeId, u64>) -> Self {
        entries.retain(|_, c| *c > 0);
        VectorClock { entries }
    }
}

impl From<VectorClock> for BTreeMap<NodeId, u64> {
    fn from(clock: VectorClock) -> Self {
        clock.entries
    }
}

impl FromIterator<(NodeId, u64)> for VectorClock {
    /// Collects entries, keeping the largest counter when a node appears twice.
    fn from_iter<I: IntoIterator<Item = (NodeId, u64)>>(iter: I) -> Self {
        let mut clock = VectorClock::new();
        for (node, counter) in iter {
            clock.observe(node, counter);
        }
        clock
    }
}

impl VectorClock {
    /// The empty history (every counter zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// This node's counter (zero if absent).
    pub fn get(&self, node: NodeId) -> u64 {
        self.entries.get(&node).copied().unwrap_or(0)
    }

    /// Records one more event of `node` and returns its new counter. Saturates at `u64::MAX`
    /// (unreachable in practice: 2^64 events) instead of panicking.
    pub fn increment(&mut self, node: NodeId) -> u64 {
        let counter = self.entries.entry(node).or_insert(0);
        *counter = counter.saturating_add(1);
        *counter
    }

    /// Raises `node`'s counter to at least `counter` (a pointwise max for one entry).
    pub fn observe(&mut self, node: NodeId, counter: u64) {
        if counter == 0 {
            return;
        }
        let entry = self.entries.entry(node).or_insert(0);
        *entry = (*entry).max(counter);
    }

    /// Pointwise maximum: afterwards `self` describes the union of both histories.
    pub fn merge(&mut self, other: &VectorClock) {
        for (&node, &counter) in &other.entries {
            self.observe(node, counter);
        }
    }

    /// The union of two histories, without modifying either.
    pub fn joined(&self, other: &VectorClock) -> VectorClock {
        let mut out = self.clone();
        out.merge(other);
        out
    }

    /// Compares two histories causally.
    pub fn compare(&self, other: &VectorClock) -> CausalOrder {
        let mut self_ahead = false;
        let mut other_ahead = false;
        let nodes: BTreeSet<NodeId> = self.entries.keys().chain(other.entries.keys()).copied().collect();
        for node in nodes {
            match self.get(node).cmp(&other.get(node)) {
                Ordering::Greater => self_ahead = true,
                Ordering::Less => other_ahead = true,
                Ordering::Equal => {}
            }
            if self_ahead && other_ahead {
                return CausalOrder::Concurrent;
            }
        }
        match (self_ahead, other_ahead) {
            (false, false) => CausalOrder::Equal,
            (true, false) => CausalOrder::After,
            (false, true) => CausalOrder::Before,
            (true, true) => CausalOrder::Concurrent,
        }
    }

    /// True when this history contains all of `other` (`other <= self`; equal clocks dominate each
    /// other).
    pub fn dominates(&self, other: &VectorClock) -> bool {
        other.entries.iter().all(|(&node, &counter)| self.get(node) >= counter)
    }

    /// True when the two histories are concurrent.
    pub fn concurrent_with(&self, other: &VectorClock) -> bool {
        self.compare(other) == CausalOrder::Concurrent
    }

    /// Drops the entries of `departed` nodes. See the type's documentation for when this is safe:
    /// only after all of their writes have reached every replica.
    pub fn prune(&mut self, departed: &BTreeSet<NodeId>) {
        self.entries.retain(|node, _| !departed.contains(node));
    }

    /// Keeps only the entries of `members` (the complement of [`VectorClock::prune`]), with the
    /// same safety condition.
    pub fn retain_members(&mut self, members: &BTreeSet<NodeId>) {
        self.entries.retain(|node, _| members.contains(node));
    }

    /// The nodes with a non-zero counter and their counters, in node order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.entries.iter().map(|(&n, &c)| (n, c))
    }

    /// Number of non-zero entries (the metadata cost of this clock).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for the empty history.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clock() -> impl Strategy<Value = VectorClock> {
        prop::collection::btree_map(0u64..4, 0u64..4, 0..4).prop_map(VectorClock::from)
    }

    #[test]
    fn increment_compare_and_prune() {
        let mut a = VectorClock::new();
        a.increment(1);
        let mut b = a.clone();
        assert_eq!(a.compare(&b), CausalOrder::Equal);
        b.increment(2);
        assert_eq!(a.compare(&b), CausalOrder::Before);
        assert_eq!(b.compare(&a), CausalOrder::After);
        a.increment(3);
        assert_eq!(a.compare(&b), CausalOrder::Concurrent);
        assert!(!a.dominates(&b) && !b.dominates(&a));
        let joined = a.joined(&b);
        assert!(joined.dominates(&a) && joined.dominates(&b));
        // Pruning node 3 (the only difference that made them concurrent) makes them look ordered:
        // the documented trade-off.
        a.prune(&BTreeSet::from([3]));
        assert_eq!(a.compare(&b), CausalOrder::Before);
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn zero_entries_are_normalised_on_decode() {
        let raw = BTreeMap::from([(1u64, 0u64), (2, 5)]);
        let bytes = postcard::to_stdvec(&raw).unwrap();
        let decoded: VectorClock = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, VectorClock::from_iter([(2, 5)]));
        let round = postcard::to_stdvec(&decoded).unwrap();
        assert_eq!(postcard::from_bytes::<VectorClock>(&round).unwrap(), decoded);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn merge_is_a_semilattice_join(a in clock(), b in clock(), c in clock()) {
            prop_assert_eq!(a.joined(&b), b.joined(&a));
            prop_assert_eq!(a.joined(&b).joined(&c), a.joined(&b.joined(&c)));
            prop_assert_eq!(a.joined(&a), a.clone());
        }

        #[test]
        fn compare_is_a_partial_order_consistent_with_merge(a in clock(), b in clock(), c in clock()) {
            prop_assert_eq!(a.compare(&a), CausalOrder::Equal);
            prop_assert_eq!(a.compare(&b), b.compare(&a).reverse());
            let le = |x: &VectorClock, y: &VectorClock| y.dominates(x);
            // Antisymmetry and transitivity.
            if le(&a, &b) && le(&b, &a) { prop_assert_eq!(&a, &b); }
            if le(&a, &b) && le(&b, &c) { prop_assert!(le(&a, &c)); }
            // a <= b exactly when joining b with a changes nothing.
            prop_assert_eq!(le(&a, &b), a.joined(&b) == b);
            // The join is an upper bound of both.
            let j = a.joined(&b);
            prop_assert!(le(&a, &j) && le(&b, &j));
            let expected = match (le(&a, &b), le(&b, &a)) {
                (true, true) => CausalOrder::Equal,
                (true, false) => CausalOrder::Before,
                (false, true) => CausalOrder::After,
                (false, false) => CausalOrder::Concurrent,
            };
            prop_assert_eq!(a.compare(&b), expected);
        }
    }
}
