//! The vector workload of the node world, its history, and the checkers that judge it.
//!
//! Each client is the only writer of its own points (ids `client * 1000 + k`, and
//! `client * 1000 + 500 + k` in the second collection, if the seed has one) and writes them one
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
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use vecraft_core::node::request::{NodeError, ReadLevel, ReadOptions, ReadToken, Reply, Request, WriteAck};
use vecraft_core::vector::collection::{CollectionConfig, Distance, PointSelector, PointsOp, ScrollRequest, SearchRequest};
use vecraft_core::vector::payload::PayloadValue;
use vecraft_core::vector::point::{PointId, PointStruct, Record, ScoredPoint};
use vecraft_core::vector::quantization::{QuantizationConfig, QuantizationSearchParams};

pub(super) const COLLECTION: &str = "vectors";
/// The alias client 0 points at `COLLECTION` once the collections exist; a share of the
/// requests for its points then name the alias instead.
pub(super) const ALIAS: &str = "current";
/// The second collection's name (see `NodeWorldConfig::second`).
const SECOND: &str = "side";
/// Point ids at or above this (modulo 1000) live in the second collection.
const SECOND_BASE: u64 = 500;
const DIM: usize = 4;

/// The next request of a client.
pub(super) struct WorkloadOp {
    pub op: u64,
    pub request: Request,
    pub think: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Ok,
    InDoubt,
    Failed,
}

#[derive(Clone, Debug)]
pub(super) struct WriteRec {
    pub(super) version: u64,
    pub(super) delete: bool,
    pub(super) ack: WriteAck,
    pub(super) invoke: u64,
    pub(super) complete: u64,
    pub(super) outcome: Outcome,
}

#[derive(Clone, Debug)]
pub(super) struct ReadRec {
    pub(super) point: u64,
    pub(super) level: &'static str,
    pub(super) invoke: u64,
    pub(super) complete: u64,
    pub(super) seen: Option<u64>,
}

