//! A three-node Raft cluster whose whole schedule is chosen by the fuzzer: which message is
//! delivered, dropped or duplicated, whose clock ticks, which writes become durable, who crashes
//! and restarts from its acknowledged records, and what clients propose, read and transfer.
//!
//! The single-node target cannot see cluster-level safety; this one checks it after every step:
//! election safety (at most one leader per term), one granted vote per voter and term across
//! crashes, log matching of committed prefixes (every node's committed entries agree with every
//! other's), and state machine safety (no two nodes ever apply different entries at an index),
//! plus each incarnation's own invariants through `NodeWatch`.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::raft::{
    DurableState, Entry, EntryPayload, LocalReplica, Message, MessageBody, PersistRecord, RaftConfig, RaftInput,
    RaftOutput, ReadMode, ReplicatedStateMachine, Role, Term, decode_wal, encode_wal_frame,
};
use vecraft_fuzz::raft_check::NodeWatch;
use vecraft_fuzz::stats::Counter;

static LEADER: Counter = Counter::new("raft_cluster", "inputs that elected a leader");
static COMMITTED: Counter = Counter::new("raft_cluster", "inputs that committed a client command");
static RESTARTED_LEADER: Counter = Counter::new("raft_cluster", "inputs with a leader after a restart");

/// The trivial replicated state machine: a running hash of what was applied, so replicas that
/// applied different commands answer reads differently.
#[derive(Default)]
struct Chain(u64);

impl ReplicatedStateMachine for Chain {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        for &b in command {
            self.0 = self.0.rotate_left(5) ^ b as u64 ^ index;
        }
        self.0.to_le_bytes().to_vec()
    }
    fn query(&self, _: &[u8]) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0 = u64::from_le_bytes(bytes.try_into().map_err(|_| "a chain snapshot is 8 bytes".to_string())?);
        Ok(())
    }
}

#[derive(Arbitrary, Debug)]
enum Step {
    Deliver(u8),
    Duplicate(u8),
    Drop(u8),
    Tick { node: u8, ms: u16 },
    /// Make `count` more of the node's pending writes durable and acknowledge them.
    Persist { node: u8, count: u8 },
    Crash(u8),
    Restart(u8),
    /// Crash and restart at once: the common case, and the one that loses unacknowledged writes
    /// of a node that keeps taking part.
    Bounce(u8),
    Propose { node: u8, byte: u8 },
    Read { node: u8, lease: bool },
    Transfer { node: u8, to: u8 },
    /// A few rounds of a healthy network: ack every write, deliver every message, tick everyone.
    Settle { rounds: u8 },
}

struct Node {
    id: NodeId,
    replica: Option<LocalReplica<Chain>>,
    now: Time,
    /// Records acknowledged as durable: what survives a crash.
    disk: Vec<PersistRecord>,
    /// Written but not yet acknowledged; lost in a crash.
    pending: Vec<(u64, PersistRecord)>,
    watch: Option<NodeWatch>,
    restarted: bool,
}

#[derive(Default)]
struct Checks {
    leaders: BTreeMap<Term, NodeId>,
    /// (voter, term) -> candidate, from granted vote responses on the wire.
    grants: BTreeMap<(NodeId, Term), NodeId>,
    /// Longest committed prefix any node has shown.
    committed: Vec<Entry>,
    /// Entry applied at each index by any node.
    applied: BTreeMap<u64, Entry>,
    led: bool,
    led_after_restart: bool,
    committed_command: bool,
}

struct Cluster {
    nodes: Vec<Node>,
    net: Vec<Message>,
    checks: Checks,
    next_id: u64,
}

fn config(id: NodeId) -> RaftConfig {
    let mut cfg = RaftConfig::new(id, 1, vec![1, 2, 3], 7);
    cfg.bugs = vecraft_fuzz::inject::injected_bugs();
    cfg
}

impl Cluster {
    fn new() -> Self {
        let nodes = (1..=3)
            .map(|id| {
                let replica = LocalReplica::new(config(id), Chain::default(), DurableState::default(), 0, Time::ZERO);
                let watch = NodeWatch::new(&replica);
                Node { id, replica: Some(replica), now: Time::ZERO, disk: vec![], pending: vec![], watch: Some(watch), restarted: false }
            })
            .collect();
        Cluster { nodes, net: vec![], checks: Checks::default(), next_id: 0 }
    }

    fn step(&mut self, k: usize, input: RaftInput) {
        let node = &mut self.nodes[k];
        let Some(replica) = node.replica.as_mut() else { return };
        let mut out = Vec::new();
        replica.step(node.now, input, &mut out);
        node.watch.as_mut().expect("live nodes are watched").observe(replica, &out);
        for o in out {
            match o {
                RaftOutput::Send(m) => {
                    if let MessageBody::VoteResponse { granted: true } = m.body {
                        let first = *self.checks.grants.entry((m.from, m.term)).or_insert(m.to);
                        assert_eq!(first, m.to, "node {} granted term {} to {first} and {}", m.from, m.term, m.to);
                    }
                    if (1..=3).contains(&m.to) && self.net.len() < 512 {
                        self.net.push(m);
                    }
                }
                RaftOutput::Persist { seq, record } => node.pending.push((seq, record)),
                RaftOutput::Apply { entry, .. } => {
                    let first = self.checks.applied.entry(entry.index).or_insert_with(|| entry.clone());
                    assert_eq!(*first, entry, "two nodes applied different entries at {}", entry.index);
                }
                _ => {}
            }
        }
        self.check_cluster();
    }

