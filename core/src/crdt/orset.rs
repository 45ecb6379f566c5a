//! Add-wins observed-remove set without tombstones.

use crate::causality::{CausalContext, Dot};
use crate::contract::NodeId;
use crate::crdt::dot_store::{Causal, DotMap, DotSet, DotStore, dots_of};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// The dot store of an add-wins set: each present element with the dots of the adds that are still
/// live. Usable on its own inside an [`crate::crdt::OrMap`]; [`OrSet`] is the standalone set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrSetStore<E: Ord>(DotMap<E, DotSet>);

impl<E: Ord> Default for OrSetStore<E> {
    fn default() -> Self {
        OrSetStore(DotMap::default())
    }
}

impl<E: Ord + Clone + Debug> DotStore for OrSetStore<E> {
    fn is_bottom(&self) -> bool {
        self.0.is_bottom()
    }
    fn collect_dots(&self, out: &mut Vec<Dot>) {
        self.0.collect_dots(out)
    }
    fn join(&mut self, self_ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        self.0.join(self_ctx, &other.0, other_ctx)
    }
    fn normalise(&mut self) {
        self.0.normalise()
    }
}

impl<E: Ord + Clone + Debug> OrSetStore<E> {
    /// Delta that adds `element` as a new write of `actor`: one fresh dot for the element, and a
    /// context that also covers the element's previous dots (so the add supersedes them instead of
    /// accumulating one dot per add).
    pub fn add_delta(&self, ctx: &CausalContext, actor: NodeId, element: E) -> Causal<Self> {
        let dot = ctx.next_dot(actor);
        let mut delta_ctx = self.0.0.get(&element).map(dots_of).unwrap_or_default();
        delta_ctx.insert(dot);
        let store = DotMap([(element, DotSet([dot].into()))].into());
        Causal::from_parts(OrSetStore(store), delta_ctx)
    }

    /// Delta that removes `element` as observed here: covers its live dots and stores nothing. An add
    /// this replica has not seen is outside the delta's context and survives (add wins).
    pub fn remove_delta(&self, element: &E) -> Causal<Self> {
        let ctx = self.0.0.get(element).map(dots_of).unwrap_or_default();
        Causal::from_parts(OrSetStore::default(), ctx)
    }

    /// Delta that removes every element observed here.
    pub fn clear_delta(&self) -> Causal<Self> {
        Causal::from_parts(OrSetStore::default(), dots_of(self))
    }

    /// Whether `element` is present.
    pub fn contains(&self, element: &E) -> bool {
        self.0.0.contains_key(element)
    }

    /// The present elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.0.0.keys()
    }

    /// Number of present elements.
    pub fn len(&self) -> usize {
        self.0.0.len()
    }

    /// True when no element is present.
    pub fn is_empty(&self) -> bool {
        self.0.0.is_empty()
    }
}

/// An add-wins observed-remove set (delta-state). A remove deletes only the adds it has observed;
/// a concurrent add of the same element wins. Removed elements leave nothing behind but their dots
/// in the causal context, which compacts to one counter per node once deltas arrive gap-free, so
/// metadata is bounded by live elements (times concurrent adders) plus nodes, never by history.
pub type OrSet<E> = Causal<OrSetStore<E>>;

impl<E: Ord + Clone + Debug> Causal<OrSetStore<E>> {
    /// Adds `element` on behalf of `actor`; returns the delta to ship.
    pub fn add(&mut self, actor: NodeId, element: E) -> OrSet<E> {
        let delta = self.store.add_delta(&self.context, actor, element);
        self.apply(delta)
    }

    /// Removes `element` (the adds observed so far); returns the delta to ship.
    pub fn remove(&mut self, element: &E) -> OrSet<E> {
        let delta = self.store.remove_delta(element);
        self.apply(delta)
    }

    /// Removes every observed element; returns the delta to ship.
    pub fn clear(&mut self) -> OrSet<E> {
        let delta = self.store.clear_delta();
        self.apply(delta)
    }

    /// Whether `element` is present.
    pub fn contains(&self, element: &E) -> bool {
        self.store.contains(element)
    }

    /// The present elements in order.
    pub fn elements(&self) -> impl Iterator<Item = &E> {
        self.store.iter()
    }

    /// Number of present elements.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// True when no element is present.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}
