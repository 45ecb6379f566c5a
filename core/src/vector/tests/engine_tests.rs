use super::*;
use crate::vector::collection::{
    Collection, FILTERED_EXACT_MAX_MATCHES, HnswParams, ScrollRequest, SearchRequest,
};
use crate::vector::engine::CommandOutcome;
use crate::vector::error::{EngineError, VectorOwner};
use crate::vector::filter::{Condition, Filter, MatchValue, NumericRange};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

fn points_op(op: PointsOp) -> Command {
    Command::Points { collection: "c".into(), op }
}

fn ids_of(hits: &[crate::vector::point::ScoredPoint]) -> Vec<PointId> {
    hits.iter().map(|h| h.id).collect()
}

#[test]
fn validation_errors_name_the_problem_and_change_nothing() {
    let mut e = engine_with(config(3, Distance::Euclid));
    upsert(&mut e, vec![point(1, &[1.0, 0.0, 0.0], json!({"a": 1}))]);
    let before = (e.collection("c").unwrap().digest(), e.collection("c").unwrap().seq());

    let batch = |bad: PointStruct| {
        points_op(PointsOp::Upsert(vec![point(2, &[0.0, 1.0, 0.0], json!({})), bad]))
    };
    assert_eq!(
        e.apply(batch(point(3, &[1.0, 2.0], json!({})))),
        Err(EngineError::DimensionMismatch {
            point: VectorOwner::Point(PointId::Num(3)),
            expected: 3,
            got: 2
        })
    );
    assert_eq!(
        e.apply(batch(point(4, &[1.0, f32::NAN, 0.0], json!({})))),
        Err(EngineError::NonFiniteVector { point: VectorOwner::Point(PointId::Num(4)), index: 1 })
    );
    assert_eq!(
        e.apply(batch(point(5, &[0.0, 0.0, f32::INFINITY], json!({})))),
        Err(EngineError::NonFiniteVector { point: VectorOwner::Point(PointId::Num(5)), index: 2 })
    );
    let mut bad_payload = point(6, &[1.0, 1.0, 1.0], json!({}));
    bad_payload.payload.insert("x".into(), PayloadValue::Float(f64::INFINITY));
    assert!(matches!(e.apply(batch(bad_payload)), Err(EngineError::InvalidPayload(_))));
    assert_eq!(
        e.apply(Command::Points { collection: "nope".into(), op: PointsOp::Upsert(vec![]) }),
        Err(EngineError::UnknownCollection("nope".into()))
    );
    assert_eq!(
        e.apply(points_op(PointsOp::SetPayload {
            selector: PointSelector::Ids(vec![PointId::Num(1), PointId::Num(99)]),
            payload: int_payload("z", 1),
        })),
        Err(EngineError::PointNotFound(PointId::Num(99)))
    );
    assert!(matches!(
        e.apply(points_op(PointsOp::Delete(PointSelector::Filter(Filter::must(vec![
            Condition::IsEmpty { key: "".into() }
        ]))))),
        Err(EngineError::InvalidFilter(_))
    ));
    assert_eq!(
        e.apply(points_op(PointsOp::DeletePayloadKeys {
            selector: PointSelector::Ids(vec![PointId::Num(1)]),
            keys: vec!["a.".into()],
        })),
        Err(EngineError::InvalidPayloadKey("a.".into()))
    );
    let c = e.collection("c").unwrap();
    assert_eq!((c.digest(), c.seq()), before, "rejected commands must change nothing");
    assert_eq!(c.len(), 1);

    // Query validation.
    assert!(matches!(
        c.search(&SearchRequest::new(vec![1.0], 3)),
        Err(EngineError::DimensionMismatch { point: VectorOwner::Query, .. })
    ));
    let mut req = SearchRequest::new(vec![1.0, 0.0, 0.0], 3);
    req.ef = Some(0);
    assert!(matches!(c.search(&req), Err(EngineError::InvalidRequest(_))));
    req.ef = Some(usize::MAX);
    assert!(matches!(c.search(&req), Err(EngineError::InvalidRequest(_))));
    let message = e.apply(batch(point(3, &[1.0, 2.0], json!({})))).unwrap_err().to_string();
    assert!(message.contains("point 3") && message.contains("dimension 2"), "{message}");
}

