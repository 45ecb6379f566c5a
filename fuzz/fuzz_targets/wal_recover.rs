//! Write-ahead log recovery from damaged disks.
//!
//! Random bytes almost never pass the 128-bit frame checksum, so the record decoder and replay
//! went unfuzzed. This target builds frames with valid checksums (`encode_wal_frame`) around
//! arbitrary records — hostile indexes, terms and groups included — and then damages the file
//! the ways disks do: cut it, flip a bit, splice a stretch of bytes over another, zero a range.
//! Checked: a pure cut is never reported as corruption (a torn write would otherwise stop the
//! node voting for good); the valid prefix re-reads identically and its records are exactly the
//! written ones; the undamaged file round-trips; `recover` and `replay` never panic and a damaged
//! recovery is flagged damaged.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vecraft_core::raft::{
    DurableState, Entry, EntryPayload, HardState, PersistRecord, WalTail, decode_wal, encode_wal_frame,
};

/// A number that is usually small and in order, sometimes at the edges of u64.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Num {
    Small(u8),
    Max,
    Huge(u64),
}

impl Num {
    fn get(self) -> u64 {
        match self {
            Num::Small(n) => n as u64,
            Num::Max => u64::MAX,
            Num::Huge(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Record {
    group: bool,
    hard_state: Option<(Num, Option<u8>)>,
    first: Num,
    /// Per entry: index step from the previous one (1 = contiguous), term, payload.
    entries: Vec<(u8, Num, Option<Vec<u8>>)>,
}

#[derive(Arbitrary, Debug)]
enum Damage {
    None,
    Cut(u16),
    Flip { at: u16, bit: u8 },
    Splice { from: u16, to: u16, len: u8 },
    Zero { at: u16, len: u8 },
    Garbage(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    records: Vec<Record>,
    damage: Damage,
}

fn build(r: Record) -> PersistRecord {
    let mut index = r.first.get();
    let entries = r
        .entries
        .into_iter()
        .take(8)
        .enumerate()
        .map(|(k, (step, term, payload))| {
            if k > 0 {
                index = index.wrapping_add(if step < 200 { 1 } else { step as u64 });
            }
            let payload = payload.map_or(EntryPayload::Noop, |p| EntryPayload::Command(p.into()));
            Entry { index, term: term.get(), payload }
        })
        .collect();
    PersistRecord {
        group: if r.group { 1 } else { 2 },
        hard_state: r.hard_state.map(|(t, v)| HardState { term: t.get(), vote: v.map(u64::from) }),
        entries,
        snapshot: None,
    }
}

fuzz_target!(|input: Input| {
    let written: Vec<PersistRecord> = input.records.into_iter().take(16).map(build).collect();
    let frames: Vec<Vec<u8>> = written.iter().map(encode_wal_frame).collect();
    let clean: Vec<u8> = frames.concat();
    let boundaries: Vec<usize> = frames.iter().scan(0, |end, f| {
        *end += f.len();
        Some(*end)
    }).collect();

    let whole = decode_wal(&clean);
    assert_eq!(whole.records, written, "an undamaged log re-reads exactly");
    assert_eq!(whole.tail, WalTail::Clean);

    let mut bytes = clean.clone();
    let len = bytes.len();
    let pick = |x: u16| if len == 0 { 0 } else { x as usize % len };
    let mut is_cut = false;
    match input.damage {
        Damage::None => {}
        Damage::Cut(at) => {
            bytes.truncate(pick(at));
            is_cut = true;
        }
        Damage::Flip { at, bit } if len > 0 => bytes[pick(at)] ^= 1 << (bit % 8),
        Damage::Splice { from, to, len: n } if len > 0 => {
            let (from, to) = (pick(from), pick(to));
            let n = (n as usize).min(len - from).min(len - to);
            let chunk = clean[from..from + n].to_vec();
            bytes[to..to + n].copy_from_slice(&chunk);
        }
        Damage::Zero { at, len: n } if len > 0 => {
            let at = pick(at);
            let end = (at + n as usize).min(len);
            bytes[at..end].fill(0);
        }
        Damage::Garbage(g) => bytes.extend_from_slice(&g[..g.len().min(64)]),
        _ => {}
    }

    let replay = decode_wal(&bytes);
    assert_eq!(replay.valid_len + replay.discarded_tail, bytes.len());
    // The valid prefix re-reads identically on its own, and cleanly.
    let again = decode_wal(&bytes[..replay.valid_len]);
    let n = again.records.len();
    assert_eq!(again.records, replay.records[..n]);
    assert_eq!(again.valid_len, replay.valid_len);
    assert_eq!(again.tail, WalTail::Clean);
    // Where the prefix is untouched written bytes, it is exactly the first written frames.
    if replay.valid_len <= clean.len() && bytes[..replay.valid_len] == clean[..replay.valid_len] {
        let end = if n == 0 { 0 } else { boundaries[n - 1] };
        assert_eq!(replay.valid_len, end, "valid prefix must end at a frame boundary");
        assert_eq!(again.records, written[..n]);
    }
    if is_cut {
        assert!(!matches!(replay.tail, WalTail::Corrupt { .. }), "a cut reported as corruption: {:?}", replay.tail);
        assert_eq!(replay.records, written[..replay.records.len()], "a cut keeps exactly a prefix");
    }

    for group in [1, 2, 3] {
        let state = DurableState::recover(&replay, group);
        if matches!(replay.tail, WalTail::Corrupt { .. }) {
            assert!(state.damaged, "recovery after corruption must flag the node damaged");
        }
        for (k, e) in state.entries.iter().enumerate() {
            assert_eq!(e.index, k as u64 + 1, "recovered log must be contiguous from 1");
        }
        assert!(state.hard_state.term >= state.entries.iter().map(|e| e.term).max().unwrap_or(0) || !state.damaged);
    }
    let _ = DurableState::replay(&replay.records);
});
