//! WAL recovery on real files: torn tails at every offset, corruption of every byte of earlier
//! records, zero preallocation, multiple segments, prefix deletion, missing segments.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use vecraft_runtime::wal::format::{RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use vecraft_runtime::wal::{CorruptionKind, Recovery, Wal, WalOptions};

fn payload(seq: u64) -> Vec<u8> {
    // Varying lengths (including 0 and multiples of 256) and non-trivial content.
    let len = [0usize, 1, 7, 40, 256, 3][(seq % 6) as usize];
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8) | 1)
        .collect()
}

fn opts(segment_size: u64, preallocate: bool) -> WalOptions {
    WalOptions {
        segment_size,
        preallocate,
        ..WalOptions::default()
    }
}

/// Writes seqs 1..=n in batches of `batch` and returns the directory's segment files.
fn write_log(dir: &Path, n: u64, batch: u64, o: WalOptions) -> Vec<PathBuf> {
    let (mut wal, rec) = Wal::open(dir, o).unwrap();
    assert!(rec.records.is_empty());
    let mut seq = 1;
    while seq <= n {
        let end = (seq + batch).min(n + 1);
        let payloads: Vec<Vec<u8>> = (seq..end).map(payload).collect();
        assert_eq!(wal.append_batch(&payloads).unwrap(), Some(end - 1));
        seq = end;
    }
    drop(wal);
    segment_files(dir)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn seqs(rec: &Recovery) -> Vec<u64> {
    rec.records.iter().map(|r| r.seq).collect()
}

fn assert_payloads(rec: &Recovery) {
    for r in &rec.records {
        assert_eq!(r.payload, payload(r.seq), "payload of seq {}", r.seq);
    }
}

/// Byte offset of each record of a single-segment log holding seqs 1..=n.
fn record_offsets(n: u64) -> Vec<(usize, usize)> {
    let mut pos = SEGMENT_HEADER_LEN;
    (1..=n)
        .map(|s| {
            let start = pos;
            pos += RECORD_HEADER_LEN + payload(s).len();
            (start, pos)
        })
        .collect()
}

/// The segment holding seqs 1..=n (the first file; later ones are empty active segments).
fn data_segment(files: &[PathBuf]) -> PathBuf {
    files[0].clone()
}

#[test]
fn clean_reopen_with_preallocation_and_continuation() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 20, 3, opts(1 << 20, true));
    let (mut wal, rec) = Wal::open(dir.path(), opts(1 << 20, true)).unwrap();
    assert_eq!(seqs(&rec), (1..=20).collect::<Vec<_>>());
    assert_payloads(&rec);
    assert!(rec.is_intact() && rec.torn_tails.is_empty(), "{rec:?}");
    assert_eq!(rec.next_seq, 21);
    assert_eq!(wal.append_batch(&[payload(21)]).unwrap(), Some(21));
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), opts(1 << 20, true)).unwrap();
    assert_eq!(seqs(&rec), (1..=21).collect::<Vec<_>>());
    assert!(rec.is_intact() && rec.torn_tails.is_empty());
}

#[test]
fn torn_tail_at_every_offset_of_last_record() {
    // seq 6 has a 0-byte payload, seq 4 a 256-byte one: both end the log in some case.
    for last in [6u64, 4, 5] {
        let offsets = record_offsets(last);
        let (start, end) = offsets[last as usize - 1];
        for cut in start..end {
            for prealloc in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let files = write_log(dir.path(), last, 2, opts(1 << 16, prealloc));
                let seg = data_segment(&files);
                let original = fs::read(&seg).unwrap();
                let kept_nonzero = original[start..cut].iter().any(|&b| b != 0);
                // Zeroing bytes that were already zero (a record ending in zeros) tears nothing.
                if prealloc && original[cut..end].iter().all(|&b| b == 0) {
                    continue;
                }
                let f = OpenOptions::new().write(true).open(&seg).unwrap();
                if prealloc {
                    // A torn write into preallocated space: the tail of the record is still zero.
                    f.write_all_at(&vec![0u8; end - cut], cut as u64).unwrap();
                } else {
                    f.set_len(cut as u64).unwrap();
                }
                drop(f);
                let (mut wal, rec) = Wal::open(dir.path(), opts(1 << 16, prealloc)).unwrap();
                assert_eq!(
                    seqs(&rec),
                    (1..last).collect::<Vec<_>>(),
                    "cut {cut} prealloc {prealloc}"
                );
                assert_payloads(&rec);
                assert!(rec.is_intact(), "cut {cut}: {rec:?}");
                assert!(rec.bytes_cut() <= (cut - start) as u64);
                // Kept bytes that are all zero look like (and are) clean zero fill.
                if kept_nonzero {
                    assert_eq!(rec.torn_tails.len(), 1, "cut {cut}");
                    assert_eq!(rec.torn_tails[0].offset, start as u64);
                }
                assert_eq!(rec.next_seq, last);
                // The log continues with the torn seq re-used, and reopens cleanly.
                assert_eq!(wal.append_batch(&[payload(last)]).unwrap(), Some(last));
                drop(wal);
                let (_, rec) = Wal::open(dir.path(), opts(1 << 16, prealloc)).unwrap();
                assert_eq!(seqs(&rec), (1..=last).collect::<Vec<_>>());
                assert!(rec.is_intact() && rec.torn_tails.is_empty(), "{rec:?}");
            }
        }
    }
}

