//! WAL checkpoints with real files: recovery gives exactly the same per-group `DurableState`
//! before a checkpoint, after it, with the checkpoint durable but the old segments not yet
//! deleted (a crash in between), with the checkpoint torn at every byte of its records, and
//! after more records follow it. A damaged group stays damaged after the segments holding its
//! damage are deleted.

use std::collections::BTreeMap;
use std::path::Path;
use vecraft_core::raft::{
    DurableState, Entry, EntryPayload, GroupId, HardState, Membership, PersistRecord, SnapshotMeta,
    SnapshotRecord,
};
use vecraft_runtime::node_loop::checkpoint::{Mirror, Payload, encode};
use vecraft_runtime::node_loop::recovery::{Recovered, recover_groups};
use vecraft_runtime::wal::format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use vecraft_runtime::wal::{Wal, WalOptions};

fn opts() -> WalOptions {
    WalOptions {
        segment_size: 1024,
        preallocate: false,
        ..WalOptions::default()
    }
}

fn entries(group: GroupId, term: u64, from: u64, to: u64) -> Vec<Entry> {
    (from..=to)
        .map(|index| Entry {
            term,
            index,
            payload: EntryPayload::Command(bytes::Bytes::from(format!(
                "g{group}-t{term}-i{index}"
            ))),
        })
        .collect()
}

/// A history touching every kind of record: appends, a term change that truncates a suffix,
/// compactions keeping entries behind the snapshot, and an install that resets the log.
fn history() -> Vec<PersistRecord> {
    let hs = |term, vote| Some(HardState { term, vote });
    let snap = |index: u64, term: u64, base: u64, reset: bool| {
        let meta = SnapshotMeta::for_bytes(
            index,
            term,
            Membership::simple([1, 2, 3]),
            format!("state-{index}").as_bytes(),
        );
        Some(SnapshotRecord {
            meta,
            log_base: base,
            log_base_term: term,
            reset,
        })
    };
    let mut out = Vec::new();
    for round in 0..6u64 {
        let t = round + 1;
        let base = round * 20;
        out.push(PersistRecord {
            group: 0,
            hard_state: hs(t, Some(1)),
            entries: entries(0, t, round * 2 + 1, round * 2 + 2),
            snapshot: None,
        });
        out.push(PersistRecord {
            group: 5,
            hard_state: hs(t, Some(2)),
            entries: entries(5, t, base + 1, base + 20),
            snapshot: None,
        });
        if round > 0 {
            // Group 5 compacts behind index base + 10, keeping 5 entries.
            out.push(PersistRecord {
                group: 5,
                hard_state: None,
                entries: vec![],
                snapshot: snap(base + 10, t, base + 5, false),
            });
        }
        // Group 7: a suffix replaced by a new term.
        out.push(PersistRecord {
            group: 7,
            hard_state: hs(t, None),
            entries: entries(7, t, round * 3 + 1, round * 3 + 4),
            snapshot: None,
        });
    }
    // Group 9: an install resetting the log, then appends after it.
    out.push(PersistRecord {
        group: 9,
        hard_state: hs(3, Some(3)),
        entries: entries(9, 3, 1, 4),
        snapshot: None,
    });
    out.push(PersistRecord {
        group: 9,
        hard_state: None,
        entries: vec![],
        snapshot: snap(40, 4, 40, true),
    });
    out.push(PersistRecord {
        group: 9,
        hard_state: hs(4, None),
        entries: entries(9, 4, 41, 43),
        snapshot: None,
    });
    out
}

fn reference(records: &[PersistRecord]) -> BTreeMap<GroupId, DurableState> {
    let mut per: BTreeMap<GroupId, Vec<&PersistRecord>> = BTreeMap::new();
    for r in records {
        per.entry(r.group).or_default().push(r);
    }
    per.into_iter()
        .map(|(g, rs)| (g, DurableState::replay(rs).unwrap()))
        .collect()
}

fn append(dir: &Path, records: &[PersistRecord]) {
    let (mut wal, _) = Wal::open(dir, opts()).unwrap();
    for r in records {
        wal.append_batch(&[encode(&Payload::Persist(r.clone()))])
            .unwrap();
    }
}

fn recover(dir: &Path) -> Recovered {
    let (_wal, rec) = Wal::open(dir, opts()).unwrap();
    recover_groups(&rec)
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".wal")
        })
        .count()
}

/// Writes a checkpoint of `mirror` in a fresh segment; returns (begin seq, bytes of records).
fn write_checkpoint(dir: &Path, mirror: &Mirror) -> (u64, u64, usize) {
    let (mut wal, _) = Wal::open(dir, opts()).unwrap();
    let begin = wal.next_seq();
    let payloads = mirror.checkpoint(begin, 1 << 20).unwrap();
    let bytes: u64 = payloads
        .iter()
        .map(|p| (RECORD_HEADER_LEN + p.len()) as u64)
        .sum();
    let n = payloads.len();
    wal.append_batch(&payloads).unwrap();
    (begin, bytes, n)
}

