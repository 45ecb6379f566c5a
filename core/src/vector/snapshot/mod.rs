//! Streaming, checksummed snapshots of a collection: full, or incremental relative to a base.
//!
//! # Format (version 4, all integers little-endian; versions 1 to 3 are still read)
//! ```text
//! preamble  magic "VCRFTSNP" (8) | format version u16 | header_len u32 | header (postcard
//!           SnapshotHeader) | blake3(preamble bytes so far) (32)
//! chunk*    tag 0xC1 | entry_count u32 | raw_len u32 | comp_len u32
//!           | frame check u32 (first 4 bytes of blake3 of the 13 bytes before it)
//!           | blake3(the 17 frame bytes ++ body) (32) | body: zstd(entries) (comp_len)
//! graph*    tag 0xC2 | the same frame, checksum and zstd body as a point chunk, holding
//!           postcard [`GraphRecord`]s (full snapshots with [`FLAG_HNSW_GRAPH`] only)
//! end       tag 0xE0 | chunk_count u64 (point and graph chunks) | upsert_count u64
//!           | deletion_count u64 | blake3(every byte of the file before this hash) (32)
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
//! built. A full snapshot of a collection indexed by our HNSW also carries the graph (header flag
//! [`FLAG_HNSW_GRAPH`], graph chunks after the point chunks: one [`GraphRecord::Header`], then one
//! [`GraphRecord::Node`] per point in id order), so a restore loads the links instead of
//! rebuilding them (see `vector::hnsw::image`); without the flag a restore rebuilds the index.
//!
//! Quantization (version 3): the config carries the collection's `quantization`, and the header
//! the trained quantizer parameters ([`QuantizerParams`]: a scalar range, or binary thresholds).
//! Codes are not stored: a restore re-encodes every point with the header's parameters, so the
//! restored collection ranks exactly as its source did, at the cost of one encoding pass (a
//! fraction of a graph rebuild). Version 1 and 2 headers decode with the config as it was then
//! (no quantization).
//!
//! Version 4: the config carries `on_disk` (where a replica keeps the f32 vectors); version 1 to
//! 3 headers decode with it false.

use crate::vector::collection::{Collection, CollectionConfig, PointRef};
use crate::vector::engine::VectorEngine;
use crate::vector::error::EngineError;
use crate::vector::payload::{Payload, validate_payload};
use crate::vector::payload_index::{FieldSchema, normalise_field};
use crate::vector::point::PointId;
use crate::vector::quantization::QuantizerParams;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use thiserror::Error;

/// First bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"VCRFTSNP";
/// Format version this build writes. Version 2 added the payload field indexes to the header,
/// version 3 the quantization config and quantizer parameters, version 4 the config's `on_disk`;
/// version 1 to 3 files are still read.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 4;
/// Oldest format version this build reads.
pub const SNAPSHOT_OLDEST_READABLE_VERSION: u16 = 1;
/// Header flag: graph chunks with the HNSW links follow the point chunks (full snapshots only).
/// A reader that meets any unknown flag refuses the file.
pub const FLAG_HNSW_GRAPH: u32 = 1;
/// Flags this build understands.
pub const KNOWN_FLAGS: u32 = FLAG_HNSW_GRAPH;
/// Largest accepted header.
pub const MAX_HEADER_BYTES: u32 = 1 << 20;
/// Largest accepted uncompressed chunk (one entry must fit).
pub const MAX_CHUNK_BYTES: u32 = 64 << 20;

const CHUNK_TAG: u8 = 0xC1;
const GRAPH_TAG: u8 = 0xC2;
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
    /// Payload field indexes declared on the collection (normalised field, schema), in field
    /// order: a restore rebuilds their posting lists from the restored payloads.
    pub field_indexes: Vec<(String, FieldSchema)>,
    /// The collection's trained quantizer, if any: a restore re-encodes every point with it.
    pub quantizer: Option<QuantizerParams>,
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
    /// The graph section is malformed or does not fit the points (checksums passed, so the
    /// writer was wrong or lying).
    #[error("invalid HNSW graph section: {0}")]
    InvalidGraph(String),
}

/// The 17 frame bytes: tag, three lengths, and a check over them so a corrupt length is reported
/// as such instead of making the reader swallow the rest of the file.
fn chunk_frame(tag: u8, entry_count: u32, raw_len: u32, comp_len: u32) -> [u8; FRAME_FIELDS + 4] {
    let mut frame = [0u8; FRAME_FIELDS + 4];
    frame[0] = tag;
    frame[1..5].copy_from_slice(&entry_count.to_le_bytes());
    frame[5..9].copy_from_slice(&raw_len.to_le_bytes());
    frame[9..13].copy_from_slice(&comp_len.to_le_bytes());
    let check = blake3::hash(&frame[..FRAME_FIELDS]);
    frame[FRAME_FIELDS..].copy_from_slice(&check.as_bytes()[..4]);
    frame
}

