//! The node machine: its state, the step loop, what it does with its multi-Raft host's outputs,
//! the metadata state machine it applies itself, and its liveness pings. Serving parts for other
//! nodes is in `serve.rs`; splitting client requests into parts and gathering the answers is in
//! `origin.rs`.
//!
//! One step drains a work queue: host inputs (stepped into the multi-Raft host, whose outputs may
//! queue more work) and node messages (from peers, or from this node to itself: a part whose
//! target is this node takes the same path as a remote one, through the loopback). Then write
//! acknowledgements are checked and everything for each peer leaves as one envelope.

use super::io::{NodeBugs, NodeConfig, NodeInput, NodeOutput};
use super::message::{NodeEnvelope, PeerMessage};
use super::metadata::{METADATA_GROUP, MetaCommand, MetaEvent, MetaRefusal, Metadata, group_shard};
use super::origin::{ClientState, Part};
use super::router::Router;
use super::serve::Serve;
use crate::contract::{NodeId, StateMachine, Time};
use crate::multiraft::{Envelope, MultiRaft, MultiRaftInput, MultiRaftOutput};
use crate::raft::{DurableState, EntryPayload, GroupId, LogIndex, RaftInput, RaftNode, RaftOutput, SnapshotMeta};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Counters of what a node did (for the simulator's summary and metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Client requests by kind.
    pub requests: BTreeMap<&'static str, u64>,
    /// Parts sent to another node.
    pub forwarded: u64,
    /// Parts retried at another replica or after a backoff.
    pub retries: u64,
    /// Peers suspected by the liveness pings.
    pub suspicions: u64,
    /// Metadata barrier reads sent to resolve names (see `name_barrier`).
    pub name_barriers: u64,
    /// Peer restarts seen (a ping with a newer incarnation).
    pub peer_restarts: u64,
}

/// A timer of the node (the host keeps its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// A client request's deadline.
    Deadline(super::request::ClientId),
    /// Retry a part (attempt number when armed).
    Retry(u64, u32),
    /// A read attempt's own timeout (attempt number when armed).
    ReadAttempt(u64, u32),
    /// Forget a serve nobody will ask about any more.
    ServeExpiry(u64),
}

/// Work inside one step.
pub(super) enum Work {
    /// Step the host.
    Host(MultiRaftInput),
    /// A node message from `from` (possibly this node).
    Peer(NodeId, PeerMessage),
}

/// The node: see the module documentation of `node`.
pub struct Node {
    pub(super) cfg: NodeConfig,
    pub(super) bugs: NodeBugs,
    pub(super) host: MultiRaft,
    pub(super) meta: Metadata,
    /// Durable state found at boot, handed to each group when the metadata recreates it.
    recovered: BTreeMap<GroupId, DurableState>,
    /// Per shard group, the index the driver reported applied.
    pub(super) applied: BTreeMap<GroupId, LogIndex>,
    /// Per group, the leader last heard of.
    pub(super) leader_hints: BTreeMap<GroupId, NodeId>,
    pub(super) router: Router,
    pub(super) clients: BTreeMap<super::request::ClientId, ClientState>,
    pub(super) parts: BTreeMap<u64, Part>,
    pub(super) serves: BTreeMap<u64, Serve>,
    pub(super) timers: BTreeSet<(Time, Timer)>,
    pub(super) next_id: u64,
    pub(super) work: VecDeque<Work>,
    outbox: BTreeMap<NodeId, NodeEnvelope>,
    /// Metadata apply results by index, kept until the serve of that write answers.
    pub(super) meta_results: BTreeMap<LogIndex, Result<(), MetaRefusal>>,
    /// Requests waiting for a metadata barrier read (see `name_barrier`).
    pub(super) barrier: super::name_barrier::NameBarrier,
    last_heard: BTreeMap<NodeId, Time>,
    pub(super) suspected: BTreeSet<NodeId>,
    next_ping: Time,
    pub(super) stats: NodeStats,
    boot_out: Vec<NodeOutput>,
    /// Engines the driver restored from snapshots at boot, and their index.
    restored: BTreeMap<GroupId, LogIndex>,
    /// Forwarded writes seen, per origin incarnation (see `first_copy`).
    seen_writes: BTreeMap<(NodeId, u64), SeenWindow>,
    /// Recovery found this node's durable stream damaged: a destroyed record may have been the
    /// only one of some group, so a group the WAL does not mention is not known to be new.
    boot_damaged: bool,
    /// Once the metadata group is repaired: its log's end then. Groups created by metadata
    /// entries after it are new to this node whatever the disk lost (everything it applied
    /// before the crash was committed, so it is at or below a repairing leader's commit).
    meta_whole_after: Option<LogIndex>,
    /// The newest incarnation each peer's pings carried (a higher one: it restarted).
    peer_incarnations: BTreeMap<NodeId, u64>,
}

