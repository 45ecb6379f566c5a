//! The host of each simulated node: the only code that builds, steps and reads the Raft node.
//!
//! Everything that knows the Raft API lives here — building a node from its recovered disk,
//! stepping inputs into it, turning its outputs into network packets, disk writes and client
//! answers, the key-value state machine it replicates, and what the checks read back from it — so
//! that a change of the Raft contract (apply outputs, `next_deadline()`, shared payloads) is a
//! change of this file. The fault machinery (network, disks, clocks, nemesis) only sees packets,
//! bytes and instants.

use super::clock::NodeClock;
use super::disk::{SimDisk, SyncFault};
use super::{Event, TICK, World, nanos};
use crate::config::SimConfig;
use super::clients::ClientRequest;
use crate::kv::{KvGet, KvResult, KvStore};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::raft::{
    ClientError, ClientResponse, LocalReplica, MessageBody, RaftConfig, RaftInput, RaftNode, RaftOutput, ReadMode,
    RequestId, Role,
};

/// One node: its process (absent while crashed), disk and clocks.
pub(super) struct NodeHost {
    pub id: NodeId,
    pub raft: Option<LocalReplica<KvStore>>,
    pub disk: SimDisk,
    /// Bumped at every crash; events of an older incarnation are ignored.
    pub incarnation: u64,
    pub clock: NodeClock,
    /// The disk completes writes in order: the next one finishes no earlier than this.
    pub disk_free_at: u64,
    /// Paused (a GC pause or stopped VM): inputs are held, the clock runs on.
    pub paused: bool,
    /// Inputs that arrived during a pause, stepped in order at resume.
    held: Vec<RaftInput>,
    /// The tick chain stopped during a pause and must be restarted at resume.
    tick_stopped: bool,
    /// Local time at which this incarnation last accepted an append from a leader (or booted):
    /// until an election timeout after it, a vote would undercut that leader's lease.
    heard_leader_at: Time,
}

impl NodeHost {
    /// Node `index` of the world of `cfg`, with a seeded monotonic clock within the drift bound.
    pub fn new(index: usize, cfg: &SimConfig, rng: &mut ChaCha8Rng) -> NodeHost {
        let rate = 1.0 + rng.random_range(-1.0..=1.0) * cfg.clock_drift;
        let offset = rng.random_range(0..1_000_000_000u64);
        NodeHost {
            id: index as NodeId + 1,
            raft: None,
            disk: SimDisk::default(),
            incarnation: 0,
            clock: NodeClock::new(rate, offset),
            disk_free_at: 0,
            paused: false,
            held: Vec::new(),
            tick_stopped: false,
            heard_leader_at: Time::ZERO,
        }
    }

    /// Whether the process is running (it may still be paused).
    pub fn is_up(&self) -> bool {
        self.raft.is_some()
    }

    /// Kills the process: a new incarnation will boot from the disk.
    pub fn stop(&mut self) {
        self.raft = None;
        self.incarnation += 1;
        self.paused = false;
        self.held.clear();
        self.tick_stopped = false;
    }
}

/// A message whose effect the host watches, to count the preconditions of the stale-read bugs of
/// issue 7 (what the input looked like before the step; the step's result decides).
enum Watch {
    None,
    /// A reply to a stale-term append reaching a leader at its own term.
    StaleTermAck,
    /// A vote request at the voter's current term, with no vote cast yet, inside a lease.
    VoteInLease(NodeId),
    /// An append from a leader of the current or a newer term.
    HeardLeader(NodeId),
}

impl Watch {
    fn before(raft: &RaftNode, input: &RaftInput, now: Time, heard: Time, check_quorum: bool) -> Watch {
        let RaftInput::Message(m) = input else { return Watch::None };
        match &m.body {
            MessageBody::AppendResponse { success: false, reject: None, .. }
                if raft.role() == Role::Leader && m.term == raft.term() =>
            {
                Watch::StaleTermAck
            }
            MessageBody::Vote { .. }
                if check_quorum
                    && m.term == raft.term()
                    && raft.vote().is_none()
                    && now < heard + raft.config().election_timeout_min =>
            {
                Watch::VoteInLease(m.from)
            }
            MessageBody::Append { .. } if m.term >= raft.term() => Watch::HeardLeader(m.from),
            _ => Watch::None,
        }
    }
}

