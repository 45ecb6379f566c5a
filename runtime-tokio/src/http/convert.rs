//! JSON <-> engine types for points: ids, vectors, payloads, the two upsert shapes, payload and
//! vector selectors, and the records and hits sent back.
//!
//! Fields arrive as `serde_json::Value` and are converted by hand so that every rejection names
//! the offending field (`points[2].vector[5] is not a number`) instead of serde's "did not match
//! any variant". Named vectors (Qdrant's `{"name": [...]}` form) are not supported: a collection
//! has one unnamed vector, and a request naming another is refused, never silently ignored.

use super::envelope::ApiError;
use serde_json::{Map, Value, json};
use vecraft_core::vector::payload::{Payload, payload_from_json, payload_to_json};
use vecraft_core::vector::point::{PointId, PointStruct, Record, ScoredPoint};

/// Most points accepted in one upsert request (bounds per-request work; the body limit bounds
/// bytes).
pub const MAX_POINTS_PER_REQUEST: usize = 100_000;

/// Reads a point id (u64 or UUID string).
pub fn parse_id(value: &Value, field: &str) -> Result<PointId, ApiError> {
    PointId::from_json(value).map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

/// Reads a list of point ids.
pub fn parse_ids(value: &Value, field: &str) -> Result<Vec<PointId>, ApiError> {
    let items = value
        .as_array()
        .ok_or_else(|| ApiError::bad_request(format!("{field} must be a list of point ids")))?;
    items.iter().enumerate().map(|(i, v)| parse_id(v, &format!("{field}[{i}]"))).collect()
}

/// Reads a dense vector; accepts the unnamed default vector in map form (`{"": [...]}`).
pub fn parse_vector(value: &Value, field: &str) -> Result<Vec<f32>, ApiError> {
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| match x.as_f64() {
                Some(f) => Ok(f as f32),
                None => Err(ApiError::bad_request(format!("{field}[{i}] is not a number: {x}"))),
            })
            .collect(),
        Value::Object(map) if map.len() == 1 && map.contains_key("") => {
            parse_vector(&map[""], field)
        }
        Value::Object(map) => Err(ApiError::bad_request(format!(
            "{field}: named vectors ({}) are not supported; collections have one unnamed vector",
            map.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        ))),
        other => {
            Err(ApiError::bad_request(format!("{field} must be a list of numbers, got {other}")))
        }
    }
}

/// Reads a payload object; `null` or absent is an empty payload.
pub fn parse_payload(value: Option<&Value>, field: &str) -> Result<Payload, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Payload::new()),
        Some(v) => payload_from_json(v).map_err(|e| ApiError::bad_request(format!("{field}: {e}"))),
    }
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

/// The points of an upsert body: `{"points": [...]}` or `{"batch": {ids, vectors, payloads}}`.
pub fn parse_upsert(body: &Value) -> Result<Vec<PointStruct>, ApiError> {
    let obj =
        body.as_object().ok_or_else(|| ApiError::bad_request("body must be a JSON object"))?;
    let points = match (field(obj, "points"), field(obj, "batch")) {
        (Some(points), None) => parse_point_list(points)?,
        (None, Some(batch)) => parse_batch(batch)?,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give `points` or `batch`, not both"));
        }
        (None, None) => return Err(ApiError::bad_request("body needs `points` or `batch`")),
    };
    if points.len() > MAX_POINTS_PER_REQUEST {
        return Err(ApiError::bad_request(format!(
            "{} points in one request; at most {MAX_POINTS_PER_REQUEST} are accepted",
            points.len()
        )));
    }
    Ok(points)
}

fn parse_point_list(points: &Value) -> Result<Vec<PointStruct>, ApiError> {
    let items =
        points.as_array().ok_or_else(|| ApiError::bad_request("`points` must be a list"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let at = format!("points[{i}]");
            let obj = p
                .as_object()
                .ok_or_else(|| ApiError::bad_request(format!("{at} must be an object")))?;
            let id = field(obj, "id")
                .ok_or_else(|| ApiError::bad_request(format!("{at}.id is missing")))?;
            let vector = field(obj, "vector")
                .ok_or_else(|| ApiError::bad_request(format!("{at}.vector is missing")))?;
            Ok(PointStruct {
                id: parse_id(id, &format!("{at}.id"))?,
                vector: parse_vector(vector, &format!("{at}.vector"))?,
                payload: parse_payload(obj.get("payload"), &format!("{at}.payload"))?,
            })
        })
        .collect()
}