#[test]
fn flipped_byte_in_every_earlier_record_is_corruption_not_truncation() {
    let n = 6u64;
    let offsets = record_offsets(n);
    let dir = tempfile::tempdir().unwrap();
    let pristine = write_log(dir.path(), n, 3, opts(1 << 16, true));
    let seg = data_segment(&pristine);
    let original = fs::read(&seg).unwrap();
    for victim in 1..n {
        let (start, end) = offsets[victim as usize - 1];
        for pos in start..end {
            let work = tempfile::tempdir().unwrap();
            let mut bytes = original.clone();
            bytes[pos] ^= 0x40;
            fs::write(work.path().join(seg.file_name().unwrap()), &bytes).unwrap();
            let (_, rec) = Wal::open(work.path(), opts(1 << 16, true)).unwrap();
            let expected: Vec<u64> = (1..=n).filter(|&s| s != victim).collect();
            assert_eq!(seqs(&rec), expected, "victim {victim} pos {pos}");
            assert_payloads(&rec);
            assert_eq!(
                rec.corruption.len(),
                1,
                "victim {victim} pos {pos}: {rec:?}"
            );
            let c = &rec.corruption[0];
            assert_eq!(c.kind, CorruptionKind::BadRecords);
            assert_eq!((c.start, c.end), (start as u64, end as u64));
            assert_eq!(c.after_seq, (victim > 1).then(|| victim - 1));
            assert_eq!(c.before_seq, Some(victim + 1));
            assert!(rec.torn_tails.is_empty());
            assert_eq!(rec.next_seq, n + 1);
        }
    }
}

#[test]
fn records_span_segments_and_damage_at_a_segment_end_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny segments: every batch of 2 rolls.
    let files = write_log(dir.path(), 30, 2, opts(600, true));
    assert!(files.len() >= 4, "{files:?}");
    let (_, rec) = Wal::open(dir.path(), opts(600, true)).unwrap();
    assert_eq!(seqs(&rec), (1..=30).collect::<Vec<_>>());
    assert_payloads(&rec);
    assert!(rec.is_intact());

    // Damage the last record of the first segment: valid records follow in later segments.
    let first = &files[0];
    let data = fs::read(first).unwrap();
    let end = data.iter().rposition(|&b| b != 0).unwrap();
    let f = OpenOptions::new().write(true).open(first).unwrap();
    f.write_all_at(&[data[end] ^ 0xff], end as u64).unwrap();
    drop(f);
    let (_, rec) = Wal::open(dir.path(), opts(600, true)).unwrap();
    assert_eq!(rec.corruption.len(), 1, "{rec:?}");
    let c = &rec.corruption[0];
    let lost = c.after_seq.unwrap() + 1;
    assert_eq!(c.before_seq, Some(lost + 1));
    assert_eq!(
        seqs(&rec),
        (1..=30).filter(|&s| s != lost).collect::<Vec<_>>()
    );
    assert!(rec.torn_tails.is_empty());
}

#[test]
fn missing_middle_segment_is_a_seq_gap() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_log(dir.path(), 30, 2, opts(600, false));
    fs::remove_file(&files[2]).unwrap();
    let (_, rec) = Wal::open(dir.path(), opts(600, false)).unwrap();
    assert_eq!(rec.corruption.len(), 1, "{rec:?}");
    assert_eq!(rec.corruption[0].kind, CorruptionKind::SeqGap);
    let (after, before) = (
        rec.corruption[0].after_seq.unwrap(),
        rec.corruption[0].before_seq.unwrap(),
    );
    assert!(before > after + 1);
    assert_eq!(rec.records.len() as u64, 30 - (before - after - 1));
}

