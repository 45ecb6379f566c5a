//! The vector workload of the node world, its history, and the checkers that judge it.
//!
//! Each client is the only writer of its own points (ids `client * 1000 + k`) and writes them one
//! operation at a time with increasing versions (payload `{"v": version}`), at a write-ack level
//! drawn from the seed; everyone reads every point at every read level. With one writer per
//! point a register check is exact without a search: a read may return the initial state, or a
//! version whose write started before the read ended and that is not older than the newest
//! `quorum`-acknowledged version before the read began, or than what an earlier linearizable read
//! saw — except versions in doubt (timed out, leadership lost), which may take effect at any
//! later time. Vectors are drawn from a tiny integer grid, so scores tie often and the
//! scatter-gather probe tests the tie-break.

use super::NodeWorldConfig;
use crate::history::{History, OpId, Operation, Outcome as HOutcome};
use crate::linearizability::{CheckerConfig, Verdict, check};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use vecraft_core::node::request::{NodeError, ReadLevel, ReadOptions, ReadToken, Reply, Request, WriteAck};
use vecraft_core::raft::GroupId;
use vecraft_core::vector::collection::{Collection, CollectionConfig, Distance, PointSelector, PointsOp, ScrollRequest, SearchRequest};
use vecraft_core::vector::payload::PayloadValue;
use vecraft_core::vector::point::{PointId, PointStruct, Record, ScoredPoint};

const COLLECTION: &str = "vectors";
const DIM: usize = 4;

/// The next request of a client.
pub(super) struct WorkloadOp {
    pub op: u64,
    pub request: Request,
    pub think: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    InDoubt,
    Failed,
}

#[derive(Clone, Debug)]
struct WriteRec {
    version: u64,
    delete: bool,
    ack: WriteAck,
    invoke: u64,
    complete: u64,
    outcome: Outcome,
}

#[derive(Clone, Debug)]
struct ReadRec {
    point: u64,
    level: &'static str,
    invoke: u64,
    complete: u64,
    seen: Option<u64>,
}

enum Kind {
    Create,
    Write { point: u64, version: u64, delete: bool, ack: WriteAck },
    Read { point: u64, level: &'static str },
    Search,
    Count,
    Probe(usize),
}

struct InFlight {
    client: Option<usize>,
    kind: Kind,
    invoke: u64,
}

enum ProbeAnswer {
    Hits(SearchRequest, Vec<ScoredPoint>),
    Count(u64),
    Page(Vec<Record>),
}

/// Clients, history and checks.
pub(super) struct Workload {
    clients: usize,
    points_per_client: u64,
    shards: u32,
    rf: u32,
    ack_weights: [u32; 3],
    created: bool,
    create_in_flight: bool,
    busy: Vec<bool>,
    tokens: Vec<ReadToken>,
    versions: BTreeMap<u64, u64>,
    next_op: u64,
    in_flight: BTreeMap<u64, InFlight>,
    writes: BTreeMap<u64, Vec<WriteRec>>,
    reads: Vec<ReadRec>,
    counts: BTreeMap<String, u64>,
    max_lag: u64,
    probing: bool,
    probes: Vec<Option<Result<ProbeAnswer, String>>>,
    probe_requests: Vec<Request>,
    /// Register mode: every client writes and reads every key; the history goes to the
    /// linearizability checker.
    register: Option<RegisterHistory>,
}

/// The register workload's history, in the Raft world's format.
struct RegisterHistory {
    keys: u64,
    history: History,
    ops: BTreeMap<u64, OpId>,
}

fn ack_name(a: WriteAck) -> &'static str {
    match a {
        WriteAck::Leader => "leader",
        WriteAck::OneCopy => "one_copy",
        WriteAck::Quorum => "quorum",
    }
}

fn version_of(r: &Record) -> Option<u64> {
    match r.payload.as_ref()?.get("v")? {
        PayloadValue::Int(v) => Some(*v as u64),
        _ => None,
    }
}

