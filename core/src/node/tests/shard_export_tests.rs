use super::*;
use crate::vector::collection::{Collection, CollectionConfig, Distance, PointSelector, PointsOp, ScrollRequest};
use crate::vector::payload::PayloadValue;
use crate::vector::point::PointStruct;

fn collection() -> Collection {
    Collection::new("c", CollectionConfig::new(2, Distance::Euclid)).unwrap()
}

fn upsert(c: &mut Collection, id: u64, v: i64) {
    let payload = [("v".to_string(), PayloadValue::Int(v))].into_iter().collect();
    let p = PointStruct { id: PointId::Num(id), vector: vec![id as f32, v as f32], payload };
    c.apply(PointsOp::Upsert(vec![p])).unwrap();
}

fn delete(c: &mut Collection, id: u64) {
    c.apply(PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(id)]))).unwrap();
}

fn all(c: &Collection) -> Vec<Record> {
    let r = ScrollRequest { offset: None, limit: usize::MAX, filter: None, with_payload: true, with_vector: true };
    c.scroll(&r).unwrap().points
}

fn page(c: &Collection, read: ChangesRead) -> ChangesPage {
    c.changes(read.since, read.after, read.limit).unwrap()
}

/// A finished copy: its sequence number and points.
type Finished = Result<(u64, Vec<Record>), ExportError>;

/// Runs `export` against `c`, calling `write(c, page number)` after every page; returns the
/// copy, the sequence it claims, and the shard's points at every sequence number seen.
fn run(mut export: ShardExport, c: &mut Collection, mut write: impl FnMut(&mut Collection, u32)) -> (Finished, BTreeMap<u64, Vec<Record>>) {
    let mut states = BTreeMap::new();
    states.insert(c.seq(), all(c));
    for n in 0.. {
        let p = page(c, export.next_read());
        match export.on_page(p) {
            Ok(ExportProgress::Done { seq }) => return (Ok((seq, export.into_points())), states),
            Ok(ExportProgress::More) => {}
            Err(e) => return (Err(e), states),
        }
        write(c, n);
        states.insert(c.seq(), all(c));
    }
    unreachable!()
}

#[test]
fn a_quiet_shard_is_copied_in_one_pass_of_pages() {
    let mut c = collection();
    for id in 0..10 {
        upsert(&mut c, id, 1);
    }
    delete(&mut c, 4);
    let (got, _) = run(ShardExport::new(0, 3), &mut c, |_, _| {});
    let (seq, points) = got.unwrap();
    assert_eq!(seq, c.seq());
    assert_eq!(points, all(&c));
}

#[test]
fn writes_between_pages_give_the_shard_at_one_sequence_number() {
    let mut c = collection();
    for id in 0..20 {
        upsert(&mut c, id, 0);
    }
    // Every page is followed by a change of one low id and one high id: a scroll would hold
    // the low one from before and the high one from after.
    let (got, states) = run(ShardExport::new(0, 3), &mut c, |c, n| {
        if n < 12 {
            upsert(c, (n % 5) as u64, n as i64 + 1);
            if n % 3 == 0 { delete(c, 19 - (n % 4) as u64) } else { upsert(c, 15 + (n % 4) as u64, n as i64 + 1) }
        }
    });
    let (seq, points) = got.unwrap();
    assert_eq!(&points, states.get(&seq).expect("a sequence number the shard went through"));
}

#[test]
fn the_torn_bug_switch_returns_a_state_the_shard_never_was_in() {
    let mut c = collection();
    for id in 0..20 {
        upsert(&mut c, id, 0);
    }
    let (got, states) = run(ShardExport::new(0, 3).finish_any_round(), &mut c, |c, n| {
        if n < 12 {
            upsert(c, (n % 5) as u64, n as i64 + 1);
            upsert(c, 15 + (n % 4) as u64, n as i64 + 1);
        }
    });
    let (seq, points) = got.unwrap();
    assert_ne!(&points, &states[&seq]);
    assert!(states.values().all(|s| s != &points), "torn: no state of the shard");
}

#[test]
fn a_single_page_round_finishes_and_a_multi_page_round_does_not() {
    let mut c = collection();
    for id in 0..6 {
        upsert(&mut c, id, 0);
    }
    // Limit 6: the first pass is one page, done.
    let (got, _) = run(ShardExport::new(0, 6), &mut c, |_, _| {});
    assert_eq!(got.unwrap().1.len(), 6);
    // Limit 5 with 6 changes: two pages, then a round of no changes (one page).
    let mut e = ShardExport::new(0, 5);
    assert_eq!(e.on_page(page(&c, e.next_read())), Ok(ExportProgress::More));
    assert_eq!(e.on_page(page(&c, e.next_read())), Ok(ExportProgress::More));
    assert_eq!(e.rounds(), 1);
    assert_eq!(e.next_read(), ChangesRead { since: c.seq(), after: None, limit: 5 });
    assert_eq!(e.on_page(page(&c, e.next_read())), Ok(ExportProgress::Done { seq: c.seq() }));
    assert_eq!(e.rounds(), 2);
}