#[test]
fn damaged_segment_header_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_log(dir.path(), 10, 10, opts(1 << 16, true));
    let f = OpenOptions::new().write(true).open(&files[0]).unwrap();
    f.write_all_at(b"X", 0).unwrap();
    drop(f);
    let (_, rec) = Wal::open(dir.path(), opts(1 << 16, true)).unwrap();
    assert_eq!(seqs(&rec), (1..=10).collect::<Vec<_>>());
    assert_eq!(rec.corruption.len(), 1);
    assert_eq!(rec.corruption[0].kind, CorruptionKind::SegmentHeader);
    assert_eq!(
        (rec.corruption[0].after_seq, rec.corruption[0].before_seq),
        (None, Some(1))
    );
}

#[test]
fn garbage_after_zero_fill_is_torn_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_log(dir.path(), 5, 5, opts(4096, true));
    let f = OpenOptions::new().write(true).open(&files[0]).unwrap();
    f.write_all_at(&[0xAB; 10], 3000).unwrap();
    drop(f);
    let (_, rec) = Wal::open(dir.path(), opts(4096, true)).unwrap();
    assert_eq!(seqs(&rec), (1..=5).collect::<Vec<_>>());
    assert!(rec.is_intact());
    assert_eq!(rec.bytes_cut(), 3010 - record_offsets(5)[4].1 as u64);
}

#[test]
fn truncate_prefix_deletes_whole_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(600, true);
    let (mut wal, _) = Wal::open(dir.path(), o.clone()).unwrap();
    for s in (1..=40u64).step_by(2) {
        wal.append_batch(&[payload(s), payload(s + 1)]).unwrap();
    }
    let before = wal.segments();
    assert!(before.len() > 5);
    let cut = before[3].1; // first seq of the 4th segment
    assert_eq!(wal.truncate_prefix(cut).unwrap(), 3);
    assert_eq!(wal.segments(), before[3..].to_vec());
    // Nothing that holds seqs >= cut was deleted, and the live segment never goes.
    assert_eq!(wal.truncate_prefix(cut).unwrap(), 0);
    drop(wal);
    let (mut wal, rec) = Wal::open(dir.path(), o.clone()).unwrap();
    assert_eq!(seqs(&rec), (cut..=40).collect::<Vec<_>>());
    assert!(rec.is_intact(), "{rec:?}");
    // Truncating beyond everything leaves only the active segment, and seqs keep counting.
    wal.truncate_prefix(u64::MAX).unwrap();
    assert_eq!(wal.segments().len(), 1);
    drop(wal);
    let (wal, rec) = Wal::open(dir.path(), o).unwrap();
    assert!(rec.records.is_empty() && rec.is_intact());
    assert_eq!(wal.next_seq(), 41);
}

#[test]
fn oversized_record_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let o = WalOptions {
        max_record_len: 8,
        ..opts(4096, false)
    };
    let (mut wal, _) = Wal::open(dir.path(), o.clone()).unwrap();
    let err = wal.append_batch(&[vec![1u8; 4], vec![2u8; 9]]).unwrap_err();
    assert!(matches!(
        err,
        vecraft_runtime::wal::WalError::RecordTooLarge { len: 9, max: 8 }
    ));
    assert_eq!(wal.append_batch(&[vec![1u8; 8]]).unwrap(), Some(1));
    drop(wal);
    let (_, rec) = Wal::open(dir.path(), o).unwrap();
    assert_eq!(seqs(&rec), vec![1]);
}

#[test]
fn unknown_files_and_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3, 3, opts(4096, false));
    fs::write(
        dir.path()
            .join("00000000000000000099-00000000000000000004.wal.tmp"),
        b"junk",
    )
    .unwrap();
    fs::write(dir.path().join("README"), b"not a segment").unwrap();
    let (_, rec) = Wal::open(dir.path(), opts(4096, false)).unwrap();
    assert_eq!(seqs(&rec), vec![1, 2, 3]);
    assert!(rec.is_intact());
    assert!(
        !dir.path()
            .join("00000000000000000099-00000000000000000004.wal.tmp")
            .exists()
    );
}
