//! Delta-state CRDTs and the conflict-resolution interface used by leaderless replication.
//!
//! - Plain state-based: [`GCounter`], [`PnCounter`], [`LwwRegister`] (HLC timestamps).
//! - Causal (dot store + causal context, see [`dot_store`]): [`OrSet`] (add-wins),
//!   [`MvRegister`], [`CausalCounter`] and [`OrMap`], whose values are any causal store
//!   ([`OrSetStore`], [`MvRegisterStore`], [`CounterStore`], nested [`OrMapStore`]).
//! - [`resolve`]: one interface for settling concurrent versions (LWW, siblings, CRDT merge,
//!   custom).
//!
//! Every mutator returns a delta (a small state of the same type) to ship instead of the full
//! state; merging deltas in any order, with duplicates, converges to the same state.

/// Implements [`dot_store::DotStore`] for a single-field newtype by delegating to the field: the
/// named stores (`OrSetStore`, `MvRegisterStore`, `CounterStore`, `OrMapStore`) are the generic dot
/// stores with a meaning attached, not new lattices. Defined before the modules that use it.
macro_rules! delegate_dot_store {
    ([$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> $crate::crdt::dot_store::DotStore for $ty {
            fn is_bottom(&self) -> bool {
                self.0.is_bottom()
            }
            fn collect_dots(&self, out: &mut Vec<$crate::causality::Dot>) {
                self.0.collect_dots(out)
            }
            fn join(
                &mut self,
                self_ctx: &$crate::causality::CausalContext,
                other: &Self,
                other_ctx: &$crate::causality::CausalContext,
            ) {
                self.0.join(self_ctx, &other.0, other_ctx)
            }
            fn normalise(&mut self) {
                self.0.normalise()
            }
        }
    };
}

mod causal_counter;
mod counter;
pub mod dot_store;
mod lww_register;
mod mv_register;
mod ormap;
mod orset;
pub mod resolve;

#[cfg(test)]
mod hostile_input;
#[cfg(test)]
mod laws;
#[cfg(test)]
mod metadata_bounds;

pub use causal_counter::{CausalCounter, CounterStore};
pub use counter::{GCounter, PnCounter};
pub use dot_store::{Causal, DotFun, DotMap, DotSet, DotStore};
pub use lww_register::{LwwRegister, Stamped};
pub use mv_register::{MvRegister, MvRegisterStore};
pub use ormap::{OrMap, OrMapStore};
pub use orset::{OrSet, OrSetStore};

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
