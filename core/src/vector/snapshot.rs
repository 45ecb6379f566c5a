//! Streaming, checksummed snapshots of a collection: full, or incremental relative to a base.
//!
//! # Format (version 1, all integers little-endian)
//! ```text
//! preamble  magic "VCRFTSNP" (8) | format version u16 | header_len u32 | header (postcard
//!           SnapshotHeader) | blake3(preamble bytes so far) (32)
//! chunk*    tag 0xC1 | entry_count u32 | raw_len u32 | comp_len u32
//!           | frame check u32 (first 4 bytes of blake3 of the 13 bytes before it)
//!           | blake3(the 17 frame bytes ++ body) (32) | body: zstd(entries) (comp_len)
//! end       tag 0xE0 | chunk_count u64 | upsert_count u64 | deletion_count u64
//!           | blake3(every byte of the file before this hash) (32)
//! ```
//! An entry is a postcard [`SnapshotEntry`]: a point (id, stored vector, payload, version) or, in
//! incremental snapshots only, a deletion (id, seq). Deletions come first, then points; each run in
//! strictly ascending id order.
//!
//! The header carries the collection's name and config, the sequence number the snapshot was
//! taken at, and the collection's content digest at that point ([`Collection::digest`]). An
//! incremental header also names its base by (sequence number, content digest). A restore checks
//! every checksum as it streams, validates every entry, and finally compares the restored
//! collection's digest with the header's: corruption, truncation, a wrong base or a lying writer
//! all end in a typed [`SnapshotError`], never in a wrong collection. Restores build a *new*
//! collection aside; the caller swaps it in only on success.
//!
//! Memory is bounded by one chunk (at most [`MAX_CHUNK_BYTES`] raw) plus the collection being
//! built. Serialising the HNSW graph is reserved ([`FLAG_HNSW_GRAPH`]) and not written yet: a
//! restore rebuilds the index from the points.

use crate::vector::collection::{Collection, CollectionConfig, PointRef};
use crate::vector::engine::VectorEngine;
use crate::vector::error::EngineError;
use crate::vector::payload::{Payload, validate_payload};
use crate::vector::point::PointId;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use thiserror::Error;

/// First bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"VCRFTSNP";
/// Format version this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 1;
/// Header flag reserved for "a serialised HNSW graph follows the points". Not written by this
/// build; a reader that meets any unknown flag refuses the file.
pub const FLAG_HNSW_GRAPH: u32 = 1;
/// Flags this build understands.
pub const KNOWN_FLAGS: u32 = 0;
/// Largest accepted header.
pub const MAX_HEADER_BYTES: u32 = 1 << 20;
/// Largest accepted uncompressed chunk (one entry must fit).
pub const MAX_CHUNK_BYTES: u32 = 64 << 20;

const CHUNK_TAG: u8 = 0xC1;
const END_TAG: u8 = 0xE0;
const FRAME_FIELDS: usize = 13;

/// Full snapshot, or changes since a base snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotKind {
    /// Every point of the collection.
    Full,
    /// Points upserted and deleted after the base.
    Incremental {
        /// The base snapshot's sequence number.
        base_seq: u64,
        /// The base snapshot's content digest.
        base_digest: [u8; 32],
    },
}

/// What a snapshot is of; read without reading the rest of the file via [`read_header`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// Collection name.
    pub collection: String,
    /// Collection config (must equal the base's for incrementals).
    pub config: CollectionConfig,
    /// Full or incremental.
    pub kind: SnapshotKind,
    /// Collection sequence number the snapshot was taken at.
    pub seq: u64,
    /// [`Collection::digest`] at `seq`: what a restore must reproduce.
    pub content_digest: [u8; 32],
    /// Points in the collection at `seq`.
    pub point_count: u64,
    /// Point entries in this file.
    pub upsert_count: u64,
    /// Deletion entries in this file.
    pub deletion_count: u64,
    /// Feature flags (see [`FLAG_HNSW_GRAPH`]).
    pub flags: u32,
}

impl SnapshotHeader {
    /// The identity an incremental snapshot taken on top of this one refers to.
    pub fn as_base(&self) -> SnapshotBase {
        SnapshotBase { seq: self.seq, digest: self.content_digest }
    }
}

/// Identifies the state an incremental snapshot starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotBase {
    /// Sequence number of the base.
    pub seq: u64,
    /// Content digest of the base.
    pub digest: [u8; 32],
}

/// One record in a chunk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SnapshotEntry {
    /// A point as stored.
    Point {
        /// Id.
        id: PointId,
        /// Stored vector (already normalised for Cosine).
        vector: Vec<f32>,
        /// Payload.
        payload: Payload,
        /// Sequence number of its last change.
        version: u64,
    },
    /// A point deleted after the base.
    Deleted {
        /// Id.
        id: PointId,
        /// Sequence number of the deletion.
        seq: u64,
    },
}

