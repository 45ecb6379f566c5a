//! The node world: the simulator driving whole vecraft nodes (`vecraft_core::node::Node`) — the
//! metadata group, replicated sharded collections with their vector engines, request routing,
//! write-ack and read levels and scatter-gather — through the same faulty network, crashes,
//! restarts and partitions as the Raft world, with a vector workload and its checkers.
//!
//! * `host.rs`: the event loop, each node's process, disk and engines (the only code that steps
//!   the node; applies and reads cost virtual time per point and dimension);
//! * `nemesis.rs`: crashes, partitions, pauses; `snapshots.rs`: engine snapshot transfers;
//! * `workload.rs`: clients and their history; `check.rs`: the checkers that judge it at the end.
//!
//! What is checked (each a named checker, so a bug switch's test can assert which caught it):
//! * `durability`: every write acknowledged at `quorum` (and `one_copy`, replication ≤ 3) is in
//!   the final state, unless a later or in-doubt write of the same point replaced it;
//! * `strong-reads`: `strong`/`quorum` reads of a point never return a version older than one
//!   acknowledged at `quorum` before the read began, nor older than what an earlier read saw;
//!   `read_your_writes` reads see the client's own `quorum` writes; no read sees the future;
//! * `convergence`: after the liveness phase every replica of every shard has the same digest;
//! * `scatter-gather`: exact searches, counts and scrolls through the node equal a single engine
//!   holding the union of all shards (filtered ones too, with or without field indexes);
//! * `field-indexes`: every shard of a collection ends declaring, per field, what the index
//!   commands' outcomes allow (see `field_index.rs`); `convergence` also compares the replicas'
//!   declared indexes;
//! * `stable-leadership`: no group holds an election in the quiet probe phase (faults stopped,
//!   network healed and calm, clients stopped): a follower timing out under a live leader is a
//!   liveness bug that real processes pay for in failed writes;
//! * `approximate-search`: with deferred indexing, graph walks plus the unindexed tail score
//!   exactly like an exact search of the union (see `indexing.rs`);
//! * `quantized-search`: in quantized seeds, searches on the codes return stored points with
//!   their f32 scores, in order, and an exact answer when the candidate pool covers every shard
//!   (see `quantization.rs`).
//! * `vector-settings`: in half the quantized seeds a client switches quantization and
//!   `on_disk` while the world runs; every replica ends with settings the switches' outcomes
//!   allow, replicas of a shard agree, and a replica past the training threshold has trained
//!   codes (see `vector_settings.rs`).
//!
//! * `aliases`: every node resolves the same aliases, and the workload's alias (client 0 points
//!   it at the first collection; a share of the requests for its points then use it, the final
//!   probe counts through it) names its collection on every node once acknowledged.
//! * `apply-agreement`: the replicas of a shard apply the same command at each sequence number
//!   of their engines (state-machine safety; see `export.rs`).
//! * `apply-once`: no replica's engine is handed an entry at or below the index it already
//!   holds (an engine snapshot ahead of the log that survived a crash would be re-applied).
//! * `apply-report`: a leader never reports a follower's applied index above what it applied,
//!   and a sleeping (quiesced) group reports every follower exactly (see `check_apply_report`).
//! * `point-in-time-export`: in half the seeds a client copies shards with point-in-time
//!   exports (the reads a collection snapshot is made of) while the others write; every copy
//!   equals its shard replayed to the copy's sequence number (see `export.rs`).
//! * `names`: a request naming a workload collection or the alias, invoked after its create or
//!   the alias was acknowledged, is never answered "no such collection", whichever node it
//!   reaches (names resolve at a metadata index the metadata leader confirmed).
//! * `atomic-replace`: in half the seeds a client recovers a collection again and again (fill
//!   a collection aside, replace the name with it); `strong` reads of the name see one
//!   generation whole, never a missing, half-filled or older one (see `replace.rs`; names are
//!   resolved at a metadata index the metadata leader confirmed, `node/name_barrier.rs`).
//! * `vector-files`: in the third of the seeds whose collections keep their vectors on disk,
//!   every replica keeps them in its machine's simulated file store, or on the heap where the
//!   machine has none (see `vector_files.rs`); the checkers above judge the contents.