/// Anti-replay window over one origin incarnation's part ids (as IPsec does for packets): ids
/// within `WINDOW` of the highest seen are remembered; older ones are refused outright.
#[derive(Default)]
struct SeenWindow {
    highest: u64,
    seen: BTreeSet<(u64, u32)>,
}

const WINDOW: u64 = 1 << 16;

impl Node {
    /// Boots a node. `recovered` is every group's durable state from the WAL (empty on first
    /// boot); shard engines start empty and are rebuilt by replaying their logs.
    pub fn new(cfg: NodeConfig, recovered: BTreeMap<GroupId, DurableState>, now: Time) -> Node {
        Node::restore(cfg, recovered, BTreeMap::new(), now)
    }

    /// Boots a node whose driver restored some shard engines from their snapshots: `restored`
    /// maps each such group to the index its engine holds (the log is replayed after it).
    pub fn restore(
        cfg: NodeConfig,
        recovered: BTreeMap<GroupId, DurableState>,
        restored: BTreeMap<GroupId, LogIndex>,
        now: Time,
    ) -> Node {
        assert!(cfg.members.contains(&cfg.id), "node {} is not a member", cfg.id);
        let mut recovered = recovered;
        let boot_damaged = recovered.values().any(|s| s.damaged);
        let bugs = cfg.bugs.effective();
        let mut node = Node {
            host: MultiRaft::new(cfg.raft.clone()),
            meta: Metadata::new(cfg.members.clone()),
            router: Router::new(cfg.router),
            bugs,
            applied: BTreeMap::new(),
            leader_hints: BTreeMap::new(),
            clients: BTreeMap::new(),
            parts: BTreeMap::new(),
            serves: BTreeMap::new(),
            timers: BTreeSet::new(),
            next_id: first_id(cfg.incarnation),
            work: VecDeque::new(),
            outbox: BTreeMap::new(),
            meta_results: BTreeMap::new(),
            barrier: Default::default(),
            last_heard: cfg.members.iter().map(|m| (*m, now)).collect(),
            suspected: BTreeSet::new(),
            next_ping: now,
            stats: NodeStats::default(),
            recovered: BTreeMap::new(),
            boot_out: Vec::new(),
            seen_writes: BTreeMap::new(),
            restored: BTreeMap::new(),
            boot_damaged,
            meta_whole_after: None,
            peer_incarnations: BTreeMap::new(),
            cfg,
        };
        let durable = recovered.remove(&METADATA_GROUP).unwrap_or_else(|| node.unknown_group_state(0));
        node.recovered = recovered;
        node.restored = restored;
        let mut out = Vec::new();
        node.work.push_back(Work::Host(MultiRaftInput::CreateGroup {
            group: METADATA_GROUP,
            voters: node.cfg.members.clone(),
            durable,
            applied: 0,
        }));
        node.drain(now, &mut out);
        debug_assert!(out.iter().all(|o| matches!(o, NodeOutput::Persist { .. } | NodeOutput::Send(_))));
        node.boot_out = out;
        node
    }

    /// This node.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    /// The earliest instant the node needs a `Tick`.
    pub fn next_deadline(&self) -> Option<Time> {
        let mut d = Some(self.next_ping);
        for t in [self.host.next_deadline(), self.timers.first().map(|(t, _)| *t)].into_iter().flatten() {
            d = Some(d.map_or(t, |x: Time| x.min(t)));
        }
        d
    }

    /// The applied metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// The replica of `group` hosted here.
    pub fn group(&self, group: GroupId) -> Option<&RaftNode> {
        self.host.group(group)
    }

    /// Every hosted group.
    pub fn groups(&self) -> impl Iterator<Item = (GroupId, &RaftNode)> {
        self.host.groups()
    }

    /// The multi-Raft host (for stats).
    pub fn host(&self) -> &MultiRaft {
        &self.host
    }

