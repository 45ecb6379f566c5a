//! The node world's event loop and each node's process, disk and engines.

use super::workload::{Workload, WorkloadOp};
use super::{NodeWorldConfig, NodeWorldReport};
use crate::world::clock::NodeClock;
use crate::world::disk::{SimDisk, SyncFault};
use crate::world::network::Network;
use crate::world::stats::RunStats;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::Duration;
use vecraft_core::contract::{StateMachine, Time};
use bytes::Bytes;
use vecraft_core::node::shard::{ShardAnswer, answer, apply_command, restore_bytes, snapshot_bytes};
use vecraft_core::node::{Node, NodeConfig, NodeInput, NodeOutput, message::NodeEnvelope};
use vecraft_core::raft::{GroupId, LogIndex, Role, SnapshotMeta};
use vecraft_core::vector::collection::Collection;
use vecraft_core::vector::quantization::QuantizationConfig;

const TICK: u64 = 10_000_000;
/// A run that processes more events than this is a storm or livelock (a violation).
const MAX_EVENTS: u64 = 4_000_000;

pub(super) fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

#[derive(Debug)]
pub(super) enum Ev {
    Tick { node: usize, inc: u64 },
    /// `inc`: the receiver's incarnation at send time (see `handle_outputs`).
    Deliver { to: usize, inc: u64, env: NodeEnvelope },
    DiskDone { node: usize, inc: u64, seq: u64 },
    ApplyDone { node: usize, inc: u64 },
    ReadDone { node: usize, inc: u64, read: u64, result: Result<ShardAnswer, String> },
    ClientNext { client: usize },
    ClientTimeout { op: u64 },
    Crash,
    /// A crash aimed at machine `node` in incarnation `inc` (see `crash_after_snapshot`).
    CrashNode { node: usize, inc: u64 },
    Restart { node: usize },
    Partition,
    Pause,
    BitFlip,
    LivenessStart,
    /// Halfway through the liveness phase the network stops losing packets and delaying them
    /// long, so the probe phase is judged on a network where every packet arrives.
    QuietNetwork,
    ProbeStart,
    End,
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}
impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A running node process: the node, its engines and its apply queue (all lost at a crash).
pub(super) struct Proc {
    pub(super) node: Node,
    pub(super) engines: BTreeMap<GroupId, Collection>,
    /// Index each engine holds.
    pub(super) applied: BTreeMap<GroupId, LogIndex>,
    /// Snapshot chunks being received, per group.
    pub(super) staging: BTreeMap<GroupId, (SnapshotMeta, Vec<u8>)>,
    pub(super) applies: VecDeque<(GroupId, LogIndex, Option<bytes::Bytes>)>,
    pub(super) applying: bool,
}

/// One simulated machine.
pub(super) struct Machine {
    pub id: u64,
    pub(super) proc: Option<Proc>,
    pub(super) inc: u64,
    pub(super) clock: NodeClock,
    /// The WAL: one stream of every group's records (torn writes, bit rot on a faulty disk).
    pub(super) disk: SimDisk,
    /// Durable engine snapshots (taken or installed), per group: what a restart restores.
    pub(super) snapshots: BTreeMap<GroupId, (LogIndex, Bytes)>,
    pub(super) disk_free_at: u64,
    /// Paused (a GC pause, a stopped VM) until this true time: its events wait, its clock runs.
    pub(super) paused_until: u64,
}

/// The world.
pub(super) struct World {
    pub(super) cfg: NodeWorldConfig,
    pub(super) rng: ChaCha8Rng,
    pub(super) now: u64,
    pub(super) seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    pub machines: Vec<Machine>,
    /// Envelopes travel with the receiver's incarnation at send time (see `handle_outputs`).
    pub(super) net: Network<(u64, NodeEnvelope)>,
    pub(super) net_stats: RunStats,
    pub(super) faults_on: bool,
    pub(super) accepting: bool,
    pub(super) workload: Workload,
    pub(super) trace: blake3::Hasher,
    pub(super) events: u64,
    pub(super) faults: BTreeMap<&'static str, u64>,
    /// Applies made while the replica was catching up (deferred indexing seeds).
    pub(super) catch_up_applies: u64,
    pub(super) violations: Vec<String>,
    /// Each group's highest term when the quiet probe phase began (see [`World::group_terms`]).
    pub(super) terms_at_probe: Option<BTreeMap<GroupId, u64>>,
    /// The commands that advanced replicas' sequence numbers (for `point-in-time-export`).
    pub(super) apply_trace: super::export::ApplyTrace,
    /// The crashes aimed right after engine snapshots draw from this stream (see
    /// `crash_after_snapshot`), so the rest of the world's draws do not shift.
    pub(super) crash_rng: ChaCha8Rng,
}