/// Borrowing twin of [`SnapshotEntry`] with the identical postcard encoding (writes without
/// cloning vectors).
#[derive(Serialize)]
enum EntryRef<'a> {
    Point { id: PointId, vector: &'a [f32], payload: &'a Payload, version: u64 },
    Deleted { id: PointId, seq: u64 },
}

/// Writer knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// Close a chunk once its uncompressed entries reach this many bytes.
    pub chunk_target_bytes: usize,
    /// zstd level (1..=22; 3 is zstd's default).
    pub zstd_level: i32,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions { chunk_target_bytes: 1 << 20, zstd_level: 3 }
    }
}

/// What was written or verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// The file's header.
    pub header: SnapshotHeader,
    /// Number of chunks.
    pub chunks: u64,
    /// Total file size.
    pub bytes: u64,
    /// The whole-file blake3 hash stored at its end.
    pub file_hash: [u8; 32],
}

/// Restore progress, reported after every chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreProgress {
    /// Chunks applied so far.
    pub chunks_done: u64,
    /// Entries (points and deletions) applied so far.
    pub entries_done: u64,
    /// Entries in the file.
    pub entries_total: u64,
}

/// Why a snapshot could not be written, read or restored.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// The underlying stream failed.
    #[error("snapshot I/O error: {0}")]
    Io(#[from] io::Error),
    /// The stream ended early.
    #[error("snapshot truncated while reading {0}")]
    Truncated(&'static str),
    /// Not a vecraft snapshot.
    #[error("not a vecraft snapshot (bad magic bytes)")]
    BadMagic,
    /// Written by a newer or older, incompatible build.
    #[error("unsupported snapshot format version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// Flags this build does not understand.
    #[error("snapshot uses unsupported feature flags {0:#x}")]
    UnsupportedFlags(u32),
    /// Header length above [`MAX_HEADER_BYTES`].
    #[error("snapshot header length {0} exceeds the limit")]
    HeaderTooLarge(u32),
    /// Header bytes do not match their checksum.
    #[error("snapshot header checksum mismatch")]
    HeaderChecksum,
    /// Header bytes did not decode.
    #[error("malformed snapshot header: {0}")]
    MalformedHeader(String),
    /// The header names an invalid collection or config.
    #[error("snapshot header describes an invalid collection: {0}")]
    InvalidCollection(#[from] EngineError),
    /// Something other than a chunk or the end marker.
    #[error("unexpected section tag {tag:#04x} after chunk {after_chunk}")]
    UnexpectedTag {
        /// The byte found.
        tag: u8,
        /// Chunks read before it.
        after_chunk: u64,
    },
    /// A chunk frame (lengths) is corrupt or out of bounds.
    #[error("chunk {chunk}: corrupt frame ({reason})")]
    ChunkFrame {
        /// Zero-based chunk number.
        chunk: u64,
        /// What is wrong.
        reason: String,
    },
    /// A chunk's bytes do not match their checksum.
    #[error("chunk {chunk}: checksum mismatch")]
    ChunkChecksum {
        /// Zero-based chunk number.
        chunk: u64,
    },
    /// A chunk passed its checksum but did not decompress or decode.
    #[error("chunk {chunk}: malformed contents ({reason})")]
    MalformedChunk {
        /// Zero-based chunk number.
        chunk: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry violates the format's rules (order, dimension, range).
    #[error("chunk {chunk}: invalid entry ({reason})")]
    InvalidEntry {
        /// Zero-based chunk number.
        chunk: u64,
        /// What is wrong.
        reason: String,
    },
    /// Counts in the trailer, header and body disagree.
    #[error("{what}: header/trailer say {expected}, file has {found}")]
    CountMismatch {
        /// Which count.
        what: &'static str,
        /// Claimed.
        expected: u64,
        /// Seen.
        found: u64,
    },
    /// The whole-file checksum does not match.
    #[error("snapshot file checksum mismatch")]
    FileChecksum,
    /// Bytes after the end of the snapshot.
    #[error("unexpected data after the end of the snapshot")]
    TrailingData,
    /// The restored collection differs from what the snapshot promised.
    #[error("restored collection digest differs from the snapshot's content digest")]
    DigestMismatch,
    /// A full snapshot where an incremental was expected or vice versa.
    #[error("expected a {expected} snapshot")]
    WrongKind {
        /// `full` or `incremental`.
        expected: &'static str,
    },
    /// The collection an incremental snapshot is applied to is not its base.
    #[error("incremental snapshot does not apply to this collection: {0}")]
    BaseMismatch(String),
    /// An incremental snapshot was restored where its collection does not exist.
    #[error(
        "incremental snapshot of `{0}` needs that collection as its base, and it does not exist"
    )]
    MissingBase(String),
    /// The requested base is older than the deletion log remembers.
    #[error("base seq {base_seq} is older than the deletion log floor {floor}")]
    BaseTooOld {
        /// Requested base.
        base_seq: u64,
        /// Oldest usable base.
        floor: u64,
    },
    /// The requested base is newer than the collection.
    #[error("base seq {base_seq} is after the collection's seq {seq}")]
    BaseInFuture {
        /// Requested base.
        base_seq: u64,
        /// Collection's seq.
        seq: u64,
    },
    /// A single point does not fit in a chunk.
    #[error("point {0} is too large for a snapshot chunk")]
    EntryTooLarge(PointId),
    /// Compression failed.
    #[error("compression failed: {0}")]
    Compress(String),
}

/// Writes a full snapshot of `collection`.
pub fn write_full_snapshot<W: Write>(
    collection: &Collection,
    out: W,
    options: &SnapshotOptions,
) -> Result<SnapshotSummary, SnapshotError> {
    let header = SnapshotHeader {
        collection: collection.name().to_string(),
        config: *collection.config(),
        kind: SnapshotKind::Full,
        seq: collection.seq(),
        content_digest: collection.digest(),
        point_count: collection.len() as u64,
        upsert_count: collection.len() as u64,
        deletion_count: 0,
        flags: 0,
    };
    let written = write_snapshot(header, collection.points().map(point_entry), out, options)?;
    debug_assert_eq!(written.entries, (written.summary.header.upsert_count, 0));
    Ok(written.summary)
}

/// Writes the points upserted and deleted in `collection` after `base` (a snapshot of an earlier
/// state of the same collection, e.g. `base_header.as_base()`).
pub fn write_incremental_snapshot<W: Write>(
    collection: &Collection,
    base: SnapshotBase,
    out: W,
    options: &SnapshotOptions,
) -> Result<SnapshotSummary, SnapshotError> {
    if base.seq > collection.seq() {
        return Err(SnapshotError::BaseInFuture { base_seq: base.seq, seq: collection.seq() });
    }
    if base.seq < collection.deletion_log_floor() {
        return Err(SnapshotError::BaseTooOld {
            base_seq: base.seq,
            floor: collection.deletion_log_floor(),
        });
    }
    let header = SnapshotHeader {
        collection: collection.name().to_string(),
        config: *collection.config(),
        kind: SnapshotKind::Incremental { base_seq: base.seq, base_digest: base.digest },
        seq: collection.seq(),
        content_digest: collection.digest(),
        point_count: collection.len() as u64,
        upsert_count: collection.points_changed_since(base.seq).count() as u64,
        deletion_count: collection.deletions_since(base.seq).count() as u64,
        flags: 0,
    };
    let deletions =
        collection.deletions_since(base.seq).map(|(id, seq)| EntryRef::Deleted { id, seq });
    let points = collection.points_changed_since(base.seq).map(point_entry);
    let written = write_snapshot(header, deletions.chain(points), out, options)?;
    let header = &written.summary.header;
    debug_assert_eq!(written.entries, (header.upsert_count, header.deletion_count));
    Ok(written.summary)
}

/// What [`write_snapshot`] produced, plus the (points, deletions) it actually wrote, which the
/// public writers check against the header they promised.
struct Written {
    summary: SnapshotSummary,
    entries: (u64, u64),
}

fn point_entry((id, point): (PointId, PointRef<'_>)) -> EntryRef<'_> {
    EntryRef::Point { id, vector: point.vector, payload: point.payload, version: point.version }
}

/// Counts and hashes everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.write_all(data)?;
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        Ok(())
    }
}

fn write_snapshot<'a, W: Write>(
    header: SnapshotHeader,
    entries: impl Iterator<Item = EntryRef<'a>>,
    out: W,
    options: &SnapshotOptions,
) -> Result<Written, SnapshotError> {
    let mut w = HashingWriter { inner: out, hasher: blake3::Hasher::new(), bytes: 0 };
    let header_bytes =
        postcard::to_stdvec(&header).map_err(|e| SnapshotError::MalformedHeader(e.to_string()))?;
    if header_bytes.len() > MAX_HEADER_BYTES as usize {
        return Err(SnapshotError::HeaderTooLarge(header_bytes.len() as u32));
    }
    w.put(&SNAPSHOT_MAGIC)?;
    w.put(&SNAPSHOT_FORMAT_VERSION.to_le_bytes())?;
    w.put(&(header_bytes.len() as u32).to_le_bytes())?;
    w.put(&header_bytes)?;
    let preamble_hash = w.hasher.finalize();
    w.put(preamble_hash.as_bytes())?;

    let target = options.chunk_target_bytes.clamp(1, MAX_CHUNK_BYTES as usize);
    let mut raw = Vec::new();
    let mut entry_buf = Vec::new();
    let mut in_chunk: u32 = 0;
    let mut chunks: u64 = 0;
    let (mut upserts, mut deletions) = (0u64, 0u64);
    for entry in entries {
        let id = match &entry {
            EntryRef::Point { id, .. } => {
                upserts += 1;
                *id
            }
            EntryRef::Deleted { id, .. } => {
                deletions += 1;
                *id
            }
        };
        entry_buf.clear();
        entry_buf = postcard::to_extend(&entry, entry_buf)
            .map_err(|e| SnapshotError::MalformedChunk { chunk: chunks, reason: e.to_string() })?;
        if entry_buf.len() > MAX_CHUNK_BYTES as usize {
            return Err(SnapshotError::EntryTooLarge(id));
        }
        if !raw.is_empty() && raw.len() + entry_buf.len() > MAX_CHUNK_BYTES as usize {
            write_chunk(&mut w, &raw, in_chunk, options.zstd_level)?;
            chunks += 1;
            raw.clear();
            in_chunk = 0;
        }
        raw.extend_from_slice(&entry_buf);
        in_chunk += 1;
        if raw.len() >= target {
            write_chunk(&mut w, &raw, in_chunk, options.zstd_level)?;
            chunks += 1;
            raw.clear();
            in_chunk = 0;
        }
    }
    if !raw.is_empty() {
        write_chunk(&mut w, &raw, in_chunk, options.zstd_level)?;
        chunks += 1;
    }
    w.put(&[END_TAG])?;
    w.put(&chunks.to_le_bytes())?;
    w.put(&upserts.to_le_bytes())?;
    w.put(&deletions.to_le_bytes())?;
    let file_hash = *w.hasher.finalize().as_bytes();
    w.put(&file_hash)?;
    w.inner.flush()?;
    Ok(Written {
        summary: SnapshotSummary { header, chunks, bytes: w.bytes, file_hash },
        entries: (upserts, deletions),
    })
}

