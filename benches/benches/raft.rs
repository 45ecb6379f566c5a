//! Raft and simulator throughput.
//!
//! * `raft_commit/3_nodes` vs `raft_commit/1_node`: entries committed per second by a fault-free
//!   in-memory cluster whose network and disks complete instantly, so the figure is the protocol's
//!   own CPU cost. The single-node group (no replication) is the baseline measured in the same run.
//! * `simulator/*`: wall time of one simulated seed, from which simulated seconds per wall second and
//!   seeds per minute follow (`calm` profile as the baseline, `chaos` with every fault class on).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Duration;
use vecraft_core::contract::{StateMachine, Time};
use vecraft_core::raft::{DurableState, LocalReplica, LogIndex, RaftConfig, RaftInput, RaftOutput, ReplicatedStateMachine, Role};
use vecraft_sim::config::FaultProfile;
use vecraft_sim::run::{RunSpec, run_seed};

/// Counts applied commands (the cheapest state machine: we measure Raft, not the application).
#[derive(Default)]
struct Counter(u64);

impl ReplicatedStateMachine for Counter {
    fn apply(&mut self, _index: LogIndex, _command: &[u8]) -> Vec<u8> {
        self.0 += 1;
        Vec::new()
    }
    fn query(&self, _query: &[u8]) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0 = u64::from_le_bytes(bytes.try_into().map_err(|_| "a counter snapshot is 8 bytes".to_string())?);
        Ok(())
    }
}

/// The command every proposal carries: shared, as a client's buffer would be.
static PAYLOAD: std::sync::LazyLock<bytes::Bytes> = std::sync::LazyLock::new(|| bytes::Bytes::from(vec![0u8; 64]));

/// A cluster whose messages and disk writes complete immediately, in FIFO order.
struct InstantCluster {
    nodes: Vec<LocalReplica<Counter>>,
    queue: VecDeque<(usize, RaftInput)>,
    now: Time,
    out: Vec<RaftOutput>,
    responses: u64,
}

impl InstantCluster {
    fn new(n: u64) -> InstantCluster {
        let voters: Vec<u64> = (1..=n).collect();
        let nodes = voters
            .iter()
            .map(|&id| {
                let mut cfg = RaftConfig::new(id, 1, voters.clone(), 7);
                cfg.max_batch_entries = 256;
                cfg.max_inflight = 16;
                LocalReplica::new(cfg, Counter::default(), DurableState::default(), 0, Time::ZERO)
            })
            .collect();
        let mut c = InstantCluster { nodes, queue: VecDeque::new(), now: Time::ZERO, out: Vec::new(), responses: 0 };
        // Elect node 1: tick it past its election timeout, then run to quiescence.
        while c.nodes[0].role() != Role::Leader {
            c.now = c.now + Duration::from_millis(10);
            c.queue.push_back((0, RaftInput::Tick));
            c.run();
        }
        c
    }

    fn run(&mut self) {
        while let Some((i, input)) = self.queue.pop_front() {
            self.nodes[i].step(self.now, input, &mut self.out);
            for o in self.out.drain(..) {
                match o {
                    RaftOutput::Send(m) => self.queue.push_back(((m.to - 1) as usize, RaftInput::Message(m))),
                    RaftOutput::Persist { seq, .. } => self.queue.push_back((i, RaftInput::Persisted { seq })),
                    RaftOutput::Respond(_) => self.responses += 1,
                    RaftOutput::Apply { .. } | RaftOutput::ReadReady { .. } | RaftOutput::MembershipChanged { .. } => {}
                    // LocalReplica handles snapshots itself (and the bench stays below the thresholds).
                    RaftOutput::TakeSnapshot { .. }
                    | RaftOutput::ReadSnapshotChunk { .. }
                    | RaftOutput::StageSnapshotChunk { .. }
                    | RaftOutput::InstallSnapshot { .. } => {}
                }
            }
        }
    }

    /// Proposes `n` commands (in batches of 64 per step) and runs until all are answered.
    fn commit(&mut self, n: u64) {
        let target = self.responses + n;
        let mut id = 0;
        while self.responses < target {
            for _ in 0..64.min(target - self.responses) {
                id += 1;
                self.queue.push_back((0, RaftInput::Propose { id, command: PAYLOAD.clone() }));
            }
            self.run();
        }
    }
}

fn raft_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("raft_commit");
    const N: u64 = 10_000;
    g.throughput(Throughput::Elements(N));
    for (name, nodes) in [("1_node", 1), ("3_nodes", 3), ("5_nodes", 5)] {
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            let mut cluster = InstantCluster::new(nodes);
            b.iter(|| {
                cluster.commit(N);
                black_box(cluster.responses)
            })
        });
    }
    g.finish();
}

fn simulator(c: &mut Criterion) {
    let mut g = c.benchmark_group("simulator");
    g.sample_size(10);
    for (name, profile) in [("calm", FaultProfile::Calm), ("swarm", FaultProfile::Swarm), ("chaos", FaultProfile::Chaos)] {
        let spec = RunSpec { profile, nodes: Some(5), fault_secs: Some(15), ..RunSpec::seed(11) };
        let virtual_ms = run_seed(&spec).report.stats.virtual_ms;
        eprintln!("simulator/{name}: one seed simulates {virtual_ms} virtual ms");
        g.bench_function(name, |b| b.iter(|| black_box(run_seed(&spec).report.stats.events)));
    }
    g.finish();
}

criterion_group!(benches, raft_commit, simulator);
criterion_main!(benches);