    fn check_cluster(&mut self) {
        for node in &self.nodes {
            let (Some(r), Some(w)) = (&node.replica, &node.watch) else { continue };
            if r.role() == Role::Leader {
                let first = *self.checks.leaders.entry(r.term()).or_insert(node.id);
                assert_eq!(first, node.id, "two leaders in term {}: {first} and {}", r.term(), node.id);
                self.checks.led = true;
                self.checks.led_after_restart |= node.restarted;
            }
            let known = &mut self.checks.committed;
            for (a, b) in w.committed().iter().zip(known.iter()) {
                assert_eq!(a, b, "node {} committed a different entry at {}", node.id, a.index);
            }
            if w.committed().len() > known.len() {
                known.extend_from_slice(&w.committed()[known.len()..]);
            }
        }
        let cmd = |e: &Entry| matches!(e.payload, EntryPayload::Command(_));
        self.checks.committed_command |= self.checks.committed.iter().any(cmd);
    }

    fn persist(&mut self, k: usize, count: usize) {
        let node = &mut self.nodes[k];
        if node.replica.is_none() || node.pending.is_empty() {
            return;
        }
        let n = count.clamp(1, node.pending.len());
        let seq = node.pending[n - 1].0;
        node.disk.extend(node.pending.drain(..n).map(|(_, r)| r));
        self.step(k, RaftInput::Persisted { seq });
    }

    fn crash(&mut self, k: usize) {
        let node = &mut self.nodes[k];
        node.replica = None;
        node.watch = None;
        node.pending.clear();
    }

    /// Rebuilds the node from its acknowledged records, through the real WAL encoding and
    /// recovery path, with an empty state machine (so it re-applies from index 1).
    fn restart(&mut self, k: usize) {
        let node = &mut self.nodes[k];
        if node.replica.is_some() {
            return;
        }
        let wal: Vec<u8> = node.disk.iter().flat_map(encode_wal_frame).collect();
        let durable = DurableState::recover(&decode_wal(&wal), 1);
        assert!(!durable.damaged, "a clean log of acknowledged records recovers undamaged");
        let replica = LocalReplica::new(config(node.id), Chain::default(), durable, 0, node.now);
        node.watch = Some(NodeWatch::new(&replica));
        node.replica = Some(replica);
        node.restarted = true;
        self.check_cluster();
    }

    fn deliver(&mut self, m: Message) {
        let k = (m.to - 1) as usize;
        self.step(k, RaftInput::Message(m));
    }

    fn tick(&mut self, k: usize, ms: u64) {
        let node = &mut self.nodes[k];
        node.now = node.now + Duration::from_millis(ms);
        self.step(k, RaftInput::Tick);
    }

    fn run(&mut self, step: Step) {
        let pick = |n: u8| n as usize % 3;
        match step {
            Step::Deliver(i) if !self.net.is_empty() => {
                let m = self.net.remove(i as usize % self.net.len());
                self.deliver(m);
            }
            Step::Duplicate(i) if !self.net.is_empty() => {
                let m = self.net[i as usize % self.net.len()].clone();
                self.deliver(m);
            }
            Step::Drop(i) if !self.net.is_empty() => {
                self.net.remove(i as usize % self.net.len());
            }
            Step::Deliver(_) | Step::Duplicate(_) | Step::Drop(_) => {}
            Step::Tick { node, ms } => self.tick(pick(node), ms as u64),
            Step::Persist { node, count } => self.persist(pick(node), count as usize % 4 + 1),
            Step::Crash(node) => self.crash(pick(node)),
            Step::Restart(node) => self.restart(pick(node)),
            Step::Bounce(node) => {
                self.crash(pick(node));
                self.restart(pick(node));
            }
            Step::Propose { node, byte } => {
                self.next_id += 1;
                let command = vec![byte, self.next_id as u8].into();
                self.step(pick(node), RaftInput::Propose { id: self.next_id, command });
            }
            Step::Read { node, lease } => {
                self.next_id += 1;
                let (id, mode) = (self.next_id, if lease { ReadMode::Lease } else { ReadMode::ReadIndex });
                let k = pick(node);
                let n = &mut self.nodes[k];
                if let Some(r) = n.replica.as_mut() {
                    let mut out = Vec::new();
                    r.read(n.now, id, vec![], mode, &mut out);
                    n.watch.as_mut().expect("live").observe(r, &out);
                    // Reads only answer or send heartbeats; feed the sends back to the network.
                    self.net.extend(out.into_iter().filter_map(|o| match o {
                        RaftOutput::Send(m) if (1..=3).contains(&m.to) => Some(m),
                        _ => None,
                    }));
                }
            }
            Step::Transfer { node, to } => self.step(pick(node), RaftInput::TransferLeadership { to: to as u64 % 3 + 1 }),
            Step::Settle { rounds } => {
                for _ in 0..rounds % 8 + 1 {
                    for k in 0..3 {
                        self.persist(k, usize::MAX);
                    }
                    for m in std::mem::take(&mut self.net) {
                        self.deliver(m);
                    }
                    for k in 0..3 {
                        self.tick(k, 120);
                    }
                }
            }
        }
    }
}

fuzz_target!(|steps: Vec<Step>| {
    let mut cluster = Cluster::new();
    for step in steps.into_iter().take(200) {
        cluster.run(step);
    }
    if cluster.checks.led {
        LEADER.hit();
    }
    if cluster.checks.committed_command {
        COMMITTED.hit();
    }
    if cluster.checks.led_after_restart {
        RESTARTED_LEADER.hit();
    }
    vecraft_fuzz::stats::input_done(&[&LEADER, &COMMITTED, &RESTARTED_LEADER]);
});
