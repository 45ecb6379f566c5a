//! Collection replaces while the node world runs: what a snapshot recovery of the server does
//! (`backend/node_snapshots.rs`: fill a collection aside, then one [`Request::ReplaceCollection`]
//! gives it the name), and the `atomic-replace` checker.
//!
//! In half the seeds (not register ones) client 2 recovers [`TARGET`] again and again, one
//! generation at a time: it creates `swap.g<n>`, upserts the generation's [`POINTS`] points
//! (payload `{"gen": n}`, the same ids every generation) at `quorum`, and replaces [`TARGET`]
//! with it. Now and then the other clients read [`TARGET`] whole with a `strong` scroll.
//!
//! The checker judges every read that answered:
//! - whole: all [`POINTS`] ids, every one of the same generation (a replace swaps content in
//!   one step, so a read never sees a collection half filled, or two generations mixed);
//! - there: once a replace was acknowledged before the read began, the name never reads as
//!   missing;
//! - linearizable: the generation is not older than the newest one whose replace was
//!   acknowledged before the read began (unless that older replace was in doubt: it may take
//!   effect late), and its replace had been sent before the read ended.
//!
//! The last two hold because a node resolves names at a metadata index the metadata leader
//! confirmed (`node/name_barrier.rs`); bug switch `names-from-local-metadata` resolves them
//! from the node's applied copy as it stands, which trails by a heartbeat or a partition.
//!
//! Bug switch `recover-in-place` recovers the old way (drop [`TARGET`], create it, fill it):
//! reads then see it missing, empty or half filled.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use vecraft_core::node::request::{NodeError, ReadLevel, ReadOptions, Reply, Request, WriteAck};
use vecraft_core::vector::collection::{CollectionConfig, Distance, PointsOp, ScrollRequest};
use vecraft_core::vector::payload::PayloadValue;
use vecraft_core::vector::point::{PointId, PointStruct, Record};

/// The name each generation replaces.
pub(super) const TARGET: &str = "swap";
/// Points per generation (ids `BASE..BASE + POINTS`).
const POINTS: u64 = 4;
const BASE: u64 = 900_000;
/// Generations per seed at most.
const MAX_GENERATIONS: u64 = 8;
/// Chance that a free client other than the recoverer reads [`TARGET`] on its turn.
const READ_CHANCE: f64 = 0.06;
/// The recovering client.
pub(super) const RECOVERER: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Create the staging collection (in place: drop the target first).
    Create,
    /// In place only: the drop was done, create the target.
    CreateInPlace,
    /// Upsert the generation's points.
    Fill,
    /// Replace the target with the staging collection.
    Replace,
}

/// One generation's swap, as the client saw it.
#[derive(Clone, Debug)]
pub(super) struct SwapRec {
    pub(super) generation: u64,
    /// When its replace (in place: its first drop) was sent.
    pub(super) invoke: u64,
    /// When it was acknowledged; `None` while in doubt or never acknowledged.
    pub(super) acked: Option<u64>,
}

/// What a read of [`TARGET`] saw.
#[derive(Clone, Debug)]
pub(super) struct SwapRead {
    pub(super) invoke: u64,
    pub(super) complete: u64,
    /// `None`: no collection of that name. Otherwise (id, generation) of each point.
    pub(super) seen: Option<Vec<(u64, Option<u64>)>>,
}

/// The seed's replaces.
pub(super) struct Replaces {
    rng: ChaCha8Rng,
    in_place: bool,
    shards: u32,
    replication_factor: u32,
    generation: u64,
    step: Step,
    /// Invocation time of each client's request in flight (reads and the recoverer's steps).
    pending: Vec<Option<u64>>,
    pub(super) swaps: Vec<SwapRec>,
    pub(super) reads: Vec<SwapRead>,
}

fn staging(generation: u64) -> String {
    format!("{TARGET}.g{generation}")
}

impl Replaces {
    pub(super) fn new(mut rng: ChaCha8Rng, clients: usize, replication_factor: u32, in_place: bool) -> Replaces {
        let shards = rng.random_range(1..=2);
        Replaces {
            rng,
            in_place,
            shards,
            replication_factor,
            generation: 1,
            step: Step::Create,
            pending: vec![None; clients],
            swaps: Vec::new(),
            reads: Vec::new(),
        }
    }

    /// Client `c`'s next request for the replaces, if it has one now.
    pub(super) fn next(&mut self, c: usize, now: u64) -> Option<Request> {
        if self.pending[c].is_some() {
            return None;
        }
        let request = if c == RECOVERER {
            if self.generation > MAX_GENERATIONS {
                return None;
            }
            self.step_request(now)
        } else if self.rng.random_bool(READ_CHANCE) {
            let all = ScrollRequest { offset: None, limit: 100, filter: None, with_payload: true, with_vector: false };
            Request::Scroll {
                collection: TARGET.into(),
                request: all,
                read: ReadOptions { level: ReadLevel::Strong, allow_partial: false },
            }
        } else {
            return None;
        };
        self.pending[c] = Some(now);
        Some(request)
    }