#[test]
fn a_shard_that_keeps_changing_is_refused_after_the_round_limit() {
    let mut c = collection();
    for id in 0..4 {
        upsert(&mut c, id, 0);
    }
    // Limit 1 and both ends changed after every page: every round takes several pages.
    let (got, _) = run(ShardExport::new(0, 1), &mut c, |c, n| {
        upsert(c, 0, n as i64 + 1);
        upsert(c, 3, n as i64 + 1);
    });
    assert_eq!(got, Err(ExportError::NotSettling { shard: 0, rounds: MAX_EXPORT_ROUNDS }));
}

#[test]
fn an_answer_older_than_one_before_it_is_refused() {
    let mut c = collection();
    upsert(&mut c, 1, 0);
    upsert(&mut c, 2, 0);
    let mut e = ShardExport::new(3, 1);
    let mut first = page(&c, e.next_read());
    assert_eq!(e.on_page(first.clone()), Ok(ExportProgress::More));
    first.seq -= 1;
    first.changes.clear();
    first.covered_to = None;
    assert_eq!(e.on_page(first), Err(ExportError::WentBack { shard: 3, seen: 2, got: 1 }));
}

#[test]
fn malformed_pages_are_refused() {
    let mut c = collection();
    for id in 0..4 {
        upsert(&mut c, id, 0);
    }
    let mut e = ShardExport::new(0, 2);
    let p = page(&c, e.next_read());
    assert_eq!(e.on_page(p.clone()), Ok(ExportProgress::More));
    // The same page again: ids not past the start.
    assert!(matches!(e.on_page(p.clone()), Err(ExportError::Malformed { .. })));
    let mut beyond = page(&c, e.next_read());
    beyond.covered_to = Some(PointId::Num(2));
    assert!(matches!(e.on_page(beyond), Err(ExportError::Malformed { .. })), "lists 3 but covers to 2");
    let mut long = page(&c, ChangesRead { since: 0, after: None, limit: 3 });
    long.covered_to = Some(PointId::Num(9));
    let mut fresh = ShardExport::new(0, 2);
    assert!(matches!(fresh.on_page(long), Err(ExportError::Malformed { .. })), "3 changes for a limit of 2");
}

#[test]
fn forgotten_deletions_start_over_only_where_the_copy_holds_ids() {
    let mut c = collection();
    for id in 0..6 {
        upsert(&mut c, id, 0);
    }
    let mut e = ShardExport::new(0, 4);
    // Two pages, then a restored replica (deletion log floor at its seq) answers.
    assert_eq!(e.on_page(page(&c, e.next_read())), Ok(ExportProgress::More));
    assert_eq!(e.on_page(page(&c, e.next_read())), Ok(ExportProgress::More));
    delete(&mut c, 1);
    c.prune_deletion_log(c.seq());
    let p = page(&c, e.next_read());
    assert!(!p.complete);
    assert_eq!(e.on_page(p), Ok(ExportProgress::More), "starts over");
    assert_eq!(e.restarts(), 1);
    assert_eq!(e.next_read(), ChangesRead { since: 0, after: None, limit: 4 });
    // From nothing, an incomplete page is harmless: nothing held can have been deleted.
    let (got, _) = run(e, &mut c, |_, _| {});
    let (seq, points) = got.unwrap();
    assert_eq!(seq, c.seq());
    assert_eq!(points, all(&c));
}

#[test]
fn restarts_are_bounded() {
    let mut c = collection();
    for id in 0..3 {
        upsert(&mut c, id, 0);
    }
    let mut e = ShardExport::new(0, 2);
    // A first pass of two pages, then a page of the next round from a replica that forgot
    // deletions: the copy holds ids there, so it starts over; again and again.
    let first = page(&c, ChangesRead { since: 0, after: None, limit: 2 });
    let second = page(&c, ChangesRead { since: 0, after: Some(PointId::Num(1)), limit: 2 });
    let forgetful = ChangesPage { seq: c.seq(), complete: false, changes: Vec::new(), covered_to: None };
    for n in 1..=MAX_EXPORT_RESTARTS + 1 {
        assert_eq!(e.on_page(first.clone()), Ok(ExportProgress::More));
        assert_eq!(e.on_page(second.clone()), Ok(ExportProgress::More));
        assert_eq!(e.next_read().since, c.seq(), "second round");
        let r = e.on_page(forgetful.clone());
        if n <= MAX_EXPORT_RESTARTS {
            assert_eq!(r, Ok(ExportProgress::More));
            assert_eq!(e.restarts(), n);
        } else {
            assert_eq!(r, Err(ExportError::TooManyRestarts { shard: 0, restarts: MAX_EXPORT_RESTARTS + 1 }));
        }
    }
}