mod check;
mod export;
mod field_index;
mod host;
mod indexing;
mod nemesis;
mod quantization;
mod vector_settings;
mod recovery;
mod replace;
mod snapshots;
mod vector_files;
mod workload;

use crate::config::{FaultProfile, SimConfig};
pub use host::run_node_world;
pub use indexing::SimIndexing;
pub use quantization::SimQuantization;
pub use vector_files::SimVectorFiles;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;
use vecraft_core::node::NodeBugs;
use vecraft_core::node::router::RouterPolicy;
use vecraft_core::vector::collection::Collection;

/// The node world's bug switches (the node's safety rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeBug {
    /// `strong` reads served by any replica.
    StrongReadAtFollower,
    /// `quorum` writes acknowledged before commit.
    QuorumAckBeforeCommit,
    /// Top-k merged without the id tie-break.
    MergeWithoutTieBreak,
    /// Boot recovery takes a WAL with corruption before valid records as whole: the groups
    /// come back undamaged with what survived and vote again at once (the driver's rule).
    TrustCorruptWal,
    /// A replica that installs a shard snapshot forgets the payload field indexes it declares
    /// (the driver's rule: the restored engine must declare what the snapshot's header says).
    RestoreDropsFieldIndexes,
    /// Approximate searches drop points whose indexing is deferred (the engine's rule: a
    /// stored point is searchable at once, the unindexed tail by exact scan).
    HideUnindexed,
    /// A Raft leader sleeps on its followers' echo of a quiesce mark's round number even after
    /// it sent them more than the marked heartbeats (which woke them): they then time out under
    /// it and depose it (the Raft rule in `raft/quiesce.rs`).
    SleepOnOvertakenMark,
    /// A sleeping Raft follower wakes on an old copy of its leader's heartbeat or append (a
    /// delayed or duplicated packet) while the leader sleeps on (the rule in `raft/quiesce.rs`).
    WakeOnStaleCopy,
    /// Searches on quantized codes return the code-order candidates with their approximate
    /// code scores (the engine's rule: candidates are rescored on the f32 vectors).
    SkipRescore,
    /// An on-disk vector store's growth keeps every row but the last (the store's rule: growth
    /// keeps every row; see `vector_files.rs`).
    VectorFileLosesRow,
    /// A Raft leader quiesces once its followers hold the whole log, whether or not they said
    /// they applied it (the rule in `raft/quiesce.rs`): its replica report keeps the apply lag
    /// it saw before the sleep.
    QuiesceIgnoresFollowerApply,
    /// A replica restored from a shard snapshot (at boot or by an install) takes the
    /// quantization the collection was created with, not the snapshot's (the driver's rule: the
    /// restored engine is the snapshot's, config included; see `vector_settings.rs`).
    RestoreRevertsQuantization,
    /// A shard export finishes when any round of changes ends, however many pages it took (the
    /// rule in `node/shard_export.rs`: only a round read in one page is one state): the copy
    /// mixes points read at different log positions, as a paged scroll does.
    ExportFinishesAnyRound,
    /// A restarted node whose engine snapshot is ahead of its surviving log (entries that rotted
    /// on the faulty disk after they were applied) takes the log's end as its applied index, and
    /// applies the entries in between again once repaired (the rule in `raft/node.rs`).
    RestartClampsApplied,
    /// Alias changes take effect only on the metadata group's leader (the rule in
    /// `node/machine.rs`: every node applies the metadata log, aliases included).
    AliasesOnlyOnMetaLeader,
    /// A recovery drops the collection, creates it again and fills it in place (what the
    /// server's snapshot recovery did before `ReplaceCollection`; see `replace.rs`).
    RecoverInPlace,
    /// Requests resolve collection names in the node's applied metadata as it stands, without
    /// a barrier read of the metadata leader's commit index (the rule in `node/name_barrier.rs`).
    NamesFromLocalMetadata,
}

