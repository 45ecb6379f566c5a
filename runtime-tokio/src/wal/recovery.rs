//! Directory-level recovery: read every segment in order, tell a torn tail from corruption.
//!
//! The rule (protocol-aware recovery, FAST '18): bytes that fail their checksum with **no valid
//! record after them anywhere in the log** are a torn write of data that was never acknowledged
//! (the fsync that would have acknowledged it did not return), so they are cut off. A bad range
//! **followed by valid records** held acknowledged data — a later batch was only acknowledged
//! after it — so it is corruption: recovery keeps every valid record on both sides, reports the
//! damaged range with the seqs around it, and leaves the bytes in place for inspection. The node
//! then marks the groups whose records may be missing as needing repair from peers.
//!
//! Recovery reads whole segments into memory; segments are bounded by the roll size.

use super::format::{SEGMENT_HEADER_LEN, TMP_SUFFIX, parse_segment_file_name};
use super::scan::{BadRange, SegmentScan, scan_segment};
use super::{WalError, fsync_dir, io_err};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

/// One durable record handed back by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// The opaque payload given to `append`.
    pub payload: Vec<u8>,
}

/// What kind of damage a [`Corruption`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorruptionKind {
    /// Bytes that hold no valid record, with valid records after them.
    BadRecords,
    /// The segment header does not check out (its records are still read: the checksum seed
    /// comes from the file name).
    SegmentHeader,
    /// Consecutive valid records whose seqs are not consecutive (e.g. a missing segment file).
    SeqGap,
}

/// Damage to acknowledged data. Records with seqs strictly between `after_seq` and `before_seq`
/// may be lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// What was found.
    pub kind: CorruptionKind,
    /// Segment id holding the damage.
    pub segment: u64,
    /// Byte range within the segment file.
    pub start: u64,
    /// One past the last damaged byte.
    pub end: u64,
    /// Last valid seq before the damage (`None`: damage before any valid record).
    pub after_seq: Option<u64>,
    /// First valid seq after the damage (`None`: nothing valid follows, only possible for a
    /// damaged header of an otherwise empty segment).
    pub before_seq: Option<u64>,
}

/// An unacknowledged torn write that recovery cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Segment id.
    pub segment: u64,
    /// Offset where the cut was made.
    pub offset: u64,
    /// Non-zero bytes that were discarded (zero fill is not counted).
    pub bytes_cut: u64,
}

/// Everything recovery found. Nothing is dropped silently: every valid record is in `records`,
/// every discarded byte range is in `torn_tails` or `corruption`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// All valid records, in increasing seq order (before and after any corruption).
    pub records: Vec<Record>,
    /// Torn writes at the end of the log that were truncated.
    pub torn_tails: Vec<TornTail>,
    /// Damaged acknowledged data, in log order.
    pub corruption: Vec<Corruption>,
    /// The seq the next appended record gets.
    pub next_seq: u64,
}

impl Recovery {
    /// True if the log was intact (a torn tail is not damage: it was never acknowledged).
    pub fn is_intact(&self) -> bool {
        self.corruption.is_empty()
    }

    /// Total non-zero bytes cut from torn tails.
    pub fn bytes_cut(&self) -> u64 {
        self.torn_tails.iter().map(|t| t.bytes_cut).sum()
    }
}

/// A segment file found in the WAL directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Segment id (monotonic).
    pub id: u64,
    /// Seq of its first record.
    pub first_seq: u64,
    /// Full path.
    pub path: PathBuf,
}

/// Lists segments in id order, removing leftovers of interrupted segment creation.
pub fn list_segments(dir: &Path) -> Result<Vec<SegmentInfo>, WalError> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list wal directory"))? {
        let path = entry.map_err(io_err("list wal directory"))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(TMP_SUFFIX) {
            fs::remove_file(&path).map_err(io_err("remove temporary segment"))?;
            continue;
        }
        match parse_segment_file_name(&path) {
            Some((id, first_seq)) => segs.push(SegmentInfo {
                id,
                first_seq,
                path,
            }),
            None => {
                tracing::warn!(path = %path.display(), "ignoring unknown file in wal directory")
            }
        }
    }
    segs.sort_by_key(|s| s.id);
    Ok(segs)
}

