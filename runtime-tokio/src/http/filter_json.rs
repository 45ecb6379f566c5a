//! Qdrant's JSON filter language -> the engine's [`Filter`].
//!
//! Supported: `must` / `should` / `must_not` (a list or a single condition), nested filters,
//! field conditions with `match: {value}` (keyword, integer, bool), `match: {any: [...]}`,
//! numeric `range: {gt, gte, lt, lte}`, `is_empty: {key}`, `is_null: {key}`, `has_id: [...]`.
//! Anything else Qdrant knows (`min_should`, `nested`, geo, `values_count`, full-text and
//! `except` matches, datetime ranges) is refused with a 400 naming it: a filter that silently
//! matched more than asked would be worse than an error. Depth is bounded while parsing, so
//! hostile nesting cannot exhaust the stack.

use super::convert::parse_id;
use super::envelope::ApiError;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use vecraft_core::vector::filter::{
    Condition, FieldCheck, Filter, MAX_FILTER_DEPTH, MatchValue, NumericRange,
};

/// Parses a filter object (`null` means no filter).
pub fn parse_filter(value: Option<&Value>) -> Result<Option<Filter>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let filter = filter_at(v, "filter", 1)?;
            filter.validate().map_err(|e| ApiError::bad_request(format!("filter: {e}")))?;
            Ok(Some(filter))
        }
    }
}

fn bad(at: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("{at}: {msg}"))
}

fn filter_at(value: &Value, at: &str, depth: usize) -> Result<Filter, ApiError> {
    if depth > MAX_FILTER_DEPTH {
        return Err(bad(at, format!("filter nested deeper than {MAX_FILTER_DEPTH} levels")));
    }
    let obj = value.as_object().ok_or_else(|| bad(at, "a filter must be an object"))?;
    let mut filter = Filter::default();
    for (key, v) in obj {
        let list = match key.as_str() {
            "must" => &mut filter.must,
            "should" => &mut filter.should,
            "must_not" => &mut filter.must_not,
            "min_should" => return Err(bad(at, "`min_should` is not supported")),
            other => return Err(bad(at, format!("unknown filter clause `{other}`"))),
        };
        let here = format!("{at}.{key}");
        match v {
            Value::Null => {}
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    list.push(condition_at(item, &format!("{here}[{i}]"), depth)?);
                }
            }
            single => list.push(condition_at(single, &here, depth)?),
        }
    }
    Ok(filter)
}

fn key_of(obj: &Map<String, Value>, at: &str) -> Result<String, ApiError> {
    obj.get("key")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| bad(at, "condition needs a string `key`"))
}

fn condition_at(value: &Value, at: &str, depth: usize) -> Result<Condition, ApiError> {
    let obj = value.as_object().ok_or_else(|| bad(at, "a condition must be an object"))?;
    if obj.contains_key("must") || obj.contains_key("should") || obj.contains_key("must_not") {
        return Ok(Condition::Filter(Box::new(filter_at(value, at, depth + 1)?)));
    }
    if let Some(inner) = obj.get("is_empty") {
        let inner = inner.as_object().ok_or_else(|| bad(at, "is_empty must be {\"key\": ...}"))?;
        return Ok(Condition::IsEmpty { key: key_of(inner, &format!("{at}.is_empty"))? });
    }
    if let Some(inner) = obj.get("is_null") {
        let inner = inner.as_object().ok_or_else(|| bad(at, "is_null must be {\"key\": ...}"))?;
        return Ok(Condition::IsNull { key: key_of(inner, &format!("{at}.is_null"))? });
    }
    if let Some(ids) = obj.get("has_id") {
        let list = ids.as_array().ok_or_else(|| bad(at, "has_id must be a list of ids"))?;
        let ids = list
            .iter()
            .enumerate()
            .map(|(i, id)| parse_id(id, &format!("{at}.has_id[{i}]")))
            .collect::<Result<BTreeSet<_>, _>>()?;
        return Ok(Condition::HasId(ids));
    }
    for unsupported in ["nested", "has_vector"] {
        if obj.contains_key(unsupported) {
            return Err(bad(at, format!("`{unsupported}` conditions are not supported")));
        }
    }
    let key = key_of(obj, at)?;
    let mut checks = Vec::new();
    for (name, v) in obj {
        match name.as_str() {
            "key" => {}
            "match" => checks.push(match_at(v, &format!("{at}.match"))?),
            "range" => checks.push(FieldCheck::Range(range_at(v, &format!("{at}.range"))?)),
            "geo_bounding_box" | "geo_radius" | "geo_polygon" | "values_count"
            | "datetime_range" => {
                return Err(bad(at, format!("`{name}` conditions are not supported")));
            }
            other => return Err(bad(at, format!("unknown field condition `{other}`"))),
        }
    }
    match checks.len() {
        1 => Ok(Condition::Field { key, check: checks.pop().expect("one check") }),
        0 => Err(bad(at, format!("condition on `{key}` needs `match` or `range`"))),
        _ => Err(bad(at, "a field condition takes exactly one of `match`, `range`")),
    }
}

