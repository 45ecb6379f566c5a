//! Collection routes: list, create, info, exists, delete.
//!
//! Create accepts Qdrant's body. `quantization_config` (scalar int8 or binary) is part of the
//! collection's config (see `http::quantization`), and so is `vectors.on_disk`: every replica keeps
//! the f32 vectors in a mapped file (the node backend; see `mmap_vectors`). Settings that only tune Qdrant's storage
//! (`on_disk_payload`, `optimizers_config`, `wal_config`) are accepted and have no effect
//! (vecraft's storage has no such knobs; results are never less exact for ignoring them).
//! Settings that would change results or the data model (named or sparse vectors, `Manhattan`)
//! are refused. `shard_number`, `replication_factor` and `write_consistency_factor` are validated;
//! placement belongs to the node, so the local backend runs one shard with one replica and says
//! so in the collection info.

use super::State;
use super::envelope::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ok};
use super::params::{Params, read_options};
use crate::backend::{ReadAnswer, ReadQuery, WriteOptions};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Instant;
use vecraft_core::vector::collection::{CollectionConfig, Distance, HnswParams, PointsOp};
use vecraft_core::vector::engine::Command;
use vecraft_core::vector::payload_index::FieldSchema;

/// Default `full_scan_threshold` reported (Qdrant's default; vecraft plans filtered searches by
/// match counts instead).
const FULL_SCAN_THRESHOLD: u32 = 10_000;

/// `PUT /collections/{c}` body.
#[derive(Debug, Deserialize)]
pub struct CreateCollection {
    vectors: Option<Value>,
    shard_number: Option<u32>,
    replication_factor: Option<u32>,
    write_consistency_factor: Option<u32>,
    hnsw_config: Option<HnswDiff>,
    sparse_vectors: Option<Value>,
    sharding_method: Option<String>,
    init_from: Option<Value>,
    quantization_config: Option<Value>,
}

/// Qdrant's `HnswConfigDiff` (only the fields vecraft reads; others are ignored).
#[derive(Debug, Default, Deserialize)]
pub struct HnswDiff {
    m: Option<u32>,
    ef_construct: Option<u32>,
    /// Qdrant keeps the graph in a mapped file with this; vecraft's graph is always in RAM. A
    /// storage hint that changes no answer, so it is accepted, and a `true` is logged.
    on_disk: Option<bool>,
}

/// Logs a graph-on-disk wish (`hnsw_config.on_disk: true`) this node cannot honour.
fn warn_graph_on_disk(collection: &str) {
    tracing::warn!(collection, "hnsw_config.on_disk is not supported: the graph stays in RAM (answers are unchanged)");
}

fn parse_distance(text: &str) -> Result<Distance, ApiError> {
    match text {
        "Cosine" => Ok(Distance::Cosine),
        "Euclid" => Ok(Distance::Euclid),
        "Dot" => Ok(Distance::Dot),
        "Manhattan" => Err(ApiError::bad_request("distance `Manhattan` is not supported")),
        other => Err(ApiError::bad_request(format!(
            "vectors.distance: unknown distance `{other}` (Cosine, Euclid, Dot)"
        ))),
    }
}

fn distance_name(d: Distance) -> &'static str {
    match d {
        Distance::Cosine => "Cosine",
        Distance::Euclid => "Euclid",
        Distance::Dot => "Dot",
    }
}