/// A client's answer, decoded from the node's response.
pub(super) enum Answer {
    /// The state machine's result.
    Result(KvResult),
    /// Not the leader (maybe naming the node index that is).
    Redirect(Option<usize>),
    /// May or may not have taken effect.
    Indeterminate,
    /// Refused as malformed (a simulator bug).
    Rejected(String),
    /// The result bytes did not decode (a simulator bug).
    Undecodable,
}

impl World {
    fn raft_config(&self, id: NodeId) -> RaftConfig {
        let mut rc = RaftConfig::new(id, 1, (1..=self.cfg.initial_voters as NodeId).collect(), self.cfg.seed ^ (id << 32));
        rc.election_timeout_min = Duration::from_millis(300);
        rc.election_timeout_max = Duration::from_millis(600);
        rc.heartbeat_interval = Duration::from_millis(50);
        rc.pre_vote = self.cfg.pre_vote;
        rc.check_quorum = self.cfg.check_quorum;
        rc.lease_reads = true;
        // The nodes are told the true drift bound (a lease computed with a smaller one is unsafe).
        rc.max_clock_drift = self.cfg.clock_drift;
        rc.bugs = self.cfg.bugs;
        if let Some(batch) = self.cfg.directed.batch_entries {
            rc.max_batch_entries = batch;
        }
        if let Some(snap) = self.cfg.snapshots {
            rc.snapshot_entries = snap.entries;
            rc.snapshot_keep_entries = snap.keep;
            rc.snapshot_chunk_bytes = snap.chunk;
            rc.snapshot_window = snap.window;
            rc.max_snapshot_sends = snap.max_sends;
        }
        rc
    }

    fn local_time(&self, n: usize) -> Time {
        self.nodes[n].clock.monotonic(self.now)
    }

    /// Starts (or restarts) node `n` from whatever its disk recovers. A read error at recovery
    /// keeps it down and it tries again a little later, as a supervisor would restart it.
    pub(super) fn boot(&mut self, n: usize) {
        if self.faults_on && self.cfg.read_error > 0.0 && self.rng.random_bool(self.cfg.read_error) {
            self.stats.read_errors += 1;
            let at = self.now + self.rng.random_range(nanos(Duration::from_millis(50))..=nanos(Duration::from_millis(500)));
            self.schedule(at, Event::Restart { node: n });
            return;
        }
        let recovered = match self.nodes[n].disk.recover() {
            Ok(r) => r,
            Err(e) => {
                self.violations.push(format!("node {} cannot recover its WAL: {e}", self.nodes[n].id));
                return;
            }
        };
        if recovered.corruption {
            self.stats.corruption_detected += 1;
        }
        let id = self.nodes[n].id;
        let mut rc = self.raft_config(id);
        rc.seed ^= self.nodes[n].incarnation.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let now = self.local_time(n);
        // The state machine starts from the snapshot on disk (if any), the log from the WAL.
        let snapshot = recovered.snapshot.map(|(meta, bytes)| (meta, bytes.into()));
        let replica = match LocalReplica::from_snapshot(rc, self.kv_store(), recovered.state, snapshot, now) {
            Ok(r) => r,
            Err(e) => {
                self.violations.push(format!("node {id} cannot restore its own snapshot: {e}"));
                return;
            }
        };
        let restored = replica.applied_index();
        self.nodes[n].raft = Some(replica);
        self.nodes[n].disk_free_at = self.now;
        self.nodes[n].heard_leader_at = now;
        self.checker.on_restart(id);
        self.checker.on_restored(id, restored);
        let inc = self.nodes[n].incarnation;
        let at = self.now + nanos(TICK);
        self.schedule(at, Event::Tick { node: n, incarnation: inc });
    }

    pub(super) fn on_tick(&mut self, n: usize, incarnation: u64) {
        let node = &mut self.nodes[n];
        if node.incarnation != incarnation || !node.is_up() {
            return;
        }
        if node.paused {
            node.tick_stopped = true;
            return;
        }
        self.step_node(n, RaftInput::Tick);
        let at = self.now + nanos(TICK);
        self.schedule(at, Event::Tick { node: n, incarnation });
    }

