//! Scripted tests of the node: a small cluster of `Node`s with a perfect, instant network (unless
//! a test cuts links), instant disks and engines, driven step by step. They pin the exact
//! behaviour of routing, levels, timeouts, partial results, replica status and bad input; the
//! simulator's node world tests the same rules under faults.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::node::message::{NodeEnvelope, PartRef, PeerMessage, ServeError};
use vecraft_core::node::request::{
    ClientId, NodeError, ReadLevel, ReadOptions, ReadToken, Reply, ReplicaState, Request, WriteAck,
};
use vecraft_core::node::scatter::ShardFailure;
use vecraft_core::node::shard::{answer, apply_command};
use vecraft_core::node::{Node, NodeConfig, NodeInput, NodeOutput};
use vecraft_core::raft::{DurableState, GroupId, PersistRecord, Role};
use vecraft_core::vector::collection::{Collection, CollectionConfig, Distance, PointSelector, PointsOp, SearchRequest};
use vecraft_core::vector::payload::PayloadValue;
use vecraft_core::vector::point::{PointId, PointStruct};

/// An apply the test holds back: the node, its `Applied` input, and the command to apply.
type HeldApply = (NodeId, NodeInput, Option<(GroupId, bytes::Bytes)>);

struct Cluster {
    now: Time,
    nodes: BTreeMap<NodeId, Node>,
    engines: BTreeMap<NodeId, BTreeMap<GroupId, Collection>>,
    /// Work to deliver: (to, input).
    queue: VecDeque<(NodeId, NodeInput)>,
    answers: BTreeMap<ClientId, Result<Reply, NodeError>>,
    /// Links that drop everything (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Nodes whose engine applies are held (not applied) until released.
    slow_apply: BTreeSet<NodeId>,
    held_applies: Vec<HeldApply>,
    /// Every peer message sent, for tests that count them.
    sent: Vec<(NodeId, NodeId, PeerMessage)>,
    next_client: ClientId,
    /// Every node's durable records, in write order (the disks are instant and perfect).
    wal: BTreeMap<NodeId, Vec<PersistRecord>>,
    incarnations: BTreeMap<NodeId, u64>,
}

const MEMBERS: [NodeId; 3] = [1, 2, 3];

impl Cluster {
    fn new() -> Cluster {
        Cluster::with_bugs(vecraft_core::node::NodeBugs::default())
    }

    fn with_bugs(bugs: vecraft_core::node::NodeBugs) -> Cluster {
        let mut c = Cluster {
            now: Time::from_millis(1),
            nodes: BTreeMap::new(),
            engines: BTreeMap::new(),
            queue: VecDeque::new(),
            answers: BTreeMap::new(),
            cut: BTreeSet::new(),
            slow_apply: BTreeSet::new(),
            held_applies: Vec::new(),
            sent: Vec::new(),
            next_client: 1,
            wal: BTreeMap::new(),
            incarnations: BTreeMap::new(),
        };
        for id in MEMBERS {
            let mut cfg = NodeConfig::new(id, MEMBERS.to_vec(), 7 + id);
            cfg.bugs = bugs;
            let mut node = Node::new(cfg, BTreeMap::new(), c.now);
            let boot = node.take_boot_outputs();
            c.nodes.insert(id, node);
            c.engines.insert(id, BTreeMap::new());
            c.handle(id, boot);
        }
        c
    }

    fn handle(&mut self, id: NodeId, out: Vec<NodeOutput>) {
        for o in out {
            match o {
                NodeOutput::Send(env) => {
                    for m in &env.peer {
                        self.sent.push((env.from, env.to, m.clone()));
                    }
                    if !self.cut.contains(&(env.from, env.to)) {
                        self.queue.push_back((env.to, NodeInput::Envelope(env)));
                    }
                }
                NodeOutput::Persist { seq, records } => {
                    self.wal.entry(id).or_default().extend(records);
                    self.queue.push_back((id, NodeInput::Persisted { seq }));
                }
                NodeOutput::ShardCreated { group, collection, config } => {
                    self.engines.get_mut(&id).unwrap().insert(group, Collection::new(&collection, config).unwrap());
                }
                NodeOutput::ShardDropped { group } => {
                    self.engines.get_mut(&id).unwrap().remove(&group);
                }
                NodeOutput::ShardRenamed { group, collection } => {
                    self.engines.get_mut(&id).unwrap().get_mut(&group).unwrap().set_name(&collection).unwrap();
                }
                NodeOutput::Apply { group, index, command } => {
                    let input = NodeInput::Applied { group, index };
                    if self.slow_apply.contains(&id) {
                        self.held_applies.push((id, input, command.map(|c| (group, c))));
                    } else {
                        if let Some(c) = command {
                            let _ = apply_command(self.engines.get_mut(&id).unwrap().get_mut(&group).unwrap(), &c);
                        }
                        self.queue.push_back((id, input));
                    }
                }
                NodeOutput::Read { read, group, query } => {
                    let result = answer(&self.engines[&id][&group], &query);
                    self.queue.push_back((id, NodeInput::ReadDone { read, result }));
                }
                NodeOutput::Respond { client, result } => {
                    assert!(self.answers.insert(client, result).is_none(), "client {client} answered twice");
                }
                // These tests never run long enough to compact.
                NodeOutput::TakeSnapshot { .. } | NodeOutput::Raft { .. } => {}
            }
        }
    }

    fn release_applies(&mut self) {
        self.slow_apply.clear();
        for (id, input, cmd) in std::mem::take(&mut self.held_applies) {
            if let Some((group, c)) = cmd {
                let _ = apply_command(self.engines.get_mut(&id).unwrap().get_mut(&group).unwrap(), &c);
            }
            self.queue.push_back((id, input));
        }
    }

    fn step(&mut self, id: NodeId, input: NodeInput) {
        let mut out = Vec::new();
        self.nodes.get_mut(&id).unwrap().step(self.now, input, &mut out);
        self.handle(id, out);
    }

    fn drain(&mut self) {
        while let Some((id, input)) = self.queue.pop_front() {
            self.step(id, input);
        }
    }

