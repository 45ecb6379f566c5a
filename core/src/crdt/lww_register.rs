//! Last-write-wins register ordered by hybrid logical clock timestamps.

use crate::causality::{HlcError, HlcTimestamp, HybridClock};
use crate::crdt::Crdt;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt::Debug;

/// A value with the timestamp of the write that produced it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamped<V> {
    /// When (in HLC order) the value was written.
    pub stamp: HlcTimestamp,
    /// The value.
    pub value: V,
}

/// A register holding the write with the greatest HLC timestamp. Concurrent writes are resolved by
/// timestamp alone (the node id inside the timestamp breaks ties), so one of them is silently lost:
/// use [`crate::crdt::MvRegister`] when that is not acceptable.
///
/// Two writes with the *same* timestamp can only come from a misbehaving node (a clock reused after a
/// restart without [`HybridClock::resume`]); merge still stays deterministic by preferring the value
/// whose postcard encoding is greater.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LwwRegister<V> {
    current: Option<Stamped<V>>,
}

impl<V> Default for LwwRegister<V> {
    fn default() -> Self {
        LwwRegister { current: None }
    }
}

impl<V: Clone + PartialEq + Debug + Serialize> LwwRegister<V> {
    /// An unset register.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` at `stamp` (it only takes effect if newer than the current write) and returns
    /// the delta to ship: the write itself.
    pub fn set(&mut self, stamp: HlcTimestamp, value: V) -> LwwRegister<V> {
        let delta = LwwRegister { current: Some(Stamped { stamp, value }) };
        self.merge(&delta);
        delta
    }

    /// Writes `value` stamped by `clock` at physical time `physical_millis`.
    pub fn set_now(
        &mut self,
        clock: &mut HybridClock,
        physical_millis: u64,
        value: V,
    ) -> Result<LwwRegister<V>, HlcError> {
        let stamp = clock.now(physical_millis)?;
        Ok(self.set(stamp, value))
    }

    /// The winning value, if any write happened.
    pub fn value(&self) -> Option<&V> {
        self.current.as_ref().map(|s| &s.value)
    }

    /// The winning write with its timestamp.
    pub fn stamped(&self) -> Option<&Stamped<V>> {
        self.current.as_ref()
    }
}

/// Deterministic total order on stamped values: timestamp first, then encoded bytes as a last
/// resort for same-timestamp conflicts.
pub(crate) fn stamped_order<V: Serialize + PartialEq>(a: &Stamped<V>, b: &Stamped<V>) -> Ordering {
    a.stamp.cmp(&b.stamp).then_with(|| {
        if a.value == b.value {
            Ordering::Equal
        } else {
            canonical_bytes(&a.value).cmp(&canonical_bytes(&b.value))
        }
    })
}

/// Postcard encoding used only to order values deterministically. A type postcard cannot encode
/// (none of serde's derive output) orders as empty, which keeps the order total.
pub(crate) fn canonical_bytes<V: Serialize>(value: &V) -> Vec<u8> {
    postcard::to_stdvec(value).unwrap_or_default()
}

impl<V: Clone + PartialEq + Debug + Serialize> Crdt for LwwRegister<V> {
    type Delta = LwwRegister<V>;

    fn merge(&mut self, other: &Self) {
        let Some(theirs) = &other.current else { return };
        let replace = match &self.current {
            None => true,
            Some(mine) => stamped_order(theirs, mine) == Ordering::Greater,
        };
        if replace {
            self.current = Some(theirs.clone());
        }
    }

    fn merge_delta(&mut self, delta: &Self::Delta) {
        self.merge(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_hlc_wins_even_when_its_wall_clock_is_behind() {
        let mut a_clock = HybridClock::new(1, 1_000);
        let mut b_clock = HybridClock::new(2, 1_000);
        let mut a = LwwRegister::new();
        let d1 = a.set_now(&mut a_clock, 5_000, "first").unwrap();
        // b's wall clock is 400 ms behind but it has seen a's write, so its write is later.
        let mut b = LwwRegister::new();
        b.merge_delta(&d1);
        b_clock.observe(d1.stamped().unwrap().stamp, 4_600).unwrap();
        let d2 = b.set_now(&mut b_clock, 4_601, "second").unwrap();
        a.merge_delta(&d2);
        assert_eq!(a.value(), Some(&"second"));
        assert_eq!(a, b);
    }

    #[test]
    fn identical_stamps_resolve_deterministically() {
        let stamp = HlcTimestamp { wall_millis: 1, logical: 0, node: 1 };
        let mut x = LwwRegister::new();
        x.set(stamp, 7u32);
        let mut y = LwwRegister::new();
        y.set(stamp, 9u32);
        let mut xy = x.clone();
        xy.merge(&y);
        let mut yx = y.clone();
        yx.merge(&x);
        assert_eq!(xy, yx);
    }
}