fn write_chunk<W: Write>(
    w: &mut HashingWriter<W>,
    raw: &[u8],
    entry_count: u32,
    level: i32,
) -> Result<(), SnapshotError> {
    let body =
        zstd::bulk::compress(raw, level).map_err(|e| SnapshotError::Compress(e.to_string()))?;
    let frame = chunk_frame(entry_count, raw.len() as u32, body.len() as u32);
    let mut body_hasher = blake3::Hasher::new();
    body_hasher.update(&frame);
    body_hasher.update(&body);
    w.put(&frame)?;
    w.put(body_hasher.finalize().as_bytes())?;
    w.put(&body)?;
    Ok(())
}

/// The 17 frame bytes: tag, three lengths, and a check over them so a corrupt length is reported
/// as such instead of making the reader swallow the rest of the file.
fn chunk_frame(entry_count: u32, raw_len: u32, comp_len: u32) -> [u8; FRAME_FIELDS + 4] {
    let mut frame = [0u8; FRAME_FIELDS + 4];
    frame[0] = CHUNK_TAG;
    frame[1..5].copy_from_slice(&entry_count.to_le_bytes());
    frame[5..9].copy_from_slice(&raw_len.to_le_bytes());
    frame[9..13].copy_from_slice(&comp_len.to_le_bytes());
    let check = blake3::hash(&frame[..FRAME_FIELDS]);
    frame[FRAME_FIELDS..].copy_from_slice(&check.as_bytes()[..4]);
    frame
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    fn take(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), SnapshotError> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotError::Truncated(what),
            _ => SnapshotError::Io(e),
        })?;
        self.hasher.update(buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SnapshotError> {
        let mut buf = [0u8; N];
        self.take(&mut buf, what)?;
        Ok(buf)
    }

    fn take_vec(&mut self, len: usize, what: &'static str) -> Result<Vec<u8>, SnapshotError> {
        let mut buf = vec![0u8; len];
        self.take(&mut buf, what)?;
        Ok(buf)
    }
}

