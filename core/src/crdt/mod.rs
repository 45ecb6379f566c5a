//! Delta-state CRDTs and the conflict-resolution interface used by leaderless replication.

use std::fmt::Debug;

/// A state-based CRDT: replicas converge by merging states with a join that is commutative,
/// associative and idempotent, so states can be shipped in any order, any number of times.
///
/// Delta-state (Almeida, Shoker, Baquero, "Delta State Replicated Data Types"): every mutator also
/// returns a small delta, itself a state of the same lattice, that can be shipped and merged instead
/// of the full state. `Delta` is an associated type so the replication layer stays generic even if a
/// type later ships a different delta encoding; today every delta is a `Self`.
pub trait Crdt: Clone + Default + PartialEq + Debug {
    /// What a mutator returns and [`Crdt::merge_delta`] accepts.
    type Delta: Clone + Debug;

    /// Joins another replica's full state into this one.
    fn merge(&mut self, other: &Self);

    /// Joins a delta (or a group of joined deltas) into this state.
    fn merge_delta(&mut self, delta: &Self::Delta);
}