    /// Advances time in 1 ms steps, ticking nodes whose deadline passed.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = self.now + Duration::from_millis(1);
            for id in MEMBERS {
                if self.nodes[&id].next_deadline().is_some_and(|t| t <= self.now) {
                    self.step(id, NodeInput::Tick);
                }
            }
            self.drain();
        }
    }

    fn request(&mut self, at: NodeId, request: Request) -> ClientId {
        self.request_within(at, request, None)
    }

    /// A request with its own deadline (`None`: the node's request time-out).
    fn request_within(&mut self, at: NodeId, request: Request, timeout: Option<Duration>) -> ClientId {
        let client = self.next_client;
        self.next_client += 1;
        self.step(at, NodeInput::Request { client, request, timeout });
        self.drain();
        client
    }

    /// Runs until `client` is answered (at most 10 virtual seconds).
    fn wait(&mut self, client: ClientId) -> Result<Reply, NodeError> {
        for _ in 0..10_000 {
            if let Some(a) = self.answers.remove(&client) {
                return a;
            }
            self.run_for(Duration::from_millis(1));
        }
        panic!("client {client} not answered in 10 s");
    }

    fn call(&mut self, at: NodeId, request: Request) -> Result<Reply, NodeError> {
        let c = self.request(at, request);
        self.wait(c)
    }

    /// Kills node `id` and boots it again at once from its durable records (engines empty,
    /// rebuilt from the logs), with a new incarnation. `damaged`: recovery found corruption, so
    /// every group it mentions comes back damaged; `forget` groups lose every record.
    fn restart(&mut self, id: NodeId, damaged: bool, forget: &[GroupId]) {
        let mut per_group: BTreeMap<GroupId, Vec<PersistRecord>> = BTreeMap::new();
        for r in self.wal.get(&id).into_iter().flatten() {
            if !forget.contains(&r.group) {
                per_group.entry(r.group).or_default().push(r.clone());
            }
        }
        let recovered = per_group
            .into_iter()
            .map(|(g, rs)| {
                let s = if damaged { DurableState::replay_damaged(&rs) } else { DurableState::replay(&rs).unwrap() };
                (g, s)
            })
            .collect();
        let inc = self.incarnations.entry(id).or_insert(1);
        *inc += 1;
        let mut cfg = NodeConfig::new(id, MEMBERS.to_vec(), 7 + id + *inc);
        cfg.incarnation = *inc;
        let mut node = Node::new(cfg, recovered, self.now);
        let boot = node.take_boot_outputs();
        self.nodes.insert(id, node);
        self.engines.insert(id, BTreeMap::new());
        self.queue.retain(|(to, _)| *to != id);
        self.handle(id, boot);
        self.drain();
    }

    fn leader_of(&self, group: GroupId) -> Option<NodeId> {
        self.nodes.values().find_map(|n| n.group(group).filter(|r| r.role() == Role::Leader).map(|_| n.id()))
    }
}

fn create(shards: u32, rf: u32) -> Request {
    Request::CreateCollection {
        name: "c".into(),
        config: CollectionConfig::new(2, Distance::Euclid),
        shards,
        replication_factor: rf,
    }
}

fn upsert(ids: impl IntoIterator<Item = u64>, ack: WriteAck) -> Request {
    let points = ids
        .into_iter()
        .map(|i| PointStruct {
            id: PointId::Num(i),
            vector: vec![(i % 3) as f32, 0.0],
            payload: [("v".to_string(), PayloadValue::Int(i as i64))].into_iter().collect(),
        })
        .collect();
    Request::Write { collection: "c".into(), op: PointsOp::Upsert(points), ack }
}

fn get(id: u64, level: ReadLevel) -> Request {
    Request::Get {
        collection: "c".into(),
        ids: vec![PointId::Num(id)],
        with_payload: true,
        with_vector: false,
        read: ReadOptions { level, allow_partial: false },
    }
}

fn search(limit: usize, offset: usize, allow_partial: bool) -> Request {
    let mut s = SearchRequest::new(vec![0.0, 0.0], limit);
    s.offset = offset;
    s.exact = true;
    Request::Search { collection: "c".into(), request: s, read: ReadOptions { level: ReadLevel::Strong, allow_partial } }
}

fn ready_cluster(shards: u32, rf: u32) -> Cluster {
    let mut c = Cluster::new();
    c.run_for(Duration::from_secs(2));
    assert_eq!(c.call(1, create(shards, rf)), Ok(Reply::Done));
    c.run_for(Duration::from_secs(2));
    c
}

#[test]
fn a_collection_is_created_through_the_metadata_group_and_placed_on_its_replicas() {
    let mut c = ready_cluster(4, 2);
    // Every node applied the metadata; each shard group is hosted exactly on its 2 replicas.
    for id in MEMBERS {
        let meta = c.nodes[&id].metadata().collection("c").expect("applied everywhere").clone();
        assert_eq!(meta.replicas.len(), 4);
        for (shard, replicas) in meta.replicas.iter().enumerate() {
            assert_eq!(replicas.len(), 2);
            let group = vecraft_core::node::metadata::shard_group(meta.id, shard as u32);
            assert_eq!(c.nodes[&id].group(group).is_some(), replicas.contains(&id));
            assert_eq!(c.engines[&id].contains_key(&group), replicas.contains(&id));
        }
    }
    assert_eq!(c.call(2, create(1, 1)), Err(NodeError::CollectionExists("c".into())));
    // Replication factor bound: 3 members accept rf 3 and refuse rf 4.
    let bad = Request::CreateCollection { name: "d".into(), config: CollectionConfig::new(2, Distance::Dot), shards: 1, replication_factor: 4 };
    assert!(matches!(c.call(3, bad), Err(NodeError::Invalid(m)) if m.contains("replication_factor")));
    let Ok(Reply::Collections(list)) = c.call(3, Request::ListCollections) else { panic!() };
    assert_eq!(list.len(), 1);
    assert_eq!(c.call(1, Request::DropCollection { name: "c".into() }), Ok(Reply::Done));
    c.run_for(Duration::from_secs(1));
    for id in MEMBERS {
        assert!(c.nodes[&id].metadata().collection("c").is_none());
        assert!(c.engines[&id].is_empty(), "engines dropped on node {id}");
        assert_eq!(c.nodes[&id].groups().count(), 1, "only the metadata group is left");
    }
}

#[test]
fn writes_at_every_ack_level_from_any_node_are_routed_and_read_back() {
    let mut c = ready_cluster(3, 3);
    let mut token = ReadToken::default();
    for (i, ack) in [WriteAck::Leader, WriteAck::OneCopy, WriteAck::Quorum].into_iter().enumerate() {
        for at in MEMBERS {
            let id = (i as u64) * 10 + at;
            let Ok(Reply::Written { token: t }) = c.call(at, upsert([id], ack)) else { panic!("write {id} at {ack:?}") };
            assert_eq!(t.marks.len(), 1, "one point, one shard");
            token.merge(&t);
        }
    }
    c.run_for(Duration::from_millis(200));
    for at in MEMBERS {
        for level in [ReadLevel::Strong, ReadLevel::Quorum, ReadLevel::Eventual, ReadLevel::ReadYourWrites(token.clone())] {
            let Ok(Reply::Records { records, missing, staleness }) = c.call(at, get(21, level.clone())) else { panic!() };
            assert_eq!(records.len(), 1, "{level:?} at {at}");
            assert!(missing.is_empty());
            assert_eq!(staleness.is_some(), level == ReadLevel::Eventual);
        }
    }
    let Ok(Reply::Count { count, .. }) =
        c.call(2, Request::Count { collection: "c".into(), filter: None, read: ReadOptions::default() })
    else {
        panic!()
    };
    assert_eq!(count, 9);
}