/// Turns a create body into the engine's config.
pub fn collection_config(body: &CreateCollection) -> Result<CollectionConfig, ApiError> {
    if body.sparse_vectors.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request("sparse_vectors are not supported"));
    }
    if body.init_from.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request("init_from is not supported; use snapshots"));
    }
    if let Some(method) = &body.sharding_method
        && method != "auto"
    {
        return Err(ApiError::bad_request(format!("sharding_method `{method}` is not supported")));
    }
    let vectors = body.vectors.as_ref().and_then(Value::as_object).ok_or_else(|| {
        ApiError::bad_request("`vectors` must be an object {\"size\": N, \"distance\": ...}")
    })?;
    if !vectors.contains_key("size") {
        return Err(ApiError::bad_request(
            "vectors: named vectors are not supported; give {\"size\": N, \"distance\": ...}",
        ));
    }
    let size = vectors["size"]
        .as_u64()
        .filter(|s| *s <= u32::MAX as u64)
        .ok_or_else(|| ApiError::bad_request("vectors.size must be a positive integer"))?;
    let distance = vectors
        .get("distance")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("vectors.distance must be a string"))
        .and_then(parse_distance)?;
    let on_disk = match vectors.get("on_disk") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::bad_request(format!("vectors.on_disk must be a boolean, got {other}")));
        }
    };
    for (name, value) in [
        ("shard_number", body.shard_number),
        ("replication_factor", body.replication_factor),
        ("write_consistency_factor", body.write_consistency_factor),
    ] {
        if value == Some(0) {
            return Err(ApiError::bad_request(format!("{name} must be at least 1")));
        }
    }
    if let (Some(w), Some(r)) = (body.write_consistency_factor, body.replication_factor)
        && w > r
    {
        return Err(ApiError::bad_request(format!(
            "write_consistency_factor {w} exceeds replication_factor {r}"
        )));
    }
    let defaults = HnswParams::default();
    let vector_hnsw: Option<HnswDiff> = match vectors.get("hnsw_config") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| ApiError::bad_request(format!("vectors.hnsw_config: {e}")))?,
        ),
    };
    let pick = |f: fn(&HnswDiff) -> Option<u32>, default| {
        vector_hnsw
            .as_ref()
            .and_then(f)
            .or(body.hnsw_config.as_ref().and_then(f))
            .unwrap_or(default)
    };
    let mut config = CollectionConfig::new(size as u32, distance);
    config.hnsw = HnswParams {
        m: pick(|h| h.m, defaults.m),
        ef_construct: pick(|h| h.ef_construct, defaults.ef_construct),
        ef: defaults.ef,
    };
    config.quantization = super::quantization::parse_config(body.quantization_config.as_ref())?;
    config.on_disk = on_disk;
    config.validate().map_err(ApiError::from)?;
    Ok(config)
}

/// Every collection's name, read at the request's consistency.
pub async fn collection_names(state: &State, params: &Params) -> Result<Vec<String>, ApiError> {
    let answer = state.backend.read(ReadQuery::ListCollections, read_options(params)?).await?;
    let ReadAnswer::Collections(names) = answer else {
        return Err(mismatch());
    };
    Ok(names)
}

/// `GET /collections`.
pub async fn list(
    state: axum::extract::State<State>,
    ApiQuery(params): ApiQuery<Params>,
) -> ApiResult {
    let start = Instant::now();
    let names = collection_names(&state, &params).await?;
    let collections: Vec<Value> = names.into_iter().map(|n| json!({"name": n})).collect();
    Ok(ok(start, json!({"collections": collections})))
}

/// The error for a backend answering a query with the wrong variant (a bug, never input).
pub fn mismatch() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "backend answered with an unexpected result kind",
    )
}

/// `PUT /collections/{c}`.
pub async fn create(
    state: axum::extract::State<State>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): ApiJson<CreateCollection>,
) -> ApiResult {
    let start = Instant::now();
    let config = collection_config(&body)?;
    let vector_level = body.vectors.as_ref().and_then(|v| v.get("hnsw_config")).and_then(|h| h.get("on_disk"));
    let top_level = body.hnsw_config.as_ref().and_then(|h| h.on_disk);
    if top_level == Some(true) || vector_level == Some(&Value::Bool(true)) {
        warn_graph_on_disk(&name);
    }
    let options = WriteOptions { wait: true, ..super::params::write_options(&params)? };
    state
        .backend
        .create_collection(name, config, body.shard_number, body.replication_factor, options)
        .await?;
    Ok(ok(start, json!(true)))
}

