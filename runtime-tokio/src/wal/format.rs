//! The on-disk format of WAL segments: file names, the segment header and the record framing.
//!
//! ```text
//! segment file  = header (32 B) ++ record* ++ zero fill (preallocation)
//! header        = magic "VCRFTWAL" | version u16 | reserved u16 | crc32c u32 | segment id u64 | first seq u64
//! record        = len u32 | crc u32 | seq u64 | payload (len bytes)
//! record crc    = crc32c seeded with segment_seed(id), over len ++ seq ++ payload
//! ```
//!
//! All integers are little-endian. The record checksum is **seeded per segment** from the segment
//! id, which is also in the file name: bytes left over from an older segment (recycled or
//! preallocated blocks, a stale copy) never validate in a newer one, and the records of a segment
//! whose header got damaged can still be checked. The sequence number is inside the checksummed
//! record so that recovery can tell "the next record" from "a valid-looking record that belongs
//! elsewhere" and can name the seq range a corruption covers. A record is never all zeros (its
//! seq is at least 1), so a run of zeros is always the clean end of the written data.

use std::path::Path;

/// Bytes at the start of every segment file.
pub const MAGIC: [u8; 8] = *b"VCRFTWAL";
/// Segment format version written by this build.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Length of a record header (len, crc, seq).
pub const RECORD_HEADER_LEN: usize = 16;
/// File extension of a sealed or active segment.
pub const SEGMENT_EXT: &str = "wal";
/// Suffix of a segment still being created (removed at open).
pub const TMP_SUFFIX: &str = ".tmp";

/// Checksum seed of segment `id`: distinct per segment so stale bytes never validate.
pub fn segment_seed(id: u64) -> u32 {
    let mut seed = crc32c::crc32c(b"vecraft-wal-segment");
    seed = crc32c::crc32c_append(seed, &id.to_le_bytes());
    seed
}

/// File name of segment `id` whose first record has seq `first_seq`. Zero-padded so a
/// lexicographic listing is also the id order.
pub fn segment_file_name(id: u64, first_seq: u64) -> String {
    format!("{id:020}-{first_seq:020}.{SEGMENT_EXT}")
}

/// Parses a name made by [`segment_file_name`]; anything else is not a segment.
pub fn parse_segment_file_name(path: &Path) -> Option<(u64, u64)> {
    if path.extension()? != SEGMENT_EXT {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    let (id, first) = stem.split_once('-')?;
    if id.len() != 20 || first.len() != 20 {
        return None;
    }
    Some((id.parse().ok()?, first.parse().ok()?))
}

/// The fixed header at the start of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment id (monotonic, never reused).
    pub id: u64,
    /// Seq of the first record the segment holds (or will hold).
    pub first_seq: u64,
}

impl SegmentHeader {
    /// Serialises the header with its checksum.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&self.id.to_le_bytes());
        out[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        let crc = header_crc(&out);
        out[12..16].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and verifies a header; `None` if the bytes are short, foreign or damaged.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; SEGMENT_HEADER_LEN] = bytes.get(..SEGMENT_HEADER_LEN)?.try_into().ok()?;
        if bytes[0..8] != MAGIC || u16::from_le_bytes([bytes[8], bytes[9]]) != FORMAT_VERSION {
            return None;
        }
        let stored = u32::from_le_bytes(bytes[12..16].try_into().ok()?);
        if stored != header_crc(bytes) {
            return None;
        }
        Some(Self {
            id: u64::from_le_bytes(bytes[16..24].try_into().ok()?),
            first_seq: u64::from_le_bytes(bytes[24..32].try_into().ok()?),
        })
    }
}

/// crc32c of a header with its crc field taken as zero.
fn header_crc(bytes: &[u8; SEGMENT_HEADER_LEN]) -> u32 {
    let crc = crc32c::crc32c(&bytes[0..12]);
    let crc = crc32c::crc32c_append(crc, &[0u8; 4]);
    crc32c::crc32c_append(crc, &bytes[16..])
}

/// Checksum of one record under `seed`.
pub fn record_crc(seed: u32, seq: u64, payload: &[u8]) -> u32 {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32c::crc32c_append(seed, &len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &seq.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// Appends one framed record to `out`. The caller bounds `payload.len()` to `u32::MAX`.
pub fn encode_record(out: &mut Vec<u8>, seed: u32, seq: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(seed, seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// A record that checked out at some offset of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawRecord {
    /// Sequence number stored in the record.
    pub seq: u64,
    /// Offset of the payload within the segment bytes.
    pub payload_start: usize,
    /// Payload length.
    pub payload_len: usize,
}

impl RawRecord {
    /// Offset just past the record.
    pub fn end(&self) -> usize {
        self.payload_start + self.payload_len
    }
}

/// Tries to read a valid record at `pos` whose seq lies in `seqs` (inclusive). Never panics:
/// lengths are untrusted, every slice is bounds-checked.
pub fn read_record_at(
    data: &[u8],
    pos: usize,
    seed: u32,
    seqs: std::ops::RangeInclusive<u64>,
) -> Option<RawRecord> {
    let header = data.get(pos..pos.checked_add(RECORD_HEADER_LEN)?)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let seq = u64::from_le_bytes(header[8..16].try_into().ok()?);
    if !seqs.contains(&seq) {
        return None;
    }
    let payload_start = pos + RECORD_HEADER_LEN;
    let payload = data.get(payload_start..payload_start.checked_add(len)?)?;
    (record_crc(seed, seq, payload) == crc).then_some(RawRecord {
        seq,
        payload_start,
        payload_len: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = SegmentHeader {
            id: 7,
            first_seq: 42,
        };
        let bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Some(h));
        for i in 0..SEGMENT_HEADER_LEN {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert_eq!(SegmentHeader::decode(&bad), None, "flip at {i}");
        }
        assert_eq!(SegmentHeader::decode(&bytes[..31]), None);
    }

    #[test]
    fn record_seeded_per_segment() {
        let mut buf = Vec::new();
        encode_record(&mut buf, segment_seed(1), 5, b"hello");
        assert!(read_record_at(&buf, 0, segment_seed(1), 5..=5).is_some());
        assert!(read_record_at(&buf, 0, segment_seed(2), 5..=5).is_none());
        assert!(read_record_at(&buf, 0, segment_seed(1), 6..=9).is_none());
        assert!(read_record_at(&buf[..buf.len() - 1], 0, segment_seed(1), 5..=5).is_none());
    }

    #[test]
    fn names_round_trip() {
        let name = segment_file_name(3, 1001);
        assert_eq!(parse_segment_file_name(Path::new(&name)), Some((3, 1001)));
        assert_eq!(parse_segment_file_name(Path::new("x.wal")), None);
        assert_eq!(
            parse_segment_file_name(Path::new(&format!("{name}.tmp"))),
            None
        );
    }
}
