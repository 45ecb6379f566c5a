//! Restoring collection snapshots from untrusted bytes.
//!
//! Three ways in, because a snapshot is checksummed end to end and random bytes stop at the
//! magic: (1) an honest snapshot of a collection the fuzzer built, restored intact (round trip),
//! then damaged like a disk would (cut, flip, splice); (2) a forged file with valid checksums
//! around fuzzer-chosen entries, counts and header (a lying writer); (3) raw bytes, for the
//! preamble parser. The property in every case is the module's promise: a restore returns the
//! exact collection the header describes (its content digest) or a typed error, never a wrong
//! collection and never a panic.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vecraft_core::vector::collection::{Collection, CollectionConfig, Distance, PointsOp};
use vecraft_core::vector::engine::VectorEngine;
use vecraft_core::vector::payload::{Payload, PayloadValue};
use vecraft_core::vector::point::{PointId, PointStruct};
use vecraft_core::vector::snapshot::{
    SnapshotEntry, SnapshotKind, SnapshotOptions, read_header, restore_full, restore_incremental, verify_snapshot,
    write_full_snapshot, write_incremental_snapshot,
};
use vecraft_fuzz::snapshot_forge::{Lies, forge};

#[derive(Arbitrary, Debug)]
struct Point {
    id: u8,
    coords: [i8; 4],
    tag: Option<i8>,
}

#[derive(Arbitrary, Debug)]
enum Damage {
    Cut(u16),
    Flip { at: u16, bit: u8 },
    Splice { from: u16, to: u16, len: u8 },
}