impl Workload {
    pub fn new(cfg: &NodeWorldConfig, _rng: &mut ChaCha8Rng) -> Workload {
        Workload {
            clients: cfg.clients,
            points_per_client: cfg.points_per_client,
            shards: cfg.shards,
            rf: cfg.replication_factor,
            ack_weights: cfg.ack_weights,
            created: false,
            create_in_flight: false,
            busy: vec![false; cfg.clients],
            tokens: vec![ReadToken::default(); cfg.clients],
            versions: BTreeMap::new(),
            next_op: 1,
            in_flight: BTreeMap::new(),
            writes: BTreeMap::new(),
            reads: Vec::new(),
            counts: BTreeMap::new(),
            max_lag: 0,
            probing: false,
            probes: Vec::new(),
            probe_requests: Vec::new(),
            register: cfg.register.then(|| RegisterHistory { keys: cfg.register_keys, history: History::new(), ops: BTreeMap::new() }),
        }
    }

    fn count(&mut self, key: String) {
        *self.counts.entry(key).or_insert(0) += 1;
    }

    fn all_points(&self) -> u64 {
        self.clients as u64 * self.points_per_client
    }

    fn point_id(&self, n: u64) -> u64 {
        (n / self.points_per_client) * 1000 + n % self.points_per_client
    }

    fn read(level: ReadLevel) -> ReadOptions {
        ReadOptions { level, allow_partial: false }
    }

