//! `Collection::changes`: the points changed and the ids deleted after a sequence number, a
//! page of ids at a time, with the page size bounded at both ends, deletions vouched for only
//! from the deletion log's floor on, and a restored replica answering as the original does.

use super::*;
use crate::vector::collection::{Change, ChangesPage, Collection, MAX_CHANGES_PAGE};
use crate::vector::error::EngineError;
use crate::vector::snapshot::{SnapshotOptions, restore_full, write_full_snapshot};

fn filled(n: u64) -> Collection {
    let mut c = Collection::new("c", config(2, Distance::Euclid)).unwrap();
    for id in 0..n {
        c.apply(PointsOp::Upsert(vec![point(id, &[id as f32, 1.0], serde_json::json!({"v": 0}))])).unwrap();
    }
    c
}

fn ids(p: &ChangesPage) -> Vec<(u64, bool)> {
    p.changes
        .iter()
        .map(|c| match c {
            Change::Upsert(r) => (num(r.id), true),
            Change::Deleted(id) => (num(*id), false),
        })
        .collect()
}

fn num(id: PointId) -> u64 {
    match id {
        PointId::Num(n) => n,
        PointId::Uuid(_) => panic!("numeric ids only"),
    }
}

#[test]
fn page_limits_are_bounded_at_both_ends() {
    let c = filled(3);
    assert!(matches!(c.changes(0, None, 0), Err(EngineError::InvalidRequest(_))));
    assert!(matches!(c.changes(0, None, MAX_CHANGES_PAGE + 1), Err(EngineError::InvalidRequest(_))));
    assert_eq!(c.changes(0, None, MAX_CHANGES_PAGE).unwrap().changes.len(), 3);
    assert_eq!(c.changes(0, None, 1).unwrap().changes.len(), 1);
}

#[test]
fn changes_after_a_sequence_number_merge_upserts_and_deletions_in_id_order() {
    let mut c = filled(6); // seq 6: point k written at seq k + 1
    let mark = c.seq();
    c.apply(PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(1), PointId::Num(4)]))).unwrap();
    c.apply(PointsOp::Upsert(vec![point(3, &[9.0, 9.0], serde_json::json!({"v": 1}))])).unwrap();
    c.apply(PointsOp::Upsert(vec![point(4, &[8.0, 8.0], serde_json::json!({"v": 2}))])).unwrap();
    let p = c.changes(mark, None, 10).unwrap();
    assert_eq!(ids(&p), vec![(1, false), (3, true), (4, true)], "4 was re-upserted: no longer a deletion");
    assert_eq!((p.seq, p.complete, p.covered_to), (9, true, None));
    let Change::Upsert(r) = &p.changes[1] else { panic!() };
    assert_eq!((r.version, r.vector.as_deref(), r.payload.clone()), (8, Some(&[9.0, 9.0][..]), Some(int_payload("v", 1))));
    // Paged: the first page covers up to its last id, the next starts past it.
    let a = c.changes(mark, None, 2).unwrap();
    assert_eq!((ids(&a), a.covered_to), (vec![(1, false), (3, true)], Some(PointId::Num(3))));
    let b = c.changes(mark, a.covered_to, 2).unwrap();
    assert_eq!((ids(&b), b.covered_to), (vec![(4, true)], None));
    // Exactly `limit` changes left: the page says it covers everything.
    assert_eq!(c.changes(mark, None, 3).unwrap().covered_to, None);
    // Since the newest sequence number: nothing.
    assert_eq!(ids(&c.changes(c.seq(), None, 5).unwrap()), vec![]);
}

#[test]
fn deletions_are_vouched_for_from_the_log_floor_on() {
    let mut c = filled(4);
    c.apply(PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(0)]))).unwrap(); // seq 5
    c.prune_deletion_log(5);
    assert!(!c.changes(4, None, 10).unwrap().complete, "one below the floor");
    let at = c.changes(5, None, 10).unwrap();
    assert!(at.complete, "at the floor");
    assert_eq!(ids(&at), vec![]);
}

#[test]
fn a_replica_restored_from_a_snapshot_answers_as_the_original_past_its_floor() {
    let mut c = filled(5);
    c.apply(PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(2)]))).unwrap();
    let mut bytes = Vec::new();
    write_full_snapshot(&c, &mut bytes, &SnapshotOptions::default()).unwrap();
    let mut r = restore_full(bytes.as_slice(), &mut |_| {}).unwrap();
    for x in [&mut c, &mut r] {
        x.apply(PointsOp::Upsert(vec![point(7, &[7.0, 7.0], serde_json::json!({}))])).unwrap();
        x.apply(PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(3)]))).unwrap();
    }
    let floor = 6;
    assert_eq!(c.changes(floor, None, 10).unwrap(), r.changes(floor, None, 10).unwrap());
    let live = |x: &Collection| -> Vec<Change> {
        x.changes(0, None, 10).unwrap().changes.into_iter().filter(|c| matches!(c, Change::Upsert(_))).collect()
    };
    assert_eq!(live(&c), live(&r), "points carry their versions");
    assert!(!r.changes(floor - 1, None, 10).unwrap().complete, "the restored one forgot deletion 2");
    assert!(c.changes(floor - 1, None, 10).unwrap().complete);
}