impl NodeBug {
    /// Every switch.
    pub const ALL: [NodeBug; 17] = [
        NodeBug::StrongReadAtFollower,
        NodeBug::QuorumAckBeforeCommit,
        NodeBug::MergeWithoutTieBreak,
        NodeBug::TrustCorruptWal,
        NodeBug::RestoreDropsFieldIndexes,
        NodeBug::HideUnindexed,
        NodeBug::SleepOnOvertakenMark,
        NodeBug::WakeOnStaleCopy,
        NodeBug::SkipRescore,
        NodeBug::VectorFileLosesRow,
        NodeBug::QuiesceIgnoresFollowerApply,
        NodeBug::RestoreRevertsQuantization,
        NodeBug::ExportFinishesAnyRound,
        NodeBug::RestartClampsApplied,
        NodeBug::AliasesOnlyOnMetaLeader,
        NodeBug::RecoverInPlace,
        NodeBug::NamesFromLocalMetadata,
    ];

    /// The `--bug` value.
    pub fn flag(self) -> &'static str {
        match self {
            NodeBug::StrongReadAtFollower => "strong-read-at-follower",
            NodeBug::QuorumAckBeforeCommit => "quorum-ack-before-commit",
            NodeBug::MergeWithoutTieBreak => "merge-without-tie-break",
            NodeBug::TrustCorruptWal => "trust-corrupt-wal",
            NodeBug::RestoreDropsFieldIndexes => "restore-drops-field-indexes",
            NodeBug::HideUnindexed => "hide-unindexed",
            NodeBug::SleepOnOvertakenMark => "sleep-on-overtaken-mark",
            NodeBug::WakeOnStaleCopy => "wake-on-stale-copy",
            NodeBug::SkipRescore => "skip-rescore",
            NodeBug::VectorFileLosesRow => "vector-file-loses-row",
            NodeBug::QuiesceIgnoresFollowerApply => "quiesce-ignores-follower-apply",
            NodeBug::RestoreRevertsQuantization => "restore-reverts-quantization",
            NodeBug::ExportFinishesAnyRound => "export-finishes-any-round",
            NodeBug::RestartClampsApplied => "restart-clamps-applied",
            NodeBug::AliasesOnlyOnMetaLeader => "aliases-only-on-meta-leader",
            NodeBug::RecoverInPlace => "recover-in-place",
            NodeBug::NamesFromLocalMetadata => "names-from-local-metadata",
        }
    }

    /// Parses a `--bug` value.
    pub fn parse(s: &str) -> Option<NodeBug> {
        NodeBug::ALL.into_iter().find(|b| b.flag() == s)
    }

    fn switches(self) -> NodeBugs {
        let mut b = NodeBugs::default();
        match self {
            NodeBug::StrongReadAtFollower => b.strong_read_at_follower = true,
            NodeBug::QuorumAckBeforeCommit => b.quorum_ack_before_commit = true,
            NodeBug::MergeWithoutTieBreak => b.merge_without_tie_break = true,
            NodeBug::AliasesOnlyOnMetaLeader => b.aliases_only_on_meta_leader = true,
            NodeBug::NamesFromLocalMetadata => b.names_from_local_metadata = true,
            NodeBug::TrustCorruptWal
            | NodeBug::RestoreDropsFieldIndexes
            | NodeBug::HideUnindexed
            | NodeBug::SleepOnOvertakenMark
            | NodeBug::WakeOnStaleCopy
            | NodeBug::SkipRescore
            | NodeBug::VectorFileLosesRow
            | NodeBug::QuiesceIgnoresFollowerApply
            | NodeBug::RestoreRevertsQuantization
            | NodeBug::ExportFinishesAnyRound
            | NodeBug::RestartClampsApplied
            | NodeBug::RecoverInPlace => {}
        }
        b
    }
}