/// Streams a snapshot chunk by chunk, verifying as it goes.
pub struct SnapshotReader<R> {
    input: HashingReader<R>,
    header: SnapshotHeader,
    chunks: u64,
    upserts: u64,
    deletions: u64,
    last_point: Option<PointId>,
    last_deletion: Option<PointId>,
    finished: Option<SnapshotSummary>,
}

impl<R: Read> SnapshotReader<R> {
    /// Reads and verifies the preamble (magic, version, header checksum, header contents).
    pub fn open(input: R) -> Result<Self, SnapshotError> {
        let mut input = HashingReader { inner: input, hasher: blake3::Hasher::new(), bytes: 0 };
        if input.take_array::<8>("magic")? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = u16::from_le_bytes(input.take_array("format version")?);
        if version != SNAPSHOT_FORMAT_VERSION {
            return Err(SnapshotError::UnsupportedVersion {
                found: version,
                supported: SNAPSHOT_FORMAT_VERSION,
            });
        }
        let header_len = u32::from_le_bytes(input.take_array("header length")?);
        if header_len > MAX_HEADER_BYTES {
            return Err(SnapshotError::HeaderTooLarge(header_len));
        }
        let header_bytes = input.take_vec(header_len as usize, "header")?;
        let expected = input.hasher.finalize();
        if input.take_array::<32>("header checksum")? != *expected.as_bytes() {
            return Err(SnapshotError::HeaderChecksum);
        }
        let header: SnapshotHeader = postcard::from_bytes(&header_bytes)
            .map_err(|e| SnapshotError::MalformedHeader(e.to_string()))?;
        if header.flags & !KNOWN_FLAGS != 0 {
            return Err(SnapshotError::UnsupportedFlags(header.flags));
        }
        crate::vector::collection::validate_collection_name(&header.collection)?;
        header.config.validate()?;
        if header.kind == SnapshotKind::Full && header.deletion_count != 0 {
            return Err(SnapshotError::MalformedHeader("full snapshot with deletions".into()));
        }
        if header.kind == SnapshotKind::Full && header.upsert_count != header.point_count {
            return Err(SnapshotError::MalformedHeader(
                "full snapshot point count mismatch".into(),
            ));
        }
        Ok(SnapshotReader {
            input,
            header,
            chunks: 0,
            upserts: 0,
            deletions: 0,
            last_point: None,
            last_deletion: None,
            finished: None,
        })
    }

