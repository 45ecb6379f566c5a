//! Conflict resolution: the one interface the replication layer calls when replicas hand it several
//! versions of the same value.
//!
//! Every strategy first puts the versions in a canonical order and drops exact duplicates, so the
//! result depends only on the *set* of versions, never on the order replicas answered in.

use crate::causality::{CausalOrder, HlcTimestamp, VectorClock};
use crate::crdt::Crdt;
use crate::crdt::lww_register::canonical_bytes;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt::Debug;

/// One version of a value with its causal metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version<V> {
    /// The value.
    pub value: V,
    /// The causal history this version contains (what its writer had seen, plus the write).
    pub clock: VectorClock,
    /// The HLC time of the write (for last-write-wins and for display).
    pub stamp: HlcTimestamp,
}

/// The outcome of resolving: one version when settled, several concurrent siblings otherwise, in
/// canonical order. Empty only when no version was given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved<V> {
    /// The surviving versions.
    pub versions: Vec<Version<V>>,
}

impl<V: Clone> Resolved<V> {
    /// True when exactly one version survived.
    pub fn is_settled(&self) -> bool {
        self.versions.len() == 1
    }

    /// The single surviving version, if settled.
    pub fn single(&self) -> Option<&Version<V>> {
        match self.versions.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Read-time resolution of siblings: `pick` chooses (or computes) one value from the siblings in
    /// canonical order; the result carries the join of their clocks and their largest stamp, so it
    /// causally supersedes all of them when written back. `None` when there are no versions.
    pub fn pick(&self, pick: impl FnOnce(&[Version<V>]) -> V) -> Option<Version<V>> {
        match self.versions.as_slice() {
            [] => None,
            [only] => Some(only.clone()),
            many => Some(superseding(many, pick(many))),
        }
    }
}

/// Settles a set of versions of one value. Implementations must be deterministic: the same set of
/// versions, in any order, gives the same [`Resolved`].
pub trait ConflictResolver<V> {
    /// Resolves `versions` (any order, duplicates allowed).
    fn resolve(&self, versions: Vec<Version<V>>) -> Resolved<V>;
}

/// Last-write-wins by HLC timestamp: the version with the greatest stamp wins, concurrent or not.
/// The winner is given the join of all clocks so it supersedes the losers causally too.
#[derive(Clone, Copy, Debug, Default)]
pub struct LastWriteWins;

impl<V: Clone + PartialEq + Serialize> ConflictResolver<V> for LastWriteWins {
    fn resolve(&self, versions: Vec<Version<V>>) -> Resolved<V> {
        let versions = canonicalise(versions);
        let Some(winner) = versions.last() else { return Resolved { versions } };
        let clock = versions.iter().fold(VectorClock::new(), |acc, v| acc.joined(&v.clock));
        let settled = Version { value: winner.value.clone(), clock, stamp: winner.stamp };
        Resolved { versions: vec![settled] }
    }
}

/// Keeps every version not causally dominated by another (the concurrent frontier) as siblings, to
/// be settled on read with [`Resolved::pick`] or by a later write that has seen them all.
#[derive(Clone, Copy, Debug, Default)]
pub struct CausalSiblings;

impl<V: Clone + PartialEq + Serialize> ConflictResolver<V> for CausalSiblings {
    fn resolve(&self, versions: Vec<Version<V>>) -> Resolved<V> {
        Resolved { versions: causal_frontier(canonicalise(versions)) }
    }
}

/// Merges the values as CRDTs: no version is lost. The result carries the join of the clocks and
/// the greatest stamp.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrdtMerge;

impl<V: Crdt + Serialize> ConflictResolver<V> for CrdtMerge {
    fn resolve(&self, versions: Vec<Version<V>>) -> Resolved<V> {
        let versions = canonicalise(versions);
        match versions.as_slice() {
            [] | [_] => Resolved { versions },
            many => {
                let mut value = V::default();
                for v in many {
                    value.merge(&v.value);
                }
                Resolved { versions: vec![superseding(many, value)] }
            }
        }
    }
}

/// A user-supplied resolver, called with the concurrent frontier (in canonical order) whenever more
/// than one version survives causal pruning. It must be a pure function of its input for the
/// replicas to agree.
pub struct CustomResolver<V> {
    resolve: Box<ResolveFn<V>>,
}

/// The signature of a user-supplied resolving function.
pub type ResolveFn<V> = dyn Fn(&[Version<V>]) -> V + Send + Sync;

impl<V> CustomResolver<V> {
    /// Wraps the resolving function.
    pub fn new(resolve: impl Fn(&[Version<V>]) -> V + Send + Sync + 'static) -> Self {
        CustomResolver { resolve: Box::new(resolve) }
    }
}

impl<V> Debug for CustomResolver<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomResolver(..)")
    }
}

