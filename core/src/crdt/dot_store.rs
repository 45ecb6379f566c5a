//! The causal CRDT kernel (Almeida, Shoker, Baquero, "Delta State Replicated Data Types", §5):
//! a *dot store* (data tagged with the dots of the writes that made it) paired with a
//! [`CausalContext`] (every dot the replica has seen).
//!
//! Join rule: keep a tagged item if both sides have it, or if one side has it and the other has not
//! seen its dot yet. An item one side has seen but no longer holds was removed there, so it goes.
//! Removal therefore needs no tombstone: it just drops the item, and the context (which compacts to
//! one counter per node) remembers that the dot is dead. [`DotStore`]s nest ([`DotMap`] of stores),
//! which is what makes a map of CRDTs with observed-remove keys possible.

use crate::causality::{CausalContext, Dot, InvalidCausalState};
use crate::crdt::Crdt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

/// Data whose every piece is tagged by a dot, joinable under two causal contexts.
pub trait DotStore: Clone + Default + PartialEq + Debug {
    /// True when the store holds nothing (the lattice bottom). Empty nested stores are dropped.
    fn is_bottom(&self) -> bool;

    /// Appends every dot tagging something in the store.
    fn collect_dots(&self, out: &mut Vec<Dot>);

    /// Joins `other` (whose replica has seen `other_ctx`) into `self` (whose replica has seen
    /// `self_ctx`). The contexts are joined separately by the caller.
    fn join(&mut self, self_ctx: &CausalContext, other: &Self, other_ctx: &CausalContext);

    /// Drops empty nested entries so equal contents compare equal (used on decode).
    fn normalise(&mut self);
}

/// A set of dots: "present, written by these events". The store of an add-wins flag or set element.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DotSet(pub BTreeSet<Dot>);

impl DotStore for DotSet {
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }

    fn collect_dots(&self, out: &mut Vec<Dot>) {
        out.extend(self.0.iter().copied());
    }

    fn join(&mut self, self_ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        self.0.retain(|d| other.0.contains(d) || !other_ctx.contains(d));
        self.0.extend(other.0.iter().filter(|d| !self_ctx.contains(d)));
    }

    fn normalise(&mut self) {}
}

/// A map from dots to values: each value is the payload of the write identified by its dot
/// (a dot names one write, so the value under a dot never changes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DotFun<V>(pub BTreeMap<Dot, V>);

impl<V> Default for DotFun<V> {
    fn default() -> Self {
        DotFun(BTreeMap::new())
    }
}

impl<V: Clone + PartialEq + Debug> DotStore for DotFun<V> {
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }

    fn collect_dots(&self, out: &mut Vec<Dot>) {
        out.extend(self.0.keys().copied());
    }

    fn join(&mut self, self_ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        // A dot names one write, so both sides hold the same value under a shared dot. Only a
        // faulty peer can break that; keeping our own value then avoids panicking on its input.
        self.0.retain(|d, _| other.0.contains_key(d) || !other_ctx.contains(d));
        for (d, v) in &other.0 {
            if !self_ctx.contains(d) {
                self.0.entry(*d).or_insert_with(|| v.clone());
            }
        }
    }

    fn normalise(&mut self) {}
}

/// A map from keys to nested dot stores, all sharing the enclosing causal context. A key is present
/// while its nested store is non-empty.
///
/// Keeps a reverse index from each live dot to its key (a dot is minted for one key and tags only
/// that key on every replica), so joining a small delta visits only the keys the delta stores or
/// whose dots its context covers: O(delta · log n), not O(n). The index is derived data: it is not
/// serialised and is rebuilt on decode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DotMap<K: Ord, S> {
    entries: BTreeMap<K, S>,
    owners: BTreeMap<Dot, K>,
}

impl<K: Ord, S> Default for DotMap<K, S> {
    fn default() -> Self {
        DotMap { entries: BTreeMap::new(), owners: BTreeMap::new() }
    }
}

impl<K: Ord + Serialize, S: Serialize> Serialize for DotMap<K, S> {
    fn serialize<Ser: serde::Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        self.entries.serialize(serializer)
    }
}

impl<'de, K: Ord + Clone + Debug + Deserialize<'de>, S: DotStore + Deserialize<'de>> Deserialize<'de>
    for DotMap<K, S>
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = BTreeMap::<K, S>::deserialize(deserializer)?;
        let mut map = DotMap::default();
        for (key, store) in entries {
            let mut dots = Vec::new();
            store.collect_dots(&mut dots);
            if let Some(dot) = dots.iter().find(|d| map.owners.contains_key(d)) {
                // The index could not represent it, and a dot names one write of one key.
                return Err(serde::de::Error::custom(InvalidCausalState::DuplicateDot(*dot)));
            }
            map.insert(key, store);
        }
        Ok(map)
    }
}

