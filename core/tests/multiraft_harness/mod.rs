//! A deterministic in-test cluster of multi-Raft hosts.
//!
//! One virtual clock drives every host (hosts never compare readings, so sharing it is harmless).
//! The network carries whole envelopes with a seeded loss rate and a seeded delay per envelope
//! (which reorders them); disks acknowledge each persist batch after a fixed latency; every
//! `Apply` is applied at once and stepped back as `Applied`. After every step the harness checks
//! the host's output shape (at most one persist batch, at most one envelope per destination) and
//! Raft's election safety (one leader per term per group), so every test checks them throughout.

#![allow(dead_code)] // each test uses a different subset

use bytes::Bytes;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::multiraft::{Envelope, MultiRaft, MultiRaftConfig, MultiRaftInput, MultiRaftOutput};
use vecraft_core::raft::{
    ClientResponse, DurableState, EntryPayload, GroupId, LogIndex, PersistRecord, RaftConfig, RaftNode, Role, Term,
};

/// Disk latency of every persist batch.
pub const DISK: Duration = Duration::from_millis(1);

/// What happens at an instant.
#[derive(Clone, Debug)]
pub enum Event {
    /// An envelope arrives at its `to` node.
    Deliver(Envelope),
    /// A host's persist batch `seq` became durable.
    Persisted(NodeId, u64),
}

/// One host and what it produced.
pub struct Host {
    /// The machine (`None` once crashed).
    pub mr: Option<MultiRaft>,
    /// Durable records, in write order.
    pub disk: Vec<PersistRecord>,
    /// Applied commands per group, in apply order.
    pub applied: BTreeMap<GroupId, Vec<(LogIndex, Bytes)>>,
    /// Client answers per group.
    pub responses: Vec<(GroupId, ClientResponse)>,
    /// Reads served: (group, id, index).
    pub reads: Vec<(GroupId, u64, LogIndex)>,
}

/// Counters the harness keeps.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    /// Envelopes handed to the network (lost or not).
    pub envelopes: u64,
    /// Group messages inside them (heartbeats + acks + messages).
    pub group_messages: u64,
    /// Envelopes per (from, to) pair.
    pub per_pair: BTreeMap<(NodeId, NodeId), u64>,
    /// Groups that appeared in any envelope.
    pub groups_seen: BTreeSet<GroupId>,
    /// Steps taken and persist batches emitted, over all hosts.
    pub steps: u64,
    /// Persist batches emitted.
    pub batches: u64,
    /// The largest number of distinct groups in one batch.
    pub widest_batch: usize,
}

/// The cluster.
pub struct Cluster {
    /// Hosts by node id.
    pub hosts: BTreeMap<NodeId, Host>,
    /// The virtual clock.
    pub now: Time,
    /// Pending events by (instant, insertion order).
    pub events: BTreeMap<(Time, u64), Event>,
    order: u64,
    rng: ChaCha8Rng,
    /// Probability that an envelope is lost.
    pub loss: f64,
    /// Envelope delays are uniform in `[min_delay, max_delay]`.
    pub min_delay: Duration,
    /// See `min_delay`.
    pub max_delay: Duration,
    /// Election safety witness: who led each (group, term).
    pub leaders: BTreeMap<(GroupId, Term), NodeId>,
    /// Traffic counters (reset by tests as they like).
    pub traffic: Traffic,
    /// Every output of the latest step (for exact assertions).
    pub last_outputs: Vec<MultiRaftOutput>,
    /// Directed links that drop everything (partitions).
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Template tweak applied to every host's Raft configuration.
    pub bugs: vecraft_core::raft::InjectedBugs,
}

/// Test timings: the Raft defaults (election timeout [300ms, 600ms), heartbeat 50ms, tick 50ms).
pub fn host_config(node: NodeId, quiescence: bool, seed: u64) -> MultiRaftConfig {
    let mut cfg = MultiRaftConfig::new(node, seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ node);
    cfg.quiescence = quiescence;
    cfg.raft = RaftConfig::new(node, 0, vec![node], 0);
    cfg
}

impl Cluster {
    /// `nodes` hosts each hosting groups `1..=groups` (all voters on every node), created at 0.
    pub fn new(nodes: &[NodeId], groups: u64, quiescence: bool, seed: u64) -> Self {
        Self::with_bugs(nodes, groups, quiescence, seed, Default::default())
    }

