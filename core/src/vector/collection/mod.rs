//! One collection: its configuration, its stored points (the source of truth), the ANN index over
//! them, and the bookkeeping incremental snapshots need (sequence numbers, deletion log).
//!
//! Each vector is stored once: in the index's slot-indexed arena ([`AnnIndex::vector`]); the
//! point map keeps payload, version and slot. The stored points are a `BTreeMap` in id order, so everything derived from them (digest, scroll,
//! snapshots, exact search ties) is deterministic. The index is a cache: it is rebuilt from the
//! points at will, never consulted for what exists. Because indexes cannot delete, a replaced or
//! deleted point leaves a *tombstoned slot* that every index search rejects through its `accept`
//! callback; [`Collection::needs_rebuild`] / [`Collection::rebuild_index`] let the driver compact.

use crate::vector::error::{EngineError, VectorOwner};
use crate::vector::filter::Filter;
use crate::vector::index::{AnnIndex, IndexKind, IndexSpec, Metric, Slot, new_index_in};
use crate::vector::payload::{Payload, remove_path, split_key_path, validate_payload};
use crate::vector::payload_index::{FieldSchema, PayloadIndex};
use crate::vector::point::{PointId, PointStruct, Record, ScoredPoint};
use crate::vector::quantization::{QuantizationConfig, QuantizationSearchParams, QuantizedVectors};
use crate::vector::vector_store::{InMemoryVectors, VectorStore, VectorStoreProvider};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

mod changes;
mod indexing;
mod quantized;
mod query;
mod restore;

pub use changes::{Change, ChangesPage, MAX_CHANGES_PAGE};
pub use indexing::IndexingPolicy;
pub use quantized::QuantizerPolicy;

/// Largest accepted vector size.
pub const MAX_VECTOR_SIZE: u32 = 65_536;
/// Largest accepted HNSW `m` (hnsw_rs terminates the process above 256).
pub const MAX_HNSW_M: u32 = 256;
/// Largest accepted `ef` / `ef_construct` (larger values only burn CPU).
pub const MAX_HNSW_EF: u32 = 65_536;
/// Longest accepted collection name, in bytes.
pub const MAX_COLLECTION_NAME_LEN: usize = 255;

/// With a filter, search brute-forces the matching points instead of using the index when at most
/// this many points match (or see [`FILTERED_EXACT_FRACTION_PERCENT`]). Counting matches is a
/// cheap payload scan, and a graph search with a very selective `accept` callback degrades badly.
pub const FILTERED_EXACT_MAX_MATCHES: usize = 4_096;
/// ... or when at most this percentage of the live points match.
pub const FILTERED_EXACT_FRACTION_PERCENT: usize = 5;

/// Full snapshots carry the HNSW graph only while tombstones are at most this percentage of the
/// index's slots (see [`Collection::graph_export`]).
pub const GRAPH_EXPORT_MAX_TOMBSTONE_PERCENT: usize = 10;

/// Capacity hint for a new or rebuilt index: at least this many slots, so a graph index never
/// starts from a degenerate size.
const MIN_INDEX_CAPACITY_HINT: usize = 1_024;

/// How similarity is measured (Qdrant's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Distance {
    /// Cosine similarity; vectors are normalised at insert and query.
    Cosine,
    /// Euclidean distance (score is the distance; lower is better).
    Euclid,
    /// Dot product (higher is better).
    Dot,
}

impl Distance {
    fn metric(self) -> Metric {
        match self {
            Distance::Cosine => Metric::CosineNormalized,
            Distance::Euclid => Metric::L2Squared,
            Distance::Dot => Metric::NegDot,
        }
    }

    /// The Qdrant score of a stored vector against a (prepared) query.
    pub fn score(self, query: &[f32], stored: &[f32]) -> f32 {
        match self {
            Distance::Cosine | Distance::Dot => crate::vector::distance::dot(query, stored),
            Distance::Euclid => crate::vector::distance::l2_squared(query, stored).sqrt(),
        }
    }

    /// Orders two scores best first. A total order (NaN sorts consistently), except that `-0.0`
    /// and `0.0` tie: summation order decides the sign of a zero, and it must not decide ranks.
    pub fn compare_scores(self, a: f32, b: f32) -> Ordering {
        let (a, b) = (a + 0.0, b + 0.0);
        match self {
            Distance::Euclid => a.total_cmp(&b),
            Distance::Cosine | Distance::Dot => b.total_cmp(&a),
        }
    }