    /// The verified header.
    pub fn header(&self) -> &SnapshotHeader {
        &self.header
    }

    /// Entries in the file according to the header.
    pub fn entries_total(&self) -> u64 {
        self.header.upsert_count.saturating_add(self.header.deletion_count)
    }

    /// The next chunk's entries, verified and validated; `None` once the end section and the
    /// whole-file checksum have been verified (and nothing follows them).
    pub fn next_chunk(&mut self) -> Result<Option<Vec<SnapshotEntry>>, SnapshotError> {
        if self.finished.is_some() {
            return Ok(None);
        }
        let [tag] = self.input.take_array::<1>("section tag")?;
        match tag {
            CHUNK_TAG => self.read_chunk().map(Some),
            END_TAG => {
                self.read_end()?;
                Ok(None)
            }
            other => Err(SnapshotError::UnexpectedTag { tag: other, after_chunk: self.chunks }),
        }
    }

    /// Summary after the last chunk (None before the end was verified).
    pub fn summary(&self) -> Option<&SnapshotSummary> {
        self.finished.as_ref()
    }

    fn read_chunk(&mut self) -> Result<Vec<SnapshotEntry>, SnapshotError> {
        let chunk = self.chunks;
        let rest: [u8; FRAME_FIELDS + 4 - 1] = self.input.take_array("chunk frame")?;
        let entry_count = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
        let raw_len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let comp_len = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
        let frame = chunk_frame(entry_count, raw_len, comp_len);
        if frame[1..] != rest[..] {
            return Err(SnapshotError::ChunkFrame { chunk, reason: "frame check mismatch".into() });
        }
        if raw_len > MAX_CHUNK_BYTES || comp_len as u64 > max_compressed_len(raw_len) {
            return Err(SnapshotError::ChunkFrame {
                chunk,
                reason: format!("lengths raw {raw_len} / compressed {comp_len} out of bounds"),
            });
        }
        let body_hash: [u8; 32] = self.input.take_array("chunk checksum")?;
        let body = self.input.take_vec(comp_len as usize, "chunk body")?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&frame);
        hasher.update(&body);
        if *hasher.finalize().as_bytes() != body_hash {
            return Err(SnapshotError::ChunkChecksum { chunk });
        }
        let raw = zstd::bulk::decompress(&body, raw_len as usize)
            .map_err(|e| SnapshotError::MalformedChunk { chunk, reason: e.to_string() })?;
        if raw.len() != raw_len as usize {
            return Err(SnapshotError::MalformedChunk {
                chunk,
                reason: format!("decompressed {} bytes, frame says {raw_len}", raw.len()),
            });
        }
        let mut entries = Vec::with_capacity((entry_count as usize).min(raw.len()));
        let mut rest = &raw[..];
        for _ in 0..entry_count {
            let (entry, tail) = postcard::take_from_bytes::<SnapshotEntry>(rest)
                .map_err(|e| SnapshotError::MalformedChunk { chunk, reason: e.to_string() })?;
            self.check_entry(&entry)
                .map_err(|reason| SnapshotError::InvalidEntry { chunk, reason })?;
            entries.push(entry);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(SnapshotError::MalformedChunk {
                chunk,
                reason: format!("{} bytes after the last entry", rest.len()),
            });
        }
        self.chunks += 1;
        Ok(entries)
    }

    /// Format rules for one entry, in file order.
    fn check_entry(&mut self, entry: &SnapshotEntry) -> Result<(), String> {
        let h = &self.header;
        let base_seq = match h.kind {
            SnapshotKind::Full => None,
            SnapshotKind::Incremental { base_seq, .. } => Some(base_seq),
        };
        match entry {
            SnapshotEntry::Point { id, vector, payload, version } => {
                if self.last_point.is_some_and(|last| last >= *id) {
                    return Err(format!("point {id} out of order"));
                }
                if vector.len() != h.config.vector_size as usize {
                    return Err(format!("point {id} has dimension {}", vector.len()));
                }
                if vector.iter().any(|x| !x.is_finite()) {
                    return Err(format!("point {id} has a non-finite component"));
                }
                validate_payload(payload).map_err(|e| format!("point {id}: {e}"))?;
                if *version > h.seq || base_seq.is_some_and(|b| *version <= b) {
                    return Err(format!(
                        "point {id} version {version} outside the snapshot's range"
                    ));
                }
                self.upserts += 1;
                if self.upserts > h.upsert_count {
                    return Err("more points than the header says".into());
                }
                self.last_point = Some(*id);
            }
            SnapshotEntry::Deleted { id, seq } => {
                let Some(base) = base_seq else {
                    return Err("deletion in a full snapshot".into());
                };
                if self.last_point.is_some() {
                    return Err("deletion after points".into());
                }
                if self.last_deletion.is_some_and(|last| last >= *id) {
                    return Err(format!("deletion of {id} out of order"));
                }
                if *seq <= base || *seq > h.seq {
                    return Err(format!(
                        "deletion of {id} at seq {seq} outside the snapshot's range"
                    ));
                }
                self.deletions += 1;
                if self.deletions > h.deletion_count {
                    return Err("more deletions than the header says".into());
                }
                self.last_deletion = Some(*id);
            }
        }
        Ok(())
    }

    fn read_end(&mut self) -> Result<(), SnapshotError> {
        let chunks = u64::from_le_bytes(self.input.take_array("end section")?);
        let upserts = u64::from_le_bytes(self.input.take_array("end section")?);
        let deletions = u64::from_le_bytes(self.input.take_array("end section")?);
        let expected = *self.input.hasher.finalize().as_bytes();
        let stored: [u8; 32] = self.input.take_array("file checksum")?;
        if stored != expected {
            return Err(SnapshotError::FileChecksum);
        }
        let counts = [
            ("chunk count", chunks, self.chunks),
            ("point count", upserts, self.upserts),
            ("point count", self.header.upsert_count, self.upserts),
            ("deletion count", deletions, self.deletions),
            ("deletion count", self.header.deletion_count, self.deletions),
        ];
        for (what, expected, found) in counts {
            if expected != found {
                return Err(SnapshotError::CountMismatch { what, expected, found });
            }
        }
        let mut probe = [0u8; 1];
        loop {
            match self.input.inner.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => return Err(SnapshotError::TrailingData),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SnapshotError::Io(e)),
            }
        }
        self.finished = Some(SnapshotSummary {
            header: self.header.clone(),
            chunks,
            bytes: self.input.bytes,
            file_hash: stored,
        });
        Ok(())
    }
}

