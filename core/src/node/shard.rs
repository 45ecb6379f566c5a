//! What a shard replica's state machine (a vector engine collection) is asked by the node: the
//! commands in its log and the queries the node has it answer. Drivers (the simulator, the
//! runtime's apply worker) call [`apply_command`] and [`answer`], so both apply the very same
//! bytes the very same way.

use super::sharding::{ShardId, shard_of};
use crate::vector::collection::{Collection, PointSelector, PointsOp, ScrollPage, ScrollRequest, SearchRequest};
use crate::vector::filter::Filter;
use crate::vector::payload_index::FieldSchema;
use crate::vector::point::{PointId, Record, ScoredPoint};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version byte in front of every encoded shard command.
const SHARD_COMMAND_VERSION: u8 = 1;

/// Encodes a points command for a shard's log.
pub fn encode_command(op: &PointsOp) -> Bytes {
    let mut out = vec![SHARD_COMMAND_VERSION];
    out.extend(postcard::to_allocvec(op).expect("points commands always encode"));
    Bytes::from(out)
}

/// Decodes a command from a shard's log; an error (never a panic) on anything else.
pub fn decode_command(bytes: &[u8]) -> Result<PointsOp, String> {
    match bytes.split_first() {
        Some((&SHARD_COMMAND_VERSION, rest)) => postcard::from_bytes(rest).map_err(|e| format!("bad shard command: {e}")),
        Some((v, _)) => Err(format!("shard command version {v} unknown")),
        None => Err("empty shard command".into()),
    }
}

/// Applies one committed command to a replica. A command the engine refuses (say, a payload
/// update of a point that does not exist) is refused identically on every replica, so it changes
/// nothing anywhere; the error is the answer.
pub fn apply_command(collection: &mut Collection, bytes: &[u8]) -> Result<usize, String> {
    let op = decode_command(bytes)?;
    collection.apply(op).map_err(|e| e.to_string())
}

/// A replica's state as snapshot bytes (the vector engine's full snapshot format: checksummed
/// zstd chunks, with the HNSW graph), for Raft log compaction and for followers too far behind.
pub fn snapshot_bytes(collection: &Collection) -> Vec<u8> {
    let mut out = Vec::new();
    crate::vector::snapshot::write_full_snapshot(collection, &mut out, &Default::default())
        .expect("writing a snapshot to memory cannot fail");
    out
}

/// Rebuilds a replica from [`snapshot_bytes`]; every checksum is verified first.
pub fn restore_bytes(bytes: &[u8]) -> Result<Collection, String> {
    crate::vector::snapshot::restore_full(bytes, &mut |_| {}).map_err(|e| e.to_string())
}

/// Splits a collection-wide command into one command per shard it touches. Commands by id go to
/// the ids' shards only; commands by filter go to every shard.
pub fn split_command(op: PointsOp, shard_count: u32) -> Vec<(ShardId, PointsOp)> {
    fn by_ids(ids: Vec<PointId>, n: u32) -> BTreeMap<ShardId, Vec<PointId>> {
        let mut m: BTreeMap<ShardId, Vec<PointId>> = BTreeMap::new();
        for id in ids {
            m.entry(shard_of(id, n)).or_default().push(id);
        }
        m
    }
    fn selector_split(sel: PointSelector, n: u32) -> Vec<(ShardId, PointSelector)> {
        match sel {
            PointSelector::Ids(ids) => by_ids(ids, n).into_iter().map(|(s, ids)| (s, PointSelector::Ids(ids))).collect(),
            PointSelector::Filter(f) => (0..n).map(|s| (s, PointSelector::Filter(f.clone()))).collect(),
        }
    }
    match op {
        PointsOp::Upsert(points) => {
            let mut m: BTreeMap<ShardId, Vec<_>> = BTreeMap::new();
            for p in points {
                m.entry(shard_of(p.id, shard_count)).or_default().push(p);
            }
            m.into_iter().map(|(s, ps)| (s, PointsOp::Upsert(ps))).collect()
        }
        PointsOp::Delete(sel) => selector_split(sel, shard_count).into_iter().map(|(s, x)| (s, PointsOp::Delete(x))).collect(),
        PointsOp::SetPayload { selector, payload } => selector_split(selector, shard_count)
            .into_iter()
            .map(|(s, selector)| (s, PointsOp::SetPayload { selector, payload: payload.clone() }))
            .collect(),
        PointsOp::OverwritePayload { selector, payload } => selector_split(selector, shard_count)
            .into_iter()
            .map(|(s, selector)| (s, PointsOp::OverwritePayload { selector, payload: payload.clone() }))
            .collect(),
        PointsOp::DeletePayloadKeys { selector, keys } => selector_split(selector, shard_count)
            .into_iter()
            .map(|(s, selector)| (s, PointsOp::DeletePayloadKeys { selector, keys: keys.clone() }))
            .collect(),
        // A field index is a property of the whole collection: every shard declares it in its
        // own log (see `field_index.rs` for what the shards' answers then mean together).
        // So is its quantization: every shard trains its own codes at its own log position.
        op @ (PointsOp::CreateFieldIndex { .. } | PointsOp::DeleteFieldIndex { .. } | PointsOp::SetQuantization { .. }
        | PointsOp::SetVectorsOnDisk { .. }) => {
            (0..shard_count).map(|s| (s, op.clone())).collect()
        }
    }
}