/// Everything a node-world run is, derived from its seed.
#[derive(Clone, Debug)]
pub struct NodeWorldConfig {
    /// The seed.
    pub seed: u64,
    /// Network and disk parameters (the Raft world's swarm derivation).
    pub sim: SimConfig,
    /// Shards of the first collection.
    pub shards: u32,
    /// Its replicas per shard.
    pub replication_factor: u32,
    /// A second collection beside it, (shards, replicas per shard), if any: its replication
    /// factor ranges over 1 to every node (up to 5), and clients write and read both.
    pub second: Option<(u32, u32)>,
    /// Clients.
    pub clients: usize,
    /// Points each client owns (it is their only writer).
    pub points_per_client: u64,
    /// Router policy of every node.
    pub router: RouterPolicy,
    /// Mean time between crashes (`None`: no crashes).
    pub crash_every: Option<Duration>,
    /// Mean time between partition changes.
    pub partition_every: Option<Duration>,
    /// Mean time between process pauses (`None`: no pauses).
    pub pause_every: Option<Duration>,
    /// Share of crashes aimed at a shard leader.
    pub crash_leader_share: f64,
    /// Write-ack level weights (leader, one_copy, quorum).
    pub ack_weights: [u32; 3],
    /// Apply cost per point and dimension (virtual time).
    pub apply_per_point_dim: Duration,
    /// Shard groups ask for a snapshot after this many applied entries (`u64::MAX`: never).
    pub snapshot_entries: u64,
    /// Entries kept behind a snapshot (few: lagging replicas then need an install).
    pub snapshot_keep_entries: u64,
    /// The register workload (many writers per key, checked for linearizability) instead of
    /// the vector workload.
    pub register: bool,
    /// Keys of the register workload.
    pub register_keys: u64,
    /// Bug switches.
    pub bugs: NodeBugs,
    /// Storage faults (see [`StorageFaults`]).
    pub storage: StorageFaults,
    /// Payload field indexes: a client declares and drops keyword and integer indexes while
    /// writes and filtered reads run (see `field_index.rs`).
    pub field_indexes: bool,
    /// The `restore-drops-field-indexes` bug switch.
    pub restore_drops_field_indexes: bool,
    /// Deferred indexing on every replica (see `indexing.rs`); `None` links at insert.
    pub indexing: Option<SimIndexing>,
    /// The `sleep-on-overtaken-mark` bug switch (a Raft rule, set in every group's config).
    pub sleep_on_overtaken_mark: bool,
    /// The `wake-on-stale-copy` bug switch (a Raft rule, set in every group's config).
    pub wake_on_stale_copy: bool,
    /// The `quiesce-ignores-follower-apply` bug switch (a Raft rule, set in every group's config).
    pub quiesce_ignores_follower_apply: bool,
    /// The `restart-clamps-applied` bug switch.
    pub restart_clamps_applied: bool,
    /// Chance that a machine crashes right after it took an engine snapshot while log writes
    /// were still in flight (in half the seeds with crashes).
    pub crash_after_snapshot: Option<f64>,
    /// Quantized collections, with a small training threshold on every replica (see
    /// `quantization.rs`); `None` quantizes nothing.
    pub quantization: Option<SimQuantization>,
    /// Quantization and `on_disk` switches while the world runs (quantized seeds only; see
    /// `vector_settings.rs`).
    pub settings_switches: bool,
    /// The `restore-reverts-quantization` bug switch.
    pub restore_reverts_quantization: bool,
    /// Collections created `on_disk`, each replica's vectors in its machine's simulated file
    /// store (see `vector_files.rs`); `None` keeps them on the heap.
    pub vector_files: Option<SimVectorFiles>,
    /// Client 1 copies shards with point-in-time exports while the world runs (see `export.rs`).
    pub exports: bool,
    /// The `export-finishes-any-round` bug switch.
    pub export_finishes_any_round: bool,
    /// Client 2 recovers a collection again and again by replacing it (see `replace.rs`).
    pub replaces: bool,
    /// The `recover-in-place` bug switch.
    pub recover_in_place: bool,
}

