//! Property tests: random command sequences against a naive model (a BTreeMap of points scored by
//! brute force), and snapshot round trips / corruption on random collections.

use super::*;
use crate::vector::collection::{Collection, ScrollRequest, SearchRequest};
use crate::vector::filter::{Condition, Filter, MatchValue};
use crate::vector::snapshot::{
    SnapshotOptions, read_header, restore_full, restore_incremental, write_full_snapshot,
    write_incremental_snapshot,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

const DIM: usize = 3;

#[derive(Clone, Debug)]
enum Step {
    Upsert(Vec<(u64, Vec<f32>, Option<i64>)>),
    Delete(Vec<u64>),
    DeleteWhere(i64),
    SetColour(Vec<u64>, i64),
    Rebuild,
    /// Declare (or drop) an integer index on `colour`: filtered steps then go through its
    /// posting lists, and must still agree with the model.
    IndexColour(bool),
    Search { query: Vec<f32>, k: usize, colour: Option<i64> },
}

fn id(i: u64) -> PointId {
    // A few UUID ids mixed in with integers.
    if i >= 12 {
        PointId::Uuid(0x1234_0000_0000_0000_0000_0000_0000_0000 + i as u128)
    } else {
        PointId::Num(i)
    }
}

fn vector() -> impl Strategy<Value = Vec<f32>> {
    // Small integers make exact score ties common, exercising tie-breaking by id.
    proptest::collection::vec((-3i8..=3).prop_map(f32::from), DIM)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => proptest::collection::vec((0u64..16, vector(), proptest::option::of(0i64..3)), 1..5).prop_map(Step::Upsert),
        2 => proptest::collection::vec(0u64..16, 1..4).prop_map(Step::Delete),
        1 => (0i64..3).prop_map(Step::DeleteWhere),
        1 => (proptest::collection::vec(0u64..16, 1..3), 0i64..3).prop_map(|(ids, c)| Step::SetColour(ids, c)),
        1 => Just(Step::Rebuild),
        1 => any::<bool>().prop_map(Step::IndexColour),
        3 => (vector(), 1usize..8, proptest::option::of(0i64..3)).prop_map(|(query, k, colour)| Step::Search { query, k, colour }),
    ]
}

fn distance() -> impl Strategy<Value = Distance> {
    prop_oneof![Just(Distance::Cosine), Just(Distance::Euclid), Just(Distance::Dot)]
}

fn colour_filter(c: i64) -> Filter {
    Filter::must(vec![Condition::matches_value("colour", MatchValue::Integer(c))])
}

fn colour_payload(c: Option<i64>) -> Payload {
    c.map(|c| int_payload("colour", c)).unwrap_or_default()
}

/// The specification, written plainly.
#[derive(Default)]
struct Model {
    points: BTreeMap<PointId, (Vec<f32>, Payload)>,
}

impl Model {
    fn prepare(distance: Distance, v: &[f32]) -> Option<Vec<f32>> {
        if distance != Distance::Cosine {
            return Some(v.to_vec());
        }
        let norm = v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
        (norm != 0.0).then(|| v.iter().map(|&x| ((x as f64) / norm) as f32).collect())
    }

    fn score(distance: Distance, q: &[f32], v: &[f32]) -> f32 {
        let mut acc = 0.0f32;
        for i in 0..q.len() {
            acc += match distance {
                Distance::Euclid => (q[i] - v[i]) * (q[i] - v[i]),
                _ => q[i] * v[i],
            };
        }
        if distance == Distance::Euclid { acc.sqrt() } else { acc }
    }

    fn search(
        &self,
        distance: Distance,
        q: &[f32],
        k: usize,
        colour: Option<i64>,
    ) -> Option<Vec<(PointId, f32)>> {
        let q = Self::prepare(distance, q)?;
        let mut hits: Vec<(PointId, f32)> = self
            .points
            .iter()
            .filter(|(_, (_, p))| {
                colour.is_none_or(|c| p.get("colour") == Some(&PayloadValue::Int(c)))
            })
            .map(|(id, (v, _))| (*id, Self::score(distance, &q, v)))
            .collect();
        hits.sort_by(|a, b| {
            let by_score = if distance == Distance::Euclid {
                a.1.total_cmp(&b.1)
            } else {
                b.1.total_cmp(&a.1)
            };
            by_score.then(a.0.cmp(&b.0))
        });
        hits.truncate(k);
        Some(hits)
    }
}

