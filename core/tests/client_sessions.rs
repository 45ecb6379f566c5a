//! Client sessions through a real Raft group: registration through the log, a retried proposal
//! answered from the table on the old and on a new leader, a late copy refused, eviction at the
//! exact capacity bound, and a restarted replica rebuilding the same table from its log.
//!
//! The state machine is a counter whose command adds to it, so a double apply is visible in its
//! value. The driver is deliberately tiny: messages and disk acknowledgements are delivered at
//! once (the interesting part is the state machine, not message timing), and a node can be cut
//! off or crashed.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::raft::{
    ClientSessions, DurableState, LocalReplica, LogIndex, PersistRecord, RaftConfig, RaftInput, RaftOutput,
    ReplicatedStateMachine, RequestId, Role, SessionCommand, SessionConfig, SessionId, SessionOutcome, SessionRequest,
};

/// A counter with a session table: the smallest state machine where applying twice shows.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Counter {
    total: u64,
    sessions: ClientSessions<u64>,
}

/// What the counter answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Answer {
    Registered(SessionId),
    /// The total after the add (the original answer, for a retry).
    Total(u64),
    AlreadyAcknowledged,
    Expired,
    WindowFull,
    Invalid,
    /// Raft refused or gave up on the request (not leader, indeterminate), as debug text.
    Failed(String),
}

impl ReplicatedStateMachine for Counter {
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Vec<u8> {
        let total = &mut self.total;
        let answer = match vecraft_core::wire::decode::<SessionRequest<u64>>(command) {
            Ok(req) => match self.sessions.apply(index, &req, |add| {
                *total += add;
                *total
            }) {
                SessionOutcome::Registered(s) => Answer::Registered(s),
                SessionOutcome::Applied(t) | SessionOutcome::Duplicate(t) => Answer::Total(t),
                SessionOutcome::AlreadyAcknowledged => Answer::AlreadyAcknowledged,
                SessionOutcome::Expired => Answer::Expired,
                SessionOutcome::WindowFull => Answer::WindowFull,
            },
            Err(_) => Answer::Invalid,
        };
        vecraft_core::wire::encode(&answer).expect("encodes")
    }

    fn query(&self, _query: &[u8]) -> Vec<u8> {
        self.total.to_le_bytes().to_vec()
    }

    /// The total and the session table: sessions live in snapshots.
    fn snapshot(&self) -> Vec<u8> {
        vecraft_core::wire::encode(&(self.total, &self.sessions)).expect("encodes")
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        let (total, sessions) = vecraft_core::wire::decode(bytes).map_err(|e| e.to_string())?;
        (self.total, self.sessions) = (total, sessions);
        Ok(())
    }
}

const CAPACITY: usize = 2;

fn counter() -> Counter {
    Counter { total: 0, sessions: ClientSessions::new(SessionConfig { capacity: CAPACITY, max_responses_per_session: 4 }) }
}

/// A three-node group with instant delivery and instant disks.
struct Group {
    nodes: BTreeMap<NodeId, Option<LocalReplica<Counter>>>,
    cfgs: BTreeMap<NodeId, RaftConfig>,
    disks: BTreeMap<NodeId, Vec<PersistRecord>>,
    now: Time,
    cut: BTreeSet<NodeId>,
    answers: BTreeMap<RequestId, Vec<Answer>>,
    next_id: RequestId,
}

impl Group {
    fn new() -> Group {
        let ids = [1, 2, 3];
        let mut g = Group {
            nodes: BTreeMap::new(),
            cfgs: BTreeMap::new(),
            disks: BTreeMap::new(),
            now: Time::ZERO,
            cut: BTreeSet::new(),
            answers: BTreeMap::new(),
            next_id: 0,
        };
        for id in ids {
            let mut cfg = RaftConfig::new(id, 1, ids.to_vec(), 7 + id);
            cfg.election_timeout_min = Duration::from_millis(100);
            cfg.election_timeout_max = Duration::from_millis(200);
            cfg.heartbeat_interval = Duration::from_millis(20);
            g.nodes.insert(id, Some(LocalReplica::new(cfg.clone(), counter(), DurableState::default(), 0, g.now)));
            g.cfgs.insert(id, cfg);
            g.disks.insert(id, Vec::new());
        }
        g
    }

