use super::*;
use crate::vector::collection::Collection;
use crate::vector::snapshot::{
    RestoreProgress, SnapshotError, SnapshotKind, SnapshotOptions, read_header, restore_full,
    restore_incremental, verify_snapshot, write_full_snapshot, write_incremental_snapshot,
};
use serde_json::json;

/// Small chunks so even small collections span several chunks.
const SMALL_CHUNKS: SnapshotOptions = SnapshotOptions { chunk_target_bytes: 200, zstd_level: 3 };

fn populated(n: u64) -> VectorEngine {
    let mut e = engine_with(config(3, Distance::Cosine));
    let points = (0..n)
        .map(|i| {
            point(
                i,
                &[i as f32 + 1.0, 1.0, -(i as f32)],
                json!({"i": i, "tag": format!("t{}", i % 3)}),
            )
        })
        .collect();
    upsert(&mut e, points);
    e
}

fn full_bytes(c: &Collection) -> Vec<u8> {
    let mut out = Vec::new();
    write_full_snapshot(c, &mut out, &SMALL_CHUNKS).unwrap();
    out
}

fn no_progress(_: RestoreProgress) {}

#[test]
fn full_snapshot_round_trip_with_progress() {
    let e = populated(40);
    let c = e.collection("c").unwrap();
    let mut out = Vec::new();
    let summary = write_full_snapshot(c, &mut out, &SMALL_CHUNKS).unwrap();
    assert!(summary.chunks > 3, "expected several chunks, got {}", summary.chunks);
    assert_eq!(summary.bytes, out.len() as u64);
    assert_eq!(read_header(&out[..]).unwrap(), summary.header);
    assert_eq!(verify_snapshot(&out[..]).unwrap(), summary);
    let mut reports = Vec::new();
    let restored = restore_full(&out[..], &mut |p| reports.push(p)).unwrap();
    assert_eq!(restored.digest(), c.digest());
    assert_eq!(restored.seq(), c.seq());
    assert_eq!(restored.name(), "c");
    assert_eq!(reports.len() as u64, summary.chunks);
    assert_eq!(reports.last().unwrap().entries_done, 40);
    // Graph chunks (after the points) advance chunks, not entries.
    assert!(reports.windows(2).all(|w| w[0].chunks_done < w[1].chunks_done));
    assert!(reports.windows(2).all(|w| w[0].entries_done <= w[1].entries_done));
    assert_eq!(reports[0].entries_total, 40);
    // The restored collection is searchable and equal point for point.
    for (id, p) in c.points() {
        assert_eq!(restored.point(id).unwrap(), p);
    }
    // Empty collections snapshot too.
    let empty = engine_with(config(3, Distance::Dot));
    let bytes = full_bytes(empty.collection("c").unwrap());
    assert_eq!(restore_full(&bytes[..], &mut no_progress).unwrap().len(), 0);
}

#[test]
fn incremental_chain_restores_the_same_digest() {
    let mut e = populated(30);
    let full = full_bytes(e.collection("c").unwrap());
    let base1 = read_header(&full[..]).unwrap().as_base();

    upsert(
        &mut e,
        vec![
            point(3, &[9.0, 9.0, 9.0], json!({"changed": true})),
            point(100, &[1.0, 0.0, 0.0], json!({})),
        ],
    );
    delete_ids(&mut e, &[4, 5, 100]);
    let mut inc1 = Vec::new();
    let s1 =
        write_incremental_snapshot(e.collection("c").unwrap(), base1, &mut inc1, &SMALL_CHUNKS)
            .unwrap();
    assert_eq!(s1.header.upsert_count, 1, "only point 3 is live and changed");
    assert_eq!(s1.header.deletion_count, 3);
    let digest1 = e.collection("c").unwrap().digest();

    // Re-upsert a deleted id, delete another: second link of the chain.
    upsert(&mut e, vec![point(4, &[0.0, 1.0, 0.0], json!({"back": 1}))]);
    delete_ids(&mut e, &[7]);
    let mut inc2 = Vec::new();
    write_incremental_snapshot(
        e.collection("c").unwrap(),
        s1.header.as_base(),
        &mut inc2,
        &SMALL_CHUNKS,
    )
    .unwrap();
    assert!(inc2.len() < full.len(), "incremental {} >= full {}", inc2.len(), full.len());

    let restored = restore_full(&full[..], &mut no_progress).unwrap();
    let restored = restore_incremental(&restored, &inc1[..], &mut no_progress).unwrap();
    assert_eq!(restored.digest(), digest1);
    let restored = restore_incremental(&restored, &inc2[..], &mut no_progress).unwrap();
    assert_eq!(restored.digest(), e.collection("c").unwrap().digest());
    assert_eq!(restored.seq(), e.collection("c").unwrap().seq());

    // Through the engine: a fresh node restores the chain (but not an incremental first).
    let mut node = VectorEngine::new();
    let err = node.restore_snapshot(&inc1[..], &mut no_progress).unwrap_err();
    assert!(matches!(err, SnapshotError::MissingBase(ref name) if name == "c"), "{err}");
    for file in [&full, &inc1, &inc2] {
        node.restore_snapshot(&file[..], &mut no_progress).unwrap();
    }
    assert_eq!(node.digest(), e.digest());
    // Applying a link twice or out of order is refused and leaves the node as it was.
    let err = node.restore_snapshot(&inc1[..], &mut no_progress).unwrap_err();
    assert!(matches!(err, SnapshotError::BaseMismatch(_)), "{err}");
    assert_eq!(node.digest(), e.digest());
    // A snapshot taken from a restored collection chains on too.
    let mut inc3 = Vec::new();
    write_incremental_snapshot(
        node.collection("c").unwrap(),
        s1.header.as_base(),
        &mut inc3,
        &SMALL_CHUNKS,
    )
    .unwrap();
}