fn run_steps(distance: Distance, steps: &[Step]) -> Result<VectorEngine, TestCaseError> {
    let mut cfg = config(DIM as u32, distance);
    cfg.rebuild_tombstone_percent = 30;
    let mut engine = engine_with(cfg);
    let mut model = Model::default();
    let mut ever_deleted: Vec<PointId> = Vec::new();
    for step in steps {
        let apply = |engine: &mut VectorEngine, op| {
            engine.apply(Command::Points { collection: "c".into(), op })
        };
        match step {
            Step::Upsert(batch) => {
                let points: Vec<PointStruct> = batch
                    .iter()
                    .map(|(i, v, c)| PointStruct {
                        id: id(*i),
                        vector: v.clone(),
                        payload: colour_payload(*c),
                    })
                    .collect();
                let prepared: Option<Vec<_>> =
                    batch.iter().map(|(_, v, _)| Model::prepare(distance, v)).collect();
                let result = apply(&mut engine, PointsOp::Upsert(points));
                prop_assert_eq!(result.is_ok(), prepared.is_some(), "upsert acceptance");
                if let Some(prepared) = prepared {
                    for ((i, _, c), v) in batch.iter().zip(prepared) {
                        model.points.insert(id(*i), (v, colour_payload(*c)));
                    }
                }
            }
            Step::Delete(ids) => {
                let ids: Vec<PointId> = ids.iter().map(|&i| id(i)).collect();
                apply(&mut engine, PointsOp::Delete(PointSelector::Ids(ids.clone()))).unwrap();
                for i in ids {
                    if model.points.remove(&i).is_some() {
                        ever_deleted.push(i);
                    }
                }
            }
            Step::DeleteWhere(c) => {
                apply(&mut engine, PointsOp::Delete(PointSelector::Filter(colour_filter(*c))))
                    .unwrap();
                let doomed: Vec<PointId> = model
                    .points
                    .iter()
                    .filter(|(_, (_, p))| p.get("colour") == Some(&PayloadValue::Int(*c)))
                    .map(|(i, _)| *i)
                    .collect();
                for i in doomed {
                    model.points.remove(&i);
                    ever_deleted.push(i);
                }
            }
            Step::SetColour(ids, c) => {
                let ids: Vec<PointId> = ids.iter().map(|&i| id(i)).collect();
                let result = apply(
                    &mut engine,
                    PointsOp::SetPayload {
                        selector: PointSelector::Ids(ids.clone()),
                        payload: int_payload("colour", *c),
                    },
                );
                let all_exist = ids.iter().all(|i| model.points.contains_key(i));
                prop_assert_eq!(result.is_ok(), all_exist, "set payload acceptance");
                if all_exist {
                    for i in ids {
                        model
                            .points
                            .get_mut(&i)
                            .unwrap()
                            .1
                            .insert("colour".into(), PayloadValue::Int(*c));
                    }
                }
            }
            Step::IndexColour(true) => {
                let schema = crate::vector::payload_index::FieldSchema::Integer;
                let cmd = Command::CreateFieldIndex { collection: "c".into(), field: "colour".into(), schema };
                engine.apply(cmd).unwrap();
            }
            Step::IndexColour(false) => {
                engine.apply(Command::DeleteFieldIndex { collection: "c".into(), field: "colour".into() }).unwrap();
            }
            Step::Rebuild => {
                let c = engine.collection_mut("c").unwrap();
                if c.needs_rebuild() {
                    c.rebuild_index();
                    prop_assert_eq!(c.tombstone_count(), 0);
                }
            }
            Step::Search { query, k, colour } => {
                let c = engine.collection("c").unwrap();
                let mut req = SearchRequest::new(query.clone(), *k);
                req.filter = colour.map(colour_filter);
                req.exact = true;
                let expected = model.search(distance, query, *k, *colour);
                let got = c.search(&req);
                match expected {
                    None => prop_assert!(got.is_err(), "zero cosine query must be rejected"),
                    Some(expected) => {
                        let got: Vec<(PointId, f32)> =
                            got.unwrap().into_iter().map(|h| (h.id, h.score)).collect();
                        prop_assert_eq!(&got, &expected);
                        // The index path never returns a deleted point and returns live, matching ones.
                        req.exact = false;
                        for hit in c.search(&req).unwrap() {
                            prop_assert!(
                                model.points.contains_key(&hit.id),
                                "index returned dead {}",
                                hit.id
                            );
                            if let Some(col) = colour {
                                prop_assert_eq!(
                                    model.points[&hit.id].1.get("colour"),
                                    Some(&PayloadValue::Int(*col))
                                );
                            }
                        }
                    }
                }
            }
        }
        check_reads(engine.collection("c").unwrap(), &model, &ever_deleted)?;
    }
    Ok(engine)
}