    /// Whether `score` passes a Qdrant `score_threshold` (a max distance for Euclid, a min score
    /// otherwise).
    pub fn passes_threshold(self, score: f32, threshold: f32) -> bool {
        match self {
            Distance::Euclid => score <= threshold,
            Distance::Cosine | Distance::Dot => score >= threshold,
        }
    }
}

/// HNSW build and search parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Max neighbours per node per layer (2..=256).
    pub m: u32,
    /// Candidate list size while building (>= 1).
    pub ef_construct: u32,
    /// Default candidate list size while searching (>= 1); a request may override it.
    pub ef: u32,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams { m: 16, ef_construct: 100, ef: 64 }
    }
}

/// Everything fixed at collection creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// Vector dimension.
    pub vector_size: u32,
    /// Similarity measure.
    pub distance: Distance,
    /// Index parameters.
    pub hnsw: HnswParams,
    /// Rebuild the index once tombstoned slots reach this percentage of all slots (1..=100).
    pub rebuild_tombstone_percent: u8,
    /// Quantized codes the index walk ranks by, `None` for none (see
    /// [`crate::vector::quantization`]). Not part of the digest.
    pub quantization: Option<QuantizationConfig>,
    /// Keep the f32 vectors in a file the runtime maps instead of on the heap (Qdrant's
    /// `vectors.on_disk`). Core only carries the wish: the runtime acts on it with
    /// [`Collection::set_vector_store`] on every replica it hosts. Results never depend on it,
    /// so it is not part of the digest.
    pub on_disk: bool,
}

impl CollectionConfig {
    /// A config with default HNSW parameters and a 20% rebuild threshold.
    pub fn new(vector_size: u32, distance: Distance) -> Self {
        CollectionConfig {
            vector_size,
            distance,
            hnsw: HnswParams::default(),
            rebuild_tombstone_percent: 20,
            quantization: None,
            on_disk: false,
        }
    }

    /// Rejects values the index libraries cannot take or that make no sense.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |msg: String| Err(EngineError::InvalidConfig(msg));
        if self.vector_size == 0 || self.vector_size > MAX_VECTOR_SIZE {
            return bad(format!("vector size {} not in 1..={MAX_VECTOR_SIZE}", self.vector_size));
        }
        if !(2..=MAX_HNSW_M).contains(&self.hnsw.m) {
            return bad(format!("hnsw m {} not in 2..={MAX_HNSW_M}", self.hnsw.m));
        }
        if !(1..=MAX_HNSW_EF).contains(&self.hnsw.ef_construct) {
            return bad(format!(
                "hnsw ef_construct {} not in 1..={MAX_HNSW_EF}",
                self.hnsw.ef_construct
            ));
        }
        if !(1..=MAX_HNSW_EF).contains(&self.hnsw.ef) {
            return bad(format!("hnsw ef {} not in 1..={MAX_HNSW_EF}", self.hnsw.ef));
        }
        if !(1..=100).contains(&self.rebuild_tombstone_percent) {
            return bad(format!(
                "rebuild_tombstone_percent {} not in 1..=100",
                self.rebuild_tombstone_percent
            ));
        }
        if let Some(quantization) = &self.quantization {
            quantization.validate().map_err(EngineError::InvalidConfig)?;
        }
        Ok(())
    }
}

/// Checks a collection name: non-empty, at most 255 bytes, letters, digits, `-`, `_`, `.`, not
/// starting with `.` (names become URL path segments and file names).
pub fn validate_collection_name(name: &str) -> Result<(), EngineError> {
    let bad = |reason| Err(EngineError::InvalidCollectionName { name: name.to_string(), reason });
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_COLLECTION_NAME_LEN {
        return bad("longer than 255 bytes");
    }
    if name.starts_with('.') {
        return bad("starts with `.`");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return bad("only ASCII letters, digits, `-`, `_` and `.` are allowed");
    }
    Ok(())
}

/// Which points a delete or payload command targets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PointSelector {
    /// These ids.
    Ids(Vec<PointId>),
    /// Every point matching the filter.
    Filter(Filter),
}

