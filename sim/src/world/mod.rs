//! The simulated world: virtual time, a faulty network, faulty disks, drifting and jumping clocks,
//! crashing and pausing nodes and impatient clients around a Raft cluster — all driven by one seed.
//!
//! This file is the event loop: it pops the earliest event, hands it to the part of the world it
//! concerns, and stops at the first violation. The parts live beside it, one concern each:
//! [`node_host`] (the only code that drives the Raft node), [`network`], [`disk`], [`clock`],
//! [`nemesis`] (the fault schedule), [`clients`], [`checks`] and [`stats`]. Nothing here reads a
//! real clock or iterates a hash map, so the same seed replays the same run bit for bit; a blake3
//! hash of every processed event (the trace hash) proves it.

mod checks;
mod clients;
mod directed;
pub mod clock;
pub mod disk;
mod membership;
mod nemesis;
pub mod network;
mod node_host;
mod sessions;
pub mod stats;

use crate::config::SimConfig;
use crate::history::{History, OpId};
use crate::invariants::RaftInvariants;
use clients::SimClient;
use network::Network;
use node_host::NodeHost;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
pub use stats::{RunReport, RunStats};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;
use vecraft_core::raft::{ClientResponse, Message, RaftInput, RaftOutput, RequestId};

/// How often each node's clock ticks into its state machine.
const TICK: Duration = Duration::from_millis(10);
/// A run that processes more events than this is a storm or livelock, reported as a violation
/// (a healthy 5-node run of 25 virtual seconds needs about 30 thousand).
const MAX_EVENTS: u64 = 3_000_000;