/// `DELETE /collections/{c}`: `true` if it existed, `false` otherwise (as Qdrant).
pub async fn delete(
    state: axum::extract::State<State>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
) -> ApiResult {
    let start = Instant::now();
    let options = WriteOptions { wait: true, ..super::params::write_options(&params)? };
    let receipt = state.backend.write(Command::DeleteCollection { name }, options).await?;
    let existed = matches!(
        receipt.outcome,
        Some(vecraft_core::vector::engine::CommandOutcome::CollectionDeleted { existed: true })
    );
    Ok(ok(start, json!(existed)))
}

/// `GET /collections/{c}/exists`.
pub async fn exists(
    state: axum::extract::State<State>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
) -> ApiResult {
    let start = Instant::now();
    let names = collection_names(&state, &params).await?;
    // An alias exists as its collection does (a backend without aliases has none).
    let exists = names.contains(&name)
        || state.backend.list_aliases().await.is_ok_and(|l| l.iter().any(|(a, _)| *a == name));
    Ok(ok(start, json!({"exists": exists})))
}

/// `GET /collections/{c}`: a `CollectionInfo` with every field qdrant-client requires.
pub async fn info(
    state: axum::extract::State<State>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
) -> ApiResult {
    let start = Instant::now();
    let answer =
        state.backend.read(ReadQuery::CollectionInfo(name), read_options(&params)?).await?;
    let ReadAnswer::Collection(c) = answer else {
        return Err(mismatch());
    };
    Ok(ok(
        start,
        json!({
            // Qdrant's `yellow`: optimisation (here, deferred indexing) in progress.
            "status": if c.indexing { "yellow" } else { "green" },
            "optimizer_status": "ok",
            "indexed_vectors_count": c.indexed,
            "points_count": c.points,
            "segments_count": 1,
            "config": {
                "params": {
                    "vectors": {
                        "size": c.config.vector_size,
                        "distance": distance_name(c.config.distance),
                        "on_disk": c.config.on_disk
                    },
                    "shard_number": c.shards,
                    "replication_factor": c.replication_factor,
                    // A write is acknowledged at `quorum` (Raft's majority) by default.
                    "write_consistency_factor": c.replication_factor / 2 + 1,
                    "on_disk_payload": false
                },
                "hnsw_config": {
                    "m": c.config.hnsw.m,
                    "ef_construct": c.config.hnsw.ef_construct,
                    "full_scan_threshold": FULL_SCAN_THRESHOLD
                },
                "optimizer_config": {
                    "deleted_threshold": c.config.rebuild_tombstone_percent as f64 / 100.0,
                    "vacuum_min_vector_number": 0,
                    "default_segment_number": 1,
                    "flush_interval_sec": 0
                },
                "quantization_config": super::quantization::config_json(c.config.quantization)
            },
            "payload_schema": payload_schema(&c.field_indexes)
        }),
    ))
}