/// A command on the points of one collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PointsOp {
    /// Insert or replace points (all or nothing).
    Upsert(Vec<PointStruct>),
    /// Delete points; ids that do not exist are ignored.
    Delete(PointSelector),
    /// Merge these keys into the payloads (other keys stay).
    SetPayload {
        /// Target points; with ids, every id must exist.
        selector: PointSelector,
        /// Keys to set.
        payload: Payload,
    },
    /// Replace the payloads entirely.
    OverwritePayload {
        /// Target points; with ids, every id must exist.
        selector: PointSelector,
        /// The new payload.
        payload: Payload,
    },
    /// Remove keys (dotted paths allowed) from the payloads.
    DeletePayloadKeys {
        /// Target points; with ids, every id must exist.
        selector: PointSelector,
        /// Keys to remove.
        keys: Vec<String>,
    },
    /// Declare a payload field index (Qdrant's `create_field_index`). A command in the log (not
    /// a local side effect) so that every replica builds the index at the same log position and
    /// a replica restored from a snapshot or a WAL replay declares exactly what its peers do.
    /// Re-declaring a field with the same schema is a successful no-op; with another schema it
    /// is refused, identically on every replica, and changes nothing (the error is the answer).
    /// Appended after the older variants: postcard encodes the variant index, so existing logs,
    /// WALs and snapshots decode unchanged.
    CreateFieldIndex {
        /// Payload key (dotted path; `a[].b` and `a.b` name the same field).
        field: String,
        /// What the index indexes.
        schema: FieldSchema,
    },
    /// Drop a payload field index; dropping a field that has none is a successful no-op.
    DeleteFieldIndex {
        /// Payload key (dotted path).
        field: String,
    },
    /// Replace the collection's quantization (Qdrant's `PATCH /collections/{c}` with
    /// `quantization_config`; `None` is its `"Disabled"`). In the log for the reason field
    /// indexes are: every replica drops its codes and trains new ones at the same log position,
    /// from the same slots, so replicas keep ranking alike, and a snapshot (whose config and
    /// quantizer parameters carry the change) or a WAL replay restores exactly that. Setting
    /// the quantization a collection already has is a successful no-op. Points, `seq` and the
    /// digest are untouched: codes only choose which candidates get rescored. Appended last.
    SetQuantization {
        /// The new quantization.
        quantization: Option<QuantizationConfig>,
    },
    /// Move the collection's f32 vectors to a mapped file or back to the heap (Qdrant's
    /// `PATCH` with `vectors: {"": {"on_disk": ...}}`). In the log like `SetQuantization`, so
    /// every replica and every snapshot of it agrees on the config. Turning it off moves the
    /// vectors to the heap here; turning it on is finished by the host, which owns the files
    /// (the runtime's shard engines, the simulator's file store): the engine only records the
    /// flag. Setting what it already is is a no-op. Points, `seq` and the digest are untouched
    /// (same slots, same graph). Appended last.
    SetVectorsOnDisk {
        /// Whether the vectors live on disk.
        on_disk: bool,
    },
}

/// A stored point's bookkeeping; its vector lives in the index arena under `slot`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StoredPoint {
    /// The payload.
    pub payload: Payload,
    /// Collection sequence number of the command that last changed this point.
    pub version: u64,
    slot: Slot,
}

/// A stored point as read through [`Collection::point`] / [`Collection::points`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointRef<'a> {
    /// The vector as stored (normalised for Cosine), borrowed from the index arena.
    pub vector: &'a [f32],
    /// The payload.
    pub payload: &'a Payload,
    /// Collection sequence number of the command that last changed this point.
    pub version: u64,
}

/// A search query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// Query vector (normalised here for Cosine collections).
    pub vector: Vec<f32>,
    /// How many hits to return.
    pub limit: usize,
    /// How many best hits to skip first (paging).
    pub offset: usize,
    /// Search breadth; defaults to the collection's `hnsw.ef`. Raised to `limit + offset` if lower.
    pub ef: Option<usize>,
    /// Only points matching this filter.
    pub filter: Option<Filter>,
    /// Return payloads.
    pub with_payload: bool,
    /// Return vectors.
    pub with_vector: bool,
    /// Drop hits worse than this score (see [`Distance::passes_threshold`]).
    pub score_threshold: Option<f32>,
    /// Brute force over the stored points instead of the index (ground truth; deterministic).
    pub exact: bool,
    /// How a quantized collection uses its codes (`None`: the defaults, rescoring on).
    pub quantization: Option<QuantizationSearchParams>,
}

