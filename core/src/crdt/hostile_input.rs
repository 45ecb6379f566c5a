//! Decoding untrusted bytes into causal metadata and CRDT states never panics, and whatever decodes
//! can be merged, mutated and re-encoded without panicking either.

use crate::causality::{CausalContext, DvvSet, VectorClock};
use crate::crdt::{
    CausalCounter, CounterStore, Crdt, GCounter, LwwRegister, MvRegister, MvRegisterStore, OrMap, OrMapStore,
    OrSet, OrSetStore, PnCounter,
};
use proptest::prelude::*;

fn exercise<T: Crdt + serde::Serialize + serde::de::DeserializeOwned>(bytes: &[u8], mutate: impl Fn(&mut T)) {
    if let Ok(mut state) = postcard::from_bytes::<T>(bytes) {
        let copy = state.clone();
        state.merge(&copy);
        mutate(&mut state);
        let mut fresh = T::default();
        fresh.merge(&state);
        let _ = postcard::to_stdvec(&state);
    }
}

/// Bytes biased towards decodable shapes: short lengths and large varints (counters near u64::MAX).
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![4 => 0u8..4, 1 => any::<u8>(), 1 => Just(0xff)], 0..64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in hostile_bytes()) {
        let _ = postcard::from_bytes::<VectorClock>(&bytes);
        if let Ok(mut ctx) = postcard::from_bytes::<CausalContext>(&bytes) {
            let other = ctx.clone();
            ctx.merge(&other);
            let _ = ctx.next_dot(1);
        }
        exercise::<DvvSet<u8>>(&bytes, |d| { let c = d.context().clone(); d.put(&c, 1, 1); });
        exercise::<GCounter>(&bytes, |g| { g.increment(1, u64::MAX); });
        exercise::<PnCounter>(&bytes, |p| { p.add(1, i64::MIN); });
        exercise::<LwwRegister<u8>>(&bytes, |_| {});
        exercise::<OrSet<u8>>(&bytes, |s| { s.add(1, 1); s.remove(&0); });
        exercise::<MvRegister<u8>>(&bytes, |r| { r.write(1, 1); });
        exercise::<CausalCounter>(&bytes, |c| { c.add(1, i64::MAX); });
        exercise::<OrMap<u8, OrSetStore<u8>>>(&bytes, |m| { m.update(0, |s, ctx| s.add_delta(ctx, 1, 1)); m.remove(&1); });
        exercise::<OrMap<u8, CounterStore>>(&bytes, |m| { m.update(0, |c, ctx| c.add_delta(ctx, 1, 1)); });
        exercise::<OrMap<u8, OrMapStore<u8, MvRegisterStore<u8>>>>(&bytes, |m| { m.remove(&0); });
    }
}