    /// What the node did so far.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Client requests not yet answered.
    pub fn requests_in_flight(&self) -> usize {
        let internal = self.clients.keys().filter(|&&c| c >= super::name_barrier::INTERNAL_CLIENTS).count();
        self.clients.len() - internal + self.barrier.len()
    }

    /// Outputs produced while booting (the metadata group's first records), to be taken once
    /// by the driver right after [`Node::new`].
    pub fn take_boot_outputs(&mut self) -> Vec<NodeOutput> {
        std::mem::take(&mut self.boot_out)
    }

    /// Ids of parts, serves and reads. They start in a range of their own for every incarnation:
    /// replies carry the part id and a reply of an earlier boot may arrive late, so a reused id
    /// would answer a new request with an old one's result (found by the simulator: a quorum
    /// read of one point answered with a read of another, issued before the origin restarted).
    pub(super) fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        debug_assert!(self.next_id >> ID_BITS_PER_INCARNATION == first_id(self.cfg.incarnation) >> ID_BITS_PER_INCARNATION);
        id
    }

    /// Queues `msg` for `to` (this node included: then it is handled in this step).
    pub(super) fn send_peer(&mut self, to: NodeId, msg: PeerMessage) {
        if to == self.cfg.id {
            self.work.push_back(Work::Peer(to, msg));
        } else {
            self.envelope_to(to).peer.push(msg);
        }
    }

    fn envelope_to(&mut self, to: NodeId) -> &mut NodeEnvelope {
        let from = self.cfg.id;
        self.outbox.entry(to).or_insert_with(|| NodeEnvelope { from, to, raft: None, peer: Vec::new() })
    }

    /// Runs queued work to exhaustion, then the write-acknowledgement checks, until nothing is
    /// left; then hands out the envelopes.
    fn drain(&mut self, now: Time, out: &mut Vec<NodeOutput>) {
        let mut host_out = Vec::new();
        loop {
            while let Some(w) = self.work.pop_front() {
                match w {
                    Work::Host(input) => {
                        self.host.step(now, input, &mut host_out);
                        for o in host_out.drain(..) {
                            self.on_host_output(now, o, out);
                        }
                    }
                    Work::Peer(from, msg) => self.on_peer(now, from, msg, out),
                }
            }
            self.check_serves(now, out);
            if self.work.is_empty() {
                break;
            }
        }
        self.learn_leaders();
        for (_, env) in std::mem::take(&mut self.outbox) {
            out.push(NodeOutput::Send(env));
        }
    }

    /// Refreshes the leader hints from the groups hosted here.
    fn learn_leaders(&mut self) {
        for (g, r) in self.host.groups() {
            if let Some(l) = r.leader() {
                self.leader_hints.insert(g, l);
            }
        }
    }

    pub(super) fn on_host_output(&mut self, now: Time, o: MultiRaftOutput, out: &mut Vec<NodeOutput>) {
        match o {
            MultiRaftOutput::Send(env) => merge_envelope(self.envelope_to(env.to), env),
            MultiRaftOutput::Persist { seq, records } => out.push(NodeOutput::Persist { seq, records }),
            MultiRaftOutput::Apply { group, entry, request } => {
                if let Some(id) = request {
                    self.mark_committed(id, entry.index);
                }
                if group == METADATA_GROUP {
                    self.apply_metadata(now, entry.index, &entry.payload, out);
                    self.work.push_back(Work::Host(MultiRaftInput::Applied { group, index: entry.index }));
                } else {
                    let command = match entry.payload {
                        EntryPayload::Command(b) => Some(b),
                        _ => None,
                    };
                    out.push(NodeOutput::Apply { group, index: entry.index, command });
                }
            }
            MultiRaftOutput::ReadReady { group: _, id, index } => self.read_ready(now, id, index, out),
            MultiRaftOutput::Respond { group: _, response } => self.group_refused(now, response),
            MultiRaftOutput::Group { group, output } => match output {
                RaftOutput::MembershipChanged { .. } => {}
                // The metadata state lives here and is rebuilt from its log at boot.
                _ if group == METADATA_GROUP => {}
                RaftOutput::TakeSnapshot { index } => out.push(NodeOutput::TakeSnapshot { group, index }),
                output => out.push(NodeOutput::Raft { group, output }),
            },
        }
    }

    /// Applies a committed metadata entry and reacts: shard replicas placed here are created
    /// or dropped (groups in the host, engines at the driver).
    fn apply_metadata(&mut self, now: Time, index: LogIndex, payload: &EntryPayload, out: &mut Vec<NodeOutput>) {
        self.applied.insert(METADATA_GROUP, index);
        self.note_metadata_repair();
        let EntryPayload::Command(bytes) = payload else {
            // A leader's no-op (or a configuration entry) moves the applied index too, and a
            // name barrier may wait on exactly that index.
            return self.metadata_applied(now, index, out);
        };
        let leads_meta = self.host.group(METADATA_GROUP).is_some_and(|r| r.role() == crate::raft::Role::Leader);
        let result = MetaCommand::decode(bytes).map_err(MetaRefusal::Invalid).and_then(|c| {
            if self.bugs.aliases_only_on_meta_leader && matches!(c, MetaCommand::UpdateAliases { .. }) && !leads_meta {
                return Ok(MetaEvent::AliasesChanged);
            }
            self.meta.apply(c)
        });
        let me = self.cfg.id;
        match &result {
            Ok(MetaEvent::Created(c)) => {
                for (shard, replicas) in c.replicas.iter().enumerate() {
                    if !replicas.contains(&me) {
                        continue;
                    }
                    let group = super::metadata::shard_group(c.id, shard as u32);
                    out.push(NodeOutput::ShardCreated { group, collection: c.name.clone(), config: c.config });
                    let applied = self.restored.remove(&group).unwrap_or(0);
                    self.applied.insert(group, applied);
                    let durable = self.recovered.remove(&group).unwrap_or_else(|| self.unknown_group_state(index));
                    self.work.push_back(Work::Host(MultiRaftInput::CreateGroup {
                        group,
                        voters: replicas.clone(),
                        durable,
                        applied,
                    }));
                }
            }
            Ok(MetaEvent::Dropped(c)) => self.drop_local_shards(c, out),
            Ok(MetaEvent::Replaced { dropped, renamed }) => {
                if let Some(c) = dropped {
                    self.drop_local_shards(c, out);
                }
                for (shard, replicas) in renamed.replicas.iter().enumerate() {
                    if replicas.contains(&me) {
                        let group = super::metadata::shard_group(renamed.id, shard as u32);
                        out.push(NodeOutput::ShardRenamed { group, collection: renamed.name.clone() });
                    }
                }
            }
            Ok(MetaEvent::AliasesChanged) | Err(_) => {}
        }
        if self.serves.values().any(|s| s.waits_for_meta(index)) {
            self.meta_results.insert(index, result.map(|_| ()));
        }
        self.metadata_applied(now, index, out);
    }

    /// Removes this node's replicas of a dropped collection (groups here, engines at the driver).
    fn drop_local_shards(&mut self, c: &super::metadata::CollectionMeta, out: &mut Vec<NodeOutput>) {
        for (shard, replicas) in c.replicas.iter().enumerate() {
            if replicas.contains(&self.cfg.id) {
                let group = super::metadata::shard_group(c.id, shard as u32);
                self.applied.remove(&group);
                self.leader_hints.remove(&group);
                self.work.push_back(Work::Host(MultiRaftInput::RemoveGroup { group }));
                out.push(NodeOutput::ShardDropped { group });
            }
        }
    }

    /// Routes every peer message.
    fn on_peer(&mut self, now: Time, from: NodeId, msg: PeerMessage, out: &mut Vec<NodeOutput>) {
        match msg {
            PeerMessage::Write { part, origin_incarnation, group, command, ack, time_left } => {
                if self.first_copy(from, origin_incarnation, part.id, part.attempt) {
                    self.serve_write(now, from, part, group, command, ack, time_left, out)
                }
            }
            PeerMessage::Read { part, group, query, level, time_left } => {
                self.serve_read(now, from, part, group, query, level, time_left, out)
            }
            PeerMessage::WriteReply { part, result } => self.write_replied(now, from, part, result, out),
            PeerMessage::ReadReply { part, result } => self.read_replied(now, from, part, result, out),
            PeerMessage::Ping { incarnation } => {
                // A late ping of an older incarnation changes nothing (the newest one is kept).
                let known = self.peer_incarnations.get(&from).copied();
                if known.is_none_or(|k| k < incarnation) {
                    self.peer_incarnations.insert(from, incarnation);
                }
                if known.is_some_and(|k| k < incarnation) {
                    self.stats.peer_restarts += 1;
                    self.work.push_back(Work::Host(MultiRaftInput::PeerRestarted { node: from }));
                }
            }
        }
    }

    /// The durable state of a group the WAL holds nothing of: empty on a healthy disk; on a
    /// damaged one the group's records may have been destroyed (votes included), so it starts
    /// damaged and neither votes nor campaigns until a leader repairs it. Limit: its lost votes'
    /// terms are unknown, so repair by a leader of any term above 0 is trusted (a vote lost in a
    /// higher term than the repairing leader's could be cast twice; bounding that needs asking
    /// peers, as protocol-aware recovery does).
    fn unknown_group_state(&mut self, created_at: LogIndex) -> DurableState {
        self.note_metadata_repair();
        let new = self.meta_whole_after.is_some_and(|w| created_at > w);
        DurableState { damaged: self.boot_damaged && !new, ..DurableState::default() }
    }

    /// Remembers where the metadata log ended when it was first seen repaired after a damaged
    /// boot (see `meta_whole_after`); checked at every metadata apply.
    fn note_metadata_repair(&mut self) {
        if self.boot_damaged
            && self.meta_whole_after.is_none()
            && let Some(r) = self.host.group(METADATA_GROUP).filter(|r| !r.is_damaged())
        {
            self.meta_whole_after = Some(r.log().last_index().max(r.commit_index()));
        }
    }

    /// Whether this is the first copy of a forwarded write to arrive (networks duplicate and
    /// replay packets; a second proposal could apply an old write after a newer one). Limits:
    /// the memory is lost at a restart, so a copy replayed to a restarted node is proposed again;
    /// exactly-once across restarts needs the dedup in the replicated state (Raft sessions).
    fn first_copy(&mut self, origin: NodeId, incarnation: u64, part: u64, attempt: u32) -> bool {
        let w = self.seen_writes.entry((origin, incarnation)).or_default();
        if part + WINDOW <= w.highest || !w.seen.insert((part, attempt)) {
            return false;
        }
        if part > w.highest {
            w.highest = part;
            let floor = part.saturating_sub(WINDOW);
            w.seen = w.seen.split_off(&(floor, 0));
        }
        true
    }

    /// Liveness: any envelope from a peer proves it alive; silence for `suspect_after` makes
    /// it suspected, which wakes the groups it led.
    fn heard_from(&mut self, now: Time, peer: NodeId) {
        self.last_heard.insert(peer, now);
        if self.suspected.remove(&peer) {
            self.work.push_back(Work::Host(MultiRaftInput::PeerUp { node: peer }));
        }
    }

    fn liveness_tick(&mut self, now: Time, out: &mut Vec<NodeOutput>) {
        let me = self.cfg.id;
        let newly: Vec<NodeId> = self
            .last_heard
            .iter()
            .filter(|&(&peer, &at)| {
                peer != me && now.saturating_since(at) > self.cfg.suspect_after && !self.suspected.contains(&peer)
            })
            .map(|(&peer, _)| peer)
            .collect();
        for peer in newly {
            self.suspected.insert(peer);
            self.stats.suspicions += 1;
            self.work.push_back(Work::Host(MultiRaftInput::PeerDown { node: peer }));
            self.target_suspected(now, peer, out);
        }
        if now >= self.next_ping {
            self.next_ping = now + self.cfg.ping_interval;
            for peer in self.cfg.members.clone() {
                if peer != me {
                    let incarnation = self.cfg.incarnation;
                    self.envelope_to(peer).peer.push(PeerMessage::Ping { incarnation });
                }
            }
        }
    }

    /// The driver took a snapshot of a shard engine at `index`: Raft may compact behind it. A
    /// snapshot taken beyond what the node has been told is applied means the `Applied` input is
    /// still on its way; the engine has applied it, so it is taken as applied now.
    fn snapshot_taken(&mut self, now: Time, group: GroupId, index: LogIndex, size: u64, checksum: [u8; 32], out: &mut Vec<NodeOutput>) {
        let Some(&applied) = self.applied.get(&group) else { return };
        if index > applied {
            let Some(r) = self.host.group(group) else { return };
            if index > r.apply_sent_index() {
                return; // the driver cannot have applied entries it was never given
            }
            self.applied.insert(group, index);
            self.work.push_back(Work::Host(MultiRaftInput::Applied { group, index }));
            self.drain(now, out);
        }
        let Some(r) = self.host.group(group) else { return };
        let Some(term) = r.log().term_at(index) else { return };
        let meta = SnapshotMeta { index, term, membership: r.applied_membership(), size, checksum };
        self.work.push_back(Work::Host(MultiRaftInput::Group { group, input: RaftInput::SnapshotTaken { meta } }));
    }

    fn fire_timers(&mut self, now: Time, out: &mut Vec<NodeOutput>) {
        while let Some(&(at, timer)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match timer {
                Timer::Deadline(client) => self.deadline(now, client, out),
                Timer::Retry(part, attempt) => self.retry_due(now, part, attempt),
                Timer::ReadAttempt(part, attempt) => self.read_attempt_expired(now, part, attempt),
                Timer::ServeExpiry(id) => {
                    self.serves.remove(&id);
                }
            }
        }
    }
}

