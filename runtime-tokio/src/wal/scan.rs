//! Scanning one segment's bytes: which records are valid, which byte ranges are bad.
//!
//! This is a pure function of the bytes (no I/O) so that it can be fuzzed and tested on any
//! content. It does not decide "torn tail" versus "corruption": that depends on whether valid
//! records exist *after* a bad range, possibly in a later segment, which only the directory-level
//! recovery ([`super::recovery`]) knows.
//!
//! After a bad record the scanner resynchronises by looking for a valid record at every later
//! byte offset. A candidate must checksum under this segment's seed and carry a seq above the last
//! good one but no further ahead than the skipped bytes could have held records, which makes a
//! random match astronomically unlikely and keeps the search cheap on garbage.

use super::format::{
    RECORD_HEADER_LEN, RawRecord, SEGMENT_HEADER_LEN, SegmentHeader, read_record_at, segment_seed,
};

/// A byte range that holds no valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadRange {
    /// First bad byte.
    pub start: usize,
    /// One past the last bad byte (the next valid record, or the end of non-zero data).
    pub end: usize,
}

/// Result of scanning one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    /// Whether the segment header checked out and matched the file name.
    pub header_ok: bool,
    /// Valid records in file order (strictly increasing seqs).
    pub records: Vec<RawRecord>,
    /// Bad ranges followed by a valid record of this segment.
    pub interior_bad: Vec<BadRange>,
    /// A bad range after the last valid record (nothing valid follows in this segment).
    pub trailing_bad: Option<BadRange>,
    /// Offset just past the last valid record (or the header): where appending would resume.
    pub logical_end: usize,
}

impl SegmentScan {
    /// True if the segment holds neither records nor damage (header plus zeros).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.interior_bad.is_empty() && self.trailing_bad.is_none()
    }
}

/// Scans the full contents `data` of segment `id` whose first record should have seq `first_seq`
/// (both from the file name). Never panics.
pub fn scan_segment(data: &[u8], id: u64, first_seq: u64) -> SegmentScan {
    let seed = segment_seed(id);
    let header_ok = SegmentHeader::decode(data) == Some(SegmentHeader { id, first_seq });
    let mut scan = SegmentScan {
        header_ok,
        records: Vec::new(),
        interior_bad: Vec::new(),
        trailing_bad: None,
        logical_end: SEGMENT_HEADER_LEN.min(data.len()),
    };
    if data.len() < SEGMENT_HEADER_LEN {
        // A short file cannot even hold the header; every byte of it is suspect unless zero.
        if data.iter().any(|&b| b != 0) {
            scan.trailing_bad = Some(BadRange {
                start: 0,
                end: data.len(),
            });
        }
        scan.logical_end = 0;
        return scan;
    }
    let nonzero_end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let mut pos = SEGMENT_HEADER_LEN;
    let mut last_seq: Option<u64> = None;
    while pos < nonzero_end {
        let expected = last_seq.map_or(first_seq, |s| s.saturating_add(1));
        if let Some(rec) = read_record_at(data, pos, seed, expected..=expected) {
            pos = rec.end();
            last_seq = Some(rec.seq);
            scan.records.push(rec);
            continue;
        }
        match resync(data, pos, nonzero_end, seed, expected) {
            Some(rec) => {
                scan.interior_bad.push(BadRange {
                    start: pos,
                    end: rec.payload_start - RECORD_HEADER_LEN,
                });
                pos = rec.end();
                last_seq = Some(rec.seq);
                scan.records.push(rec);
            }
            None => {
                scan.trailing_bad = Some(BadRange {
                    start: pos,
                    end: nonzero_end,
                });
                break;
            }
        }
    }
    scan.logical_end = scan
        .records
        .last()
        .map_or(SEGMENT_HEADER_LEN, RawRecord::end);
    scan
}

/// Finds the first valid record after the bad byte at `bad_start`, with seq at least `expected`
/// and at most what the skipped bytes could have held.
fn resync(
    data: &[u8],
    bad_start: usize,
    nonzero_end: usize,
    seed: u32,
    expected: u64,
) -> Option<RawRecord> {
    // A record may end in zero bytes (high bytes of its seq, an empty payload), so candidates
    // start before `nonzero_end` but may extend past it.
    let mut q = bad_start + 1;
    while q < nonzero_end && q + RECORD_HEADER_LEN <= data.len() {
        // Every skipped record took at least RECORD_HEADER_LEN bytes of [bad_start, q).
        let max_skipped = ((q - bad_start) / RECORD_HEADER_LEN) as u64;
        let hi = expected.saturating_add(max_skipped);
        if let Some(rec) = read_record_at(data, q, seed, expected..=hi) {
            return Some(rec);
        }
        q += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::format::encode_record;
    use super::*;

    fn segment(id: u64, first: u64, payloads: &[&[u8]], prealloc: usize) -> Vec<u8> {
        let mut data = SegmentHeader {
            id,
            first_seq: first,
        }
        .encode()
        .to_vec();
        for (i, p) in payloads.iter().enumerate() {
            encode_record(&mut data, segment_seed(id), first + i as u64, p);
        }
        data.resize(data.len() + prealloc, 0);
        data
    }

    #[test]
    fn clean_segment_with_zero_fill() {
        let data = segment(1, 10, &[b"a", b"", &[0u8; 40]], 4096);
        let scan = scan_segment(&data, 1, 10);
        assert!(scan.header_ok);
        assert_eq!(
            scan.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![10, 11, 12]
        );
        assert_eq!(scan.trailing_bad, None);
        assert!(scan.interior_bad.is_empty());
        assert_eq!(scan.logical_end, data.len() - 4096);
    }

    #[test]
    fn interior_damage_resyncs() {
        let mut data = segment(2, 1, &[b"one", b"two", b"three"], 64);
        let second = SEGMENT_HEADER_LEN + RECORD_HEADER_LEN + 3;
        data[second + RECORD_HEADER_LEN] ^= 1; // payload of record 2
        let scan = scan_segment(&data, 2, 1);
        assert_eq!(
            scan.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(
            scan.interior_bad,
            vec![BadRange {
                start: second,
                end: second + RECORD_HEADER_LEN + 3
            }]
        );
        assert_eq!(scan.trailing_bad, None);
    }

    #[test]
    fn wrong_segment_id_validates_nothing() {
        let data = segment(3, 1, &[b"x", b"y"], 0);
        let scan = scan_segment(&data, 4, 1);
        assert!(!scan.header_ok);
        assert!(scan.records.is_empty());
        assert!(scan.trailing_bad.is_some());
    }

    #[test]
    fn short_and_empty_files() {
        assert!(scan_segment(&[], 1, 1).is_empty());
        assert!(scan_segment(&[0; 10], 1, 1).is_empty());
        assert_eq!(
            scan_segment(&[1; 10], 1, 1).trailing_bad,
            Some(BadRange { start: 0, end: 10 })
        );
    }
}
