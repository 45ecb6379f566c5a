//! Property tests shared by every CRDT: lattice laws, delta/full-state equivalence and convergence
//! under reordered and duplicated delivery, driven by random histories of three replicas.

use crate::causality::{DvvSet, HlcTimestamp, VectorClock};
use crate::contract::NodeId;
use crate::crdt::{
    CausalCounter, CounterStore, Crdt, GCounter, LwwRegister, MvRegister, MvRegisterStore, OrMap,
    OrMapStore, OrSet, OrSetStore, PnCounter,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

const REPLICAS: usize = 3;

/// A CRDT plus a random operation type, so one harness can drive them all.
trait Model: Crdt<Delta = Self> + Serialize + DeserializeOwned {
    type Op: Debug + Clone + 'static;
    fn op() -> BoxedStrategy<Self::Op>;
    /// Applies `op` as `actor` and returns the delta the mutator produced.
    fn apply(&mut self, actor: NodeId, op: &Self::Op) -> Self;
}

#[derive(Clone, Debug)]
enum Step<Op> {
    Mutate { replica: usize, op: Op },
    /// Full-state merge of one replica into another (anti-entropy), creating causal dependencies.
    Sync { from: usize, to: usize },
}

fn steps<M: Model>() -> impl Strategy<Value = Vec<Step<M::Op>>> {
    let step = prop_oneof![
        3 => (0..REPLICAS, M::op()).prop_map(|(replica, op)| Step::Mutate { replica, op }),
        1 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::Sync { from, to }),
    ];
    prop::collection::vec(step, 0..40)
}

fn joined<M: Crdt>(a: &M, b: &M) -> M {
    let mut out = a.clone();
    out.merge(b);
    out
}

/// Orders `items` by the random `keys` (stable on ties) and appends duplicates of a few of them.
fn shuffled_with_duplicates<T: Clone>(items: &[T], keys: &[u32]) -> Vec<T> {
    let mut tagged: Vec<(u32, usize, T)> = items
        .iter()
        .cloned()
        .chain(items.iter().step_by(3).cloned())
        .enumerate()
        .map(|(i, t)| (keys[i % keys.len()].rotate_left(i as u32), i, t))
        .collect();
    tagged.sort_by_key(|(k, i, _)| (*k, *i));
    tagged.into_iter().map(|(_, _, t)| t).collect()
}

fn check_laws<M: Model>(steps: &[Step<M::Op>], keys: &[u32]) -> Result<(), TestCaseError> {
    let mut replicas: Vec<M> = vec![M::default(); REPLICAS];
    let mut deltas: Vec<M> = Vec::new();
    for step in steps {
        match step {
            Step::Mutate { replica, op } => {
                let before = replicas[*replica].clone();
                let delta = replicas[*replica].apply(*replica as NodeId + 1, op);
                // Delta inflation: the mutation is exactly "join the delta".
                prop_assert_eq!(&joined(&before, &delta), &replicas[*replica]);
                deltas.push(delta);
            }
            Step::Sync { from, to } => {
                let source = replicas[*from].clone();
                replicas[*to].merge(&source);
            }
        }
    }
    let [a, b, c] = [&replicas[0], &replicas[1], &replicas[2]];
    let mut triples = vec![(a, b, c)];
    if let (Some(first), Some(last)) = (deltas.first(), deltas.last()) {
        triples.push((first, b, last));
    }
    for (x, y, z) in triples {
        prop_assert_eq!(joined(x, y), joined(y, x), "merge not commutative");
        prop_assert_eq!(joined(&joined(x, y), z), joined(x, &joined(y, z)), "merge not associative");
        prop_assert_eq!(&joined(x, x), x, "merge not idempotent");
    }
    // Every state change came from a delta, so the join of all deltas is the join of all replicas.
    let full = joined(&joined(a, b), c);
    let mut from_deltas = M::default();
    for d in &deltas {
        from_deltas.merge_delta(d);
    }
    prop_assert_eq!(&from_deltas, &full, "delta merge differs from full-state merge");
    // Two replicas receiving the deltas in different orders, with duplicates, converge.
    let reversed_keys: Vec<u32> = keys.iter().rev().map(|k| k.wrapping_mul(2_654_435_761)).collect();
    for order in [shuffled_with_duplicates(&deltas, keys), shuffled_with_duplicates(&deltas, &reversed_keys)] {
        let mut replica = M::default();
        for d in &order {
            replica.merge_delta(d);
        }
        prop_assert_eq!(&replica, &full, "replica did not converge");
    }
    // The converged state survives the wire.
    let bytes = postcard::to_stdvec(&full).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let decoded: M = postcard::from_bytes(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(decoded, full);
    Ok(())
}

impl Model for GCounter {
    type Op = u8;
    fn op() -> BoxedStrategy<u8> {
        (0u8..5).boxed()
    }
    fn apply(&mut self, actor: NodeId, by: &u8) -> Self {
        self.increment(actor, u64::from(*by))
    }
}

impl Model for PnCounter {
    type Op = i8;
    fn op() -> BoxedStrategy<i8> {
        (-4i8..5).boxed()
    }
    fn apply(&mut self, actor: NodeId, by: &i8) -> Self {
        self.add(actor, i64::from(*by))
    }
}

impl Model for LwwRegister<u8> {
    type Op = (u64, u8);
    fn op() -> BoxedStrategy<(u64, u8)> {
        (0u64..6, 0u8..4).boxed()
    }
    fn apply(&mut self, actor: NodeId, (wall, value): &(u64, u8)) -> Self {
        self.set(HlcTimestamp { wall_millis: *wall, logical: 0, node: actor }, *value)
    }
}

impl Model for MvRegister<u8> {
    type Op = Option<u8>;
    fn op() -> BoxedStrategy<Option<u8>> {
        prop_oneof![4 => (0u8..4).prop_map(Some), 1 => Just(None)].boxed()
    }
    fn apply(&mut self, actor: NodeId, op: &Option<u8>) -> Self {
        match op {
            Some(v) => self.write(actor, *v),
            None => self.clear(),
        }
    }
}

/// Set operations: add, remove or clear.
#[derive(Clone, Debug)]
enum SetOp {
    Add(u8),
    Remove(u8),
    Clear,
}

fn set_op() -> impl Strategy<Value = SetOp> {
    prop_oneof![
        4 => (0u8..5).prop_map(SetOp::Add),
        3 => (0u8..5).prop_map(SetOp::Remove),
        1 => Just(SetOp::Clear),
    ]
}

impl Model for OrSet<u8> {
    type Op = SetOp;
    fn op() -> BoxedStrategy<SetOp> {
        set_op().boxed()
    }
    fn apply(&mut self, actor: NodeId, op: &SetOp) -> Self {
        match op {
            SetOp::Add(e) => self.add(actor, *e),
            SetOp::Remove(e) => self.remove(e),
            SetOp::Clear => self.clear(),
        }
    }
}

impl Model for CausalCounter {
    type Op = i8;
    fn op() -> BoxedStrategy<i8> {
        (-4i8..5).boxed()
    }
    fn apply(&mut self, actor: NodeId, by: &i8) -> Self {
        self.add(actor, i64::from(*by))
    }
}

/// Map operations on a key: mutate the nested value, or remove the key.
#[derive(Clone, Debug)]
enum MapOp<Inner> {
    Update(u8, Inner),
    Remove(u8),
}

fn map_op<I: Debug + Clone + 'static>(inner: impl Strategy<Value = I> + 'static) -> BoxedStrategy<MapOp<I>> {
    prop_oneof![3 => (0u8..3, inner).prop_map(|(k, i)| MapOp::Update(k, i)), 1 => (0u8..3).prop_map(MapOp::Remove)]
        .boxed()
}

