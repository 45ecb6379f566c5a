//! Dotted version vector sets (Preguiça, Baquero, Almeida et al., "Dotted Version Vectors:
//! Logical Clocks for Optimistic Replication"; Riak's `dvvset`): per-key sibling tracking with
//! server-side actor ids only.
//!
//! Each stored sibling carries the dot of the write that created it, and the whole key carries one
//! version vector (the causal context) covering everything the key has seen. A write names the
//! context the client read; it replaces exactly the siblings in that context. Two writes coordinated
//! by the same server from the same stale context get distinct dots and both survive (no false
//! overwrite, unlike a per-server vector clock), and metadata grows with servers, not clients (no
//! sibling explosion from per-client vector clocks).

use crate::causality::{Dot, InvalidCausalState, VectorClock};
use crate::contract::NodeId;
use crate::crdt::Crdt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// The siblings of one key plus the version vector covering its history.
///
/// Invariant (checked on decode): every sibling's dot is inside the context.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "DvvSetRepr<V>", bound(deserialize = "V: Deserialize<'de>"))]
pub struct DvvSet<V> {
    context: VectorClock,
    siblings: BTreeMap<Dot, V>,
}

/// The wire shape of a [`DvvSet`], validated on the way in.
#[derive(Deserialize)]
struct DvvSetRepr<V> {
    context: VectorClock,
    siblings: BTreeMap<Dot, V>,
}

impl<V> TryFrom<DvvSetRepr<V>> for DvvSet<V> {
    type Error = InvalidCausalState;
    fn try_from(repr: DvvSetRepr<V>) -> Result<Self, Self::Error> {
        if let Some(dot) = repr.siblings.keys().find(|d| d.counter == 0 || d.counter > repr.context.get(d.node)) {
            return Err(InvalidCausalState::DotOutsideContext(*dot));
        }
        Ok(DvvSet { context: repr.context, siblings: repr.siblings })
    }
}

impl<V> Default for DvvSet<V> {
    fn default() -> Self {
        DvvSet { context: VectorClock::new(), siblings: BTreeMap::new() }
    }
}

impl<V: Clone + PartialEq + Debug> DvvSet<V> {
    /// An empty key (no value, nothing seen).
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `value` as a write coordinated by server `actor`, issued by a client that had read
    /// `ctx` (use an empty clock for a blind write). Siblings inside `ctx` are replaced; siblings the
    /// client had not seen survive as concurrent. Returns the new write's dot.
    pub fn put(&mut self, ctx: &VectorClock, value: V, actor: NodeId) -> Dot {
        self.siblings.retain(|dot, _| dot.counter > ctx.get(dot.node));
        self.context.merge(ctx);
        let dot = Dot::new(actor, self.context.increment(actor));
        self.siblings.insert(dot, value);
        debug_assert!(self.invariant_holds());
        dot
    }

    /// Joins another replica's copy of the key: keeps siblings both have, and siblings one side has
    /// that the other has not yet seen (those it has seen but lacks were overwritten there).
    pub fn sync(&mut self, other: &DvvSet<V>) {
        let self_ctx = &self.context;
        let mut merged: BTreeMap<Dot, V> = BTreeMap::new();
        for (dot, value) in &self.siblings {
            if other.siblings.contains_key(dot) || dot.counter > other.context.get(dot.node) {
                merged.insert(*dot, value.clone());
            }
        }
        for (dot, value) in &other.siblings {
            if !self.siblings.contains_key(dot) && dot.counter > self_ctx.get(dot.node) {
                merged.insert(*dot, value.clone());
            }
        }
        self.siblings = merged;
        self.context.merge(&other.context);
        debug_assert!(self.invariant_holds());
    }

    /// The current sibling values, in dot order (deterministic across replicas).
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.siblings.values()
    }

    /// The siblings with the dots of the writes that created them.
    pub fn siblings(&self) -> impl Iterator<Item = (&Dot, &V)> {
        self.siblings.iter()
    }

    /// The join of everything this key has seen: hand it to the client with a read so its next
    /// write replaces exactly what it saw.
    pub fn context(&self) -> &VectorClock {
        &self.context
    }

    /// Number of siblings (more than one means unresolved concurrent writes).
    pub fn len(&self) -> usize {
        self.siblings.len()
    }

    /// True when the key holds no value.
    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty()
    }

    /// Collapses all siblings into one value chosen by `resolve` (which sees them in dot order),
    /// written by `actor` with the full context so it supersedes every sibling. No-op when there
    /// are fewer than two siblings.
    pub fn reconcile(&mut self, actor: NodeId, resolve: impl FnOnce(Vec<&V>) -> V) -> Option<Dot> {
        if self.siblings.len() < 2 {
            return None;
        }
        let value = resolve(self.siblings.values().collect());
        let ctx = self.context.clone();
        Some(self.put(&ctx, value, actor))
    }

    fn invariant_holds(&self) -> bool {
        self.siblings.keys().all(|d| d.counter >= 1 && d.counter <= self.context.get(d.node))
    }
}

impl<V: Clone + PartialEq + Debug> Crdt for DvvSet<V> {
    /// A whole (usually tiny) copy of the key is its own delta.
    type Delta = DvvSet<V>;

    fn merge(&mut self, other: &Self) {
        self.sync(other);
    }

    fn merge_delta(&mut self, delta: &Self::Delta) {
        self.sync(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_server_same_stale_context_keeps_both() {
        let mut key = DvvSet::new();
        key.put(&VectorClock::new(), "v1", 1);
        let read = key.context().clone();
        // Two clients read v1, both write through server 1.
        key.put(&read, "v2a", 1);
        key.put(&read, "v2b", 1);
        assert_eq!(key.values().copied().collect::<Vec<_>>(), vec!["v2a", "v2b"]);
        // A client that read both siblings replaces them with one value.
        let read = key.context().clone();
        key.put(&read, "v3", 1);
        assert_eq!(key.values().copied().collect::<Vec<_>>(), vec!["v3"]);
        assert_eq!(key.context().len(), 1);
    }

    #[test]
    fn sync_drops_overwritten_and_keeps_concurrent() {
        let mut a = DvvSet::new();
        a.put(&VectorClock::new(), 1, 10);
        let mut b = a.clone();
        let read = a.context().clone();
        a.put(&read, 2, 10); // overwrites 1 on server 10
        b.put(&VectorClock::new(), 3, 20); // blind write on server 20: concurrent with both
        let mut ab = a.clone();
        ab.sync(&b);
        let mut ba = b.clone();
        ba.sync(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.values().copied().collect::<Vec<_>>(), vec![2, 3]);
        let dot = ab.reconcile(30, |vs| vs.into_iter().copied().max().unwrap_or_default());
        assert!(dot.is_some());
        assert_eq!(ab.values().copied().collect::<Vec<_>>(), vec![3]);
        // The reconciled version supersedes the siblings everywhere it arrives.
        b.sync(&ab);
        assert_eq!(b, ab);
    }

    #[test]
    fn decode_rejects_sibling_outside_context() {
        let bad = (VectorClock::from_iter([(1, 1)]), BTreeMap::from([(Dot::new(1, 2), 5u8)]));
        let bytes = postcard::to_stdvec(&bad).unwrap();
        assert!(postcard::from_bytes::<DvvSet<u8>>(&bytes).is_err());
        let good = (VectorClock::from_iter([(1, 2)]), BTreeMap::from([(Dot::new(1, 2), 5u8)]));
        let bytes = postcard::to_stdvec(&good).unwrap();
        assert_eq!(postcard::from_bytes::<DvvSet<u8>>(&bytes).unwrap().len(), 1);
    }
}