fn parse_batch(batch: &Value) -> Result<Vec<PointStruct>, ApiError> {
    let obj =
        batch.as_object().ok_or_else(|| ApiError::bad_request("`batch` must be an object"))?;
    let ids = parse_ids(
        field(obj, "ids").ok_or_else(|| ApiError::bad_request("batch.ids is missing"))?,
        "batch.ids",
    )?;
    let vectors = match field(obj, "vectors") {
        Some(Value::Array(items)) => items,
        Some(Value::Object(_)) => {
            return Err(ApiError::bad_request(
                "batch.vectors: named vectors are not supported; give a list of vectors",
            ));
        }
        _ => {
            return Err(ApiError::bad_request("batch.vectors must be a list of vectors"));
        }
    };
    if vectors.len() != ids.len() {
        return Err(ApiError::bad_request(format!(
            "batch has {} ids but {} vectors",
            ids.len(),
            vectors.len()
        )));
    }
    let payloads: Option<&Vec<Value>> = match field(obj, "payloads") {
        None => None,
        Some(Value::Array(items)) if items.len() == ids.len() => Some(items),
        Some(Value::Array(items)) => {
            return Err(ApiError::bad_request(format!(
                "batch has {} ids but {} payloads",
                ids.len(),
                items.len()
            )));
        }
        Some(_) => return Err(ApiError::bad_request("batch.payloads must be a list")),
    };
    ids.into_iter()
        .zip(vectors)
        .enumerate()
        .map(|(i, (id, vector))| {
            Ok(PointStruct {
                id,
                vector: parse_vector(vector, &format!("batch.vectors[{i}]"))?,
                payload: parse_payload(payloads.map(|p| &p[i]), &format!("batch.payloads[{i}]"))?,
            })
        })
        .collect()
}

/// Which payload keys to return.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WithPayload {
    /// None (the payload field is `null`).
    No,
    /// The whole payload.
    All,
    /// Only these top-level keys.
    Include(Vec<String>),
    /// All but these top-level keys.
    Exclude(Vec<String>),
}

impl WithPayload {
    /// Reads Qdrant's `with_payload`: bool, list of keys, `{"include": [...]}` or
    /// `{"exclude": [...]}`. Absent means `default`.
    pub fn parse(value: Option<&Value>, default: bool) -> Result<WithPayload, ApiError> {
        let keys = |v: &Value, what: &str| -> Result<Vec<String>, ApiError> {
            let list = v.as_array().ok_or_else(|| {
                ApiError::bad_request(format!("with_payload.{what} must be a list of keys"))
            })?;
            list.iter()
                .map(|k| {
                    k.as_str().map(str::to_string).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "with_payload.{what}: key {k} is not a string"
                        ))
                    })
                })
                .collect()
        };
        Ok(match value {
            None | Some(Value::Null) => {
                if default {
                    WithPayload::All
                } else {
                    WithPayload::No
                }
            }
            Some(Value::Bool(true)) => WithPayload::All,
            Some(Value::Bool(false)) => WithPayload::No,
            Some(v @ Value::Array(_)) => WithPayload::Include(keys(v, "keys")?),
            Some(Value::Object(map)) => match (map.get("include"), map.get("exclude")) {
                (Some(v), None) => WithPayload::Include(keys(v, "include")?),
                (None, Some(v)) => WithPayload::Exclude(keys(v, "exclude")?),
                _ => {
                    return Err(ApiError::bad_request(
                        "with_payload object needs exactly one of `include`, `exclude`",
                    ));
                }
            },
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "with_payload must be a boolean, a list of keys or an include/exclude object, \
                     got {other}"
                )));
            }
        })
    }

    /// Whether the engine must return payloads at all.
    pub fn wanted(&self) -> bool {
        *self != WithPayload::No
    }

    fn render(&self, payload: Option<&Payload>) -> Value {
        let Some(payload) = payload else {
            return Value::Null;
        };
        let keep = |k: &String| match self {
            WithPayload::No => false,
            WithPayload::All => true,
            WithPayload::Include(keys) => keys.contains(k),
            WithPayload::Exclude(keys) => !keys.contains(k),
        };
        if *self == WithPayload::No {
            return Value::Null;
        }
        let filtered: Payload =
            payload.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        payload_to_json(&filtered)
    }
}