#[test]
fn collection_lifecycle_and_config_validation() {
    let mut e = VectorEngine::new();
    let create = |name: &str, config| Command::CreateCollection { name: name.into(), config };
    assert_eq!(
        e.apply(create("a", config(4, Distance::Dot))),
        Ok(CommandOutcome::CollectionCreated)
    );
    assert_eq!(
        e.apply(create("a", config(4, Distance::Dot))),
        Err(EngineError::CollectionExists("a".into()))
    );
    let mut huge_m = config(4, Distance::Dot);
    huge_m.hnsw = HnswParams { m: 300, ..HnswParams::default() };
    assert!(
        matches!(e.apply(create("b", huge_m)), Err(EngineError::InvalidConfig(m)) if m.contains("m 300"))
    );
    assert!(matches!(
        e.apply(create("b", config(0, Distance::Dot))),
        Err(EngineError::InvalidConfig(_))
    ));
    let mut zero_ef = config(4, Distance::Dot);
    zero_ef.hnsw.ef = 0;
    assert!(matches!(e.apply(create("b", zero_ef)), Err(EngineError::InvalidConfig(_))));
    for bad in ["", "../x", "a/b", ".hidden", "sp ace"] {
        assert!(
            matches!(
                e.apply(create(bad, config(4, Distance::Dot))),
                Err(EngineError::InvalidCollectionName { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(e.collection_names().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(
        e.apply(Command::DeleteCollection { name: "a".into() }),
        Ok(CommandOutcome::CollectionDeleted { existed: true })
    );
    assert_eq!(
        e.apply(Command::DeleteCollection { name: "a".into() }),
        Ok(CommandOutcome::CollectionDeleted { existed: false })
    );
    assert!(matches!(e.collection("a"), Err(EngineError::UnknownCollection(_))));
}

#[test]
fn cosine_normalises_vectors_and_queries() {
    let mut e = engine_with(config(2, Distance::Cosine));
    upsert(&mut e, vec![point(1, &[3.0, 4.0], json!({})), point(2, &[-1.0, 0.0], json!({}))]);
    assert!(matches!(
        e.apply(points_op(PointsOp::Upsert(vec![point(3, &[0.0, 0.0], json!({}))]))),
        Err(EngineError::ZeroVector { .. })
    ));
    let c = e.collection("c").unwrap();
    let stored = c.point(PointId::Num(1)).unwrap().vector;
    assert!((stored[0] - 0.6).abs() < 1e-6 && (stored[1] - 0.8).abs() < 1e-6);
    for exact in [true, false] {
        let mut req = SearchRequest::new(vec![30.0, 40.0], 2);
        req.exact = exact;
        req.with_vector = true;
        let hits = c.search(&req).unwrap();
        assert_eq!(ids_of(&hits), vec![PointId::Num(1), PointId::Num(2)]);
        assert!((hits[0].score - 1.0).abs() < 1e-6, "same direction scores 1");
        assert!((hits[1].score + 0.6).abs() < 1e-6);
        assert_eq!(hits[0].vector.as_ref().unwrap(), stored);
    }
}

#[test]
fn scores_order_ties_threshold_and_offset() {
    for distance in [Distance::Euclid, Distance::Dot] {
        let mut e = engine_with(config(2, distance));
        upsert(
            &mut e,
            vec![
                point(5, &[1.0, 0.0], json!({})),
                point(2, &[1.0, 0.0], json!({})),
                point(9, &[3.0, 0.0], json!({})),
                point(7, &[0.0, 0.0], json!({})),
            ],
        );
        let c = e.collection("c").unwrap();
        let mut req = SearchRequest::new(vec![2.0, 0.0], 10);
        req.exact = true;
        let hits = c.search(&req).unwrap();
        let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
        match distance {
            Distance::Euclid => {
                // Distances: 2 -> 1, 5 -> 1, 9 -> 1, 7 -> 2; ties by id.
                assert_eq!(ids_of(&hits), [2, 5, 9, 7].map(PointId::Num));
                assert_eq!(scores, vec![1.0, 1.0, 1.0, 2.0]);
                req.score_threshold = Some(1.5);
            }
            _ => {
                assert_eq!(ids_of(&hits), [9, 2, 5, 7].map(PointId::Num));
                assert_eq!(scores, vec![6.0, 2.0, 2.0, 0.0]);
                req.score_threshold = Some(1.0);
            }
        }
        let top3 = ids_of(&hits)[..3].to_vec();
        assert_eq!(ids_of(&c.search(&req).unwrap()), top3);
        req.score_threshold = None;
        req.offset = 1;
        req.limit = 2;
        assert_eq!(ids_of(&c.search(&req).unwrap()), ids_of(&hits)[1..3].to_vec());
        req.limit = 0;
        assert!(c.search(&req).unwrap().is_empty());
    }
}

#[test]
fn scroll_pages_through_integer_and_uuid_ids_in_order() {
    let mut e = engine_with(config(1, Distance::Dot));
    let uuid = PointId::parse_uuid("00000000-0000-0000-0000-000000000001").unwrap();
    let mut points: Vec<PointStruct> =
        (0..10).rev().map(|i| point(i, &[i as f32], json!({"even": i % 2 == 0}))).collect();
    points.push(PointStruct { id: uuid, vector: vec![1.0], payload: Payload::new() });
    upsert(&mut e, points);
    let c = e.collection("c").unwrap();
    let mut seen = Vec::new();
    let mut req = ScrollRequest { limit: 3, with_payload: true, ..ScrollRequest::default() };
    loop {
        let page = c.scroll(&req).unwrap();
        assert!(page.points.len() <= 3);
        assert!(page.points.iter().all(|r| r.payload.is_some() && r.vector.is_none()));
        seen.extend(page.points.iter().map(|r| r.id));
        match page.next_offset {
            Some(next) => req.offset = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<PointId> = (0..10).map(PointId::Num).collect();
    expected.push(uuid);
    assert_eq!(seen, expected);
    let even = Filter::must(vec![Condition::matches_value("even", MatchValue::Bool(true))]);
    let page = c
        .scroll(&ScrollRequest {
            offset: Some(PointId::Num(3)),
            limit: 2,
            filter: Some(even.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.points.iter().map(|r| r.id).collect::<Vec<_>>(), [4, 6].map(PointId::Num));
    assert_eq!(page.next_offset, Some(PointId::Num(8)));
    assert_eq!(c.count(Some(&even)).unwrap(), 5);
    assert_eq!(c.count(None).unwrap(), 11);
    let got = c.get(&[PointId::Num(4), PointId::Num(42), uuid], false, true);
    assert_eq!(got.iter().map(|r| r.id).collect::<Vec<_>>(), vec![PointId::Num(4), uuid]);
    assert_eq!(got[0].vector, Some(vec![4.0]));
    assert_eq!(got[0].payload, None);
}

#[test]
fn payload_commands_merge_overwrite_and_delete_keys() {
    let mut e = engine_with(config(1, Distance::Dot));
    upsert(
        &mut e,
        vec![
            point(1, &[1.0], json!({"a": 1, "n": {"x": 1, "y": 2}})),
            point(2, &[1.0], json!({"a": 2})),
        ],
    );
    let one = || PointSelector::Ids(vec![PointId::Num(1)]);
    let payload_of = |e: &VectorEngine, id| {
        crate::vector::payload::payload_to_json(
            e.collection("c").unwrap().point(PointId::Num(id)).unwrap().payload,
        )
    };
    e.apply(points_op(PointsOp::SetPayload { selector: one(), payload: int_payload("b", 5) }))
        .unwrap();
    assert_eq!(payload_of(&e, 1), json!({"a": 1, "b": 5, "n": {"x": 1, "y": 2}}));
    e.apply(points_op(PointsOp::DeletePayloadKeys {
        selector: one(),
        keys: vec!["n.x".into(), "a".into()],
    }))
    .unwrap();
    assert_eq!(payload_of(&e, 1), json!({"b": 5, "n": {"y": 2}}));
    let by_filter = PointSelector::Filter(Filter::must(vec![Condition::matches_value(
        "a",
        MatchValue::Integer(2),
    )]));
    let out = e
        .apply(points_op(PointsOp::OverwritePayload {
            selector: by_filter,
            payload: int_payload("c", 7),
        }))
        .unwrap();
    assert_eq!(out, CommandOutcome::PointsApplied { seq: 4, affected: 1 });
    assert_eq!(payload_of(&e, 2), json!({"c": 7}));
    let c = e.collection("c").unwrap();
    assert_eq!(c.point(PointId::Num(2)).unwrap().version, 4);
    assert_eq!(c.point(PointId::Num(1)).unwrap().version, 3);
    // Delete by filter.
    let by_range = Filter::must(vec![Condition::range(
        "c",
        NumericRange { gte: Some(7.0), ..Default::default() },
    )]);
    e.apply(points_op(PointsOp::Delete(PointSelector::Filter(by_range)))).unwrap();
    assert_eq!(
        e.collection("c").unwrap().get(&[PointId::Num(1), PointId::Num(2)], false, false).len(),
        1
    );
}

/// Clustered data: `clusters` centres, points scattered around them.
fn clustered(rng: &mut ChaCha8Rng, n: usize, dim: usize, clusters: usize) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| (0..dim).map(|_| rng.random_range(-10.0f32..10.0)).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..clusters)];
            c.iter().map(|x| x + rng.random_range(-1.0f32..1.0)).collect()
        })
        .collect()
}

#[test]
fn approximate_search_recall_against_exact_with_updates_and_rebuild() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let dim = 16;
    let mut cfg = config(dim as u32, Distance::Euclid);
    cfg.rebuild_tombstone_percent = 10;
    let mut e = engine_with(cfg);
    let data = clustered(&mut rng, 2_000, dim, 20);
    let points: Vec<PointStruct> = data
        .iter()
        .enumerate()
        .map(|(i, v)| point(i as u64, v, json!({"group": (i % 4) as i64})))
        .collect();
    upsert(&mut e, points);
    // Replace a quarter of the points and delete another slice: tombstones pile up.
    let moved: Vec<PointStruct> = clustered(&mut rng, 500, dim, 20)
        .into_iter()
        .enumerate()
        .map(|(i, v)| point(i as u64 * 4, &v, json!({"group": 0})))
        .collect();
    upsert(&mut e, moved);
    let deleted: Vec<u64> = (0..2_000).filter(|i| i % 7 == 1).collect();
    delete_ids(&mut e, &deleted);
    let deleted_ids: std::collections::BTreeSet<PointId> =
        deleted.iter().map(|&i| PointId::Num(i)).collect();
    assert!(e.collection("c").unwrap().needs_rebuild());
    assert_eq!(e.collections_needing_rebuild(), vec!["c".to_string()]);

    let queries = clustered(&mut rng, 30, dim, 20);
    let recall = |c: &Collection| {
        let mut found = 0usize;
        for q in &queries {
            let mut req = SearchRequest::new(q.clone(), 10);
            req.exact = true;
            let truth: std::collections::BTreeSet<PointId> =
                ids_of(&c.search(&req).unwrap()).into_iter().collect();
            req.exact = false;
            req.ef = Some(64);
            let approx = c.search(&req).unwrap();
            assert!(approx.iter().all(|h| !deleted_ids.contains(&h.id)), "deleted point returned");
            assert!(approx.windows(2).all(|w| w[0].score <= w[1].score), "sorted best first");
            found += approx.iter().filter(|h| truth.contains(&h.id)).count();
        }
        found as f64 / (queries.len() * 10) as f64
    };
    let before = recall(e.collection("c").unwrap());
    let digest = e.collection("c").unwrap().digest();
    e.collection_mut("c").unwrap().rebuild_index();
    let c = e.collection("c").unwrap();
    assert_eq!(c.tombstone_count(), 0);
    assert!(!c.needs_rebuild());
    assert_eq!(c.digest(), digest, "rebuild does not touch the points");
    let after = recall(c);
    assert!(before >= 0.9 && after >= 0.9, "recall@10 before rebuild {before}, after {after}");

    // The single-threaded rebuild is deterministic: rebuilding again gives identical hits.
    let approx_hits = |c: &Collection| {
        queries
            .iter()
            .map(|q| {
                let mut req = SearchRequest::new(q.clone(), 10);
                req.ef = Some(32);
                c.search(&req).unwrap().into_iter().map(|h| (h.id, h.score)).collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let first = approx_hits(e.collection("c").unwrap());
    e.collection_mut("c").unwrap().rebuild_index();
    assert_eq!(approx_hits(e.collection("c").unwrap()), first, "rebuilds are deterministic");

    // The parallel bulk rebuild: same points and digest, recall as good.
    e.collection_mut("c").unwrap().rebuild_index_parallel(2);
    let c = e.collection("c").unwrap();
    assert_eq!(c.digest(), digest);
    assert_eq!(c.tombstone_count(), 0);
    let parallel = recall(c);
    assert!(parallel >= after - 0.03, "parallel rebuild recall {parallel} vs {after}");
}

#[test]
fn filtered_search_uses_exact_or_index_path_and_both_respect_the_filter() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let dim = 4;
    let mut e = engine_with(config(dim as u32, Distance::Dot));
    let n = (FILTERED_EXACT_MAX_MATCHES * 3) as u64;
    let points: Vec<PointStruct> = (0..n)
        .map(|i| {
            let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            point(i, &v, json!({"half": i % 2 == 0, "rare": i % 500 == 0}))
        })
        .collect();
    upsert(&mut e, points);
    delete_ids(&mut e, &[0, 2, 4, 500]);
    let c = e.collection("c").unwrap();
    // `half` matches ~6k points (index path with accept callback); `rare` ~25 (exact path).
    for key in ["half", "rare"] {
        let filter = Filter::must(vec![Condition::matches_value(key, MatchValue::Bool(true))]);
        for _ in 0..5 {
            let q: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let mut req = SearchRequest::new(q, 10);
            req.filter = Some(filter.clone());
            req.with_payload = true;
            let approx = c.search(&req).unwrap();
            req.exact = true;
            let truth = c.search(&req).unwrap();
            assert_eq!(approx.len(), 10);
            for hit in &approx {
                assert_eq!(hit.payload.as_ref().unwrap()[key], PayloadValue::Bool(true));
                assert!(![0, 2, 4, 500].map(PointId::Num).contains(&hit.id));
            }
            let truth_ids: std::collections::BTreeSet<_> = ids_of(&truth).into_iter().collect();
            let overlap = approx.iter().filter(|h| truth_ids.contains(&h.id)).count();
            assert!(overlap >= 8, "{key}: filtered recall {overlap}/10");
        }
    }
}

#[test]
fn replicas_applying_the_same_encoded_commands_hold_identical_data() {
    let commands = vec![
        Command::CreateCollection { name: "c".into(), config: config(2, Distance::Cosine) },
        points_op(PointsOp::Upsert(vec![
            point(1, &[1.0, 2.0], json!({"k": "v", "list": [1, 2.5, null]})),
            PointStruct {
                id: PointId::parse_uuid("550e8400-e29b-41d4-a716-446655440000").unwrap(),
                vector: vec![0.5, -0.5],
                payload: Payload::new(),
            },
        ])),
        points_op(PointsOp::Upsert(vec![point(1, &[2.0, 1.0], json!({"k": "w"}))])),
        points_op(PointsOp::Upsert(vec![point(3, &[0.0, 0.0], json!({}))])), // rejected: zero vector
        points_op(PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(7)]))),
    ];
    let mut a = VectorEngine::new();
    let mut b = VectorEngine::new();
    let mut outcomes = (Vec::new(), Vec::new());
    for command in commands {
        let bytes = crate::wire::encode(&command).unwrap();
        let decoded: Command = crate::wire::decode(&bytes).unwrap();
        assert_eq!(decoded, command);
        outcomes.0.push(a.apply(command));
        crate::contract::StateMachine::step(
            &mut b,
            crate::contract::Time::ZERO,
            decoded,
            &mut outcomes.1,
        );
    }
    assert_eq!(outcomes.0, outcomes.1);
    assert!(outcomes.0[3].is_err());
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.collection("c").unwrap().seq(), 3);
    let mut other = VectorEngine::new();
    other
        .apply(Command::CreateCollection { name: "c".into(), config: config(2, Distance::Cosine) })
        .unwrap();
    assert_ne!(a.digest(), other.digest());
}