/// `PATCH /collections/{c}`. `quantization_config` (scalar, binary, or `"Disabled"`) changes
/// the collection's quantization, and `vectors: {"": {"on_disk": bool}}` where its f32 vectors
/// live: each a write in every shard's log (each replica trains new codes from the points it
/// holds at that position, or moves its vectors to or from its file; see
/// `vecraft_core::node::vector_settings`), answered once applied at `quorum`. Storage tuning
/// (`optimizers_config`, `params.on_disk_payload`, ...) is accepted with no effect, like at
/// create, and so is an `hnsw_config` that keeps `m` and `ef_construct` (its other fields only
/// tune Qdrant's storage and threads). Changes that would need the index rebuilt or the data
/// model changed (`m`, `ef_construct`, named vectors, a vector's own `hnsw_config` or
/// quantization, sparse vectors) are refused by name, never silently ignored.
pub async fn update(
    state: axum::extract::State<State>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> ApiResult {
    let start = Instant::now();
    for refused in ["sparse_vectors"] {
        if body.get(refused).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::bad_request(format!(
                "changing `{refused}` of an existing collection is not supported"
            )));
        }
    }
    let hnsw = match body.get("hnsw_config").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(HnswDiff::deserialize(v).map_err(|e| {
            ApiError::bad_request(format!("hnsw_config: {e}"))
        })?),
    };
    let quantization = super::quantization::parse_update(body.get("quantization_config"))?;
    let on_disk = match body.get("vectors").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => vectors_on_disk(v)?,
    };
    let answer = state.backend.read(ReadQuery::CollectionInfo(name.clone()), read_options(&params)?).await?;
    let ReadAnswer::Collection(current) = answer else {
        return Err(mismatch());
    };
    if let Some(h) = hnsw {
        refuse_graph_change(&current.config.hnsw, &h)?;
        if h.on_disk == Some(true) {
            warn_graph_on_disk(&name);
        }
    }
    let ops = quantization
        .map(|quantization| PointsOp::SetQuantization { quantization })
        .into_iter()
        .chain(on_disk.map(|on_disk| PointsOp::SetVectorsOnDisk { on_disk }));
    for op in ops {
        let mut options = super::params::write_options(&params)?;
        // Qdrant answers a collection update once it took effect.
        options.wait = true;
        state.backend.write(Command::Points { collection: name.clone(), op }, options).await?;
    }
    Ok(ok(start, json!(true)))
}

/// A PATCH body's `vectors` (Qdrant's `VectorsConfigDiff`): the unnamed vector `""` and its
/// `on_disk`; `None` when it changes nothing.
fn vectors_on_disk(vectors: &Value) -> Result<Option<bool>, ApiError> {
    let Some(map) = vectors.as_object() else {
        return Err(ApiError::bad_request("`vectors` must be an object: {\"\": {\"on_disk\": true}}"));
    };
    let mut on_disk = None;
    for (name, diff) in map {
        if !name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "vectors.{name}: named vectors are not supported; the collection's one vector is named \"\""
            )));
        }
        let Some(diff) = diff.as_object() else {
            if diff.is_null() {
                continue;
            }
            return Err(ApiError::bad_request("vectors.\"\" must be an object"));
        };
        for (field, value) in diff {
            match (field.as_str(), value) {
                (_, Value::Null) => {}
                ("on_disk", Value::Bool(b)) => on_disk = Some(*b),
                ("on_disk", other) => {
                    return Err(ApiError::bad_request(format!("vectors.\"\".on_disk must be a boolean, got {other}")));
                }
                (other, _) => {
                    return Err(ApiError::bad_request(format!(
                        "changing vectors.\"\".{other} of an existing collection is not supported (only on_disk; quantization_config at the top level)"
                    )));
                }
            }
        }
    }
    Ok(on_disk)
}

/// Refuses an `hnsw_config` diff that changes the graph's shape.
fn refuse_graph_change(current: &HnswParams, diff: &HnswDiff) -> Result<(), ApiError> {
    for (field, want, have) in [
        ("m", diff.m, current.m),
        ("ef_construct", diff.ef_construct, current.ef_construct),
    ] {
        if let Some(want) = want
            && want != have
        {
            return Err(ApiError::bad_request(format!(
                "changing hnsw_config.{field} ({have} -> {want}) of an existing collection is not supported: it needs the index rebuilt; create a new collection"
            )));
        }
    }
    Ok(())
}

/// Qdrant's `payload_schema`: per indexed field, its `data_type` and indexed `points`.
fn payload_schema(fields: &std::collections::BTreeMap<String, (FieldSchema, usize)>) -> Value {
    let map: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(field, (schema, points))| {
            (field.clone(), json!({"data_type": schema_name(*schema), "params": null, "points": points}))
        })
        .collect();
    Value::Object(map)
}

fn schema_name(schema: FieldSchema) -> &'static str {
    match schema {
        FieldSchema::Keyword => "keyword",
        FieldSchema::Integer => "integer",
    }
}

