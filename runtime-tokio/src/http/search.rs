//! Read routes over many points: `points/query` (+ batch), the legacy `points/search` (+ batch),
//! `points/scroll` and `points/count`.
//!
//! `points/query` supports nearest-neighbour queries (`query: [..]` or `{"nearest": [..]}`)
//! with filter, limit/offset, `params{hnsw_ef, exact}`, `score_threshold` and payload/vector
//! selection. Hybrid features (`prefetch`, fusion, recommend/discover/context, query by point
//! id, `order_by`) are refused with a 400 naming them.

use super::State;
use super::collections::mismatch;
use super::convert::{
    WithPayload, parse_id, parse_vector, parse_with_vector, record_json, scored_json,
};
use super::envelope::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ok};
use super::filter_json::parse_filter;
use super::params::{Params, read_options};
use super::read_details::with_details;
use crate::backend::{ReadAnswer, ReadDetails, ReadQuery};
use serde_json::{Map, Value, json};
use std::time::Instant;
use vecraft_core::vector::collection::{ScrollRequest, SearchRequest};
use vecraft_core::vector::point::ScoredPoint;

/// Largest `limit` (and `offset`) accepted: a page beyond this is a mistake or an attack.
pub const MAX_LIMIT: u64 = 100_000;
/// Most searches in one batch request.
pub const MAX_BATCH: usize = 1_000;

type Body = ApiJson<Map<String, Value>>;

fn usize_field(body: &Map<String, Value>, name: &str, default: u64) -> Result<usize, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(default as usize),
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_LIMIT => Ok(n as usize),
            _ => Err(ApiError::bad_request(format!(
                "`{name}` must be an integer in 0..={MAX_LIMIT}, got {v}"
            ))),
        },
    }
}

fn refuse_present(body: &Map<String, Value>, fields: &[&str]) -> Result<(), ApiError> {
    match fields.iter().find(|f| body.get(**f).is_some_and(|v| !v.is_null())) {
        Some(f) => Err(ApiError::bad_request(format!("`{f}` is not supported"))),
        None => Ok(()),
    }
}

/// The parts a query and a search share: filter, paging, params, threshold, selection.
fn common(
    body: &Map<String, Value>,
    vector: Vec<f32>,
) -> Result<(SearchRequest, WithPayload), ApiError> {
    let with_payload = WithPayload::parse(body.get("with_payload"), false)?;
    let mut request = SearchRequest::new(vector, usize_field(body, "limit", 10)?);
    request.offset = usize_field(body, "offset", 0)?;
    request.filter = parse_filter(body.get("filter"))?;
    request.with_payload = with_payload.wanted();
    request.with_vector = parse_with_vector(body.get("with_vector").or(body.get("with_vectors")))?;
    request.score_threshold = match body.get("score_threshold") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_f64().ok_or_else(|| {
            ApiError::bad_request(format!("`score_threshold` must be a number, got {v}"))
        })? as f32),
    };
    if let Some(params) = body.get("params").filter(|v| !v.is_null()) {
        let params = params
            .as_object()
            .ok_or_else(|| ApiError::bad_request("`params` must be an object"))?;
        request.ef = match params.get("hnsw_ef") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ApiError::bad_request(format!("params.hnsw_ef must be a positive integer, got {v}"))
            })? as usize),
        };
        request.quantization = super::quantization::parse_search_params(params.get("quantization"))?;
        request.exact = match params.get("exact") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "params.exact must be a boolean, got {v}"
                )));
            }
        };
    }
    Ok((request, with_payload))
}

fn check_using(body: &Map<String, Value>) -> Result<(), ApiError> {
    match body.get("using") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s.is_empty() => Ok(()),
        Some(v) => Err(ApiError::bad_request(format!(
            "using: vector {v} does not exist; collections have one unnamed vector"
        ))),
    }
}