impl<K: Ord + Clone + Debug, S: DotStore> DotMap<K, S> {
    /// A map with one entry (the usual shape of a delta).
    pub fn singleton(key: K, store: S) -> Self {
        let mut map = DotMap::default();
        map.insert(key, store);
        map
    }

    /// Sets the store under `key` (dropping the key if the store is empty), keeping the dot index
    /// in step. Crate-internal: callers must keep each dot under a single key.
    pub(crate) fn insert(&mut self, key: K, store: S) {
        self.remove(&key);
        if store.is_bottom() {
            return;
        }
        let mut dots = Vec::new();
        store.collect_dots(&mut dots);
        for dot in dots {
            self.owners.insert(dot, key.clone());
        }
        self.entries.insert(key, store);
    }

    /// Takes the store under `key` out of the map.
    fn remove(&mut self, key: &K) -> Option<S> {
        let store = self.entries.remove(key)?;
        let mut dots = Vec::new();
        store.collect_dots(&mut dots);
        for dot in dots {
            self.owners.remove(&dot);
        }
        Some(store)
    }

    /// The store under `key`, if present.
    pub fn get(&self, key: &K) -> Option<&S> {
        self.entries.get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Present keys and their stores, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &S)> {
        self.entries.iter()
    }

    /// Present keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.keys()
    }

    /// Number of present keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is present.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: Ord + Clone + Debug, S: DotStore> DotStore for DotMap<K, S> {
    fn is_bottom(&self) -> bool {
        self.entries.is_empty()
    }

    fn collect_dots(&self, out: &mut Vec<Dot>) {
        out.extend(self.owners.keys().copied());
    }

    fn join(&mut self, self_ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        if other.entries.len().saturating_mul(4) >= self.entries.len() {
            self.join_bulk(self_ctx, other, other_ctx);
        } else {
            self.join_sparse(self_ctx, other, other_ctx);
        }
        debug_assert_eq!(self.owners.len(), {
            let mut dots = Vec::new();
            self.entries.values().for_each(|s| s.collect_dots(&mut dots));
            dots.len()
        });
    }

    fn normalise(&mut self) {
        let keys: Vec<K> = self.entries.keys().cloned().collect();
        for key in keys {
            if let Some(mut store) = self.remove(&key) {
                store.normalise();
                self.insert(key, store);
            }
        }
    }
}

impl<K: Ord + Clone + Debug, S: DotStore> DotMap<K, S> {
    /// Join for a small `other` (a delta): visits only the keys whose join can differ from
    /// "unchanged": those `other` stores, and those holding a dot `other` has seen (and may have
    /// removed).
    fn join_sparse(&mut self, self_ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        let mut affected: BTreeSet<K> = other.entries.keys().cloned().collect();
        for (node, max) in other_ctx.compact().iter() {
            affected.extend(self.owners.range(Dot::new(node, 1)..=Dot::new(node, max)).map(|(_, k)| k.clone()));
        }
        for dot in other_ctx.cloud() {
            if let Some(key) = self.owners.get(dot) {
                affected.insert(key.clone());
            }
        }
        let empty = S::default();
        for key in affected {
            let theirs = other.entries.get(&key).unwrap_or(&empty);
            let mut mine = self.remove(&key).unwrap_or_default();
            mine.join(self_ctx, theirs, other_ctx);
            self.insert(key, mine);
        }
    }

    /// Join for a comparably sized `other` (anti-entropy): one pass over both maps, then the dot
    /// index is rebuilt in bulk.
    fn join_bulk(&mut self, self_ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        let empty = S::default();
        for (key, mine) in self.entries.iter_mut() {
            mine.join(self_ctx, other.entries.get(key).unwrap_or(&empty), other_ctx);
        }
        for (key, theirs) in &other.entries {
            if !self.entries.contains_key(key) {
                let mut mine = S::default();
                mine.join(self_ctx, theirs, other_ctx);
                if !mine.is_bottom() {
                    self.entries.insert(key.clone(), mine);
                }
            }
        }
        self.entries.retain(|_, s| !s.is_bottom());
        let mut owners: Vec<(Dot, K)> = Vec::new();
        let mut dots = Vec::new();
        for (key, store) in &self.entries {
            dots.clear();
            store.collect_dots(&mut dots);
            owners.extend(dots.iter().map(|d| (*d, key.clone())));
        }
        owners.sort_unstable_by_key(|(d, _)| *d);
        self.owners = owners.into_iter().collect();
    }
}