/// The node world's storage faults. Every disk may tear the write in flight at a crash; one
/// seeded *faulty* disk (only where every group has at least three voters, so it is always a
/// minority) also rots bits of records it had acknowledged. Both are detectable: a torn tail is
/// cut, and a flip is only placed in a record followed by another, so recovery reports
/// corruption and the node's groups come back damaged (no vote until a leader repairs them).
/// Faults no local check can see (a lying fsync, a flip in the last record, a misdirected write
/// over a group's last record) run in the Raft world, whose checkers account for the loss.
#[derive(Clone, Copy, Debug, Default)]
pub struct StorageFaults {
    /// Chance that a crash tears the first unsynced write.
    pub torn_write: f64,
    /// The machine (index) whose disk rots, if any.
    pub faulty_disk: Option<usize>,
    /// Mean time between bit flips on the faulty disk.
    pub bit_flip_every: Option<Duration>,
    /// The `trust-corrupt-wal` bug switch.
    pub trust_corrupt_wal: bool,
}

impl StorageFaults {
    /// Drawn from the seed on a stream of its own (the rest of the world's derivation does not
    /// shift when these change).
    fn from_seed(seed: u64, nodes: usize, replication_factor: u32) -> StorageFaults {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5707_A6E0_D15C_0003);
        let torn_write = if rng.random_bool(0.6) { rng.random_range(0.2..=1.0) } else { 0.0 };
        let faulty = replication_factor >= 3 && rng.random_bool(0.5);
        let faulty_disk = faulty.then(|| rng.random_range(0..nodes));
        let bit_flip_every = faulty.then(|| Duration::from_millis(rng.random_range(300..=3_000)));
        StorageFaults { torn_write, faulty_disk, bit_flip_every, trust_corrupt_wal: false }
    }
}

impl NodeWorldConfig {
    /// The register workload's world of `seed`: the same world, every client writing and reading
    /// every key, the history judged by the linearizability checker.
    pub fn register_from_seed(seed: u64, bug: Option<NodeBug>) -> NodeWorldConfig {
        NodeWorldConfig { register: true, ..NodeWorldConfig::from_seed(seed, bug) }
    }