    fn node(&self, id: NodeId) -> &LocalReplica<Counter> {
        self.nodes[&id].as_ref().expect("running")
    }

    /// Steps `input` into `id` and everything that follows from it, until the group is quiet.
    fn step(&mut self, id: NodeId, input: RaftInput) {
        let mut queue = VecDeque::from([(id, input)]);
        while let Some((id, input)) = queue.pop_front() {
            if self.cut.contains(&id) && matches!(input, RaftInput::Message(_)) {
                continue;
            }
            let Some(Some(node)) = self.nodes.get_mut(&id) else { continue };
            let mut out = Vec::new();
            node.step(self.now, input, &mut out);
            for o in out {
                match o {
                    RaftOutput::Send(m) if !self.cut.contains(&id) => queue.push_back((m.to, RaftInput::Message(m))),
                    RaftOutput::Send(_) => {}
                    RaftOutput::Persist { seq, record } => {
                        self.disks.get_mut(&id).expect("disk").push(record);
                        queue.push_back((id, RaftInput::Persisted { seq }));
                    }
                    RaftOutput::Respond(r) => {
                        let answer = match r.result {
                            Ok(bytes) => vecraft_core::wire::decode(&bytes).expect("our answers decode"),
                            Err(e) => Answer::Failed(format!("{e:?}")),
                        };
                        self.answers.entry(r.id).or_default().push(answer);
                    }
                    RaftOutput::Apply { .. } | RaftOutput::ReadReady { .. } | RaftOutput::MembershipChanged { .. } => {}
                    RaftOutput::TakeSnapshot { .. }
                    | RaftOutput::ReadSnapshotChunk { .. }
                    | RaftOutput::StageSnapshotChunk { .. }
                    | RaftOutput::InstallSnapshot { .. } => unreachable!("LocalReplica handles snapshots itself"),
                }
            }
        }
    }

    /// Lets time pass in 10 ms ticks on every running node until `id` leads.
    fn elect(&mut self, id: NodeId) {
        for _ in 0..200 {
            if self.node(id).role() == Role::Leader {
                // Let the leader commit its no-op so proposals commit at once.
                for _ in 0..3 {
                    self.tick_all();
                }
                return;
            }
            self.now = self.now + Duration::from_millis(10);
            // Only `id` times out: the others are ticked only while a leader keeps them quiet.
            self.step(id, RaftInput::Tick);
        }
        panic!("node {id} did not become leader");
    }

    fn tick_all(&mut self) {
        self.now = self.now + Duration::from_millis(10);
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.step(id, RaftInput::Tick);
        }
    }

    /// Proposes `req` at `id` and returns the answers to it.
    fn propose(&mut self, id: NodeId, req: &SessionRequest<u64>) -> Vec<Answer> {
        self.next_id += 1;
        let rid = self.next_id;
        let command = vecraft_core::wire::encode(req).expect("encodes").into();
        self.step(id, RaftInput::Propose { id: rid, command });
        // A heartbeat interval and more: followers learn the new commit index and apply too.
        for _ in 0..3 {
            self.tick_all();
        }
        self.answers.remove(&rid).unwrap_or_default()
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.insert(id, None);
    }

    fn restart(&mut self, id: NodeId) {
        let durable = DurableState::replay(&self.disks[&id]).expect("own disk replays");
        let node = LocalReplica::new(self.cfgs[&id].clone(), counter(), durable, 0, self.now);
        self.nodes.insert(id, Some(node));
    }
}

fn add(session: SessionId, seq: u64, lowest_unacked: u64, n: u64) -> SessionRequest<u64> {
    SessionRequest::Command(SessionCommand { session, seq, lowest_unacked, command: n })
}

fn register(g: &mut Group, at: NodeId) -> SessionId {
    let expected_index = g.node(at).log().last_index() + 1;
    match g.propose(at, &SessionRequest::Register).as_slice() {
        [Answer::Registered(s)] => {
            assert_eq!(*s, expected_index, "the session id is the log index of the registration");
            *s
        }
        other => panic!("registration answered {other:?}"),
    }
}

