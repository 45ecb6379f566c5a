//! Payload filters in Qdrant's shape (must / should / must_not over conditions), so the REST layer
//! maps them one to one, and their evaluation against a point.
//!
//! Semantics (as Qdrant): a filter matches when *all* `must` conditions match, *at least one*
//! `should` condition matches (if there are any), and *no* `must_not` condition matches. A field
//! condition matches when any value found at its (dotted) key matches; arrays are flattened.

use crate::vector::payload::{Payload, PayloadValue, split_key_path, values_at_path};
use crate::vector::point::PointId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use thiserror::Error;

/// Deepest nesting of filters accepted (filters arrive from the network; recursion is bounded).
pub const MAX_FILTER_DEPTH: usize = 32;

/// A boolean combination of conditions.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Filter {
    /// Every one must match.
    pub must: Vec<Condition>,
    /// At least one must match, unless the list is empty.
    pub should: Vec<Condition>,
    /// None may match.
    pub must_not: Vec<Condition>,
}

/// Decoding twin of [`Filter`] (same fields, same encoding); nested filters decode through
/// [`Filter`]'s depth-limited impl.
#[derive(Deserialize)]
#[serde(rename = "Filter")]
struct FilterRepr {
    must: Vec<Condition>,
    should: Vec<Condition>,
    must_not: Vec<Condition>,
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let FilterRepr { must, should, must_not } =
            crate::vector::nesting::decode_nested(MAX_FILTER_DEPTH, "filter", || {
                FilterRepr::deserialize(deserializer)
            })?;
        Ok(Filter { must, should, must_not })
    }
}

/// One condition of a filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Condition {
    /// A check on the values at a payload key.
    Field {
        /// Dotted path into the payload (`a.b`, `a[].b`).
        key: String,
        /// What the values must satisfy.
        check: FieldCheck,
    },
    /// True when the key is missing, `null`, or an empty array.
    IsEmpty {
        /// Dotted path into the payload.
        key: String,
    },
    /// True when the key holds `null` (explicitly).
    IsNull {
        /// Dotted path into the payload.
        key: String,
    },
    /// True when the point's id is in the set.
    HasId(BTreeSet<PointId>),
    /// A nested filter, evaluated as one condition.
    Filter(Box<Filter>),
}

/// A check on payload values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FieldCheck {
    /// Some value equals this one.
    Match(MatchValue),
    /// Some value equals one of these.
    MatchAny(Vec<MatchValue>),
    /// Some numeric value lies in the range.
    Range(NumericRange),
}

/// A value a `match` condition compares with (Qdrant matches keywords, integers and booleans).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchValue {
    /// Exact string equality.
    Keyword(String),
    /// Integer equality (matches integer payload values only).
    Integer(i64),
    /// Boolean equality.
    Bool(bool),
}

/// Numeric bounds; absent bounds are open. Integers and floats are compared as `f64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NumericRange {
    /// Strictly greater than.
    pub gt: Option<f64>,
    /// Greater than or equal.
    pub gte: Option<f64>,
    /// Strictly less than.
    pub lt: Option<f64>,
    /// Less than or equal.
    pub lte: Option<f64>,
}

/// Why a filter was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FilterError {
    /// Empty key, or a key with an empty segment (`a..b`).
    #[error("invalid filter key `{0}`")]
    InvalidKey(String),
    /// A range bound that is NaN.
    #[error("range on key `{0}` has a NaN bound")]
    NanBound(String),
    /// Nested deeper than [`MAX_FILTER_DEPTH`].
    #[error("filter nested deeper than {MAX_FILTER_DEPTH} levels")]
    TooDeep,
}

impl Filter {
    /// A filter with only `must` conditions (the common case).
    pub fn must(conditions: Vec<Condition>) -> Filter {
        Filter { must: conditions, ..Filter::default() }
    }

    /// Checks keys and bounds once, so evaluation can assume a well-formed filter.
    pub fn validate(&self) -> Result<(), FilterError> {
        self.validate_at(1)
    }

    fn validate_at(&self, depth: usize) -> Result<(), FilterError> {
        if depth > MAX_FILTER_DEPTH {
            return Err(FilterError::TooDeep);
        }
        for condition in self.must.iter().chain(&self.should).chain(&self.must_not) {
            condition.validate_at(depth)?;
        }
        Ok(())
    }

