//! A tiny deterministic driver for Raft interaction tests.
//!
//! Everything the real drivers do asynchronously is done here by hand, so a test script decides
//! exactly when a message arrives, when a disk write becomes durable and what time each node sees:
//!
//! * the network is a list of in-flight [`Message`]s; tests deliver, drop or duplicate them;
//! * every node has a fake disk: `Persist` records wait in `unacked` until the test acknowledges
//!   them, then move to `disk` (the only thing that survives a crash);
//! * every node has its own clock, advanced explicitly (nodes never share a notion of time);
//! * the replicated state machine is an append-only [`Journal`] of commands.
//!
//! Messages are rendered as short strings (`"1->2 Vote t2 last=1/1"`) so scenarios can assert the
//! exact traffic, in the spirit of etcd-io/raft's interaction tests.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::raft::{
    ClientResponse, DurableState, Entry, EntryPayload, LocalReplica, LogIndex, Message,
    MessageBody, PersistRecord, RaftConfig, RaftInput, RaftNode, RaftOutput,
    ReplicatedStateMachine, Role, Term,
};

/// The group every test cluster replicates.
pub const GROUP: u64 = 7;

/// Append-only list of applied commands: the simplest deterministic state machine whose state
/// shows both *what* was applied and *in which order*.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Journal {
    /// `(index, command)` in apply order.
    pub applied: Vec<(LogIndex, Vec<u8>)>,
}

impl ReplicatedStateMachine for Journal {
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Vec<u8> {
        self.applied.push((index, command.to_vec()));
        format!("applied@{index}").into_bytes()
    }

    /// Any query returns all applied commands joined by ',' (so a stale read is visible).
    fn query(&self, _query: &[u8]) -> Vec<u8> {
        let parts: Vec<String> = self
            .applied
            .iter()
            .map(|(_, c)| String::from_utf8_lossy(c).into_owned())
            .collect();
        parts.join(",").into_bytes()
    }

