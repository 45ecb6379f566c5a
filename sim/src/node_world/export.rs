//! Point-in-time shard exports while the node world runs (what a collection snapshot of the
//! server reads, `backend/node_snapshots.rs`), and the `point-in-time-export` checker.
//!
//! In half the seeds (not register ones) client 1, now and then, copies one shard of a
//! collection with a [`ShardExport`]: `strong` [`Request::ShardChanges`] reads of a few changes
//! each (1 to 4, so rounds take several pages), one per turn, while the other clients write
//! under the seed's faults. A failed read is sent again; the export's own refusals (a shard
//! changing too fast, too many fresh starts) are counted, not judged.
//!
//! The checker replays, for each finished copy, the shard's commands up to the copy's sequence
//! number on a fresh engine and requires the copy to equal it point for point (id, version,
//! payload, vector bits). The commands come from the world's apply trace: every command that
//! advanced a replica's sequence number, by shard and sequence number — which every replica
//! must agree on (the `apply-agreement` checker, in every seed: a second, different command
//! at a sequence number means replicas applied different logs, or one applied an entry twice).

use bytes::Bytes;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use vecraft_core::node::request::{NodeError, ReadLevel, ReadOptions, Reply, Request};
use vecraft_core::node::shard::apply_command;
use vecraft_core::node::shard_export::{ExportProgress, ShardExport};
use vecraft_core::node::sharding::ShardId;
use vecraft_core::raft::GroupId;
use vecraft_core::vector::collection::{Collection, ScrollRequest};
use vecraft_core::vector::point::Record;

/// Chance that client 1, when free and not exporting, starts an export.
const START_CHANCE: f64 = 0.05;

/// A finished copy.
pub(super) struct ExportRec {
    pub(super) collection: String,
    pub(super) shard: ShardId,
    pub(super) seq: u64,
    pub(super) points: Vec<Record>,
}

/// The seed's exports.
pub(super) struct Exports {
    rng: ChaCha8Rng,
    /// The export in progress and its collection.
    active: Option<(String, ShardExport)>,
    pub(super) done: Vec<ExportRec>,
    /// The `export-finishes-any-round` bug switch.
    finish_any_round: bool,
    /// Finished exports whose last round took several pages (only the bug finishes those).
    pub(super) torn_finishes: u64,
}

/// Every command that advanced some replica's sequence number, by shard group (never reused,
/// unlike a name, which a replace hands to another collection's groups), at index `seq - 1`;
/// and the first disagreement seen.
#[derive(Default)]
pub(super) struct ApplyTrace {
    commands: BTreeMap<GroupId, Vec<Bytes>>,
    pub(super) disagreement: Option<String>,
}

impl ApplyTrace {
    /// A replica of `group` applied `command`, which moved its engine from `before` to `after`.
    pub(super) fn record(&mut self, collection: &str, group: GroupId, before: u64, after: u64, command: &Bytes) {
        if after != before + 1 {
            return; // refused, or a command that touches no point
        }
        let log = self.commands.entry(group).or_default();
        let at = before as usize;
        if at < log.len() {
            if log[at] != *command && self.disagreement.is_none() {
                let shard = vecraft_core::node::metadata::group_shard(group).1;
                self.disagreement = Some(format!(
                    "replicas of {collection}/{shard} (group {group:#x}) applied different commands at sequence {after}"
                ));
            }
        } else if at == log.len() {
            log.push(command.clone());
        }
        // `at > len`: a replica restored past what any traced replica applied (from a snapshot
        // of a run before the trace, impossible here); the gap leaves the copy unjudged.
    }
}

impl Exports {
    pub(super) fn new(rng: ChaCha8Rng, finish_any_round: bool) -> Exports {
        Exports { rng, active: None, done: Vec::new(), finish_any_round, torn_finishes: 0 }
    }