    /// The world of `seed` (with `bug` switched on, if any).
    pub fn from_seed(seed: u64, bug: Option<NodeBug>) -> NodeWorldConfig {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0DE0_F00D_0000_0002);
        let mut sim = SimConfig::from_seed(seed, FaultProfile::Swarm);
        sim.nodes = [3, 3, 4, 5][rng.random_range(0..4)];
        sim.fault_phase = Duration::from_millis(rng.random_range(6_000..=12_000));
        sim.liveness_phase = Duration::from_millis(8_000);
        // Replays of old packets stay on (the swarm's rate): they reach only the incarnation
        // they were sent to, as over a connection (see `host.rs`).
        let replication_factor = [1, 2, 3, 3, 3][rng.random_range(0..5)].min(sim.nodes as u32);
        let router = [RouterPolicy::LocalFirst, RouterPolicy::RoundRobin, RouterPolicy::LeastLoaded, RouterPolicy::LowestLatency]
            [rng.random_range(0..4)];
        let second = {
            let mut r2 = ChaCha8Rng::seed_from_u64(seed ^ 0x5EC0_4D00_C011_0004);
            r2.random_bool(0.6).then(|| (r2.random_range(1..=3), r2.random_range(1..=sim.nodes as u32)))
        };
        let crash_every = rng.random_bool(0.7).then(|| Duration::from_millis(rng.random_range(800..=4_000)));
        let partition_every = rng.random_bool(0.7).then(|| Duration::from_millis(rng.random_range(800..=4_000)));
        NodeWorldConfig {
            seed,
            shards: rng.random_range(1..=4),
            replication_factor,
            second,
            clients: rng.random_range(3..=6),
            points_per_client: rng.random_range(2..=6),
            router,
            crash_every,
            partition_every,
            crash_leader_share: rng.random_range(0.3..=0.9),
            pause_every: rng.random_bool(0.5).then(|| Duration::from_millis(rng.random_range(1_000..=5_000))),
            ack_weights: [rng.random_range(0..=3), rng.random_range(0..=3), rng.random_range(2..=6)],
            apply_per_point_dim: Duration::from_nanos(rng.random_range(200..=5_000)),
            snapshot_entries: if rng.random_bool(0.7) { rng.random_range(10..=120) } else { u64::MAX },
            snapshot_keep_entries: rng.random_range(0..=10),
            register: false,
            register_keys: rng.random_range(1..=4),
            bugs: bug.map(NodeBug::switches).unwrap_or_default(),
            storage: StorageFaults {
                trust_corrupt_wal: bug == Some(NodeBug::TrustCorruptWal),
                ..StorageFaults::from_seed(seed, sim.nodes, second.map_or(replication_factor, |(_, rf)| rf.min(replication_factor)))
            },
            // On a stream of its own, so the rest of the derivation does not shift; always on
            // with the bug that needs it.
            field_indexes: ChaCha8Rng::seed_from_u64(seed ^ 0xF1E1_D1DE_0000_0005).random_bool(0.5)
                || bug == Some(NodeBug::RestoreDropsFieldIndexes),
            restore_drops_field_indexes: bug == Some(NodeBug::RestoreDropsFieldIndexes),
            indexing: SimIndexing::from_seed(seed, bug == Some(NodeBug::HideUnindexed)),
            sleep_on_overtaken_mark: bug == Some(NodeBug::SleepOnOvertakenMark),
            wake_on_stale_copy: bug == Some(NodeBug::WakeOnStaleCopy),
            quiesce_ignores_follower_apply: bug == Some(NodeBug::QuiesceIgnoresFollowerApply),
            restart_clamps_applied: bug == Some(NodeBug::RestartClampsApplied),
            crash_after_snapshot: {
                let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0xC2A5_4AF7_E250_000C);
                let on = crash_every.is_some() && r.random_bool(0.5);
                on.then(|| r.random_range(0.05..=0.3))
            },
            quantization: SimQuantization::from_seed(
                seed,
                bug == Some(NodeBug::SkipRescore) || bug == Some(NodeBug::RestoreRevertsQuantization),
                bug == Some(NodeBug::SkipRescore),
            ),
            // Its own stream again; in half the quantized seeds, and always with its bug.
            settings_switches: ChaCha8Rng::seed_from_u64(seed ^ 0x0A47_C4A6_E000_0009).random_bool(0.5)
                || bug == Some(NodeBug::RestoreRevertsQuantization),
            restore_reverts_quantization: bug == Some(NodeBug::RestoreRevertsQuantization),
            vector_files: SimVectorFiles::from_seed(seed, bug == Some(NodeBug::VectorFileLosesRow)),
            // Its own stream; in half the seeds, and always with its bug.
            exports: ChaCha8Rng::seed_from_u64(seed ^ 0xE4B0_47C0_B1E5_000B).random_bool(0.5)
                || bug == Some(NodeBug::ExportFinishesAnyRound),
            export_finishes_any_round: bug == Some(NodeBug::ExportFinishesAnyRound),
            // Its own stream; in half the seeds, and always with its bug.
            replaces: ChaCha8Rng::seed_from_u64(seed ^ 0x5E9A_CE00_0000_000D).random_bool(0.5)
                || bug == Some(NodeBug::RecoverInPlace)
                || bug == Some(NodeBug::NamesFromLocalMetadata),
            recover_in_place: bug == Some(NodeBug::RecoverInPlace),
            sim,
        }
    }

    /// The `restore-reverts-quantization` bug on an engine just restored from a snapshot; true
    /// when it changed the engine (reported as a fault, to compare with what the checkers catch).
    pub(super) fn restored(&self, engine: &mut Collection) -> bool {
        self.restore_reverts_quantization
            && engine.set_quantization(self.quantization.map(|q| q.config)).unwrap_or(false)
    }

    /// Gives a replica's engine on machine `m` the seed's local policies (deferred indexing,
    /// quantizer training, where `on_disk` vectors live): every replica gets them, whether
    /// created, restored at boot or installed from a snapshot, since none travels in the log or
    /// in snapshots.
    pub(super) fn local_policies(&self, m: usize, engine: &mut Collection) {
        if let Some(ix) = self.indexing {
            engine.set_indexing_policy(ix.policy());
        }
        if let Some(q) = self.quantization {
            engine.set_quantizer_policy(q.policy());
        }
        self.place_vectors(m, engine);
    }

    /// Moves an `on_disk` engine's vectors into machine `m`'s file store, if it has one and they
    /// are not there yet (as the runtime's shard engines do when hosting an engine, and after an
    /// apply that switched `on_disk` on).
    pub(super) fn place_vectors(&self, m: usize, engine: &mut Collection) {
        if engine.config().on_disk
            && !engine.vector_store().is_external()
            && let Some(provider) = self.vector_files.and_then(|files| files.provider(m))
        {
            engine.set_vector_store(provider);
        }
    }
}