/// Parses a `QueryRequest` body.
pub fn parse_query(body: &Map<String, Value>) -> Result<(SearchRequest, WithPayload), ApiError> {
    refuse_present(body, &["prefetch", "lookup_from", "shard_key"])?;
    check_using(body)?;
    let vector = match body.get("query") {
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request(
                "`query` is required (a vector or {\"nearest\": vector})",
            ));
        }
        Some(v @ Value::Array(_)) => parse_vector(v, "query")?,
        Some(Value::Object(q)) => match q.get("nearest") {
            Some(v @ (Value::Array(_) | Value::Object(_))) => parse_vector(v, "query.nearest")?,
            Some(id @ (Value::Number(_) | Value::String(_))) => {
                parse_id(id, "query.nearest")?;
                return Err(ApiError::bad_request(
                    "query by point id is not supported; send the vector",
                ));
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "query.nearest must be a vector, got {other}"
                )));
            }
            None => {
                let kind = q.keys().next().cloned().unwrap_or_default();
                return Err(ApiError::bad_request(format!(
                    "query kind `{kind}` is not supported; only `nearest`"
                )));
            }
        },
        Some(Value::Number(_) | Value::String(_)) => {
            return Err(ApiError::bad_request(
                "query by point id is not supported; send the vector",
            ));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!("`query` must be a vector, got {other}")));
        }
    };
    common(body, vector)
}

/// Parses a legacy `SearchRequest` body (`vector` as a list or `{name, vector}`).
pub fn parse_search(body: &Map<String, Value>) -> Result<(SearchRequest, WithPayload), ApiError> {
    refuse_present(body, &["shard_key"])?;
    let vector = match body.get("vector") {
        Some(v @ Value::Array(_)) => parse_vector(v, "vector")?,
        Some(Value::Object(named)) if named.contains_key("name") => {
            if named.get("name").and_then(Value::as_str) != Some("") {
                return Err(ApiError::bad_request(format!(
                    "vector.name {}: named vectors are not supported",
                    named["name"]
                )));
            }
            parse_vector(named.get("vector").unwrap_or(&Value::Null), "vector.vector")?
        }
        Some(other) => parse_vector(other, "vector")?,
        None => return Err(ApiError::bad_request("`vector` is required")),
    };
    common(body, vector)
}

async fn run(
    state: &State,
    collection: String,
    params: &Params,
    requests: Vec<SearchRequest>,
) -> Result<(Vec<Vec<ScoredPoint>>, ReadDetails), ApiError> {
    let query = ReadQuery::Search { collection, requests };
    match state.backend.read_detailed(query, read_options(params)?).await? {
        (ReadAnswer::Hits(hits), details) => Ok((hits, details)),
        _ => Err(mismatch()),
    }
}

fn hits_json(hits: &[ScoredPoint], with_payload: &WithPayload) -> Value {
    Value::Array(hits.iter().map(|h| scored_json(h, with_payload)).collect())
}

fn batch_bodies(body: &Map<String, Value>) -> Result<Vec<Map<String, Value>>, ApiError> {
    let searches = body
        .get("searches")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request("`searches` must be a list of requests"))?;
    if searches.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "{} searches in one batch; at most {MAX_BATCH}",
            searches.len()
        )));
    }
    searches
        .iter()
        .enumerate()
        .map(|(i, s)| {
            s.as_object()
                .cloned()
                .ok_or_else(|| ApiError::bad_request(format!("searches[{i}] must be an object")))
        })
        .collect()
}

/// A parser of one search-shaped request body (`/query` or `/search` style).
type ParseFn = fn(&Map<String, Value>) -> Result<(SearchRequest, WithPayload), ApiError>;

/// Parses every request of a batch body with `parse` (errors name the request), runs them in one
/// read and renders each hit list.
async fn run_batch(
    state: &State,
    collection: String,
    params: &Params,
    body: &Map<String, Value>,
    parse: ParseFn,
) -> Result<(Vec<Value>, ReadDetails), ApiError> {
    let parsed = batch_bodies(body)?
        .iter()
        .enumerate()
        .map(|(i, b)| prefixed(i, parse(b)))
        .collect::<Result<Vec<_>, _>>()?;
    let (requests, selections): (Vec<_>, Vec<_>) = parsed.into_iter().unzip();
    let (hits, details) = run(state, collection, params, requests).await?;
    Ok((hits.iter().zip(&selections).map(|(h, w)| hits_json(h, w)).collect(), details))
}

fn prefixed<T>(i: usize, r: Result<T, ApiError>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::new(e.status, format!("searches[{i}]: {}", e.message)))
}

/// `POST /collections/{c}/points/query`: `{"points": [ScoredPoint]}`.
pub async fn query(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let start = Instant::now();
    let (request, with_payload) = parse_query(&body)?;
    let (hits, details) = run(&state, collection, &params, vec![request]).await?;
    let hits = hits.first().map(Vec::as_slice).unwrap_or_default();
    Ok(with_details(ok(start, json!({"points": hits_json(hits, &with_payload)})), &details))
}

