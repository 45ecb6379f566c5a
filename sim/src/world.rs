//! The simulated world: virtual time, a faulty network, faulty disks, drifting clocks, crashing
//! nodes and impatient clients around a Raft cluster — all driven by one seed.
//!
//! The event loop pops the earliest event, steps the one state machine it concerns, turns the
//! outputs into future events, and runs the invariant checker. Nothing here reads a real clock or
//! iterates a hash map, so the same seed replays the same run bit for bit; a blake3 hash of every
//! processed event (the trace hash) proves it.

use crate::config::{PartitionMode, SimConfig};
use crate::disk::SimDisk;
use crate::history::{ClientId, Command, History, OpId, Operation, Outcome};
use crate::invariants::RaftInvariants;
use crate::kv::{KvCommand, KvGet, KvResult, KvStore};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::raft::{
    ClientError, ClientResponse, LocalReplica, Message, RaftConfig, RaftInput, RaftOutput, ReadMode, RequestId, Role,
};

/// How often each node's clock ticks into its state machine.
const TICK: Duration = Duration::from_millis(10);
/// Clients stop invoking this long before the end, so the cluster can converge.
const DRAIN: Duration = Duration::from_millis(3_000);
/// A run that processes more events than this is a storm or livelock, reported as a violation
/// (a healthy 5-node run of 25 virtual seconds needs about 30 thousand).
const MAX_EVENTS: u64 = 3_000_000;
/// After faults stop, a leader must exist within this long.
const ELECTION_BOUND: Duration = Duration::from_millis(5_000);

/// Something that will happen at a virtual instant.
#[derive(Debug)]
enum Event {
    Tick { node: usize, incarnation: u64 },
    Deliver { to: usize, msg: Message },
    Request { node: usize, client: usize, input: RaftInput, query: Option<Vec<u8>> },
    Response { client: usize, resp: ClientResponse },
    DiskDone { node: usize, incarnation: u64, seq: u64 },
    ClientNext { client: usize },
    ClientTimeout { client: usize, op: OpId },
    ClientRetry { client: usize, op: OpId },
    Partition,
    Crash,
    Transfer,
    Restart { node: usize },
    LivenessStart,
    LogMatching,
}

struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct SimNode {
    id: NodeId,
    raft: Option<LocalReplica<KvStore>>,
    disk: SimDisk,
    incarnation: u64,
    clock_rate: f64,
    clock_offset: u64,
    disk_free_at: u64,
}

struct SimClient {
    process: ClientId,
    target: usize,
    op: Option<(OpId, Operation)>,
    request: RequestId,
    last_seen: BTreeMap<u64, Option<i64>>,
    counter: i64,
    definite_in_liveness: u64,
    /// Fraction of this client's operations that are reads (read-heavy clients linger on a
    /// deposed leader, which is what exposes stale reads).
    read_ratio: f64,
}

/// Counters describing what a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunStats {
    /// Events processed.
    pub events: u64,
    /// Raft messages sent.
    pub messages: u64,
    /// Messages lost (random loss or partition).
    pub dropped: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Partition events (new cuts).
    pub partitions: u64,
    /// Heals.
    pub heals: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Correlated crashes of a majority.
    pub power_losses: u64,
    /// Crashes that tore a write (detected and discarded at restart).
    pub torn_writes: u64,
    /// Durable writes.
    pub disk_writes: u64,
    /// Client operations invoked.
    pub ops_invoked: u64,
    /// Completed ok.
    pub ops_ok: u64,
    /// Completed without effect (incl. failed CAS).
    pub ops_fail: u64,
    /// Indeterminate (time-outs, lost leadership).
    pub ops_info: u64,
    /// NotLeader redirects.
    pub redirects: u64,
    /// Distinct terms that had a leader.
    pub leader_terms: u64,
    /// Entries committed.
    pub committed: u64,
    /// Virtual time simulated.
    pub virtual_ms: u64,
    /// Time from the end of faults to the first leader with an own-term commit.
    pub recovery_ms: Option<u64>,
    /// Leadership transfers requested of a leader.
    pub transfers: u64,
    /// `TimeoutNow` messages sent (a target caught up and was told to take over).
    pub timeout_nows: u64,
}