impl Model for OrMap<u8, OrSetStore<u8>> {
    type Op = MapOp<SetOp>;
    fn op() -> BoxedStrategy<Self::Op> {
        map_op(set_op())
    }
    fn apply(&mut self, actor: NodeId, op: &Self::Op) -> Self {
        match op {
            MapOp::Update(k, SetOp::Add(e)) => self.update(*k, |s, ctx| s.add_delta(ctx, actor, *e)),
            MapOp::Update(k, SetOp::Remove(e)) => self.update(*k, |s, _| s.remove_delta(e)),
            MapOp::Update(k, SetOp::Clear) => self.update(*k, |s, _| s.clear_delta()),
            MapOp::Remove(k) => self.remove(k),
        }
    }
}

impl Model for OrMap<u8, CounterStore> {
    type Op = MapOp<i8>;
    fn op() -> BoxedStrategy<Self::Op> {
        map_op(-4i8..5)
    }
    fn apply(&mut self, actor: NodeId, op: &Self::Op) -> Self {
        match op {
            MapOp::Update(k, by) => self.update(*k, |c, ctx| c.add_delta(ctx, actor, i64::from(*by))),
            MapOp::Remove(k) => self.remove(k),
        }
    }
}

/// A nested map (payload with sub-documents): key -> (key -> multi-value register).
impl Model for OrMap<u8, OrMapStore<u8, MvRegisterStore<u8>>> {
    type Op = MapOp<MapOp<u8>>;
    fn op() -> BoxedStrategy<Self::Op> {
        map_op(map_op(0u8..3))
    }
    fn apply(&mut self, actor: NodeId, op: &Self::Op) -> Self {
        match op {
            MapOp::Update(k, MapOp::Update(k2, v)) => {
                self.update(*k, |inner, ctx| inner.update_delta(ctx, *k2, |r, ctx| r.write_delta(ctx, actor, *v)))
            }
            MapOp::Update(k, MapOp::Remove(k2)) => self.update(*k, |inner, _| inner.remove_delta(k2)),
            MapOp::Remove(k) => self.remove(k),
        }
    }
}

/// DVV puts with the current context (a client that read first) or an empty one (a blind write).
impl Model for DvvSet<u8> {
    type Op = (bool, u8);
    fn op() -> BoxedStrategy<(bool, u8)> {
        (any::<bool>(), 0u8..4).boxed()
    }
    fn apply(&mut self, actor: NodeId, (read_first, value): &(bool, u8)) -> Self {
        let ctx = if *read_first { self.context().clone() } else { VectorClock::new() };
        self.put(&ctx, *value, actor);
        self.clone()
    }
}

macro_rules! crdt_laws {
    ($($name:ident: $ty:ty;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(96))]
            $(
                #[test]
                fn $name(steps in steps::<$ty>(), keys in prop::collection::vec(any::<u32>(), 16)) {
                    check_laws::<$ty>(&steps, &keys)?;
                }
            )*
        }
    };
}

crdt_laws! {
    gcounter_laws: GCounter;
    pncounter_laws: PnCounter;
    lww_register_laws: LwwRegister<u8>;
    mv_register_laws: MvRegister<u8>;
    orset_laws: OrSet<u8>;
    causal_counter_laws: CausalCounter;
    ormap_of_sets_laws: OrMap<u8, OrSetStore<u8>>;
    ormap_of_counters_laws: OrMap<u8, CounterStore>;
    nested_ormap_laws: OrMap<u8, OrMapStore<u8, MvRegisterStore<u8>>>;
    dvv_set_laws: DvvSet<u8>;
}