impl SearchRequest {
    /// A top-`limit` search with defaults: no filter, no payload/vector, approximate.
    pub fn new(vector: Vec<f32>, limit: usize) -> Self {
        SearchRequest {
            vector,
            limit,
            offset: 0,
            ef: None,
            filter: None,
            with_payload: false,
            with_vector: false,
            score_threshold: None,
            exact: false,
            quantization: None,
        }
    }
}

/// A scroll query: points in id order starting at `offset`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScrollRequest {
    /// First id to return (inclusive); `None` starts at the smallest id.
    pub offset: Option<PointId>,
    /// Page size.
    pub limit: usize,
    /// Only points matching this filter.
    pub filter: Option<Filter>,
    /// Return payloads.
    pub with_payload: bool,
    /// Return vectors.
    pub with_vector: bool,
}

/// One page of a scroll.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScrollPage {
    /// Points in id order.
    pub points: Vec<Record>,
    /// Where the next page starts, `None` at the end.
    pub next_offset: Option<PointId>,
}

/// A collection of points with its index.
pub struct Collection {
    name: String,
    config: CollectionConfig,
    points: BTreeMap<PointId, StoredPoint>,
    /// Commands applied since creation.
    seq: u64,
    /// Ids deleted (and not re-upserted since), with the sequence number of the deletion.
    deletion_log: BTreeMap<PointId, u64>,
    /// The deletion log is complete only for deletions after this sequence number.
    deletion_log_floor: u64,
    index: Box<dyn AnnIndex>,
    /// Slot -> id of the live point in it, `None` for a tombstone.
    slot_owner: Vec<Option<PointId>>,
    /// Posting lists of the declared payload fields (derived from `points`).
    payload_index: PayloadIndex,
    /// Quantized codes of every index slot, when the config asks for them.
    quantized: Option<QuantizedVectors>,
    /// When this replica links stored vectors into the graph (local, see `indexing`).
    indexing: IndexingPolicy,
    /// When this replica trains its quantizer (local, see `quantized`).
    quantizer: QuantizerPolicy,
    /// Where every index this collection builds keeps its f32 vectors (local, see
    /// [`Collection::set_vector_store`]).
    vector_store: Arc<dyn VectorStoreProvider>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("points", &self.points.len())
            .field("seq", &self.seq)
            .field("tombstones", &self.tombstone_count())
            .finish()
    }
}

impl Collection {
    /// An empty collection; validates name and config.
    pub fn new(name: &str, config: CollectionConfig) -> Result<Collection, EngineError> {
        validate_collection_name(name)?;
        config.validate()?;
        Ok(Collection {
            name: name.to_string(),
            config,
            points: BTreeMap::new(),
            seq: 0,
            deletion_log: BTreeMap::new(),
            deletion_log_floor: 0,
            index: new_index_in(&index_spec(&config, 0, name), &InMemoryVectors),
            slot_owner: Vec::new(),
            payload_index: PayloadIndex::default(),
            quantized: quantized::empty_codes(&config),
            indexing: IndexingPolicy::IMMEDIATE,
            quantizer: QuantizerPolicy::default(),
            vector_store: Arc::new(InMemoryVectors),
        })
    }

    /// Makes `provider` the home of this collection's f32 vectors: the current ones move there
    /// now (same slots, same graph, so results do not change), and every later rebuild, restore
    /// and copy takes its store from it. A replica-local choice (Qdrant's `on_disk` vectors):
    /// never replicated, never in a snapshot or the digest.
    pub fn set_vector_store(&mut self, provider: Arc<dyn VectorStoreProvider>) {
        // Every index the collection builds is our HNSW, which takes a store; another kind would
        // keep its vectors its own way until the next rebuild.
        self.index.relocate_vectors(&*provider);
        self.vector_store = provider;
    }

