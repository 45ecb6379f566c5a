//! Building a client's reply from its parts' answers: writes become a read-your-writes token or
//! an error saying whether anything may have happened; reads are merged across shards by
//! `scatter` (top-k by score with the id tie-break, counts summed, pages merged, records in the
//! order asked) or fail naming the first shard that could not answer.

use super::io::NodeOutput;
use super::machine::Node;
use super::message::{ServeError, Served};
use super::metadata::METADATA_GROUP;
use super::origin::{Gather, PartFailure, PartResult};
use super::request::{ClientId, NodeError, ReadLevel, ReadOptions, ReplicaStaleness, Reply, Staleness};
use super::scatter::{self, GatherError, ShardFailure};
use super::shard::ShardAnswer;
use super::sharding::ShardId;
use crate::vector::collection::Distance;
use crate::vector::point::{PointId, Record, ScoredPoint};
use std::collections::{BTreeMap, BTreeSet};

impl Node {
    /// Every part answered: build the reply.
    pub(super) fn complete(&mut self, now: crate::contract::Time, client: ClientId, out: &mut Vec<NodeOutput>) {
        let Some(mut c) = self.clients.remove(&client) else { return };
        c.results.sort_by_key(|(s, _)| *s);
        let result = match c.gather {
            Gather::NameBarrier => return self.barrier_done(now, client, c.results.pop().map(|(_, r)| r), out),
            Gather::Meta => match c.results.pop() {
                Some((_, PartResult::Write(Ok(index)))) => {
                    if self.applied.get(&METADATA_GROUP).copied().unwrap_or(0) >= index {
                        Ok(Reply::Done)
                    } else {
                        c.wait_meta = Some(index);
                        self.clients.insert(client, c);
                        return;
                    }
                }
                Some((_, PartResult::Write(Err(f)))) => Err(write_error(vec![(0, f)], false)),
                _ => Err(NodeError::Invalid("metadata request without an answer".into())),
            },
            Gather::Write => {
                let mut token = super::request::ReadToken::default();
                let mut failed = Vec::new();
                for (shard, r) in c.results {
                    match r {
                        PartResult::Write(Ok(index)) => {
                            token.marks.insert(shard, index);
                        }
                        PartResult::Write(Err(f)) => failed.push((shard, f)),
                        PartResult::Read(..) => unreachable!("write parts answer writes"),
                    }
                }
                if failed.is_empty() { Ok(Reply::Written { token }) } else { Err(write_error(failed, !token.marks.is_empty())) }
            }
            gather => {
                // The collection was dropped or replaced under the read (see `retry_part`): the
                // name may mean another collection now; resolve it again, once.
                let gone = c.results.iter().any(|(_, r)| {
                    matches!(r, PartResult::Read(Err(PartFailure::Serve(ServeError::NoSuchCollection(_))), _))
                });
                if gone && let Some((request, deadline)) = c.rerun.take() {
                    return self.park_until(now, client, request, deadline, out);
                }
                self.gather_reads(gather, &c.read, c.results)
            }
        };
        self.respond(client, result, out);
    }

