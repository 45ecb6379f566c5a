//! The host: routes inputs to groups by id, turns each group's outputs into node-level outputs
//! (envelopes, one persist batch, tagged applies and answers), keeps the timers of awake groups
//! and feeds failure-detector news to the groups it concerns.

use super::envelope::Outbox;
use super::io::{MultiRaftConfig, MultiRaftInput, MultiRaftOutput};
use super::persist::PersistBatcher;
use super::schedule::Schedule;
use crate::contract::{NodeId, StateMachine, Time};
use crate::raft::{
    ClientError, ClientResponse, DurableState, GroupId, LogIndex, RaftInput, RaftNode, RaftOutput, Role,
};
use std::collections::{BTreeMap, BTreeSet};

/// Counters of what a host did (for tests, benchmarks and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// Steps taken.
    pub steps: u64,
    /// Steps of individual groups (a `Tick` of the host steps only the groups that are due).
    pub group_steps: u64,
    /// Envelopes sent.
    pub envelopes: u64,
    /// Coalesced heartbeats sent.
    pub heartbeats: u64,
    /// Coalesced acknowledgements sent.
    pub acks: u64,
    /// Uncompressed group messages sent.
    pub messages: u64,
    /// Persist batches emitted.
    pub persist_batches: u64,
    /// Records in those batches.
    pub persist_records: u64,
}

/// Many Raft groups on one node: see the module documentation.
pub struct MultiRaft {
    cfg: MultiRaftConfig,
    groups: BTreeMap<GroupId, RaftNode>,
    schedule: Schedule,
    outbox: Outbox,
    persist: PersistBatcher,
    /// Nodes the failure detector currently suspects.
    down: BTreeSet<NodeId>,
    stats: HostStats,
    /// Scratch space for one group's outputs.
    buf: Vec<RaftOutput>,
}

impl MultiRaft {
    /// An empty host; groups arrive with `CreateGroup`.
    pub fn new(cfg: MultiRaftConfig) -> Self {
        let schedule = Schedule::new(cfg.tick);
        MultiRaft {
            cfg,
            groups: BTreeMap::new(),
            schedule,
            outbox: Outbox::default(),
            persist: PersistBatcher::default(),
            down: BTreeSet::new(),
            stats: HostStats::default(),
            buf: Vec::new(),
        }
    }

    /// This host's node.
    pub fn node(&self) -> NodeId {
        self.cfg.node
    }

    /// The earliest instant any awake group needs a `Tick` (`None`: every group is quiesced).
    pub fn next_deadline(&self) -> Option<Time> {
        self.schedule.next()
    }

    /// The replica of `group` hosted here.
    pub fn group(&self, group: GroupId) -> Option<&RaftNode> {
        self.groups.get(&group)
    }

    /// Every hosted group, by id.
    pub fn groups(&self) -> impl Iterator<Item = (GroupId, &RaftNode)> {
        self.groups.iter().map(|(g, r)| (*g, r))
    }

    /// Groups whose timers run.
    pub fn awake_groups(&self) -> usize {
        self.schedule.awake()
    }

    /// Persist batches written and not yet acknowledged.
    pub fn persist_in_flight(&self) -> usize {
        self.persist.in_flight()
    }

    /// What the host did so far.
    pub fn stats(&self) -> HostStats {
        self.stats
    }

    /// Whether `voters` may quiesce: quiescence is on and none of them is suspected down.
    fn quiesce_allowed(&self, voters: &[NodeId]) -> bool {
        self.cfg.quiescence && !voters.iter().any(|v| self.down.contains(v))
    }

    /// Steps one group and routes its outputs. Unknown groups are ignored.
    fn drive(&mut self, now: Time, group: GroupId, input: RaftInput, out: &mut Vec<MultiRaftOutput>) {
        let Some(raft) = self.groups.get_mut(&group) else {
            return;
        };
        self.stats.group_steps += 1;
        raft.step(now, input, &mut self.buf);
        let marked = raft.quiesce_round();
        let me = self.cfg.node;
        for o in self.buf.drain(..) {
            match o {
                RaftOutput::Send(msg) => self.outbox.push(me, msg, marked),
                RaftOutput::Persist { seq, record } => self.persist.push(group, seq, record),
                RaftOutput::Apply { entry, request } => out.push(MultiRaftOutput::Apply { group, entry, request }),
                RaftOutput::ReadReady { id, index } => out.push(MultiRaftOutput::ReadReady { group, id, index }),
                RaftOutput::Respond(response) => out.push(MultiRaftOutput::Respond { group, response }),
                output @ (RaftOutput::MembershipChanged { .. }
                | RaftOutput::TakeSnapshot { .. }
                | RaftOutput::ReadSnapshotChunk { .. }
                | RaftOutput::StageSnapshotChunk { .. }
                | RaftOutput::InstallSnapshot { .. }) => out.push(MultiRaftOutput::Group { group, output }),
            }
        }
        self.schedule.set(group, raft.next_deadline(), raft.role() == Role::Leader);
    }