#[test]
fn a_quorum_write_is_acknowledged_only_after_commit_and_apply_on_the_leader() {
    let mut c = ready_cluster(1, 3);
    let group = vecraft_core::node::metadata::shard_group(1, 0);
    let leader = c.leader_of(group).unwrap();
    // Hold the leader's engine: the entry commits, but a quorum ack waits for the apply.
    c.slow_apply.insert(leader);
    let quorum = c.request(leader, upsert([1], WriteAck::Quorum));
    let lead = c.request(leader, upsert([2], WriteAck::Leader));
    c.run_for(Duration::from_millis(50));
    assert!(c.answers.contains_key(&lead), "leader ack does not wait for apply");
    assert!(!c.answers.contains_key(&quorum), "quorum ack waits for the leader's apply");
    c.release_applies();
    c.drain();
    assert!(matches!(c.wait(quorum), Ok(Reply::Written { .. })));
}

#[test]
fn read_your_writes_waits_for_the_replica_to_apply_the_token() {
    let mut c = ready_cluster(1, 3);
    let group = vecraft_core::node::metadata::shard_group(1, 0);
    let leader = c.leader_of(group).unwrap();
    let follower = MEMBERS.into_iter().find(|n| *n != leader).unwrap();
    c.slow_apply.insert(follower);
    let Ok(Reply::Written { token }) = c.call(leader, upsert([5], WriteAck::Quorum)) else { panic!() };
    // A heartbeat later the follower knows the commit index it has not applied.
    c.run_for(Duration::from_millis(300));
    // Eventual read at the follower (local first): stale, and says so.
    let Ok(Reply::Records { records, staleness, .. }) = c.call(follower, get(5, ReadLevel::Eventual)) else { panic!() };
    assert!(records.is_empty(), "the follower has not applied it yet");
    let s = staleness.unwrap();
    assert!(s.max_lag() >= 1, "staleness reports the missing entries: {s:?}");
    // Read-your-writes at the follower waits for the apply.
    let ryw = c.request(follower, get(5, ReadLevel::ReadYourWrites(token)));
    c.run_for(Duration::from_millis(100));
    assert!(!c.answers.contains_key(&ryw));
    c.release_applies();
    c.drain();
    let Ok(Reply::Records { records, .. }) = c.wait(ryw) else { panic!() };
    assert_eq!(records.len(), 1);
}

/// Two shards of one replica each, 20 points, and a node `asker` (not holding shard 1,
/// preferably not shard 0 either) cut off from shard 1's only replica.
fn shard_1_cut_off_from_an_asker() -> (Cluster, NodeId) {
    let mut c = ready_cluster(2, 1);
    for i in 0..20 {
        assert!(matches!(c.call(1, upsert([i], WriteAck::Quorum)), Ok(Reply::Written { .. })));
    }
    let meta = c.nodes[&1].metadata().collection("c").unwrap().clone();
    let holder = meta.replicas[1][0];
    let asker = MEMBERS.into_iter().find(|n| *n != holder && !meta.replicas[0].contains(n)).unwrap_or_else(|| {
        MEMBERS.into_iter().find(|n| *n != holder).unwrap()
    });
    c.cut.insert((asker, holder));
    c.cut.insert((holder, asker));
    (c, asker)
}

#[test]
fn a_shard_that_cannot_answer_fails_the_request_at_its_timeout_naming_the_shard_or_is_marked_missing() {
    let (mut c, asker) = shard_1_cut_off_from_an_asker();
    let timeout = NodeConfig::new(1, MEMBERS.to_vec(), 0).request_timeout;
    let started = c.now;
    let id = c.request(asker, search(5, 0, false));
    c.run_for(timeout - Duration::from_millis(2));
    assert!(!c.answers.contains_key(&id), "no answer before the timeout");
    let r = c.wait(id);
    assert!(c.now.saturating_since(started) >= timeout);
    match r {
        Err(NodeError::Shard(e)) => {
            assert_eq!(e.shard, 1);
            assert_eq!(e.failure, ShardFailure::Timeout);
        }
        other => panic!("expected a shard error, got {other:?}"),
    }
    // Partial results: shard 0's hits, marked as missing shard 1.
    let id = c.request(asker, search(50, 0, true));
    let Ok(Reply::Hits { hits, missing, .. }) = c.wait(id) else { panic!() };
    assert_eq!(missing, vec![1]);
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| vecraft_core::node::sharding::shard_of(h.id, 2) == 0));
}

/// A request's own time-out (Qdrant's `timeout`) is the node's deadline for it, shorter or
/// longer than the node's default: the node neither answers before it nor keeps the client
/// waiting past it.
#[test]
fn a_request_with_its_own_timeout_fails_exactly_at_it_shorter_or_longer_than_the_default() {
    let (mut c, asker) = shard_1_cut_off_from_an_asker();
    let default = NodeConfig::new(1, MEMBERS.to_vec(), 0).request_timeout;
    for own in [Duration::from_millis(1_200), default + Duration::from_secs(2)] {
        let started = c.now;
        let id = c.request_within(asker, search(5, 0, false), Some(own));
        c.run_for(own - Duration::from_millis(1));
        assert!(!c.answers.contains_key(&id), "no answer before its own time-out {own:?}");
        c.run_for(Duration::from_millis(1));
        let r = c.answers.remove(&id).unwrap_or_else(|| panic!("answered at its own time-out {own:?}"));
        assert_eq!(c.now.saturating_since(started), own);
        match r {
            Err(NodeError::Shard(e)) => assert_eq!((e.shard, e.failure), (1, ShardFailure::Timeout)),
            other => panic!("expected a shard time-out, got {other:?}"),
        }
    }
}