    /// Whether the point with this id and payload passes the filter.
    pub fn matches(&self, id: PointId, payload: &Payload) -> bool {
        self.must.iter().all(|c| c.matches(id, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(id, payload)))
            && !self.must_not.iter().any(|c| c.matches(id, payload))
    }
}

impl Condition {
    /// `key` must match `value`.
    pub fn matches_value(key: &str, value: MatchValue) -> Condition {
        Condition::Field { key: key.to_string(), check: FieldCheck::Match(value) }
    }

    /// `key` must lie in `range`.
    pub fn range(key: &str, range: NumericRange) -> Condition {
        Condition::Field { key: key.to_string(), check: FieldCheck::Range(range) }
    }

    fn validate_at(&self, depth: usize) -> Result<(), FilterError> {
        let check_key = |key: &str| {
            split_key_path(key).map(|_| ()).ok_or_else(|| FilterError::InvalidKey(key.to_string()))
        };
        match self {
            Condition::Field { key, check } => {
                check_key(key)?;
                if let FieldCheck::Range(r) = check
                    && [r.gt, r.gte, r.lt, r.lte].iter().flatten().any(|b| b.is_nan())
                {
                    return Err(FilterError::NanBound(key.clone()));
                }
                Ok(())
            }
            Condition::IsEmpty { key } | Condition::IsNull { key } => check_key(key),
            Condition::HasId(_) => Ok(()),
            Condition::Filter(inner) => inner.validate_at(depth + 1),
        }
    }

    /// Whether this condition holds for the point. Keys are assumed validated; an invalid key
    /// matches nothing.
    pub fn matches(&self, id: PointId, payload: &Payload) -> bool {
        match self {
            Condition::Field { key, check } => {
                let Some(path) = split_key_path(key) else {
                    return false;
                };
                values_at_path(payload, &path).into_iter().any(|v| check.matches(v))
            }
            Condition::IsEmpty { key } => {
                let Some(path) = split_key_path(key) else {
                    return false;
                };
                values_at_path(payload, &path).iter().all(|v| matches!(v, PayloadValue::Null))
            }
            Condition::IsNull { key } => {
                let Some(path) = split_key_path(key) else {
                    return false;
                };
                let mut direct = payload.get(path[0]);
                for segment in &path[1..] {
                    direct = match direct {
                        Some(PayloadValue::Object(map)) => map.get(*segment),
                        _ => None,
                    };
                }
                matches!(direct, Some(PayloadValue::Null))
            }
            Condition::HasId(ids) => ids.contains(&id),
            Condition::Filter(inner) => inner.matches(id, payload),
        }
    }
}

impl FieldCheck {
    fn matches(&self, value: &PayloadValue) -> bool {
        match self {
            FieldCheck::Match(m) => m.matches(value),
            FieldCheck::MatchAny(list) => list.iter().any(|m| m.matches(value)),
            FieldCheck::Range(r) => value.as_f64().is_some_and(|x| r.contains(x)),
        }
    }
}

