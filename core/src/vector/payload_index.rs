//! Payload indexes: per-field posting lists, declared per collection (Qdrant's
//! `create_field_index`), so a filtered read touches only the points that can match instead of
//! every payload.
//!
//! An index only *narrows*: [`PayloadIndex::candidates`] returns a superset of the points a
//! filter matches (from the `must` conditions it can answer), and the caller still checks the
//! whole filter on each candidate, so results are exactly those of a full scan. Posting lists hold
//! point ids (not index slots), so index rebuilds and restores never invalidate them; they are
//! derived from the stored payloads, rebuilt when a collection is restored, and not part of the
//! content digest (a replica with or without an index answers the same).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::vector::filter::{Condition, FieldCheck, Filter, MatchValue, NumericRange};
use crate::vector::payload::{Payload, PayloadValue, split_key_path, values_at_path};
use crate::vector::point::PointId;

/// What a field index indexes (Qdrant's `field_schema`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FieldSchema {
    /// String values: `match` on a keyword, `match any` of keywords.
    Keyword,
    /// Integer values: `match` on an integer, `match any` of integers, numeric ranges.
    Integer,
}

/// Why a field index could not be created.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FieldIndexError {
    /// The key is not a valid payload path.
    #[error("invalid payload field `{0}` for an index")]
    InvalidField(String),
    /// The field is already indexed with another schema.
    #[error("field `{field}` is already indexed as {existing:?}")]
    SchemaConflict {
        /// The field.
        field: String,
        /// Its current schema.
        existing: FieldSchema,
    },
}

/// Posting lists of one field.
#[derive(Clone, Debug)]
enum Postings {
    Keyword(BTreeMap<String, BTreeSet<PointId>>),
    Integer(BTreeMap<i64, BTreeSet<PointId>>),
}

/// One indexed field.
#[derive(Clone, Debug)]
struct FieldIndex {
    /// Path segments (`a[].b` and `a.b` are the same path, as in filters).
    path: Vec<String>,
    postings: Postings,
    /// Points with at least one indexed value.
    points: BTreeSet<PointId>,
    /// Integer fields: points holding a float at the path. A range condition matches floats too,
    /// so they are always range candidates (the index must never miss a match).
    floats: BTreeSet<PointId>,
}

/// The indexed fields of one collection.
#[derive(Clone, Debug, Default)]
pub struct PayloadIndex {
    /// By normalised field name (segments joined with `.`).
    fields: BTreeMap<String, FieldIndex>,
}

/// The normalised name of a payload key (`a[].b` → `a.b`), `None` if it is not a valid path.
pub fn normalise_field(key: &str) -> Option<String> {
    split_key_path(key).map(|segments| segments.join("."))
}

impl FieldIndex {
    fn insert(&mut self, id: PointId, payload: &Payload) {
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        let mut any = false;
        for value in values_at_path(payload, &path) {
            match (&mut self.postings, value) {
                (Postings::Keyword(map), PayloadValue::Str(s)) => {
                    map.entry(s.clone()).or_default().insert(id);
                    any = true;
                }
                (Postings::Integer(map), PayloadValue::Int(i)) => {
                    map.entry(*i).or_default().insert(id);
                    any = true;
                }
                (Postings::Integer(_), PayloadValue::Float(_)) => {
                    self.floats.insert(id);
                }
                _ => {}
            }
        }
        if any {
            self.points.insert(id);
        }
    }

    fn remove(&mut self, id: PointId, payload: &Payload) {
        self.floats.remove(&id);
        if !self.points.remove(&id) {
            return;
        }
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        for value in values_at_path(payload, &path) {
            match (&mut self.postings, value) {
                (Postings::Keyword(map), PayloadValue::Str(s)) => remove_posting(map, s.as_str(), id),
                (Postings::Integer(map), PayloadValue::Int(i)) => remove_posting(map, i, id),
                _ => {}
            }
        }
    }

    fn schema(&self) -> FieldSchema {
        match self.postings {
            Postings::Keyword(_) => FieldSchema::Keyword,
            Postings::Integer(_) => FieldSchema::Integer,
        }
    }