/// What a node-world run did and found.
#[derive(Clone, Debug, Default)]
pub struct NodeWorldReport {
    /// The seed.
    pub seed: u64,
    /// Nodes, shards, replication factor (of the first collection).
    pub shape: (usize, u32, u32),
    /// The second collection's shards and replication factor, if any.
    pub second: Option<(u32, u32)>,
    /// Raft groups hosted across all nodes at the end (replicas, metadata included).
    pub groups: usize,
    /// Operations by kind, then by level, with outcomes ("ok", "in-doubt", "failed").
    pub ops: BTreeMap<String, u64>,
    /// Largest `commit - applied` an `eventual` read reported.
    pub max_eventual_lag: u64,
    /// Longest time since its leader an `eventual` read's replica reported.
    pub max_eventual_age: Duration,
    /// Fault counters.
    pub faults: BTreeMap<&'static str, u64>,
    /// Violations, each prefixed by the checker that found it.
    pub violations: Vec<String>,
    /// Trace hash (same seed, same hash).
    pub trace: String,
    /// Events processed.
    pub events: u64,
}

impl NodeWorldReport {
    /// Whether every checker passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Whether a violation came from `checker`.
    pub fn caught_by(&self, checker: &str) -> bool {
        self.violations.iter().any(|v| v.starts_with(&format!("{checker}:")))
    }

    /// One line for the command line.
    pub fn summary(&self) -> String {
        let ops: Vec<String> = self.ops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let faults: Vec<String> = self.faults.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "seed {} nodes={} shards={} rf={}{} groups={} events={} eventual-lag-max={} eventual-age-max={:?} | {} | faults: {} | {}",
            self.seed,
            self.shape.0,
            self.shape.1,
            self.shape.2,
            self.second.map(|(s, rf)| format!(" second: shards={s} rf={rf}")).unwrap_or_default(),
            self.groups,
            self.events,
            self.max_eventual_lag,
            self.max_eventual_age,
            ops.join(" "),
            faults.join(" "),
            if self.passed() { "PASS".to_string() } else { format!("FAIL: {}", self.violations.join("; ")) }
        )
    }
}