    /// Hands `input` to node `n`: lost if it is down, held if it is paused.
    pub(super) fn deliver(&mut self, n: usize, input: RaftInput) {
        let node = &mut self.nodes[n];
        if !node.is_up() {
            return;
        }
        if node.paused {
            node.held.push(input);
            return;
        }
        self.step_node(n, input);
    }

    /// A disk write completed: the disk makes it durable (or, if it lies, only says so) even while
    /// the process is paused; the acknowledgement reaches the process when it runs.
    pub(super) fn disk_done(&mut self, n: usize, incarnation: u64, seq: u64) {
        if self.nodes[n].incarnation != incarnation || !self.nodes[n].is_up() {
            return;
        }
        let fault = self.sync_fault(n);
        if self.nodes[n].disk.sync_through(seq, fault, &mut self.rng) {
            self.stats.misdirected_writes += 1;
        }
        self.deliver(n, RaftInput::Persisted { seq });
    }

    /// Stops stepping node `n` until `until` (its clock runs on meanwhile).
    pub(super) fn pause(&mut self, n: usize, until: u64) {
        let node = &mut self.nodes[n];
        node.paused = true;
        let incarnation = node.incarnation;
        self.schedule(until, Event::Resume { node: n, incarnation });
    }

    /// Ends a pause: everything that arrived meanwhile is stepped in order, then the clock ticks.
    pub(super) fn resume(&mut self, n: usize, incarnation: u64) {
        let node = &mut self.nodes[n];
        if node.incarnation != incarnation || !node.paused {
            return;
        }
        node.paused = false;
        let held = std::mem::take(&mut node.held);
        for input in held {
            if !self.nodes[n].is_up() {
                break; // a full disk stopped it while catching up
            }
            self.step_node(n, input);
        }
        let node = &mut self.nodes[n];
        if node.tick_stopped && node.is_up() {
            node.tick_stopped = false;
            let incarnation = node.incarnation;
            let at = self.now + nanos(TICK);
            self.schedule(at, Event::Tick { node: n, incarnation });
        }
    }