impl MatchValue {
    fn matches(&self, value: &PayloadValue) -> bool {
        match (self, value) {
            (MatchValue::Keyword(a), PayloadValue::Str(b)) => a == b,
            (MatchValue::Integer(a), PayloadValue::Int(b)) => a == b,
            (MatchValue::Bool(a), PayloadValue::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl NumericRange {
    /// Whether `x` satisfies every present bound.
    pub fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::payload::payload_from_json;
    use serde_json::json;

    fn payload(v: serde_json::Value) -> Payload {
        payload_from_json(&v).unwrap()
    }

    fn kw(key: &str, s: &str) -> Condition {
        Condition::matches_value(key, MatchValue::Keyword(s.into()))
    }

    #[test]
    fn each_condition_kind() {
        let p = payload(json!({
            "color": "red", "n": 5, "x": 2.5, "ok": true, "tags": ["a", "b"],
            "nested": {"deep": {"v": 7}}, "nothing": null, "empty": []
        }));
        let id = PointId::Num(3);
        assert!(kw("color", "red").matches(id, &p));
        assert!(!kw("color", "blue").matches(id, &p));
        assert!(Condition::matches_value("n", MatchValue::Integer(5)).matches(id, &p));
        assert!(!Condition::matches_value("x", MatchValue::Integer(2)).matches(id, &p));
        assert!(Condition::matches_value("ok", MatchValue::Bool(true)).matches(id, &p));
        assert!(!Condition::matches_value("ok", MatchValue::Bool(false)).matches(id, &p));
        assert!(kw("tags", "b").matches(id, &p), "array field matches any element");
        let any = Condition::Field {
            key: "color".into(),
            check: FieldCheck::MatchAny(vec![
                MatchValue::Keyword("blue".into()),
                MatchValue::Keyword("red".into()),
            ]),
        };
        assert!(any.matches(id, &p));
        let range = |gt, gte, lt, lte| NumericRange { gt, gte, lt, lte };
        assert!(Condition::range("n", range(None, Some(5.0), None, None)).matches(id, &p));
        assert!(!Condition::range("n", range(Some(5.0), None, None, None)).matches(id, &p));
        assert!(Condition::range("x", range(Some(2.0), None, Some(3.0), None)).matches(id, &p));
        assert!(!Condition::range("x", range(None, None, None, Some(2.4))).matches(id, &p));
        assert!(!Condition::range("color", range(None, None, None, None)).matches(id, &p));
        assert!(Condition::matches_value("nested.deep.v", MatchValue::Integer(7)).matches(id, &p));
        for key in ["missing", "nothing", "empty", "nested.missing"] {
            assert!(Condition::IsEmpty { key: key.into() }.matches(id, &p), "{key}");
        }
        assert!(!Condition::IsEmpty { key: "tags".into() }.matches(id, &p));
        assert!(Condition::IsNull { key: "nothing".into() }.matches(id, &p));
        assert!(!Condition::IsNull { key: "missing".into() }.matches(id, &p));
        let ids: BTreeSet<PointId> = [PointId::Num(3), PointId::Num(9)].into();
        assert!(Condition::HasId(ids.clone()).matches(id, &p));
        assert!(!Condition::HasId(ids).matches(PointId::Num(4), &p));
    }

    #[test]
    fn must_should_must_not_and_nesting() {
        let red = payload(json!({"color": "red", "size": 1}));
        let blue = payload(json!({"color": "blue", "size": 2}));
        let id = PointId::Num(1);
        let f = Filter {
            must: vec![],
            should: vec![kw("color", "red"), kw("color", "green")],
            must_not: vec![],
        };
        assert!(f.matches(id, &red) && !f.matches(id, &blue));
        let f = Filter { must_not: vec![kw("color", "red")], ..Filter::default() };
        assert!(!f.matches(id, &red) && f.matches(id, &blue));
        assert!(Filter::default().matches(id, &red), "empty filter matches everything");
        // (color = red OR size = 2) AND NOT (size = 1)
        let inner = Filter {
            should: vec![
                kw("color", "red"),
                Condition::matches_value("size", MatchValue::Integer(2)),
            ],
            ..Filter::default()
        };
        let f = Filter {
            must: vec![Condition::Filter(Box::new(inner))],
            must_not: vec![Condition::matches_value("size", MatchValue::Integer(1))],
            ..Filter::default()
        };
        assert!(!f.matches(id, &red) && f.matches(id, &blue));
    }

    #[test]
    fn validation() {
        assert_eq!(
            Filter::must(vec![kw("a..b", "x")]).validate(),
            Err(FilterError::InvalidKey("a..b".into()))
        );
        let nan = NumericRange { gt: Some(f64::NAN), ..NumericRange::default() };
        assert_eq!(
            Filter::must(vec![Condition::range("n", nan)]).validate(),
            Err(FilterError::NanBound("n".into()))
        );
        let mut f = Filter::must(vec![kw("a", "b")]);
        for _ in 0..MAX_FILTER_DEPTH {
            f = Filter::must(vec![Condition::Filter(Box::new(f))]);
        }
        assert_eq!(f.validate(), Err(FilterError::TooDeep));
        // Too deep to decode as well; a legal depth round-trips.
        let bytes = postcard::to_stdvec(&f).unwrap();
        assert!(postcard::from_bytes::<Filter>(&bytes).is_err());
        let legal =
            Filter::must(vec![Condition::Filter(Box::new(Filter::must(vec![kw("a", "b")])))]);
        let bytes = postcard::to_stdvec(&legal).unwrap();
        assert_eq!(postcard::from_bytes::<Filter>(&bytes).unwrap(), legal);
        // Hostile depth: must = [Filter(must = [Filter(...)])], far past the stack's reach.
        let levels = 200_000;
        let mut hostile: Vec<u8> = [1u8, 4].repeat(levels);
        hostile.extend([0, 0, 0]);
        hostile.extend([0u8, 0].repeat(levels));
        assert!(postcard::from_bytes::<Filter>(&hostile).is_err());
    }
}