/// Something that will happen at a virtual instant.
#[derive(Debug)]
enum Event {
    Tick { node: usize, incarnation: u64 },
    Deliver { to: usize, msg: Message },
    Request { node: usize, client: usize, input: RaftInput },
    Response { client: usize, resp: ClientResponse },
    DiskDone { node: usize, incarnation: u64, seq: u64 },
    ClientNext { client: usize },
    ClientTimeout { client: usize, op: OpId },
    ClientRetry { client: usize, op: OpId },
    Partition,
    Crash,
    Restart { node: usize },
    LivenessStart,
    LogMatching,
    Degrade,
    Flap,
    FlapToggle { a: usize, b: usize, left: u32 },
    Pause,
    Resume { node: usize, incarnation: u64 },
    ClockJump,
    BitFlip,
    Transfer,
    Membership,
    /// A directed episode may start.
    Directed,
    /// A timed step of the directed episode (stale unless `episode` is the newest step).
    DirectedStep { episode: u64 },
    /// A packet a directed episode held back, delivered past any cut.
    DirectedDeliver { to: usize, msg: Message, hold_replies: bool },
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

/// A simulated cluster and its surroundings.
pub struct World {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<NodeHost>,
    clients: Vec<SimClient>,
    requests: BTreeMap<RequestId, (usize, OpId)>,
    /// The query of every read request, by request id (Raft carries only the id).
    read_queries: BTreeMap<RequestId, Vec<u8>>,
    /// When the nemesis last crashed the leader, until a client write succeeds again (failover).
    failover_since: Option<u64>,
    /// When the nemesis last crashed the leader (and which node it was), until another node leads
    /// with an own-term commit: failover as the cluster sees it, without client back-off.
    leader_failover_since: Option<(u64, vecraft_core::contract::NodeId)>,
    net: Network<Message>,
    /// Scratch buffer for the network's arrivals (reused to avoid an allocation per packet).
    arrivals: Vec<(u64, Message)>,
    faults_on: bool,
    liveness_start: u64,
    end: u64,
    history: History,
    checker: RaftInvariants,
    stats: RunStats,
    trace: blake3::Hasher,
    out: Vec<RaftOutput>,
    violations: Vec<String>,
    /// The membership nemesis's own random stream (so it leaves every other draw of a seed as
    /// it was).
    member_rng: ChaCha8Rng,
    /// Configuration changes the membership nemesis has asked for (request ids).
    conf_requests: u64,
    /// The directed nemesis (episodes timed off what the nodes do).
    directed: directed::DirectedState,
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl World {
    /// Builds the world for `cfg` (validated by the caller).
    pub fn new(cfg: SimConfig) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut nodes: Vec<NodeHost> = (0..cfg.nodes).map(|i| NodeHost::new(i, &cfg, &mut rng)).collect();
        // The faulty disks are a seeded choice of a minority of nodes.
        for _ in 0..cfg.faulty_disks {
            let healthy: Vec<usize> = (0..nodes.len()).filter(|&i| !nodes[i].disk.faulty).collect();
            let pick = healthy[rng.random_range(0..healthy.len())];
            nodes[pick].disk.faulty = true;
        }
        let clients = (0..cfg.clients).map(|i| SimClient::new(i, cfg.nodes, &mut rng)).collect();
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
            read_queries: BTreeMap::new(),
            failover_since: None,
            leader_failover_since: None,
            net: Network::new(&cfg),
            arrivals: Vec::new(),
            faults_on: true,
            liveness_start,
            end,
            history: History::new(),
            checker: RaftInvariants::default(),
            stats: RunStats::default(),
            trace: blake3::Hasher::new(),
            out: Vec::new(),
            violations: Vec::new(),
            member_rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x3E3B_E125_0000_0004),
            conf_requests: 0,
            directed: directed::DirectedState::new(cfg.seed),
            cfg,
        };
        world.checker.set_initial_membership(vecraft_core::raft::Membership::simple(
            1..=world.cfg.initial_voters as vecraft_core::contract::NodeId,
        ));
        for n in 0..world.nodes.len() {
            world.boot(n);
        }
        for c in 0..world.clients.len() {
            let at = world.rng.random_range(0..nanos(Duration::from_millis(200)));
            world.schedule(at, Event::ClientNext { client: c });
        }
        world.schedule_nemesis();
        world.schedule_directed();
        world.schedule(liveness_start, Event::LivenessStart);
        world.schedule(nanos(Duration::from_millis(500)), Event::LogMatching);
        world
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq: self.seq, event }));
    }

    /// An exponentially distributed delay with the given mean (Poisson fault arrivals).
    fn exp_delay(&mut self, mean: Duration) -> u64 {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        (-(u.ln()) * mean.as_nanos() as f64) as u64
    }

    /// Schedules `event` after an exponential delay of mean `every`, if the class is on.
    fn schedule_every(&mut self, every: Option<Duration>, event: Event) {
        if let Some(every) = every {
            let at = self.now + self.exp_delay(every);
            self.schedule(at, event);
        }
    }

    /// Node `n`'s wall-clock reading now (nanoseconds since the Unix epoch): drifting, and jumping
    /// when the nemesis steps it. No protocol consumes wall time yet; this is where it will.
    pub fn wall_clock(&self, n: usize) -> i64 {
        self.nodes[n].clock.wall(self.now)
    }

    fn hash_event(&mut self, at: u64, ev: &Event) {
        self.trace.update(&at.to_le_bytes());
        let bytes = match ev {
            Event::Tick { node, incarnation } => postcard::to_stdvec(&(0u8, node, incarnation)),
            Event::Deliver { to, msg } => postcard::to_stdvec(&(1u8, to, msg)),
            Event::Request { node, client, input } => postcard::to_stdvec(&(2u8, node, client, format!("{input:?}"))),
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
            Event::Degrade => postcard::to_stdvec(&13u8),
            Event::Flap => postcard::to_stdvec(&14u8),
            Event::FlapToggle { a, b, left } => postcard::to_stdvec(&(15u8, a, b, left)),
            Event::Pause => postcard::to_stdvec(&16u8),
            Event::Resume { node, incarnation } => postcard::to_stdvec(&(17u8, node, incarnation)),
            Event::ClockJump => postcard::to_stdvec(&18u8),
            Event::BitFlip => postcard::to_stdvec(&19u8),
            Event::Transfer => postcard::to_stdvec(&20u8),
            Event::Membership => postcard::to_stdvec(&21u8),
            Event::Directed => postcard::to_stdvec(&22u8),
            Event::DirectedStep { episode } => postcard::to_stdvec(&(23u8, episode)),
            Event::DirectedDeliver { to, msg, hold_replies } => postcard::to_stdvec(&(24u8, to, msg, hold_replies)),
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
            Event::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Event::Deliver { to, msg } => {
                let from = (msg.from - 1) as usize;
                if self.net.is_cut(from, to) {
                    self.stats.dropped += 1;
                } else {
                    self.deliver(to, RaftInput::Message(msg));
                }
            }
            Event::Request { node, client: _, input } => self.deliver(node, input),
            Event::Response { client, resp } => self.client_response(client, resp),
            Event::DiskDone { node, incarnation, seq } => self.disk_done(node, incarnation, seq),
            Event::ClientNext { client } => self.client_next(client),
            Event::ClientTimeout { client, op } => self.client_timeout(client, op),
            Event::ClientRetry { client, op } => self.client_retry(client, op),
            Event::Partition => self.nemesis_partition(),
            Event::Crash => self.nemesis_crash(),
            Event::Restart { node } => {
                if !self.nodes[node].is_up() {
                    self.boot(node);
                }
            }
            Event::LivenessStart => self.start_liveness(),
            Event::LogMatching => {
                self.check_log_matching();
                let at = self.now + nanos(Duration::from_millis(500));
                self.schedule(at, Event::LogMatching);
            }
            Event::Degrade => self.nemesis_degrade(),
            Event::Flap => self.nemesis_flap(),
            Event::FlapToggle { a, b, left } => self.flap_toggle(a, b, left),
            Event::Pause => self.nemesis_pause(),
            Event::Resume { node, incarnation } => self.resume(node, incarnation),
            Event::ClockJump => self.nemesis_clock_jump(),
            Event::BitFlip => self.nemesis_bit_flip(),
            Event::Transfer => self.nemesis_transfer(),
            Event::Membership => self.nemesis_membership(),
            Event::Directed => self.directed_trigger(),
            Event::DirectedStep { episode } => self.directed_step(episode),
            Event::DirectedDeliver { to, msg, hold_replies } => self.directed_deliver(to, msg, hold_replies),
        }
    }
}
