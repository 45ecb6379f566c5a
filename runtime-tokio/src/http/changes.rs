//! `GET /collections/{c}/changes`: the change stream of the collection's shard replicas on this
//! node, as server-sent events (vecraft's addition; see `node_loop::change_feed` for what it
//! promises and what it does not).
//!
//! Events:
//! - `subscribed` first: `{"collection":"c","local_shards":[0,2],"shard_count":3}` — the shards
//!   whose changes this node streams (connect to a node that hosts every shard for the whole
//!   collection);
//! - `change`: `{"shard":0,"index":17,"op":"upsert","ids":[1,2]}`; by-filter commands carry
//!   `"affected"` instead of ids; `"op":"snapshot_installed"` means the replica was replaced by
//!   its leader's snapshot at `index` (re-read it);
//! - `lagged`: `{"missed":n}` — this subscriber fell behind and lost `n` events.

use super::State;
use super::envelope::{ApiError, ApiPath};
use crate::backend::{BackendError, ReadAnswer, ReadOptions, ReadQuery};
use crate::node_loop::change_feed::{ChangeEvent, ChangeKind};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::{Receiver, error::RecvError};
use vecraft_core::vector::error::EngineError;
use vecraft_core::vector::point::PointId;

/// The event's JSON body.
pub fn change_json(e: &ChangeEvent) -> Value {
    let ids = |ids: &[PointId]| Value::Array(ids.iter().map(PointId::to_json).collect());
    match &e.kind {
        ChangeKind::Upsert { ids: list } => {
            json!({"shard": e.shard, "index": e.index, "op": "upsert", "ids": ids(list)})
        }
        ChangeKind::ByIds { op, ids: list } => {
            json!({"shard": e.shard, "index": e.index, "op": op, "ids": ids(list)})
        }
        ChangeKind::ByFilter { op, affected } => {
            json!({"shard": e.shard, "index": e.index, "op": op, "affected": affected})
        }
        ChangeKind::Other { op } => json!({"shard": e.shard, "index": e.index, "op": op}),
        ChangeKind::SnapshotInstalled => {
            json!({"shard": e.shard, "index": e.index, "op": "snapshot_installed"})
        }
    }
}

fn events(
    collection: String,
    first: Event,
    rx: Receiver<Arc<ChangeEvent>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let head = stream::once(async move { Ok(first) });
    let rest = stream::unfold((rx, collection), |(mut rx, collection)| async move {
        loop {
            match rx.recv().await {
                Ok(e) if e.collection == collection => {
                    let event = Event::default()
                        .event("change")
                        .data(change_json(&e).to_string());
                    return Some((Ok(event), (rx, collection)));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    let event = Event::default()
                        .event("lagged")
                        .data(json!({"missed": n}).to_string());
                    return Some((Ok(event), (rx, collection)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    head.chain(rest)
}

/// The handler.
pub async fn changes(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
) -> Result<Response, ApiError> {
    let Some(rx) = state.backend.changes() else {
        return Err(ApiError::bad_request(
            "the change stream is served by the replicated node (`vecraft serve`)",
        ));
    };
    let ReadAnswer::Collections(names) = state
        .backend
        .read(ReadQuery::ListCollections, ReadOptions::default())
        .await?
    else {
        return Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer",
        ));
    };
    if !names.contains(&collection) {
        return Err(BackendError::Engine(EngineError::UnknownCollection(collection)).into());
    }
    let node = state.backend.cluster_info().await.node_id;
    let replicas = state
        .backend
        .collection_replicas(collection.clone())
        .await?;
    let mut local: Vec<u32> = replicas
        .iter()
        .filter(|r| r.peer_id == node)
        .map(|r| r.shard_id)
        .collect();
    local.sort_unstable();
    local.dedup();
    let mut all: Vec<u32> = replicas.iter().map(|r| r.shard_id).collect();
    all.sort_unstable();
    all.dedup();
    let first = Event::default().event("subscribed").data(
        json!({"collection": collection, "local_shards": local, "shard_count": all.len()})
            .to_string(),
    );
    Ok(Sse::new(events(collection, first, rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}