    fn reject_unknown(group: GroupId, id: u64, out: &mut Vec<MultiRaftOutput>) {
        let response =
            ClientResponse { id, result: Err(ClientError::Rejected(format!("group {group} is not hosted here"))) };
        out.push(MultiRaftOutput::Respond { group, response });
    }

    fn create_group(
        &mut self,
        now: Time,
        group: GroupId,
        voters: Vec<NodeId>,
        durable: DurableState,
        applied: LogIndex,
    ) {
        if self.groups.contains_key(&group) {
            return;
        }
        let mut cfg = self.cfg.raft.clone();
        cfg.id = self.cfg.node;
        cfg.group = group;
        cfg.seed = self.cfg.seed ^ group.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        cfg.voters = voters;
        if cfg.validate().is_err() {
            // A group this node is not a voter of (or a broken template) cannot be hosted; the
            // caller (placement, metadata) sees it missing from `groups()`.
            return;
        }
        let allowed = self.quiesce_allowed(&cfg.voters);
        let mut raft = RaftNode::new(cfg, durable, applied, now);
        raft.set_quiesce_allowed(allowed);
        self.schedule.set(group, raft.next_deadline(), raft.role() == Role::Leader);
        self.groups.insert(group, raft);
    }

    fn remove_group(&mut self, group: GroupId) {
        if self.groups.remove(&group).is_some() {
            self.schedule.set(group, None, false);
            self.persist.forget(group);
        }
    }

    /// `node` is suspected down: groups it belongs to may not quiesce, groups it leads here wake
    /// and campaign soon. This visits every group once; it is rare (a failure-detector verdict),
    /// unlike ticks and messages, which only touch the groups concerned.
    fn peer_down(&mut self, now: Time, node: NodeId) {
        if node == self.cfg.node || !self.down.insert(node) {
            return;
        }
        for (&g, raft) in self.groups.iter_mut() {
            if raft.config().voters.contains(&node) {
                raft.set_quiesce_allowed(false);
                raft.leader_down(now, node);
                self.schedule.set(g, raft.next_deadline(), raft.role() == Role::Leader);
            }
        }
    }

    /// `node` is trusted again: its groups may quiesce again, and quiesced groups led here that it
    /// belongs to send a heartbeat now, so that the returning node hears its leader before its
    /// election timer runs out.
    fn peer_up(&mut self, now: Time, node: NodeId, out: &mut Vec<MultiRaftOutput>) {
        if !self.down.remove(&node) {
            return;
        }
        let mut heartbeat = Vec::new();
        let cfg_quiescence = self.cfg.quiescence;
        for (&g, raft) in self.groups.iter_mut() {
            let voters = &raft.config().voters;
            if voters.contains(&node) {
                let allowed = cfg_quiescence && !voters.iter().any(|v| self.down.contains(v));
                raft.set_quiesce_allowed(allowed);
                if raft.is_quiesced() && raft.leader() == Some(self.cfg.node) {
                    raft.wake(now);
                    heartbeat.push(g);
                }
            }
        }
        for g in heartbeat {
            self.drive(now, g, RaftInput::Tick, out);
        }
    }

    /// `node` restarted: followers here whose leader it was elect a new one (its leadership
    /// died with the process), and quiesced groups led here that it belongs to wake and send it
    /// a heartbeat.
    fn peer_restarted(&mut self, now: Time, node: NodeId, out: &mut Vec<MultiRaftOutput>) {
        if node == self.cfg.node {
            return;
        }
        let mut heartbeat = Vec::new();
        for (&g, raft) in self.groups.iter_mut() {
            if !raft.config().voters.contains(&node) {
                continue;
            }
            if raft.leader() == Some(node) {
                raft.leader_down(now, node);
                self.schedule.set(g, raft.next_deadline(), raft.role() == Role::Leader);
            } else if raft.is_quiesced() && raft.leader() == Some(self.cfg.node) {
                raft.wake(now);
                heartbeat.push(g);
            }
        }
        for g in heartbeat {
            self.drive(now, g, RaftInput::Tick, out);
        }
    }