/// A dot store with the causal context of the replica holding it: a complete causal CRDT state,
/// and also the shape of its deltas (a small store plus exactly the dots the mutation covers).
///
/// Invariants (checked on decode): every dot in the store is in the context and tags one item only;
/// no empty nested entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "CausalRepr<S>", bound(deserialize = "S: DotStore + Deserialize<'de>"))]
pub struct Causal<S> {
    pub(crate) store: S,
    pub(crate) context: CausalContext,
}

/// The wire shape of a [`Causal`], validated on the way in.
#[derive(Deserialize)]
struct CausalRepr<S> {
    store: S,
    context: CausalContext,
}

impl<S: DotStore> TryFrom<CausalRepr<S>> for Causal<S> {
    type Error = InvalidCausalState;
    fn try_from(repr: CausalRepr<S>) -> Result<Self, Self::Error> {
        let mut dots = Vec::new();
        repr.store.collect_dots(&mut dots);
        let mut seen = BTreeSet::new();
        for dot in dots {
            if dot.counter == 0 || !repr.context.contains(&dot) {
                return Err(InvalidCausalState::DotOutsideContext(dot));
            }
            if !seen.insert(dot) {
                return Err(InvalidCausalState::DuplicateDot(dot));
            }
        }
        let mut store = repr.store;
        store.normalise();
        Ok(Causal { store, context: repr.context })
    }
}

impl<S: DotStore> Causal<S> {
    /// Pairs a store with a context. Used by delta mutators; the caller guarantees the store's dots
    /// are in the context.
    pub(crate) fn from_parts(store: S, context: CausalContext) -> Self {
        debug_assert!({
            let mut dots = Vec::new();
            store.collect_dots(&mut dots);
            dots.iter().all(|d| context.contains(d))
        });
        Causal { store, context }
    }

    /// The data.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Every dot this replica has seen (live or removed).
    pub fn context(&self) -> &CausalContext {
        &self.context
    }

    /// Joins `delta` into this state and hands it back, the shape every delta mutator ends with.
    pub(crate) fn apply(&mut self, delta: Causal<S>) -> Causal<S> {
        self.merge(&delta);
        delta
    }
}

impl<S: DotStore> Crdt for Causal<S> {
    type Delta = Causal<S>;

    fn merge(&mut self, other: &Self) {
        self.store.join(&self.context, &other.store, &other.context);
        self.context.merge(&other.context);
    }

    fn merge_delta(&mut self, delta: &Self::Delta) {
        self.merge(delta);
    }
}

/// All dots of a store, as a context (what a delta must cover to overwrite or remove it).
pub(crate) fn dots_of<S: DotStore>(store: &S) -> CausalContext {
    let mut dots = Vec::new();
    store.collect_dots(&mut dots);
    dots.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::OrSet;
    use proptest::prelude::*;

    /// The two join strategies are interchangeable: one is picked by size only, for speed.
    fn both_joins(a: &OrSet<u8>, b: &OrSet<u8>) -> (DotMap<u8, DotSet>, DotMap<u8, DotSet>) {
        let (x, y) = (a.store().0.clone(), &b.store().0);
        let mut sparse = x.clone();
        sparse.join_sparse(a.context(), y, b.context());
        let mut bulk = x;
        bulk.join_bulk(a.context(), y, b.context());
        (sparse, bulk)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn sparse_and_bulk_joins_agree(ops in prop::collection::vec((0usize..2, 0u8..3, 0u8..8), 0..40)) {
            let mut replicas = [OrSet::<u8>::default(), OrSet::default()];
            for (r, kind, e) in ops {
                match kind {
                    0 => { replicas[r].add(r as u64 + 1, e); }
                    1 => { replicas[r].remove(&e); }
                    _ => { let other = replicas[1 - r].clone(); replicas[r].merge(&other); }
                }
            }
            let (sparse, bulk) = both_joins(&replicas[0], &replicas[1]);
            prop_assert_eq!(&sparse, &bulk);
            let mut merged = replicas[0].clone();
            merged.merge(&replicas[1]);
            prop_assert_eq!(sparse.len(), merged.len());
        }
    }
}