    /// Records whether the vectors live on disk; true if it changed. Turning it off brings
    /// vectors kept outside the heap back to it at once; turning it on leaves the move to the
    /// host, which gives the collection its file store (see [`PointsOp::SetVectorsOnDisk`]).
    pub fn set_vectors_on_disk(&mut self, on_disk: bool) -> bool {
        if self.config.on_disk == on_disk {
            return false;
        }
        self.config.on_disk = on_disk;
        if !on_disk && self.vector_store.is_external() {
            self.set_vector_store(Arc::new(InMemoryVectors));
        }
        true
    }

    /// Where this collection keeps its f32 vectors.
    pub fn vector_store(&self) -> Arc<dyn VectorStoreProvider> {
        Arc::clone(&self.vector_store)
    }

    /// A fresh index of this collection's kind, vectors in its store, sized for `capacity` points.
    fn new_index(&self, capacity: usize) -> Box<dyn AnnIndex> {
        new_index_in(&index_spec(&self.config, capacity, &self.name), &*self.vector_store)
    }

    /// An empty vector store from this collection's provider (a restore fills it row by row).
    pub(crate) fn new_vector_store(&self, capacity: usize) -> Box<dyn VectorStore> {
        self.vector_store.create(self.config.vector_size as usize, capacity)
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Relabels the collection (a replicated replace gave its shard group another name). The
    /// name is a label: the digest and every point stay as they are.
    pub fn set_name(&mut self, name: &str) -> Result<(), EngineError> {
        validate_collection_name(name)?;
        self.name = name.to_string();
        Ok(())
    }

    /// The collection's configuration.
    pub fn config(&self) -> &CollectionConfig {
        &self.config
    }

    /// Number of successful commands applied (the incremental-snapshot clock).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of stored points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when no point is stored.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The stored point with this id.
    pub fn point(&self, id: PointId) -> Option<PointRef<'_>> {
        self.points.get(&id).map(|p| self.point_ref(p))
    }

    /// All stored points in id order.
    pub fn points(&self) -> impl Iterator<Item = (PointId, PointRef<'_>)> {
        self.points.iter().map(|(id, p)| (*id, self.point_ref(p)))
    }

    fn point_ref<'a>(&'a self, p: &'a StoredPoint) -> PointRef<'a> {
        PointRef { vector: self.vector_of(p), payload: &p.payload, version: p.version }
    }

    /// The vector of a live point: the index holds every live slot (an internal invariant kept by
    /// `put_point` and the rebuilds, not something input can break).
    fn vector_of(&self, p: &StoredPoint) -> &[f32] {
        self.index.vector(p.slot).expect("every live point's slot is in the index arena")
    }