    /// Emits this step's envelopes and persist batch.
    fn flush(&mut self, out: &mut Vec<MultiRaftOutput>) {
        for env in self.outbox.drain() {
            self.stats.envelopes += 1;
            self.stats.heartbeats += env.heartbeats.len() as u64;
            self.stats.acks += env.acks.len() as u64;
            self.stats.messages += env.messages.len() as u64;
            out.push(MultiRaftOutput::Send(env));
        }
        if let Some((seq, records)) = self.persist.take_batch() {
            self.stats.persist_batches += 1;
            self.stats.persist_records += records.len() as u64;
            out.push(MultiRaftOutput::Persist { seq, records });
        }
    }
}

impl StateMachine for MultiRaft {
    type Input = MultiRaftInput;
    type Output = MultiRaftOutput;

    fn step(&mut self, now: Time, input: MultiRaftInput, out: &mut Vec<MultiRaftOutput>) {
        self.stats.steps += 1;
        match input {
            MultiRaftInput::Tick => {
                for g in self.schedule.due(now) {
                    self.drive(now, g, RaftInput::Tick, out);
                }
            }
            MultiRaftInput::Envelope(env) => {
                let me = self.cfg.node;
                if env.to == me && env.from != me {
                    let from = env.from;
                    for h in env.heartbeats {
                        self.drive(now, h.group, RaftInput::Message(h.to_message(from, me)), out);
                        if h.quiesce
                            && !self.down.contains(&from)
                            && let Some(raft) = self.groups.get_mut(&h.group)
                        {
                            raft.quiesce_as_follower(from, h.term, h.round);
                            self.schedule.set(h.group, raft.next_deadline(), raft.role() == Role::Leader);
                        }
                    }
                    for a in env.acks {
                        self.drive(now, a.group, RaftInput::Message(a.to_message(from, me)), out);
                    }
                    for m in env.messages {
                        // Never trust the wire: a message must match its envelope's node pair.
                        if m.from == from && m.to == me {
                            self.drive(now, m.group, RaftInput::Message(m), out);
                        }
                    }
                }
            }
            MultiRaftInput::Persisted { seq } => {
                for (g, s) in self.persist.persisted(seq) {
                    self.drive(now, g, RaftInput::Persisted { seq: s }, out);
                }
            }
            MultiRaftInput::Propose { group, id, command } => {
                if self.groups.contains_key(&group) {
                    self.drive(now, group, RaftInput::Propose { id, command }, out);
                } else {
                    Self::reject_unknown(group, id, out);
                }
            }
            MultiRaftInput::Read { group, id, mode } => {
                if self.groups.contains_key(&group) {
                    self.drive(now, group, RaftInput::Read { id, mode }, out);
                } else {
                    Self::reject_unknown(group, id, out);
                }
            }
            MultiRaftInput::Applied { group, index } => self.drive(now, group, RaftInput::Applied { index }, out),
            MultiRaftInput::TransferLeadership { group, to } => {
                self.drive(now, group, RaftInput::TransferLeadership { to }, out)
            }
            MultiRaftInput::CreateGroup { group, voters, durable, applied } => {
                self.create_group(now, group, voters, durable, applied)
            }
            MultiRaftInput::RemoveGroup { group } => self.remove_group(group),
            MultiRaftInput::PeerDown { node } => self.peer_down(now, node),
            MultiRaftInput::PeerUp { node } => self.peer_up(now, node, out),
            MultiRaftInput::PeerRestarted { node } => self.peer_restarted(now, node, out),
            MultiRaftInput::Group { group, input } => match input {
                RaftInput::Tick | RaftInput::Message(_) | RaftInput::Persisted { .. } => {
                    debug_assert!(false, "node-level inputs have their own MultiRaftInput forms");
                }
                RaftInput::ProposeConfChange { id, .. } if !self.groups.contains_key(&group) => {
                    Self::reject_unknown(group, id, out)
                }
                input => self.drive(now, group, input, out),
            },
        }
        self.flush(out);
    }
}