impl World {
    pub(super) fn at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued { at, seq: self.seq, ev }));
    }

    pub(super) fn local(&self, m: usize) -> Time {
        self.machines[m].clock.monotonic(self.now)
    }

    pub(super) fn boot(&mut self, m: usize) {
        let members: Vec<u64> = self.machines.iter().map(|x| x.id).collect();
        let mut cfg = NodeConfig::new(self.machines[m].id, members, self.cfg.seed.wrapping_mul(31).wrapping_add(m as u64));
        cfg.router = self.cfg.router;
        cfg.bugs = self.cfg.bugs;
        cfg.incarnation = self.machines[m].inc + 1;
        cfg.raft.raft.snapshot_entries = self.cfg.snapshot_entries;
        cfg.raft.raft.snapshot_keep_entries = self.cfg.snapshot_keep_entries;
        cfg.raft.raft.max_clock_drift = self.cfg.sim.clock_drift.max(0.01);
        cfg.raft.raft.bugs.sleep_on_overtaken_mark = self.cfg.sleep_on_overtaken_mark;
        cfg.raft.raft.bugs.quiesce_ignores_follower_apply = self.cfg.quiesce_ignores_follower_apply;
        cfg.raft.raft.bugs.restart_clamps_applied = self.cfg.restart_clamps_applied;
        cfg.raft.raft.bugs.wake_on_stale_copy = self.cfg.wake_on_stale_copy;
        let recovered = self.recover_groups(m);
        let now = self.local(m);
        let mut engines = BTreeMap::new();
        let mut restored = BTreeMap::new();
        for (g, (index, bytes)) in &self.machines[m].snapshots {
            let mut c = restore_bytes(bytes).expect("the simulated disk keeps snapshots intact");
            self.cfg.local_policies(m, &mut c);
            if self.cfg.restored(&mut c) {
                *self.faults.entry("quantization-reverted").or_insert(0) += 1;
            }
            if self.cfg.restore_drops_field_indexes {
                for field in c.field_indexes().into_keys() {
                    c.drop_field_index(&field);
                }
            }
            engines.insert(*g, c);
            restored.insert(*g, *index);
        }
        let mut node = Node::restore(cfg, recovered, restored.clone(), now);
        let boot = node.take_boot_outputs();
        let mach = &mut self.machines[m];
        mach.inc += 1;
        mach.proc = Some(Proc {
            node,
            engines,
            applied: restored,
            staging: BTreeMap::new(),
            applies: VecDeque::new(),
            applying: false,
        });
        let inc = mach.inc;
        self.handle_outputs(m, boot);
        self.at(self.now + TICK, Ev::Tick { node: m, inc });
    }

    pub(super) fn crash(&mut self, m: usize) {
        let mach = &mut self.machines[m];
        if mach.proc.take().is_some() {
            mach.inc += 1;
            let tear = self.cfg.storage.torn_write;
            let torn = (tear > 0.0 && self.rng.random_bool(tear)).then(|| self.rng.random_range(0.0..1.0));
            let loss = mach.disk.crash(torn);
            *self.faults.entry("crashes").or_insert(0) += 1;
            if loss.torn {
                *self.faults.entry("torn-writes").or_insert(0) += 1;
            }
        }
    }

    pub(super) fn step(&mut self, m: usize, input: NodeInput) {
        let now = self.local(m);
        let Some(p) = self.machines[m].proc.as_mut() else { return };
        let mut out = Vec::new();
        p.node.step(now, input, &mut out);
        self.handle_outputs(m, out);
    }

    fn handle_outputs(&mut self, m: usize, out: Vec<NodeOutput>) {
        let mut follow_ups = Vec::new();
        for o in out {
            match o {
                NodeOutput::Send(env) => {
                    let to = self.machines.iter().position(|x| x.id == env.to).expect("members are machines");
                    if self.net.is_cut(m, to) {
                        continue;
                    }
                    let mut arrivals = Vec::new();
                    let now = self.now;
                    // Node-to-node traffic runs over connections (TCP in the runtime): a packet
                    // sent to one incarnation of a node is never delivered to the next, replays
                    // of old packets included. The node relies on it: its duplicate filter for
                    // forwarded writes is not durable (see `Node::first_copy`).
                    let inc = self.machines[to].inc;
                    self.net.send(&mut self.rng, now, (m, to), (inc, env), &mut self.net_stats, &mut arrivals);
                    for (at, (inc, env)) in arrivals {
                        self.at(at, Ev::Deliver { to, inc, env });
                    }
                }
                NodeOutput::Persist { seq, records } => {
                    let lat = self.rng.random_range(nanos(self.cfg.sim.min_disk)..=nanos(self.cfg.sim.max_disk));
                    let mach = &mut self.machines[m];
                    for r in &records {
                        mach.disk.write(seq, r);
                    }
                    let done = mach.disk_free_at.max(self.now) + lat;
                    mach.disk_free_at = done;
                    let inc = mach.inc;
                    self.at(done, Ev::DiskDone { node: m, inc, seq });
                }
                NodeOutput::ShardCreated { group, collection, config } => {
                    let p = self.machines[m].proc.as_mut().expect("running");
                    let cfg = &self.cfg;
                    p.engines.entry(group).or_insert_with(|| {
                        let mut c = Collection::new(&collection, config).expect("valid config");
                        cfg.local_policies(m, &mut c);
                        c
                    });
                }
                NodeOutput::ShardRenamed { group, collection } => {
                    let p = self.machines[m].proc.as_mut().expect("running");
                    if let Some(c) = p.engines.get_mut(&group) {
                        c.set_name(&collection).expect("the metadata validated the name");
                    }
                }
                NodeOutput::ShardDropped { group } => {
                    let p = self.machines[m].proc.as_mut().expect("running");
                    p.engines.remove(&group);
                    p.applied.remove(&group);
                    self.machines[m].snapshots.remove(&group);
                }
                NodeOutput::Apply { group, index, command } => {
                    let p = self.machines[m].proc.as_mut().expect("running");
                    p.applies.push_back((group, index, command));
                    self.kick_apply(m);
                }
                NodeOutput::Read { read, group, query } => {
                    let p = self.machines[m].proc.as_ref().expect("running");
                    let result = match p.engines.get(&group) {
                        Some(c) => answer(c, &query),
                        None => Err(format!("no engine for group {group}")),
                    };
                    let inc = self.machines[m].inc;
                    let cost = 50_000 + self.rng.random_range(0..200_000);
                    self.at(self.now + cost, Ev::ReadDone { node: m, inc, read, result });
                }
                NodeOutput::Respond { client, result } => {
                    let now = self.now;
                    self.workload.respond(now, client, result);
                }
                NodeOutput::TakeSnapshot { group, index } => {
                    let mach = &mut self.machines[m];
                    let p = mach.proc.as_ref().expect("running");
                    let applied = p.applied.get(&group).copied().unwrap_or(0);
                    if let Some(c) = p.engines.get(&group)
                        && applied >= index
                    {
                        let bytes = Bytes::from(snapshot_bytes(c));
                        let checksum = *blake3::hash(&bytes).as_bytes();
                        let size = bytes.len() as u64;
                        mach.snapshots.insert(group, (applied, bytes));
                        *self.faults.entry("snapshots-taken").or_insert(0) += 1;
                        // Now and then the machine dies right after: its engine snapshot is
                        // durable, the log writes still in flight are not.
                        if self.faults_on
                            && mach.disk.unsynced_writes() > 0
                            && let Some(chance) = self.cfg.crash_after_snapshot
                            && self.crash_rng.random_bool(chance)
                        {
                            let (inc, at) = (mach.inc, self.now + self.crash_rng.random_range(0..=100_000));
                            self.at(at, Ev::CrashNode { node: m, inc });
                        }
                        follow_ups.push(NodeInput::SnapshotTaken { group, index: applied, size, checksum });
                    }
                }
                NodeOutput::Raft { group, output } => {
                    if let Some(input) = self.snapshot_io(m, group, output) {
                        follow_ups.push(NodeInput::Raft { group, input });
                    }
                }
            }
        }
        for input in follow_ups {
            self.step(m, input);
        }
    }

    /// Starts the next apply if the engine is idle; its cost is modelled in virtual time.
    fn kick_apply(&mut self, m: usize) {
        let per = nanos(self.cfg.apply_per_point_dim);
        let inc = self.machines[m].inc;
        let Some(p) = self.machines[m].proc.as_mut() else { return };
        if p.applying {
            return;
        }
        let Some((_, _, cmd)) = p.applies.front() else { return };
        let cost = 20_000 + cmd.as_ref().map_or(0, |c| c.len() as u64 / 4 * per);
        p.applying = true;
        self.at(self.now + cost, Ev::ApplyDone { node: m, inc });
    }

    fn apply_done(&mut self, m: usize) {
        let Some(p) = self.machines[m].proc.as_mut() else { return };
        p.applying = false;
        let Some((group, index, cmd)) = p.applies.pop_front() else { return };
        // Each entry reaches a replica's engine once: an index at or below what the engine
        // holds (restored from a snapshot, or applied before) would be applied over a state
        // that already includes it.
        if let Some(&done) = p.applied.get(&group)
            && index <= done
            && p.engines.contains_key(&group)
        {
            let id = self.machines[m].id;
            self.violations.push(format!("apply-once: node {id} was handed entry {index} of group {group:#x}, its engine already holds {done}"));
        }
        let Some(p) = self.machines[m].proc.as_mut() else { return };
        let behind = p.node.group(group).map_or(0, |r| r.commit_index().saturating_sub(index));
        if let (Some(c), Some(cmd)) = (p.engines.get_mut(&group), cmd) {
            if let Some(ix) = self.cfg.indexing {
                self.catch_up_applies += ix.before_apply(c, behind) as u64;
            }
            let before = c.seq();
            let _ = apply_command(c, &cmd); // refusals are deterministic and change nothing
            self.apply_trace.record(c.name(), group, before, c.seq(), &cmd);
            self.cfg.place_vectors(m, c); // after a `SetVectorsOnDisk` that switched it on
            if let Some(ix) = self.cfg.indexing {
                ix.after_apply(&mut self.rng, c);
            }
        }
        if p.engines.contains_key(&group) {
            p.applied.insert(group, index);
        }
        self.step(m, NodeInput::Applied { group, index });
        self.kick_apply(m);
    }

    pub(super) fn up(&self) -> Vec<usize> {
        (0..self.machines.len()).filter(|m| self.machines[*m].proc.is_some()).collect()
    }

    fn client_next(&mut self, c: usize) {
        if !self.accepting {
            return;
        }
        let now = self.now;
        let up: Vec<usize> = self.up().into_iter().filter(|m| self.machines[*m].paused_until <= now).collect();
        let Some(WorkloadOp { op, request, think }) = self.workload.next(&mut self.rng, now, c) else {
            self.at(self.now + 20_000_000, Ev::ClientNext { client: c });
            return;
        };
        if up.is_empty() {
            self.workload.respond(now, op, Err(vecraft_core::node::request::NodeError::Refused { shard: 0, reason: "no node up".into() }));
        } else {
            let m = up[self.rng.random_range(0..up.len())];
            // Some requests carry their own deadline (Qdrant's `timeout`), shorter or longer
            // than the node's own; the client gives up a second after it.
            let own = self.rng.random_bool(0.3).then(|| Duration::from_millis(self.rng.random_range(300..=8_000)));
            let timeout = nanos(own.map_or(Duration::from_secs(6), |d| d + Duration::from_secs(1)));
            self.at(self.now + timeout, Ev::ClientTimeout { op });
            self.step(m, NodeInput::Request { client: op, request, timeout: own });
        }
        self.at(self.now + think, Ev::ClientNext { client: c });
    }

    /// Whether every shard replica applied its leader's commit and every group has a leader.
    fn converged(&self) -> bool {
        let mut commit: BTreeMap<GroupId, LogIndex> = BTreeMap::new();
        let mut leaders: BTreeMap<GroupId, usize> = BTreeMap::new();
        for m in &self.machines {
            let Some(p) = &m.proc else { return false };
            if !p.applies.is_empty() || p.applying {
                return false;
            }
            for (g, r) in p.node.groups() {
                if r.role() == Role::Leader {
                    *leaders.entry(g).or_insert(0) += 1;
                    commit.insert(g, r.commit_index());
                }
            }
        }
        for m in &self.machines {
            let p = m.proc.as_ref().expect("checked");
            for (g, r) in p.node.groups() {
                if leaders.get(&g) != Some(&1) || r.applied_index() != commit[&g] || r.commit_index() != commit[&g] {
                    return false;
                }
            }
        }
        true
    }

    /// The replicas keeping `converged` false, for the violation message: node, group, role,
    /// term, commit, applied, and whether its disk damage is still unrepaired.
    fn unconverged_groups(&self) -> String {
        let mut parts = Vec::new();
        let leaders: BTreeMap<GroupId, Vec<(u64, LogIndex)>> = self
            .machines
            .iter()
            .filter_map(|m| m.proc.as_ref().map(|p| (m.id, p)))
            .flat_map(|(id, p)| p.node.groups().filter(|(_, r)| r.role() == Role::Leader).map(move |(g, r)| (g, (id, r.commit_index()))))
            .fold(BTreeMap::new(), |mut acc, (g, x)| {
                acc.entry(g).or_insert_with(Vec::new).push(x);
                acc
            });
        for m in &self.machines {
            let Some(p) = &m.proc else {
                parts.push(format!("node {} down", m.id));
                continue;
            };
            for (g, r) in p.node.groups() {
                let lead = leaders.get(&g);
                let commit = lead.filter(|l| l.len() == 1).map(|l| l[0].1);
                if commit != Some(r.applied_index()) || commit != Some(r.commit_index()) {
                    parts.push(format!(
                        "n{} g{g:#x} {:?} t{} c{} a{}{} leaders={:?}",
                        m.id,
                        r.role(),
                        r.term(),
                        r.commit_index(),
                        r.applied_index(),
                        if r.is_damaged() { " damaged" } else { "" },
                        lead
                    ));
                }
            }
        }
        parts.truncate(8);
        parts.join(", ")
    }

    fn run(mut self) -> NodeWorldReport {
        for m in 0..self.machines.len() {
            self.boot(m);
        }
        let fault = nanos(self.cfg.sim.fault_phase);
        let live = nanos(self.cfg.sim.liveness_phase);
        self.at(fault, Ev::LivenessStart);
        self.at(fault + live / 2, Ev::QuietNetwork);
        self.at(fault + live, Ev::ProbeStart);
        if let Some(e) = self.cfg.crash_every {
            self.at(nanos(e), Ev::Crash);
        }
        if let Some(e) = self.cfg.partition_every {
            self.at(nanos(e), Ev::Partition);
        }
        if let Some(e) = self.cfg.pause_every {
            self.at(nanos(e), Ev::Pause);
        }
        if let Some(e) = self.cfg.storage.bit_flip_every {
            self.at(nanos(e), Ev::BitFlip);
        }
        for c in 0..self.cfg.clients {
            self.at(1_000_000 * (c as u64 + 1), Ev::ClientNext { client: c });
        }
        let mut probe_deadline = u64::MAX;
        let mut probe_fingerprint = [0u8; 32];
        while let Some(Reverse(Queued { at, ev, .. })) = self.queue.pop() {
            self.now = at;
            self.events += 1;
            self.trace.update(&at.to_le_bytes());
            self.trace.update(format!("{ev:?}").as_bytes());
            if let Some(until) = self.paused_target(&ev) {
                self.at(until, ev);
                continue;
            }
            if self.events > MAX_EVENTS {
                self.violations.push(format!("liveness: more than {MAX_EVENTS} events (storm or livelock)"));
                break;
            }
            match ev {
                Ev::Tick { node, inc } => {
                    if self.machines[node].inc != inc || self.machines[node].proc.is_none() {
                        continue;
                    }
                    let local = self.local(node);
                    let due = self.machines[node].proc.as_ref().and_then(|p| p.node.next_deadline()).is_some_and(|d| d <= local);
                    if due {
                        self.step(node, NodeInput::Tick);
                    }
                    self.at(self.now + TICK, Ev::Tick { node, inc });
                }
                Ev::Deliver { to, inc, env } => {
                    if self.machines[to].inc == inc {
                        self.step(to, NodeInput::Envelope(env));
                    }
                }
                Ev::DiskDone { node, inc, seq } => {
                    let mach = &mut self.machines[node];
                    if mach.inc != inc {
                        continue;
                    }
                    mach.disk.sync_through(seq, SyncFault::None, &mut self.rng);
                    self.step(node, NodeInput::Persisted { seq });
                }
                Ev::ApplyDone { node, inc } => {
                    if self.machines[node].inc == inc {
                        self.apply_done(node);
                    }
                }
                Ev::ReadDone { node, inc, read, result } => {
                    if self.machines[node].inc == inc {
                        self.step(node, NodeInput::ReadDone { read, result });
                    }
                }
                Ev::ClientNext { client } => self.client_next(client),
                Ev::ClientTimeout { op } => {
                    let now = self.now;
                    self.workload.timeout(now, op);
                }
                Ev::Crash => self.nemesis_crash(),
                Ev::CrashNode { node, inc } => self.nemesis_crash_node(node, inc),
                Ev::Restart { node } => {
                    if self.machines[node].proc.is_none() {
                        self.boot(node);
                    }
                }
                Ev::Partition => self.nemesis_partition(),
                Ev::Pause => self.nemesis_pause(),
                Ev::BitFlip => self.nemesis_bit_flip(),
                Ev::LivenessStart => {
                    self.faults_on = false;
                    for m in &mut self.machines {
                        m.paused_until = m.paused_until.min(self.now);
                    }
                    self.net.heal();
                    self.net.calm();
                    for m in 0..self.machines.len() {
                        if self.machines[m].proc.is_none() {
                            self.boot(m);
                        }
                    }
                }
                Ev::QuietNetwork => self.net.quiet(),
                Ev::ProbeStart => {
                    // Clients stop; wait for quiet, then probe and judge.
                    self.accepting = false;
                    self.terms_at_probe = Some(self.led_group_terms());
                    probe_deadline = self.now + nanos(Duration::from_secs(20));
                    self.at(self.now + 100_000_000, Ev::End);
                }
                Ev::End => {
                    if self.workload.in_flight() > 0 || !self.converged() {
                        if self.now < probe_deadline {
                            self.at(self.now + 100_000_000, Ev::End);
                            continue;
                        }
                        self.violations.push(format!(
                            "liveness: not converged 20 s after the liveness phase ({} requests in flight; {})",
                            self.workload.in_flight(),
                            self.unconverged_groups()
                        ));
                        break;
                    }
                    // A write delayed in the network past its client's timeout may still land
                    // (legal: it was in doubt); the probe must see the state it is judged by.
                    if self.workload.probing() && self.fingerprint() != probe_fingerprint {
                        self.workload.reset_probe();
                        *self.faults.entry("probe-restarts").or_insert(0) += 1;
                    }
                    if !self.workload.probing() {
                        probe_fingerprint = self.fingerprint();
                        let ops = self.workload.start_probe(&mut self.rng);
                        let now = self.now;
                        for (op, request) in ops {
                            let up = self.up();
                            let m = up[self.rng.random_range(0..up.len())];
                            let _ = now;
                            self.step(m, NodeInput::Request { client: op, request, timeout: None });
                        }
                        self.at(self.now + 100_000_000, Ev::End);
                        continue;
                    }
                    break;
                }
            }
        }
        self.finish()
    }

    /// A hash of every replica's engine digest.
    fn fingerprint(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        for m in &self.machines {
            if let Some(p) = &m.proc {
                for (g, c) in &p.engines {
                    h.update(&g.to_le_bytes());
                    h.update(&c.digest());
                    // Declared field indexes and quantization too: a late index command or switch
                    // changes the probe's answer.
                    h.update(format!("{:?}", c.field_indexes()).as_bytes());
                    h.update(format!("{:?}", c.config().quantization).as_bytes());
                }
            }
        }
        *h.finalize().as_bytes()
    }

    /// The highest term each group reached on any running machine.
    fn group_terms(&self) -> BTreeMap<GroupId, u64> {
        let mut terms = BTreeMap::new();
        for p in self.machines.iter().filter_map(|m| m.proc.as_ref()) {
            for (g, r) in p.node.groups() {
                let t = terms.entry(g).or_insert(0);
                *t = (*t).max(r.term());
            }
        }
        terms
    }

    /// [`World::group_terms`] of the groups that have a leader of that term (a group still
    /// electing its first leader, created late, may elect in the probe phase).
    fn led_group_terms(&self) -> BTreeMap<GroupId, u64> {
        let mut terms = self.group_terms();
        terms.retain(|g, t| {
            self.machines
                .iter()
                .filter_map(|m| m.proc.as_ref())
                .any(|p| p.node.group(*g).is_some_and(|r| r.term() == *t && r.role() == vecraft_core::raft::Role::Leader))
        });
        terms
    }

    /// `stable-leadership`: the probe phase is quiet (faults stopped 8 s earlier, the network
    /// stopped losing packets and delaying them long 4 s earlier, clients stopped writing),
    /// so no group that had a leader when it began may hold an election in it. An
    /// election there is a liveness bug of its own (a follower timing out under a live leader),
    /// and on real processes it fails every write in flight with "leadership lost".
    /// `aliases`: every node resolves the same aliases (they are replicated metadata), and the
    /// workload's alias, once acknowledged, names its collection on every node.
    fn check_aliases(&mut self) {
        use super::workload::{ALIAS, AliasState, COLLECTION};
        let mut seen: Option<(u64, Vec<(String, String)>)> = None;
        for mach in &self.machines {
            let Some(p) = &mach.proc else { continue };
            let aliases: Vec<(String, String)> =
                p.node.metadata().aliases().map(|(a, c)| (a.to_string(), c.to_string())).collect();
            if self.workload.alias == AliasState::Acknowledged && !aliases.contains(&(ALIAS.to_string(), COLLECTION.to_string())) {
                self.violations.push(format!("aliases: node {} does not resolve the acknowledged alias {ALIAS:?}: {aliases:?}", mach.id));
            }
            match &seen {
                Some((id, first)) if *first != aliases => {
                    self.violations.push(format!("aliases: node {} holds {aliases:?}, node {id} {first:?}", mach.id));
                }
                Some(_) => {}
                None => seen = Some((mach.id, aliases)),
            }
        }
    }

    fn check_stable_leadership(&mut self) {
        let Some(before) = self.terms_at_probe.take() else { return };
        let now = self.group_terms();
        let mut elected = 0;
        for (g, t0) in before {
            if let Some(&t1) = now.get(&g)
                && t1 > t0
            {
                elected += 1;
                if elected <= 3 {
                    self.violations.push(format!(
                        "stable-leadership: group {g} held an election in the quiet probe phase (term {t0} -> {t1})"
                    ));
                }
            }
        }
        *self.faults.entry("quiet-phase-elections").or_insert(0) += elected;
    }

    /// `apply-report`: a leader's report of each follower's applied index (what the server
    /// shows as replica status and apply lag) never claims more than the follower applied, and
    /// a group asleep (quiesced leader) reports every follower exactly: the leader sleeps only
    /// once each said it applied the whole log, and nothing changed since. Returns the groups
    /// judged and how many of them were asleep.
    fn check_apply_report(&mut self) -> (u64, u64) {
        let (mut judged, mut asleep) = (0, 0);
        let running: Vec<(u64, &Proc)> =
            self.machines.iter().filter_map(|m| m.proc.as_ref().map(|p| (m.id, p))).collect();
        let mut found = Vec::new();
        for &(_, p) in &running {
            for (g, leader) in p.node.groups() {
                if leader.role() != vecraft_core::raft::Role::Leader {
                    continue;
                }
                judged += 1;
                asleep += leader.is_quiesced() as u64;
                for f in leader.followers() {
                    let Some(r) = running.iter().find(|(id, _)| *id == f.node).and_then(|(_, fp)| fp.node.group(g))
                    else {
                        continue;
                    };
                    if r.term() != leader.term() {
                        continue;
                    }
                    let actual = r.applied_index();
                    if f.applied > actual {
                        found.push(format!(
                            "apply-report: group {g:#x}'s leader says node {} applied {}, it applied {actual}",
                            f.node, f.applied
                        ));
                    } else if leader.is_quiesced() && (f.applied != leader.commit_index() || actual != f.applied) {
                        found.push(format!(
                            "apply-report: group {g:#x} sleeps with node {} reported at {} (applied {actual}, commit {})",
                            f.node,
                            f.applied,
                            leader.commit_index()
                        ));
                    }
                }
            }
        }
        self.violations.extend(found.into_iter().take(3));
        (judged, asleep)
    }

    fn finish(mut self) -> NodeWorldReport {
        if self.violations.is_empty() {
            self.check_stable_leadership();
        }
        let (report_groups, report_asleep) = if self.violations.is_empty() { self.check_apply_report() } else { (0, 0) };
        if self.violations.is_empty() {
            self.check_aliases();
        }
        let engines: Vec<(u64, &BTreeMap<GroupId, Collection>)> =
            self.machines.iter().filter_map(|m| m.proc.as_ref().map(|p| (m.id, &p.engines))).collect();
        if self.violations.is_empty() {
            self.violations.extend(super::check::check_convergence(&engines));
            self.violations.extend(self.workload.check(&engines));
        }
        if let Some(d) = &self.apply_trace.disagreement {
            self.violations.push(format!("apply-agreement: {d}"));
        }
        self.violations.extend(self.workload.replaces.as_ref().map(super::replace::check).unwrap_or_default());
        if let Some(exports) = &self.workload.exports {
            let replicas: Vec<(GroupId, &Collection)> =
                engines.iter().flat_map(|(_, es)| es.iter().map(|(g, c)| (*g, c))).collect();
            if self.violations.is_empty() {
                self.violations.extend(super::export::check(exports, &self.apply_trace, &replicas));
            }
        }
        let groups = self.machines.iter().filter_map(|m| m.proc.as_ref()).map(|p| p.node.groups().count()).sum();
        let mut faults = self.faults.clone();
        faults.insert("dropped", self.net_stats.dropped);
        faults.insert("duplicated", self.net_stats.duplicated);
        faults.insert("long-delays", self.net_stats.long_delays);
        faults.insert("replays", self.net_stats.replays);
        let retries: u64 = self.machines.iter().filter_map(|m| m.proc.as_ref()).map(|p| p.node.stats().retries).sum();
        faults.insert("part-retries", retries);
        let restarts: u64 = self.machines.iter().filter_map(|m| m.proc.as_ref()).map(|p| p.node.stats().peer_restarts).sum();
        faults.insert("restarts-seen", restarts);
        if let Some(e) = self.workload.exports.as_ref().filter(|e| e.torn_finishes > 0) {
            // Exports the bug switch finished after a round of several pages.
            faults.insert("export-torn-finish", e.torn_finishes);
        }
        let mut ops = self.workload.op_counts();
        ops.insert("apply-report:groups".into(), report_groups);
        ops.insert("apply-report:asleep".into(), report_asleep);
        if self.cfg.indexing.is_some() {
            // How much deferred work the final probe met (summed over every replica).
            let waiting: usize = engines.iter().flat_map(|(_, es)| es.values()).map(Collection::unindexed).sum();
            ops.insert("deferred-indexing:waiting-at-end".into(), waiting as u64);
            ops.insert("deferred-indexing:catch-up-applies".into(), self.catch_up_applies);
        }
        if let Some(q) = self.cfg.quantization {
            // How many replicas searched on trained codes at the final probe, and how many of
            // the probe's searches on codes had to be exact (see `quantization.rs`).
            let replicas: Vec<&Collection> = engines.iter().flat_map(|(_, es)| es.values()).collect();
            let kind = match q.config {
                QuantizationConfig::Scalar { .. } => "quantization:scalar",
                QuantizationConfig::Binary { .. } => "quantization:binary",
            };
            ops.insert(kind.into(), 1);
            ops.insert("quantization:replicas-at-end".into(), replicas.len() as u64);
            let trained = replicas.iter().filter(|c| c.quantization_active()).count();
            ops.insert("quantization:trained-at-end".into(), trained as u64);
            let (probes, exact) = super::quantization::probe_coverage(&self.workload, &replicas);
            ops.insert("quantization:probes".into(), probes);
            ops.insert("quantization:probes-exact".into(), exact);
        }
        if let Some(files) = self.cfg.vector_files {
            // Every replica keeps its vectors where its machine puts them (see `vector_files.rs`).
            let (mut replicas, mut on_disk) = (0, 0);
            for (m, mach) in self.machines.iter().enumerate() {
                let Some(p) = &mach.proc else { continue };
                let has_files = files.provider(m).is_some();
                for (g, c) in &p.engines {
                    let external = c.vector_store().is_external();
                    replicas += 1;
                    on_disk += external as u64;
                    // Where its config (switched or not) and its machine put them.
                    if external != (has_files && c.config().on_disk) {
                        self.violations.push(format!(
                            "vector-files: node {}'s replica of group {g:#x} (on_disk {}) keeps its vectors {} (its machine {})",
                            mach.id,
                            c.config().on_disk,
                            if external { "in a file" } else { "on the heap" },
                            if has_files { "has files" } else { "has none" },
                        ));
                    }
                }
            }
            ops.insert("vector-files:replicas-at-end".into(), replicas);
            ops.insert("vector-files:on-disk-at-end".into(), on_disk);
        }
        NodeWorldReport {
            seed: self.cfg.seed,
            shape: (self.machines.len(), self.cfg.shards, self.cfg.replication_factor),
            second: self.cfg.second,
            groups,
            ops,
            max_eventual_lag: self.workload.max_eventual_lag(),
            max_eventual_age: self.workload.max_eventual_age(),
            faults,
            violations: self.violations,
            trace: self.trace.finalize().to_hex().to_string(),
            events: self.events,
        }
    }
}

