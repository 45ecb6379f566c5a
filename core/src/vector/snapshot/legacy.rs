//! The snapshot headers of older format versions, kept to read their files: each is frozen as
//! that version wrote it (postcard is not self-describing, so a header of another shape cannot
//! decode), and converts into the current [`SnapshotHeader`]. Also the config encoding of
//! version 3, which the metadata commands of version 1 used too.

use super::{SnapshotHeader, SnapshotKind};
use crate::vector::collection::CollectionConfig;
use crate::vector::payload_index::FieldSchema;
use crate::vector::quantization::QuantizerParams;
use serde::Deserialize;
#[cfg(test)]
use serde::Serialize;

/// [`CollectionConfig`] as versions 1 and 2 encoded it (before `quantization`).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(crate) struct LegacyCollectionConfig {
    vector_size: u32,
    distance: crate::vector::collection::Distance,
    hnsw: crate::vector::collection::HnswParams,
    rebuild_tombstone_percent: u8,
}

impl From<LegacyCollectionConfig> for CollectionConfig {
    fn from(c: LegacyCollectionConfig) -> Self {
        CollectionConfig {
            hnsw: c.hnsw,
            rebuild_tombstone_percent: c.rebuild_tombstone_percent,
            ..CollectionConfig::new(c.vector_size, c.distance)
        }
    }
}

#[cfg(test)]
impl From<&CollectionConfig> for LegacyCollectionConfig {
    fn from(c: &CollectionConfig) -> Self {
        LegacyCollectionConfig {
            vector_size: c.vector_size,
            distance: c.distance,
            hnsw: c.hnsw,
            rebuild_tombstone_percent: c.rebuild_tombstone_percent,
        }
    }
}

/// [`CollectionConfig`] as snapshot version 3 and metadata command version 1 encoded it (with
/// `quantization`, before `on_disk`).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(crate) struct CollectionConfigV3 {
    vector_size: u32,
    distance: crate::vector::collection::Distance,
    hnsw: crate::vector::collection::HnswParams,
    rebuild_tombstone_percent: u8,
    quantization: Option<crate::vector::quantization::QuantizationConfig>,
}

impl From<CollectionConfigV3> for CollectionConfig {
    fn from(c: CollectionConfigV3) -> Self {
        CollectionConfig {
            hnsw: c.hnsw,
            rebuild_tombstone_percent: c.rebuild_tombstone_percent,
            quantization: c.quantization,
            ..CollectionConfig::new(c.vector_size, c.distance)
        }
    }
}

#[cfg(test)]
impl From<&CollectionConfig> for CollectionConfigV3 {
    fn from(c: &CollectionConfig) -> Self {
        CollectionConfigV3 {
            vector_size: c.vector_size,
            distance: c.distance,
            hnsw: c.hnsw,
            rebuild_tombstone_percent: c.rebuild_tombstone_percent,
            quantization: c.quantization,
        }
    }
}

/// The version 3 header: [`SnapshotHeader`] with the version 3 config (no `on_disk`).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(crate) struct SnapshotHeaderV3 {
    collection: String,
    config: CollectionConfigV3,
    kind: SnapshotKind,
    seq: u64,
    content_digest: [u8; 32],
    point_count: u64,
    upsert_count: u64,
    deletion_count: u64,
    flags: u32,
    field_indexes: Vec<(String, FieldSchema)>,
    quantizer: Option<QuantizerParams>,
}

impl From<SnapshotHeaderV3> for SnapshotHeader {
    fn from(h: SnapshotHeaderV3) -> Self {
        SnapshotHeader {
            collection: h.collection,
            config: h.config.into(),
            kind: h.kind,
            seq: h.seq,
            content_digest: h.content_digest,
            point_count: h.point_count,
            upsert_count: h.upsert_count,
            deletion_count: h.deletion_count,
            flags: h.flags,
            field_indexes: h.field_indexes,
            quantizer: h.quantizer,
        }
    }
}

/// The version 2 header: [`SnapshotHeader`] with the legacy config and no quantizer.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(crate) struct SnapshotHeaderV2 {
    collection: String,
    config: LegacyCollectionConfig,
    kind: SnapshotKind,
    seq: u64,
    content_digest: [u8; 32],
    point_count: u64,
    upsert_count: u64,
    deletion_count: u64,
    flags: u32,
    field_indexes: Vec<(String, FieldSchema)>,
}

impl From<SnapshotHeaderV2> for SnapshotHeader {
    fn from(h: SnapshotHeaderV2) -> Self {
        SnapshotHeader {
            collection: h.collection,
            config: h.config.into(),
            kind: h.kind,
            seq: h.seq,
            content_digest: h.content_digest,
            point_count: h.point_count,
            upsert_count: h.upsert_count,
            deletion_count: h.deletion_count,
            flags: h.flags,
            field_indexes: h.field_indexes,
            quantizer: None,
        }
    }
}

/// The version 1 header: [`SnapshotHeader`] without `field_indexes` (same encoding otherwise).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(crate) struct SnapshotHeaderV1 {
    collection: String,
    config: LegacyCollectionConfig,
    kind: SnapshotKind,
    seq: u64,
    content_digest: [u8; 32],
    point_count: u64,
    upsert_count: u64,
    deletion_count: u64,
    flags: u32,
}

