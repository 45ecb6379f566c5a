//! Gathering the answers of a collection's shards into one: top-k search hits, scroll pages and
//! counts.
//!
//! The rule that makes a sharded search equal a search of the union: every shard returns its own
//! best `offset + limit` hits, and the merge orders all of them by score, **ties broken by
//! ascending id** (the engine's own order), drops duplicates (a point seen on two shards, e.g.
//! during a migration, keeps its best hit), then skips `offset` and keeps `limit`. Every hit of the
//! global top `offset + limit` is in its own shard's top `offset + limit`, so nothing is missed; with
//! exact (brute-force) shard searches the result is bit-identical to one engine holding every
//! point, apart from `version`, which each shard numbers on its own.
//!
//! Shard answers arrive from the network, so nothing is assumed about them: lists are re-sorted,
//! not trusted to be sorted. A shard that failed fails the request with an error naming it, unless
//! the client asked for partial results, which are then marked with the shards they lack.

use std::cmp::Ordering;

use thiserror::Error;

use super::sharding::ShardId;
use crate::vector::collection::{Distance, ScrollPage};
use crate::vector::point::{PointId, ScoredPoint};

/// Why one shard did not answer.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ShardFailure {
    /// No answer within the request's timeout.
    #[error("timed out")]
    Timeout,
    /// No replica of the shard could serve the request at the asked consistency.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The shard refused the request.
    #[error("failed: {0}")]
    Failed(String),
}

/// A gathered request failed because a shard did.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("shard {shard} {failure}")]
pub struct GatherError {
    /// The first failed shard (lowest id).
    pub shard: ShardId,
    /// What happened to it.
    pub failure: ShardFailure,
}

/// A gathered answer, and the shards it lacks (empty unless partial results were allowed).
#[derive(Clone, Debug, PartialEq)]
pub struct Gathered<T> {
    /// The merged answer.
    pub value: T,
    /// Shards that failed and are missing from `value`, ascending.
    pub missing: Vec<ShardId>,
}

impl<T> Gathered<T> {
    /// Whether some shard is missing from the answer.
    pub fn is_partial(&self) -> bool {
        !self.missing.is_empty()
    }
}

/// Splits shard answers into successes and (sorted) failures; fails unless `allow_partial`.
fn split<T>(
    answers: Vec<(ShardId, Result<T, ShardFailure>)>,
    allow_partial: bool,
) -> Result<(Vec<T>, Vec<ShardId>), GatherError> {
    let mut ok = Vec::with_capacity(answers.len());
    let mut failed: Vec<(ShardId, ShardFailure)> = Vec::new();
    for (shard, answer) in answers {
        match answer {
            Ok(v) => ok.push(v),
            Err(failure) => failed.push((shard, failure)),
        }
    }
    failed.sort_by_key(|(shard, _)| *shard);
    match failed.first() {
        Some((shard, failure)) if !allow_partial => Err(GatherError { shard: *shard, failure: failure.clone() }),
        _ => Ok((ok, failed.into_iter().map(|(s, _)| s).collect())),
    }
}

/// The engine's order of hits: best score first, ties by ascending id.
pub fn hit_order(distance: Distance, a: &ScoredPoint, b: &ScoredPoint) -> Ordering {
    distance.compare_scores(a.score, b.score).then(a.id.cmp(&b.id))
}

/// Merges per-shard top hits (each shard searched for `offset + limit`) into the global page.
pub fn merge_hits(distance: Distance, per_shard: Vec<Vec<ScoredPoint>>, offset: usize, limit: usize) -> Vec<ScoredPoint> {
    let mut all: Vec<ScoredPoint> = per_shard.into_iter().flatten().collect();
    all.sort_by(|a, b| hit_order(distance, a, b));
    // Keep each id's best hit (the first after sorting).
    let mut seen = std::collections::BTreeSet::new();
    all.retain(|h| seen.insert(h.id));
    all.into_iter().skip(offset).take(limit).collect()
}

/// [`merge_hits`] over shard answers that may have failed.
pub fn gather_hits(
    distance: Distance,
    answers: Vec<(ShardId, Result<Vec<ScoredPoint>, ShardFailure>)>,
    offset: usize,
    limit: usize,
    allow_partial: bool,
) -> Result<Gathered<Vec<ScoredPoint>>, GatherError> {
    let (ok, missing) = split(answers, allow_partial)?;
    Ok(Gathered { value: merge_hits(distance, ok, offset, limit), missing })
}