/// A read reply of the origin's previous boot that arrives after its restart answers nothing:
/// part ids of a new incarnation never repeat an old one's (they did, and the simulator found a
/// quorum read of one point answered with an earlier read of another).
#[test]
fn a_late_read_reply_from_before_the_origins_restart_answers_no_new_request() {
    let mut c = ready_cluster(1, 1);
    assert!(matches!(c.call(1, upsert([5], WriteAck::Quorum)), Ok(Reply::Written { .. })));
    let holder = c.nodes[&1].metadata().collection("c").unwrap().replicas[0][0];
    let origin = MEMBERS.into_iter().find(|n| *n != holder).unwrap();
    // A read of a point that does not exist; the holder's reply is lost on the way.
    c.cut.insert((holder, origin));
    c.sent.clear();
    let lost = c.request(origin, get(999, ReadLevel::Strong));
    c.run_for(Duration::from_millis(50));
    let stale: Vec<PeerMessage> = c
        .sent
        .iter()
        .filter(|(f, t, m)| (*f, *t) == (holder, origin) && matches!(m, PeerMessage::ReadReply { .. }))
        .map(|(_, _, m)| m.clone())
        .collect();
    assert!(!stale.is_empty(), "the holder answered");
    assert!(!c.answers.contains_key(&lost));
    // The origin restarts and reads point 5, whose reply is lost too; then the old reply lands.
    c.cut.clear();
    c.restart(origin, false, &[]);
    for _ in 0..100 {
        if c.nodes[&origin].metadata().collection("c").is_some() {
            break;
        }
        c.run_for(Duration::from_millis(100));
    }
    assert!(c.nodes[&origin].metadata().collection("c").is_some(), "the restarted origin knows the collection");
    c.cut.insert((holder, origin));
    let fresh = c.request(origin, get(5, ReadLevel::Strong));
    c.run_for(Duration::from_millis(5));
    // The old reply, as if it had been the answer to any part id of the first boot up to the
    // number of ids the first boot used (which of them the new read got is not the point).
    let PeerMessage::ReadReply { part, result } = stale[0].clone() else { unreachable!() };
    let late: Vec<PeerMessage> = (1..=part.id.max(500))
        .map(|id| PeerMessage::ReadReply { part: PartRef { id, attempt: part.attempt }, result: result.clone() })
        .collect();
    c.step(origin, NodeInput::Envelope(NodeEnvelope { from: holder, to: origin, raft: None, peer: late }));
    c.drain();
    assert!(!c.answers.contains_key(&fresh), "answered by the old reply: {:?}", c.answers.get(&fresh));
    // Once the holder's replies get through again, the read is answered with point 5.
    c.cut.clear();
    match c.wait(fresh) {
        Ok(Reply::Records { records, .. }) => assert_eq!(records.iter().map(|r| r.id).collect::<Vec<_>>(), vec![5u64.into()]),
        other => panic!("expected point 5, got {other:?}"),
    }
}

#[test]
fn scatter_gather_search_equals_one_engine_over_all_points_with_offsets_and_ties() {
    let mut c = ready_cluster(3, 2);
    assert!(matches!(c.call(2, upsert(0..60, WriteAck::Quorum)), Ok(Reply::Written { .. })));
    let mut union = Collection::new("u", CollectionConfig::new(2, Distance::Euclid)).unwrap();
    let Request::Write { op, .. } = upsert(0..60, WriteAck::Quorum) else { unreachable!() };
    union.apply(op).unwrap();
    for (limit, offset) in [(1, 0), (5, 0), (5, 7), (20, 19), (100, 0)] {
        let Ok(Reply::Hits { hits, .. }) = c.call(3, search(limit, offset, false)) else { panic!() };
        let Request::Search { request, .. } = search(limit, offset, false) else { unreachable!() };
        let want: Vec<(PointId, f32)> = union.search(&request).unwrap().iter().map(|h| (h.id, h.score)).collect();
        let got: Vec<(PointId, f32)> = hits.iter().map(|h| (h.id, h.score)).collect();
        assert_eq!(got, want, "limit {limit} offset {offset}");
    }
}

#[test]
fn replica_status_reports_lag_of_a_cut_off_follower() {
    let mut c = ready_cluster(1, 3);
    let group = vecraft_core::node::metadata::shard_group(1, 0);
    let leader = c.leader_of(group).unwrap();
    let lagging = MEMBERS.into_iter().find(|n| *n != leader).unwrap();
    c.cut.insert((leader, lagging));
    c.cut.insert((lagging, leader));
    let cut_at = c.now;
    for i in 0..5 {
        assert!(matches!(c.call(leader, upsert([i], WriteAck::Quorum)), Ok(Reply::Written { .. })));
    }
    c.run_for(Duration::from_secs(2));
    let Ok(Reply::Status(lines)) = c.call(leader, Request::ReplicaStatus { collection: "c".into() }) else { panic!() };
    assert_eq!(lines.len(), 3);
    let l = lines.iter().find(|l| l.node == lagging).unwrap();
    assert!(l.lag_entries >= 5, "{l:?}");
    assert_eq!(l.state, ReplicaState::Dead, "not heard from for longer than an election timeout");
    assert!(l.lag_time >= Duration::from_secs(1));
    let ok = lines.iter().find(|l| l.node != lagging && !l.leader).unwrap();
    assert_eq!((ok.lag_entries, ok.state), (0, ReplicaState::Active));
    // An `eventual` read served by the cut-off replica (local first) says how long it has been
    // without news from its leader: at least since the cut; the leader's own answer, zero.
    let Ok(Reply::Records { records, staleness: Some(s), .. }) = c.call(lagging, get(4, ReadLevel::Eventual)) else {
        panic!()
    };
    assert!(records.is_empty(), "the cut-off replica never saw point 4");
    let r = s.replicas[&0];
    assert_eq!(r.node, lagging);
    assert!(r.since_leader.unwrap() >= c.now.saturating_since(cut_at), "{r:?}");
    let Ok(Reply::Records { records, staleness: Some(s), .. }) = c.call(leader, get(4, ReadLevel::Eventual)) else {
        panic!()
    };
    assert_eq!(records.len(), 1);
    assert_eq!((s.replicas[&0].node, s.replicas[&0].since_leader), (leader, Some(Duration::ZERO)));
}

#[test]
fn bad_requests_are_refused_before_anything_is_proposed() {
    let mut c = ready_cluster(2, 3);
    let before = c.sent.len();
    let wrong_dim = Request::Write {
        collection: "c".into(),
        op: PointsOp::Upsert(vec![PointStruct { id: PointId::Num(1), vector: vec![1.0; 3], payload: Default::default() }]),
        ack: WriteAck::Quorum,
    };
    assert!(matches!(c.call(1, wrong_dim), Err(NodeError::Invalid(m)) if m.contains("dimensions")));
    let nan = Request::Write {
        collection: "c".into(),
        op: PointsOp::Upsert(vec![PointStruct { id: PointId::Num(1), vector: vec![f32::NAN, 0.0], payload: Default::default() }]),
        ack: WriteAck::Quorum,
    };
    assert!(matches!(c.call(1, nan), Err(NodeError::Invalid(_))));
    assert_eq!(c.call(1, get(1, ReadLevel::Strong).with_collection("zz")), Err(NodeError::NoSuchCollection("zz".into())));
    let writes_sent = c.sent[before..].iter().filter(|(_, _, m)| matches!(m, PeerMessage::Write { .. })).count();
    assert_eq!(writes_sent, 0, "nothing was forwarded for refused requests");
    // An empty delete is a no-op answered at once.
    let empty = Request::Write { collection: "c".into(), op: PointsOp::Delete(PointSelector::Ids(vec![])), ack: WriteAck::Quorum };
    assert!(matches!(c.call(2, empty), Ok(Reply::Written { token }) if token.marks.is_empty()));
}