/// The schema of a `create_field_index` body: `"keyword"` / `"integer"`, or the object form
/// `{"type": "keyword", ...}` (its tuning parameters do not change results and are ignored).
/// Other Qdrant schemas (float, bool, geo, text, uuid, datetime) are refused by name, so a client
/// never believes a field is indexed when it is not.
fn field_schema(body: &serde_json::Map<String, Value>) -> Result<FieldSchema, ApiError> {
    let name = match body.get("field_schema") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Object(o)) => o.get("type").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request("`field_schema` object needs a string `type`")
        })?,
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request("`field_schema` is required (keyword or integer)"));
        }
        Some(_) => return Err(ApiError::bad_request("`field_schema` must be a string or an object")),
    };
    match name {
        "keyword" => Ok(FieldSchema::Keyword),
        "integer" => Ok(FieldSchema::Integer),
        other => Err(ApiError::bad_request(format!(
            "field_schema `{other}` is not supported: vecraft indexes keyword and integer fields"
        ))),
    }
}

/// `PUT /collections/{c}/index`: declares a payload field index, replicated like a write. Filtered
/// searches, counts, scrolls and filter selectors then check only the points the index names for
/// `must` conditions on the field (results are unchanged; only their cost drops).
pub async fn create_index(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): ApiJson<serde_json::Map<String, Value>>,
) -> ApiResult {
    let start = Instant::now();
    let Some(field) = body.get("field_name").and_then(Value::as_str).map(str::to_string) else {
        return Err(ApiError::bad_request("`field_name` must be a string"));
    };
    let schema = field_schema(&body)?;
    let options = super::params::write_options(&params)?;
    let wait = options.wait;
    state.backend.write(Command::CreateFieldIndex { collection, field, schema }, options).await?;
    let status = if wait { "completed" } else { "acknowledged" };
    Ok(ok(start, json!({"operation_id": 0, "status": status})))
}

/// `DELETE /collections/{c}/index/{field}`: drops a payload field index.
pub async fn delete_index(
    state: axum::extract::State<State>,
    ApiPath((collection, field)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<Params>,
) -> ApiResult {
    let start = Instant::now();
    let options = super::params::write_options(&params)?;
    let wait = options.wait;
    state.backend.write(Command::DeleteFieldIndex { collection, field }, options).await?;
    let status = if wait { "completed" } else { "acknowledged" };
    Ok(ok(start, json!({"operation_id": 0, "status": status})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> CreateCollection {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn create_body_mapping() {
        let c = collection_config(&body(json!({
            "vectors": {"size": 4, "distance": "Dot", "hnsw_config": {"m": 8}},
            "hnsw_config": {"m": 32, "ef_construct": 50}, "shard_number": 2,
            "on_disk_payload": true
        })))
        .unwrap();
        assert_eq!(
            (c.vector_size, c.distance, c.hnsw.m, c.hnsw.ef_construct),
            (4, Distance::Dot, 8, 50)
        );
        let cases = [
            (json!({"vectors": {"size": 4, "distance": "Manhattan"}}), "Manhattan"),
            (json!({"vectors": {"img": {"size": 4, "distance": "Dot"}}}), "named vectors"),
            (json!({"vectors": {"size": 0, "distance": "Dot"}}), "vector size 0"),
            (
                json!({"vectors": {"size": 4, "distance": "Dot"}, "replication_factor": 0}),
                "replication_factor",
            ),
            (
                json!({"vectors": {"size": 4, "distance": "Dot"}, "hnsw_config": {"m": 1000}}),
                "hnsw m",
            ),
            (
                json!({"vectors": {"size": 4, "distance": "Dot", "hnsw_config": {"on_disk": "yes"}}}),
                "vectors.hnsw_config: invalid type",
            ),
            (json!({}), "`vectors`"),
        ];
        for (b, needle) in cases {
            let e = collection_config(&body(b)).unwrap_err();
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
    }
}