mod graph;
mod legacy;
mod read;
mod write;

pub use graph::GraphRecord;
pub(crate) use legacy::CollectionConfigV3;
use legacy::{SnapshotHeaderV1, SnapshotHeaderV2, SnapshotHeaderV3};

pub use read::{RestoreReport, SnapshotReader, SnapshotSection, read_header, restore_full, restore_incremental, verify_snapshot};
pub use write::{write_full_snapshot, write_incremental_snapshot};

#[cfg(test)]
mod tests {
    use super::write::write_snapshot;
    use super::*;
    use crate::vector::collection::{Distance, PointsOp};
    use crate::vector::point::PointStruct;

    pub(super) fn collection() -> Collection {
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
            field_indexes: Vec::new(),
            quantizer: None,
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
            None::<std::iter::Empty<GraphRecord>>,
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
        flagged.flags = 2;
        assert!(matches!(
            restore_forged(flagged, &honest),
            Err(SnapshotError::UnsupportedFlags(2))
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

    fn restore_forged_graph(
        mut header: SnapshotHeader,
        records: Vec<GraphRecord>,
    ) -> Result<Collection, SnapshotError> {
        header.flags = FLAG_HNSW_GRAPH;
        let entries: Vec<SnapshotEntry> = (0..4).map(|i| point(i, i as f32, 1)).collect();
        let refs = entries.iter().map(|e| match e {
            SnapshotEntry::Point { id, vector, payload, version } => {
                EntryRef::Point { id: *id, vector, payload, version: *version }
            }
            SnapshotEntry::Deleted { id, seq } => EntryRef::Deleted { id: *id, seq: *seq },
        });
        let mut bytes = Vec::new();
        write_snapshot(header, refs, Some(records.into_iter()), &mut bytes, &SnapshotOptions::default())?;
        restore_full(&bytes[..], &mut |_| ())
    }

    fn graph_header(nodes: u64, entry: Option<(u32, u8)>) -> GraphRecord {
        GraphRecord::Header(crate::vector::hnsw::GraphHeader { m: 16, nodes, entry, rng_word_pos: 0 })
    }

    fn node(layers: &[&[u32]]) -> GraphRecord {
        GraphRecord::Node(crate::vector::hnsw::GraphNode { layers: layers.iter().map(|l| l.to_vec()).collect() })
    }

    #[test]
    fn checksum_valid_but_wrong_graphs_are_rejected() {
        let c = collection();
        let h = full_header(&c);
        let ring = |entry| {
            vec![graph_header(4, entry), node(&[&[1, 3]]), node(&[&[0, 2]]), node(&[&[1, 3]]), node(&[&[2, 0]])]
        };
        // An honest, hand-written graph loads.
        assert_eq!(restore_forged_graph(h.clone(), ring(Some((0, 0)))).unwrap().digest(), c.digest());
        let invalid = |records: Vec<GraphRecord>, what: &str| {
            match restore_forged_graph(h.clone(), records) {
                Err(SnapshotError::InvalidGraph(reason)) => assert!(reason.contains(what), "{what}: got {reason}"),
                other => panic!("{what}: expected InvalidGraph, got {other:?}"),
            }
        };
        invalid(vec![], "missing or incomplete");
        invalid(vec![node(&[&[1]])], "before the graph header");
        invalid(ring(Some((0, 0)))[..4].to_vec(), "missing or incomplete");
        let mut extra = ring(Some((0, 0)));
        extra.push(node(&[&[0]]));
        invalid(extra, "more graph nodes than announced");
        let mut twice = ring(Some((0, 0)));
        twice.insert(2, graph_header(4, Some((0, 0))));
        invalid(twice, "second graph header");
        invalid(vec![graph_header(3, Some((0, 0))), node(&[&[1]]), node(&[&[0]]), node(&[&[0]])], "3 nodes, the snapshot 4");
        let mut wrong_m = ring(Some((0, 0)));
        wrong_m[0] = GraphRecord::Header(crate::vector::hnsw::GraphHeader { m: 8, nodes: 4, entry: Some((0, 0)), rng_word_pos: 0 });
        invalid(wrong_m, "m = 8");
        invalid(ring(None), "without an entry point");
        invalid(ring(Some((4, 0))), "entry point 4 out of range");
        invalid(ring(Some((1, 1))), "not on the top level");
        let mut out_of_range = ring(Some((0, 0)));
        out_of_range[2] = node(&[&[0, 4]]);
        invalid(out_of_range, "node 1 links to 4");
        let mut self_link = ring(Some((0, 0)));
        self_link[3] = node(&[&[2]]);
        invalid(self_link, "node 2 links to 2");
        let mut too_many = ring(Some((0, 0)));
        too_many[1] = node(&[&[1; 33]]);
        invalid(too_many, "33 neighbours on layer 0");
        let mut dead_layer = ring(Some((0, 1)));
        dead_layer[1] = node(&[&[1], &[2]]);
        invalid(dead_layer, "where 2 does not live");
        // The same layer-1 link is fine once its target lives on layer 1 (and the entry is on top).
        let mut live_layer = ring(Some((0, 1)));
        live_layer[1] = node(&[&[1], &[2]]);
        live_layer[3] = node(&[&[1], &[0]]);
        assert!(restore_forged_graph(h.clone(), live_layer).is_ok());
        let mut incremental = h.clone();
        incremental.kind = SnapshotKind::Incremental { base_seq: 0, base_digest: [0; 32] };
        incremental.flags = FLAG_HNSW_GRAPH;
        assert!(matches!(
            restore_forged(incremental, &[]),
            Err(SnapshotError::MalformedHeader(m)) if m.contains("graph in an incremental")
        ));
        // Graph chunks where the header did not announce any are an unexpected section.
        let mut bytes = Vec::new();
        let entries: Vec<SnapshotEntry> = (0..4).map(|i| point(i, i as f32, 1)).collect();
        let refs = entries.iter().map(|e| match e {
            SnapshotEntry::Point { id, vector, payload, version } => {
                EntryRef::Point { id: *id, vector, payload, version: *version }
            }
            SnapshotEntry::Deleted { .. } => unreachable!(),
        });
        write_snapshot(h, refs, Some(ring(Some((0, 0))).into_iter()), &mut bytes, &SnapshotOptions::default()).unwrap();
        assert!(matches!(restore_full(&bytes[..], &mut |_| ()), Err(SnapshotError::UnexpectedTag { tag: 0xC2, .. })));
    }

    #[test]
    fn quantizer_parameters_must_fit_the_config() {
        let c = collection();
        let honest: Vec<SnapshotEntry> = (0..4).map(|i| point(i, i as f32, 1)).collect();
        let mut forged = full_header(&c);
        forged.quantizer = Some(crate::vector::quantization::QuantizerParams::Binary(
            crate::vector::quantization::binary::BinaryParams { thresholds: vec![0.0, 0.0] },
        ));
        // A quantizer for an unquantized collection is refused, not silently ignored.
        assert!(matches!(restore_forged(forged, &honest), Err(SnapshotError::MalformedHeader(m)) if m.contains("quantizer")));
        // Binary thresholds of the wrong dimension for a binary collection: refused too.
        let mut binary = full_header(&c);
        binary.config.quantization = Some(crate::vector::quantization::QuantizationConfig::Binary { always_ram: None });
        binary.quantizer = Some(crate::vector::quantization::QuantizerParams::Binary(
            crate::vector::quantization::binary::BinaryParams { thresholds: vec![0.0; 3] },
        ));
        assert!(matches!(restore_forged(binary.clone(), &honest), Err(SnapshotError::MalformedHeader(m)) if m.contains("quantizer")));
        // The right dimension restores (and the digest ignores quantization).
        binary.quantizer = Some(crate::vector::quantization::QuantizerParams::Binary(
            crate::vector::quantization::binary::BinaryParams { thresholds: vec![0.0; 2] },
        ));
        let restored = restore_forged(binary, &honest).unwrap();
        assert_eq!(restored.digest(), c.digest());
        assert!(restored.quantization_active());
    }

    #[test]
    fn version_and_magic_are_checked_first() {
        let c = collection();
        let mut bytes = Vec::new();
        write_full_snapshot(&c, &mut bytes, &SnapshotOptions::default()).unwrap();
        let mut other_version = bytes.clone();
        other_version[8] = 5;
        assert!(matches!(
            read_header(&other_version[..]),
            Err(SnapshotError::UnsupportedVersion { found: 5, supported: 4 })
        ));
        other_version[8] = 0;
        assert!(matches!(read_header(&other_version[..]), Err(SnapshotError::UnsupportedVersion { found: 0, .. })));
        let mut not_ours = bytes.clone();
        not_ours[0] = b'X';
        assert!(matches!(read_header(&not_ours[..]), Err(SnapshotError::BadMagic)));
        assert!(matches!(read_header(&[][..]), Err(SnapshotError::Truncated("magic"))));
    }
}