/// Recovers the log in `dir`: truncates torn tails, deletes trailing segments that hold nothing
/// valid, and reports everything else. Returns the report and the segments that remain.
pub fn recover(dir: &Path) -> Result<(Recovery, Vec<SegmentInfo>), WalError> {
    let segs = list_segments(dir)?;
    let mut datas = Vec::with_capacity(segs.len());
    for seg in &segs {
        datas.push(fs::read(&seg.path).map_err(io_err("read segment"))?);
    }
    let scans: Vec<SegmentScan> = segs
        .iter()
        .zip(&datas)
        .map(|(s, d)| scan_segment(d, s.id, s.first_seq))
        .collect();
    // Index of the last segment holding a valid record: damage at or after its last record is
    // a torn tail, damage before it is corruption.
    let last_with_records = scans.iter().rposition(|s| !s.records.is_empty());
    let keep = last_with_records.map_or(0, |i| i + 1);

    let mut rec = Recovery::default();
    let mut pending: Vec<usize> = Vec::new(); // corruption entries waiting for their before_seq
    let mut last_seq: Option<u64> = None;
    for (i, ((seg, data), scan)) in segs.iter().zip(&datas).zip(&scans).enumerate().take(keep) {
        let report = |rec: &mut Recovery, pending: &mut Vec<usize>, kind, range: BadRange, last| {
            pending.push(rec.corruption.len());
            rec.corruption.push(Corruption {
                kind,
                segment: seg.id,
                start: range.start as u64,
                end: range.end as u64,
                after_seq: last,
                before_seq: None,
            });
        };
        if !scan.header_ok {
            report(
                &mut rec,
                &mut pending,
                CorruptionKind::SegmentHeader,
                BadRange {
                    start: 0,
                    end: SEGMENT_HEADER_LEN,
                },
                last_seq,
            );
        }
        let mut bad = scan.interior_bad.iter().peekable();
        for raw in &scan.records {
            while let Some(b) = bad.next_if(|b| b.end <= raw.payload_start) {
                report(
                    &mut rec,
                    &mut pending,
                    CorruptionKind::BadRecords,
                    *b,
                    last_seq,
                );
            }
            if let Some(prev) = last_seq
                && raw.seq != prev.saturating_add(1)
                && pending.is_empty()
            {
                let at = BadRange {
                    start: raw.payload_start,
                    end: raw.payload_start,
                };
                report(&mut rec, &mut pending, CorruptionKind::SeqGap, at, last_seq);
            }
            for idx in pending.drain(..) {
                rec.corruption[idx].before_seq = Some(raw.seq);
            }
            let payload = data[raw.payload_start..raw.end()].to_vec();
            rec.records.push(Record {
                seq: raw.seq,
                payload,
            });
            last_seq = Some(raw.seq);
        }
        if let Some(tail) = scan.trailing_bad {
            if i + 1 < keep {
                report(
                    &mut rec,
                    &mut pending,
                    CorruptionKind::BadRecords,
                    tail,
                    last_seq,
                );
            } else {
                cut_torn_tail(seg, tail, &mut rec)?;
            }
        }
    }
    // Segments after the last valid record hold nothing acknowledged: any bytes in them are torn.
    for (seg, scan) in segs.iter().zip(&scans).skip(keep) {
        if let Some(tail) = scan.trailing_bad {
            rec.torn_tails.push(TornTail {
                segment: seg.id,
                offset: tail.start as u64,
                bytes_cut: (tail.end - tail.start) as u64,
            });
            tracing::warn!(
                segment = seg.id,
                bytes = tail.end - tail.start,
                "wal: torn tail in trailing segment"
            );
        }
        fs::remove_file(&seg.path).map_err(io_err("remove trailing segment"))?;
    }
    if keep < segs.len() {
        fsync_dir(dir)?;
    }
    let max_first = segs.iter().map(|s| s.first_seq).max().unwrap_or(1);
    rec.next_seq = last_seq
        .map_or(1, |s| s.saturating_add(1))
        .max(max_first)
        .max(1);
    for c in &rec.corruption {
        tracing::error!(?c, "wal: corruption of acknowledged data");
    }
    let mut remaining = segs;
    remaining.truncate(keep);
    Ok((rec, remaining))
}

/// Cuts a torn tail off the file (the file is then shorter than its preallocation; the writer
/// never appends to a recovered segment, it starts a new one).
fn cut_torn_tail(seg: &SegmentInfo, tail: BadRange, rec: &mut Recovery) -> Result<(), WalError> {
    let file = OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .map_err(io_err("open segment for truncation"))?;
    file.set_len(tail.start as u64)
        .map_err(io_err("truncate torn tail"))?;
    file.sync_all().map_err(io_err("sync truncated segment"))?;
    let cut = (tail.end - tail.start) as u64;
    tracing::warn!(
        segment = seg.id,
        offset = tail.start,
        bytes = cut,
        "wal: truncated torn tail"
    );
    rec.torn_tails.push(TornTail {
        segment: seg.id,
        offset: tail.start as u64,
        bytes_cut: cut,
    });
    Ok(())
}