    /// Points that may satisfy `check`, if this index can tell.
    fn lookup(&self, check: &FieldCheck) -> Option<BTreeSet<PointId>> {
        let mut out = BTreeSet::new();
        match (&self.postings, check) {
            (Postings::Keyword(map), FieldCheck::Match(MatchValue::Keyword(k))) => {
                out.extend(map.get(k).into_iter().flatten());
            }
            (Postings::Keyword(map), FieldCheck::MatchAny(list))
                if list.iter().all(|m| matches!(m, MatchValue::Keyword(_))) =>
            {
                for m in list {
                    if let MatchValue::Keyword(k) = m {
                        out.extend(map.get(k).into_iter().flatten());
                    }
                }
            }
            (Postings::Integer(map), FieldCheck::Match(MatchValue::Integer(i))) => {
                out.extend(map.get(i).into_iter().flatten());
            }
            (Postings::Integer(map), FieldCheck::MatchAny(list))
                if list.iter().all(|m| matches!(m, MatchValue::Integer(_))) =>
            {
                for m in list {
                    if let MatchValue::Integer(i) = m {
                        out.extend(map.get(i).into_iter().flatten());
                    }
                }
            }
            (Postings::Integer(map), FieldCheck::Range(range)) => {
                if let Some((lo, hi)) = integer_bounds(range) {
                    for (&v, ids) in map.range(lo..=hi) {
                        if range.contains(v as f64) {
                            out.extend(ids);
                        }
                    }
                }
                out.extend(&self.floats);
            }
            _ => return None,
        }
        Some(out)
    }
}