fn match_value(v: &Value, at: &str) -> Result<MatchValue, ApiError> {
    match v {
        Value::String(s) => Ok(MatchValue::Keyword(s.clone())),
        Value::Bool(b) => Ok(MatchValue::Bool(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(MatchValue::Integer)
            .ok_or_else(|| bad(at, format!("{n} is not an integer; match works on integers"))),
        other => Err(bad(at, format!("cannot match on {other}"))),
    }
}

fn match_at(value: &Value, at: &str) -> Result<FieldCheck, ApiError> {
    let obj = value.as_object().ok_or_else(|| bad(at, "match must be an object"))?;
    if let Some(v) = obj.get("value") {
        return Ok(FieldCheck::Match(match_value(v, &format!("{at}.value"))?));
    }
    if let Some(any) = obj.get("any") {
        let list = any.as_array().ok_or_else(|| bad(at, "match.any must be a list"))?;
        let values = list
            .iter()
            .enumerate()
            .map(|(i, v)| match_value(v, &format!("{at}.any[{i}]")))
            .collect::<Result<_, _>>()?;
        return Ok(FieldCheck::MatchAny(values));
    }
    for unsupported in ["except", "text", "phrase", "text_any"] {
        if obj.contains_key(unsupported) {
            return Err(bad(at, format!("`match.{unsupported}` is not supported")));
        }
    }
    Err(bad(at, "match needs `value` or `any`"))
}

fn range_at(value: &Value, at: &str) -> Result<NumericRange, ApiError> {
    let obj = value.as_object().ok_or_else(|| bad(at, "range must be an object"))?;
    let mut range = NumericRange::default();
    for (name, v) in obj {
        let slot = match name.as_str() {
            "gt" => &mut range.gt,
            "gte" => &mut range.gte,
            "lt" => &mut range.lt,
            "lte" => &mut range.lte,
            other => return Err(bad(at, format!("unknown range bound `{other}`"))),
        };
        *slot = match v {
            Value::Null => None,
            Value::Number(n) => n.as_f64(),
            other => {
                return Err(bad(
                    at,
                    format!(
                        "bound `{name}` must be a number, got {other} (datetime ranges are not supported)"
                    ),
                ));
            }
        };
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use vecraft_core::vector::payload::payload_from_json;
    use vecraft_core::vector::point::PointId;

    fn matches(filter: Value, payload: Value) -> bool {
        let f = parse_filter(Some(&filter)).unwrap().unwrap();
        f.matches(PointId::Num(1), &payload_from_json(&payload).unwrap())
    }

    #[test]
    fn qdrant_filters() {
        let p = json!({"color": "red", "n": 5, "tags": ["x", "y"], "ok": true, "gone": null});
        assert!(matches(json!({"must": [{"key": "color", "match": {"value": "red"}}]}), p.clone()));
        assert!(matches(json!({"must": {"key": "n", "range": {"gte": 5, "lt": 6}}}), p.clone()));
        assert!(!matches(
            json!({"must_not": [{"key": "ok", "match": {"value": true}}]}),
            p.clone()
        ));
        assert!(matches(
            json!({"should": [{"key": "tags", "match": {"any": ["z", "y"]}}]}),
            p.clone()
        ));
        assert!(matches(
            json!({"must": [{"is_empty": {"key": "missing"}}, {"is_null": {"key": "gone"}}]}),
            p.clone()
        ));
        assert!(matches(json!({"must": [{"has_id": [1, 2]}]}), p.clone()));
        assert!(matches(
            json!({"must": [{"should": [{"key": "n", "match": {"value": 4}}, {"key": "n", "match": {"value": 5}}]}]}),
            p
        ));
        assert_eq!(parse_filter(Some(&Value::Null)).unwrap(), None);
    }

    #[test]
    fn bad_filters_are_named() {
        let cases = [
            (json!({"must": [{"key": "a", "match": {"text": "x"}}]}), "match.text"),
            (json!({"must": [{"key": "a", "geo_radius": {}}]}), "geo_radius"),
            (json!({"mustt": []}), "unknown filter clause `mustt`"),
            (json!({"must": [{"match": {"value": 1}}]}), "needs a string `key`"),
            (json!({"must": [{"key": "a", "range": {"gt": "2020-01-01"}}]}), "datetime"),
            (json!({"must": [{"key": "a", "match": {"value": 1.5}}]}), "not an integer"),
            (json!({"must": [{"key": "a..b", "match": {"value": 1}}]}), "invalid filter key"),
            (json!({"must": [{"has_id": [-3]}]}), "has_id[0]"),
            (json!([1]), "must be an object"),
        ];
        for (filter, needle) in cases {
            let e = parse_filter(Some(&filter)).unwrap_err();
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
        let mut deep = json!({"key": "a", "match": {"value": 1}});
        for _ in 0..100 {
            deep = json!({"must": [deep]});
        }
        assert!(parse_filter(Some(&deep)).unwrap_err().message.contains("deeper"));
    }
}