impl<V: Clone + PartialEq + Serialize> ConflictResolver<V> for CustomResolver<V> {
    fn resolve(&self, versions: Vec<Version<V>>) -> Resolved<V> {
        let frontier = causal_frontier(canonicalise(versions));
        match frontier.as_slice() {
            [] | [_] => Resolved { versions: frontier },
            many => Resolved { versions: vec![superseding(many, (self.resolve)(many))] },
        }
    }
}

/// A new version holding `value` that causally supersedes all of `versions`.
fn superseding<V>(versions: &[Version<V>], value: V) -> Version<V> {
    let clock = versions.iter().fold(VectorClock::new(), |acc, v| acc.joined(&v.clock));
    let stamp = versions.iter().map(|v| v.stamp).max().unwrap_or_default();
    Version { value, clock, stamp }
}

/// Total order on versions: stamp, then clock (canonical, not causal), then encoded value.
fn canonical_order<V: PartialEq + Serialize>(a: &Version<V>, b: &Version<V>) -> Ordering {
    a.stamp.cmp(&b.stamp).then_with(|| a.clock.cmp(&b.clock)).then_with(|| {
        if a.value == b.value {
            Ordering::Equal
        } else {
            canonical_bytes(&a.value).cmp(&canonical_bytes(&b.value))
        }
    })
}

/// Sorts canonically and removes exact duplicates.
fn canonicalise<V: PartialEq + Serialize>(mut versions: Vec<Version<V>>) -> Vec<Version<V>> {
    versions.sort_by(canonical_order);
    versions.dedup_by(|a, b| canonical_order(a, b) == Ordering::Equal);
    versions
}

