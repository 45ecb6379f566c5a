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
//!
//! Records may carry a snapshot record (compaction or install: a log base, perhaps a reset, and a
//! header with a membership that may be invalid), so replay's base handling is fuzzed too: the
//! recovered log must be contiguous from its base, the base never beyond the recorded snapshot
//! unless the record said so, and a snapshot the driver holds adopted on top never panics.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vecraft_core::raft::{
    DurableState, Entry, EntryPayload, HardState, Membership, PersistRecord, SnapshotMeta, SnapshotRecord, WalTail,
    decode_wal, encode_wal_frame,
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
    snapshot: Option<Snap>,
}

/// A snapshot record: the snapshot's index and term, how far behind it the log base is, whether
/// the log was reset, and whether its membership is valid.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Snap {
    index: Num,
    term: Num,
    base_back: u8,
    reset: bool,
    valid_membership: bool,
}

impl Snap {
    fn meta(self) -> SnapshotMeta {
        let membership = if self.valid_membership { Membership::simple([1, 2, 3]) } else { Membership::default() };
        let index = self.index.get();
        SnapshotMeta::for_bytes(index, self.term.get(), membership, &index.to_le_bytes())
    }

    fn record(self) -> SnapshotRecord {
        let meta = self.meta();
        let log_base = meta.index.saturating_sub(self.base_back as u64 % 4);
        SnapshotRecord { log_base, log_base_term: meta.term, reset: self.reset, meta }
    }
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
    /// A snapshot the driver holds (perhaps newer than any the WAL recorded), adopted at start.
    held: Option<Snap>,
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
        snapshot: r.snapshot.map(Snap::record),
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
        check_contiguous(&state, "recovered");
        assert!(state.hard_state.term >= state.max_term() || !state.damaged, "damaged recovery below a seen term");
        // A compacted log always knows the snapshot that holds its prefix.
        assert!(state.base_index == 0 || state.snapshot.is_some(), "log base {} without a snapshot", state.base_index);
        if let Some(held) = input.held {
            let mut adopted = state.clone();
            let meta = held.meta();
            adopted.adopt_snapshot(meta.clone());
            check_contiguous(&adopted, "adopted");
            // Whatever the WAL said, the node starts with a log reaching the snapshot it holds.
            assert!(adopted.last_index() >= meta.index, "log ends at {} before the held snapshot {}", adopted.last_index(), meta.index);
            assert!(adopted.snapshot.as_ref().is_some_and(|m| m.index >= meta.index), "held snapshot not adopted");
        }
    }
    let _ = DurableState::replay(&replay.records);
});

/// The recovered log is contiguous from its base (the index after the compacted prefix).
fn check_contiguous(state: &DurableState, what: &str) {
    for (k, e) in state.entries.iter().enumerate() {
        assert_eq!(Some(e.index), state.base_index.checked_add(k as u64 + 1), "{what} log must be contiguous from its base");
    }
}