/// Cuts the last segment (the checkpoint's, which starts it) at every `step`-th byte of the
/// checkpoint's `bytes`, each in a copy of `dir` under `scratch`: recovery must give `expected`
/// without damage every time.
fn every_tear_recovers(scratch: &Path, dir: &Path, bytes: u64, step: usize, expected: &BTreeMap<GroupId, DurableState>) {
    let ckpt_segment = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .max()
        .unwrap();
    let mut cuts = 0;
    for cut in (SEGMENT_HEADER_LEN as u64..SEGMENT_HEADER_LEN as u64 + bytes).step_by(step) {
        let torn = scratch.join(format!("torn-{cut}"));
        copy_dir(dir, &torn);
        let seg = torn.join(ckpt_segment.file_name().unwrap());
        std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(cut).unwrap();
        let r = recover(&torn);
        assert!(r.damaged.is_empty(), "cut at {cut}: {:?}", r.damage);
        assert_eq!(&r.groups, expected, "cut at {cut}");
        std::fs::remove_dir_all(&torn).unwrap();
        cuts += 1;
    }
    assert!(cuts > 10);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn recovery_is_identical_across_a_checkpoint_and_every_crash_point_in_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let records = history();
    append(&dir, &records);
    let expected = reference(&records);
    let before = recover(&dir);
    assert!(before.damaged.is_empty(), "{:?}", before.damage);
    assert_eq!(before.groups, expected);
    let old_segments = segments(&dir);
    assert!(
        old_segments > 3,
        "the history spans several segments ({old_segments})"
    );

    let mut mirror = Mirror::new(&BTreeMap::new(), BTreeMap::new());
    for r in &records {
        mirror.apply(r);
    }
    for (g, s) in &expected {
        assert_eq!(mirror.state(*g).as_ref(), Some(s), "mirror of group {g}");
    }
    let (begin, ckpt_bytes, n) = write_checkpoint(&dir, &mirror);
    assert_eq!(n, expected.len() + 2, "begin, one record per group, end");

    // Torn anywhere inside the checkpoint (every byte boundary of its records): recovery sees
    // the old records plus a prefix of the checkpoint, and rebuilds the same states.
    every_tear_recovers(tmp.path(), &dir, ckpt_bytes, 7, &expected);

    // Durable, old segments still there (a crash before the deletion).
    let r = recover(&dir);
    assert_eq!(r.checkpoint_seq, begin);
    assert_eq!(r.groups, expected);

    // Old segments deleted.
    {
        let (mut wal, _) = Wal::open(&dir, opts()).unwrap();
        let deleted = wal.truncate_prefix(begin).unwrap();
        assert!(
            deleted >= old_segments - 1,
            "deleted {deleted} of {old_segments}"
        );
    }
    let r = recover(&dir);
    assert_eq!(r.groups, expected, "after the old segments are gone");
    assert!(segments(&dir) <= 2, "{} segments left", segments(&dir));

    // More records after the checkpoint apply on top of it exactly as on the full history.
    let mut more = vec![
        PersistRecord {
            group: 5,
            hard_state: Some(HardState {
                term: 9,
                vote: None,
            }),
            entries: entries(5, 9, 111, 112),
            snapshot: None,
        },
        PersistRecord {
            group: 7,
            hard_state: None,
            entries: entries(7, 6, 19, 25),
            snapshot: None,
        },
        PersistRecord {
            group: 11,
            hard_state: Some(HardState {
                term: 1,
                vote: Some(1),
            }),
            entries: entries(11, 1, 1, 2),
            snapshot: None,
        },
    ];
    append(&dir, &more);
    let mut all = records.clone();
    all.append(&mut more);
    let r = recover(&dir);
    assert!(r.damaged.is_empty());
    assert_eq!(r.groups, reference(&all));
}

#[test]
fn damage_survives_the_deletion_of_the_damaged_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let records = history();
    append(&dir, &records);
    // Flip a byte inside a record of the first segment: corruption before valid records.
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let mut raw = std::fs::read(&segs[0]).unwrap();
    raw[SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + 3] ^= 0x10;
    std::fs::write(&segs[0], raw).unwrap();
    let damaged = recover(&dir);
    assert!(damaged.damage.is_some());
    assert_eq!(
        damaged.damaged,
        vec![0, 5, 7, 9],
        "every group, the metadata group included"
    );

    let mirror = Mirror::new(&damaged.groups, damaged.damaged_records.clone());
    for (g, s) in &damaged.groups {
        assert_eq!(mirror.state(*g).as_ref(), Some(s));
    }
    let (begin, _, _) = write_checkpoint(&dir, &mirror);
    let r = recover(&dir);
    assert_eq!(
        (r.groups.clone(), r.damaged.clone()),
        (damaged.groups.clone(), damaged.damaged.clone()),
        "before deletion"
    );
    {
        let (mut wal, _) = Wal::open(&dir, opts()).unwrap();
        assert!(wal.truncate_prefix(begin).unwrap() > 0);
    }
    let r = recover(&dir);
    assert!(r.damage.is_some(), "never laundered");
    assert_eq!(r.damaged, damaged.damaged);
    assert_eq!(r.groups, damaged.groups);
    assert!(r.groups.values().all(|s| s.damaged));
}