/// Reads Qdrant's `with_vector`(s): bool, or a list of vector names (only `""` exists here).
pub fn parse_with_vector(value: Option<&Value>) -> Result<bool, ApiError> {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(false),
        Some(Value::Bool(true)) => Ok(true),
        Some(Value::Array(names)) => {
            if let Some(bad) = names.iter().find(|n| n.as_str() != Some("")) {
                return Err(ApiError::bad_request(format!(
                    "with_vector: vector {bad} does not exist; collections have one unnamed vector"
                )));
            }
            Ok(!names.is_empty())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "with_vector must be a boolean or a list of vector names, got {other}"
        ))),
    }
}

fn vector_json(vector: Option<&Vec<f32>>) -> Value {
    vector.map_or(Value::Null, |v| json!(v))
}

/// A Qdrant `Record`.
pub fn record_json(record: &Record, with_payload: &WithPayload) -> Value {
    json!({
        "id": record.id.to_json(),
        "payload": with_payload.render(record.payload.as_ref()),
        "vector": vector_json(record.vector.as_ref()),
    })
}

/// A Qdrant `ScoredPoint`.
pub fn scored_json(hit: &ScoredPoint, with_payload: &WithPayload) -> Value {
    json!({
        "id": hit.id.to_json(),
        "version": hit.version,
        "score": hit.score,
        "payload": with_payload.render(hit.payload.as_ref()),
        "vector": vector_json(hit.vector.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_upsert_shapes_give_the_same_points() {
        let list = json!({"points": [
            {"id": 1, "vector": [0.5, 1], "payload": {"a": 1}},
            {"id": "550e8400-e29b-41d4-a716-446655440000", "vector": {"": [1, 2]}}
        ]});
        let batch = json!({"batch": {
            "ids": [1, "550e8400-e29b-41d4-a716-446655440000"],
            "vectors": [[0.5, 1], [1, 2]],
            "payloads": [{"a": 1}, null]
        }});
        assert_eq!(parse_upsert(&list).unwrap(), parse_upsert(&batch).unwrap());
    }

    #[test]
    fn upsert_errors_name_the_field() {
        let cases = [
            (json!({"points": [{"id": -1, "vector": [1]}]}), "points[0].id"),
            (json!({"points": [{"id": 1, "vector": [1, "x"]}]}), "points[0].vector[1]"),
            (json!({"points": [{"id": 1}]}), "points[0].vector is missing"),
            (json!({"points": [{"id": 1, "vector": {"img": [1]}}]}), "named vectors"),
            (json!({"points": [{"id": 1, "vector": [1], "payload": [1]}]}), "points[0].payload"),
            (json!({"batch": {"ids": [1, 2], "vectors": [[1]]}}), "2 ids but 1 vectors"),
            (json!({}), "needs `points` or `batch`"),
        ];
        for (body, needle) in cases {
            let e = parse_upsert(&body).unwrap_err();
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
    }

    #[test]
    fn payload_selectors() {
        let p: Payload = payload_from_json(&json!({"a": 1, "b": 2})).unwrap();
        let r = Record { id: PointId::Num(1), version: 0, payload: Some(p), vector: None };
        let with = |v: Value| WithPayload::parse(Some(&v), false).unwrap();
        assert_eq!(record_json(&r, &with(json!(["a"])))["payload"], json!({"a": 1}));
        assert_eq!(record_json(&r, &with(json!({"exclude": ["a"]})))["payload"], json!({"b": 2}));
        assert_eq!(record_json(&r, &with(json!(true)))["payload"], json!({"a": 1, "b": 2}));
        assert_eq!(record_json(&r, &with(json!(false)))["payload"], Value::Null);
        assert!(WithPayload::parse(Some(&json!(3)), false).is_err());
        assert!(parse_with_vector(Some(&json!(["img"]))).is_err());
        assert!(parse_with_vector(Some(&json!([""]))).unwrap());
    }
}
