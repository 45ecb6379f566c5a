//! Reading snapshots: the checking reader, verify, and restores built aside.

use super::graph::{GraphProgress, GraphRecord};
use super::*;

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

/// One verified chunk of a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub enum SnapshotSection {
    /// Points (and, in incrementals, deletions).
    Points(Vec<SnapshotEntry>),
    /// Records of the HNSW graph (after every point).
    Graph(Vec<GraphRecord>),
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
    graph: GraphProgress,
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
        if !(SNAPSHOT_OLDEST_READABLE_VERSION..=SNAPSHOT_FORMAT_VERSION).contains(&version) {
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
        let header: SnapshotHeader = match version {
            1 => postcard::from_bytes::<SnapshotHeaderV1>(&header_bytes).map(SnapshotHeader::from),
            2 => postcard::from_bytes::<SnapshotHeaderV2>(&header_bytes).map(SnapshotHeader::from),
            3 => postcard::from_bytes::<SnapshotHeaderV3>(&header_bytes).map(SnapshotHeader::from),
            _ => postcard::from_bytes(&header_bytes),
        }
        .map_err(|e| SnapshotError::MalformedHeader(e.to_string()))?;
        let mut previous: Option<&str> = None;
        for (field, _) in &header.field_indexes {
            if normalise_field(field).as_deref() != Some(field.as_str()) {
                return Err(SnapshotError::MalformedHeader(format!("invalid indexed field `{field}`")));
            }
            if previous.is_some_and(|p| p >= field.as_str()) {
                return Err(SnapshotError::MalformedHeader("indexed fields out of order".into()));
            }
            previous = Some(field);
        }
        if header.flags & !KNOWN_FLAGS != 0 {
            return Err(SnapshotError::UnsupportedFlags(header.flags));
        }
        crate::vector::collection::validate_collection_name(&header.collection)?;
        header.config.validate()?;
        if header.flags & FLAG_HNSW_GRAPH != 0 && header.kind != SnapshotKind::Full {
            return Err(SnapshotError::MalformedHeader("graph in an incremental snapshot".into()));
        }
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
            graph: GraphProgress::default(),
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
    /// whole-file checksum have been verified (and nothing follows them). Graph chunks are
    /// verified and skipped (see [`Self::next_section`]).
    pub fn next_chunk(&mut self) -> Result<Option<Vec<SnapshotEntry>>, SnapshotError> {
        loop {
            match self.next_section()? {
                Some(SnapshotSection::Points(entries)) => return Ok(Some(entries)),
                Some(SnapshotSection::Graph(_)) => continue,
                None => return Ok(None),
            }
        }
    }

    /// The next chunk, point or graph, verified and validated; `None` once the end section and
    /// the whole-file checksum have been verified.
    pub fn next_section(&mut self) -> Result<Option<SnapshotSection>, SnapshotError> {
        if self.finished.is_some() {
            return Ok(None);
        }
        let [tag] = self.input.take_array::<1>("section tag")?;
        match tag {
            CHUNK_TAG if self.graph == GraphProgress::NotStarted => {
                self.read_chunk().map(|e| Some(SnapshotSection::Points(e)))
            }
            GRAPH_TAG if self.header.flags & FLAG_HNSW_GRAPH != 0 => {
                self.read_graph_chunk().map(|r| Some(SnapshotSection::Graph(r)))
            }
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

    /// Reads the rest of a chunk whose `tag` was read: frame, checksum, body; returns the entry
    /// count and the decompressed bytes.
    fn read_body(&mut self, tag: u8) -> Result<(u32, Vec<u8>), SnapshotError> {
        let chunk = self.chunks;
        let rest: [u8; FRAME_FIELDS + 4 - 1] = self.input.take_array("chunk frame")?;
        let entry_count = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
        let raw_len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let comp_len = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
        let frame = chunk_frame(tag, entry_count, raw_len, comp_len);
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
        Ok((entry_count, raw))
    }

    fn read_chunk(&mut self) -> Result<Vec<SnapshotEntry>, SnapshotError> {
        let chunk = self.chunks;
        let (entry_count, raw) = self.read_body(CHUNK_TAG)?;
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

    fn read_graph_chunk(&mut self) -> Result<Vec<GraphRecord>, SnapshotError> {
        let chunk = self.chunks;
        if self.upserts != self.header.upsert_count {
            return Err(SnapshotError::InvalidGraph(format!("graph chunk {chunk} before the last point")));
        }
        let (count, raw) = self.read_body(GRAPH_TAG)?;
        let mut records = Vec::with_capacity((count as usize).min(raw.len()));
        let mut rest = &raw[..];
        for _ in 0..count {
            let (record, tail) = postcard::take_from_bytes::<GraphRecord>(rest)
                .map_err(|e| SnapshotError::MalformedChunk { chunk, reason: e.to_string() })?;
            self.graph.accept(&record).map_err(SnapshotError::InvalidGraph)?;
            records.push(record);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(SnapshotError::MalformedChunk {
                chunk,
                reason: format!("{} bytes after the last graph record", rest.len()),
            });
        }
        self.chunks += 1;
        Ok(records)
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
        if self.header.flags & FLAG_HNSW_GRAPH != 0 && !self.graph.complete() {
            return Err(SnapshotError::InvalidGraph("the graph section is missing or incomplete".into()));
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
        (SnapshotKind::Full, base) => {
            let mut fresh = Collection::new(&reader.header.collection, reader.header.config)?;
            if let Some(replaced) = base {
                // The collection it replaces keeps its vectors where it kept them.
                fresh.set_vector_store(replaced.vector_store());
            }
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
    // With the graph, vectors go to the arena the loaded graph will own (no linking at all).
    let with_graph = full && reader.header.flags & FLAG_HNSW_GRAPH != 0;
    // A capacity hint from the (checksummed) header, capped: the arena grows as points come.
    let hint = reader.header.point_count.min(1 << 22) as usize;
    let mut arena = with_graph.then(|| collection.new_vector_store(hint));
    let mut loader = None;
    while let Some(section) = reader.next_section()? {
        match section {
            SnapshotSection::Points(entries) => {
                entries_done += entries.len() as u64;
                for entry in entries {
                    match entry {
                        SnapshotEntry::Point { id, vector, payload, version } if with_graph => {
                            let arena = arena.as_deref_mut().expect("made when with_graph");
                            collection.restore_point_unindexed(id, &vector, payload, version, arena)
                        }
                        SnapshotEntry::Point { id, vector, payload, version } => {
                            collection.restore_point(id, vector, payload, version)
                        }
                        SnapshotEntry::Deleted { id, seq } => collection.restore_deletion(id, seq),
                    }
                }
            }
            SnapshotSection::Graph(records) => {
                for record in records {
                    match record {
                        GraphRecord::Header(header) => {
                            loader = Some(collection.graph_loader(header).map_err(SnapshotError::InvalidGraph)?)
                        }
                        GraphRecord::Node(node) => loader
                            .as_mut()
                            .expect("the reader checks the header comes first")
                            .push(&node)
                            .map_err(SnapshotError::InvalidGraph)?,
                    }
                }
            }
        }
        progress(RestoreProgress { chunks_done: reader.chunks, entries_done, entries_total });
    }
    if let Some(arena) = arena {
        let loader = loader.expect("the reader checks the graph section is complete");
        let graph = loader.finish(arena).map_err(SnapshotError::InvalidGraph)?;
        collection.install_restored_graph(graph);
    }
    collection.finish_restore(reader.header.seq, full);
    collection.restore_quantizer(reader.header.quantizer.clone()).map_err(SnapshotError::MalformedHeader)?;
    collection.set_field_indexes(&reader.header.field_indexes);
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