#[derive(Arbitrary, Debug)]
enum Coord {
    Small(i8),
    Nan,
    Inf,
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
enum ForgedEntry {
    Point { id: u8, coords: Vec<Coord>, version: u8, tag: Option<i8> },
    Deleted { id: u8, seq: u8 },
}

#[derive(Arbitrary, Debug)]
enum Mode {
    Honest(Option<Damage>),
    Forged { incremental: bool, chunks: Vec<Vec<ForgedEntry>>, count_lie: u8, raw_lie: u8, end_lie: [u8; 3], seq_delta: i8 },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    dim: u8,
    distance: u8,
    base: Vec<Point>,
    later: Vec<Point>,
    deletes: Vec<u8>,
    mode: Mode,
}

fn point(p: &Point, dim: usize) -> PointStruct {
    let mut payload = Payload::new();
    if let Some(t) = p.tag {
        payload.insert("tag".into(), PayloadValue::Int(t as i64));
    }
    let vector = p.coords[..dim].iter().map(|&c| c as f32 + 0.5).collect();
    PointStruct { id: PointId::Num(p.id as u64 % 32), vector, payload }
}

fn build(name: &str, config: CollectionConfig, batches: &[&[Point]], deletes: &[u8]) -> Collection {
    let mut c = Collection::new(name, config).expect("valid name and config");
    let dim = config.vector_size as usize;
    for batch in batches {
        for p in batch.iter().take(24) {
            // Upserts can be rejected (e.g. a zero vector under Cosine): the collection is unchanged.
            let _ = c.apply(PointsOp::Upsert(vec![point(p, dim)]));
        }
    }
    if !deletes.is_empty() {
        let ids = deletes.iter().take(8).map(|&d| PointId::Num(d as u64 % 32)).collect();
        let _ = c.apply(PointsOp::Delete(vecraft_core::vector::collection::PointSelector::Ids(ids)));
    }
    c
}

fn damage(bytes: &mut Vec<u8>, d: Damage) {
    let len = bytes.len();
    match d {
        Damage::Cut(at) => bytes.truncate(at as usize % len),
        Damage::Flip { at, bit } => bytes[at as usize % len] ^= 1 << (bit % 8),
        Damage::Splice { from, to, len: n } => {
            let (from, to) = (from as usize % len, to as usize % len);
            let n = (n as usize).min(len - from).min(len - to);
            let chunk = bytes[from..from + n].to_vec();
            bytes[to..to + n].copy_from_slice(&chunk);
        }
    }
}

fn coord(c: &Coord) -> f32 {
    match c {
        Coord::Small(x) => *x as f32,
        Coord::Nan => f32::NAN,
        Coord::Inf => f32::INFINITY,
        Coord::Raw(bits) => f32::from_bits(*bits),
    }
}

fn forged_entry(e: ForgedEntry) -> SnapshotEntry {
    match e {
        ForgedEntry::Point { id, coords, version, tag } => {
            let mut payload = Payload::new();
            if let Some(t) = tag {
                payload.insert("tag".into(), PayloadValue::Int(t as i64));
            }
            let vector = coords.iter().take(6).map(coord).collect();
            SnapshotEntry::Point { id: PointId::Num(id as u64 % 32), vector, payload, version: version as u64 }
        }
        ForgedEntry::Deleted { id, seq } => SnapshotEntry::Deleted { id: PointId::Num(id as u64 % 32), seq: seq as u64 },
    }
}

fuzz_target!(|input: Input| {
    let dim = input.dim as usize % 4 + 1;
    let distance = [Distance::Cosine, Distance::Euclid, Distance::Dot][input.distance as usize % 3];
    let config = CollectionConfig::new(dim as u32, distance);
    let base = build("c", config, &[&input.base], &[]);
    let current = build("c", config, &[&input.base, &input.later], &input.deletes);
    let options = SnapshotOptions { chunk_target_bytes: 64, zstd_level: 1 };

    match input.mode {
        Mode::Honest(d) => {
            let mut full = Vec::new();
            write_full_snapshot(&current, &mut full, &options).expect("snapshot to memory");
            let mut base_full = Vec::new();
            let base_summary = write_full_snapshot(&base, &mut base_full, &options).expect("snapshot to memory");
            let mut inc = Vec::new();
            write_incremental_snapshot(&current, base_summary.header.as_base(), &mut inc, &options)
                .expect("incremental of a descendant");
            let restored = restore_full(&full[..], &mut |_| ()).expect("an intact snapshot restores");
            assert_eq!(restored.digest(), current.digest(), "full round trip");
            let restored = restore_incremental(&base, &inc[..], &mut |_| ()).expect("an intact incremental restores");
            assert_eq!(restored.digest(), current.digest(), "incremental round trip");
            verify_snapshot(&full[..]).expect("an intact snapshot verifies");
            if let Some(d) = d {
                damage(&mut full, d);
                if let Ok(c) = restore_full(&full[..], &mut |_| ()) {
                    assert_eq!(c.digest(), current.digest(), "a damaged full snapshot restored a different collection");
                }
                let _ = verify_snapshot(&full[..]);
                let _ = read_header(&full[..]);
                let mut engine = VectorEngine::new();
                let _ = engine.restore_snapshot(&full[..], &mut |_| ());
            }
        }
        Mode::Forged { incremental, chunks, count_lie, raw_lie, end_lie, seq_delta } => {
            let mut honest = Vec::new();
            let summary = write_full_snapshot(&current, &mut honest, &options).expect("snapshot to memory");
            let mut header = summary.header;
            header.seq = header.seq.wrapping_add_signed(seq_delta as i64 % 3);
            if incremental {
                let mut b = Vec::new();
                let bs = write_full_snapshot(&base, &mut b, &options).expect("snapshot to memory");
                header.kind = SnapshotKind::Incremental { base_seq: bs.header.seq, base_digest: bs.header.content_digest };
            }
            let chunks: Vec<Vec<SnapshotEntry>> =
                chunks.into_iter().take(6).map(|c| c.into_iter().take(16).map(forged_entry).collect()).collect();
            let total: usize = chunks.iter().map(Vec::len).sum();
            header.upsert_count = chunks.iter().flatten().filter(|e| matches!(e, SnapshotEntry::Point { .. })).count() as u64;
            header.deletion_count = total as u64 - header.upsert_count;
            let lies = Lies {
                entry_count_delta: (count_lie % 4) as u32 * (count_lie >> 7) as u32,
                raw_len_delta: (raw_lie % 4) as u32 * (raw_lie >> 7) as u32,
                end_delta: end_lie.map(|l| (l % 3) as u64 * (l >> 7) as u64),
            };
            let bytes = forge(&header, &chunks, lies);
            let restored = if incremental {
                restore_incremental(&base, &bytes[..], &mut |_| ())
            } else {
                restore_full(&bytes[..], &mut |_| ())
            };
            if let Ok(c) = restored {
                assert_eq!(c.digest(), header.content_digest, "restore accepted a collection its header does not describe");
                assert_eq!(c.len() as u64, header.point_count);
            }
            let mut engine = VectorEngine::new();
            let _ = engine.restore_snapshot(&bytes[..], &mut |_| ());
        }
        Mode::Raw(bytes) => {
            let _ = read_header(&bytes[..]);
            let _ = verify_snapshot(&bytes[..]);
            let _ = restore_full(&bytes[..], &mut |_| ());
            let _ = restore_incremental(&base, &bytes[..], &mut |_| ());
        }
    }
});