/// Merges per-shard scroll pages (each asked for `limit` points from the same offset) into the
/// global page: the `limit` smallest ids, and where the next page starts — the first id not
/// taken, or the smallest `next_offset` of a shard that had more.
pub fn merge_scroll(pages: Vec<ScrollPage>, limit: usize) -> ScrollPage {
    let mut shard_next: Option<PointId> = None;
    let mut points = Vec::new();
    for page in pages {
        if let Some(next) = page.next_offset {
            shard_next = Some(shard_next.map_or(next, |n: PointId| n.min(next)));
        }
        points.extend(page.points);
    }
    points.sort_by_key(|r| r.id);
    points.dedup_by_key(|r| r.id);
    let first_untaken = points.get(limit).map(|r| r.id);
    points.truncate(limit);
    let next_offset = match (first_untaken, shard_next) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    ScrollPage { points, next_offset }
}

/// [`merge_scroll`] over shard answers that may have failed.
pub fn gather_scroll(
    answers: Vec<(ShardId, Result<ScrollPage, ShardFailure>)>,
    limit: usize,
    allow_partial: bool,
) -> Result<Gathered<ScrollPage>, GatherError> {
    let (ok, missing) = split(answers, allow_partial)?;
    Ok(Gathered { value: merge_scroll(ok, limit), missing })
}