/// Generous bound on zstd output for `raw_len` input bytes (zstd's own bound is raw + raw/256 + a
/// small constant).
fn max_compressed_len(raw_len: u32) -> u64 {
    raw_len as u64 + raw_len as u64 / 128 + 1024
}

/// Reads and verifies only the header.
pub fn read_header<R: Read>(input: R) -> Result<SnapshotHeader, SnapshotError> {
    Ok(SnapshotReader::open(input)?.header)
}

/// Reads a whole snapshot, checking every checksum and entry, without building a collection.
pub fn verify_snapshot<R: Read>(input: R) -> Result<SnapshotSummary, SnapshotError> {
    let mut reader = SnapshotReader::open(input)?;
    while reader.next_chunk()?.is_some() {}
    Ok(reader.finished.expect("next_chunk returned None only after verifying the end"))
}

/// Restores a full snapshot into a new collection, reporting progress after each chunk.
pub fn restore_full<R: Read>(
    input: R,
    progress: &mut dyn FnMut(RestoreProgress),
) -> Result<Collection, SnapshotError> {
    let reader = SnapshotReader::open(input)?;
    if reader.header.kind != SnapshotKind::Full {
        return Err(SnapshotError::WrongKind { expected: "full" });
    }
    restore_from(reader, None, progress)
}