/// Keeps the versions no other version causally dominates. Of versions with equal clocks (the same
/// write delivered with different payloads, which only a faulty node produces) the canonically
/// greatest is kept. Input must be canonical; output stays canonical.
fn causal_frontier<V>(versions: Vec<Version<V>>) -> Vec<Version<V>> {
    let keep: Vec<bool> = (0..versions.len())
        .map(|i| {
            !versions.iter().enumerate().any(|(j, other)| match versions[i].clock.compare(&other.clock) {
                CausalOrder::Before => true,
                CausalOrder::Equal => j > i,
                CausalOrder::After | CausalOrder::Concurrent => false,
            })
        })
        .collect();
    versions.into_iter().zip(keep).filter_map(|(v, k)| k.then_some(v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::GCounter;
    use proptest::prelude::*;

    fn version<V>(value: V, clock: &[(u64, u64)], wall: u64, node: u64) -> Version<V> {
        Version {
            value,
            clock: clock.iter().copied().collect(),
            stamp: HlcTimestamp { wall_millis: wall, logical: 0, node },
        }
    }

    #[test]
    fn strategies_on_two_concurrent_and_one_stale_version() {
        let stale = version("old", &[(1, 1)], 10, 1);
        let a = version("a", &[(1, 2)], 30, 1);
        let b = version("b", &[(1, 1), (2, 1)], 20, 2);
        let all = vec![b.clone(), stale.clone(), a.clone()];

        let lww = LastWriteWins.resolve(all.clone());
        let winner = lww.single().unwrap();
        assert_eq!(winner.value, "a");
        assert_eq!(winner.clock, VectorClock::from_iter([(1, 2), (2, 1)]));

        let siblings = CausalSiblings.resolve(all.clone());
        let values: Vec<_> = siblings.versions.iter().map(|v| v.value).collect();
        assert_eq!(values, vec!["b", "a"]); // canonical order is by stamp
        let picked = siblings.pick(|vs| if vs.iter().any(|v| v.value == "b") { "b" } else { "a" }).unwrap();
        assert_eq!(picked.value, "b");
        assert_eq!(picked.stamp.wall_millis, 30);
        assert_eq!(picked.clock.compare(&a.clock), CausalOrder::After);

        let custom = CustomResolver::new(|vs: &[Version<&'static str>]| if vs.len() == 2 { "both" } else { "one" });
        assert_eq!(custom.resolve(all).single().unwrap().value, "both");
        // A single causally newest version never reaches the custom function.
        assert_eq!(custom.resolve(vec![stale, a]).single().unwrap().value, "a");
    }

    #[test]
    fn crdt_merge_keeps_every_contribution() {
        let mut x = GCounter::new();
        x.increment(1, 3);
        let mut y = GCounter::new();
        y.increment(2, 4);
        let merged = CrdtMerge.resolve(vec![version(x, &[(1, 1)], 1, 1), version(y, &[(2, 1)], 1, 2)]);
        assert_eq!(merged.single().unwrap().value.value(), 7);
    }

    fn versions() -> impl Strategy<Value = Vec<Version<u8>>> {
        let one = (0u8..4, prop::collection::btree_map(0u64..3, 0u64..3, 0..3), 0u64..4, 0u64..3)
            .prop_map(|(value, clock, wall, node)| Version {
                value,
                clock: VectorClock::from(clock),
                stamp: HlcTimestamp { wall_millis: wall, logical: 0, node },
            });
        prop::collection::vec(one, 0..6)
    }

    fn gcounter_versions() -> impl Strategy<Value = Vec<Version<GCounter>>> {
        versions().prop_map(|vs| {
            vs.into_iter()
                .map(|v| {
                    let mut g = GCounter::new();
                    g.increment(u64::from(v.value), 1 + u64::from(v.value));
                    Version { value: g, clock: v.clock, stamp: v.stamp }
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Same versions in any order, with duplicates, give the same result for every strategy.
        #[test]
        fn resolution_is_order_independent(vs in versions(), keys in prop::collection::vec(any::<u32>(), 12)) {
            let mut shuffled: Vec<_> = vs.iter().cloned().chain(vs.iter().take(2).cloned()).enumerate()
                .map(|(i, v)| (keys[i % keys.len()], i, v)).collect();
            shuffled.sort_by_key(|(k, i, _)| (*k, *i));
            let shuffled: Vec<_> = shuffled.into_iter().map(|(_, _, v)| v).collect();
            prop_assert_eq!(LastWriteWins.resolve(vs.clone()), LastWriteWins.resolve(shuffled.clone()));
            prop_assert_eq!(CausalSiblings.resolve(vs.clone()), CausalSiblings.resolve(shuffled.clone()));
            let custom = CustomResolver::new(|vs: &[Version<u8>]| vs.iter().map(|v| v.value).fold(0u8, u8::wrapping_add));
            prop_assert_eq!(custom.resolve(vs.clone()), custom.resolve(shuffled.clone()));
            let siblings = CausalSiblings.resolve(vs.clone());
            // No surviving sibling is dominated by another.
            for a in &siblings.versions {
                for b in &siblings.versions {
                    prop_assert!(a == b || a.clock.compare(&b.clock) == CausalOrder::Concurrent);
                }
            }
        }

        #[test]
        fn crdt_merge_is_order_independent(vs in gcounter_versions(), keys in prop::collection::vec(any::<u32>(), 8)) {
            let mut shuffled: Vec<_> = vs.iter().cloned().enumerate().map(|(i, v)| (keys[i % keys.len()], i, v)).collect();
            shuffled.sort_by_key(|(k, i, _)| (*k, *i));
            let shuffled: Vec<_> = shuffled.into_iter().map(|(_, _, v)| v).collect();
            prop_assert_eq!(CrdtMerge.resolve(vs), CrdtMerge.resolve(shuffled));
        }
    }
}