    /// Client `c`'s next request, if it is free.
    pub fn next(&mut self, rng: &mut ChaCha8Rng, now: u64, c: usize) -> Option<WorkloadOp> {
        if self.busy[c] {
            return None;
        }
        let op = self.next_op;
        let think = rng.random_range(5_000_000..=60_000_000);
        let (kind, request) = if !self.created {
            if c != 0 || self.create_in_flight {
                return None;
            }
            self.create_in_flight = true;
            let request = Request::CreateCollection {
                name: COLLECTION.into(),
                config: CollectionConfig::new(DIM as u32, Distance::Euclid),
                shards: self.shards,
                replication_factor: self.rf,
            };
            (Kind::Create, request)
        } else if let Some(reg) = &mut self.register {
            // Any client, any key; a unique value per write. Acks below quorum may be lost, so
            // they are recorded as indeterminate (they may or may not take effect).
            let key = rng.random_range(0..reg.keys);
            let point = 1_000_000 + key;
            let (operation, kind, request) = if rng.random_bool(0.5) {
                let value = op as i64;
                let w = self.ack_weights;
                let pick = rng.random_range(0..(w[0] + w[1] + w[2]).max(1));
                let ack = if pick < w[0] {
                    WriteAck::Leader
                } else if pick < w[0] + w[1] {
                    WriteAck::OneCopy
                } else {
                    WriteAck::Quorum
                };
                let vector = (0..DIM).map(|_| rng.random_range(0..3) as f32).collect();
                let payload = [("v".to_string(), PayloadValue::Int(value))].into_iter().collect();
                let op_ = PointsOp::Upsert(vec![PointStruct { id: PointId::Num(point), vector, payload }]);
                (
                    Operation::write(key, value),
                    Kind::Write { point, version: op, delete: false, ack },
                    Request::Write { collection: COLLECTION.into(), op: op_, ack },
                )
            } else {
                let (level, name) = if rng.random_bool(0.7) { (ReadLevel::Strong, "strong") } else { (ReadLevel::Quorum, "quorum") };
                let request = Request::Get {
                    collection: COLLECTION.into(),
                    ids: vec![PointId::Num(point)],
                    with_payload: true,
                    with_vector: false,
                    read: Self::read(level),
                };
                (Operation::read(key), Kind::Read { point, level: name }, request)
            };
            let id = reg.history.invoke(c as u64, operation, now).expect("one operation per client at a time");
            reg.ops.insert(op, id);
            (kind, request)
        } else {
            let roll = rng.random_range(0..100);
            if roll < 45 {
                let point = c as u64 * 1000 + rng.random_range(0..self.points_per_client);
                let version = {
                    let v = self.versions.entry(point).or_insert(0);
                    *v += 1;
                    *v
                };
                let w = self.ack_weights;
                let pick = rng.random_range(0..(w[0] + w[1] + w[2]).max(1));
                let ack = if pick < w[0] {
                    WriteAck::Leader
                } else if pick < w[0] + w[1] {
                    WriteAck::OneCopy
                } else {
                    WriteAck::Quorum
                };
                let delete = rng.random_bool(0.15);
                let op_ = if delete {
                    PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(point)]))
                } else {
                    let vector = (0..DIM).map(|_| rng.random_range(0..3) as f32).collect();
                    let payload = [("v".to_string(), PayloadValue::Int(version as i64))].into_iter().collect();
                    PointsOp::Upsert(vec![PointStruct { id: PointId::Num(point), vector, payload }])
                };
                (Kind::Write { point, version, delete, ack }, Request::Write { collection: COLLECTION.into(), op: op_, ack })
            } else if roll < 85 {
                let r = rng.random_range(0..100);
                let (level, name, point) = if r < 35 {
                    (ReadLevel::Strong, "strong", self.point_id(rng.random_range(0..self.all_points())))
                } else if r < 50 {
                    (ReadLevel::Quorum, "quorum", self.point_id(rng.random_range(0..self.all_points())))
                } else if r < 75 {
                    (ReadLevel::Eventual, "eventual", self.point_id(rng.random_range(0..self.all_points())))
                } else {
                    let point = c as u64 * 1000 + rng.random_range(0..self.points_per_client);
                    (ReadLevel::ReadYourWrites(self.tokens[c].clone()), "read_your_writes", point)
                };
                let request = Request::Get {
                    collection: COLLECTION.into(),
                    ids: vec![PointId::Num(point)],
                    with_payload: true,
                    with_vector: false,
                    read: Self::read(level),
                };
                (Kind::Read { point, level: name }, request)
            } else if roll < 95 {
                let vector = (0..DIM).map(|_| rng.random_range(0..3) as f32).collect();
                let mut s = SearchRequest::new(vector, 3);
                s.with_payload = true;
                let level = if rng.random_bool(0.5) { ReadLevel::Eventual } else { ReadLevel::Strong };
                (Kind::Search, Request::Search { collection: COLLECTION.into(), request: s, read: Self::read(level) })
            } else {
                (Kind::Count, Request::Count { collection: COLLECTION.into(), filter: None, read: Self::read(ReadLevel::Quorum) })
            }
        };
        self.next_op += 1;
        self.busy[c] = true;
        self.in_flight.insert(op, InFlight { client: Some(c), kind, invoke: now });
        Some(WorkloadOp { op, request, think })
    }

    /// A node answered operation `op` (ignored after its timeout).
    pub fn respond(&mut self, now: u64, op: u64, result: Result<Reply, NodeError>) {
        let Some(f) = self.in_flight.remove(&op) else { return };
        if let Some(reg) = &mut self.register
            && let Some(id) = reg.ops.remove(&op)
        {
            let outcome = match (&f.kind, &result) {
                (Kind::Write { ack: WriteAck::Quorum, .. }, Ok(Reply::Written { .. })) => HOutcome::Ok,
                (Kind::Write { .. }, Ok(_)) => HOutcome::Info,
                (Kind::Write { .. }, Err(NodeError::Refused { .. } | NodeError::Invalid(_) | NodeError::NoSuchCollection(_))) => HOutcome::Fail,
                (Kind::Write { .. }, Err(_)) => HOutcome::Info,
                (Kind::Read { .. }, Ok(Reply::Records { records, .. })) => {
                    HOutcome::ReadOk(records.first().and_then(version_of).map(|v| v as i64))
                }
                (Kind::Read { .. }, _) => HOutcome::Fail,
                _ => HOutcome::Info,
            };
            reg.history.complete(id, outcome, now).expect("completes its own invoke");
        }
        if let Some(c) = f.client {
            self.busy[c] = false;
        }
        match f.kind {
            Kind::Create => {
                self.create_in_flight = false;
                match result {
                    Ok(_) | Err(NodeError::CollectionExists(_)) => self.created = true,
                    Err(_) => {}
                }
            }
            Kind::Write { point, version, delete, ack } => {
                let outcome = match &result {
                    Ok(Reply::Written { token }) => {
                        if let Some(c) = f.client
                            && ack == WriteAck::Quorum
                        {
                            self.tokens[c].merge(token);
                        }
                        Outcome::Ok
                    }
                    Err(NodeError::Indeterminate { .. }) | Ok(_) => Outcome::InDoubt,
                    Err(_) => Outcome::Failed,
                };
                let key = format!("{}:{}:{outcome:?}", if delete { "delete" } else { "upsert" }, ack_name(ack));
                self.count(key);
                self.writes.entry(point).or_default().push(WriteRec { version, delete, ack, invoke: f.invoke, complete: now, outcome });
            }
            Kind::Read { point, level } => {
                match result {
                    Ok(Reply::Records { records, staleness, .. }) => {
                        if let Some(s) = staleness {
                            self.max_lag = self.max_lag.max(s.max_lag());
                        }
                        let seen = records.first().and_then(version_of);
                        self.reads.push(ReadRec { point, level, invoke: f.invoke, complete: now, seen });
                        self.count(format!("get:{level}:ok"));
                    }
                    _ => self.count(format!("get:{level}:failed")),
                }
            }
            Kind::Search => {
                let ok = matches!(result, Ok(Reply::Hits { .. }));
                self.count(format!("search:{}", if ok { "ok" } else { "failed" }));
            }
            Kind::Count => {
                let ok = matches!(result, Ok(Reply::Count { .. }));
                self.count(format!("count:{}", if ok { "ok" } else { "failed" }));
            }
            Kind::Probe(i) => {
                let answer = match (result, &self.probe_requests[i]) {
                    (Ok(Reply::Hits { hits, .. }), Request::Search { request, .. }) => Ok(ProbeAnswer::Hits(request.clone(), hits)),
                    (Ok(Reply::Count { count, .. }), _) => Ok(ProbeAnswer::Count(count)),
                    (Ok(Reply::Page { page, .. }), _) => Ok(ProbeAnswer::Page(page.points)),
                    (Ok(other), _) => Err(format!("unexpected reply {other:?}")),
                    (Err(e), _) => Err(e.to_string()),
                };
                self.probes[i] = Some(answer);
            }
        }
    }

    /// The client gave up on `op`: a write is in doubt, a read failed.
    pub fn timeout(&mut self, now: u64, op: u64) {
        if self.in_flight.contains_key(&op) {
            self.respond(now, op, Err(NodeError::Indeterminate { shards: vec![], reason: "client timeout".into() }));
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn probing(&self) -> bool {
        self.probing
    }

    /// The final scatter-gather probe: exact searches (with ties and offsets), a count and a
    /// whole scroll, all `strong`.
    pub fn start_probe(&mut self, rng: &mut ChaCha8Rng) -> Vec<(u64, Request)> {
        self.probing = true;
        let strong = || ReadOptions { level: ReadLevel::Strong, allow_partial: false };
        let mut reqs = Vec::new();
        for i in 0..6 {
            let vector = (0..DIM).map(|_| rng.random_range(0..3) as f32).collect();
            let mut s = SearchRequest::new(vector, 4);
            s.exact = true;
            s.offset = i % 3;
            reqs.push(Request::Search { collection: COLLECTION.into(), request: s, read: strong() });
        }
        reqs.push(Request::Count { collection: COLLECTION.into(), filter: None, read: strong() });
        let scroll = ScrollRequest { offset: None, limit: 100_000, filter: None, with_payload: false, with_vector: false };
        reqs.push(Request::Scroll { collection: COLLECTION.into(), request: scroll, read: strong() });
        let mut out = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let op = self.next_op;
            self.next_op += 1;
            self.in_flight.insert(op, InFlight { client: None, kind: Kind::Probe(i), invoke: 0 });
            out.push((op, r.clone()));
        }
        self.probes = (0..reqs.len()).map(|_| None).collect();
        self.probe_requests = reqs;
        out
    }

    /// Forgets the probe's answers so it runs again.
    pub fn reset_probe(&mut self) {
        self.probing = false;
        self.probes.clear();
        self.probe_requests.clear();
    }

    pub fn op_counts(&self) -> BTreeMap<String, u64> {
        self.counts.clone()
    }

    pub fn max_eventual_lag(&self) -> u64 {
        self.max_lag
    }

    /// The history and probe checks against the final engines.
    pub fn check(&self, engines: &[(u64, &BTreeMap<GroupId, Collection>)]) -> Vec<String> {
        let mut v = Vec::new();
        // Final state of every point: from any replica (they converged).
        let mut finals: BTreeMap<u64, Option<u64>> = BTreeMap::new();
        let mut union: Option<Collection> = None;
        let mut seen_groups = std::collections::BTreeSet::new();
        for (_, es) in engines {
            for (g, c) in es.iter() {
                if !seen_groups.insert(*g) {
                    continue;
                }
                let u = union.get_or_insert_with(|| Collection::new("union", c.config().clone()).expect("valid"));
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
                if !pts.is_empty() {
                    u.apply(PointsOp::Upsert(pts)).expect("union accepts replica points");
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
                .filter(|w| w.outcome == Outcome::Ok && (w.ack == WriteAck::Quorum || (w.ack == WriteAck::OneCopy && self.rf <= 3)))
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
        // Scatter-gather probe against one engine holding the union.
        let Some(u) = union else { return v };
        for (i, p) in self.probes.iter().enumerate() {
            match p {
                None => v.push(format!("liveness: probe {i} not answered")),
                Some(Err(e)) => v.push(format!("liveness: probe {i} failed: {e}")),
                Some(Ok(ProbeAnswer::Hits(req, hits))) => {
                    let want = u.search(req).expect("union search");
                    let got: Vec<(PointId, u32)> = hits.iter().map(|h| (h.id, h.score.to_bits())).collect();
                    let want: Vec<(PointId, u32)> = want.iter().map(|h| (h.id, h.score.to_bits())).collect();
                    if got != want {
                        v.push(format!("scatter-gather: exact search {i} returned {got:?}, the union engine {want:?}"));
                    }
                }
                Some(Ok(ProbeAnswer::Count(n))) => {
                    if *n != u.len() as u64 {
                        v.push(format!("scatter-gather: count {n}, union holds {}", u.len()));
                    }
                }
                Some(Ok(ProbeAnswer::Page(points))) => {
                    let got: Vec<PointId> = points.iter().map(|r| r.id).collect();
                    let want: Vec<PointId> = u.points().map(|(id, _)| id).collect();
                    if got != want {
                        v.push(format!("scatter-gather: scroll returned {} ids, union {}", got.len(), want.len()));
                    }
                }
            }
        }
        v
    }
}

/// Every replica of every shard holds the same points (engine digest).
pub(super) fn check_convergence(engines: &[(u64, &BTreeMap<GroupId, Collection>)]) -> Vec<String> {
    let mut by_group: BTreeMap<GroupId, Vec<(u64, [u8; 32])>> = BTreeMap::new();
    for (node, es) in engines {
        for (g, c) in es.iter() {
            by_group.entry(*g).or_default().push((*node, c.digest()));
        }
    }
    let mut v = Vec::new();
    for (g, ds) in by_group {
        if ds.iter().any(|(_, d)| *d != ds[0].1) {
            let nodes: Vec<u64> = ds.iter().map(|(n, _)| *n).collect();
            v.push(format!("convergence: replicas {nodes:?} of group {g:#x} differ"));
        }
    }
    v
}