/// Everything a run produced.
pub struct RunReport {
    /// The world that ran.
    pub config: SimConfig,
    /// What happened.
    pub stats: RunStats,
    /// Safety and liveness violations (empty = all checks held).
    pub violations: Vec<String>,
    /// The client history, for the linearizability checker.
    pub history: History,
    /// blake3 of the processed-event trace.
    pub trace_hash: [u8; 32],
}

/// A simulated cluster and its surroundings.
pub struct World {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<SimNode>,
    clients: Vec<SimClient>,
    requests: BTreeMap<RequestId, (usize, OpId)>,
    blocked: BTreeSet<(usize, usize)>,
    faults_on: bool,
    liveness_start: u64,
    end: u64,
    history: History,
    checker: RaftInvariants,
    stats: RunStats,
    trace: blake3::Hasher,
    out: Vec<RaftOutput>,
    violations: Vec<String>,
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl World {
    /// Builds the world for `cfg` (validated by the caller).
    pub fn new(cfg: SimConfig) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let voters: Vec<NodeId> = (1..=cfg.nodes as NodeId).collect();
        let mut nodes = Vec::new();
        for &id in &voters {
            let clock_rate = 1.0 + rng.random_range(-1.0..=1.0) * cfg.clock_drift;
            let clock_offset = rng.random_range(0..1_000_000_000u64);
            nodes.push(SimNode {
                id,
                raft: None,
                disk: SimDisk::default(),
                incarnation: 0,
                clock_rate,
                clock_offset,
                disk_free_at: 0,
            });
        }
        let clients = (0..cfg.clients)
            .map(|i| SimClient {
                process: i as ClientId,
                target: rng.random_range(0..cfg.nodes),
                op: None,
                request: 0,
                last_seen: BTreeMap::new(),
                counter: 0,
                definite_in_liveness: 0,
                read_ratio: rng.random_range(0.3..0.95),
            })
            .collect();
        let liveness_start = nanos(cfg.fault_phase);
        let end = liveness_start + nanos(cfg.liveness_phase);
        let mut world = World {
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            clients,
            requests: BTreeMap::new(),
            blocked: BTreeSet::new(),
            faults_on: true,
            liveness_start,
            end,
            history: History::new(),
            checker: RaftInvariants::default(),
            stats: RunStats::default(),
            trace: blake3::Hasher::new(),
            out: Vec::new(),
            violations: Vec::new(),
            cfg,
        };
        for n in 0..world.nodes.len() {
            world.boot(n);
        }
        for c in 0..world.clients.len() {
            let at = world.rng.random_range(0..nanos(Duration::from_millis(200)));
            world.schedule(at, Event::ClientNext { client: c });
        }
        if let Some(every) = world.cfg.partition_every {
            let at = world.exp_delay(every);
            world.schedule(at, Event::Partition);
        }
        if let Some(every) = world.cfg.crash_every {
            let at = world.exp_delay(every);
            world.schedule(at, Event::Crash);
        }
        if let Some(every) = world.cfg.transfer_every {
            let at = world.exp_delay(every);
            world.schedule(at, Event::Transfer);
        }
        world.schedule(liveness_start, Event::LivenessStart);
        world.schedule(nanos(Duration::from_millis(500)), Event::LogMatching);
        world
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq: self.seq, event }));
    }

    fn exp_delay(&mut self, mean: Duration) -> u64 {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        (-(u.ln()) * mean.as_nanos() as f64) as u64
    }

    fn local_time(&self, n: usize) -> Time {
        let node = &self.nodes[n];
        Time(node.clock_offset + (self.now as f64 * node.clock_rate) as u64)
    }

    fn raft_config(&self, id: NodeId) -> RaftConfig {
        let mut rc = RaftConfig::new(id, 1, (1..=self.cfg.nodes as NodeId).collect(), self.cfg.seed ^ (id << 32));
        rc.election_timeout_min = Duration::from_millis(300);
        rc.election_timeout_max = Duration::from_millis(600);
        rc.heartbeat_interval = Duration::from_millis(50);
        rc.pre_vote = self.cfg.pre_vote;
        rc.check_quorum = self.cfg.check_quorum;
        rc.lease_reads = true;
        // The nodes are told the true drift bound (a lease computed with a smaller one is unsafe).
        rc.max_clock_drift = self.cfg.clock_drift;
        rc.bugs = self.cfg.bugs;
        rc
    }

    /// Starts (or restarts) node `n` from whatever its disk recovers.
    fn boot(&mut self, n: usize) {
        let recovered = match self.nodes[n].disk.recover() {
            Ok(r) => r,
            Err(e) => {
                self.violations.push(format!("node {} cannot recover its WAL: {e}", self.nodes[n].id));
                return;
            }
        };
        let id = self.nodes[n].id;
        let mut rc = self.raft_config(id);
        rc.seed ^= self.nodes[n].incarnation.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let now = self.local_time(n);
        self.nodes[n].raft = Some(LocalReplica::new(rc, KvStore::default(), recovered.state, 0, now));
        self.nodes[n].disk_free_at = self.now;
        self.checker.on_restart(id);
        let inc = self.nodes[n].incarnation;
        let at = self.now + nanos(TICK);
        self.schedule(at, Event::Tick { node: n, incarnation: inc });
    }

    fn link_delay(&mut self) -> u64 {
        self.rng.random_range(nanos(self.cfg.min_delay)..=nanos(self.cfg.max_delay))
    }

    /// Puts a packet on the wire: maybe lost, maybe duplicated, each copy with its own delay.
    fn transmit(&mut self, make: impl Fn() -> Event) {
        let (loss, dup) = if self.faults_on { (self.cfg.loss, self.cfg.duplication) } else { (0.0, 0.0) };
        if loss > 0.0 && self.rng.random_bool(loss) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if dup > 0.0 && self.rng.random_bool(dup) { 2 } else { 1 };
        self.stats.duplicated += copies - 1;
        for _ in 0..copies {
            let at = self.now + self.link_delay();
            self.schedule(at, make());
        }
    }

    /// Steps node `n` with `input` and turns its outputs into events.
    fn step_node(&mut self, n: usize, input: RaftInput) {
        self.drive_node(n, |raft, now, out| raft.step(now, input, out));
    }

    /// Runs `act` on node `n` (if up) at its local time and turns the outputs into events.
    fn drive_node(&mut self, n: usize, act: impl FnOnce(&mut LocalReplica<KvStore>, Time, &mut Vec<RaftOutput>)) {
        let now = self.local_time(n);
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let Some(raft) = self.nodes[n].raft.as_mut() else { return };
        let was_leader = raft.role() == Role::Leader;
        act(raft, now, &mut out);
        let became_leader = !was_leader && raft.role() == Role::Leader;
        self.checker.after_step(raft, became_leader);
        if !self.faults_on
            && self.stats.recovery_ms.is_none()
            && raft.role() == Role::Leader
            && raft.log().term_at(raft.commit_index()) == Some(raft.term())
        {
            self.stats.recovery_ms = Some((self.now - self.liveness_start) / 1_000_000);
        }
        for o in out.drain(..) {
            match o {
                RaftOutput::Send(msg) => {
                    self.stats.messages += 1;
                    if matches!(msg.body, vecraft_core::raft::MessageBody::TimeoutNow) {
                        self.stats.timeout_nows += 1;
                    }
                    let to = (msg.to - 1) as usize;
                    if to < self.nodes.len() {
                        self.transmit(|| Event::Deliver { to, msg: msg.clone() });
                    }
                }
                RaftOutput::Persist { seq, record } => {
                    self.stats.disk_writes += 1;
                    let node = &mut self.nodes[n];
                    node.disk.write(seq, &record);
                    let stall = self.faults_on && self.cfg.disk_stall > 0.0 && self.rng.random_bool(self.cfg.disk_stall);
                    let latency = if stall {
                        self.rng.random_range(nanos(Duration::from_millis(50))..=nanos(Duration::from_millis(250)))
                    } else {
                        self.rng.random_range(nanos(self.cfg.min_disk)..=nanos(self.cfg.max_disk))
                    };
                    let node = &mut self.nodes[n];
                    let at = (self.now + latency).max(node.disk_free_at);
                    node.disk_free_at = at;
                    let incarnation = node.incarnation;
                    self.schedule(at, Event::DiskDone { node: n, incarnation, seq });
                }
                RaftOutput::Respond(resp) => {
                    if let Some(&(client, _)) = self.requests.get(&resp.id) {
                        self.transmit(|| Event::Response { client, resp: resp.clone() });
                    }
                }
                RaftOutput::Apply { entry, .. } => {
                    let raft = self.nodes[n].raft.as_ref().expect("stepped above");
                    self.checker.on_applied(raft, entry.index, entry.term);
                }
                RaftOutput::ReadReady { .. } => unreachable!("LocalReplica answers reads itself"),
            }
        }
        self.out = out;
    }

    fn hash_event(&mut self, at: u64, ev: &Event) {
        self.trace.update(&at.to_le_bytes());
        let bytes = match ev {
            Event::Tick { node, incarnation } => postcard::to_stdvec(&(0u8, node, incarnation)),
            Event::Deliver { to, msg } => postcard::to_stdvec(&(1u8, to, msg)),
            Event::Request { node, client, input, query } => {
                postcard::to_stdvec(&(2u8, node, client, format!("{input:?}"), query))
            }
            Event::Response { client, resp } => postcard::to_stdvec(&(3u8, client, resp)),
            Event::DiskDone { node, incarnation, seq } => postcard::to_stdvec(&(4u8, node, incarnation, seq)),
            Event::ClientNext { client } => postcard::to_stdvec(&(5u8, client)),
            Event::ClientTimeout { client, op } => postcard::to_stdvec(&(6u8, client, op.0)),
            Event::ClientRetry { client, op } => postcard::to_stdvec(&(7u8, client, op.0)),
            Event::Partition => postcard::to_stdvec(&8u8),
            Event::Crash => postcard::to_stdvec(&9u8),
            Event::Restart { node } => postcard::to_stdvec(&(10u8, node)),
            Event::LivenessStart => postcard::to_stdvec(&11u8),
            Event::LogMatching => postcard::to_stdvec(&12u8),
            Event::Transfer => postcard::to_stdvec(&13u8),
        };
        self.trace.update(&bytes.expect("trace events encode"));
    }

    /// Runs to the end (or the first violation) and checks everything.
    pub fn run(mut self) -> RunReport {
        while let Some(Reverse(s)) = self.queue.pop() {
            if s.at > self.end {
                break;
            }
            self.now = s.at;
            self.stats.events += 1;
            self.hash_event(s.at, &s.event);
            self.handle(s.event);
            if self.stats.events > MAX_EVENTS {
                self.violations.push(format!(
                    "runaway: more than {MAX_EVENTS} events by virtual time {} ms (a message storm or livelock)",
                    self.now / 1_000_000
                ));
                break;
            }
            if !self.checker.violations().is_empty() || !self.violations.is_empty() {
                break;
            }
        }
        self.finish()
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation && self.nodes[node].raft.is_some() {
                    self.step_node(node, RaftInput::Tick);
                    let at = self.now + nanos(TICK);
                    self.schedule(at, Event::Tick { node, incarnation });
                }
            }
            Event::Deliver { to, msg } => {
                let from = (msg.from - 1) as usize;
                if self.blocked.contains(&(from, to)) {
                    self.stats.dropped += 1;
                } else {
                    self.step_node(to, RaftInput::Message(msg));
                }
            }
            Event::Request { node, client: _, input: RaftInput::Read { id, mode }, query: Some(query) } => {
                self.drive_node(node, |raft, now, out| raft.read(now, id, query, mode, out));
            }
            Event::Request { node, client: _, input, query: _ } => self.step_node(node, input),
            Event::Response { client, resp } => self.client_response(client, resp),
            Event::DiskDone { node, incarnation, seq } => {
                if self.nodes[node].incarnation == incarnation && self.nodes[node].raft.is_some() {
                    self.nodes[node].disk.sync_through(seq);
                    self.step_node(node, RaftInput::Persisted { seq });
                }
            }
            Event::ClientNext { client } => self.client_next(client),
            Event::ClientTimeout { client, op } => {
                if self.clients[client].op.is_some_and(|(o, _)| o == op) {
                    self.complete(client, Outcome::Info);
                }
            }
            Event::ClientRetry { client, op } => {
                if self.clients[client].op.is_some_and(|(o, _)| o == op) {
                    self.send_request(client);
                }
            }
            Event::Partition => self.nemesis_partition(),
            Event::Crash => self.nemesis_crash(),
            Event::Transfer => self.nemesis_transfer(),
            Event::Restart { node } => {
                if self.nodes[node].raft.is_none() {
                    self.boot(node);
                }
            }
            Event::LivenessStart => self.start_liveness(),
            Event::LogMatching => {
                self.check_log_matching();
                let at = self.now + nanos(Duration::from_millis(500));
                self.schedule(at, Event::LogMatching);
            }
        }
    }

    // ----- clients -----

    fn client_next(&mut self, c: usize) {
        if self.now + nanos(DRAIN) >= self.end || self.clients[c].op.is_some() {
            return;
        }
        let key = self.rng.random_range(0..self.cfg.keys);
        let client = &mut self.clients[c];
        client.counter += 1;
        let unique = (c as i64 + 1) * 1_000_000_000 + client.counter;
        let roll: f64 = self.rng.random_range(0.0..1.0);
        let read_ratio = self.clients[c].read_ratio;
        let operation = if roll < read_ratio {
            Operation::read(key)
        } else if roll < read_ratio + (1.0 - read_ratio) * 0.7 {
            Operation::write(key, unique)
        } else {
            let guess = self.clients[c].last_seen.get(&key).copied().unwrap_or(None);
            Operation::cas(key, guess, unique)
        };
        let client = &mut self.clients[c];
        let op = match self.history.invoke(client.process, operation, self.now) {
            Ok(op) => op,
            Err(e) => {
                self.violations.push(format!("simulator bug: history rejected an invoke: {e}"));
                return;
            }
        };
        client.op = Some((op, operation));
        self.stats.ops_invoked += 1;
        let at = self.now + nanos(self.cfg.client_timeout);
        self.schedule(at, Event::ClientTimeout { client: c, op });
        self.send_request(c);
    }

    fn send_request(&mut self, c: usize) {
        let Some((op, operation)) = self.clients[c].op else { return };
        self.clients[c].request += 1;
        let id = ((c as u64) << 40) | self.clients[c].request;
        self.requests.insert(id, (c, op));
        let (input, query) = match operation.command {
            Command::Read => {
                let mode = if self.rng.random_bool(self.cfg.lease_read_fraction) { ReadMode::Lease } else { ReadMode::ReadIndex };
                let query = vecraft_core::wire::encode(&KvGet { key: operation.key }).expect("encodes");
                (RaftInput::Read { id, mode }, Some(query))
            }
            Command::Write(value) => {
                let cmd = KvCommand::Put { key: operation.key, value };
                (RaftInput::Propose { id, command: vecraft_core::wire::encode(&cmd).expect("encodes").into() }, None)
            }
            Command::Cas { expected, new } => {
                let cmd = KvCommand::Cas { key: operation.key, expected, new };
                (RaftInput::Propose { id, command: vecraft_core::wire::encode(&cmd).expect("encodes").into() }, None)
            }
        };
        let node = self.clients[c].target;
        // Clients sit outside the partitions but suffer loss and delay like everyone. Requests are
        // never duplicated: over TCP they are not, and exactly-once retries need client sessions,
        // which this register protocol does not have (a duplicated put could apply twice).
        if self.faults_on && self.cfg.loss > 0.0 && self.rng.random_bool(self.cfg.loss) {
            self.stats.dropped += 1;
            return;
        }
        let at = self.now + self.link_delay();
        self.schedule(at, Event::Request { node, client: c, input, query });
    }

    fn client_response(&mut self, c: usize, resp: ClientResponse) {
        let Some(&(_, op)) = self.requests.get(&resp.id) else { return };
        let Some((current, operation)) = self.clients[c].op else { return };
        if current != op {
            return; // a late answer to an abandoned operation
        }
        // Only the newest request of the operation counts (older ones were redirected).
        if resp.id != ((c as u64) << 40) | self.clients[c].request {
            return;
        }
        match resp.result {
            Ok(bytes) => {
                let outcome = match vecraft_core::wire::decode::<KvResult>(&bytes) {
                    Ok(KvResult::Written) => Outcome::Ok,
                    Ok(KvResult::Cas { swapped: true, .. }) => Outcome::Ok,
                    Ok(KvResult::Cas { swapped: false, found }) => {
                        self.clients[c].last_seen.insert(operation.key, found);
                        Outcome::Fail
                    }
                    Ok(KvResult::Value(v)) => {
                        self.clients[c].last_seen.insert(operation.key, v);
                        Outcome::ReadOk(v)
                    }
                    Ok(KvResult::Invalid) | Err(_) => {
                        self.violations.push(format!("client {c} got an invalid answer to {operation:?}"));
                        return;
                    }
                };
                if let Command::Write(v) | Command::Cas { new: v, .. } = operation.command
                    && outcome == Outcome::Ok
                {
                    self.clients[c].last_seen.insert(operation.key, Some(v));
                }
                self.complete(c, outcome);
            }
            Err(ClientError::NotLeader { .. } | ClientError::Transferring { .. } | ClientError::Overloaded) => {
                let leader = match resp.result {
                    Err(ClientError::NotLeader { leader }) => leader,
                    Err(ClientError::Transferring { to }) => Some(to),
                    _ => Some(self.nodes[self.clients[c].target].id), // overloaded: same node, later
                };
                // Consume this request id: a duplicated copy of this answer must not trigger a
                // second retry (two copies of one CAS in the log).
                self.clients[c].request += 1;
                self.stats.redirects += 1;
                self.clients[c].target = match leader {
                    Some(l) if (l as usize) <= self.nodes.len() => (l - 1) as usize,
                    _ => self.rng.random_range(0..self.nodes.len()),
                };
                let at = self.now + nanos(Duration::from_millis(20));
                self.schedule(at, Event::ClientRetry { client: c, op });
            }
            Err(ClientError::Indeterminate) => self.complete(c, Outcome::Info),
            Err(ClientError::Rejected(why)) => {
                self.violations.push(format!("client {c}: request rejected: {why}"));
            }
        }
    }

    fn complete(&mut self, c: usize, outcome: Outcome) {
        let Some((op, _)) = self.clients[c].op.take() else { return };
        if let Err(e) = self.history.complete(op, outcome, self.now) {
            self.violations.push(format!("simulator bug: history rejected a completion: {e}"));
        }
        match outcome {
            Outcome::Ok | Outcome::ReadOk(_) => self.stats.ops_ok += 1,
            Outcome::Fail => self.stats.ops_fail += 1,
            Outcome::Info => {
                self.stats.ops_info += 1;
                // An indeterminate operation may still take effect later; the client carries on as
                // a new process so that its next operation does not overlap it (Jepsen's rule).
                self.clients[c].process += self.cfg.clients as ClientId;
                self.clients[c].target = self.rng.random_range(0..self.nodes.len());
            }
        }
        if outcome != Outcome::Info && self.now >= self.liveness_start {
            self.clients[c].definite_in_liveness += 1;
        }
        let think = self.rng.random_range(0..nanos(Duration::from_millis(30)));
        let at = self.now + think;
        self.schedule(at, Event::ClientNext { client: c });
    }

    // ----- nemesis -----

    fn leader_index(&self) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.raft.as_ref().filter(|r| r.role() == Role::Leader).map(|r| (r.term(), i)))
            .max()
            .map(|(_, i)| i)
    }

    fn nemesis_partition(&mut self) {
        if !self.faults_on {
            return;
        }
        let n = self.nodes.len();
        if !self.blocked.is_empty() && self.rng.random_bool(0.5) {
            self.blocked.clear();
            self.stats.heals += 1;
        } else if n > 1 {
            self.blocked.clear();
            let mode = match self.cfg.partitions {
                PartitionMode::Mixed => {
                    [PartitionMode::Halves, PartitionMode::IsolateLeader, PartitionMode::OneWay][self.rng.random_range(0..3)]
                }
                m => m,
            };
            match mode {
                PartitionMode::None | PartitionMode::Mixed => {}
                PartitionMode::Halves => {
                    let side: Vec<bool> = (0..n).map(|_| self.rng.random_bool(0.5)).collect();
                    for a in 0..n {
                        for b in 0..n {
                            if side[a] != side[b] {
                                self.blocked.insert((a, b));
                            }
                        }
                    }
                }
                PartitionMode::IsolateLeader => {
                    let victim = self.leader_index().unwrap_or_else(|| self.rng.random_range(0..n));
                    for b in 0..n {
                        if b != victim {
                            self.blocked.insert((victim, b));
                            self.blocked.insert((b, victim));
                        }
                    }
                }
                PartitionMode::OneWay => {
                    for _ in 0..self.rng.random_range(1..=n) {
                        let a = self.rng.random_range(0..n);
                        let b = self.rng.random_range(0..n);
                        if a != b {
                            self.blocked.insert((a, b));
                        }
                    }
                }
            }
            self.stats.partitions += 1;
        }
        if let Some(every) = self.cfg.partition_every {
            let at = self.now + self.exp_delay(every);
            self.schedule(at, Event::Partition);
        }
    }

    /// Asks the current leader to hand leadership to another node (possibly one that is down or
    /// cut off: the transfer must then be abandoned cleanly).
    fn nemesis_transfer(&mut self) {
        if !self.faults_on {
            return;
        }
        if let Some(l) = self.leader_index()
            && self.nodes.len() > 1
        {
            let mut target = self.rng.random_range(0..self.nodes.len() - 1);
            if target >= l {
                target += 1;
            }
            let to = self.nodes[target].id;
            self.stats.transfers += 1;
            self.step_node(l, RaftInput::TransferLeadership { to });
        }
        if let Some(every) = self.cfg.transfer_every {
            let at = self.now + self.exp_delay(every);
            self.schedule(at, Event::Transfer);
        }
    }

    fn nemesis_crash(&mut self) {
        if !self.faults_on {
            return;
        }
        let up: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.nodes[i].raft.is_some()).collect();
        if !up.is_empty() {
            let mut victims = vec![match self.leader_index() {
                Some(l) if self.rng.random_bool(0.3) => l,
                _ => up[self.rng.random_range(0..up.len())],
            }];
            if self.cfg.power_loss > 0.0 && self.rng.random_bool(self.cfg.power_loss) {
                // A power loss: a majority goes down at the same instant, unsynced writes and all.
                self.stats.power_losses += 1;
                for &i in &up {
                    if victims.len() * 2 > self.nodes.len() {
                        break;
                    }
                    if !victims.contains(&i) {
                        victims.push(i);
                    }
                }
            }
            for victim in victims {
                self.crash(victim);
            }
            self.check_durability();
        }
        if let Some(every) = self.cfg.crash_every {
            let at = self.now + self.exp_delay(every);
            self.schedule(at, Event::Crash);
        }
    }

    fn crash(&mut self, victim: usize) {
        let torn = (self.cfg.torn_write > 0.0 && self.rng.random_bool(self.cfg.torn_write))
            .then(|| self.rng.random_range(0.05..0.95));
        let node = &mut self.nodes[victim];
        node.raft = None;
        node.incarnation += 1;
        if node.disk.crash(torn) {
            self.stats.torn_writes += 1;
        }
        self.stats.crashes += 1;
        let longest = nanos(self.cfg.max_downtime).max(nanos(Duration::from_millis(51)));
        let down = self.rng.random_range(nanos(Duration::from_millis(50))..=longest);
        let at = self.now + down;
        self.schedule(at, Event::Restart { node: victim });
    }

    fn start_liveness(&mut self) {
        self.faults_on = false;
        if !self.blocked.is_empty() {
            self.blocked.clear();
            self.stats.heals += 1;
        }
        for n in 0..self.nodes.len() {
            if self.nodes[n].raft.is_none() {
                self.boot(n);
            }
        }
    }

    // ----- checks -----

    fn check_log_matching(&mut self) {
        let logs: Vec<(NodeId, &[vecraft_core::raft::Entry])> =
            self.nodes.iter().filter_map(|n| n.raft.as_ref().map(|r| (n.id, r.log().entries()))).collect();
        self.checker.check_log_matching(logs);
    }

    fn check_durability(&mut self) {
        let mut disks = Vec::new();
        for n in &self.nodes {
            match n.disk.durable_state() {
                Ok(d) => disks.push((n.id, d)),
                Err(e) => self.violations.push(format!("node {} disk unreadable: {e}", n.id)),
            }
        }
        self.checker.check_durability(&disks, self.nodes.len() / 2 + 1);
    }

    fn finish(mut self) -> RunReport {
        self.stats.virtual_ms = self.now / 1_000_000;
        if self.violations.is_empty() && self.checker.violations().is_empty() {
            self.check_log_matching();
            self.check_durability();
            self.check_liveness();
        }
        let mut violations = self.checker.violations().to_vec();
        violations.append(&mut self.violations);
        self.stats.leader_terms = self.checker.leader_terms() as u64;
        self.stats.committed = self.checker.committed_len();
        RunReport {
            config: self.cfg,
            stats: self.stats,
            violations,
            history: self.history,
            trace_hash: *self.trace.finalize().as_bytes(),
        }
    }

    /// After faults stop: one leader, all replicas converge, every client made progress.
    fn check_liveness(&mut self) {
        let Some(l) = self.leader_index() else {
            self.violations.push(format!(
                "liveness: no leader {} ms after faults stopped",
                self.cfg.liveness_phase.as_millis()
            ));
            return;
        };
        let leader = self.nodes[l].raft.as_ref().expect("leader is up");
        let (commit, digest) = (leader.commit_index(), leader.state_machine().digest());
        for n in &self.nodes {
            let Some(r) = n.raft.as_ref() else { continue };
            if r.applied_index() != commit || r.state_machine().digest() != digest {
                self.violations.push(format!(
                    "liveness: node {} applied {} (leader {} committed {commit}) after the drain",
                    n.id,
                    r.applied_index(),
                    leader.id()
                ));
                return;
            }
        }
        for (c, client) in self.clients.iter().enumerate() {
            if client.definite_in_liveness == 0 {
                self.violations.push(format!("liveness: client {c} completed no operation after faults stopped"));
                return;
            }
        }
        match self.stats.recovery_ms {
            Some(ms) if ms <= ELECTION_BOUND.as_millis() as u64 => {}
            other => self.violations.push(format!(
                "liveness: no leader with an own-term commit within {} ms of faults stopping (took {other:?} ms)",
                ELECTION_BOUND.as_millis()
            )),
        }
    }
}
