//! Point payloads: a JSON-like value tree that postcard can encode deterministically.
//!
//! `serde_json::Value` cannot go through postcard (it needs `deserialize_any`), and its maps would
//! not give byte-identical encodings across replicas anyway. [`PayloadValue`] is an externally
//! tagged enum with `BTreeMap` objects, so the same payload always encodes to the same bytes; the
//! REST layer converts with [`PayloadValue::from_json`] / [`PayloadValue::to_json`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// A point's payload: top-level keys to values, in key order (deterministic encoding).
pub type Payload = BTreeMap<String, PayloadValue>;

/// Deepest nesting accepted in a payload, so hostile input cannot exhaust the stack later.
pub const MAX_PAYLOAD_DEPTH: usize = 64;

/// One JSON-like value inside a payload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum PayloadValue {
    /// JSON `null`.
    Null,
    /// JSON `true` / `false`.
    Bool(bool),
    /// A JSON number that fits a signed 64-bit integer.
    Int(i64),
    /// Any other JSON number (always finite once validated).
    Float(f64),
    /// A JSON string.
    Str(String),
    /// A JSON array.
    Array(Vec<PayloadValue>),
    /// A JSON object, keys sorted.
    Object(BTreeMap<String, PayloadValue>),
}

/// Decoding twin of [`PayloadValue`] (same variants, same encoding); its children decode through
/// [`PayloadValue`]'s depth-limited impl.
#[derive(Deserialize)]
#[serde(rename = "PayloadValue")]
enum PayloadValueRepr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<PayloadValue>),
    Object(BTreeMap<String, PayloadValue>),
}

impl<'de> Deserialize<'de> for PayloadValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = crate::vector::nesting::decode_nested(MAX_PAYLOAD_DEPTH, "payload", || {
            PayloadValueRepr::deserialize(deserializer)
        })?;
        Ok(match repr {
            PayloadValueRepr::Null => PayloadValue::Null,
            PayloadValueRepr::Bool(b) => PayloadValue::Bool(b),
            PayloadValueRepr::Int(i) => PayloadValue::Int(i),
            PayloadValueRepr::Float(f) => PayloadValue::Float(f),
            PayloadValueRepr::Str(s) => PayloadValue::Str(s),
            PayloadValueRepr::Array(items) => PayloadValue::Array(items),
            PayloadValueRepr::Object(map) => PayloadValue::Object(map),
        })
    }
}

/// Why a payload was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// A payload must be a JSON object at the top level.
    #[error("payload must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// NaN or infinite floats have no JSON form and break equality.
    #[error("payload key `{0}` holds a non-finite number")]
    NonFiniteNumber(String),
    /// Nesting beyond [`MAX_PAYLOAD_DEPTH`].
    #[error("payload nested deeper than {MAX_PAYLOAD_DEPTH} levels")]
    TooDeep,
}

impl PayloadValue {
    /// Converts a JSON value. Integers that fit `i64` stay integers; larger unsigned integers and
    /// fractions become floats (JSON numbers from serde_json are always finite).
    pub fn from_json(value: &serde_json::Value) -> PayloadValue {
        use serde_json::Value;
        match value {
            Value::Null => PayloadValue::Null,
            Value::Bool(b) => PayloadValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => PayloadValue::Int(i),
                None => PayloadValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => PayloadValue::Str(s.clone()),
            Value::Array(items) => PayloadValue::Array(items.iter().map(Self::from_json).collect()),
            Value::Object(map) => PayloadValue::Object(
                map.iter().map(|(k, v)| (k.clone(), Self::from_json(v))).collect(),
            ),
        }
    }

    /// Converts back to JSON for API answers. A non-finite float (impossible after validation)
    /// becomes `null` rather than failing.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            PayloadValue::Null => Value::Null,
            PayloadValue::Bool(b) => Value::Bool(*b),
            PayloadValue::Int(i) => Value::from(*i),
            PayloadValue::Float(f) => {
                serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null)
            }
            PayloadValue::Str(s) => Value::String(s.clone()),
            PayloadValue::Array(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            PayloadValue::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// The value as a number, if it is one (integers widen to `f64`), for range conditions.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            PayloadValue::Int(i) => Some(*i as f64),
            PayloadValue::Float(f) => Some(*f),
            _ => None,
        }
    }

    fn validate(&self, key: &str, depth: usize) -> Result<(), PayloadError> {
        if depth > MAX_PAYLOAD_DEPTH {
            return Err(PayloadError::TooDeep);
        }
        match self {
            PayloadValue::Float(f) if !f.is_finite() => {
                Err(PayloadError::NonFiniteNumber(key.to_string()))
            }
            PayloadValue::Array(items) => items.iter().try_for_each(|v| v.validate(key, depth + 1)),
            PayloadValue::Object(map) => map.values().try_for_each(|v| v.validate(key, depth + 1)),
            _ => Ok(()),
        }
    }
}

/// Converts a JSON object into a payload (the REST layer's entry point).
pub fn payload_from_json(value: &serde_json::Value) -> Result<Payload, PayloadError> {
    use serde_json::Value;
    let kind = match value {
        Value::Object(map) => {
            let payload: Payload =
                map.iter().map(|(k, v)| (k.clone(), PayloadValue::from_json(v))).collect();
            validate_payload(&payload)?;
            return Ok(payload);
        }
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
    };
    Err(PayloadError::NotAnObject(kind))
}

