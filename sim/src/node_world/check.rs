//! The node world's checkers, run on the final engines and the clients' history: durability,
//! strong reads (single-writer register rule), linearizability (register mode), convergence
//! and the scatter-gather probe (see the module documentation of `node_world`).

use super::workload::{Outcome, ProbeAnswer, Workload};
use crate::linearizability::{CheckerConfig, Verdict, check};
use std::collections::BTreeMap;
use vecraft_core::node::request::WriteAck;
use vecraft_core::raft::GroupId;
use vecraft_core::vector::collection::{Collection, PointsOp};
use vecraft_core::vector::payload::PayloadValue;
use vecraft_core::vector::payload_index::FieldSchema;
use vecraft_core::vector::point::{PointId, PointStruct};

impl Workload {
    /// The history and probe checks against the final engines.
    pub fn check(&self, engines: &[(u64, &BTreeMap<GroupId, Collection>)]) -> Vec<String> {
        let mut v = Vec::new();
        // `names`: a collection or alias acknowledged before a request began is known to it,
        // whichever node it reached (names resolve at a confirmed metadata index).
        v.extend(self.unknown_names.iter().take(5).cloned());
        // Final state of every point: from any replica (they converged).
        let mut finals: BTreeMap<u64, Option<u64>> = BTreeMap::new();
        let mut union: Option<Collection> = None;
        let mut seen_groups = std::collections::BTreeSet::new();
        // One replica of each shard of the probed collection (they converged).
        let mut first_replicas: BTreeMap<GroupId, &Collection> = BTreeMap::new();
        for (_, es) in engines {
            for (g, c) in es.iter() {
                if !seen_groups.insert(*g) {
                    continue;
                }
                if c.name() == super::workload::COLLECTION {
                    first_replicas.insert(*g, c);
                }
                // The probe reads the first collection: the union holds its points only.
                let probed = c.name() == super::workload::COLLECTION;
                let mut pts = Vec::new();
                for (id, p) in c.points() {
                    if let PointId::Num(n) = id {
                        let v = match p.payload.get("v") {
                            Some(PayloadValue::Int(x)) => Some(*x as u64),
                            _ => None,
                        };
                        finals.insert(n, v);
                    }
                    pts.push(PointStruct { id, vector: p.vector.to_vec(), payload: p.payload.clone() });
                }
                if probed {
                    let u = union.get_or_insert_with(|| Collection::new("union", *c.config()).expect("valid"));
                    if !pts.is_empty() {
                        u.apply(PointsOp::Upsert(pts)).expect("union accepts replica points");
                    }
                }
            }
        }
        if let Some(reg) = &self.register {
            match check(&reg.history, &CheckerConfig::default()) {
                Verdict::Linearizable => {}
                other => v.push(format!("linearizability: {other}")),
            }
        }
        // Durability: every durably acknowledged write is there, or a later / in-doubt one
        // (single-writer points only: register mode's points have many writers).
        for (point, ws) in self.writes.iter().filter(|_| self.register.is_none()) {
            let last_durable = ws
                .iter()
                .filter(|w| w.outcome == Outcome::Ok && (w.ack == WriteAck::Quorum || (w.ack == WriteAck::OneCopy && self.rf_of(*point) <= 3)))
                .map(|w| w.version)
                .max()
                .unwrap_or(0);
            let fin = finals.get(point).copied().flatten();
            let ok = match fin {
                Some(x) => ws.iter().any(|w| {
                    w.version == x && !w.delete && w.outcome != Outcome::Failed && (w.version >= last_durable || w.outcome == Outcome::InDoubt)
                }),
                None => {
                    last_durable == 0
                        || ws.iter().any(|w| w.delete && w.outcome != Outcome::Failed && (w.version >= last_durable || w.outcome == Outcome::InDoubt))
                }
            };
            if !ok {
                v.push(format!("durability: point {point} ends at version {fin:?}, but version {last_durable} was acknowledged durable; writes {ws:?}"));
            }
        }
        // Reads.
        let mut seen_before: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new(); // point -> (complete, version)
        let mut reads = if self.register.is_some() { Vec::new() } else { self.reads.clone() };
        reads.sort_by_key(|r| r.invoke);
        for r in &reads {
            let empty = Vec::new();
            let ws = self.writes.get(&r.point).unwrap_or(&empty);
            let linear = r.level == "strong" || r.level == "quorum";
            let acked_before = ws
                .iter()
                .filter(|w| w.outcome == Outcome::Ok && w.ack == WriteAck::Quorum && w.complete < r.invoke)
                .map(|w| w.version)
                .max()
                .unwrap_or(0);
            let seen = if linear {
                seen_before.get(&r.point).map_or(0, |s| s.iter().filter(|(c, _)| *c < r.invoke).map(|(_, v)| *v).max().unwrap_or(0))
            } else {
                0
            };
            let floor = if r.level == "eventual" { 0 } else { acked_before.max(seen) };
            let fits = |version: u64, in_doubt: bool, invoke: u64| invoke < r.complete && (in_doubt || version >= floor);
            let ok = match r.seen {
                Some(x) => ws.iter().any(|w| w.version == x && !w.delete && w.outcome != Outcome::Failed && fits(w.version, w.outcome == Outcome::InDoubt, w.invoke)),
                None => fits(0, false, 0) || ws.iter().any(|w| w.delete && w.outcome != Outcome::Failed && fits(w.version, w.outcome == Outcome::InDoubt, w.invoke)),
            };
            if !ok {
                v.push(format!(
                    "strong-reads: {} read of point {} at [{}, {}] saw {:?}; floor {floor} (acked before {acked_before}, seen before {seen})",
                    r.level, r.point, r.invoke, r.complete, r.seen
                ));
                break;
            }
            if linear && let Some(x) = r.seen {
                seen_before.entry(r.point).or_default().push((r.complete, x));
            }
        }
        if self.index_rng.is_some() {
            v.extend(super::field_index::check_declarations(&self.index_history, &self.collections, engines));
        }
        if self.change_rng.is_some() {
            v.extend(super::vector_settings::check_settings(
                &self.change_history,
                &self.collections,
                engines,
                self.seed_settings(),
                self.train_after(),
            ));
        }
        // Scatter-gather probe against one engine holding the union.
        let Some(u) = union else { return v };
        let largest_shard = first_replicas.values().map(|c| c.len()).max().unwrap_or(0);
        for (i, p) in self.probes.iter().enumerate() {
            match p {
                None => v.push(format!("liveness: probe {i} not answered")),
                Some(Err(e)) => v.push(format!("liveness: probe {i} failed: {e}")),
                Some(Ok(ProbeAnswer::Hits(req, hits))) if self.quantized_probes.contains(&i) => {
                    v.extend(super::quantization::check(i, req, hits, &u, largest_shard));
                }
                Some(Ok(ProbeAnswer::Hits(req, hits))) if !req.exact => {
                    v.extend(super::indexing::check(i, req, hits, &u));
                }
                Some(Ok(ProbeAnswer::Hits(req, hits))) => {
                    let want = u.search(req).expect("union search");
                    let got: Vec<(PointId, u32)> = hits.iter().map(|h| (h.id, h.score.to_bits())).collect();
                    let want: Vec<(PointId, u32)> = want.iter().map(|h| (h.id, h.score.to_bits())).collect();
                    if got != want {
                        v.push(format!("scatter-gather: exact search {i} returned {got:?}, the union engine {want:?}"));
                    }
                }
                Some(Ok(ProbeAnswer::Count(n))) => {
                    // Filtered counts (field index seeds) are judged by the union, which has
                    // no index: an index may narrow the scan, never change the answer.
                    let filter = match &self.probe_requests[i] {
                        vecraft_core::node::request::Request::Count { filter, .. } => filter.clone(),
                        _ => None,
                    };
                    let want = u.count(filter.as_ref()).expect("union count") as u64;
                    if *n != want {
                        v.push(format!("scatter-gather: count {i} {n}, union {want} (filter {filter:?})"));
                    }
                }
                Some(Ok(ProbeAnswer::Page(points))) => {
                    let got: Vec<PointId> = points.iter().map(|r| r.id).collect();
                    let want: Vec<PointId> = match &self.probe_requests[i] {
                        vecraft_core::node::request::Request::Scroll { request, .. } => {
                            u.scroll(request).expect("union scroll").points.iter().map(|r| r.id).collect()
                        }
                        _ => u.points().map(|(id, _)| id).collect(),
                    };
                    if got != want {
                        v.push(format!("scatter-gather: scroll {i} returned {} ids, union {}", got.len(), want.len()));
                    }
                }
                Some(Ok(ProbeAnswer::VectorSettings(settings, conflicting))) => {
                    let shards: Vec<&Collection> = first_replicas.values().copied().collect();
                    let want = super::vector_settings::expected_report(&shards);
                    if (*settings, *conflicting) != want {
                        v.push(format!("scatter-gather: vector settings ({settings:?}, conflicting {conflicting}), the shards use {want:?}"));
                    }
                }
                Some(Ok(ProbeAnswer::FieldIndexes(got))) => {
                    let shards: Vec<&Collection> = first_replicas.values().copied().collect();
                    let want = super::field_index::expected_report(&shards);
                    if *got != want {
                        v.push(format!("scatter-gather: field indexes {got:?}, the shards declare {want:?}"));
                    }
                }
            }
        }
        v
    }
}