    /// Steps node `n` with `input` and turns its outputs into events.
    fn step_node(&mut self, n: usize, input: RaftInput) {
        let now = self.local_time(n);
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let incarnation = self.nodes[n].incarnation;
        let node = &mut self.nodes[n];
        let heard = &mut node.heard_leader_at;
        let Some(raft) = node.raft.as_mut() else { return };
        let was_leader = raft.role() == Role::Leader;
        let membership_before = raft.membership_index();
        let snap_before = raft.snapshot_stats();
        let watch = Watch::before(raft, &input, now, *heard, self.cfg.check_quorum);
        match input {
            // Raft carries no query: the host keeps it and LocalReplica serves it once confirmed.
            RaftInput::Read { id, mode } if self.read_queries.contains_key(&id) => {
                let query = self.read_queries[&id].clone();
                raft.read(now, id, query, mode, &mut out);
            }
            input => raft.step(now, input, &mut out),
        }
        match watch {
            Watch::StaleTermAck => self.stats.stale_term_acks += 1,
            Watch::VoteInLease(candidate) if raft.vote() == Some(candidate) => self.stats.votes_in_lease += 1,
            Watch::HeardLeader(leader) if raft.leader() == Some(leader) => *heard = now,
            _ => {}
        }
        let became_leader = !was_leader && raft.role() == Role::Leader;
        if was_leader && raft.membership_index() != membership_before && !raft.membership().is_voter(raft.id()) {
            self.stats.leaders_removed += 1;
        }
        let snap_after = raft.snapshot_stats();
        if snap_after.installed > snap_before.installed
            && let Some(meta) = raft.snapshot_meta()
        {
            self.checker.on_snapshot_installed(raft, meta);
        }
        self.stats.count_snapshots(&snap_before, &snap_after);
        if let Some((meta, bytes)) = raft.held_snapshot() {
            node.disk.store_snapshot(meta, bytes);
        }
        let raft = self.nodes[n].raft.as_ref().expect("stepped above");
        // Entries applied in this step may already be compacted away: the checker learns them
        // from the apply outputs.
        self.checker.observe_applies(out.iter().filter_map(|o| match o {
            RaftOutput::Apply { entry, .. } => Some(entry),
            _ => None,
        }));
        self.checker.after_step(raft, incarnation, became_leader);
        let leads_with_own_commit =
            raft.role() == Role::Leader && raft.log().term_at(raft.commit_index()) == Some(raft.term());
        if leads_with_own_commit
            && let Some((since, old)) = self.leader_failover_since
            && raft.id() != old
        {
            // Writes are accepted again: a new leader committed an entry of its own term.
            self.stats.leader_failover_ms.push((self.now - since) / 1_000_000);
            self.leader_failover_since = None;
        }
        if !self.faults_on && self.stats.recovery_ms.is_none() && leads_with_own_commit {
            self.stats.recovery_ms = Some((self.now - self.liveness_start) / 1_000_000);
        }
        if self.directed.active() {
            self.directed_after_step(n, became_leader);
        }
        let mut disk_full = false;
        for o in out.drain(..) {
            match o {
                RaftOutput::Send(msg) if self.directed.active() && self.directed_on_send(n, &msg) => {
                    self.stats.messages += 1; // held back by a directed episode
                }
                RaftOutput::Send(msg) => {
                    self.stats.messages += 1;
                    if matches!(msg.body, MessageBody::TimeoutNow) {
                        self.stats.timeout_nows += 1;
                    }
                    let to = (msg.to - 1) as usize;
                    if to < self.nodes.len() {
                        if self.faults_on {
                            let mut arrivals = std::mem::take(&mut self.arrivals);
                            self.net.send(&mut self.rng, self.now, (n, to), msg, &mut self.stats, &mut arrivals);
                            for (at, msg) in arrivals.drain(..) {
                                self.schedule(at, Event::Deliver { to, msg });
                            }
                            self.arrivals = arrivals;
                        } else {
                            let at = self.now + self.net.delay(&mut self.rng);
                            self.schedule(at, Event::Deliver { to, msg });
                        }
                    }
                }
                RaftOutput::Persist { seq, record } => {
                    if self.faults_on && self.cfg.disk_full > 0.0 && self.rng.random_bool(self.cfg.disk_full) {
                        // The write fails: the process must stop (never treat it as written).
                        self.stats.disk_full += 1;
                        disk_full = true;
                        break;
                    }
                    self.stats.disk_writes += 1;
                    self.nodes[n].disk.write(seq, &record);
                    let latency = self.disk_latency();
                    let node = &mut self.nodes[n];
                    let at = (self.now + latency).max(node.disk_free_at);
                    node.disk_free_at = at;
                    self.schedule(at, Event::DiskDone { node: n, incarnation, seq });
                }
                RaftOutput::Respond(resp) => {
                    if let Some(&(client, _)) = self.requests.get(&resp.id) {
                        self.respond(client, resp);
                    } else if resp.id >= super::membership::CONF_REQUEST_BASE {
                        self.on_conf_response(&resp);
                    }
                }
                // Configurations are checked from the applied entries themselves (below): one
                // `MembershipChanged` may stand for several entries, and an entry may be compacted
                // away in the very step that applies it.
                RaftOutput::MembershipChanged { .. } => {}
                RaftOutput::Apply { entry, .. } => {
                    let raft = self.nodes[n].raft.as_ref().expect("stepped above");
                    self.checker.on_applied(raft, entry.index, entry.term);
                    if let vecraft_core::raft::EntryPayload::ConfChange(c) = &entry.payload {
                        self.on_conf_entry_applied(n, entry.index, &c.membership);
                    }
                }
                RaftOutput::ReadReady { .. } => unreachable!("LocalReplica answers reads itself"),
                RaftOutput::TakeSnapshot { .. }
                | RaftOutput::ReadSnapshotChunk { .. }
                | RaftOutput::StageSnapshotChunk { .. }
                | RaftOutput::InstallSnapshot { .. } => unreachable!("LocalReplica handles snapshots itself"),
            }
        }
        out.clear();
        self.out = out;
        if disk_full {
            self.crash(n);
        }
    }