#[test]
fn a_duplicated_forwarded_write_is_proposed_once() {
    let mut c = ready_cluster(1, 3);
    let group = vecraft_core::node::metadata::shard_group(1, 0);
    let leader = c.leader_of(group).unwrap();
    let other = MEMBERS.into_iter().find(|n| *n != leader).unwrap();
    let before = c.nodes[&leader].group(group).unwrap().log().last_index();
    assert!(matches!(c.call(other, upsert([9], WriteAck::Quorum)), Ok(Reply::Written { .. })));
    // Deliver the forwarded write again, as a duplicating network would.
    let (from, to, msg) = c.sent.iter().rev().find(|(_, to, m)| *to == leader && matches!(m, PeerMessage::Write { .. })).cloned().unwrap();
    c.queue.push_back((to, NodeInput::Envelope(NodeEnvelope { from, to, raft: None, peer: vec![msg] })));
    c.drain();
    c.run_for(Duration::from_millis(100));
    let after = c.nodes[&leader].group(group).unwrap().log().last_index();
    assert_eq!(after, before + 1, "one entry for the write, none for its duplicate");
}

/// A late copy of an earlier attempt's refusal (duplicated or replayed by the network) reaches
/// the origin while the current attempt waits at the leader: it is not acted on, so the write
/// is not sent (and proposed) a second time.
#[test]
fn a_late_refusal_of_an_earlier_attempt_does_not_send_the_write_again() {
    let mut c = ready_cluster(1, 3);
    let group = vecraft_core::node::metadata::shard_group(1, 0);
    let leader = c.leader_of(group).unwrap();
    let origin = MEMBERS.into_iter().find(|n| *n != leader).unwrap();
    // The leader's apply is held, so the quorum ack (and the part) stays open.
    c.slow_apply.insert(leader);
    let client = c.request(origin, upsert([5], WriteAck::Quorum));
    let writes = |c: &Cluster| c.sent.iter().filter(|(f, _, m)| *f == origin && matches!(m, PeerMessage::Write { .. })).count();
    let sent_before = writes(&c);
    let Some((_, _, PeerMessage::Write { part, .. })) =
        c.sent.iter().rev().find(|(f, to, m)| *f == origin && *to == leader && matches!(m, PeerMessage::Write { .. })).cloned()
    else {
        panic!("the write went to the leader")
    };
    let stale = PartRef { id: part.id, attempt: part.attempt.wrapping_sub(1) };
    let refusal = PeerMessage::WriteReply { part: stale, result: Err(ServeError::NotLeader { leader: Some(leader) }) };
    c.queue.push_back((origin, NodeInput::Envelope(NodeEnvelope { from: leader, to: origin, raft: None, peer: vec![refusal] })));
    c.drain();
    c.run_for(Duration::from_millis(50));
    assert_eq!(writes(&c), sent_before, "no second send");
    // The current attempt's own refusal still counts (same attempt: a retry at the hint).
    c.release_applies();
    assert!(matches!(c.wait(client), Ok(Reply::Written { .. })));
    let entries = c.nodes[&leader].group(group).unwrap().log().last_index();
    c.run_for(Duration::from_millis(200));
    assert_eq!(c.nodes[&leader].group(group).unwrap().log().last_index(), entries, "nothing proposed later");
}

trait WithCollection {
    fn with_collection(self, name: &str) -> Self;
}
impl WithCollection for Request {
    fn with_collection(self, name: &str) -> Self {
        match self {
            Request::Get { ids, with_payload, with_vector, read, .. } => {
                Request::Get { collection: name.into(), ids, with_payload, with_vector, read }
            }
            other => other,
        }
    }
}

#[test]
fn a_write_forwarded_to_a_leader_that_died_is_answered_in_doubt_once_the_leader_is_suspected() {
    // A shard led by another node than the metadata group, so the write's name barrier is
    // answered at once (a dead metadata leader delays every name until the next election).
    let mut c = ready_cluster(3, 3);
    let meta_leader = c.leader_of(0).unwrap();
    let (shard, leader) = (0..3)
        .find_map(|s| c.leader_of(vecraft_core::node::metadata::shard_group(1, s)).filter(|l| *l != meta_leader).map(|l| (s, l)))
        .expect("the shards' preferred leaders differ");
    let ids: Vec<u64> = (0..).filter(|i| vecraft_core::node::sharding::shard_of(PointId::Num(*i), 3) == shard).take(2).collect();
    let origin = MEMBERS.into_iter().find(|n| *n != leader).unwrap();
    // Warm the origin's leader hint, then "kill" the leader: nothing in or out.
    assert!(matches!(c.call(origin, upsert([ids[0]], WriteAck::Quorum)), Ok(Reply::Written { .. })));
    for n in MEMBERS {
        c.cut.insert((leader, n));
        c.cut.insert((n, leader));
    }
    let cfg = NodeConfig::new(1, MEMBERS.to_vec(), 0);
    let started = c.now;
    let id = c.request(origin, upsert([ids[1]], WriteAck::Quorum));
    let r = c.wait(id);
    let took = c.now.saturating_since(started);
    assert!(
        matches!(r, Err(NodeError::Indeterminate { ref shards, .. }) if shards == &vec![shard]),
        "in doubt: it may have been proposed before the leader died: {r:?}"
    );
    assert!(took > cfg.suspect_after.saturating_sub(cfg.ping_interval), "not before the leader could be suspected: {took:?}");
    assert!(took < cfg.request_timeout / 2, "long before the request timeout: {took:?}");
    // A retry reaches the new leader.
    c.run_for(Duration::from_secs(1));
    assert!(matches!(c.call(origin, upsert([ids[1]], WriteAck::Quorum)), Ok(Reply::Written { .. })));
}

/// A shard leader that restarts before any peer suspects it, with a damaged WAL: it may neither
/// vote nor campaign, and the followers of its idle (quiesced) groups hear nobody. Its pings'
/// new incarnation tells them it restarted: they elect a new leader, which repairs it.
#[test]
fn a_leader_that_restarts_damaged_before_anyone_suspects_it_is_replaced_and_repaired() {
    let mut c = ready_cluster(1, 3);
    let group = vecraft_core::node::metadata::shard_group(1, 0);
    assert!(matches!(c.call(1, upsert([1, 2, 3], WriteAck::Quorum)), Ok(Reply::Written { .. })));
    // Idle long enough to quiesce: no heartbeats, no election timers.
    c.run_for(Duration::from_secs(3));
    let leader = c.leader_of(group).unwrap();
    let term = c.nodes[&leader].group(group).unwrap().term();
    assert!(c.nodes.values().all(|n| n.next_deadline().is_none_or(|d| d > c.now)), "idle");
    let suspicions = |c: &Cluster| c.nodes.values().map(|n| n.stats().suspicions).sum::<u64>();
    let suspected_before = suspicions(&c);
    c.restart(leader, true, &[]);
    assert!(c.nodes[&leader].group(group).is_none_or(|r| r.is_damaged()));
    let cfg = NodeConfig::new(1, MEMBERS.to_vec(), 0);
    // The first ping of the new incarnation wakes the group; an election follows within the
    // election timeout (twice, for a split vote).
    c.run_for(cfg.ping_interval + cfg.raft.raft.election_timeout_max * 2);
    assert_eq!(suspicions(&c), suspected_before, "nobody suspected the restarted node: the restart alone woke the group");
    let new_leader = c.leader_of(group).expect("a new leader, elected without the damaged node's vote");
    assert_ne!(new_leader, leader);
    assert!(c.nodes[&new_leader].group(group).unwrap().term() > term);
    c.run_for(Duration::from_millis(500));
    let r = c.nodes[&leader].group(group).expect("replica re-created from the metadata log");
    assert!(!r.is_damaged(), "repaired by the leader of a later term");
    assert_eq!(r.applied_index(), c.nodes[&new_leader].group(group).unwrap().commit_index());
    assert_eq!(c.engines[&leader][&group].len(), 3, "the engine replayed every point");
    let restarts: u64 = MEMBERS.iter().filter(|n| **n != leader).map(|n| c.nodes[n].stats().peer_restarts).sum();
    assert_eq!(restarts, 2, "each peer saw the restart once: {restarts}");
    // A late ping of the old incarnation is not a restart, nor is the next new one after it.
    for n in MEMBERS.into_iter().filter(|n| *n != leader) {
        let old = PeerMessage::Ping { incarnation: 1 };
        c.queue.push_back((n, NodeInput::Envelope(NodeEnvelope { from: leader, to: n, raft: None, peer: vec![old] })));
    }
    c.drain();
    c.run_for(Duration::from_millis(300));
    let restarts: u64 = MEMBERS.iter().filter(|n| **n != leader).map(|n| c.nodes[n].stats().peer_restarts).sum();
    assert_eq!(restarts, 2, "late old pings are not restarts: {restarts}");
}