/// Converts a payload to a JSON object.
pub fn payload_to_json(payload: &Payload) -> serde_json::Value {
    serde_json::Value::Object(payload.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

/// Checks the invariants the engine relies on: finite numbers, bounded depth.
pub fn validate_payload(payload: &Payload) -> Result<(), PayloadError> {
    payload.iter().try_for_each(|(k, v)| v.validate(k, 1))
}

/// Splits a dotted key path into segments; `a[].b` is accepted as `a.b` (Qdrant's array syntax).
/// Returns `None` for an empty path or an empty segment.
pub fn split_key_path(path: &str) -> Option<Vec<&str>> {
    let segments: Vec<&str> = path.split('.').map(|s| s.strip_suffix("[]").unwrap_or(s)).collect();
    if segments.iter().any(|s| s.is_empty()) { None } else { Some(segments) }
}

/// Every value found at `path`, with arrays flattened: arrays met midway are descended
/// element-wise, and an array at the end contributes its elements (so `match` on an array field
/// matches when any element does, as in Qdrant). `null`s are kept; callers decide what they mean.
pub fn values_at_path<'a>(payload: &'a Payload, segments: &[&str]) -> Vec<&'a PayloadValue> {
    let mut out = Vec::new();
    if let Some((first, rest)) = segments.split_first()
        && let Some(value) = payload.get(*first)
    {
        collect_values(value, rest, &mut out);
    }
    out
}

fn collect_values<'a>(value: &'a PayloadValue, rest: &[&str], out: &mut Vec<&'a PayloadValue>) {
    match (value, rest.split_first()) {
        (PayloadValue::Array(items), _) => {
            for item in items {
                // Arrays of arrays are flattened one level per step, like Qdrant's `a[]`.
                match item {
                    PayloadValue::Array(_) if rest.is_empty() => out.push(item),
                    _ => collect_values(item, rest, out),
                }
            }
        }
        (_, None) => out.push(value),
        (PayloadValue::Object(map), Some((key, tail))) => {
            if let Some(child) = map.get(*key) {
                collect_values(child, tail, out);
            }
        }
        (_, Some(_)) => {}
    }
}

/// Removes the value at a dotted `path` (descending objects only). Returns whether anything was
/// removed.
pub fn remove_path(payload: &mut Payload, segments: &[&str]) -> bool {
    match segments {
        [] => false,
        [last] => payload.remove(*last).is_some(),
        [first, rest @ ..] => match payload.get_mut(*first) {
            Some(PayloadValue::Object(map)) => remove_path(map, rest),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_and_postcard_determinism() {
        let v =
            json!({"b": 1, "a": {"x": [1, 2.5, "s", null, true]}, "big": 18446744073709551615u64});
        let p = payload_from_json(&v).unwrap();
        assert_eq!(p["b"], PayloadValue::Int(1));
        assert!(matches!(p["big"], PayloadValue::Float(_)));
        let back = payload_to_json(&p);
        assert_eq!(back["a"], v["a"]);
        let bytes = postcard::to_stdvec(&p).unwrap();
        let decoded: Payload = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, p);
        assert_eq!(postcard::to_stdvec(&decoded).unwrap(), bytes);
    }

    #[test]
    fn hostile_nesting_is_a_decode_error_not_a_stack_overflow() {
        // postcard: variant 5 (Array), length 1, repeated; innermost Null (variant 0).
        let mut bytes: Vec<u8> = [5u8, 1].repeat(200_000);
        bytes.push(0);
        assert!(postcard::from_bytes::<PayloadValue>(&bytes).is_err());
        // Exactly at the limit still decodes, and the depth counter is restored after errors.
        let mut ok: Vec<u8> = [5u8, 1].repeat(MAX_PAYLOAD_DEPTH - 1);
        ok.push(0);
        assert!(postcard::from_bytes::<PayloadValue>(&ok).is_ok());
        let mut too_deep: Vec<u8> = [5u8, 1].repeat(MAX_PAYLOAD_DEPTH);
        too_deep.push(0);
        assert!(postcard::from_bytes::<PayloadValue>(&too_deep).is_err());
        assert!(postcard::from_bytes::<PayloadValue>(&ok).is_ok());
    }

    #[test]
    fn rejects_non_objects_and_non_finite() {
        assert_eq!(payload_from_json(&json!([1])), Err(PayloadError::NotAnObject("an array")));
        let mut p = Payload::new();
        p.insert("f".into(), PayloadValue::Array(vec![PayloadValue::Float(f64::NAN)]));
        assert_eq!(validate_payload(&p), Err(PayloadError::NonFiniteNumber("f".into())));
    }

    #[test]
    fn dotted_paths_flatten_arrays() {
        let p = payload_from_json(&json!({
            "city": {"name": "Oslo", "tags": ["a", "b"]},
            "items": [{"n": 1}, {"n": 2}, {"m": 3}]
        }))
        .unwrap();
        let path = split_key_path("city.name").unwrap();
        assert_eq!(values_at_path(&p, &path), vec![&PayloadValue::Str("Oslo".into())]);
        let path = split_key_path("city.tags").unwrap();
        assert_eq!(values_at_path(&p, &path).len(), 2);
        let path = split_key_path("items[].n").unwrap();
        assert_eq!(values_at_path(&p, &path), vec![&PayloadValue::Int(1), &PayloadValue::Int(2)]);
        assert!(split_key_path("a..b").is_none());
        assert!(split_key_path("").is_none());
        let mut p2 = p.clone();
        assert!(remove_path(&mut p2, &split_key_path("city.name").unwrap()));
        assert!(!remove_path(&mut p2, &split_key_path("city.name").unwrap()));
        assert!(values_at_path(&p2, &split_key_path("city.name").unwrap()).is_empty());
    }
}
