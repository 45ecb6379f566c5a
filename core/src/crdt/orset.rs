//! Add-wins observed-remove set without tombstones.

use crate::causality::CausalContext;
use crate::contract::NodeId;
use crate::crdt::dot_store::{Causal, DotMap, DotSet, dots_of};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// The dot store of an add-wins set: each present element with the dots of the adds that are still
/// live. Usable on its own inside an [`crate::crdt::OrMap`]; [`OrSet`] is the standalone set.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent, bound(deserialize = "E: Ord + Clone + Debug + Deserialize<'de>"))]
pub struct OrSetStore<E: Ord>(pub(crate) DotMap<E, DotSet>);

impl<E: Ord> Default for OrSetStore<E> {
    fn default() -> Self {
        OrSetStore(DotMap::default())
    }
}

delegate_dot_store!([E: Ord + Clone + Debug] OrSetStore<E>);

impl<E: Ord + Clone + Debug> OrSetStore<E> {
    /// Delta that adds `element` as a new write of `actor`: one fresh dot for the element, and a
    /// context that also covers the element's previous dots (so the add supersedes them instead of
    /// accumulating one dot per add).
    pub fn add_delta(&self, ctx: &CausalContext, actor: NodeId, element: E) -> Causal<Self> {
        let dot = ctx.next_dot(actor);
        let mut delta_ctx = self.0.get(&element).map(dots_of).unwrap_or_default();
        delta_ctx.insert(dot);
        let store = DotMap::singleton(element, DotSet([dot].into()));
        Causal::from_parts(OrSetStore(store), delta_ctx)
    }

    /// Delta that removes `element` as observed here: covers its live dots and stores nothing. An add
    /// this replica has not seen is outside the delta's context and survives (add wins).
    pub fn remove_delta(&self, element: &E) -> Causal<Self> {
        let ctx = self.0.get(element).map(dots_of).unwrap_or_default();
        Causal::from_parts(OrSetStore::default(), ctx)
    }

    /// Delta that removes every element observed here.
    pub fn clear_delta(&self) -> Causal<Self> {
        Causal::from_parts(OrSetStore::default(), dots_of(self))
    }

    /// Whether `element` is present.
    pub fn contains(&self, element: &E) -> bool {
        self.0.contains_key(element)
    }

    /// The live add dots of `element` (empty if absent): who added it, concurrently.
    pub fn element_dots(&self, element: &E) -> DotSet {
        self.0.get(element).cloned().unwrap_or_default()
    }

    /// The present elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.0.keys()
    }

    /// Number of present elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no element is present.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causality::{Dot, InvalidCausalState};
    use crate::crdt::dot_store::DotStore;
    use crate::crdt::Crdt;

    #[test]
    fn concurrent_add_wins_over_remove() {
        let mut a: OrSet<&str> = OrSet::default();
        let add = a.add(1, "x");
        let mut b = OrSet::default();
        b.merge_delta(&add);
        // b removes the x it saw while a re-adds x concurrently.
        let remove = b.remove(&"x");
        let readd = a.add(1, "x");
        a.merge_delta(&remove);
        b.merge_delta(&readd);
        assert_eq!(a, b);
        assert!(a.contains(&"x"));
        // A remove that has seen every add does remove.
        let remove = a.remove(&"x");
        b.merge_delta(&remove);
        assert!(!b.contains(&"x"));
        assert_eq!(a, b);
    }

    #[test]
    fn late_add_delta_does_not_resurrect_a_removed_element() {
        let mut a: OrSet<u8> = OrSet::default();
        let add = a.add(1, 7);
        let remove = a.remove(&7);
        let mut b = OrSet::default();
        b.merge_delta(&remove); // the remove overtakes the add
        b.merge_delta(&add);
        assert!(b.is_empty());
        assert_eq!(a, b);
        // Re-adding gives a fresh dot even though nothing is stored.
        let readd = b.add(2, 7);
        a.merge_delta(&readd);
        assert!(a.contains(&7) && b.contains(&7));
    }

    #[test]
    fn repeated_adds_keep_one_dot_per_element() {
        let mut a: OrSet<u8> = OrSet::default();
        for _ in 0..100 {
            a.add(1, 3);
        }
        let mut dots = Vec::new();
        a.store().collect_dots(&mut dots);
        assert_eq!(dots, vec![Dot::new(1, 100)]);
    }

    #[test]
    fn decode_rejects_dots_outside_the_context() {
        let mut a: OrSet<u8> = OrSet::default();
        a.add(1, 3);
        // Store claims dot (1,1) but the context is empty.
        let forged = (a.store().clone(), CausalContext::new());
        let bytes = postcard::to_stdvec(&forged).unwrap();
        assert!(postcard::from_bytes::<OrSet<u8>>(&bytes).is_err());
        let bytes = postcard::to_stdvec(&a).unwrap();
        assert_eq!(postcard::from_bytes::<OrSet<u8>>(&bytes).unwrap(), a);
        // The error type is usable directly too.
        let repr_err = InvalidCausalState::DotOutsideContext(Dot::new(1, 1));
        assert!(repr_err.to_string().contains("not covered"));
    }
}