/// A destroyed record may have been the only one of a shard group: after a damaged boot, a group
/// the WAL does not mention comes back damaged too (it may have voted), while a group created
/// after the metadata group was repaired is new to the node and votes at once.
#[test]
fn after_a_damaged_boot_unknown_groups_start_damaged_but_groups_created_later_do_not() {
    let mut c = ready_cluster(1, 3);
    let group = vecraft_core::node::metadata::shard_group(1, 0);
    assert!(matches!(c.call(1, upsert([1], WriteAck::Quorum)), Ok(Reply::Written { .. })));
    let victim = MEMBERS.into_iter().find(|n| Some(*n) != c.leader_of(group) && Some(*n) != c.leader_of(0)).unwrap();
    c.restart(victim, true, &[group]);
    // Re-created from the metadata log while the metadata group is still damaged: damaged.
    let mut first_sight = None;
    for _ in 0..1_000 {
        if let Some(r) = c.nodes[&victim].group(group) {
            first_sight = Some(r.is_damaged());
            break;
        }
        c.run_for(Duration::from_millis(1));
    }
    assert!(c.nodes[&victim].group(0).unwrap().is_damaged(), "the metadata leader's term is the damaged term");
    assert_eq!(first_sight, Some(true), "an unknown group after a damaged boot starts damaged");
    // The metadata group is repaired by a leader of a later term: force an election by
    // restarting its leader (healthy disk); the two healthy nodes elect one.
    let meta_leader = c.leader_of(0).unwrap();
    c.restart(meta_leader, false, &[]);
    c.run_for(Duration::from_secs(3));
    assert!(!c.nodes[&victim].group(0).unwrap().is_damaged(), "metadata repaired");
    // A collection created now is new to the node: its replica is not damaged.
    let create_d = Request::CreateCollection {
        name: "d".into(),
        config: CollectionConfig::new(2, Distance::Euclid),
        shards: 1,
        replication_factor: 3,
    };
    assert_eq!(c.call(1, create_d), Ok(Reply::Done));
    c.run_for(Duration::from_millis(200));
    let d_group = vecraft_core::node::metadata::shard_group(2, 0);
    assert!(!c.nodes[&victim].group(d_group).expect("placed on every node").is_damaged());
}

#[test]
fn racing_creates_and_drops_of_one_name_get_typed_refusals_from_the_metadata_group() {
    let mut c = ready_cluster(1, 3);
    // Two creates of a new name at two nodes before either is applied: both are proposed,
    // the second to apply is refused by the metadata state machine, typed as the origin's own
    // check would be (409 at the REST layer), not as a text.
    let named = |name: &str| Request::CreateCollection {
        name: name.into(),
        config: CollectionConfig::new(2, Distance::Euclid),
        shards: 1,
        replication_factor: 3,
    };
    let a = c.request(1, named("d"));
    let b = c.request(2, named("d"));
    let mut answers = [c.wait(a), c.wait(b)];
    answers.sort_by_key(|r| r.is_err());
    assert_eq!(answers[0], Ok(Reply::Done));
    assert_eq!(answers[1], Err(NodeError::CollectionExists("d".into())));
    // Two drops racing: the loser hears that the collection is not there (404).
    let a = c.request(3, Request::DropCollection { name: "d".into() });
    let b = c.request(1, Request::DropCollection { name: "d".into() });
    let mut answers = [c.wait(a), c.wait(b)];
    answers.sort_by_key(|r| r.is_err());
    assert_eq!(answers[0], Ok(Reply::Done));
    assert_eq!(answers[1], Err(NodeError::NoSuchCollection("d".into())));
}