    /// Client 1's next export read, if it is exporting or starts now. `collections` are the
    /// created ones' (name, shards).
    pub(super) fn next(&mut self, collections: &[(&'static str, u32)]) -> Option<Request> {
        if self.active.is_none() {
            if collections.is_empty() || !self.rng.random_bool(START_CHANCE) {
                return None;
            }
            let (name, shards) = collections[self.rng.random_range(0..collections.len())];
            let shard = self.rng.random_range(0..shards);
            let mut export = ShardExport::new(shard, self.rng.random_range(1..=4));
            if self.finish_any_round {
                export = export.finish_any_round();
            }
            self.active = Some((name.to_string(), export));
        }
        let (collection, export) = self.active.as_ref().expect("set above");
        let read = export.next_read();
        Some(Request::ShardChanges {
            collection: collection.clone(),
            shard: export.shard(),
            since: read.since,
            after: read.after,
            limit: read.limit as u32,
            read: ReadOptions { level: ReadLevel::Strong, allow_partial: false },
        })
    }

    /// The answer to the last read; returns the outcome's name for the op counts.
    pub(super) fn respond(&mut self, result: Result<Reply, NodeError>) -> &'static str {
        let Some((collection, export)) = self.active.as_mut() else { return "stray" };
        let page = match result {
            Ok(Reply::Changes(page)) => page,
            Ok(_) => return "wrong-reply",
            Err(_) => return "read-failed", // asked again next turn
        };
        match export.on_page(page) {
            Ok(ExportProgress::More) => "page",
            Ok(ExportProgress::Done { seq }) => {
                let (collection, export) = (collection.clone(), self.active.take().expect("active").1);
                if export.final_round_pages() > 1 {
                    self.torn_finishes += 1;
                }
                let shard = export.shard();
                self.done.push(ExportRec { collection, shard, seq, points: export.into_points() });
                "done"
            }
            Err(e) => {
                self.active = None;
                match e {
                    vecraft_core::node::shard_export::ExportError::NotSettling { .. } => "not-settling",
                    vecraft_core::node::shard_export::ExportError::TooManyRestarts { .. } => "too-many-restarts",
                    vecraft_core::node::shard_export::ExportError::WentBack { .. } => "went-back",
                    vecraft_core::node::shard_export::ExportError::Malformed { .. } => "malformed",
                }
            }
        }
    }
}

/// Every finished copy equals its shard replayed to the copy's sequence number. `configs` gives
/// each collection's config (from any final replica: what decides how points are stored —
/// dimension and distance — never changes).
pub(super) fn check(exports: &Exports, trace: &ApplyTrace, engines: &[(GroupId, &Collection)]) -> Vec<String> {
    let mut v = Vec::new();
    for (i, e) in exports.done.iter().enumerate() {
        // Exported collections are never replaced, so their name still names their groups.
        let replica = engines
            .iter()
            .find(|(g, c)| c.name() == e.collection && vecraft_core::node::metadata::group_shard(*g).1 == e.shard);
        let Some((group, config)) = replica.map(|(g, c)| (*g, *c.config())) else {
            continue; // no replica left to say how it stores points
        };
        let log = trace.commands.get(&group).map_or(&[][..], Vec::as_slice);
        if (e.seq as usize) > log.len() {
            v.push(format!(
                "point-in-time-export: copy {i} of {}/{} claims sequence {}, no replica applied past {}",
                e.collection,
                e.shard,
                e.seq,
                log.len()
            ));
            continue;
        }
        let mut replay = Collection::new(&e.collection, config).expect("a replica's config");
        for command in &log[..e.seq as usize] {
            let _ = apply_command(&mut replay, command);
        }
        let all = ScrollRequest { offset: None, limit: usize::MAX, filter: None, with_payload: true, with_vector: true };
        let want = replay.scroll(&all).expect("plain scroll").points;
        if replay.seq() != e.seq || want != e.points {
            let differ = want.iter().zip(&e.points).position(|(a, b)| a != b).unwrap_or(want.len().min(e.points.len()));
            v.push(format!(
                "point-in-time-export: copy {i} of {}/{} at sequence {} holds {} points, the shard then held {} (first difference at position {differ}): not the shard at any one log position",
                e.collection,
                e.shard,
                e.seq,
                e.points.len(),
                want.len()
            ));
        }
    }
    v
}