#[test]
fn a_retry_is_answered_once_on_the_old_and_on_the_new_leader() {
    let mut g = Group::new();
    g.elect(1);
    let s = register(&mut g, 1);
    assert_eq!(g.propose(1, &add(s, 1, 1, 5)), vec![Answer::Total(5)]);
    // The answer was "lost": the client retries on the same leader.
    assert_eq!(g.propose(1, &add(s, 1, 1, 5)), vec![Answer::Total(5)], "answered from the table");
    // The leader dies; the client retries the same (session, seq) on the new leader.
    g.crash(1);
    g.elect(2);
    assert_eq!(g.propose(2, &add(s, 1, 1, 5)), vec![Answer::Total(5)], "the table is replicated");
    for id in [2, 3] {
        assert_eq!(g.node(id).state_machine().total, 5, "node {id} applied the add exactly once");
        assert_eq!(g.node(id).state_machine().sessions.counters().duplicates, 2);
    }
    // The next command acknowledges seq 1; a late copy of it is then refused, not re-applied.
    assert_eq!(g.propose(2, &add(s, 2, 2, 1)), vec![Answer::Total(6)]);
    assert_eq!(g.propose(2, &add(s, 1, 1, 5)), vec![Answer::AlreadyAcknowledged]);
    // Seq 2 (= the lowest unacknowledged) is still answered from the table.
    assert_eq!(g.propose(2, &add(s, 2, 2, 1)), vec![Answer::Total(6)]);
    assert_eq!(g.node(3).state_machine().total, 6);
    // The old leader restarts, replays the log and rebuilds exactly the same table.
    g.restart(1);
    for _ in 0..30 {
        g.tick_all();
    }
    assert_eq!(g.node(1).state_machine(), g.node(2).state_machine());
}

#[test]
fn capacity_sessions_are_kept_and_one_more_evicts_the_least_recently_used() {
    let mut g = Group::new();
    g.elect(1);
    let a = register(&mut g, 1);
    let b = register(&mut g, 1);
    assert_eq!(g.node(1).state_machine().sessions.len(), CAPACITY);
    // `a` is used after `b` registered, so `b` is the least recently used.
    assert_eq!(g.propose(1, &add(a, 1, 1, 1)), vec![Answer::Total(1)]);
    assert_eq!(g.propose(1, &add(b, 1, 1, 1)), vec![Answer::Total(2)]);
    assert_eq!(g.propose(1, &add(a, 2, 2, 1)), vec![Answer::Total(3)]);
    // Capacity + 1: `b` goes, on every replica at the same log position.
    let c = register(&mut g, 1);
    for id in [1, 2, 3] {
        let sessions = &g.node(id).state_machine().sessions;
        assert_eq!(sessions.len(), CAPACITY);
        assert!(sessions.contains(a) && sessions.contains(c) && !sessions.contains(b), "node {id}");
    }
    // The evicted client's retry is refused as expired, not applied again.
    assert_eq!(g.propose(1, &add(b, 1, 1, 1)), vec![Answer::Expired]);
    assert_eq!(g.node(2).state_machine().total, 3);
    // It registers again and carries on.
    let b2 = register(&mut g, 1);
    assert_eq!(g.propose(1, &add(b2, 1, 1, 1)), vec![Answer::Total(4)]);
}

#[test]
fn a_proposal_committed_behind_a_cut_leader_is_applied_once_after_failover() {
    let mut g = Group::new();
    g.elect(1);
    let s = register(&mut g, 1);
    // The proposal commits, then the leader is cut off before the client hears back.
    assert_eq!(g.propose(1, &add(s, 1, 1, 7)), vec![Answer::Total(7)]);
    g.cut.insert(1);
    g.elect(2);
    assert_eq!(g.propose(2, &add(s, 1, 1, 7)), vec![Answer::Total(7)]);
    assert_eq!(g.node(3).state_machine().total, 7);
    // A proposal to the cut-off old leader never commits there: it is the client's retry that
    // goes through, once.
    assert_eq!(g.propose(1, &add(s, 2, 2, 1)), vec![]);
    assert_eq!(g.propose(2, &add(s, 2, 2, 1)), vec![Answer::Total(8)]);
    g.cut.clear();
    for _ in 0..30 {
        g.tick_all();
    }
    assert_eq!(g.node(1).state_machine().total, 8, "the stale leader's uncommitted copy was discarded");
    assert_eq!(g.node(1).state_machine(), g.node(3).state_machine());
}