/// `POST /collections/{c}/points/query/batch`: one `{"points": [...]}` per request.
pub async fn query_batch(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let start = Instant::now();
    let (results, details) = run_batch(&state, collection, &params, &body, parse_query).await?;
    let result = results.into_iter().map(|hits| json!({ "points": hits })).collect();
    Ok(with_details(ok(start, Value::Array(result)), &details))
}

/// `POST /collections/{c}/points/search`: a bare list of `ScoredPoint`.
pub async fn search(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let start = Instant::now();
    let (request, with_payload) = parse_search(&body)?;
    let (hits, details) = run(&state, collection, &params, vec![request]).await?;
    let hits = hits.first().map(Vec::as_slice).unwrap_or_default();
    Ok(with_details(ok(start, hits_json(hits, &with_payload)), &details))
}

/// `POST /collections/{c}/points/search/batch`: a list of hit lists.
pub async fn search_batch(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let start = Instant::now();
    let (results, details) = run_batch(&state, collection, &params, &body, parse_search).await?;
    Ok(with_details(ok(start, Value::Array(results)), &details))
}

/// `POST /collections/{c}/points/scroll`: `{"points": [Record], "next_page_offset": id|null}`.
pub async fn scroll(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let start = Instant::now();
    refuse_present(&body, &["order_by", "shard_key"])?;
    let with_payload = WithPayload::parse(body.get("with_payload"), true)?;
    let request = ScrollRequest {
        offset: match body.get("offset") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_id(v, "offset")?),
        },
        limit: usize_field(&body, "limit", 10)?,
        filter: parse_filter(body.get("filter"))?,
        with_payload: with_payload.wanted(),
        with_vector: parse_with_vector(body.get("with_vector").or(body.get("with_vectors")))?,
    };
    let query = ReadQuery::Scroll { collection, request };
    let (ReadAnswer::Page(page), details) =
        state.backend.read_detailed(query, read_options(&params)?).await?
    else {
        return Err(mismatch());
    };
    let points: Vec<Value> = page.points.iter().map(|r| record_json(r, &with_payload)).collect();
    let next = page.next_offset.map_or(Value::Null, |id| id.to_json());
    Ok(with_details(ok(start, json!({"points": points, "next_page_offset": next})), &details))
}

/// `POST /collections/{c}/points/count`: `{"count": n}` (always exact).
pub async fn count(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): Body,
) -> ApiResult {
    let start = Instant::now();
    refuse_present(&body, &["shard_key"])?;
    let filter = parse_filter(body.get("filter"))?;
    let query = ReadQuery::Count { collection, filter };
    let (ReadAnswer::Count(n), details) =
        state.backend.read_detailed(query, read_options(&params)?).await?
    else {
        return Err(mismatch());
    };
    Ok(with_details(ok(start, json!({"count": n})), &details))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn query_shapes() {
        let (r, w) = parse_query(&obj(json!({
            "query": {"nearest": [1, 2]}, "limit": 3, "offset": 1, "with_payload": true,
            "params": {"hnsw_ef": 128, "exact": true}, "score_threshold": 0.5,
            "filter": {"must": [{"key": "a", "match": {"value": 1}}]}
        })))
        .unwrap();
        assert_eq!(
            (r.vector.clone(), r.limit, r.offset, r.ef, r.exact),
            (vec![1.0, 2.0], 3, 1, Some(128), true)
        );
        assert!(r.filter.is_some() && w == WithPayload::All && r.score_threshold == Some(0.5));
        assert_eq!(parse_query(&obj(json!({"query": [1]}))).unwrap().0.limit, 10);
        let cases = [
            (json!({}), "`query` is required"),
            (json!({"query": 5}), "point id"),
            (json!({"query": {"recommend": {}}}), "`recommend`"),
            (json!({"query": [1], "prefetch": [{}]}), "`prefetch`"),
            (json!({"query": [1], "using": "img"}), "using"),
            (json!({"query": [1], "limit": -1}), "`limit`"),
            (json!({"query": [1], "params": {"exact": "yes"}}), "params.exact"),
        ];
        for (b, needle) in cases {
            let e = parse_query(&obj(b)).unwrap_err();
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
        let (r, _) = parse_search(&obj(json!({"vector": {"name": "", "vector": [3]}}))).unwrap();
        assert_eq!(r.vector, vec![3.0]);
        assert!(parse_search(&obj(json!({"vector": {"name": "img", "vector": [3]}}))).is_err());
    }
}