enum Kind {
    Create(usize),
    Write { point: u64, version: u64, delete: bool, ack: WriteAck },
    Read { point: u64, level: &'static str },
    Search,
    Count,
    Probe(usize),
    /// A field index command of client 0 (see `field_index.rs`).
    Index { collection: usize, field: &'static str, create: bool },
    /// A quantization or `on_disk` switch of client 0 (see `vector_settings.rs`).
    Switch { collection: usize, change: super::vector_settings::Change },
    /// A page of client 1's shard export (see `export.rs`).
    Export,
    /// A step of client 2's recoveries, or a read of their collection (see `replace.rs`).
    Replace,
    /// Client 0 points [`ALIAS`] at the first collection.
    Alias,
}

struct InFlight {
    client: Option<usize>,
    kind: Kind,
    invoke: u64,
    /// The collection name (or alias) the request used, if any.
    name: Option<String>,
}

/// The collection name (or alias) a request names, if any.
fn named(request: &Request) -> Option<&str> {
    match request {
        Request::Write { collection, .. }
        | Request::Search { collection, .. }
        | Request::Get { collection, .. }
        | Request::Count { collection, .. }
        | Request::Scroll { collection, .. }
        | Request::ReplicaStatus { collection }
        | Request::FieldIndexes { collection, .. }
        | Request::VectorSettings { collection, .. }
        | Request::ShardChanges { collection, .. } => Some(collection),
        _ => None,
    }
}

pub(super) enum ProbeAnswer {
    Hits(SearchRequest, Vec<ScoredPoint>),
    Count(u64),
    Page(Vec<Record>),
    FieldIndexes(BTreeMap<String, vecraft_core::node::field_index::FieldIndexInfo>),
    /// The collection's vector settings as the node reports them, and whether shards differ.
    VectorSettings(vecraft_core::node::vector_settings::VectorSettings, bool),
}

/// Clients, history and checks.
pub(super) struct Workload {
    pub(super) clients: usize,
    pub(super) points_per_client: u64,
    /// (name, shards, replication factor) of each collection, created in order.
    pub(super) collections: Vec<(&'static str, u32, u32)>,
    pub(super) ack_weights: [u32; 3],
    /// Collections created so far.
    pub(super) created: usize,
    pub(super) create_in_flight: bool,
    pub(super) busy: Vec<bool>,
    /// Each client's read-your-writes token, per collection (tokens name shards of one).
    pub(super) tokens: Vec<Vec<ReadToken>>,
    pub(super) versions: BTreeMap<u64, u64>,
    pub(super) next_op: u64,
    in_flight: BTreeMap<u64, InFlight>,
    pub(super) writes: BTreeMap<u64, Vec<WriteRec>>,
    pub(super) reads: Vec<ReadRec>,
    pub(super) counts: BTreeMap<String, u64>,
    pub(super) max_lag: u64,
    /// Longest time an `eventual` read's replica had not heard its leader.
    pub(super) max_age: std::time::Duration,
    pub(super) probing: bool,
    pub(super) probes: Vec<Option<Result<ProbeAnswer, String>>>,
    pub(super) probe_requests: Vec<Request>,
    /// Register mode: every client writes and reads every key; the history goes to the
    /// linearizability checker.
    pub(super) register: Option<RegisterHistory>,
    /// Field index commands on, with their own random stream (see `field_index.rs`).
    pub(super) index_rng: Option<ChaCha8Rng>,
    /// The index commands and their outcomes, in invocation order.
    pub(super) index_history: Vec<super::field_index::IndexRec>,
    /// Index commands sent so far (the first is a create, sent at client 0's first turn).
    pub(super) index_ops_sent: u64,
    /// Quantization switches on, with their own random stream (see `vector_settings.rs`).
    pub(super) change_rng: Option<ChaCha8Rng>,
    /// The switches and their outcomes, in invocation order.
    pub(super) change_history: Vec<super::vector_settings::ChangeRec>,
    /// A switch has been sent (the first goes at client 0's first free turn).
    changing: bool,
    /// The probe includes approximate searches (deferred-indexing seeds, see `indexing.rs`).
    pub(super) approximate_probes: bool,
    /// The collections' quantization at create (see `quantization.rs`).
    quantization: Option<QuantizationConfig>,
    /// Slots a replica's index holds before its quantizer trains (the seed's policy).
    quantizer_train_after: usize,
    /// The collections keep their vectors on disk (see `vector_files.rs`).
    on_disk: bool,
    /// Indexes of the probe's searches on quantized codes (vector workload of quantized seeds).
    pub(super) quantized_probes: std::ops::Range<usize>,
    /// Client 1's point-in-time shard exports, in seeds that have them (see `export.rs`).
    pub(super) exports: Option<super::export::Exports>,
    /// Client 2's recoveries by replace and everyone's reads of them, in seeds that have them.
    pub(super) replaces: Option<super::replace::Replaces>,
    /// [`ALIAS`]: not sent yet, in flight, or acknowledged (then requests use it).
    pub(super) alias: AliasState,
    /// When each workload collection's create, and the alias, was acknowledged (never dropped
    /// afterwards).
    named_since: BTreeMap<String, u64>,
    /// `names`: requests answered "no such collection" for a name acknowledged before they began.
    pub(super) unknown_names: Vec<String>,
}

/// Where the workload's alias stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AliasState {
    Unsent,
    InFlight,
    /// Acknowledged: every node must end up resolving it.
    Acknowledged,
}

/// The register workload's history, in the Raft world's format.
pub(super) struct RegisterHistory {
    pub(super) keys: u64,
    pub(super) history: History,
    pub(super) ops: BTreeMap<u64, OpId>,
}

fn ack_name(a: WriteAck) -> &'static str {
    match a {
        WriteAck::Leader => "leader",
        WriteAck::OneCopy => "one_copy",
        WriteAck::Quorum => "quorum",
    }
}

pub(super) fn version_of(r: &Record) -> Option<u64> {
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
            collections: std::iter::once((COLLECTION, cfg.shards, cfg.replication_factor))
                .chain(cfg.second.map(|(s, rf)| (SECOND, s, rf)))
                .collect(),
            ack_weights: cfg.ack_weights,
            created: 0,
            create_in_flight: false,
            busy: vec![false; cfg.clients],
            tokens: vec![vec![ReadToken::default(); 1 + cfg.second.is_some() as usize]; cfg.clients],
            versions: BTreeMap::new(),
            next_op: 1,
            in_flight: BTreeMap::new(),
            writes: BTreeMap::new(),
            reads: Vec::new(),
            counts: BTreeMap::new(),
            max_lag: 0,
            max_age: std::time::Duration::ZERO,
            probing: false,
            probes: Vec::new(),
            probe_requests: Vec::new(),
            register: cfg.register.then(|| RegisterHistory { keys: cfg.register_keys, history: History::new(), ops: BTreeMap::new() }),
            index_rng: (cfg.field_indexes && !cfg.register).then(|| {
                use rand::SeedableRng;
                ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x1DE8_F1E1_D000_0006)
            }),
            index_history: Vec::new(),
            index_ops_sent: 0,
            change_rng: (cfg.settings_switches && cfg.quantization.is_some() && !cfg.register).then(|| {
                use rand::SeedableRng;
                ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x0A47_C4A6_E000_0008)
            }),
            change_history: Vec::new(),
            changing: false,
            approximate_probes: cfg.indexing.is_some() && !cfg.register,
            quantization: cfg.quantization.map(|q| q.config),
            quantizer_train_after: cfg.quantization.map_or(usize::MAX, |q| q.train_after),
            on_disk: cfg.vector_files.is_some(),
            quantized_probes: 0..0,
            alias: AliasState::Unsent,
            named_since: BTreeMap::new(),
            unknown_names: Vec::new(),
            exports: (cfg.exports && !cfg.register).then(|| {
                use rand::SeedableRng;
                super::export::Exports::new(ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xE4B0_47C0_B1E5_000A), cfg.export_finishes_any_round)
            }),
            replaces: (cfg.replaces && !cfg.register && cfg.clients > super::replace::RECOVERER).then(|| {
                use rand::SeedableRng;
                let rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5E9A_CE00_0000_000E);
                super::replace::Replaces::new(rng, cfg.clients, cfg.replication_factor, cfg.recover_in_place)
            }),
        }
    }

    /// The vector settings the collections were created with.
    pub(super) fn seed_settings(&self) -> vecraft_core::node::vector_settings::VectorSettings {
        vecraft_core::node::vector_settings::VectorSettings { quantization: self.quantization, on_disk: self.on_disk }
    }

    /// The seed's quantizer training threshold (`usize::MAX` without quantization).
    pub(super) fn train_after(&self) -> usize {
        self.quantizer_train_after
    }

    fn count(&mut self, key: String) {
        *self.counts.entry(key).or_insert(0) += 1;
    }

    fn all_points(&self) -> u64 {
        self.clients as u64 * self.points_per_client * self.collections.len() as u64
    }

    /// The `n`-th point of all clients' points in all collections.
    fn point_id(&self, n: u64) -> u64 {
        let per_client = self.points_per_client * self.collections.len() as u64;
        let (client, rest) = (n / per_client, n % per_client);
        client * 1000 + (rest / self.points_per_client) * SECOND_BASE + rest % self.points_per_client
    }

    /// Index of the collection point `point` lives in.
    pub(super) fn collection_of(point: u64) -> usize {
        ((point % 1000) / SECOND_BASE) as usize
    }

    /// The replication factor of point `point`'s collection.
    pub(super) fn rf_of(&self, point: u64) -> u32 {
        self.collections[Self::collection_of(point)].2
    }

    fn name_of(&self, point: u64) -> String {
        self.collections[Self::collection_of(point)].0.to_string()
    }

    /// The name a request for `point` uses: its collection's, or now and then the alias once
    /// it was acknowledged.
    fn route_name(&self, point: u64, rng: &mut ChaCha8Rng) -> String {
        if Self::collection_of(point) == 0 && self.alias == AliasState::Acknowledged && rng.random_bool(0.3) {
            return ALIAS.to_string();
        }
        self.name_of(point)
    }

    fn any_collection(&self, rng: &mut ChaCha8Rng) -> String {
        self.collections[rng.random_range(0..self.collections.len())].0.to_string()
    }

    /// A write-ack level drawn with the seed's weights `w` (leader, one_copy, quorum).
    fn pick_ack(w: [u32; 3], rng: &mut ChaCha8Rng) -> WriteAck {
        let pick = rng.random_range(0..(w[0] + w[1] + w[2]).max(1));
        if pick < w[0] {
            WriteAck::Leader
        } else if pick < w[0] + w[1] {
            WriteAck::OneCopy
        } else {
            WriteAck::Quorum
        }
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
        let (kind, request) = if self.created < self.collections.len() {
            if c != 0 || self.create_in_flight {
                return None;
            }
            self.create_in_flight = true;
            let (name, shards, replication_factor) = self.collections[self.created];
            let request = Request::CreateCollection {
                name: name.into(),
                config: CollectionConfig {
                    quantization: self.quantization,
                    on_disk: self.on_disk,
                    ..CollectionConfig::new(DIM as u32, Distance::Euclid)
                },
                shards,
                replication_factor,
            };
            (Kind::Create(self.created), request)
        } else if let Some(reg) = &mut self.register {
            // Any client, any key; a unique value per write. Acks below quorum may be lost, so
            // they are recorded as indeterminate (they may or may not take effect).
            let key = rng.random_range(0..reg.keys);
            let point = 1_000_000 + key;
            let (operation, kind, request) = if rng.random_bool(0.5) {
                let value = op as i64;
                let ack = Self::pick_ack(self.ack_weights, rng);
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
        } else if let Some((collection, field, create, op_)) = {
            let first = self.index_ops_sent == 0;
            let collections = self.collections.len();
            self.index_rng
                .as_mut()
                .filter(|_| c == 0)
                .and_then(|r| super::field_index::next_index_op(r, collections, first))
        } {
            self.index_ops_sent += 1;
            let name = self.collections[collection].0.to_string();
            (Kind::Index { collection, field, create }, Request::Write { collection: name, op: op_, ack: WriteAck::Quorum })
        } else if let Some((collection, change, op_)) = {
            let collections = self.collections.len();
            let seed_config = self.quantization;
            let first = self.change_history.is_empty() && !self.changing;
            self.change_rng
                .as_mut()
                .filter(|_| c == 0)
                .zip(seed_config)
                .and_then(|(r, q)| super::vector_settings::next_change(r, collections, q, first))
        } {
            self.changing = true;
            let name = self.collections[collection].0.to_string();
            (Kind::Switch { collection, change }, Request::Write { collection: name, op: op_, ack: WriteAck::Quorum })
        } else if c == 0 && self.alias == AliasState::Unsent && self.register.is_none() {
            self.alias = AliasState::InFlight;
            let create = vecraft_core::node::metadata::AliasAction::Create { alias: ALIAS.into(), collection: COLLECTION.into() };
            (Kind::Alias, Request::UpdateAliases { actions: vec![create] })
        } else if let Some(request) = self.replaces.as_mut().and_then(|r| r.next(c, now)) {
            (Kind::Replace, request)
        } else if let Some(request) = {
            let created: Vec<(&'static str, u32)> = self.collections.iter().map(|(n, s, _)| (*n, *s)).collect();
            self.exports.as_mut().filter(|_| c == 1).and_then(|e| e.next(&created))
        } {
            (Kind::Export, request)
        } else {
            let roll = rng.random_range(0..100);
            if roll < 45 {
                let k = if self.collections.len() > 1 && rng.random_bool(0.35) { 1 } else { 0 };
                let point = c as u64 * 1000 + k * SECOND_BASE + rng.random_range(0..self.points_per_client);
                let version = {
                    let v = self.versions.entry(point).or_insert(0);
                    *v += 1;
                    *v
                };
                let ack = Self::pick_ack(self.ack_weights, rng);
                let delete = rng.random_bool(0.15);
                let op_ = if delete {
                    PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(point)]))
                } else {
                    let vector = (0..DIM).map(|_| rng.random_range(0..3) as f32).collect();
                    let mut payload: vecraft_core::vector::payload::Payload =
                        [("v".to_string(), PayloadValue::Int(version as i64))].into_iter().collect();
                    if self.index_rng.is_some() {
                        payload.insert("g".to_string(), super::field_index::keyword_of(version));
                    }
                    PointsOp::Upsert(vec![PointStruct { id: PointId::Num(point), vector, payload }])
                };
                (Kind::Write { point, version, delete, ack }, Request::Write { collection: self.route_name(point, rng), op: op_, ack })
            } else if roll < 85 {
                let r = rng.random_range(0..100);
                let (level, name, point) = if r < 35 {
                    (ReadLevel::Strong, "strong", self.point_id(rng.random_range(0..self.all_points())))
                } else if r < 50 {
                    (ReadLevel::Quorum, "quorum", self.point_id(rng.random_range(0..self.all_points())))
                } else if r < 75 {
                    (ReadLevel::Eventual, "eventual", self.point_id(rng.random_range(0..self.all_points())))
                } else {
                    let k = if self.collections.len() > 1 && rng.random_bool(0.35) { 1 } else { 0 };
                    let point = c as u64 * 1000 + k * SECOND_BASE + rng.random_range(0..self.points_per_client);
                    (ReadLevel::ReadYourWrites(self.tokens[c][k as usize].clone()), "read_your_writes", point)
                };
                let request = Request::Get {
                    collection: self.route_name(point, rng),
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
                (Kind::Search, Request::Search { collection: self.any_collection(rng), request: s, read: Self::read(level) })
            } else {
                let collection = self.any_collection(rng);
                (Kind::Count, Request::Count { collection, filter: None, read: Self::read(ReadLevel::Quorum) })
            }
        };
        self.next_op += 1;
        self.busy[c] = true;
        let name = named(&request).map(str::to_string);
        self.in_flight.insert(op, InFlight { client: Some(c), kind, invoke: now, name });
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
        if let (Err(NodeError::NoSuchCollection(_)), Some(name)) = (&result, &f.name)
            && let Some(&since) = self.named_since.get(name)
            && since < f.invoke
        {
            self.unknown_names.push(format!(
                "names: a request invoked at {} for {name:?} was answered \"no such collection\", though {name:?} was acknowledged at {since}",
                f.invoke
            ));
        }
        match f.kind {
            Kind::Create(i) => {
                self.create_in_flight = false;
                match result {
                    Ok(_) | Err(NodeError::CollectionExists(_)) => {
                        self.created = self.created.max(i + 1);
                        self.named_since.entry(self.collections[i].0.to_string()).or_insert(now);
                    }
                    Err(_) => {}
                }
            }
            Kind::Write { point, version, delete, ack } => {
                let outcome = match &result {
                    Ok(Reply::Written { token }) => {
                        if let Some(c) = f.client
                            && ack == WriteAck::Quorum
                        {
                            self.tokens[c][Self::collection_of(point)].merge(token);
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
                            if let Some(age) = s.max_age() {
                                self.max_age = self.max_age.max(age);
                            }
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
            Kind::Index { collection, field, create } => {
                let outcome = match &result {
                    Ok(Reply::Written { .. }) => Outcome::Ok,
                    Err(NodeError::Indeterminate { .. }) | Ok(_) => Outcome::InDoubt,
                    Err(_) => Outcome::Failed,
                };
                self.count(format!("index:{}:{outcome:?}", if create { "create" } else { "drop" }));
                self.index_history.push(super::field_index::IndexRec { collection, field, create, outcome });
            }
            Kind::Switch { collection, change } => {
                let outcome = match &result {
                    Ok(Reply::Written { .. }) => Outcome::Ok,
                    Err(NodeError::Indeterminate { .. }) | Ok(_) => Outcome::InDoubt,
                    Err(_) => Outcome::Failed,
                };
                let what = match change {
                    super::vector_settings::Change::Quantization(_) => "quantization",
                    super::vector_settings::Change::OnDisk(_) => "on-disk",
                };
                self.count(format!("settings-switch:{what}:{outcome:?}"));
                self.change_history.push(super::vector_settings::ChangeRec { collection, change, outcome });
            }
            Kind::Alias => {
                let outcome = match &result {
                    Ok(Reply::Done) => Outcome::Ok,
                    Err(NodeError::Indeterminate { .. }) | Ok(_) => Outcome::InDoubt,
                    Err(_) => Outcome::Failed,
                };
                // Sent again until acknowledged (pointing it at the same collection again is
                // harmless).
                self.alias = if outcome == Outcome::Ok { AliasState::Acknowledged } else { AliasState::Unsent };
                if outcome == Outcome::Ok {
                    self.named_since.entry(ALIAS.to_string()).or_insert(now);
                }
                self.count(format!("alias:{outcome:?}"));
            }
            Kind::Export => {
                let what = self.exports.as_mut().map_or("stray", |e| e.respond(result));
                self.count(format!("export:{what}"));
            }
            Kind::Replace => {
                let c = f.client.expect("a client's request");
                let what = self.replaces.as_mut().map_or("stray", |r| r.respond(c, now, result));
                self.count(format!("replace:{what}"));
            }
            Kind::Probe(i) => {
                let answer = match (result, &self.probe_requests[i]) {
                    (Ok(Reply::Hits { hits, .. }), Request::Search { request, .. }) => Ok(ProbeAnswer::Hits(request.clone(), hits)),
                    (Ok(Reply::Count { count, .. }), _) => Ok(ProbeAnswer::Count(count)),
                    (Ok(Reply::Page { page, .. }), _) => Ok(ProbeAnswer::Page(page.points)),
                    (Ok(Reply::FieldIndexes { fields, .. }), _) => Ok(ProbeAnswer::FieldIndexes(fields)),
                    (Ok(Reply::VectorSettings { settings, conflicting, .. }), _) => Ok(ProbeAnswer::VectorSettings(settings, conflicting)),
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
        let quantized = self.quantization.is_some() && self.register.is_none();
        if self.approximate_probes {
            for mut s in super::indexing::probe_searches(rng, DIM) {
                if quantized {
                    // `approximate-search` judges the f32 walk and its tail; the walk on codes
                    // is `quantized-search`'s.
                    s.quantization = Some(QuantizationSearchParams { ignore: true, ..Default::default() });
                }
                reqs.push(Request::Search { collection: COLLECTION.into(), request: s, read: strong() });
            }
        }
        if quantized {
            let first = reqs.len();
            for s in super::quantization::probe_searches(rng, DIM) {
                reqs.push(Request::Search { collection: COLLECTION.into(), request: s, read: strong() });
            }
            self.quantized_probes = first..reqs.len();
        }
        reqs.push(Request::Count { collection: COLLECTION.into(), filter: None, read: strong() });
        if self.alias == AliasState::Acknowledged {
            // Through the alias, from whichever node the probe reaches: the union's count too.
            reqs.push(Request::Count { collection: ALIAS.into(), filter: None, read: strong() });
        }
        let scroll = ScrollRequest { offset: None, limit: 100_000, filter: None, with_payload: false, with_vector: false };
        reqs.push(Request::Scroll { collection: COLLECTION.into(), request: scroll, read: strong() });
        if self.index_rng.is_some() {
            // Filtered reads through shards that may hold indexes, judged against an engine
            // without any; and the declarations the node reports.
            for filter in super::field_index::probe_filters(rng) {
                let vector = (0..DIM).map(|_| rng.random_range(0..3) as f32).collect();
                let mut s = SearchRequest::new(vector, 4);
                s.exact = true;
                s.filter = Some(filter.clone());
                reqs.push(Request::Search { collection: COLLECTION.into(), request: s, read: strong() });
                reqs.push(Request::Count { collection: COLLECTION.into(), filter: Some(filter.clone()), read: strong() });
                let scroll = ScrollRequest { offset: None, limit: 100_000, filter: Some(filter), with_payload: false, with_vector: false };
                reqs.push(Request::Scroll { collection: COLLECTION.into(), request: scroll, read: strong() });
            }
            reqs.push(Request::FieldIndexes { collection: COLLECTION.into(), read: strong() });
        }
        if self.change_rng.is_some() {
            reqs.push(Request::VectorSettings { collection: COLLECTION.into(), read: strong() });
        }
        let mut out = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let op = self.next_op;
            self.next_op += 1;
            self.in_flight.insert(op, InFlight { client: None, kind: Kind::Probe(i), invoke: 0, name: None });
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
        self.quantized_probes = 0..0;
    }

    pub fn op_counts(&self) -> BTreeMap<String, u64> {
        self.counts.clone()
    }

    pub fn max_eventual_lag(&self) -> u64 {
        self.max_lag
    }

    pub fn max_eventual_age(&self) -> std::time::Duration {
        self.max_age
    }
}