/// get / scroll / count agree with the model; deleted ids never come back.
fn check_reads(
    c: &Collection,
    model: &Model,
    ever_deleted: &[PointId],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.count(None).unwrap(), model.points.len());
    let mut scrolled = Vec::new();
    let mut req =
        ScrollRequest { limit: 4, with_vector: true, with_payload: true, ..Default::default() };
    loop {
        let page = c.scroll(&req).unwrap();
        for r in &page.points {
            let (v, p) = &model.points[&r.id];
            prop_assert_eq!(r.vector.as_ref(), Some(v));
            prop_assert_eq!(r.payload.as_ref(), Some(p));
        }
        scrolled.extend(page.points.into_iter().map(|r| r.id));
        match page.next_offset {
            Some(next) => req.offset = Some(next),
            None => break,
        }
    }
    prop_assert_eq!(scrolled, model.points.keys().copied().collect::<Vec<_>>());
    for dead in ever_deleted.iter().filter(|i| !model.points.contains_key(i)) {
        prop_assert!(c.get(&[*dead], true, true).is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn exact_search_and_reads_match_the_model(distance in distance(), steps in proptest::collection::vec(step(), 1..40)) {
        run_steps(distance, &steps)?;
    }

    #[test]
    fn snapshot_full_and_incremental_chain_reproduce_digest(
        distance in distance(),
        first in proptest::collection::vec(step(), 1..25),
        second in proptest::collection::vec(step(), 0..25),
        chunk_target in 64usize..2048,
    ) {
        let options = SnapshotOptions { chunk_target_bytes: chunk_target, zstd_level: 1 };
        let mut engine = run_steps(distance, &first)?;
        let mut full = Vec::new();
        write_full_snapshot(engine.collection("c").unwrap(), &mut full, &options).unwrap();
        let mid_digest = engine.collection("c").unwrap().digest();
        // Continue from the same engine with the second half of the steps.
        let all: Vec<Step> = first.iter().chain(&second).cloned().collect();
        engine = run_steps(distance, &all)?;
        let mut inc = Vec::new();
        let base = read_header(&full[..]).unwrap().as_base();
        write_incremental_snapshot(engine.collection("c").unwrap(), base, &mut inc, &options).unwrap();
        let restored = restore_full(&full[..], &mut |_| ()).unwrap();
        prop_assert_eq!(restored.digest(), mid_digest);
        let restored = restore_incremental(&restored, &inc[..], &mut |_| ()).unwrap();
        prop_assert_eq!(restored.digest(), engine.collection("c").unwrap().digest());
    }

    #[test]
    fn snapshot_corruption_is_always_detected(
        steps in proptest::collection::vec(step(), 1..20),
        flip in any::<proptest::sample::Index>(),
        bit in 0u8..8,
        cut in any::<proptest::sample::Index>(),
    ) {
        let engine = run_steps(Distance::Dot, &steps)?;
        let mut bytes = Vec::new();
        write_full_snapshot(engine.collection("c").unwrap(), &mut bytes, &SnapshotOptions { chunk_target_bytes: 100, zstd_level: 1 }).unwrap();
        let mut corrupt = bytes.clone();
        corrupt[flip.index(bytes.len())] ^= 1 << bit;
        prop_assert!(restore_full(&corrupt[..], &mut |_| ()).is_err());
        let truncated = &bytes[..cut.index(bytes.len())];
        prop_assert!(restore_full(truncated, &mut |_| ()).is_err());
    }
}