/// A query one shard replica answers from its applied state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ShardQuery {
    /// Top hits (the shard's own best `offset + limit`, offset 0).
    Search(SearchRequest),
    /// Points by id.
    Get {
        /// The ids (of this shard).
        ids: Vec<PointId>,
        /// Return payloads.
        with_payload: bool,
        /// Return vectors.
        with_vector: bool,
    },
    /// A count.
    Count(Option<Filter>),
    /// A scroll page.
    Scroll(ScrollRequest),
    /// The declared payload field indexes (appended last: older variants keep their encoding).
    FieldIndexes,
    /// The shard's quantization and `on_disk` (appended last).
    VectorSettings,
    /// Points changed and ids deleted after sequence number `since`, ids past `after`, read at
    /// one state: a page of a point-in-time export (appended last; see `shard_export.rs`).
    Changes {
        /// The sequence number the changes are after.
        since: u64,
        /// Ids past this one.
        after: Option<crate::vector::point::PointId>,
        /// Changes per page.
        limit: u32,
    },
}

/// A shard replica's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ShardAnswer {
    /// Hits, best first.
    Hits(Vec<ScoredPoint>),
    /// Points.
    Records(Vec<Record>),
    /// A count.
    Count(u64),
    /// A page.
    Page(ScrollPage),
    /// Declared payload field indexes: normalised field -> (schema, points indexed in this
    /// shard). Appended last, like [`ShardQuery::FieldIndexes`].
    FieldIndexes(BTreeMap<String, (FieldSchema, u64)>),
    /// The shard's quantization and `on_disk`, as its log last set them. Appended last.
    VectorSettings(super::vector_settings::VectorSettings),
    /// A page of changes. Appended last, like [`ShardQuery::Changes`].
    Changes(crate::vector::collection::ChangesPage),
}