    fn snapshot(&self) -> Vec<u8> {
        vecraft_core::wire::encode(&self.applied).expect("a journal encodes")
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.applied = vecraft_core::wire::decode(bytes).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Test timing: election timeout in [100ms, 200ms), heartbeats every 20ms.
pub fn test_config(id: NodeId, voters: &[NodeId]) -> RaftConfig {
    let mut cfg = RaftConfig::new(id, GROUP, voters.to_vec(), 42);
    cfg.election_timeout_min = Duration::from_millis(100);
    cfg.election_timeout_max = Duration::from_millis(200);
    cfg.heartbeat_interval = Duration::from_millis(20);
    cfg
}

/// One node of the test cluster with its fake disk, clock and observed client responses.
pub struct Slot {
    /// The node, `None` while crashed.
    pub raft: Option<LocalReplica<Journal>>,
    /// How it is (re)built.
    pub cfg: RaftConfig,
    /// This node's own clock.
    pub clock: Time,
    /// Acknowledged (durable) records, in write order.
    pub disk: Vec<PersistRecord>,
    /// Records handed to the disk but not yet acknowledged.
    pub unacked: VecDeque<(u64, PersistRecord)>,
    /// Every client response this node produced (across incarnations).
    pub responses: Vec<ClientResponse>,
    /// Every `Applied` output (index, term), current incarnation only.
    pub applied: Vec<(LogIndex, Term)>,
    /// Incremented by every restart.
    pub incarnation: u32,
    /// The newest snapshot the node took or installed, as its durable snapshot store would keep
    /// it (survives crashes; restarts restore from it).
    pub snapshot: Option<(vecraft_core::raft::SnapshotMeta, bytes::Bytes)>,
    /// Applies of this incarnation continue after this index (its restored or installed
    /// snapshot).
    pub apply_floor: LogIndex,
}

/// A hand-driven cluster.
pub struct Cluster {
    /// Nodes by id.
    pub slots: BTreeMap<NodeId, Slot>,
    /// Messages sent and not yet delivered or dropped, in send order.
    pub net: Vec<Message>,
    /// Nodes cut off from everyone: messages from or to them are dropped at delivery.
    pub isolated: BTreeSet<NodeId>,
}

impl Cluster {
    /// A cluster of `ids`, all booted empty at time zero; `tweak` adjusts every config.
    ///
    /// Every clock is then moved (without ticks) past `election_timeout_max`, so the post-boot
    /// vote stickiness has expired and the next tick of any node starts its campaign: scripts
    /// choose who campaigns by choosing whom they tick.
    pub fn new(ids: &[NodeId], tweak: impl Fn(&mut RaftConfig)) -> Self {
        let mut slots = BTreeMap::new();
        for &id in ids {
            let mut cfg = test_config(id, ids);
            tweak(&mut cfg);
            let raft = LocalReplica::new(
                cfg.clone(),
                Journal::default(),
                DurableState::default(),
                0,
                Time::ZERO,
            );
            let clock = Time::ZERO + cfg.election_timeout_max;
            slots.insert(
                id,
                Slot {
                    raft: Some(raft),
                    cfg,
                    clock,
                    disk: Vec::new(),
                    unacked: VecDeque::new(),
                    responses: Vec::new(),
                    applied: Vec::new(),
                    incarnation: 0,
                    snapshot: None,
                    apply_floor: 0,
                },
            );
        }
        Cluster {
            slots,
            net: Vec::new(),
            isolated: BTreeSet::new(),
        }
    }

    /// Replaces node `id` by one built from `durable` (as if it had restarted with that disk),
    /// then moves its clock past the post-restart stickiness like [`Cluster::new`] does. The disk
    /// is set to a single record holding that state so later restarts replay it.
    pub fn install(&mut self, id: NodeId, durable: DurableState) {
        let slot = self.slots.get_mut(&id).expect("known node");
        slot.disk = vec![PersistRecord {
            group: GROUP,
            hard_state: Some(durable.hard_state),
            entries: durable.entries.clone(),
            snapshot: None,
        }];
        slot.unacked.clear();
        slot.applied.clear();
        slot.snapshot = None;
        slot.apply_floor = 0;
        slot.raft = Some(LocalReplica::new(
            slot.cfg.clone(),
            Journal::default(),
            durable,
            0,
            slot.clock,
        ));
        slot.clock = slot.clock + slot.cfg.election_timeout_max;
    }

    /// The live node `id`.
    pub fn node(&self, id: NodeId) -> &LocalReplica<Journal> {
        self.slots[&id].raft.as_ref().expect("node is running")
    }

    /// Steps `input` into node `id` at its clock and routes the outputs (sends go to the network,
    /// persists to the fake disk, responses and applies to the slot). Returns the raw outputs.
    pub fn step(&mut self, id: NodeId, input: RaftInput) -> Vec<RaftOutput> {
        let slot = self.slots.get_mut(&id).expect("known node");
        let Some(raft) = slot.raft.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let installs = raft.snapshot_stats().installed;
        raft.step(slot.clock, input, &mut out);
        // After an install, applies continue after the snapshot's index.
        if raft.snapshot_stats().installed > installs {
            slot.apply_floor = raft.snapshot_meta().map_or(0, |m| m.index);
        }
        let floor_at = slot.apply_floor;
        if let Some(held) = raft.held_snapshot()
            && slot
                .snapshot
                .as_ref()
                .is_none_or(|(m, _)| m.index < held.0.index)
        {
            slot.snapshot = Some(held.clone());
        }
        for o in &out {
            match o {
                RaftOutput::Send(m) => {
                    assert_eq!(m.from, id, "a node sends only as itself");
                    self.net.push(m.clone());
                }
                RaftOutput::Persist { seq, record } => {
                    if let Some((last, _)) = slot.unacked.back() {
                        assert!(seq > last, "persist sequence numbers must increase");
                    }
                    slot.unacked.push_back((*seq, record.clone()));
                }
                RaftOutput::Respond(r) => slot.responses.push(r.clone()),
                RaftOutput::Apply { entry, .. } => {
                    let last = slot.applied.last().map_or(0, |a| a.0);
                    let floor = if entry.index > floor_at {
                        last.max(floor_at)
                    } else {
                        last
                    };
                    assert_eq!(floor + 1, entry.index, "applies are in order, no gaps");
                    slot.applied.push((entry.index, entry.term));
                }
                RaftOutput::ReadReady { .. } => unreachable!("LocalReplica answers reads itself"),
                RaftOutput::MembershipChanged { .. } => {}
                RaftOutput::TakeSnapshot { .. }
                | RaftOutput::ReadSnapshotChunk { .. }
                | RaftOutput::StageSnapshotChunk { .. }
                | RaftOutput::InstallSnapshot { .. } => {
                    unreachable!("LocalReplica handles snapshots itself")
                }
            }
        }
        out
    }

    /// Advances node `id`'s clock by `dt` without stepping it.
    pub fn advance(&mut self, id: NodeId, dt: Duration) {
        let slot = self.slots.get_mut(&id).expect("known node");
        slot.clock = slot.clock + dt;
    }

    /// Real time passes for everyone: every clock moves by `dt` (no ticks).
    pub fn advance_all(&mut self, dt: Duration) {
        for slot in self.slots.values_mut() {
            slot.clock = slot.clock + dt;
        }
    }

    /// Advances node `id`'s clock by `dt` and ticks it.
    pub fn tick(&mut self, id: NodeId, dt: Duration) -> Vec<RaftOutput> {
        self.advance(id, dt);
        self.step(id, RaftInput::Tick)
    }

    /// Makes every record node `id` has written durable and acknowledges the newest one.
    pub fn ack(&mut self, id: NodeId) -> Vec<RaftOutput> {
        let Some(&(last, _)) = self.slots[&id].unacked.back() else {
            return Vec::new();
        };
        self.ack_upto(id, last)
    }

    /// Makes records up to `seq` durable and acknowledges `seq`.
    pub fn ack_upto(&mut self, id: NodeId, seq: u64) -> Vec<RaftOutput> {
        let slot = self.slots.get_mut(&id).expect("known node");
        while slot.unacked.front().is_some_and(|(s, _)| *s <= seq) {
            let (_, record) = slot.unacked.pop_front().expect("checked");
            slot.disk.push(record);
        }
        self.step(id, RaftInput::Persisted { seq })
    }

    /// Sequence numbers of node `id`'s unacknowledged writes.
    pub fn unacked_seqs(&self, id: NodeId) -> Vec<u64> {
        self.slots[&id].unacked.iter().map(|(s, _)| *s).collect()
    }

    /// Removes and returns in-flight messages matching `pred` (in send order).
    pub fn take(&mut self, pred: impl Fn(&Message) -> bool) -> Vec<Message> {
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|m| pred(m));
        self.net = kept;
        taken
    }

    /// Drops in-flight messages matching `pred`, returning them rendered.
    pub fn drop_msgs(&mut self, pred: impl Fn(&Message) -> bool) -> Vec<String> {
        self.take(pred).iter().map(fmt_msg).collect()
    }

    /// Delivers one message (dropped if either end is isolated or crashed).
    pub fn deliver_one(&mut self, m: Message) -> Vec<RaftOutput> {
        if self.isolated.contains(&m.from) || self.isolated.contains(&m.to) {
            return Vec::new();
        }
        if !self.slots.contains_key(&m.to) {
            return Vec::new();
        }
        self.step(m.to, RaftInput::Message(m))
    }

    /// Delivers every in-flight message matching `pred`, in send order; returns all outputs.
    pub fn deliver(&mut self, pred: impl Fn(&Message) -> bool) -> Vec<RaftOutput> {
        let mut out = Vec::new();
        for m in self.take(pred) {
            out.extend(self.deliver_one(m));
        }
        out
    }

    /// Delivers everything currently in flight (not what those deliveries send).
    pub fn deliver_all(&mut self) -> Vec<RaftOutput> {
        self.deliver(|_| true)
    }

    /// Acknowledges all writes and delivers all messages until nothing is left to do. Returns
    /// every message delivered (or dropped by isolation), rendered, in delivery order.
    pub fn stabilize(&mut self) -> Vec<String> {
        let mut log = Vec::new();
        for _ in 0..10_000 {
            let ids: Vec<NodeId> = self.slots.keys().copied().collect();
            let mut busy = !self.net.is_empty();
            for id in ids {
                if self.slots[&id].raft.is_some() && !self.slots[&id].unacked.is_empty() {
                    busy = true;
                    self.ack(id);
                }
            }
            log.extend(self.in_flight());
            self.deliver_all();
            if !busy {
                return log;
            }
        }
        panic!("cluster did not quiesce");
    }

    /// Lets node `id` time out and campaign (advancing only its clock), then runs the cluster
    /// until quiet. Returns the outputs of the tick.
    pub fn campaign(&mut self, id: NodeId) -> Vec<RaftOutput> {
        let dt = self.slots[&id].cfg.election_timeout_max;
        self.tick(id, dt)
    }

    /// Elects `id`: it campaigns, everything is delivered and acknowledged. Panics if it fails.
    pub fn elect(&mut self, id: NodeId) {
        self.campaign(id);
        self.stabilize();
        assert_eq!(
            self.node(id).role(),
            Role::Leader,
            "node {id} should have won the election"
        );
    }

    /// Crashes `id`: unacknowledged writes are lost, in-flight messages stay in the network.
    pub fn crash(&mut self, id: NodeId) {
        let slot = self.slots.get_mut(&id).expect("known node");
        slot.raft = None;
        slot.unacked.clear();
        slot.applied.clear();
    }

    /// Restarts `id` from the state replayed from its acknowledged records only.
    pub fn restart(&mut self, id: NodeId) {
        let slot = self.slots.get_mut(&id).expect("known node");
        let durable = DurableState::replay(&slot.disk).expect("the node's own disk replays");
        slot.incarnation += 1;
        slot.unacked.clear();
        slot.applied.clear();
        let snapshot = slot.snapshot.clone();
        let replica = LocalReplica::from_snapshot(
            slot.cfg.clone(),
            Journal::default(),
            durable,
            snapshot,
            slot.clock,
        );
        let replica = replica.expect("the node's own snapshot restores");
        slot.apply_floor = replica.applied_index();
        slot.raft = Some(replica);
    }

    /// Rendered in-flight messages.
    pub fn in_flight(&self) -> Vec<String> {
        self.net.iter().map(fmt_msg).collect()
    }

    /// Client responses node `id` produced since the last call, rendered.
    pub fn take_responses(&mut self, id: NodeId) -> Vec<ClientResponse> {
        std::mem::take(&mut self.slots.get_mut(&id).expect("known node").responses)
    }
}

/// A log entry for building durable states by hand.
pub fn ent(term: Term, index: LogIndex) -> Entry {
    Entry {
        term,
        index,
        payload: EntryPayload::Command(format!("c{index}t{term}").into_bytes().into()),
    }
}

/// Entries `1..=terms.len()` with the given terms.
pub fn log_of_terms(terms: &[Term]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| ent(t, i as u64 + 1))
        .collect()
}