/// Applies an incremental snapshot to a copy of `base` and returns the result; `base` is never
/// modified, so a failure leaves it as it was.
pub fn restore_incremental<R: Read>(
    base: &Collection,
    input: R,
    progress: &mut dyn FnMut(RestoreProgress),
) -> Result<Collection, SnapshotError> {
    let reader = SnapshotReader::open(input)?;
    if reader.header.kind == SnapshotKind::Full {
        return Err(SnapshotError::WrongKind { expected: "incremental" });
    }
    restore_from(reader, Some(base), progress)
}

/// Builds the collection a snapshot describes: from scratch for a full snapshot, from a copy of
/// `base` (which must match) for an incremental one.
fn restore_from<R: Read>(
    reader: SnapshotReader<R>,
    base: Option<&Collection>,
    progress: &mut dyn FnMut(RestoreProgress),
) -> Result<Collection, SnapshotError> {
    match (reader.header.kind, base) {
        (SnapshotKind::Full, _) => {
            let fresh = Collection::new(&reader.header.collection, reader.header.config)?;
            apply_entries(reader, fresh, true, progress)
        }
        (SnapshotKind::Incremental { base_seq, base_digest }, Some(base)) => {
            check_base(base, &reader.header, base_seq, base_digest)?;
            apply_entries(reader, base.clone_data(), false, progress)
        }
        (SnapshotKind::Incremental { .. }, None) => {
            Err(SnapshotError::MissingBase(reader.header.collection.clone()))
        }
    }
}

/// Checks that `base` is the state an incremental snapshot (`header`) starts from.
fn check_base(
    base: &Collection,
    header: &SnapshotHeader,
    base_seq: u64,
    base_digest: [u8; 32],
) -> Result<(), SnapshotError> {
    if base.name() != header.collection {
        return Err(SnapshotError::BaseMismatch(format!(
            "snapshot is of `{}`, collection is `{}`",
            header.collection,
            base.name()
        )));
    }
    if base.config() != &header.config {
        return Err(SnapshotError::BaseMismatch("collection config differs".into()));
    }
    if base.seq() != base_seq {
        return Err(SnapshotError::BaseMismatch(format!(
            "snapshot starts at seq {base_seq}, collection is at seq {}",
            base.seq()
        )));
    }
    if base.digest() != base_digest {
        return Err(SnapshotError::BaseMismatch(
            "collection digest differs from the base's".into(),
        ));
    }
    Ok(())
}

fn apply_entries<R: Read>(
    mut reader: SnapshotReader<R>,
    mut collection: Collection,
    full: bool,
    progress: &mut dyn FnMut(RestoreProgress),
) -> Result<Collection, SnapshotError> {
    let entries_total = reader.entries_total();
    let mut entries_done = 0u64;
    while let Some(entries) = reader.next_chunk()? {
        entries_done += entries.len() as u64;
        for entry in entries {
            match entry {
                SnapshotEntry::Point { id, vector, payload, version } => {
                    collection.restore_point(id, vector, payload, version)
                }
                SnapshotEntry::Deleted { id, seq } => collection.restore_deletion(id, seq),
            }
        }
        progress(RestoreProgress { chunks_done: reader.chunks, entries_done, entries_total });
    }
    collection.finish_restore(reader.header.seq, full);
    if collection.len() as u64 != reader.header.point_count {
        return Err(SnapshotError::CountMismatch {
            what: "restored points",
            expected: reader.header.point_count,
            found: collection.len() as u64,
        });
    }
    if collection.digest() != reader.header.content_digest {
        return Err(SnapshotError::DigestMismatch);
    }
    Ok(collection)
}

/// What an engine-level restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    /// The snapshot's header.
    pub header: SnapshotHeader,
    /// Whether a collection of that name was replaced.
    pub replaced: bool,
}