/// Sums per-shard counts.
pub fn gather_count(
    answers: Vec<(ShardId, Result<u64, ShardFailure>)>,
    allow_partial: bool,
) -> Result<Gathered<u64>, GatherError> {
    let (ok, missing) = split(answers, allow_partial)?;
    Ok(Gathered { value: ok.into_iter().fold(0u64, u64::saturating_add), missing })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::sharding::shard_of;
    use crate::vector::collection::{Collection, CollectionConfig, PointsOp, ScrollRequest, SearchRequest};
    use crate::vector::filter::{Condition, Filter, NumericRange};
    use crate::vector::payload::PayloadValue;
    use crate::vector::point::PointStruct;
    use proptest::prelude::*;

    fn point(id: u64, v: Vec<f32>) -> PointStruct {
        PointStruct { id: PointId::Num(id), vector: v, payload: [("n".to_string(), PayloadValue::Int(id as i64))].into() }
    }

    /// One collection with every point, and the same points split over `shards` collections.
    fn build(distance: Distance, points: &[(u64, Vec<f32>)], shards: u32) -> Option<(Collection, Vec<Collection>)> {
        let cfg = CollectionConfig::new(2, distance);
        let mut whole = Collection::new("c", cfg).unwrap();
        let mut parts: Vec<Collection> = (0..shards).map(|_| Collection::new("c", cfg).unwrap()).collect();
        for (id, v) in points {
            let p = point(*id, v.clone());
            if whole.apply(PointsOp::Upsert(vec![p.clone()])).is_err() {
                return None; // zero vector under Cosine: rejected everywhere alike
            }
            parts[shard_of(p.id, shards) as usize].apply(PointsOp::Upsert(vec![p])).unwrap();
        }
        Some((whole, parts))
    }

    fn strip_versions(hits: Vec<ScoredPoint>) -> Vec<(PointId, u32, Option<crate::vector::payload::Payload>)> {
        hits.into_iter().map(|h| (h.id, h.score.to_bits(), h.payload)).collect()
    }

    fn distance() -> impl Strategy<Value = Distance> {
        prop_oneof![Just(Distance::Cosine), Just(Distance::Euclid), Just(Distance::Dot)]
    }

    proptest! {
        /// Exact sharded search equals one engine's exact search, bit for bit (small integer
        /// coordinates make score ties common, so the tie-break is exercised).
        #[test]
        fn sharded_exact_search_equals_the_union(
            distance in distance(),
            raw in proptest::collection::btree_map(0u64..60, proptest::collection::vec(-2i8..=2, 2), 1..60),
            shards in 1u32..6,
            query in proptest::collection::vec(-2i8..=2, 2),
            offset in 0usize..5,
            limit in 1usize..12,
            filtered in any::<bool>(),
        ) {
            let points: Vec<(u64, Vec<f32>)> = raw.into_iter().map(|(id, v)| (id, v.into_iter().map(f32::from).collect())).collect();
            let Some((whole, parts)) = build(distance, &points, shards) else { return Ok(()) };
            let mut request = SearchRequest::new(query.into_iter().map(f32::from).collect(), limit);
            request.offset = offset;
            request.exact = true;
            request.with_payload = true;
            if filtered {
                request.filter = Some(Filter::must(vec![Condition::range("n", NumericRange { lt: Some(30.0), ..Default::default() })]));
            }
            let Ok(expected) = whole.search(&request) else { return Ok(()) };
            let mut per_shard_request = request.clone();
            per_shard_request.offset = 0;
            per_shard_request.limit = offset + limit;
            let answers: Vec<_> = parts.iter().enumerate()
                .map(|(s, c)| (s as ShardId, Ok(c.search(&per_shard_request).unwrap())))
                .collect();
            let merged = gather_hits(distance, answers, offset, limit, false).unwrap();
            prop_assert!(!merged.is_partial());
            prop_assert_eq!(strip_versions(merged.value), strip_versions(expected));
        }

        /// Paging through a sharded scroll visits exactly the union's ids, in order, page by page
        /// as one engine would.
        #[test]
        fn sharded_scroll_pages_equal_the_union(
            ids in proptest::collection::btree_set(0u64..200, 0..80),
            shards in 1u32..6,
            limit in 1usize..9,
        ) {
            let points: Vec<(u64, Vec<f32>)> = ids.iter().map(|&id| (id, vec![1.0, id as f32])).collect();
            let (whole, parts) = build(Distance::Euclid, &points, shards).unwrap();
            let mut offset = None;
            loop {
                let request = ScrollRequest { offset, limit, filter: None, with_payload: false, with_vector: false };
                let expected = whole.scroll(&request).unwrap();
                let answers = parts.iter().enumerate().map(|(s, c)| (s as ShardId, Ok(c.scroll(&request).unwrap()))).collect();
                let merged = gather_scroll(answers, limit, false).unwrap().value;
                let got: Vec<PointId> = merged.points.iter().map(|r| r.id).collect();
                let want: Vec<PointId> = expected.points.iter().map(|r| r.id).collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(merged.next_offset, expected.next_offset);
                match merged.next_offset {
                    Some(next) => offset = Some(next),
                    None => break,
                }
            }
            let counts = parts.iter().enumerate().map(|(s, c)| (s as ShardId, Ok(c.count(None).unwrap() as u64))).collect();
            prop_assert_eq!(gather_count(counts, false).unwrap().value, ids.len() as u64);
        }
    }

    fn hit(id: u64, score: f32) -> ScoredPoint {
        ScoredPoint { id: PointId::Num(id), version: 1, score, payload: None, vector: None }
    }

    #[test]
    fn ties_break_by_id_and_unsorted_or_duplicate_answers_are_handled() {
        // Shard answers in any order, with a duplicate (a point seen on two shards).
        let a = vec![hit(9, 0.5), hit(3, 0.9)];
        let b = vec![hit(4, 0.5), hit(3, 0.7), hit(1, 0.5)];
        let got: Vec<u64> = merge_hits(Distance::Dot, vec![a, b], 0, 10)
            .into_iter()
            .map(|h| match h.id {
                PointId::Num(n) => n,
                PointId::Uuid(_) => unreachable!(),
            })
            .collect();
        assert_eq!(got, vec![3, 1, 4, 9], "3 keeps its best score; 0.5 ties by id");
        // Euclid: lower is better.
        let e = merge_hits(Distance::Euclid, vec![vec![hit(2, 1.0)], vec![hit(1, 1.0), hit(5, 0.1)]], 1, 1);
        assert_eq!(e, vec![hit(1, 1.0)]);
    }

    #[test]
    fn a_failed_shard_fails_the_request_by_name_unless_partial_results_were_asked() {
        let answers = || {
            vec![
                (2, Err(ShardFailure::Timeout)),
                (0, Ok(vec![hit(1, 1.0)])),
                (1, Err(ShardFailure::Unavailable("no leader".into()))),
            ]
        };
        let err = gather_hits(Distance::Dot, answers(), 0, 5, false).unwrap_err();
        assert_eq!(err, GatherError { shard: 1, failure: ShardFailure::Unavailable("no leader".into()) });
        assert_eq!(err.to_string(), "shard 1 unavailable: no leader");
        let partial = gather_hits(Distance::Dot, answers(), 0, 5, true).unwrap();
        assert_eq!(partial.value, vec![hit(1, 1.0)]);
        assert_eq!(partial.missing, vec![1, 2]);
        assert!(partial.is_partial());
        let counts = vec![(0, Ok(3)), (1, Err(ShardFailure::Failed("x".into())))];
        assert_eq!(gather_count(counts.clone(), true).unwrap(), Gathered { value: 3, missing: vec![1] });
        assert!(gather_count(counts, false).is_err());
    }
}
