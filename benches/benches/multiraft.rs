//! The cost of idle multi-Raft groups: two nodes × 1,000 groups (each group has a voter on both),
//! elected and idle, driven over virtual time by an in-bench driver whose network (1 ms) and disk
//! (1 ms) are fault-free.
//!
//! Printed once before the timed runs, per configuration (quiescence on / off):
//! `RESULT multiraft_idle quiescence=on groups=1000 cpu_share_per_node=… envelopes_per_s=…
//! group_messages_per_s=…`: thread CPU time per second of virtual time for one node (the share of
//! one core), and envelopes / group messages per second between the two nodes, plus the ratio of
//! the awake figures to the quiesced ones. Criterion then times one virtual second of the idle pair
//! (`multiraft_idle/quiesced` vs `multiraft_idle/awake`).

use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::multiraft::{MultiRaft, MultiRaftConfig, MultiRaftInput, MultiRaftOutput};
use vecraft_core::raft::{DurableState, GroupId, LogIndex, Role};

const GROUPS: u64 = 1000;
const NODES: [NodeId; 2] = [1, 2];
const LATENCY: Duration = Duration::from_millis(1);

/// Two hosts, an event queue and traffic counters.
struct Pair {
    hosts: BTreeMap<NodeId, MultiRaft>,
    now: Time,
    events: BTreeMap<(Time, u64), (NodeId, MultiRaftInput)>,
    order: u64,
    envelopes: u64,
    group_messages: u64,
    out: Vec<MultiRaftOutput>,
}

impl Pair {
    fn new(quiescence: bool) -> Self {
        let mut hosts = BTreeMap::new();
        for n in NODES {
            let mut cfg = MultiRaftConfig::new(n, 7);
            cfg.quiescence = quiescence;
            hosts.insert(n, MultiRaft::new(cfg));
        }
        let mut p = Pair {
            hosts,
            now: Time::ZERO,
            events: BTreeMap::new(),
            order: 0,
            envelopes: 0,
            group_messages: 0,
            out: Vec::new(),
        };
        for n in NODES {
            for group in 1..=GROUPS {
                let input = MultiRaftInput::CreateGroup {
                    group,
                    voters: NODES.to_vec(),
                    durable: DurableState::default(),
                    applied: 0,
                };
                p.step(n, input);
            }
        }
        p
    }

    fn push(&mut self, at: Time, to: NodeId, input: MultiRaftInput) {
        self.order += 1;
        self.events.insert((at, self.order), (to, input));
    }

    fn step(&mut self, n: NodeId, input: MultiRaftInput) {
        let now = self.now;
        let mut out = std::mem::take(&mut self.out);
        self.hosts.get_mut(&n).expect("host").step(now, input, &mut out);
        let mut applied: BTreeMap<GroupId, LogIndex> = BTreeMap::new();
        for o in out.drain(..) {
            match o {
                MultiRaftOutput::Send(env) => {
                    self.envelopes += 1;
                    self.group_messages += env.group_messages() as u64;
                    let to = env.to;
                    self.push(now + LATENCY, to, MultiRaftInput::Envelope(env));
                }
                MultiRaftOutput::Persist { seq, .. } => self.push(now + LATENCY, n, MultiRaftInput::Persisted { seq }),
                MultiRaftOutput::Apply { group, entry, .. } => {
                    applied.insert(group, entry.index);
                }
                // Idle groups stay far below the compaction thresholds and change no membership.
                MultiRaftOutput::ReadReady { .. } | MultiRaftOutput::Respond { .. } | MultiRaftOutput::Group { .. } => {}
            }
        }
        self.out = out;
        for (group, index) in applied {
            self.push(now, n, MultiRaftInput::Applied { group, index });
        }
    }

    fn run_until(&mut self, until: Time) {
        loop {
            let ev = self.events.keys().next().map(|k| k.0);
            let dl = self.hosts.values().filter_map(|h| h.next_deadline()).min();
            let Some(t) = [ev, dl].into_iter().flatten().min() else {
                break;
            };
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            while let Some((&k, _)) = self.events.first_key_value() {
                if k.0 > self.now {
                    break;
                }
                let (n, input) = self.events.remove(&k).expect("present");
                self.step(n, input);
            }
            for n in NODES {
                if self.hosts[&n].next_deadline().is_some_and(|d| d <= self.now) {
                    self.step(n, MultiRaftInput::Tick);
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn leaders(&self) -> usize {
        self.hosts.values().map(|h| h.groups().filter(|(_, r)| r.role() == Role::Leader).count()).sum()
    }

    /// Elected (every group has a leader whose noop is applied) and settled for 5 s.
    fn settled(quiescence: bool) -> Self {
        let mut p = Pair::new(quiescence);
        for _ in 0..100 {
            p.run_for(Duration::from_millis(100));
            if p.leaders() == GROUPS as usize {
                break;
            }
        }
        assert_eq!(p.leaders(), GROUPS as usize, "every group elected");
        p.run_for(Duration::from_secs(5));
        if quiescence {
            assert!(p.hosts.values().all(|h| h.next_deadline().is_none()), "idle groups quiesced");
        }
        p
    }
}

/// Measures `secs` virtual seconds of an idle pair: (CPU seconds per virtual second per node,
/// envelopes per second, group messages per second).
fn measure(p: &mut Pair, secs: u64) -> (f64, f64, f64) {
    let (e0, m0) = (p.envelopes, p.group_messages);
    let cpu = cpu_time::ThreadTime::now();
    p.run_for(Duration::from_secs(secs));
    let spent = cpu.elapsed().as_secs_f64();
    let s = secs as f64;
    (spent / s / NODES.len() as f64, (p.envelopes - e0) as f64 / s, (p.group_messages - m0) as f64 / s)
}

fn report() {
    let mut rows = Vec::new();
    for quiescence in [true, false] {
        let mut p = Pair::settled(quiescence);
        let (cpu, env, msgs) = measure(&mut p, 60);
        println!(
            "RESULT multiraft_idle quiescence={} groups={GROUPS} cpu_share_per_node={:.3e} envelopes_per_s={env:.1} group_messages_per_s={msgs:.1}",
            if quiescence { "on" } else { "off" },
            cpu,
        );
        rows.push((cpu, env, msgs));
    }
    let (on, off) = (rows[0], rows[1]);
    let ratio = |a: f64, b: f64| {
        if a > 0.0 { format!("{:.3e}", b / a) } else { "inf (quiesced figure is 0)".into() }
    };
    println!(
        "RATIO multiraft_idle awake/quiesced cpu={} envelopes={} group_messages={}",
        ratio(on.0, off.0),
        ratio(on.1, off.1),
        ratio(on.2, off.2)
    );
}

fn bench_idle(c: &mut Criterion) {
    report();
    let mut group = c.benchmark_group("multiraft_idle");
    group.sample_size(10);
    for (name, quiescence) in [("quiesced", true), ("awake", false)] {
        let mut p = Pair::settled(quiescence);
        group
            .bench_function(format!("{name}/1000_groups_1s_virtual"), |b| b.iter(|| p.run_for(Duration::from_secs(1))));
    }
    group.finish();
}

criterion_group!(benches, bench_idle);
criterion_main!(benches);