fn count_of(c: &mut Cluster, at: NodeId, name: &str) -> Result<u64, NodeError> {
    let read = ReadOptions { level: ReadLevel::Strong, allow_partial: false };
    match c.call(at, Request::Count { collection: name.into(), filter: None, read })? {
        Reply::Count { count, missing } if missing.is_empty() => Ok(count),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_replace_swaps_in_a_collection_filled_aside_in_one_step_on_every_node_and_after_a_restart() {
    let mut c = ready_cluster(2, 3);
    assert!(matches!(c.call(1, upsert(1..=10, WriteAck::Quorum)), Ok(Reply::Written { .. })));
    let staged = Request::CreateCollection {
        name: "c.recovering".into(),
        config: CollectionConfig::new(2, Distance::Euclid),
        shards: 2,
        replication_factor: 3,
    };
    assert_eq!(c.call(2, staged), Ok(Reply::Done));
    let Request::Write { op, ack, .. } = upsert(100..=104, WriteAck::Quorum) else { unreachable!() };
    assert!(matches!(c.call(2, Request::Write { collection: "c.recovering".into(), op, ack }), Ok(Reply::Written { .. })));
    assert_eq!(c.call(1, Request::UpdateAliases { actions: vec![vecraft_core::node::metadata::AliasAction::Create { alias: "prod".into(), collection: "c".into() }] }), Ok(Reply::Done));
    let old_groups: BTreeSet<GroupId> = c.engines[&1].iter().filter(|(_, e)| e.name() == "c").map(|(g, _)| *g).collect();
    let new_groups: BTreeSet<GroupId> = c.engines[&1].iter().filter(|(_, e)| e.name() == "c.recovering").map(|(g, _)| *g).collect();
    assert_eq!((old_groups.len(), new_groups.len()), (2, 2));
    assert_eq!(count_of(&mut c, 3, "c"), Ok(10));

    // Refusals first: nothing changes.
    let replace = |name: &str, with: &str| Request::ReplaceCollection { name: name.into(), with: with.into() };
    assert_eq!(c.call(1, replace("c", "missing")), Err(NodeError::NoSuchCollection("missing".into())));
    assert!(matches!(c.call(1, replace("prod", "c.recovering")), Err(NodeError::Invalid(_))), "an alias is not replaced");
    assert!(matches!(c.call(1, replace("c", "c")), Err(NodeError::Invalid(_))));
    assert_eq!(count_of(&mut c, 2, "c"), Ok(10));

    assert_eq!(c.call(3, replace("c", "c.recovering")), Ok(Reply::Done));
    c.run_for(Duration::from_millis(500));
    for node in MEMBERS {
        // The name (and its alias) reads the new content whole; the staging name is gone.
        assert_eq!(count_of(&mut c, node, "c"), Ok(5), "node {node}");
        assert_eq!(count_of(&mut c, node, "prod"), Ok(5), "node {node}");
        assert_eq!(count_of(&mut c, node, "c.recovering"), Err(NodeError::NoSuchCollection("c.recovering".into())));
        let Ok(Reply::Records { records, .. }) = c.call(node, get(100, ReadLevel::Strong)) else { panic!() };
        assert_eq!(records.len(), 1);
        let Ok(Reply::Records { records, .. }) = c.call(node, get(1, ReadLevel::Strong)) else { panic!() };
        assert!(records.is_empty(), "the old content is gone with its collection");
        // Old groups dropped, the staged ones kept under the new name.
        let engines = &c.engines[&node];
        assert!(old_groups.iter().all(|g| !engines.contains_key(g) && c.nodes[&node].group(*g).is_none()));
        assert!(new_groups.iter().all(|g| engines[g].name() == "c"));
    }
    // Writes by the name go to the new groups.
    assert!(matches!(c.call(2, upsert([7], WriteAck::Quorum)), Ok(Reply::Written { .. })));
    assert_eq!(count_of(&mut c, 1, "c"), Ok(6));
    // A restart replays the metadata: create under the staging name, then the rename.
    c.restart(2, false, &[]);
    c.run_for(Duration::from_secs(2));
    assert!(new_groups.iter().all(|g| c.engines[&2][g].name() == "c"));
    assert!(old_groups.iter().all(|g| !c.engines[&2].contains_key(g)));
    assert_eq!(count_of(&mut c, 2, "c"), Ok(6));
}

// ---- Payload field indexes through the node (declared in every shard's log) ----

fn field_index_op(op: PointsOp) -> Request {
    Request::Write { collection: "c".into(), op, ack: WriteAck::Quorum }
}

fn create_index(field: &str, schema: vecraft_core::vector::payload_index::FieldSchema) -> Request {
    field_index_op(PointsOp::CreateFieldIndex { field: field.into(), schema })
}

fn declared_indexes(c: &mut Cluster, at: NodeId) -> BTreeMap<String, vecraft_core::node::field_index::FieldIndexInfo> {
    let read = ReadOptions { level: ReadLevel::Strong, allow_partial: false };
    match c.call(at, Request::FieldIndexes { collection: "c".into(), read }) {
        Ok(Reply::FieldIndexes { fields, missing }) => {
            assert!(missing.is_empty());
            fields
        }
        other => panic!("field indexes at {at}: {other:?}"),
    }
}

/// Every replica engine of every shard of `c`, with the schemas it declares.
fn replica_schemas(c: &Cluster) -> Vec<(NodeId, GroupId, BTreeMap<String, vecraft_core::vector::payload_index::FieldSchema>)> {
    let mut v = Vec::new();
    for (node, es) in &c.engines {
        for (g, e) in es {
            v.push((*node, *g, e.field_indexes().into_iter().map(|(f, (s, _))| (f, s)).collect()));
        }
    }
    v
}

fn range_count(c: &mut Cluster, at: NodeId, gte: f64, lte: f64) -> u64 {
    use vecraft_core::vector::filter::{Condition, Filter, NumericRange};
    let filter = Filter::must(vec![Condition::range("v", NumericRange { gte: Some(gte), lte: Some(lte), ..Default::default() })]);
    let read = ReadOptions { level: ReadLevel::Strong, allow_partial: false };
    let Ok(Reply::Count { count, .. }) = c.call(at, Request::Count { collection: "c".into(), filter: Some(filter), read }) else {
        panic!("filtered count")
    };
    count
}

#[test]
fn a_field_index_is_declared_in_every_shard_on_every_replica_and_reported_through_any_node() {
    use vecraft_core::vector::payload_index::FieldSchema;
    let mut c = ready_cluster(3, 3);
    assert!(matches!(c.call(1, upsert(0..30, WriteAck::Quorum)), Ok(Reply::Written { .. })));
    let before = range_count(&mut c, 2, 10.0, 19.0);
    assert_eq!(before, 10);
    // The declaration is a write to every shard: its token names all three.
    let Ok(Reply::Written { token }) = c.call(2, create_index("v", FieldSchema::Integer)) else { panic!() };
    assert_eq!(token.marks.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    c.run_for(Duration::from_millis(200));
    let schemas = replica_schemas(&c);
    assert_eq!(schemas.len(), 9, "3 shards x 3 replicas");
    for (node, g, s) in &schemas {
        assert_eq!(s.get("v"), Some(&FieldSchema::Integer), "replica {node} of group {g:#x}");
    }
    let fields = declared_indexes(&mut c, 3);
    assert_eq!(fields.len(), 1);
    let v = fields["v"];
    assert_eq!((v.schema, v.points, v.shards, v.conflicting), (FieldSchema::Integer, 30, 3, false));
    // The index narrows, never decides: the filtered count is the one without it.
    assert_eq!(range_count(&mut c, 1, 10.0, 19.0), before);
    // Points written after the declaration are indexed on every shard.
    assert!(matches!(c.call(3, upsert(30..40, WriteAck::Quorum)), Ok(Reply::Written { .. })));
    assert_eq!(declared_indexes(&mut c, 1)["v"].points, 40);
    assert_eq!(range_count(&mut c, 3, 30.0, 39.0), 10);
}

/// What a re-declaration does, pinned: the same schema is a no-op success; another schema is
/// refused identically by every replica when applied (the write itself is acknowledged — the
/// node acknowledges log positions, not engine outcomes — and nothing changes anywhere); the
/// runtime rejects the conflict with a 400 before proposing it.
#[test]
fn redeclaring_a_field_index_is_a_no_op_and_a_conflicting_schema_changes_no_replica() {
    use vecraft_core::vector::payload_index::FieldSchema;
    let mut c = ready_cluster(2, 3);
    assert!(matches!(c.call(1, upsert(0..10, WriteAck::Quorum)), Ok(Reply::Written { .. })));
    assert!(matches!(c.call(1, create_index("v", FieldSchema::Integer)), Ok(Reply::Written { .. })));
    // `v` and `v[]` name the same field.
    assert!(matches!(c.call(2, create_index("v[]", FieldSchema::Integer)), Ok(Reply::Written { .. })));
    assert!(matches!(c.call(3, create_index("v", FieldSchema::Keyword)), Ok(Reply::Written { .. })));
    c.run_for(Duration::from_millis(200));
    for (node, g, s) in replica_schemas(&c) {
        assert_eq!(s.len(), 1, "replica {node} of {g:#x}: {s:?}");
        assert_eq!(s["v"], FieldSchema::Integer, "replica {node} of {g:#x}");
    }
    let v = declared_indexes(&mut c, 2)["v"];
    assert_eq!((v.schema, v.points, v.shards, v.conflicting), (FieldSchema::Integer, 10, 2, false));
    // Dropping it drops it everywhere; dropping again is a no-op success.
    for _ in 0..2 {
        let drop = field_index_op(PointsOp::DeleteFieldIndex { field: "v".into() });
        assert!(matches!(c.call(3, drop), Ok(Reply::Written { .. })));
    }
    c.run_for(Duration::from_millis(200));
    assert!(replica_schemas(&c).iter().all(|(_, _, s)| s.is_empty()));
    assert!(declared_indexes(&mut c, 1).is_empty());
    // Now the other schema is accepted.
    assert!(matches!(c.call(3, create_index("v", FieldSchema::Keyword)), Ok(Reply::Written { .. })));
    assert_eq!(declared_indexes(&mut c, 1)["v"].schema, FieldSchema::Keyword);
}

#[test]
fn field_index_requests_on_an_unknown_collection_are_refused_before_anything_is_proposed() {
    use vecraft_core::vector::payload_index::FieldSchema;
    let mut c = ready_cluster(1, 3);
    let writes_before = c.sent.iter().filter(|(_, _, m)| matches!(m, PeerMessage::Write { .. })).count();
    let op = PointsOp::CreateFieldIndex { field: "g".into(), schema: FieldSchema::Keyword };
    let r = c.call(2, Request::Write { collection: "nope".into(), op, ack: WriteAck::Quorum });
    assert_eq!(r, Err(NodeError::NoSuchCollection("nope".into())));
    let read = ReadOptions::default();
    assert_eq!(c.call(2, Request::FieldIndexes { collection: "nope".into(), read }), Err(NodeError::NoSuchCollection("nope".into())));
    assert_eq!(c.sent.iter().filter(|(_, _, m)| matches!(m, PeerMessage::Write { .. })).count(), writes_before);
}

/// A node that restarts rebuilds its engines from its log alone: the declaration is an entry
/// there, so the index is declared again after the replay, at the same position.
#[test]
fn a_restarted_replica_declares_the_field_index_again_from_its_log() {
    use vecraft_core::vector::payload_index::FieldSchema;
    let mut c = ready_cluster(2, 3);
    assert!(matches!(c.call(1, upsert(0..10, WriteAck::Quorum)), Ok(Reply::Written { .. })));
    assert!(matches!(c.call(1, create_index("v", FieldSchema::Integer)), Ok(Reply::Written { .. })));
    assert!(matches!(c.call(1, upsert(10..20, WriteAck::Quorum)), Ok(Reply::Written { .. })));
    c.run_for(Duration::from_millis(200));
    c.restart(3, false, &[]);
    c.run_for(Duration::from_secs(3));
    let on_3: Vec<_> = replica_schemas(&c).into_iter().filter(|(n, _, _)| *n == 3).collect();
    assert_eq!(on_3.len(), 2, "both shards hosted again on node 3");
    for (_, g, s) in on_3 {
        assert_eq!(s.get("v"), Some(&FieldSchema::Integer), "group {g:#x} on node 3 after replay");
    }
    for (g, e) in &c.engines[&3] {
        let peer = &c.engines[&1][g];
        assert_eq!(e.field_indexes(), peer.field_indexes(), "same declarations and indexed points as node 1");
    }
}

/// A write with a client deadline longer than twice the node's default is answered when it
/// completes: the serving leader keeps the part until the origin's deadline (plus a time-out),
/// instead of forgetting it after twice the default and leaving the write in doubt.
#[test]
fn a_write_with_a_long_timeout_is_answered_when_it_completes_after_twice_the_default() {
    let mut c = ready_cluster(1, 3);
    let group = vecraft_core::node::metadata::shard_group(1, 0);
    let leader = c.leader_of(group).unwrap();
    let origin = MEMBERS.into_iter().find(|n| *n != leader).unwrap();
    let default = NodeConfig::new(1, MEMBERS.to_vec(), 0).request_timeout;
    // The leader's engine is held: the entry commits, the quorum ack waits for its apply.
    c.slow_apply.insert(leader);
    let id = c.request_within(origin, upsert([7], WriteAck::Quorum), Some(default * 6));
    c.run_for(default * 3);
    assert!(!c.answers.contains_key(&id), "the apply is held");
    c.release_applies();
    c.run_for(Duration::from_millis(100));
    let r = c.answers.remove(&id).expect("answered once applied, long before its own deadline");
    assert!(matches!(r, Ok(Reply::Written { .. })), "{r:?}");
}

/// A name is resolved at a metadata index the metadata leader confirmed (`name_barrier`): a
/// collection created through the metadata leader is found at once through a node that has not
/// applied the create yet, and a strong read through a node that has not applied a replace
/// reads the new content. With the barrier off, the same requests see the node's stale metadata.
#[test]
fn names_are_resolved_at_the_metadata_leaders_commit_not_a_lagging_copy() {
    for bug in [false, true] {
        if bug && !cfg!(feature = "bug-injection") {
            continue; // bug switches act only in builds with the feature (the workspace's)
        }
        let bugs = vecraft_core::node::NodeBugs { names_from_local_metadata: bug, ..Default::default() };
        let mut c = Cluster::with_bugs(bugs);
        c.run_for(Duration::from_secs(2));
        let meta = c.leader_of(0).unwrap();
        let other = MEMBERS.into_iter().find(|n| *n != meta).unwrap();
        // Hold the other node's inputs back: it hears nothing of the create yet.
        c.step(meta, NodeInput::Request { client: 900, request: create(1, 3), timeout: None });
        c.queue.retain(|(to, _)| *to != other);
        c.cut.insert((meta, other));
        c.drain();
        assert_eq!(c.answers.remove(&900), Some(Ok(Reply::Done)), "acknowledged by a majority without {other}");
        assert!(c.nodes[&other].metadata().collection("c").is_none(), "{other} has not applied it");
        // The link heals; `other`'s metadata trails until the leader's next append, which the
        // barrier waits for.
        c.cut.remove(&(meta, other));
        let id = c.request(other, upsert([1], WriteAck::Quorum));
        let r = c.wait(id);
        if bug {
            assert_eq!(r, Err(NodeError::NoSuchCollection("c".into())), "the bug resolves from the stale copy");
        } else {
            assert!(matches!(r, Ok(Reply::Written { .. })), "{r:?}");
            assert!(c.nodes[&other].stats().name_barriers >= 1);
        }
    }
}