#[test]
fn incremental_base_rules() {
    let mut e = populated(5);
    let full = full_bytes(e.collection("c").unwrap());
    let header = read_header(&full[..]).unwrap();
    assert_eq!(header.kind, SnapshotKind::Full);
    delete_ids(&mut e, &[1]);
    let c = e.collection_mut("c").unwrap();
    let future = crate::vector::snapshot::SnapshotBase { seq: 99, digest: [0; 32] };
    assert!(matches!(
        write_incremental_snapshot(c, future, Vec::new(), &SMALL_CHUNKS),
        Err(SnapshotError::BaseInFuture { base_seq: 99, .. })
    ));
    c.prune_deletion_log(c.seq());
    assert!(matches!(
        write_incremental_snapshot(c, header.as_base(), Vec::new(), &SMALL_CHUNKS),
        Err(SnapshotError::BaseTooOld { .. })
    ));
    // Restoring an incremental as a full snapshot, or a full as incremental, is refused.
    let mut inc = Vec::new();
    let current = e.collection("c").unwrap();
    write_incremental_snapshot(
        current,
        crate::vector::snapshot::SnapshotBase { seq: current.seq(), digest: current.digest() },
        &mut inc,
        &SMALL_CHUNKS,
    )
    .unwrap();
    assert!(matches!(
        restore_full(&inc[..], &mut no_progress),
        Err(SnapshotError::WrongKind { .. })
    ));
    assert!(matches!(
        restore_incremental(current, &full[..], &mut no_progress),
        Err(SnapshotError::WrongKind { .. })
    ));
    // A base with the right seq but different contents is refused.
    let other = populated(6);
    let mut other_c = Vec::new();
    write_full_snapshot(other.collection("c").unwrap(), &mut other_c, &SMALL_CHUNKS).unwrap();
    let mut wrong_base = restore_full(&other_c[..], &mut no_progress).unwrap();
    wrong_base.finish_restore(current.seq(), true);
    assert!(matches!(
        restore_incremental(&wrong_base, &inc[..], &mut no_progress),
        Err(SnapshotError::BaseMismatch(_))
    ));
}

/// Every single-bit flip anywhere in the file, and every truncation, is an error.
#[test]
fn every_bit_flip_and_truncation_is_detected() {
    let mut e = populated(12);
    let full = full_bytes(e.collection("c").unwrap());
    let base = read_header(&full[..]).unwrap().as_base();
    delete_ids(&mut e, &[2]);
    upsert(&mut e, vec![point(50, &[1.0, 1.0, 1.0], json!({"x": [1, 2]}))]);
    let mut inc = Vec::new();
    write_incremental_snapshot(e.collection("c").unwrap(), base, &mut inc, &SMALL_CHUNKS).unwrap();
    let base_collection = restore_full(&full[..], &mut no_progress).unwrap();

    for (name, file) in [("full", &full), ("incremental", &inc)] {
        let restore = |bytes: &[u8]| match name {
            "full" => restore_full(bytes, &mut no_progress).map(|c| c.digest()),
            _ => restore_incremental(&base_collection, bytes, &mut no_progress).map(|c| c.digest()),
        };
        assert!(restore(file).is_ok());
        for byte in 0..file.len() {
            let mut corrupt = file.clone();
            corrupt[byte] ^= 1 << (byte % 8);
            assert!(restore(&corrupt).is_err(), "{name}: flip in byte {byte} undetected");
            assert!(verify_snapshot(&corrupt[..]).is_err());
        }
        for len in 0..file.len() {
            let err = restore(&file[..len]).unwrap_err();
            assert!(
                matches!(err, SnapshotError::Truncated(_)),
                "{name}: truncation at {len} gave {err}"
            );
        }
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(restore(&longer), Err(SnapshotError::TrailingData)));
    }
}

#[test]
fn failed_engine_restore_leaves_the_previous_collection() {
    let mut e = populated(20);
    let good = full_bytes(e.collection("c").unwrap());
    let before = e.digest();
    upsert(&mut e, vec![point(1, &[5.0, 5.0, 5.0], json!({}))]);
    let current = e.digest();
    assert_ne!(before, current);
    let mut corrupt = good.clone();
    let at = corrupt.len() - 40; // inside the end section
    corrupt[at] ^= 0x10;
    let err = e.restore_snapshot(&corrupt[..], &mut no_progress).unwrap_err();
    assert!(
        matches!(err, SnapshotError::FileChecksum | SnapshotError::CountMismatch { .. }),
        "{err}"
    );
    assert_eq!(e.digest(), current, "failed restore must not touch the engine");
    let report = e.restore_snapshot(&good[..], &mut no_progress).unwrap();
    assert!(report.replaced);
    assert_eq!(e.digest(), before);
    assert!(matches!(SnapshotError::BadMagic.to_string().as_str(), s if s.contains("magic")));
}
