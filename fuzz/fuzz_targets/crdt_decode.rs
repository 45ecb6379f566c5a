//! CRDT states and causal metadata from untrusted bytes (anti-entropy peers, stored replicas).
//!
//! The types are exactly those `core/src/crdt/hostile_input.rs` decodes (its proptest sees 512
//! cases of short inputs; this runs millions with coverage feedback). The first byte picks the
//! type. Whatever decodes must survive merging with itself and with a fresh state, a local
//! mutation at extreme values, and re-encode stably: encode(decode(encode(x))) == encode(x), so a
//! state forwarded between replicas cannot change meaning on the way.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use vecraft_core::causality::{CausalContext, DvvSet, VectorClock};
use vecraft_core::crdt::{
    CausalCounter, CounterStore, Crdt, GCounter, LwwRegister, MvRegister, MvRegisterStore, OrMap, OrMapStore, OrSet,
    OrSetStore, PnCounter,
};

fn stable<T: Serialize + DeserializeOwned>(value: &T) {
    let bytes = postcard::to_stdvec(value).expect("decoded states encode");
    let again: T = postcard::from_bytes(&bytes).expect("encoded states decode");
    assert_eq!(postcard::to_stdvec(&again).expect("encodes"), bytes, "encoding is not stable");
}

fn exercise<T: Crdt + Serialize + DeserializeOwned>(bytes: &[u8], mutate: impl Fn(&mut T)) {
    let Ok(mut state) = postcard::from_bytes::<T>(bytes) else { return };
    stable(&state);
    let copy = state.clone();
    state.merge(&copy);
    stable(&state);
    mutate(&mut state);
    stable(&state);
    let mut fresh = T::default();
    fresh.merge(&state);
    stable(&fresh);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 13 {
        0 => {
            if let Ok(v) = postcard::from_bytes::<VectorClock>(bytes) {
                stable(&v);
            }
        }
        1 => {
            if let Ok(mut ctx) = postcard::from_bytes::<CausalContext>(bytes) {
                stable(&ctx);
                let other = ctx.clone();
                ctx.merge(&other);
                let _ = ctx.next_dot(1);
                stable(&ctx);
            }
        }
        2 => exercise::<DvvSet<u8>>(bytes, |d| {
            let c = d.context().clone();
            d.put(&c, 1, 1);
        }),
        3 => exercise::<GCounter>(bytes, |g| {
            g.increment(1, u64::MAX);
        }),
        4 => exercise::<PnCounter>(bytes, |p| {
            p.add(1, i64::MIN);
        }),
        5 => exercise::<LwwRegister<u8>>(bytes, |_| {}),
        6 => exercise::<OrSet<u8>>(bytes, |s| {
            s.add(1, 1);
            s.remove(&0);
        }),
        7 => exercise::<MvRegister<u8>>(bytes, |r| {
            r.write(1, 1);
        }),
        8 => exercise::<CausalCounter>(bytes, |c| {
            c.add(1, i64::MAX);
        }),
        9 => exercise::<OrMap<u8, OrSetStore<u8>>>(bytes, |m| {
            m.update(0, |s, ctx| s.add_delta(ctx, 1, 1));
            m.remove(&1);
        }),
        10 => exercise::<OrMap<u8, CounterStore>>(bytes, |m| {
            m.update(0, |c, ctx| c.add_delta(ctx, 1, 1));
        }),
        11 => exercise::<OrMap<u8, OrMapStore<u8, MvRegisterStore<u8>>>>(bytes, |m| {
            m.remove(&0);
        }),
        _ => {
            // Two states of one type merged both ways must not panic (hostile peers meet).
            let half = bytes.len() / 2;
            if let (Ok(mut a), Ok(mut b)) =
                (postcard::from_bytes::<OrSet<u8>>(&bytes[..half]), postcard::from_bytes::<OrSet<u8>>(&bytes[half..]))
            {
                let (a0, b0) = (a.clone(), b.clone());
                a.merge(&b0);
                b.merge(&a0);
                stable(&a);
                stable(&b);
            }
        }
    }
});
