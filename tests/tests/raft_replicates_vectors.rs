//! Cross-crate: Raft (core::raft) replicating the vector engine (core::vector).
//!
//! The vector engine is a deterministic state machine; Raft delivers the same commands in the same
//! order to every replica. So after replication over a lossy, reordering network with a crash in
//! the middle, every replica must hold byte-identical collections (equal blake3 digests) and answer
//! exact searches identically. This is the shape the Raft-backed collection of the runtime takes.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use vecraft_core::contract::{StateMachine, Time};
use vecraft_core::raft::{
    DurableState, EntryPayload, PersistRecord, RaftConfig, RaftInput, RaftNode, RaftOutput, Role,
};
use vecraft_core::vector::collection::{CollectionConfig, Distance, PointSelector, PointsOp, SearchRequest};
use vecraft_core::vector::engine::{Command, VectorEngine};
use vecraft_core::vector::point::{PointId, PointStruct};
use vecraft_core::wire;

/// The vector engine as Raft's replicated state machine, applied by this test's driver from
/// Raft's `Apply` outputs (as the real drivers do): commands are postcard-encoded [`Command`]s; a
/// rejected command is a deterministic no-op on every replica.
#[derive(Default)]
struct VectorReplica {
    engine: VectorEngine,
    rejected: u64,
}

impl VectorReplica {
    fn apply(&mut self, command: &[u8]) -> bool {
        let ok = wire::decode::<Command>(command).ok().map(|c| self.engine.apply(c).is_ok()).unwrap_or(false);
        if !ok {
            self.rejected += 1;
        }
        ok
    }
}

struct Node {
    raft: Option<RaftNode>,
    /// Rebuilt from the log at every restart (no snapshot here, so the applied index starts at 0).
    replica: VectorReplica,
    synced: Vec<PersistRecord>,
    unsynced: Vec<(u64, PersistRecord)>,
}

struct Cluster {
    nodes: Vec<Node>,
    inflight: Vec<(u64, usize, RaftInput)>,
    now: u64,
    rng: ChaCha8Rng,
    answered: BTreeMap<u64, bool>,
}

const VOTERS: [u64; 3] = [1, 2, 3];

impl Cluster {
    fn new(seed: u64) -> Cluster {
        let mut c = Cluster { nodes: Vec::new(), inflight: Vec::new(), now: 0, rng: ChaCha8Rng::seed_from_u64(seed), answered: BTreeMap::new() };
        for i in 0..3 {
            c.nodes.push(Node { raft: None, replica: VectorReplica::default(), synced: Vec::new(), unsynced: Vec::new() });
            c.boot(i);
        }
        c
    }

    fn boot(&mut self, i: usize) {
        let durable = DurableState::replay(&self.nodes[i].synced).expect("our own records replay");
        let cfg = RaftConfig::new(VOTERS[i], 1, VOTERS.to_vec(), 3 + self.now);
        self.nodes[i].replica = VectorReplica::default();
        self.nodes[i].raft = Some(RaftNode::new(cfg, durable, 0, Time(self.now)));
    }

    fn crash(&mut self, i: usize) {
        self.nodes[i].raft = None;
        self.nodes[i].unsynced.clear();
        self.inflight.retain(|(_, to, input)| *to != i || matches!(input, RaftInput::Message(_)));
    }

    fn step(&mut self, i: usize, input: RaftInput) {
        if self.nodes[i].raft.is_none() {
            return;
        }
        if let RaftInput::Persisted { seq } = input {
            let node = &mut self.nodes[i];
            let n = node.unsynced.iter().take_while(|(s, _)| *s <= seq).count();
            node.synced.extend(node.unsynced.drain(..n).map(|(_, r)| r));
        }
        let mut out = Vec::new();
        self.nodes[i].raft.as_mut().expect("up").step(Time(self.now), input, &mut out);
        let mut applied = None;
        for o in out {
            match o {
                RaftOutput::Send(m) => {
                    if self.rng.random_bool(0.1) {
                        continue; // lost
                    }
                    let at = self.now + self.rng.random_range(1_000_000..20_000_000);
                    self.inflight.push((at, (m.to - 1) as usize, RaftInput::Message(m)));
                }
                RaftOutput::Persist { seq, record } => {
                    self.nodes[i].unsynced.push((seq, record));
                    let at = self.now + self.rng.random_range(100_000..5_000_000);
                    self.inflight.push((at, i, RaftInput::Persisted { seq }));
                }
                RaftOutput::Respond(r) => {
                    assert!(r.result.is_err(), "Raft itself answers only errors");
                    self.answered.insert(r.id, false);
                }
                RaftOutput::Apply { entry, request } => {
                    let ok = match &entry.payload {
                        EntryPayload::Command(cmd) => self.nodes[i].replica.apply(cmd),
                        EntryPayload::Noop | EntryPayload::ConfChange(_) => true,
                    };
                    if let Some(id) = request {
                        self.answered.insert(id, ok);
                    }
                    applied = Some(entry.index);
                }
                RaftOutput::ReadReady { .. } => unreachable!("this test makes no reads"),
                RaftOutput::MembershipChanged { .. } => unreachable!("this test changes no membership"),
                RaftOutput::TakeSnapshot { .. }
                | RaftOutput::ReadSnapshotChunk { .. }
                | RaftOutput::StageSnapshotChunk { .. }
                | RaftOutput::InstallSnapshot { .. } => {
                    unreachable!("this test stays far below the default compaction thresholds")
                }
            }
        }
        if let Some(index) = applied {
            self.step(i, RaftInput::Applied { index });
        }
    }

