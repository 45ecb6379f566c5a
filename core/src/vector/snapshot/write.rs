//! Writing snapshots: full or incremental, streamed in checksummed zstd chunks.

use super::graph::{GraphRecord, GraphSource};
use super::*;

/// Writes a full snapshot of `collection`, with its HNSW graph when it has one worth keeping
/// (see `Collection::graph_export`).
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
        field_indexes: field_indexes(collection),
        quantizer: collection.quantizer_params(),
    };
    let graph = collection.graph_export().map(|(graph, ordinal, slots)| GraphSource { graph, ordinal, slots });
    let header = SnapshotHeader { flags: if graph.is_some() { FLAG_HNSW_GRAPH } else { 0 }, ..header };
    let written = write_snapshot(header, collection.points().map(point_entry), graph.as_ref().map(GraphSource::records), out, options)?;
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
        field_indexes: field_indexes(collection),
        quantizer: collection.quantizer_params(),
    };
    let deletions =
        collection.deletions_since(base.seq).map(|(id, seq)| EntryRef::Deleted { id, seq });
    let points = collection.points_changed_since(base.seq).map(point_entry);
    let no_graph = None::<std::iter::Empty<GraphRecord>>;
    let written = write_snapshot(header, deletions.chain(points), no_graph, out, options)?;
    let header = &written.summary.header;
    debug_assert_eq!(written.entries, (header.upsert_count, header.deletion_count));
    Ok(written.summary)
}

/// What [`write_snapshot`] produced, plus the (points, deletions) it actually wrote, which the
/// public writers check against the header they promised.
pub(super) struct Written {
    summary: SnapshotSummary,
    entries: (u64, u64),
}

fn field_indexes(collection: &Collection) -> Vec<(String, FieldSchema)> {
    collection.field_indexes().into_iter().map(|(field, (schema, _))| (field, schema)).collect()
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

pub(super) fn write_snapshot<'a, W: Write>(
    header: SnapshotHeader,
    entries: impl Iterator<Item = EntryRef<'a>>,
    graph: Option<impl Iterator<Item = GraphRecord>>,
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
            write_chunk(&mut w, CHUNK_TAG, &raw, in_chunk, options.zstd_level)?;
            chunks += 1;
            raw.clear();
            in_chunk = 0;
        }
        raw.extend_from_slice(&entry_buf);
        in_chunk += 1;
        if raw.len() >= target {
            write_chunk(&mut w, CHUNK_TAG, &raw, in_chunk, options.zstd_level)?;
            chunks += 1;
            raw.clear();
            in_chunk = 0;
        }
    }
    if !raw.is_empty() {
        write_chunk(&mut w, CHUNK_TAG, &raw, in_chunk, options.zstd_level)?;
        chunks += 1;
    }
    if let Some(graph) = graph {
        chunks += write_graph(&mut w, graph, target, options.zstd_level, chunks)?;
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

/// Writes the graph section in chunks of about `target` raw bytes; returns how many.
fn write_graph<W: Write>(
    w: &mut HashingWriter<W>,
    records: impl Iterator<Item = GraphRecord>,
    target: usize,
    level: i32,
    chunks_before: u64,
) -> Result<u64, SnapshotError> {
    let mut raw = Vec::new();
    let mut in_chunk = 0u32;
    let mut chunks = 0u64;
    for record in records {
        let before = raw.len();
        raw = postcard::to_extend(&record, raw).map_err(|e| SnapshotError::MalformedChunk {
            chunk: chunks_before + chunks,
            reason: e.to_string(),
        })?;
        in_chunk += 1;
        // A node is at most (1 + MAX_LEVEL) lists of at most 2 * MAX_OWN_M words: far below a chunk.
        debug_assert!(raw.len() - before < MAX_CHUNK_BYTES as usize / 2);
        if raw.len() >= target.min(MAX_CHUNK_BYTES as usize / 2) {
            write_chunk(w, GRAPH_TAG, &raw, in_chunk, level)?;
            chunks += 1;
            raw.clear();
            in_chunk = 0;
        }
    }
    if !raw.is_empty() {
        write_chunk(w, GRAPH_TAG, &raw, in_chunk, level)?;
        chunks += 1;
    }
    Ok(chunks)
}

fn write_chunk<W: Write>(
    w: &mut HashingWriter<W>,
    tag: u8,
    raw: &[u8],
    entry_count: u32,
    level: i32,
) -> Result<(), SnapshotError> {
    let body =
        zstd::bulk::compress(raw, level).map_err(|e| SnapshotError::Compress(e.to_string()))?;
    let frame = chunk_frame(tag, entry_count, raw.len() as u32, body.len() as u32);
    let mut body_hasher = blake3::Hasher::new();
    body_hasher.update(&frame);
    body_hasher.update(&body);
    w.put(&frame)?;
    w.put(body_hasher.finalize().as_bytes())?;
    w.put(&body)?;
    Ok(())
}