/// Renders an entry as `term/index` plus its payload.
pub fn fmt_entry(e: &Entry) -> String {
    match &e.payload {
        EntryPayload::Noop => format!("{}/{} noop", e.term, e.index),
        EntryPayload::Command(c) => {
            format!("{}/{} {}", e.term, e.index, String::from_utf8_lossy(c))
        }
        EntryPayload::ConfChange(c) => format!("{}/{} conf {:?}", e.term, e.index, c.change.steps),
    }
}

/// Renders a message compactly: sender, receiver, kind, term and the fields that matter.
pub fn fmt_msg(m: &Message) -> String {
    let head = format!("{}->{}", m.from, m.to);
    match &m.body {
        MessageBody::PreVote {
            last_index,
            last_term,
        } => {
            format!("{head} PreVote t{} last={last_term}/{last_index}", m.term)
        }
        MessageBody::PreVoteResponse { granted } => {
            format!(
                "{head} PreVoteResp t{} {}",
                m.term,
                if *granted { "granted" } else { "rejected" }
            )
        }
        MessageBody::Vote {
            last_index,
            last_term,
            transfer,
        } => {
            let t = if *transfer { " transfer" } else { "" };
            format!("{head} Vote t{} last={last_term}/{last_index}{t}", m.term)
        }
        MessageBody::VoteResponse { granted } => {
            format!(
                "{head} VoteResp t{} {}",
                m.term,
                if *granted { "granted" } else { "rejected" }
            )
        }
        MessageBody::Append {
            prev_index,
            prev_term,
            entries,
            commit,
            round,
        } => {
            let ents: Vec<String> = entries.iter().map(fmt_entry).collect();
            format!(
                "{head} App t{} prev={prev_term}/{prev_index} [{}] commit={commit} round={round}",
                m.term,
                ents.join(", ")
            )
        }
        MessageBody::TimeoutNow => format!("{head} TimeoutNow t{}", m.term),
        MessageBody::InstallSnapshot {
            meta,
            offset,
            data,
            last,
            ..
        } => format!(
            "{head} Snap t{} idx={} off={offset} len={}{}",
            m.term,
            meta.index,
            data.len(),
            if *last { " last" } else { "" }
        ),
        MessageBody::InstallSnapshotResponse {
            index,
            next_offset,
            done,
            restart,
        } => format!(
            "{head} SnapResp t{} idx={index} next={next_offset}{}{}",
            m.term,
            if *done { " done" } else { "" },
            if *restart { " restart" } else { "" }
        ),
        MessageBody::AppendResponse {
            success,
            match_index,
            reject,
            round,
            reset,
            ..
        } => match (success, reject) {
            (false, Some((prev, hint))) if *reset => format!(
                "{head} AppResp t{} reject prev={prev} hint={:?}/{} round={round} reset",
                m.term, hint.conflict_term, hint.conflict_index
            ),
            (true, _) => format!(
                "{head} AppResp t{} ok match={match_index} round={round}",
                m.term
            ),
            (false, Some((prev, hint))) => format!(
                "{head} AppResp t{} reject prev={prev} hint={:?}/{} round={round}",
                m.term, hint.conflict_term, hint.conflict_index
            ),
            (false, None) => format!("{head} AppResp t{} stale round={round}", m.term),
        },
    }
}