    /// Like [`Cluster::new`], with protocol bugs switched on in every group (bug-injection builds).
    pub fn with_bugs(
        nodes: &[NodeId],
        groups: u64,
        quiescence: bool,
        seed: u64,
        bugs: vecraft_core::raft::InjectedBugs,
    ) -> Self {
        let mut c = Cluster {
            hosts: BTreeMap::new(),
            now: Time::ZERO,
            events: BTreeMap::new(),
            order: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            loss: 0.0,
            min_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(2),
            leaders: BTreeMap::new(),
            traffic: Traffic::default(),
            last_outputs: Vec::new(),
            cut: BTreeSet::new(),
            bugs,
        };
        for &n in nodes {
            let host = Host {
                mr: Some(MultiRaft::new({
                    let mut cfg = host_config(n, quiescence, seed);
                    cfg.raft.bugs = bugs;
                    cfg
                })),
                disk: Vec::new(),
                applied: BTreeMap::new(),
                responses: Vec::new(),
                reads: Vec::new(),
            };
            c.hosts.insert(n, host);
        }
        for &n in nodes {
            for g in 1..=groups {
                c.input(
                    n,
                    MultiRaftInput::CreateGroup {
                        group: g,
                        voters: nodes.to_vec(),
                        durable: DurableState::default(),
                        applied: 0,
                    },
                );
            }
        }
        c
    }

    /// The live host `n`.
    pub fn host(&self, n: NodeId) -> &MultiRaft {
        self.hosts[&n].mr.as_ref().expect("host is up")
    }

    /// Group `g` on live host `n`.
    pub fn raft(&self, n: NodeId, g: GroupId) -> &RaftNode {
        self.host(n).group(g).expect("group hosted")
    }

    fn schedule(&mut self, at: Time, e: Event) {
        self.order += 1;
        self.events.insert((at, self.order), e);
    }

    /// Steps `input` into host `n` at the current instant and routes the outputs.
    pub fn input(&mut self, n: NodeId, input: MultiRaftInput) {
        let now = self.now;
        let host = self.hosts.get_mut(&n).expect("known host");
        let Some(mr) = host.mr.as_mut() else { return };
        let mut out = Vec::new();
        mr.step(now, input, &mut out);
        self.traffic.steps += 1;
        // Output shape: at most one persist batch, at most one envelope per destination.
        let batches = out.iter().filter(|o| matches!(o, MultiRaftOutput::Persist { .. })).count();
        assert!(batches <= 1, "host {n} emitted {batches} persist batches in one step");
        let mut dests = BTreeSet::new();
        for o in &out {
            if let MultiRaftOutput::Send(env) = o {
                assert!(dests.insert(env.to), "host {n} sent two envelopes to {} in one step", env.to);
                assert_eq!(env.from, n);
            }
        }
        // Election safety: one leader per (group, term), ever.
        for (g, raft) in mr.groups() {
            if raft.role() == Role::Leader {
                let who = *self.leaders.entry((g, raft.term())).or_insert(n);
                assert_eq!(who, n, "group {g} has two leaders in term {}: {who} and {n}", raft.term());
            }
        }
        let mut applied_now: BTreeMap<GroupId, LogIndex> = BTreeMap::new();
        for o in out.iter().cloned() {
            match o {
                MultiRaftOutput::Send(env) => {
                    self.traffic.envelopes += 1;
                    self.traffic.group_messages += env.group_messages() as u64;
                    *self.traffic.per_pair.entry((env.from, env.to)).or_insert(0) += 1;
                    let groups = env
                        .heartbeats
                        .iter()
                        .map(|h| h.group)
                        .chain(env.acks.iter().map(|a| a.group))
                        .chain(env.messages.iter().map(|m| m.group));
                    self.traffic.groups_seen.extend(groups);
                    if self.cut.contains(&(env.from, env.to)) || (self.loss > 0.0 && self.rng.random_bool(self.loss)) {
                        continue;
                    }
                    let (lo, hi) = (self.min_delay.as_nanos() as u64, self.max_delay.as_nanos() as u64);
                    let d = if hi > lo { self.rng.random_range(lo..=hi) } else { lo };
                    self.schedule(Time(now.0 + d), Event::Deliver(env));
                }
                MultiRaftOutput::Persist { seq, records } => {
                    self.traffic.batches += 1;
                    let groups: BTreeSet<GroupId> = records.iter().map(|r| r.group).collect();
                    self.traffic.widest_batch = self.traffic.widest_batch.max(groups.len());
                    let host = self.hosts.get_mut(&n).expect("known");
                    host.disk.extend(records);
                    self.schedule(now + DISK, Event::Persisted(n, seq));
                }
                MultiRaftOutput::Apply { group, entry, .. } => {
                    let host = self.hosts.get_mut(&n).expect("known");
                    let cmd = match entry.payload {
                        EntryPayload::Command(b) => b,
                        EntryPayload::Noop | EntryPayload::ConfChange(_) => Bytes::new(),
                    };
                    host.applied.entry(group).or_default().push((entry.index, cmd));
                    applied_now.insert(group, entry.index);
                }
                MultiRaftOutput::ReadReady { group, id, index } => {
                    self.hosts.get_mut(&n).expect("known").reads.push((group, id, index));
                }
                // The harness changes no membership and stays below the compaction thresholds.
                MultiRaftOutput::Group { output, .. } => {
                    assert!(matches!(output, vecraft_core::raft::RaftOutput::MembershipChanged { .. }), "{output:?}")
                }
                MultiRaftOutput::Respond { group, response } => {
                    self.hosts.get_mut(&n).expect("known").responses.push((group, response));
                }
            }
        }
        self.last_outputs = out;
        for (group, index) in applied_now {
            self.input(n, MultiRaftInput::Applied { group, index });
        }
    }