    /// Advances virtual time by `ms`, ticking every node every 10 ms and delivering due events.
    fn run_for(&mut self, ms: u64) {
        let end = self.now + ms * 1_000_000;
        while self.now < end {
            self.now += 10_000_000;
            self.inflight.sort_by_key(|(at, to, _)| (*at, *to));
            let due: Vec<_> = {
                let split = self.inflight.partition_point(|(at, _, _)| *at <= self.now);
                self.inflight.drain(..split).collect()
            };
            for (_, to, input) in due {
                self.step(to, input);
            }
            for i in 0..3 {
                self.step(i, RaftInput::Tick);
            }
        }
    }

    fn leader(&self) -> Option<usize> {
        (0..3).find(|&i| self.nodes[i].raft.as_ref().is_some_and(|r| r.role() == Role::Leader))
    }

    /// Proposes `cmd` until some leader answers it (retrying across leader changes).
    fn replicate(&mut self, id: u64, cmd: &Command) -> bool {
        let bytes = wire::encode(cmd).expect("commands encode");
        for attempt in 0..200 {
            if let Some(l) = self.leader() {
                let rid = id * 1000 + attempt;
                self.step(l, RaftInput::Propose { id: rid, command: bytes.clone().into() });
                for _ in 0..30 {
                    self.run_for(20);
                    if let Some(&ok) = self.answered.get(&rid) {
                        return ok;
                    }
                }
            } else {
                self.run_for(100);
            }
        }
        panic!("command {id} never replicated");
    }
}

fn point(id: u64, rng: &mut ChaCha8Rng) -> PointStruct {
    PointStruct { id: PointId::Num(id), vector: (0..8).map(|_| rng.random_range(-1.0..1.0)).collect(), payload: Default::default() }
}

#[test]
fn replicas_converge_to_identical_collections_through_loss_and_a_crash() {
    let mut c = Cluster::new(11);
    let mut data = ChaCha8Rng::seed_from_u64(5);
    let create = Command::CreateCollection { name: "docs".into(), config: CollectionConfig::new(8, Distance::Cosine) };
    assert!(c.replicate(1, &create));
    for batch in 0..20u64 {
        let points = (0..10).map(|k| point(batch * 10 + k, &mut data)).collect();
        let cmd = Command::Points { collection: "docs".into(), op: PointsOp::Upsert(points) };
        assert!(c.replicate(10 + batch, &cmd), "upsert batch {batch}");
        if batch == 8 {
            // Crash a follower mid-stream; it comes back from its synced records only.
            let victim = (0..3).find(|&i| Some(i) != c.leader()).expect("a follower");
            c.crash(victim);
            c.run_for(300);
            c.boot(victim);
        }
    }
    let delete = Command::Points {
        collection: "docs".into(),
        op: PointsOp::Delete(PointSelector::Ids((0..50).map(PointId::Num).collect())),
    };
    assert!(c.replicate(100, &delete));
    // A command every replica must reject identically (wrong dimension): the log stays in step.
    let bad = Command::Points { collection: "docs".into(), op: PointsOp::Upsert(vec![PointStruct { id: PointId::Num(999), vector: vec![1.0; 3], payload: Default::default() }]) };
    assert!(!c.replicate(101, &bad));
    c.run_for(2_000);

    let commit = c.nodes.iter().map(|n| n.raft.as_ref().expect("all up").commit_index()).max().unwrap();
    for n in &c.nodes {
        let r = n.raft.as_ref().expect("all up");
        assert_eq!(r.applied_index(), commit, "node {} has not applied everything", r.id());
        assert_eq!(n.replica.rejected, 1, "node {}: exactly the bad command was rejected", r.id());
    }
    let replicas: Vec<&VectorReplica> = c.nodes.iter().map(|n| &n.replica).collect();
    let digests: Vec<[u8; 32]> = replicas.iter().map(|r| r.engine.digest()).collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "replicas diverged: {digests:?}");
    let col = replicas[0].engine.collection("docs").expect("created");
    assert_eq!(col.count(None).expect("count"), 150);

    let mut query = SearchRequest::new(vec![0.5; 8], 10);
    query.exact = true;
    let answers: Vec<Vec<(PointId, u32)>> = replicas
        .iter()
        .map(|r| {
            let hits = r.engine.collection("docs").unwrap().search(&query).unwrap();
            hits.into_iter().map(|h| (h.id, h.score.to_bits())).collect()
        })
        .collect();
    assert_eq!(answers[0].len(), 10);
    assert!(answers.iter().all(|a| a == &answers[0]), "exact search differs between replicas");
    assert!(answers[0].iter().all(|(id, _)| !matches!(id, PointId::Num(n) if *n < 50)), "a deleted point came back");
}