/// The sends among `out`, rendered.
pub fn sends(out: &[RaftOutput]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            RaftOutput::Send(m) => Some(fmt_msg(m)),
            _ => None,
        })
        .collect()
}

/// The persists among `out`, rendered as `seq: hs=term/vote ents=[..]`.
pub fn persists(out: &[RaftOutput]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            RaftOutput::Persist { seq, record } => {
                let hs = record.hard_state.map_or("-".to_string(), |h| {
                    format!(
                        "{}/{}",
                        h.term,
                        h.vote.map_or("none".to_string(), |v| v.to_string())
                    )
                });
                let ents: Vec<String> = record.entries.iter().map(fmt_entry).collect();
                Some(format!("{seq}: hs={hs} ents=[{}]", ents.join(", ")))
            }
            _ => None,
        })
        .collect()
}

/// The client responses among `out`.
pub fn responses(out: &[RaftOutput]) -> Vec<ClientResponse> {
    out.iter()
        .filter_map(|o| match o {
            RaftOutput::Respond(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The `Apply` outputs among `out` as (index, term).
pub fn applied(out: &[RaftOutput]) -> Vec<(LogIndex, Term)> {
    out.iter()
        .filter_map(|o| match o {
            RaftOutput::Apply { entry, .. } => Some((entry.index, entry.term)),
            _ => None,
        })
        .collect()
}

/// Whether a message is from `from` to `to`.
pub fn link(from: NodeId, to: NodeId) -> impl Fn(&Message) -> bool {
    move |m| m.from == from && m.to == to
}

/// Whether a message is addressed to `to`.
pub fn to(to: NodeId) -> impl Fn(&Message) -> bool {
    move |m| m.to == to
}

/// Whether a message is sent by `from`.
pub fn from(from: NodeId) -> impl Fn(&Message) -> bool {
    move |m| m.from == from
}

/// The terms of a node's log, index 1 first.
pub fn log_terms(node: &RaftNode) -> Vec<Term> {
    node.log().entries().iter().map(|e| e.term).collect()
}