impl VectorEngine {
    /// Restores a snapshot into this engine: a full snapshot replaces (or creates) its
    /// collection; an incremental one is applied to the existing collection, which must be its
    /// base. The result is built aside and installed only if the whole restore succeeded.
    pub fn restore_snapshot<R: Read>(
        &mut self,
        input: R,
        progress: &mut dyn FnMut(RestoreProgress),
    ) -> Result<RestoreReport, SnapshotError> {
        let reader = SnapshotReader::open(input)?;
        let header = reader.header.clone();
        let restored = restore_from(reader, self.collection(&header.collection).ok(), progress)?;
        let replaced = self.install_collection(restored).is_some();
        Ok(RestoreReport { header, replaced })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::collection::{Distance, PointsOp};
    use crate::vector::point::PointStruct;

    fn collection() -> Collection {
        let mut c = Collection::new("c", CollectionConfig::new(2, Distance::Dot)).unwrap();
        let points = (0..4)
            .map(|i| PointStruct {
                id: PointId::Num(i),
                vector: vec![i as f32, 1.0],
                payload: Payload::new(),
            })
            .collect();
        c.apply(PointsOp::Upsert(points)).unwrap();
        c
    }

    fn full_header(c: &Collection) -> SnapshotHeader {
        SnapshotHeader {
            collection: "c".into(),
            config: *c.config(),
            kind: SnapshotKind::Full,
            seq: c.seq(),
            content_digest: c.digest(),
            point_count: 4,
            upsert_count: 4,
            deletion_count: 0,
            flags: 0,
        }
    }

    fn point(id: u64, x: f32, version: u64) -> SnapshotEntry {
        SnapshotEntry::Point {
            id: PointId::Num(id),
            vector: vec![x, 1.0],
            payload: Payload::new(),
            version,
        }
    }

    /// Writes well-checksummed bytes for whatever header and entries a (buggy or hostile) writer
    /// chose, then restores them.
    fn restore_forged(
        header: SnapshotHeader,
        entries: &[SnapshotEntry],
    ) -> Result<Collection, SnapshotError> {
        let refs = entries.iter().map(|e| match e {
            SnapshotEntry::Point { id, vector, payload, version } => {
                EntryRef::Point { id: *id, vector, payload, version: *version }
            }
            SnapshotEntry::Deleted { id, seq } => EntryRef::Deleted { id: *id, seq: *seq },
        });
        let mut bytes = Vec::new();
        write_snapshot(
            header,
            refs,
            &mut bytes,
            &SnapshotOptions { chunk_target_bytes: 16, zstd_level: 1 },
        )?;
        restore_full(&bytes[..], &mut |_| ())
    }

    #[test]
    fn checksum_valid_but_wrong_contents_are_rejected() {
        let c = collection();
        let honest: Vec<SnapshotEntry> = (0..4).map(|i| point(i, i as f32, 1)).collect();
        assert_eq!(restore_forged(full_header(&c), &honest).unwrap().digest(), c.digest());

        let mut changed = honest.clone();
        changed[2] = point(2, 7.0, 1);
        assert!(matches!(
            restore_forged(full_header(&c), &changed),
            Err(SnapshotError::DigestMismatch)
        ));

        let mut swapped = honest.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            restore_forged(full_header(&c), &swapped),
            Err(SnapshotError::InvalidEntry { .. })
        ));

        let mut wrong_dim = honest.clone();
        wrong_dim[0] = SnapshotEntry::Point {
            id: PointId::Num(0),
            vector: vec![1.0],
            payload: Payload::new(),
            version: 1,
        };
        assert!(matches!(
            restore_forged(full_header(&c), &wrong_dim),
            Err(SnapshotError::InvalidEntry { .. })
        ));

        let mut future = honest.clone();
        future[3] = point(3, 3.0, 99);
        assert!(matches!(
            restore_forged(full_header(&c), &future),
            Err(SnapshotError::InvalidEntry { .. })
        ));

        let mut with_deletion = honest.clone();
        with_deletion.insert(0, SnapshotEntry::Deleted { id: PointId::Num(9), seq: 1 });
        assert!(matches!(
            restore_forged(full_header(&c), &with_deletion),
            Err(SnapshotError::InvalidEntry { .. })
        ));

        assert!(matches!(
            restore_forged(full_header(&c), &honest[..3]),
            Err(SnapshotError::CountMismatch { .. })
        ));

        let mut flagged = full_header(&c);
        flagged.flags = FLAG_HNSW_GRAPH;
        assert!(matches!(
            restore_forged(flagged, &honest),
            Err(SnapshotError::UnsupportedFlags(1))
        ));

        let mut bad_config = full_header(&c);
        bad_config.config.hnsw.m = 1_000;
        assert!(matches!(
            restore_forged(bad_config, &honest),
            Err(SnapshotError::InvalidCollection(_))
        ));

        let mut bad_name = full_header(&c);
        bad_name.collection = "../etc".into();
        assert!(matches!(
            restore_forged(bad_name, &honest),
            Err(SnapshotError::InvalidCollection(_))
        ));
    }

    #[test]
    fn version_and_magic_are_checked_first() {
        let c = collection();
        let mut bytes = Vec::new();
        write_full_snapshot(&c, &mut bytes, &SnapshotOptions::default()).unwrap();
        let mut other_version = bytes.clone();
        other_version[8] = 2;
        assert!(matches!(
            read_header(&other_version[..]),
            Err(SnapshotError::UnsupportedVersion { found: 2, supported: 1 })
        ));
        let mut not_ours = bytes.clone();
        not_ours[0] = b'X';
        assert!(matches!(read_header(&not_ours[..]), Err(SnapshotError::BadMagic)));
        assert!(matches!(read_header(&[][..]), Err(SnapshotError::Truncated("magic"))));
    }
}