    /// The earliest instant something happens (an event or a host deadline).
    pub fn next_instant(&self) -> Option<Time> {
        let ev = self.events.keys().next().map(|(t, _)| *t);
        let dl = self.hosts.values().filter_map(|h| h.mr.as_ref()).filter_map(|m| m.next_deadline()).min();
        match (ev, dl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs every event and deadline up to and including `until`, then sets the clock to it.
    pub fn run_until(&mut self, until: Time) {
        while let Some(t) = self.next_instant() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            while let Some((&key, _)) = self.events.first_key_value() {
                if key.0 > self.now {
                    break;
                }
                let e = self.events.remove(&key).expect("present");
                match e {
                    Event::Deliver(env) => {
                        let to = env.to;
                        self.input(to, MultiRaftInput::Envelope(env));
                    }
                    Event::Persisted(n, seq) => self.input(n, MultiRaftInput::Persisted { seq }),
                }
            }
            let due: Vec<NodeId> = self
                .hosts
                .iter()
                .filter(|(_, h)| h.mr.as_ref().and_then(|m| m.next_deadline()).is_some_and(|d| d <= self.now))
                .map(|(n, _)| *n)
                .collect();
            for n in due {
                self.input(n, MultiRaftInput::Tick);
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Live hosts.
    pub fn live(&self) -> Vec<NodeId> {
        self.hosts.iter().filter(|(_, h)| h.mr.is_some()).map(|(n, _)| *n).collect()
    }

    /// The leader of `g` among live hosts that the other live replicas follow in its term.
    pub fn leader(&self, g: GroupId) -> Option<NodeId> {
        let live = self.live();
        let (n, term) = live
            .iter()
            .filter_map(|&n| self.host(n).group(g).filter(|r| r.role() == Role::Leader).map(|r| (n, r.term())))
            .max_by_key(|(_, t)| *t)?;
        let followers = live
            .iter()
            .filter(|&&m| m != n && self.raft(m, g).term() == term && self.raft(m, g).leader() == Some(n))
            .count();
        (followers + 1 > self.hosts.len() / 2).then_some(n)
    }

    /// Group ids hosted (taken from the first live host).
    pub fn group_ids(&self) -> Vec<GroupId> {
        self.host(self.live()[0]).groups().map(|(g, _)| g).collect()
    }

    /// Runs until every group has an acknowledged leader, at most `limit`; returns the time taken.
    pub fn await_leaders(&mut self, limit: Duration) -> Duration {
        let start = self.now;
        let step = Duration::from_millis(10);
        loop {
            if self.group_ids().iter().all(|&g| self.leader(g).is_some()) {
                return self.now.saturating_since(start);
            }
            assert!(self.now.saturating_since(start) < limit, "not every group has a leader after {limit:?}");
            self.run_for(step);
        }
    }

    /// Commands of group `g` applied on host `n` (noops left out).
    pub fn commands(&self, n: NodeId, g: GroupId) -> Vec<Bytes> {
        self.hosts[&n]
            .applied
            .get(&g)
            .map_or(Vec::new(), |v| v.iter().filter(|(_, c)| !c.is_empty()).map(|(_, c)| c.clone()).collect())
    }

    /// Proposes `cmd` to every group in `groups` (at its current leader) until it is applied on
    /// every live host, retrying at most `attempts` times (a proposal may be lost to a leader
    /// change). Panics if some group never applies it.
    pub fn commit_everywhere(&mut self, groups: &[GroupId], cmd: impl Fn(GroupId) -> Bytes, attempts: usize) {
        let mut id = 1_000_000 + self.order;
        for _ in 0..attempts {
            let missing: Vec<GroupId> = groups
                .iter()
                .copied()
                .filter(|&g| self.live().iter().any(|&n| !self.commands(n, g).contains(&cmd(g))))
                .collect();
            if missing.is_empty() {
                return;
            }
            for g in missing {
                if let Some(l) = self.leader(g)
                    && !self.commands(l, g).contains(&cmd(g))
                {
                    id += 1;
                    self.input(l, MultiRaftInput::Propose { group: g, id, command: cmd(g) });
                }
            }
            self.run_for(Duration::from_millis(1000));
        }
        for &g in groups {
            for n in self.live() {
                assert!(self.commands(n, g).contains(&cmd(g)), "group {g} never applied its command on host {n}");
            }
        }
    }

    /// Every pair of hosts applied the same commands in the same order, per group (one may be
    /// behind the other): state machine safety.
    pub fn assert_applied_prefixes_agree(&self) {
        let hosts: Vec<&Host> = self.hosts.values().collect();
        for a in &hosts {
            for b in &hosts {
                for (g, la) in &a.applied {
                    let Some(lb) = b.applied.get(g) else { continue };
                    let n = la.len().min(lb.len());
                    assert_eq!(la[..n], lb[..n], "group {g}: applied logs diverge");
                }
            }
        }
    }

    /// Crashes host `n`: it stops, its in-flight envelopes and disk acknowledgements vanish.
    pub fn crash(&mut self, n: NodeId) {
        self.hosts.get_mut(&n).expect("known").mr = None;
        self.events.retain(|_, e| match e {
            Event::Deliver(env) => env.to != n && env.from != n,
            Event::Persisted(m, _) => *m != n,
        });
    }

    /// Tells every live host that `n` is down.
    pub fn report_down(&mut self, n: NodeId) {
        for m in self.live() {
            self.input(m, MultiRaftInput::PeerDown { node: n });
        }
    }

    /// Whether every group on every live host is quiesced and no host has a deadline.
    pub fn all_quiesced(&self) -> bool {
        self.live()
            .iter()
            .all(|&n| self.host(n).next_deadline().is_none() && self.host(n).groups().all(|(_, r)| r.is_quiesced()))
    }
}

impl Cluster {
    /// Moves the leadership of every group to host `to` (leadership transfers), then waits
    /// until each group follows it.
    pub fn move_leaders_to(&mut self, to: NodeId, limit: Duration) {
        let start = self.now;
        loop {
            let pending: Vec<(GroupId, NodeId)> = self
                .group_ids()
                .into_iter()
                .filter_map(|g| self.leader(g).filter(|&l| l != to).map(|l| (g, l)))
                .collect();
            let unknown = self.group_ids().into_iter().any(|g| self.leader(g).is_none());
            if pending.is_empty() && !unknown {
                return;
            }
            assert!(self.now.saturating_since(start) < limit, "leaders did not all move to {to} in {limit:?}");
            for (g, l) in pending {
                self.input(l, MultiRaftInput::TransferLeadership { group: g, to });
            }
            self.run_for(Duration::from_millis(100));
        }
    }
}

impl Cluster {
    /// Cuts `n` off from every other host in both directions (no failure-detector news).
    pub fn isolate(&mut self, n: NodeId) {
        for &m in self.hosts.keys() {
            if m != n {
                self.cut.insert((n, m));
                self.cut.insert((m, n));
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        self.cut.clear();
    }
}

impl Cluster {
    /// Proposes `command` to group `g` at host `leader` and runs until every host not cut off
    /// from it applied it (at most 2s).
    pub fn commit_everywhere_on(&mut self, groups: &[GroupId], leader: NodeId, command: Bytes) {
        for &g in groups {
            self.order += 1;
            let id = 2_000_000 + self.order;
            self.input(leader, MultiRaftInput::Propose { group: g, id, command: command.clone() });
        }
        self.run_for(Duration::from_secs(2));
        for &g in groups {
            assert!(self.commands(leader, g).contains(&command), "group {g}: not applied at its leader {leader}");
        }
    }
}