impl StateMachine for Node {
    type Input = NodeInput;
    type Output = NodeOutput;

    fn step(&mut self, now: Time, input: NodeInput, out: &mut Vec<NodeOutput>) {
        match input {
            NodeInput::Tick => {
                self.fire_timers(now, out);
                self.liveness_tick(now, out);
                self.work.push_back(Work::Host(MultiRaftInput::Tick));
            }
            NodeInput::Envelope(env) => {
                if env.to != self.cfg.id || !self.cfg.members.contains(&env.from) || env.from == self.cfg.id {
                    return; // misrouted or from outside the cluster: dropped
                }
                self.heard_from(now, env.from);
                if let Some(raft) = env.raft {
                    self.work.push_back(Work::Host(MultiRaftInput::Envelope(raft)));
                }
                for msg in env.peer {
                    self.work.push_back(Work::Peer(env.from, msg));
                }
            }
            NodeInput::Persisted { seq } => self.work.push_back(Work::Host(MultiRaftInput::Persisted { seq })),
            NodeInput::Request { client, request, timeout } => self.client_request(now, client, request, timeout, out),
            NodeInput::Applied { group, index } => {
                if group == METADATA_GROUP || !self.applied.contains_key(&group) {
                    return; // the metadata group is applied here; dropped shards are gone
                }
                let a = self.applied.entry(group).or_insert(0);
                if index <= *a {
                    return;
                }
                *a = index;
                self.work.push_back(Work::Host(MultiRaftInput::Applied { group, index }));
            }
            NodeInput::ReadDone { read, result } => self.read_done(now, read, result),
            NodeInput::SnapshotTaken { group, index, size, checksum } => {
                self.snapshot_taken(now, group, index, size, checksum, out)
            }
            NodeInput::Raft { group, input } => {
                if group == METADATA_GROUP || !self.applied.contains_key(&group) {
                    return self.drain(now, out);
                }
                if let RaftInput::SnapshotInstalled { meta } = &input {
                    // The engine now holds exactly the snapshot's state.
                    self.applied.insert(group, meta.index);
                }
                self.work.push_back(Work::Host(MultiRaftInput::Group { group, input }));
            }
        }
        self.drain(now, out);
    }
}

/// Appends a host envelope's contents to the one already going to the same node.
fn merge_envelope(env: &mut NodeEnvelope, add: Envelope) {
    match &mut env.raft {
        None => env.raft = Some(add),
        Some(e) => {
            e.heartbeats.extend(add.heartbeats);
            e.acks.extend(add.acks);
            e.messages.extend(add.messages);
        }
    }
}

/// The shard number of a shard group (for errors and gathers).
pub(super) fn shard_of_group(group: GroupId) -> u32 {
    group_shard(group).1
}

/// Bits of an id that count within one incarnation: 2^40 ids per boot (over three years at ten
/// thousand a second), 2^24 incarnations.
const ID_BITS_PER_INCARNATION: u32 = 40;

/// The first id of `incarnation` (see `Node::fresh_id`).
pub(super) fn first_id(incarnation: u64) -> u64 {
    ((incarnation & ((1 << (64 - ID_BITS_PER_INCARNATION)) - 1)) << ID_BITS_PER_INCARNATION) + 1
}
