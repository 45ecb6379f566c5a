//! What snapshots need of a collection: restoring points and deletions as stored, exporting and
//! loading the HNSW graph, copying the data aside for an incremental restore, and taking the
//! declared field indexes from a snapshot header. Kept apart from the command and query paths.

use super::*;
use crate::vector::hnsw::{GraphHeader, GraphLoader, HnswIndex, NOT_EXPORTED};

impl Collection {
    /// Makes the declared field indexes exactly `fields` (a restore: the snapshot's header is
    /// the truth), building the new ones from the stored payloads. The header was validated, so
    /// every field is a valid path and no field appears twice.
    pub(crate) fn set_field_indexes(&mut self, fields: &[(String, FieldSchema)]) {
        for (field, schema) in self.payload_index.schemas() {
            if !fields.contains(&(field.clone(), schema)) {
                self.payload_index.drop_field(&field);
            }
        }
        for (field, schema) in fields {
            let points = self.points.iter().map(|(id, p)| (*id, &p.payload));
            let created = self.payload_index.create(field, *schema, points);
            debug_assert!(created.is_ok(), "validated header field {field}");
        }
    }

    /// Installs a point read from a snapshot exactly as stored (no re-normalisation).
    pub(crate) fn restore_point(
        &mut self,
        id: PointId,
        vector: Vec<f32>,
        payload: Payload,
        version: u64,
    ) {
        self.put_point(id, vector, payload, version);
    }

    /// Applies a deletion read from an incremental snapshot.
    pub(crate) fn restore_deletion(&mut self, id: PointId, seq: u64) {
        if let Some(old) = self.points.remove(&id) {
            self.payload_index.remove(id, &old.payload);
            self.slot_owner[old.slot] = None;
        }
        self.deletion_log.insert(id, seq);
    }

    /// Sets the sequence number after a restore; a full restore knows no earlier deletions.
    pub(crate) fn finish_restore(&mut self, seq: u64, full: bool) {
        self.seq = seq;
        if full {
            self.deletion_log_floor = seq;
        }
    }

    /// The graph a full snapshot exports, with the slot -> ordinal map that renumbers it to the
    /// snapshot's id order (ordinal `i` = the `i`-th live point), or `None` when the index is not
    /// our HNSW, has unindexed points, or holds more than [`GRAPH_EXPORT_MAX_TOMBSTONE_PERCENT`] tombstones (a graph
    /// missing that many dead routing nodes is better rebuilt by the restore).
    pub(crate) fn graph_export(&self) -> Option<(&HnswIndex, Vec<u32>, Vec<u32>)> {
        let graph = self.index.as_hnsw()?;
        if self.index.unindexed_len() > 0 {
            // Unlinked nodes have no lists to export; the restore links them (the driver
            // indexes everything before it snapshots, so this is the rare case).
            return None;
        }
        if self.tombstone_count() * 100 > GRAPH_EXPORT_MAX_TOMBSTONE_PERCENT * self.slot_owner.len() {
            return None;
        }
        let mut ordinal = vec![NOT_EXPORTED; self.slot_owner.len()];
        let mut slots = Vec::with_capacity(self.points.len());
        for (i, point) in self.points.values().enumerate() {
            ordinal[point.slot] = i as u32;
            slots.push(point.slot as u32);
        }
        Some((graph, ordinal, slots))
    }

    /// A loader for the graph of a full snapshot being restored into this (fresh) collection.
    pub(crate) fn graph_loader(&self, header: GraphHeader) -> Result<GraphLoader, String> {
        GraphLoader::new(&index_spec(&self.config, 0, &self.name), header, self.points.len() as u64)
    }

    /// Installs a point of a full snapshot that carries its graph: the vector goes to `arena`
    /// (row = ordinal = slot) instead of being linked; [`Self::install_restored_graph`] follows.
    pub(crate) fn restore_point_unindexed(
        &mut self,
        id: PointId,
        vector: &[f32],
        payload: Payload,
        version: u64,
        arena: &mut dyn VectorStore,
    ) {
        debug_assert!(self.points.last_key_value().is_none_or(|(last, _)| *last < id), "ids ascend");
        let slot = self.slot_owner.len();
        arena.push_row(vector);
        self.slot_owner.push(Some(id));
        self.payload_index.insert(id, &payload);
        self.points.insert(id, StoredPoint { payload, version, slot });
    }

    /// Makes the loaded graph this collection's index (after every point came through
    /// [`Self::restore_point_unindexed`]).
    pub(crate) fn install_restored_graph(&mut self, graph: HnswIndex) {
        debug_assert_eq!(graph.len(), self.points.len());
        self.index = Box::new(graph);
    }

    /// A copy of the stored data with a freshly built index (the aside copy an incremental
    /// restore works on, so a failed restore leaves `self` untouched).
    /// The index is copied with its slots and tombstones when it supports copying (our HNSW),
    /// otherwise rebuilt compacted.
    pub(crate) fn clone_data(&self) -> Collection {
        if let Some(index) = self.index.clone_index() {
            return Collection {
                name: self.name.clone(),
                config: self.config,
                points: self.points.clone(),
                seq: self.seq,
                deletion_log: self.deletion_log.clone(),
                deletion_log_floor: self.deletion_log_floor,
                index,
                slot_owner: self.slot_owner.clone(),
                payload_index: self.payload_index.clone(),
                quantized: self.quantized.clone(),
                indexing: self.indexing,
                quantizer: self.quantizer,
                vector_store: Arc::clone(&self.vector_store),
            };
        }
        let (index, slot_owner) = self.build_compacted_index();
        let mut points = self.points.clone();
        for (slot, point) in points.values_mut().enumerate() {
            point.slot = slot;
        }
        let mut copy = Collection {
            name: self.name.clone(),
            config: self.config,
            points,
            seq: self.seq,
            deletion_log: self.deletion_log.clone(),
            deletion_log_floor: self.deletion_log_floor,
            index,
            slot_owner,
            payload_index: self.payload_index.clone(),
            quantized: self.quantized.clone(),
            indexing: self.indexing,
            quantizer: self.quantizer,
            vector_store: Arc::clone(&self.vector_store),
        };
        copy.reencode_quantized();
        copy
    }
}