/// Every replica of every shard holds the same points (engine digest) and declares the same
/// payload field indexes (the digest leaves them out: they never change an answer).
pub(super) fn check_convergence(engines: &[(u64, &BTreeMap<GroupId, Collection>)]) -> Vec<String> {
    let mut by_group: BTreeMap<GroupId, Vec<(u64, [u8; 32])>> = BTreeMap::new();
    type Declared = BTreeMap<String, (FieldSchema, usize)>;
    let mut declared: BTreeMap<GroupId, Vec<(u64, Declared)>> = BTreeMap::new();
    for (node, es) in engines {
        for (g, c) in es.iter() {
            by_group.entry(*g).or_default().push((*node, c.digest()));
            declared.entry(*g).or_default().push((*node, c.field_indexes()));
        }
    }
    let mut v = Vec::new();
    for (g, ds) in declared {
        if ds.iter().any(|(_, d)| *d != ds[0].1) {
            v.push(format!("convergence: replicas of group {g:#x} declare different field indexes: {ds:?}"));
        }
    }
    for (g, ds) in by_group {
        if ds.iter().any(|(_, d)| *d != ds[0].1) {
            let nodes: Vec<u64> = ds.iter().map(|(n, _)| *n).collect();
            v.push(format!("convergence: replicas {nodes:?} of group {g:#x} differ"));
        }
    }
    v
}
