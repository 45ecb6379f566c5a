//! `GET /` (version), health probes, `GET /cluster`, `GET /collections/{c}/cluster`.
//!
//! `/healthz` and `/livez` answer as long as the process serves HTTP; `/readyz` only when the
//! backend can serve (its apply worker is alive). The three are the only routes open without an
//! API key, so orchestrators can probe them.

use super::QDRANT_COMPAT_VERSION;
use super::State;
use super::envelope::{ApiError, ApiPath, ApiResult, ok};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Instant;

/// `GET /`: the bare `{title, version, commit}` qdrant-client checks at construction.
pub async fn root() -> Response {
    axum::Json(json!({
        "title": "vecraft - distributed vector database (Qdrant-compatible API)",
        "version": QDRANT_COMPAT_VERSION,
        "commit": concat!("vecraft-", env!("CARGO_PKG_VERSION")),
    }))
    .into_response()
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "healthz check passed"
}

/// `GET /livez`.
pub async fn livez() -> &'static str {
    "healthz check passed"
}

/// `GET /readyz`: 200 when the backend serves, 503 otherwise.
pub async fn readyz(state: axum::extract::State<State>) -> Response {
    if state.backend.ready() {
        "all shards are ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "backend is not ready").into_response()
    }
}

/// `GET /cluster`: `{"status": "disabled"}` without replication, Qdrant's full shape with it.
pub async fn cluster(state: axum::extract::State<State>) -> ApiResult {
    let start = Instant::now();
    let info = state.backend.cluster_info().await;
    if !info.replicated {
        return Ok(ok(start, json!({"status": "disabled", "peer_id": info.node_id})));
    }
    let peers: serde_json::Map<String, Value> =
        info.peers.iter().map(|(id, uri)| (id.to_string(), json!({"uri": uri}))).collect();
    let role = if info.leader == Some(info.node_id) { "Leader" } else { "Follower" };
    Ok(ok(
        start,
        json!({
            "status": "enabled",
            "peer_id": info.node_id,
            "peers": peers,
            "raft_info": {
                "term": info.term,
                "commit": info.commit,
                "pending_operations": 0,
                "leader": info.leader,
                "role": role,
                "is_voter": true
            },
            "consensus_thread_status": {"consensus_thread_status": "working", "last_update": null},
            "message_send_failures": {}
        }),
    ))
}

/// `GET /collections/{c}/cluster`: shards and replica states of a collection.
pub async fn collection_cluster(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
) -> ApiResult {
    let start = Instant::now();
    let node = state.backend.cluster_info().await.node_id;
    let replicas = state.backend.collection_replicas(collection).await?;
    let mut shards: Vec<u32> = replicas.iter().map(|r| r.shard_id).collect();
    shards.sort_unstable();
    shards.dedup();
    let local: Vec<Value> = replicas
        .iter()
        .filter(|r| r.peer_id == node)
        .map(|r| {
            json!({"shard_id": r.shard_id, "points_count": r.points_count.unwrap_or(0), "state": r.state,
                "leader": r.leader, "lag_entries": r.lag_entries, "apply_lag_entries": r.apply_lag_entries})
        })
        .collect();
    let remote: Vec<Value> = replicas
        .iter()
        .filter(|r| r.peer_id != node)
        .map(|r| {
            json!({"shard_id": r.shard_id, "peer_id": r.peer_id, "state": r.state, "leader": r.leader,
                "lag_entries": r.lag_entries, "apply_lag_entries": r.apply_lag_entries})
        })
        .collect();
    Ok(ok(
        start,
        json!({
            "peer_id": node,
            "shard_count": shards.len(),
            "local_shards": local,
            "remote_shards": remote,
            "shard_transfers": [],
            "resharding_operations": []
        }),
    ))
}

/// Any unknown route: a 404 in the error envelope.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

/// A known route with the wrong method: a 405 in the error envelope.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}
