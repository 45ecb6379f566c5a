//! Point write routes (upsert, delete, payload changes) and retrieval by id.
//!
//! A write answers Qdrant's `UpdateResult` (`{operation_id, status}`); vecraft's read-your-writes
//! token travels in the `vecraft-read-token` response header rather than the body, because
//! qdrant-client's models must keep parsing the body unchanged.

use super::State;
use super::collections::mismatch;
use super::convert::{
    WithPayload, parse_id, parse_ids, parse_payload, parse_upsert, parse_with_vector, record_json,
};
use super::envelope::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ok};
use super::filter_json::parse_filter;
use super::params::{Params, read_options, write_options};
use super::read_details::with_details;
use crate::backend::{ReadAnswer, ReadQuery, WriteReceipt, WriteStatus};
use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::time::Instant;
use vecraft_core::vector::collection::{PointSelector, PointsOp};
use vecraft_core::vector::engine::Command;
use vecraft_core::vector::payload::Payload;

/// Response header carrying the read-your-writes token of a write.
pub const READ_TOKEN_HEADER: &str = "vecraft-read-token";

type Body = ApiJson<Map<String, Value>>;

/// The `UpdateResult` answer of a write, with the token header.
pub fn update_result(start: Instant, receipt: &WriteReceipt) -> Response {
    let status = match receipt.status {
        WriteStatus::Acknowledged => "acknowledged",
        WriteStatus::Completed => "completed",
        WriteStatus::WaitTimeout => "wait_timeout",
    };
    let mut response = ok(start, json!({"operation_id": receipt.operation_id, "status": status}));
    if let Ok(value) = HeaderValue::from_str(&receipt.token.encode()) {
        response.headers_mut().insert(READ_TOKEN_HEADER, value);
    }
    response
}

async fn write_points(
    state: &State,
    collection: String,
    params: &Params,
    op: PointsOp,
) -> ApiResult {
    let start = Instant::now();
    let options = write_options(params)?;
    let receipt = state.backend.write(Command::Points { collection, op }, options).await?;
    Ok(update_result(start, &receipt))
}

/// Reads `points` (ids) or `filter` from a body: exactly one must be given.
fn selector(body: &Map<String, Value>) -> Result<PointSelector, ApiError> {
    let get = |k: &str| body.get(k).filter(|v| !v.is_null());
    match (get("points"), get("filter")) {
        (Some(ids), None) => Ok(PointSelector::Ids(parse_ids(ids, "points")?)),
        (None, Some(f)) => Ok(PointSelector::Filter(parse_filter(Some(f))?.unwrap_or_default())),
        (Some(_), Some(_)) => Err(ApiError::bad_request("give `points` or `filter`, not both")),
        (None, None) => Err(ApiError::bad_request("body needs `points` (ids) or `filter`")),
    }
}

/// `PUT /collections/{c}/points`: upsert as a list (`points`) or columns (`batch`).
pub async fn upsert(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult {
    if let Some(obj) = body.as_object() {
        for unsupported in ["update_filter", "shard_key"] {
            if obj.get(unsupported).is_some_and(|v| !v.is_null()) {
                return Err(ApiError::bad_request(format!("`{unsupported}` is not supported")));
            }
        }
    }
    let points = parse_upsert(&body)?;
    write_points(&state, collection, &params, PointsOp::Upsert(points)).await
}

/// `POST /collections/{c}/points/delete`.
pub async fn delete(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let op = PointsOp::Delete(selector(&body)?);
    write_points(&state, collection, &params, op).await
}

fn payload_field(body: &Map<String, Value>) -> Result<Payload, ApiError> {
    if body.get("key").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request(
            "setting a payload under a nested `key` is not supported",
        ));
    }
    match body.get("payload") {
        Some(v) if v.is_object() => parse_payload(Some(v), "payload"),
        _ => Err(ApiError::bad_request("`payload` must be a JSON object")),
    }
}

/// `POST /collections/{c}/points/payload`: merge keys into payloads.
pub async fn set_payload(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let op = PointsOp::SetPayload { selector: selector(&body)?, payload: payload_field(&body)? };
    write_points(&state, collection, &params, op).await
}

/// `PUT /collections/{c}/points/payload`: replace payloads.
pub async fn overwrite_payload(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let op =
        PointsOp::OverwritePayload { selector: selector(&body)?, payload: payload_field(&body)? };
    write_points(&state, collection, &params, op).await
}

/// `POST /collections/{c}/points/payload/delete`: remove keys.
pub async fn delete_payload(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let keys = body
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("`keys` must be a list of payload keys"))?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad_request(format!("keys: {k} is not a string")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let op = PointsOp::DeletePayloadKeys { selector: selector(&body)?, keys };
    write_points(&state, collection, &params, op).await
}

/// `POST /collections/{c}/points/payload/clear`: empty the payloads.
pub async fn clear_payload(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let op = PointsOp::OverwritePayload { selector: selector(&body)?, payload: Payload::new() };
    write_points(&state, collection, &params, op).await
}

/// `POST /collections/{c}/points`: retrieve by ids.
pub async fn retrieve(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let start = Instant::now();
    let ids = parse_ids(
        body.get("ids").ok_or_else(|| ApiError::bad_request("`ids` is missing"))?,
        "ids",
    )?;
    let with_payload = WithPayload::parse(body.get("with_payload"), true)?;
    let with_vector = parse_with_vector(body.get("with_vector").or(body.get("with_vectors")))?;
    let query =
        ReadQuery::Retrieve { collection, ids, with_payload: with_payload.wanted(), with_vector };
    let (ReadAnswer::Records(records), details) =
        state.backend.read_detailed(query, read_options(&params)?).await?
    else {
        return Err(mismatch());
    };
    let result: Vec<Value> = records.iter().map(|r| record_json(r, &with_payload)).collect();
    Ok(with_details(ok(start, Value::Array(result)), &details))
}

/// `GET /collections/{c}/points/{id}`: one point with payload and vector, 404 if absent.
pub async fn get_one(
    state: axum::extract::State<State>,
    ApiPath((collection, id)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<Params>,
) -> ApiResult {
    let start = Instant::now();
    let id = match id.parse() {
        Ok(id) => id,
        Err(_) => parse_id(&Value::String(id), "point id")?,
    };
    let query =
        ReadQuery::Retrieve { collection, ids: vec![id], with_payload: true, with_vector: true };
    let (ReadAnswer::Records(records), details) =
        state.backend.read_detailed(query, read_options(&params)?).await?
    else {
        return Err(mismatch());
    };
    let record = records
        .first()
        .ok_or_else(|| ApiError::not_found(format!("No point with id {id} found")))?;
    Ok(with_details(ok(start, record_json(record, &WithPayload::All)), &details))
}