    /// Which lie, if any, node `n`'s disk tells on this sync.
    fn sync_fault(&mut self, n: usize) -> SyncFault {
        if !self.faults_on || !self.nodes[n].disk.faulty {
            return SyncFault::None;
        }
        if self.cfg.lying_fsync > 0.0 && self.rng.random_bool(self.cfg.lying_fsync) {
            self.stats.lying_syncs += 1;
            return SyncFault::Lie;
        }
        if self.cfg.misdirected_write > 0.0 && self.rng.random_bool(self.cfg.misdirected_write) {
            return SyncFault::Misdirect;
        }
        SyncFault::None
    }

    /// The node currently leading the highest term, if any.
    pub(super) fn leader_index(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.raft.as_ref().filter(|r| r.role() == Role::Leader).map(|r| (r.term(), i)))
            .max()
            .map(|(_, i)| i)
    }

    /// The Raft input that asks for `request` under request id `id`.
    pub(super) fn request_input(&mut self, id: RequestId, request: &ClientRequest) -> RaftInput {
        match request {
            ClientRequest::Read { key } => {
                let mode = if self.rng.random_bool(self.cfg.lease_read_fraction) { ReadMode::Lease } else { ReadMode::ReadIndex };
                let query = vecraft_core::wire::encode(&KvGet { key: *key }).expect("encodes");
                self.read_queries.insert(id, query);
                RaftInput::Read { id, mode }
            }
            ClientRequest::Propose(proposal) => {
                RaftInput::Propose { id, command: vecraft_core::wire::encode(proposal).expect("encodes").into() }
            }
        }
    }

    /// Decodes a node's answer for a client.
    pub(super) fn answer(&self, resp: &ClientResponse) -> Answer {
        match &resp.result {
            Ok(bytes) => match vecraft_core::wire::decode::<KvResult>(bytes) {
                Ok(r) => Answer::Result(r),
                Err(_) => Answer::Undecodable,
            },
            Err(ClientError::NotLeader { leader }) => {
                Answer::Redirect(leader.filter(|&l| l >= 1 && (l as usize) <= self.nodes.len()).map(|l| (l - 1) as usize))
            }
            Err(ClientError::Transferring { to }) => {
                Answer::Redirect(Some(*to).filter(|&l| l >= 1 && (l as usize) <= self.nodes.len()).map(|l| (l - 1) as usize))
            }
            Err(ClientError::Overloaded) => Answer::Redirect(None),
            Err(ClientError::Indeterminate) => Answer::Indeterminate,
            Err(ClientError::Rejected(why)) => Answer::Rejected(why.to_string()),
            // Clients never change the membership (the nemesis does, and reads its own answers).
            Err(ClientError::ConfChangeRefused(why)) => Answer::Rejected(why.to_string()),
        }
    }

    pub(super) fn check_log_matching(&mut self) {
        let logs: Vec<(NodeId, &vecraft_core::raft::RaftLog)> =
            self.nodes.iter().filter_map(|n| n.raft.as_ref().map(|r| (n.id, r.log()))).collect();
        self.checker.check_compacted_log_matching(logs);
    }

    /// After the drain every running replica applied exactly the leader's committed log; the
    /// first one that did not, as a message.
    pub(super) fn replicas_converged(&self, leader: usize) -> Result<(), String> {
        let leader = self.nodes[leader].raft.as_ref().expect("leader is up");
        let (commit, digest) = (leader.commit_index(), leader.state_machine().digest());
        let membership = leader.membership().clone();
        for n in &self.nodes {
            let Some(r) = n.raft.as_ref() else { continue };
            if !Self::is_member(&membership, n.id) {
                continue; // outside the group (never added, or removed): nothing to replicate
            }
            if r.applied_index() != commit || r.state_machine().digest() != digest {
                return Err(format!(
                    "liveness: node {} applied {} (leader {} committed {commit}) after the drain",
                    n.id,
                    r.applied_index(),
                    leader.id()
                ));
            }
        }
        Ok(())
    }
}
