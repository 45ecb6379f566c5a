//! Multi-value register: concurrent writes are all kept as siblings.

use crate::causality::{CausalContext, Dot};
use crate::contract::NodeId;
use crate::crdt::dot_store::{Causal, DotFun, dots_of};
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// The dot store of a multi-value register: the values of the writes not yet overwritten, each
/// tagged with its write's dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MvRegisterStore<V>(DotFun<V>);

impl<V> Default for MvRegisterStore<V> {
    fn default() -> Self {
        MvRegisterStore(DotFun::default())
    }
}

delegate_dot_store!([V: Clone + PartialEq + Debug] MvRegisterStore<V>);

impl<V: Clone + PartialEq + Debug> MvRegisterStore<V> {
    /// Delta that writes `value` as `actor`, overwriting every sibling observed here.
    pub fn write_delta(&self, ctx: &CausalContext, actor: NodeId, value: V) -> Causal<Self> {
        let dot = ctx.next_dot(actor);
        let mut delta_ctx = dots_of(self);
        delta_ctx.insert(dot);
        Causal::from_parts(MvRegisterStore(DotFun([(dot, value)].into())), delta_ctx)
    }

    /// Delta that empties the register (removes the observed siblings).
    pub fn clear_delta(&self) -> Causal<Self> {
        Causal::from_parts(MvRegisterStore::default(), dots_of(self))
    }

    /// The sibling values in dot order (more than one: concurrent writes).
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.0.values()
    }

    /// The siblings with the dots of their writes.
    pub fn siblings(&self) -> impl Iterator<Item = (&Dot, &V)> {
        self.0.0.iter()
    }

    /// Number of siblings.
    pub fn len(&self) -> usize {
        self.0.0.len()
    }

    /// True when never written or cleared.
    pub fn is_empty(&self) -> bool {
        self.0.0.is_empty()
    }
}

/// A multi-value register (delta-state): a write overwrites the values it has observed; writes made
/// without seeing each other are all kept until a later write (which sees them all) replaces them.
pub type MvRegister<V> = Causal<MvRegisterStore<V>>;

impl<V: Clone + PartialEq + Debug> Causal<MvRegisterStore<V>> {
    /// Writes `value` as `actor`; returns the delta to ship.
    pub fn write(&mut self, actor: NodeId, value: V) -> MvRegister<V> {
        let delta = self.store.write_delta(&self.context, actor, value);
        self.apply(delta)
    }

    /// Removes all observed siblings; returns the delta to ship.
    pub fn clear(&mut self) -> MvRegister<V> {
        let delta = self.store.clear_delta();
        self.apply(delta)
    }

    /// The current siblings in dot order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.store.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::Crdt;

    #[test]
    fn concurrent_writes_become_siblings_until_overwritten() {
        let mut a: MvRegister<&str> = MvRegister::default();
        let mut b: MvRegister<&str> = MvRegister::default();
        let wa = a.write(1, "red");
        let wb = b.write(2, "blue");
        a.merge_delta(&wb);
        b.merge_delta(&wa);
        assert_eq!(a, b);
        assert_eq!(a.values().copied().collect::<Vec<_>>(), vec!["red", "blue"]);
        // A write that has seen both siblings replaces them.
        let w = a.write(1, "purple");
        b.merge_delta(&w);
        assert_eq!(b.values().copied().collect::<Vec<_>>(), vec!["purple"]);
        assert_eq!(a, b);
    }
}