impl From<SnapshotHeaderV1> for SnapshotHeader {
    fn from(h: SnapshotHeaderV1) -> Self {
        SnapshotHeader {
            collection: h.collection,
            config: h.config.into(),
            kind: h.kind,
            seq: h.seq,
            content_digest: h.content_digest,
            point_count: h.point_count,
            upsert_count: h.upsert_count,
            deletion_count: h.deletion_count,
            flags: h.flags,
            field_indexes: Vec::new(),
            quantizer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::collection;
    use super::*;
    use crate::vector::collection::{Collection, Distance, PointsOp};
    use crate::vector::payload::Payload;
    use crate::vector::point::{PointId, PointStruct};
    use crate::vector::snapshot::{SNAPSHOT_MAGIC, SnapshotOptions, read_header, restore_full, write_full_snapshot};

    /// `file` (a current-version snapshot) as an older writer made it: `header` encoded as that
    /// version's header, every checksum recomputed.
    fn as_older_version<H: Serialize>(file: &[u8], version: u16, header: &H) -> Vec<u8> {
        let old_len = u32::from_le_bytes(file[10..14].try_into().unwrap()) as usize;
        let body = &file[14 + old_len + 32..];
        let header_bytes = postcard::to_stdvec(header).unwrap();
        let mut older = SNAPSHOT_MAGIC.to_vec();
        older.extend_from_slice(&version.to_le_bytes());
        older.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
        older.extend_from_slice(&header_bytes);
        let preamble_hash = blake3::hash(&older);
        older.extend_from_slice(preamble_hash.as_bytes());
        older.extend_from_slice(&body[..body.len() - 32]);
        let file_hash = blake3::hash(&older);
        older.extend_from_slice(file_hash.as_bytes());
        older
    }

    #[test]
    fn version_1_files_still_restore() {
        let mut c = collection();
        c.create_field_index("k", FieldSchema::Keyword).unwrap();
        let mut v2 = Vec::new();
        write_full_snapshot(&c, &mut v2, &SnapshotOptions::default()).unwrap();
        let h = read_header(&v2[..]).unwrap();
        assert_eq!(h.field_indexes, vec![("k".to_string(), FieldSchema::Keyword)]);
        // The same file as a version 1 writer made it: old header encoding, rehashed.
        let v1_header = SnapshotHeaderV1 {
            collection: h.collection.clone(),
            config: (&h.config).into(),
            kind: h.kind,
            seq: h.seq,
            content_digest: h.content_digest,
            point_count: h.point_count,
            upsert_count: h.upsert_count,
            deletion_count: h.deletion_count,
            flags: h.flags,
        };
        let v1 = as_older_version(&v2, 1, &v1_header);
        let restored = restore_full(&v1[..], &mut |_| ()).unwrap();
        assert_eq!(restored.digest(), c.digest());
        assert!(restored.field_indexes().is_empty(), "version 1 knew no field indexes");
        let restored = restore_full(&v2[..], &mut |_| ()).unwrap();
        assert_eq!(restored.field_indexes().len(), 1);
    }

    #[test]
    fn version_2_files_still_restore_without_quantization() {
        let mut c = collection();
        c.create_field_index("k", FieldSchema::Keyword).unwrap();
        let mut v3 = Vec::new();
        write_full_snapshot(&c, &mut v3, &SnapshotOptions::default()).unwrap();
        let h = read_header(&v3[..]).unwrap();
        assert_eq!(h.quantizer, None, "an unquantized collection has no quantizer");
        // The same file as a version 2 writer made it: legacy config, no quantizer, rehashed.
        let v2_header = SnapshotHeaderV2 {
            collection: h.collection.clone(),
            config: (&h.config).into(),
            kind: h.kind,
            seq: h.seq,
            content_digest: h.content_digest,
            point_count: h.point_count,
            upsert_count: h.upsert_count,
            deletion_count: h.deletion_count,
            flags: h.flags,
            field_indexes: h.field_indexes.clone(),
        };
        let v2 = as_older_version(&v3, 2, &v2_header);
        let restored = restore_full(&v2[..], &mut |_| ()).unwrap();
        assert_eq!(restored.digest(), c.digest());
        assert_eq!(restored.config(), c.config());
        assert_eq!(restored.config().quantization, None);
        assert_eq!(restored.field_indexes().len(), 1);
    }

    #[test]
    fn version_3_files_restore_with_vectors_in_memory_and_version_4_keeps_on_disk() {
        let mut cfg = CollectionConfig::new(2, Distance::Dot);
        cfg.quantization = Some(crate::vector::quantization::QuantizationConfig::Binary { always_ram: None });
        cfg.on_disk = true;
        let mut c = Collection::new("c", cfg).unwrap();
        let points = (0..4)
            .map(|i| PointStruct { id: PointId::Num(i), vector: vec![i as f32, 1.0], payload: Payload::new() })
            .collect();
        c.apply(PointsOp::Upsert(points)).unwrap();
        let mut v4 = Vec::new();
        write_full_snapshot(&c, &mut v4, &SnapshotOptions::default()).unwrap();
        let h = read_header(&v4[..]).unwrap();
        assert!(h.config.on_disk, "version 4 carries on_disk");
        assert_eq!(restore_full(&v4[..], &mut |_| ()).unwrap().config(), c.config());
        let v3_header = SnapshotHeaderV3 {
            collection: h.collection.clone(),
            config: (&h.config).into(),
            kind: h.kind,
            seq: h.seq,
            content_digest: h.content_digest,
            point_count: h.point_count,
            upsert_count: h.upsert_count,
            deletion_count: h.deletion_count,
            flags: h.flags,
            field_indexes: h.field_indexes.clone(),
            quantizer: h.quantizer.clone(),
        };
        let v3 = as_older_version(&v4, 3, &v3_header);
        let restored = restore_full(&v3[..], &mut |_| ()).unwrap();
        assert_eq!(restored.digest(), c.digest(), "on_disk is not part of the digest");
        assert!(!restored.config().on_disk, "version 3 knew no on_disk");
        assert_eq!(restored.config().quantization, c.config().quantization, "and keeps its quantization");
    }
}