    /// Stored points passing `filter` (all points without one), in id order. The filter must be
    /// validated already.
    /// When the payload index (or a `has_id` condition) narrows the filter, only its candidates
    /// are checked; otherwise every point is.
    fn matching<'a>(
        &'a self,
        filter: Option<&'a Filter>,
    ) -> Box<dyn Iterator<Item = (PointId, &'a StoredPoint)> + 'a> {
        self.matching_from(std::ops::Bound::Unbounded, filter)
    }

    /// [`Self::matching`] for ids from `start` on.
    fn matching_from<'a>(
        &'a self,
        start: std::ops::Bound<PointId>,
        filter: Option<&'a Filter>,
    ) -> Box<dyn Iterator<Item = (PointId, &'a StoredPoint)> + 'a> {
        let range = (start, std::ops::Bound::Unbounded);
        match filter.and_then(|f| Some((f, self.payload_index.candidates(f)?))) {
            Some((filter, candidates)) => Box::new(
                candidates
                    .into_iter()
                    .filter(move |id| std::ops::RangeBounds::contains(&range, id))
                    .filter_map(|id| self.points.get_key_value(&id).map(|(id, p)| (*id, p)))
                    .filter(move |(id, p)| filter.matches(*id, &p.payload)),
            ),
            None => Box::new(
                self.points
                    .range(range)
                    .map(|(id, p)| (*id, p))
                    .filter(move |(id, p)| filter.is_none_or(|f| f.matches(*id, &p.payload))),
            ),
        }
    }

    /// Declares a payload field index (Qdrant's `create_field_index`) and indexes every point;
    /// whether it is new (declaring an existing field with the same schema is a no-op).
    pub fn create_field_index(&mut self, field: &str, schema: FieldSchema) -> Result<bool, EngineError> {
        let points = self.points.iter().map(|(id, p)| (*id, &p.payload));
        self.payload_index.create(field, schema, points).map_err(|e| EngineError::InvalidRequest(e.to_string()))
    }

    /// Drops a payload field index; whether it existed.
    pub fn drop_field_index(&mut self, field: &str) -> bool {
        self.payload_index.drop_field(field)
    }

    /// Declared payload field indexes: normalised field -> (schema, points indexed).
    pub fn field_indexes(&self) -> BTreeMap<String, (FieldSchema, usize)> {
        self.payload_index
            .schemas()
            .into_iter()
            .map(|(field, schema)| {
                let points = self.payload_index.indexed_points(&field).unwrap_or(0);
                (field, (schema, points))
            })
            .collect()
    }

    /// Points changed after sequence number `seq`, in id order.
    pub fn points_changed_since(&self, seq: u64) -> impl Iterator<Item = (PointId, PointRef<'_>)> {
        self.points().filter(move |(_, p)| p.version > seq)
    }

    /// Ids deleted after `seq` and not re-upserted since, with the deletion's sequence number.
    /// Complete only when `seq >= self.deletion_log_floor()`.
    pub fn deletions_since(&self, seq: u64) -> impl Iterator<Item = (PointId, u64)> + '_ {
        self.deletion_log.iter().filter(move |(_, s)| **s > seq).map(|(id, s)| (*id, *s))
    }

    /// Deletions at or before this sequence number may have been forgotten; incremental
    /// snapshots need a base at or after it.
    pub fn deletion_log_floor(&self) -> u64 {
        self.deletion_log_floor
    }

    /// Forgets deletions at or before `seq` (once no incremental snapshot will use an older base),
    /// bounding the deletion log.
    pub fn prune_deletion_log(&mut self, seq: u64) {
        let seq = seq.min(self.seq);
        self.deletion_log.retain(|_, s| *s > seq);
        self.deletion_log_floor = self.deletion_log_floor.max(seq);
    }

    /// Tombstoned index slots (deleted or replaced points the index still holds).
    pub fn tombstone_count(&self) -> usize {
        self.slot_owner.len() - self.points.len()
    }

    /// Whether tombstones reached the configured share of index slots.
    pub fn needs_rebuild(&self) -> bool {
        let tombstones = self.tombstone_count();
        tombstones > 0
            && tombstones * 100
                >= self.config.rebuild_tombstone_percent as usize * self.slot_owner.len()
    }

    /// Rebuilds the index from the stored points (in id order, so deterministic), dropping all
    /// tombstones: slots are renumbered densely, so freed slots are reused. The new index is
    /// built aside (reading vectors from the old arena) and swapped in at the end.
    pub fn rebuild_index(&mut self) {
        let (index, owners) = self.build_compacted_index();
        self.index = index;
        self.slot_owner = owners;
        for (slot, point) in self.points.values_mut().enumerate() {
            point.slot = slot;
        }
        self.retrain_quantizer();
        debug_assert_eq!(self.tombstone_count(), 0);
    }

    /// [`Self::rebuild_index`] on up to `threads` threads: for the driver's bulk rebuilds and
    /// loads outside the replicated log only. Same points, slots and digest; the graph's links
    /// depend on thread timing, so approximate results may differ between replicas (exact search,
    /// reads and digests never do). The state machine itself always uses `rebuild_index`.
    pub fn rebuild_index_parallel(&mut self, threads: usize) {
        let mut index = self.new_index(self.points.len());
        let batch: Vec<(Slot, &[f32])> =
            self.points.values().enumerate().map(|(slot, p)| (slot, self.vector_of(p))).collect();
        index.insert_bulk(&batch, threads);
        drop(batch);
        self.slot_owner = self.points.keys().map(|id| Some(*id)).collect();
        self.index = index;
        for (slot, point) in self.points.values_mut().enumerate() {
            point.slot = slot;
        }
        self.retrain_quantizer();
    }

    /// A fresh index over the live points in id order (slot `i` = `i`-th id) and its owners.
    fn build_compacted_index(&self) -> (Box<dyn AnnIndex>, Vec<Option<PointId>>) {
        let mut index = self.new_index(self.points.len());
        let mut owners = Vec::with_capacity(self.points.len());
        for (slot, (id, point)) in self.points.iter().enumerate() {
            index.insert(slot, self.vector_of(point));
            owners.push(Some(*id));
        }
        (index, owners)
    }

    /// blake3 digest of the contents: config and every point (id, vector, payload) in id order,
    /// postcard-encoded. Replicas that applied the same commands have equal digests; index,
    /// sequence numbers and versions are not part of it.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"vecraft/collection-digest/v1");
        // The config as encoded before quantization existed: quantization is index
        // configuration and `on_disk` storage, so neither changes the digest (nor any older one).
        let c = &self.config;
        let legacy_config = (c.vector_size, c.distance, c.hnsw, c.rebuild_tombstone_percent);
        let mut buf = postcard::to_stdvec(&legacy_config).expect("config always encodes");
        hasher.update(&(buf.len() as u64).to_le_bytes());
        hasher.update(&buf);
        hasher.update(&(self.points.len() as u64).to_le_bytes());
        for (id, point) in &self.points {
            buf.clear();
            buf = postcard::to_extend(&(id, self.vector_of(point), &point.payload), buf)
                .expect("in-memory point always encodes");
            hasher.update(&(buf.len() as u64).to_le_bytes());
            hasher.update(&buf);
        }
        *hasher.finalize().as_bytes()
    }

    /// Applies one points command. Validates everything first: on error nothing changed.
    /// Returns how many points the command touched. Every success advances [`Self::seq`].
    pub fn apply(&mut self, op: PointsOp) -> Result<usize, EngineError> {
        match op {
            PointsOp::Upsert(points) => {
                let prepared = points
                    .into_iter()
                    .map(|p| {
                        validate_payload(&p.payload)?;
                        let vector = self.prepare_vector(p.vector, VectorOwner::Point(p.id))?;
                        Ok((p.id, vector, p.payload))
                    })
                    .collect::<Result<Vec<_>, EngineError>>()?;
                let seq = self.next_seq();
                let n = prepared.len();
                for (id, vector, payload) in prepared {
                    self.put_point(id, vector, payload, seq);
                }
                Ok(n)
            }
            PointsOp::Delete(selector) => {
                let ids = self.select(&selector, false)?;
                let seq = self.next_seq();
                for id in &ids {
                    self.remove_point(*id, seq);
                }
                Ok(ids.len())
            }
            PointsOp::SetPayload { selector, payload } => {
                validate_payload(&payload)?;
                self.update_payloads(&selector, |p| {
                    p.extend(payload.iter().map(|(k, v)| (k.clone(), v.clone())))
                })
            }
            PointsOp::OverwritePayload { selector, payload } => {
                validate_payload(&payload)?;
                self.update_payloads(&selector, |p| *p = payload.clone())
            }
            PointsOp::DeletePayloadKeys { selector, keys } => {
                let paths = keys
                    .iter()
                    .map(|k| {
                        split_key_path(k).ok_or_else(|| EngineError::InvalidPayloadKey(k.clone()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                self.update_payloads(&selector, |p| {
                    for path in &paths {
                        remove_path(p, path);
                    }
                })
            }
            // Index declarations touch no point: they return how many indexes changed (0 or 1)
            // and leave `seq` alone, as the engine's `Command::CreateFieldIndex` does (the
            // index is derived from the points; snapshots carry the declarations).
            PointsOp::CreateFieldIndex { field, schema } => {
                Ok(self.create_field_index(&field, schema)? as usize)
            }
            PointsOp::DeleteFieldIndex { field } => Ok(self.drop_field_index(&field) as usize),
            PointsOp::SetQuantization { quantization } => Ok(self.set_quantization(quantization)? as usize),
            PointsOp::SetVectorsOnDisk { on_disk } => Ok(self.set_vectors_on_disk(on_disk) as usize),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn update_payloads(
        &mut self,
        selector: &PointSelector,
        mut change: impl FnMut(&mut Payload),
    ) -> Result<usize, EngineError> {
        let ids = self.select(selector, true)?;
        let seq = self.next_seq();
        for id in &ids {
            let point = self.points.get_mut(id).expect("selected ids exist");
            self.payload_index.remove(*id, &point.payload);
            change(&mut point.payload);
            self.payload_index.insert(*id, &point.payload);
            point.version = seq;
        }
        Ok(ids.len())
    }

    /// Resolves a selector to existing ids (sorted, deduplicated). With `require_existing`, an id
    /// that is not stored is an error.
    fn select(
        &self,
        selector: &PointSelector,
        require_existing: bool,
    ) -> Result<Vec<PointId>, EngineError> {
        match selector {
            PointSelector::Ids(ids) => {
                let mut found = Vec::with_capacity(ids.len());
                for id in ids {
                    if self.points.contains_key(id) {
                        found.push(*id);
                    } else if require_existing {
                        return Err(EngineError::PointNotFound(*id));
                    }
                }
                found.sort_unstable();
                found.dedup();
                Ok(found)
            }
            PointSelector::Filter(filter) => {
                filter.validate()?;
                Ok(self.matching(Some(filter)).map(|(id, _)| id).collect())
            }
        }
    }

    /// Checks dimension and finiteness, and normalises for Cosine.
    fn prepare_vector(
        &self,
        mut vector: Vec<f32>,
        owner: VectorOwner,
    ) -> Result<Vec<f32>, EngineError> {
        let expected = self.config.vector_size as usize;
        if vector.len() != expected {
            return Err(EngineError::DimensionMismatch {
                point: owner,
                expected,
                got: vector.len(),
            });
        }
        if let Some(index) = vector.iter().position(|x| !x.is_finite()) {
            return Err(EngineError::NonFiniteVector { point: owner, index });
        }
        if self.config.distance == Distance::Cosine {
            let norm = vector.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
            if norm == 0.0 {
                return Err(EngineError::ZeroVector { point: owner });
            }
            for x in &mut vector {
                *x = ((*x as f64) / norm) as f32;
            }
        }
        Ok(vector)
    }

    /// Stores a point (replacing any previous one: its slot becomes a tombstone).
    fn put_point(&mut self, id: PointId, vector: Vec<f32>, payload: Payload, version: u64) {
        debug_assert_eq!(vector.len(), self.config.vector_size as usize);
        let slot = self.slot_owner.len();
        // The index arena keeps the only copy of the vector.
        self.index_insert(slot, &vector);
        self.quantize_insert(slot, &vector);
        self.slot_owner.push(Some(id));
        if !self.payload_index.is_empty() {
            if let Some(old) = self.points.get(&id) {
                self.payload_index.remove(id, &old.payload);
            }
            self.payload_index.insert(id, &payload);
        }
        if let Some(old) = self.points.insert(id, StoredPoint { payload, version, slot }) {
            self.slot_owner[old.slot] = None;
        }
        self.deletion_log.remove(&id);
    }

    fn remove_point(&mut self, id: PointId, seq: u64) {
        if let Some(old) = self.points.remove(&id) {
            self.payload_index.remove(id, &old.payload);
            self.slot_owner[old.slot] = None;
            self.deletion_log.insert(id, seq);
        }
    }

    fn record(
        &self,
        id: PointId,
        point: &StoredPoint,
        with_payload: bool,
        with_vector: bool,
    ) -> Record {
        Record {
            id,
            version: point.version,
            payload: with_payload.then(|| point.payload.clone()),
            vector: with_vector.then(|| self.vector_of(point).to_vec()),
        }
    }
}

fn index_spec(config: &CollectionConfig, capacity_hint: usize, name: &str) -> IndexSpec {
    IndexSpec {
        dim: config.vector_size as usize,
        metric: config.distance.metric(),
        m: config.hnsw.m as usize,
        ef_construct: config.hnsw.ef_construct as usize,
        capacity_hint: capacity_hint.max(MIN_INDEX_CAPACITY_HINT),
        seed: index_seed(name),
        kind: IndexKind::Hnsw,
    }
}

/// The graph seed of a collection: derived from its name, so every replica (and every rebuild)
/// draws the same node levels without a seed having to travel in the log.
fn index_seed(name: &str) -> u64 {
    let hash = blake3::hash(format!("vecraft/hnsw-seed/v1/{name}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(bytes)
}