/// Answers `query` from a replica's applied state.
pub fn answer(collection: &Collection, query: &ShardQuery) -> Result<ShardAnswer, String> {
    match query {
        ShardQuery::Search(r) => collection.search(r).map(ShardAnswer::Hits).map_err(|e| e.to_string()),
        ShardQuery::Get { ids, with_payload, with_vector } => {
            Ok(ShardAnswer::Records(collection.get(ids, *with_payload, *with_vector)))
        }
        ShardQuery::Count(f) => collection.count(f.as_ref()).map(|n| ShardAnswer::Count(n as u64)).map_err(|e| e.to_string()),
        ShardQuery::Scroll(r) => collection.scroll(r).map(ShardAnswer::Page).map_err(|e| e.to_string()),
        ShardQuery::FieldIndexes => Ok(ShardAnswer::FieldIndexes(
            collection.field_indexes().into_iter().map(|(f, (schema, n))| (f, (schema, n as u64))).collect(),
        )),
        ShardQuery::VectorSettings => {
            Ok(ShardAnswer::VectorSettings(super::vector_settings::VectorSettings::of(collection.config())))
        }
        ShardQuery::Changes { since, after, limit } => {
            collection.changes(*since, *after, *limit as usize).map(ShardAnswer::Changes).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::point::PointStruct;

    #[test]
    fn split_routes_ids_to_their_shards_and_filters_everywhere() {
        let points: Vec<PointStruct> =
            (0..50u64).map(|i| PointStruct { id: i.into(), vector: vec![1.0, 0.0], payload: Default::default() }).collect();
        let parts = split_command(PointsOp::Upsert(points), 4);
        let mut total = 0;
        for (s, op) in &parts {
            let PointsOp::Upsert(ps) = op else { panic!() };
            assert!(ps.iter().all(|p| shard_of(p.id, 4) == *s));
            total += ps.len();
        }
        assert_eq!(total, 50);
        let parts = split_command(PointsOp::Delete(PointSelector::Filter(Filter::default())), 4);
        assert_eq!(parts.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        let cmd = encode_command(&parts[0].1);
        assert_eq!(decode_command(&cmd).unwrap(), parts[0].1);
        assert!(decode_command(&[]).is_err());
        assert!(decode_command(&[2]).is_err());
        assert!(decode_command(&[SHARD_COMMAND_VERSION, 0xff]).is_err());
    }

    /// The field index variants were appended: commands already in logs and WALs keep their
    /// bytes and decode to the same commands, and the new ones take the next variant indexes.
    #[test]
    fn older_commands_keep_their_encoding_and_field_index_commands_come_after() {
        let delete = PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(7)]));
        // version 1, variant 1 (Delete), selector 0 (Ids), one id, PointId::Num (0), 7.
        let pinned: &[u8] = &[1, 1, 0, 1, 0, 7];
        assert_eq!(&encode_command(&delete)[..], pinned);
        assert_eq!(decode_command(pinned).unwrap(), delete);
        let keys = PointsOp::DeletePayloadKeys { selector: PointSelector::Ids(vec![]), keys: vec!["a".into()] };
        assert_eq!(&encode_command(&keys)[..], &[1, 4, 0, 0, 1, 1, b'a']);
        let create = PointsOp::CreateFieldIndex { field: "g".into(), schema: FieldSchema::Integer };
        assert_eq!(&encode_command(&create)[..], &[1, 5, 1, b'g', 1]);
        assert_eq!(decode_command(&encode_command(&create)).unwrap(), create);
        let drop = PointsOp::DeleteFieldIndex { field: "g".into() };
        assert_eq!(&encode_command(&drop)[..], &[1, 6, 1, b'g']);
        assert!(decode_command(&[SHARD_COMMAND_VERSION, 7]).is_err(), "no variant after the last");
        // Queries and answers too: older variants keep their index.
        assert_eq!(postcard::to_allocvec(&ShardQuery::Count(None)).unwrap(), vec![2, 0]);
        assert_eq!(postcard::to_allocvec(&ShardQuery::FieldIndexes).unwrap(), vec![4]);
        assert_eq!(postcard::to_allocvec(&ShardAnswer::Count(3)).unwrap(), vec![2, 3]);
    }

    #[test]
    fn field_index_commands_go_to_every_shard_and_apply_in_log_order() {
        let create = PointsOp::CreateFieldIndex { field: "g".into(), schema: FieldSchema::Keyword };
        let parts = split_command(create.clone(), 3);
        assert_eq!(parts, (0..3).map(|s| (s, create.clone())).collect::<Vec<_>>());
        let mut c = Collection::new("c", crate::vector::collection::CollectionConfig::new(2, crate::vector::collection::Distance::Dot)).unwrap();
        let point = |i: u64, g: &str| PointStruct {
            id: i.into(),
            vector: vec![1.0, 0.0],
            payload: [("g".to_string(), crate::vector::payload::PayloadValue::Str(g.into()))].into_iter().collect(),
        };
        apply_command(&mut c, &encode_command(&PointsOp::Upsert(vec![point(1, "a"), point(2, "b")]))).unwrap();
        let seq = c.seq();
        assert_eq!(apply_command(&mut c, &encode_command(&create)), Ok(1), "new: one index changed");
        assert_eq!(apply_command(&mut c, &encode_command(&create)), Ok(0), "identical re-create: no-op success");
        let conflict = PointsOp::CreateFieldIndex { field: "g".into(), schema: FieldSchema::Integer };
        let err = apply_command(&mut c, &encode_command(&conflict)).unwrap_err();
        assert!(err.contains("already indexed as Keyword"), "{err}");
        let bad = PointsOp::CreateFieldIndex { field: "a..b".into(), schema: FieldSchema::Integer };
        assert!(apply_command(&mut c, &encode_command(&bad)).is_err());
        assert_eq!(c.seq(), seq, "declarations touch no point");
        assert_eq!(c.field_indexes().get("g"), Some(&(FieldSchema::Keyword, 2)));
        // Snapshots carry the declaration: a replica restored from one declares it too.
        let restored = restore_bytes(&snapshot_bytes(&c)).unwrap();
        assert_eq!(restored.field_indexes(), c.field_indexes());
        assert_eq!(
            answer(&restored, &ShardQuery::FieldIndexes),
            Ok(ShardAnswer::FieldIndexes([("g".to_string(), (FieldSchema::Keyword, 2))].into_iter().collect()))
        );
        let drop = PointsOp::DeleteFieldIndex { field: "g".into() };
        assert_eq!(apply_command(&mut c, &encode_command(&drop)), Ok(1));
        assert_eq!(apply_command(&mut c, &encode_command(&drop)), Ok(0), "dropping nothing: no-op success");
        assert!(c.field_indexes().is_empty());
    }
}