    fn step_request(&mut self, now: u64) -> Request {
        let create = |name: String, shards, replication_factor| Request::CreateCollection {
            name,
            config: CollectionConfig::new(2, Distance::Euclid),
            shards,
            replication_factor,
        };
        let g = self.generation;
        match self.step {
            Step::Create if self.in_place => {
                self.start_swap(now);
                Request::DropCollection { name: TARGET.into() }
            }
            Step::Create => create(staging(g), self.shards, self.replication_factor),
            Step::CreateInPlace => create(TARGET.into(), self.shards, self.replication_factor),
            Step::Fill => {
                let points = (0..POINTS)
                    .map(|k| PointStruct {
                        id: PointId::Num(BASE + k),
                        vector: vec![k as f32, g as f32],
                        payload: [("gen".to_string(), PayloadValue::Int(g as i64))].into_iter().collect(),
                    })
                    .collect();
                let collection = if self.in_place { TARGET.into() } else { staging(g) };
                Request::Write { collection, op: PointsOp::Upsert(points), ack: WriteAck::Quorum }
            }
            Step::Replace => {
                self.start_swap(now);
                Request::ReplaceCollection { name: TARGET.into(), with: staging(g) }
            }
        }
    }

    fn start_swap(&mut self, now: u64) {
        if self.swaps.last().is_none_or(|s| s.generation != self.generation) {
            self.swaps.push(SwapRec { generation: self.generation, invoke: now, acked: None });
        }
    }

    /// The answer to client `c`'s request (a time-out is an `Indeterminate` error); the
    /// outcome's name for the op counts.
    pub(super) fn respond(&mut self, c: usize, now: u64, result: Result<Reply, NodeError>) -> &'static str {
        let Some(invoke) = self.pending[c].take() else { return "stray" };
        if c != RECOVERER {
            let seen = match result {
                Ok(Reply::Page { page, missing }) if missing.is_empty() => {
                    Some(page.points.iter().map(|r| (num(&r.id), generation_of(r))).collect())
                }
                Err(NodeError::NoSuchCollection(_)) => None,
                _ => return "read-failed",
            };
            self.reads.push(SwapRead { invoke, complete: now, seen });
            return "read";
        }
        let ok = result.is_ok();
        let (next, what) = match (self.step, result) {
            // A create that exists was an in-doubt attempt that took effect.
            (Step::Create, Ok(_) | Err(NodeError::CollectionExists(_))) if !self.in_place => (Step::Fill, "created"),
            (Step::Create, Ok(_) | Err(NodeError::NoSuchCollection(_))) => (Step::CreateInPlace, "dropped"),
            (Step::CreateInPlace, Ok(_) | Err(NodeError::CollectionExists(_))) => (Step::Fill, "created"),
            (Step::Fill, Ok(_)) if self.in_place => {
                self.finish(Some(now));
                (Step::Create, "recovered-in-place")
            }
            (Step::Fill, Ok(_)) => (Step::Replace, "filled"),
            (Step::Replace, Ok(_)) => {
                self.finish(Some(now));
                (Step::Create, "replaced")
            }
            // A replace in doubt (or refused because an in-doubt attempt took effect) stays in
            // doubt; the next generation starts.
            (Step::Replace, Err(_)) => {
                self.finish(None);
                (Step::Create, "replace-in-doubt")
            }
            // Anything else is sent again (creates and upserts are idempotent here).
            (step, _) => (step, if ok { "unexpected" } else { "retry" }),
        };
        self.step = next;
        what
    }

    fn finish(&mut self, acked: Option<u64>) {
        if let Some(s) = self.swaps.last_mut().filter(|s| s.generation == self.generation) {
            s.acked = acked;
        }
        self.generation += 1;
    }
}

fn num(id: &PointId) -> u64 {
    match id {
        PointId::Num(n) => *n,
        _ => u64::MAX,
    }
}

fn generation_of(r: &Record) -> Option<u64> {
    match r.payload.as_ref().and_then(|p| p.get("gen")) {
        Some(PayloadValue::Int(g)) => Some(*g as u64),
        _ => None,
    }
}

/// The `atomic-replace` checker (see the module docs).
pub(super) fn check(r: &Replaces) -> Vec<String> {
    let mut v = Vec::new();
    let want: BTreeSet<u64> = (BASE..BASE + POINTS).collect();
    for (i, read) in r.reads.iter().enumerate() {
        let newest_acked = r.swaps.iter().filter(|s| s.acked.is_some_and(|a| a < read.invoke)).map(|s| s.generation).max();
        let Some(points) = &read.seen else {
            if let Some(g) = newest_acked {
                v.push(format!(
                    "atomic-replace: read {i} (invoked at {}) found no collection {TARGET:?}, though generation {g} was swapped in before it began",
                    read.invoke
                ));
            }
            continue;
        };
        let ids: BTreeSet<u64> = points.iter().map(|(id, _)| *id).collect();
        let generations: BTreeSet<Option<u64>> = points.iter().map(|(_, g)| *g).collect();
        let whole = ids == want && generations.len() == 1;
        let Some(&Some(g)) = generations.iter().next().filter(|_| whole) else {
            v.push(format!(
                "atomic-replace: read {i} (invoked at {}) saw {TARGET:?} torn: {} of {POINTS} points, generations {generations:?}",
                read.invoke,
                ids.len()
            ));
            continue;
        };
        let Some(swap) = r.swaps.iter().find(|s| s.generation == g) else {
            v.push(format!("atomic-replace: read {i} saw generation {g}, which was never swapped in"));
            continue;
        };
        if swap.invoke > read.complete {
            v.push(format!("atomic-replace: read {i} saw generation {g} before its replace was sent"));
        }
        if let Some(newest) = newest_acked.filter(|&newest| g < newest && swap.acked.is_some()) {
            v.push(format!(
                "atomic-replace: read {i} (invoked at {}) saw generation {g}, though generation {newest} was swapped in before it began",
                read.invoke
            ));
        }
    }
    v
}