/// Runs one node-world seed.
pub fn run_node_world(cfg: NodeWorldConfig) -> NodeWorldReport {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x0DE0_0000_1234_5678);
    let machines = (0..cfg.sim.nodes)
        .map(|i| {
            let rate = 1.0 + rng.random_range(-1.0..=1.0) * cfg.sim.clock_drift;
            Machine {
                id: i as u64 + 1,
                proc: None,
                inc: 0,
                clock: NodeClock::new(rate, rng.random_range(0..1_000_000_000u64)),
                disk: {
                    let mut d = SimDisk::default();
                    d.faulty = cfg.storage.faulty_disk == Some(i);
                    d
                },
                snapshots: BTreeMap::new(),
                disk_free_at: 0,
                paused_until: 0,
            }
        })
        .collect();
    let workload = Workload::new(&cfg, &mut rng);
    let net = Network::new(&cfg.sim);
    World {
        rng,
        now: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        machines,
        net,
        net_stats: RunStats::default(),
        faults_on: true,
        accepting: true,
        workload,
        trace: blake3::Hasher::new(),
        events: 0,
        faults: BTreeMap::new(),
        catch_up_applies: 0,
        violations: Vec::new(),
        apply_trace: Default::default(),
        crash_rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xC2A5_4AF7_E250_000D),
        terms_at_probe: None,
        cfg,
    }
    .run()
}
