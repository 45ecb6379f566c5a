//! Observed-remove map whose values are themselves causal CRDTs sharing the map's causal context.

use crate::causality::CausalContext;
use crate::crdt::dot_store::{Causal, DotMap, DotStore, dots_of};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// The dot store of an observed-remove map: each present key with its value's dot store.
/// Maps nest (an `OrMapStore` is itself a [`DotStore`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    transparent,
    bound(deserialize = "K: Ord + Clone + Debug + Deserialize<'de>, V: DotStore + Deserialize<'de>")
)]
pub struct OrMapStore<K: Ord, V>(DotMap<K, V>);

impl<K: Ord, V> Default for OrMapStore<K, V> {
    fn default() -> Self {
        OrMapStore(DotMap::default())
    }
}

delegate_dot_store!([K: Ord + Clone + Debug, V: DotStore] OrMapStore<K, V>);

impl<K: Ord + Clone + Debug, V: DotStore> OrMapStore<K, V> {
    /// Delta that mutates the value under `key` with a delta mutator of the value type, e.g.
    /// `|v, ctx| v.add_delta(ctx, actor, x)`. The mutator sees the current value (empty if absent)
    /// and the map's shared context, from which it draws fresh dots.
    ///
    /// Contract: `mutate` must return a delta built by the value type's delta mutators from exactly
    /// the value and context it was given (fresh dots from `ctx`, old dots only from that value).
    /// Returning unrelated state could tag two keys with one dot and break convergence.
    pub fn update_delta(
        &self,
        ctx: &CausalContext,
        key: K,
        mutate: impl FnOnce(&V, &CausalContext) -> Causal<V>,
    ) -> Causal<Self> {
        let empty = V::default();
        let current = self.0.get(&key).unwrap_or(&empty);
        let Causal { store, context } = mutate(current, ctx);
        let mut entries = DotMap::default();
        if !store.is_bottom() {
            entries.insert(key, store);
        }
        Causal::from_parts(OrMapStore(entries), context)
    }

    /// Delta that removes `key` as observed here: every dot of its value is covered, so the value is
    /// reset; concurrent updates the remover had not seen survive.
    pub fn remove_delta(&self, key: &K) -> Causal<Self> {
        let ctx = self.0.get(key).map(dots_of).unwrap_or_default();
        Causal::from_parts(OrMapStore::default(), ctx)
    }

    /// The value under `key`, if present.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.0.get(key)
    }

    /// Present keys and values in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter()
    }

    /// Number of present keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no key is present.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An observed-remove map of causal CRDT values (delta-state): the shape a point's payload takes
/// under multi-master replication, e.g. `OrMap<String, MvRegisterStore<Value>>` or a map of sets,
/// counters or nested maps. Updating a key makes it present; removing it resets its value as
/// observed (no tombstones); a concurrent update survives a remove.
pub type OrMap<K, V> = Causal<OrMapStore<K, V>>;

impl<K: Ord + Clone + Debug, V: DotStore> Causal<OrMapStore<K, V>> {
    /// Applies a value delta mutator under `key` (see [`OrMapStore::update_delta`]); returns the
    /// delta to ship.
    pub fn update(&mut self, key: K, mutate: impl FnOnce(&V, &CausalContext) -> Causal<V>) -> OrMap<K, V> {
        let delta = self.store.update_delta(&self.context, key, mutate);
        self.apply(delta)
    }

    /// Removes `key` (as observed); returns the delta to ship.
    pub fn remove(&mut self, key: &K) -> OrMap<K, V> {
        let delta = self.store.remove_delta(key);
        self.apply(delta)
    }

    /// The value under `key`, if present.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.store.get(key)
    }

    /// Present keys and values in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&K, &V)> {
        self.store.iter()
    }

    /// Number of present keys.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// True when no key is present.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Crdt, CounterStore, MvRegisterStore, OrSetStore};

    #[test]
    fn remove_resets_observed_state_but_concurrent_update_survives() {
        let mut a: OrMap<&str, OrSetStore<u8>> = OrMap::default();
        let d = a.update("tags", |s, ctx| s.add_delta(ctx, 1, 1));
        let mut b = OrMap::default();
        b.merge_delta(&d);
        // a removes the key; b concurrently adds another tag.
        let rm = a.remove(&"tags");
        let add = b.update("tags", |s, ctx| s.add_delta(ctx, 2, 2));
        a.merge_delta(&add);
        b.merge_delta(&rm);
        assert_eq!(a, b);
        // The observed tag 1 is gone (reset), the concurrent tag 2 survives.
        assert_eq!(a.get(&"tags").unwrap().iter().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn removed_key_does_not_resurrect_old_contents_when_readded() {
        let mut a: OrMap<u8, CounterStore> = OrMap::default();
        let mut b = OrMap::default();
        b.merge_delta(&a.update(1, |c, ctx| c.add_delta(ctx, 1, 5)));
        b.merge_delta(&a.remove(&1));
        b.merge_delta(&a.update(1, |c, ctx| c.add_delta(ctx, 1, 2)));
        assert_eq!(a, b);
        // Actor 1's running total restarted from the removal it observed.
        assert_eq!(a.get(&1).map(|c| c.value()), Some(2));
    }

    #[test]
    fn nested_maps_share_one_context() {
        let mut doc: OrMap<String, OrMapStore<String, MvRegisterStore<i32>>> = OrMap::default();
        doc.update("meta".into(), |m, ctx| m.update_delta(ctx, "rank".into(), |r, ctx| r.write_delta(ctx, 7, 1)));
        doc.update("meta".into(), |m, ctx| m.update_delta(ctx, "score".into(), |r, ctx| r.write_delta(ctx, 7, 9)));
        let meta = doc.get(&"meta".to_string()).unwrap();
        assert_eq!(meta.len(), 2);
        assert_eq!(doc.context().compact().get(7), 2);
        doc.update("meta".into(), |m, _| m.remove_delta(&"rank".to_string()));
        assert_eq!(doc.get(&"meta".to_string()).unwrap().len(), 1);
    }
}

#[cfg(test)]
mod decode_tests {
    use super::*;
    use crate::causality::{CausalContext, Dot};
    use crate::crdt::{OrSetStore, dot_store::DotSet};
    use std::collections::BTreeMap;

    #[test]
    fn decode_rejects_one_dot_under_two_keys_and_rebuilds_the_index() {
        let mut map: OrMap<u8, OrSetStore<u8>> = OrMap::default();
        map.update(1, |s, ctx| s.add_delta(ctx, 9, 5));
        map.update(2, |s, ctx| s.add_delta(ctx, 9, 6));
        let bytes = postcard::to_stdvec(&map).unwrap();
        let decoded: OrMap<u8, OrSetStore<u8>> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, map);
        // Same dot (9,1) tagging entries under keys 1 and 2.
        let dot = DotSet([Dot::new(9, 1)].into());
        let forged_store: BTreeMap<u8, BTreeMap<u8, DotSet>> =
            BTreeMap::from([(1, BTreeMap::from([(5, dot.clone())])), (2, BTreeMap::from([(6, dot)]))]);
        let ctx: CausalContext = [Dot::new(9, 1)].into_iter().collect();
        let bytes = postcard::to_stdvec(&(forged_store, ctx)).unwrap();
        assert!(postcard::from_bytes::<OrMap<u8, OrSetStore<u8>>>(&bytes).is_err());
    }
}
