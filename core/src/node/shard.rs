//! What a shard replica's state machine (a vector engine collection) is asked by the node: the
//! commands in its log and the queries the node has it answer. Drivers (the simulator, the
//! runtime's apply worker) call [`apply_command`] and [`answer`], so both apply the very same
//! bytes the very same way.

use super::sharding::{ShardId, shard_of};
use crate::vector::collection::{Collection, PointSelector, PointsOp, ScrollPage, ScrollRequest, SearchRequest};
use crate::vector::filter::Filter;
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
}