    fn gather_reads(&self, gather: Gather, read: &ReadOptions, results: Vec<(ShardId, PartResult)>) -> Result<Reply, NodeError> {
        // The collection went away under the request (see `retry_part`): not a shard failure.
        for (_, r) in &results {
            if let PartResult::Read(Err(PartFailure::Serve(ServeError::NoSuchCollection(name))), _) = r {
                return Err(NodeError::NoSuchCollection(name.clone()));
            }
        }
        let eventual = matches!(read.level, ReadLevel::Eventual);
        let mut staleness = Staleness::default();
        let mut answers: Vec<(ShardId, Result<Served, ShardFailure>)> = Vec::new();
        for (shard, r) in results {
            let PartResult::Read(r, node) = r else { unreachable!("read parts answer reads") };
            if let Ok(s) = &r {
                let r = ReplicaStaleness { node, applied: s.applied, commit: s.commit, since_leader: s.since_leader };
                staleness.replicas.insert(shard, r);
            }
            answers.push((shard, r.map_err(read_failure)));
        }
        let staleness = eventual.then_some(staleness);
        fn pick<T>(
            answers: Vec<(ShardId, Result<Served, ShardFailure>)>,
            f: impl Fn(ShardAnswer) -> Option<T>,
        ) -> Vec<(ShardId, Result<T, ShardFailure>)> {
            answers
                .into_iter()
                .map(|(s, r)| {
                    let r = r.and_then(|x| {
                        x.answer.and_then(&f).ok_or_else(|| ShardFailure::Failed("answer of the wrong kind".into()))
                    });
                    (s, r)
                })
                .collect()
        }
        let partial = read.allow_partial;
        match gather {
            Gather::Search { distance, offset, limit } => {
                let hits = pick(answers, |a| if let ShardAnswer::Hits(h) = a { Some(h) } else { None });
                let g = if self.bugs.merge_without_tie_break {
                    merge_by_score_only(distance, hits, offset, limit, partial)
                } else {
                    scatter::gather_hits(distance, hits, offset, limit, partial)
                }
                .map_err(NodeError::Shard)?;
                Ok(Reply::Hits { hits: g.value, missing: g.missing, staleness })
            }
            Gather::Get { order } => {
                let recs = pick(answers, |a| if let ShardAnswer::Records(r) = a { Some(r) } else { None });
                let mut missing = Vec::new();
                let mut by_id: BTreeMap<PointId, Record> = BTreeMap::new();
                let mut failed: Option<GatherError> = None;
                for (shard, r) in recs {
                    match r {
                        Ok(rs) => by_id.extend(rs.into_iter().map(|r| (r.id, r))),
                        Err(_) if partial => missing.push(shard),
                        Err(failure) => {
                            failed.get_or_insert(GatherError { shard, failure });
                        }
                    }
                }
                if let Some(e) = failed {
                    return Err(NodeError::Shard(e));
                }
                let mut seen = BTreeSet::new();
                let records = order.into_iter().filter(|id| seen.insert(*id)).filter_map(|id| by_id.remove(&id)).collect();
                Ok(Reply::Records { records, missing, staleness })
            }
            Gather::Count => {
                let counts = pick(answers, |a| if let ShardAnswer::Count(n) = a { Some(n) } else { None });
                let g = scatter::gather_count(counts, partial).map_err(NodeError::Shard)?;
                Ok(Reply::Count { count: g.value, missing: g.missing })
            }
            Gather::Scroll { limit } => {
                let pages = pick(answers, |a| if let ShardAnswer::Page(p) = a { Some(p) } else { None });
                let g = scatter::gather_scroll(pages, limit, partial).map_err(NodeError::Shard)?;
                Ok(Reply::Page { page: g.value, missing: g.missing })
            }
            Gather::Status => {
                let mut lines = Vec::new();
                for (shard, r) in answers {
                    match r {
                        Ok(s) => lines.extend(s.status),
                        Err(failure) => return Err(NodeError::Shard(GatherError { shard, failure })),
                    }
                }
                Ok(Reply::Status(lines))
            }
            Gather::FieldIndexes => {
                let declared = pick(answers, |a| if let ShardAnswer::FieldIndexes(f) = a { Some(f) } else { None });
                let g = super::field_index::gather_field_indexes(declared, partial).map_err(NodeError::Shard)?;
                Ok(Reply::FieldIndexes { fields: g.value, missing: g.missing })
            }
            Gather::VectorSettings => {
                let settings = pick(answers, |a| if let ShardAnswer::VectorSettings(s) = a { Some(s) } else { None });
                let g = super::vector_settings::gather_vector_settings(settings, partial).map_err(NodeError::Shard)?;
                let (settings, conflicting) = g.value;
                Ok(Reply::VectorSettings { settings, conflicting, missing: g.missing })
            }
            Gather::Changes => {
                let pages = pick(answers, |a| if let ShardAnswer::Changes(p) = a { Some(p) } else { None });
                match pages.into_iter().next() {
                    Some((_, Ok(page))) => Ok(Reply::Changes(page)),
                    Some((shard, Err(failure))) => Err(NodeError::Shard(GatherError { shard, failure })),
                    None => Err(NodeError::Invalid("a changes read without its shard".into())),
                }
            }
            Gather::NameBarrier | Gather::Meta | Gather::Write => unreachable!("handled by complete"),
        }
    }
}

fn read_failure(f: PartFailure) -> ShardFailure {
    match f {
        PartFailure::Timeout { .. } => ShardFailure::Timeout,
        PartFailure::Serve(ServeError::Failed(m)) => ShardFailure::Failed(m),
        PartFailure::Serve(e) => ShardFailure::Unavailable(e.to_string()),
    }
}

/// A write with failed parts: refused if nothing may have happened, in doubt otherwise.
fn write_error(failed: Vec<(ShardId, PartFailure)>, some_succeeded: bool) -> NodeError {
    let doubt = |f: &PartFailure| match f {
        PartFailure::Timeout { in_doubt } => *in_doubt,
        PartFailure::Serve(e) => e.in_doubt(),
    };
    if !some_succeeded && !failed.iter().any(|(_, f)| doubt(f)) {
        let (shard, f) = &failed[0];
        match f {
            PartFailure::Serve(ServeError::CollectionExists(name)) => return NodeError::CollectionExists(name.clone()),
            PartFailure::Serve(ServeError::NoSuchCollection(name)) => return NodeError::NoSuchCollection(name.clone()),
            _ => {}
        }
        let reason = match f {
            PartFailure::Timeout { .. } => "no leader answered in time".to_string(),
            PartFailure::Serve(e) => e.to_string(),
        };
        return NodeError::Refused { shard: *shard, reason };
    }
    let reason = match &failed[0].1 {
        PartFailure::Timeout { .. } => "timed out".to_string(),
        PartFailure::Serve(e) => e.to_string(),
    };
    NodeError::Indeterminate { shards: failed.into_iter().map(|(s, _)| s).collect(), reason }
}

/// The `merge_without_tie_break` bug: by score only, in arrival order (stable sort).
fn merge_by_score_only(
    distance: Distance,
    answers: Vec<(ShardId, Result<Vec<ScoredPoint>, ShardFailure>)>,
    offset: usize,
    limit: usize,
    partial: bool,
) -> Result<scatter::Gathered<Vec<ScoredPoint>>, GatherError> {
    let mut all = Vec::new();
    let mut missing = Vec::new();
    // Arrival order is modelled as descending shard order.
    for (shard, r) in answers.into_iter().rev() {
        match r {
            Ok(h) => all.extend(h),
            Err(_) if partial => missing.push(shard),
            Err(failure) => return Err(GatherError { shard, failure }),
        }
    }
    all.sort_by(|a, b| distance.compare_scores(a.score, b.score));
    let value = all.into_iter().skip(offset).take(limit).collect();
    missing.sort();
    Ok(scatter::Gathered { value, missing })
}