#[test]
fn a_damaged_superseded_segment_does_not_damage_anything() {
    // Corruption entirely before a complete checkpoint only hit superseded records.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let records = history();
    append(&dir, &records);
    let mut mirror = Mirror::new(&BTreeMap::new(), BTreeMap::new());
    for r in &records {
        mirror.apply(r);
    }
    write_checkpoint(&dir, &mirror);
    let mut segs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let mut raw = std::fs::read(&segs[0]).unwrap();
    raw[SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + 3] ^= 0x10;
    std::fs::write(&segs[0], raw).unwrap();
    let r = recover(&dir);
    assert!(r.damage.is_none(), "{:?}", r.damage);
    assert_eq!(r.groups, reference(&records));
}

/// The loop builds a checkpoint from a copy of its mirror on another thread and writes it when
/// ready, after the records that came meanwhile: recovery starts each group from the
/// checkpoint and replays those records (which sit *before* its `Begin`) on top, torn anywhere
/// or whole, before and after the segments below the checkpoint's id are deleted.
#[test]
fn a_checkpoint_written_after_newer_records_recovers_them_all() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let records = history();
    let split = records.len() * 2 / 3;
    append(&dir, &records[..split]);
    let mut mirror = Mirror::new(&BTreeMap::new(), BTreeMap::new());
    for r in &records[..split] {
        mirror.apply(r);
    }
    let id = {
        let (wal, _) = Wal::open(&dir, opts()).unwrap();
        wal.next_seq()
    };
    // Built from the copy while the rest of the history is written.
    let payloads = mirror.checkpoint(id, 1 << 20).unwrap();
    append(&dir, &records[split..]);
    let expected = reference(&records);
    let (mut wal, _) = Wal::open(&dir, opts()).unwrap();
    let begin = wal.next_seq();
    assert!(begin > id + 1, "records sit between the id and the Begin");
    let ckpt_bytes: u64 = payloads.iter().map(|p| (RECORD_HEADER_LEN + p.len()) as u64).sum();
    wal.append_batch(&payloads).unwrap();
    drop(wal);
    let r = recover(&dir);
    assert!(r.damaged.is_empty(), "{:?}", r.damage);
    assert_eq!(r.checkpoint_seq, id);
    assert_eq!(r.groups, expected, "checkpoint, then the records from its id on");

    // Torn anywhere: its group records are ignored (they are older than records before them).
    every_tear_recovers(tmp.path(), &dir, ckpt_bytes, 5, &expected);

    // The segments wholly below the id go; those holding the newer records stay.
    {
        let (mut wal, _) = Wal::open(&dir, opts()).unwrap();
        assert!(wal.truncate_prefix(id).unwrap() > 0);
    }
    let r = recover(&dir);
    assert!(r.damaged.is_empty(), "{:?}", r.damage);
    assert_eq!(r.groups, expected, "after the deletion");
    // A later checkpoint supersedes this one, and this one's group records are then ignored.
    let mut mirror2 = Mirror::new(&BTreeMap::new(), BTreeMap::new());
    for rec in &records {
        mirror2.apply(rec);
    }
    let (begin2, _, _) = write_checkpoint(&dir, &mirror2);
    let r = recover(&dir);
    assert_eq!((r.checkpoint_seq, r.groups), (begin2, expected));
}

/// WALs written before checkpoints were built aside hold plain group records right after
/// `Begin(id)` at seq `id`; they recover exactly as before.
#[test]
fn an_old_format_checkpoint_still_recovers() {
    use vecraft_runtime::node_loop::checkpoint::checkpoint_record;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let records = history();
    append(&dir, &records);
    let expected = reference(&records);
    let (mut wal, _) = Wal::open(&dir, opts()).unwrap();
    let begin = wal.next_seq();
    let mut payloads = vec![encode(&Payload::Begin(begin))];
    for (g, s) in &expected {
        payloads.push(encode(&Payload::Persist(checkpoint_record(*g, s))));
    }
    payloads.push(encode(&Payload::End(begin)));
    wal.append_batch(&payloads).unwrap();
    wal.truncate_prefix(begin).unwrap();
    drop(wal);
    let r = recover(&dir);
    assert!(r.damaged.is_empty(), "{:?}", r.damage);
    assert_eq!((r.checkpoint_seq, r.groups), (begin, expected));
}