fn remove_posting<K: Ord + std::borrow::Borrow<Q>, Q: Ord + ?Sized>(
    map: &mut BTreeMap<K, BTreeSet<PointId>>,
    key: &Q,
    id: PointId,
) {
    if let Some(ids) = map.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

/// The smallest interval of `i64`s holding every integer the range admits (`None` if empty).
/// Conservative by one on each side of a fractional or huge bound; the caller re-checks exactly.
fn integer_bounds(range: &NumericRange) -> Option<(i64, i64)> {
    let to_i64 = |x: f64| -> i64 {
        if x.is_nan() {
            0
        } else {
            x.clamp(i64::MIN as f64, i64::MAX as f64) as i64
        }
    };
    let mut lo = i64::MIN;
    let mut hi = i64::MAX;
    for b in [range.gt, range.gte].into_iter().flatten() {
        lo = lo.max(to_i64(b.floor()).saturating_sub(1));
    }
    for b in [range.lt, range.lte].into_iter().flatten() {
        hi = hi.min(to_i64(b.ceil()).saturating_add(1));
    }
    (lo <= hi).then_some((lo, hi))
}

impl PayloadIndex {
    /// Declares `field` with `schema` and indexes the given points. Declaring an existing field
    /// again with the same schema changes nothing.
    pub fn create<'a>(
        &mut self,
        field: &str,
        schema: FieldSchema,
        points: impl Iterator<Item = (PointId, &'a Payload)>,
    ) -> Result<bool, FieldIndexError> {
        let name = normalise_field(field).ok_or_else(|| FieldIndexError::InvalidField(field.to_string()))?;
        if let Some(existing) = self.fields.get(&name) {
            return if existing.schema() == schema {
                Ok(false)
            } else {
                Err(FieldIndexError::SchemaConflict { field: name, existing: existing.schema() })
            };
        }
        let postings = match schema {
            FieldSchema::Keyword => Postings::Keyword(BTreeMap::new()),
            FieldSchema::Integer => Postings::Integer(BTreeMap::new()),
        };
        let path = name.split('.').map(str::to_string).collect();
        let mut index = FieldIndex { path, postings, points: BTreeSet::new(), floats: BTreeSet::new() };
        for (id, payload) in points {
            index.insert(id, payload);
        }
        self.fields.insert(name, index);
        Ok(true)
    }

    /// Drops the index of `field`; whether there was one.
    pub fn drop_field(&mut self, field: &str) -> bool {
        normalise_field(field).is_some_and(|name| self.fields.remove(&name).is_some())
    }

    /// The declared fields and their schemas, by normalised name.
    pub fn schemas(&self) -> BTreeMap<String, FieldSchema> {
        self.fields.iter().map(|(k, f)| (k.clone(), f.schema())).collect()
    }

    /// Indexed points per field (Qdrant reports it as `points` in `payload_schema`).
    pub fn indexed_points(&self, field: &str) -> Option<usize> {
        self.fields.get(&normalise_field(field)?).map(|f| f.points.len())
    }

    /// Whether no field is indexed.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Records a new point's payload.
    pub fn insert(&mut self, id: PointId, payload: &Payload) {
        for index in self.fields.values_mut() {
            index.insert(id, payload);
        }
    }

    /// Forgets a point whose payload was `payload`.
    pub fn remove(&mut self, id: PointId, payload: &Payload) {
        for index in self.fields.values_mut() {
            index.remove(id, payload);
        }
    }

    /// A superset of the points `filter` matches, from its `must` conditions on indexed fields
    /// (intersected) and `has_id`; `None` when no such condition narrows it (scan everything).
    pub fn candidates(&self, filter: &Filter) -> Option<BTreeSet<PointId>> {
        let mut best: Option<BTreeSet<PointId>> = None;
        for condition in &filter.must {
            let set = match condition {
                Condition::Field { key, check } => {
                    normalise_field(key).and_then(|name| self.fields.get(&name)).and_then(|f| f.lookup(check))
                }
                Condition::HasId(ids) => Some(ids.clone()),
                Condition::Filter(inner) => self.candidates(inner),
                Condition::IsEmpty { .. } | Condition::IsNull { .. } => None,
            };
            if let Some(set) = set {
                best = Some(match best {
                    None => set,
                    Some(prev) => {
                        let (small, large) = if prev.len() <= set.len() { (prev, set) } else { (set, prev) };
                        small.into_iter().filter(|id| large.contains(id)).collect()
                    }
                });
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::payload::payload_from_json;
    use serde_json::json;

    fn payloads() -> Vec<(PointId, Payload)> {
        (0..100u64)
            .map(|i| {
                let p = json!({"city": format!("c{}", i % 10), "n": i as i64, "tags": ["a", format!("t{}", i % 3)], "f": i as f64 + 0.5});
                (PointId::Num(i), payload_from_json(&p).unwrap())
            })
            .collect()
    }

    fn kw(key: &str, v: &str) -> Condition {
        Condition::Field { key: key.into(), check: FieldCheck::Match(MatchValue::Keyword(v.into())) }
    }

    fn range(key: &str, r: NumericRange) -> Condition {
        Condition::Field { key: key.into(), check: FieldCheck::Range(r) }
    }

    /// The defining property: candidates ⊇ matches, for every filter tried.
    fn check_superset(index: &PayloadIndex, data: &[(PointId, Payload)], filter: &Filter) -> Option<usize> {
        let candidates = index.candidates(filter)?;
        for (id, p) in data {
            if filter.matches(*id, p) {
                assert!(candidates.contains(id), "{id:?} matches {filter:?} but is no candidate");
            }
        }
        Some(candidates.len())
    }

    #[test]
    fn candidates_narrow_and_never_miss_a_match() {
        let data = payloads();
        let mut index = PayloadIndex::default();
        let iter = || data.iter().map(|(id, p)| (*id, p));
        assert!(index.create("city", FieldSchema::Keyword, iter()).unwrap());
        assert!(index.create("n", FieldSchema::Integer, iter()).unwrap());
        assert!(index.create("tags[]", FieldSchema::Keyword, iter()).unwrap());
        assert!(!index.create("tags", FieldSchema::Keyword, iter()).unwrap(), "same path, same schema");
        assert_eq!(
            index.create("city", FieldSchema::Integer, iter()),
            Err(FieldIndexError::SchemaConflict { field: "city".into(), existing: FieldSchema::Keyword })
        );
        assert_eq!(index.indexed_points("city"), Some(100));
        assert_eq!(index.indexed_points("f"), None);

        assert_eq!(check_superset(&index, &data, &Filter::must(vec![kw("city", "c3")])), Some(10));
        assert_eq!(check_superset(&index, &data, &Filter::must(vec![kw("tags", "t1")])), Some(33));
        let r = NumericRange { gte: Some(10.0), lt: Some(20.0), ..Default::default() };
        assert_eq!(check_superset(&index, &data, &Filter::must(vec![range("n", r)])), Some(10));
        // Boundaries of the integer range are exact: gt 9.5 admits 10, lte 19.0 admits 19.
        let r = NumericRange { gt: Some(9.5), lte: Some(19.0), ..Default::default() };
        assert_eq!(check_superset(&index, &data, &Filter::must(vec![range("n", r)])), Some(10));
        let r = NumericRange { gt: Some(10.0), lt: Some(10.0), ..Default::default() };
        assert_eq!(check_superset(&index, &data, &Filter::must(vec![range("n", r)])), Some(0));
        // Intersection of two indexed conditions.
        let both = Filter::must(vec![kw("city", "c3"), range("n", NumericRange { lt: Some(50.0), ..Default::default() })]);
        assert_eq!(check_superset(&index, &data, &both), Some(5));
        // Unindexed or unanswerable conditions do not narrow; `should` alone does not either.
        assert_eq!(index.candidates(&Filter::must(vec![range("f", NumericRange::default())])), None);
        assert_eq!(index.candidates(&Filter { should: vec![kw("city", "c1")], ..Default::default() }), None);
        let mixed = Filter::must(vec![Condition::Field {
            key: "city".into(),
            check: FieldCheck::Match(MatchValue::Integer(3)),
        }]);
        assert_eq!(index.candidates(&mixed), None, "an integer match on a keyword index");
        // Nested must filters narrow too.
        let nested = Filter::must(vec![Condition::Filter(Box::new(Filter::must(vec![kw("city", "c7")])))]);
        assert_eq!(check_superset(&index, &data, &nested), Some(10));
    }

    #[test]
    fn ranges_on_an_integer_index_still_find_float_values() {
        let data: Vec<(PointId, Payload)> = [json!({"n": 3}), json!({"n": 3.5}), json!({"n": "x"}), json!({})]
            .iter()
            .enumerate()
            .map(|(i, p)| (PointId::Num(i as u64), payload_from_json(p).unwrap()))
            .collect();
        let mut index = PayloadIndex::default();
        index.create("n", FieldSchema::Integer, data.iter().map(|(id, p)| (*id, p))).unwrap();
        let r = NumericRange { gte: Some(3.2), ..Default::default() };
        let got = check_superset(&index, &data, &Filter::must(vec![range("n", r)])).unwrap();
        assert_eq!(got, 1, "only the float can match, and it is a candidate");
        assert_eq!(index.indexed_points("n"), Some(1));
    }

    #[test]
    fn updates_move_points_between_postings() {
        let data = payloads();
        let mut index = PayloadIndex::default();
        index.create("city", FieldSchema::Keyword, data.iter().map(|(id, p)| (*id, p))).unwrap();
        let (id, old) = &data[3];
        index.remove(*id, old);
        let new = payload_from_json(&json!({"city": "elsewhere"})).unwrap();
        index.insert(*id, &new);
        let c3 = index.candidates(&Filter::must(vec![kw("city", "c3")])).unwrap();
        assert_eq!(c3.len(), 9);
        assert!(!c3.contains(id));
        assert_eq!(index.candidates(&Filter::must(vec![kw("city", "elsewhere")])).unwrap(), BTreeSet::from([*id]));
        index.remove(*id, &new);
        assert_eq!(index.candidates(&Filter::must(vec![kw("city", "elsewhere")])).unwrap(), BTreeSet::new());
        assert!(index.drop_field("city"));
        assert!(!index.drop_field("city"));
        assert!(index.is_empty());
    }

    #[test]
    fn integer_bounds_are_conservative_and_finite() {
        assert_eq!(integer_bounds(&NumericRange::default()), Some((i64::MIN, i64::MAX)));
        assert_eq!(integer_bounds(&NumericRange { gte: Some(1e300), ..Default::default() }), Some((i64::MAX - 1, i64::MAX)));
        assert_eq!(integer_bounds(&NumericRange { lt: Some(-1e300), ..Default::default() }), Some((i64::MIN, i64::MIN + 1)));
        assert_eq!(integer_bounds(&NumericRange { gt: Some(5.0), lt: Some(1.0), ..Default::default() }), None);
    }
}
