//! Followers report their applied index in every append answer, so a leader knows each
//! replica's apply lag (a replica that holds the log but is still replaying it serves older
//! state than its match index says), and an idle group does not quiesce before every follower
//! said it applied everything (else the leader's report would keep the lag it had before the
//! sleep for as long as the group sleeps).

mod raft_harness;

use raft_harness::test_config;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::raft::{
    DurableState, LogIndex, Message, MessageBody, RaftConfig, RaftInput, RaftNode, RaftOutput, Role,
};

/// Three Raft nodes with instant disks and a lossless network; the test decides when each
/// follower's state machine applies what it was handed.
struct Trio {
    nodes: BTreeMap<NodeId, RaftNode>,
    now: Time,
    net: VecDeque<Message>,
    /// Nodes whose applies wait for [`Trio::apply_all`]; the highest index handed to each.
    held: BTreeSet<NodeId>,
    handed: BTreeMap<NodeId, LogIndex>,
    /// Every append answer sent, as (from, applied).
    answers: Vec<(NodeId, LogIndex)>,
    /// Messages sent by each node.
    sent: BTreeMap<NodeId, usize>,
}

impl Trio {
    fn new(tweak: impl Fn(&mut RaftConfig)) -> Trio {
        let nodes = [1, 2, 3]
            .into_iter()
            .map(|id| {
                let mut cfg = test_config(id, &[1, 2, 3]);
                tweak(&mut cfg);
                let mut n = RaftNode::new(cfg, DurableState::default(), 0, Time::ZERO);
                n.set_quiesce_allowed(true);
                (id, n)
            })
            .collect();
        let mut t = Trio {
            nodes,
            now: Time::ZERO,
            net: VecDeque::new(),
            held: BTreeSet::new(),
            handed: BTreeMap::new(),
            answers: Vec::new(),
            sent: BTreeMap::new(),
        };
        // Node 1 times out first (the others' timers are pushed back by its messages).
        let due = t.nodes[&1].next_deadline().unwrap();
        t.now = due;
        t.step(1, RaftInput::Tick);
        t.settle();
        assert_eq!(t.nodes[&1].role(), Role::Leader);
        t
    }

    fn step(&mut self, id: NodeId, input: RaftInput) {
        let mut out = Vec::new();
        self.nodes
            .get_mut(&id)
            .unwrap()
            .step(self.now, input, &mut out);
        let mut follow = Vec::new();
        for o in out {
            match o {
                RaftOutput::Send(m) => {
                    *self.sent.entry(id).or_insert(0) += 1;
                    if let MessageBody::AppendResponse { applied, .. } = m.body {
                        self.answers.push((m.from, applied));
                    }
                    self.net.push_back(m);
                }
                RaftOutput::Persist { seq, .. } => follow.push(RaftInput::Persisted { seq }),
                RaftOutput::Apply { entry, .. } => {
                    self.handed.insert(id, entry.index);
                    if !self.held.contains(&id) {
                        follow.push(RaftInput::Applied { index: entry.index });
                    }
                }
                _ => {}
            }
        }
        for i in follow {
            self.step(id, i);
        }
    }

    /// Delivers every message in flight, and those they cause.
    fn settle(&mut self) {
        while let Some(m) = self.net.pop_front() {
            self.step(m.to, RaftInput::Message(m));
        }
    }

    /// Lets time pass in 5 ms steps, ticking whoever is due and delivering everything.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now = self.now + Duration::from_millis(5);
            for id in [1, 2, 3] {
                if self.nodes[&id]
                    .next_deadline()
                    .is_some_and(|t| t <= self.now)
                {
                    self.step(id, RaftInput::Tick);
                }
            }
            self.settle();
        }
    }

    fn propose(&mut self, n: u64) {
        for k in 0..n {
            self.step(
                1,
                RaftInput::Propose {
                    id: 1_000 + k,
                    command: vec![k as u8].into(),
                },
            );
        }
        self.settle();
    }

    fn apply_all(&mut self, id: NodeId) {
        self.held.remove(&id);
        let index = self.handed.get(&id).copied().unwrap_or(0);
        self.step(id, RaftInput::Applied { index });
    }

    /// The leader's view of `id`'s applied index.
    fn reported(&self, id: NodeId) -> LogIndex {
        self.nodes[&1]
            .followers()
            .iter()
            .find(|f| f.node == id)
            .unwrap()
            .applied
    }
}

#[test]
fn the_leader_learns_each_followers_applied_index_from_its_answers() {
    let mut t = Trio::new(|_| {});
    t.held.insert(3);
    t.propose(10);
    t.run(Duration::from_millis(100));
    let last = t.nodes[&1].commit_index();
    assert!(last >= 10);
    assert_eq!(
        t.nodes[&3].commit_index(),
        last,
        "node 3 holds and knows the whole commit"
    );
    assert_eq!(t.reported(2), last);
    // Node 3 applied nothing since the leader's no-op (applied before it was held).
    let behind = t.nodes[&3].applied_index();
    assert!(behind < last);
    assert_eq!(
        t.reported(3),
        behind,
        "the leader knows node 3 is behind in applying"
    );
    // It catches up: the next heartbeat's answer says so.
    t.apply_all(3);
    assert_eq!(t.nodes[&3].applied_index(), last);
    t.run(Duration::from_millis(30));
    assert_eq!(t.reported(3), last);
}

#[test]
fn an_idle_group_does_not_quiesce_while_a_follower_is_still_applying() {
    let mut t = Trio::new(|_| {});
    t.held.insert(3);
    t.propose(5);
    // Idle for 2 s: matched everywhere, node 3 not applied.
    t.run(Duration::from_secs(2));
    assert!(
        !t.nodes[&1].is_quiesced(),
        "quiesced with a follower still applying"
    );
    let answers_before = t.answers.iter().filter(|a| a.0 == 3).count();
    t.apply_all(3);
    // The next answer reports it; then the mark round; then the sleep: within 3 heartbeats.
    t.run(Duration::from_millis(3 * 20 + 5));
    assert!(
        t.nodes[&1].is_quiesced(),
        "a fully applied idle group sleeps"
    );
    assert_eq!(
        t.reported(3),
        t.nodes[&1].commit_index(),
        "and sleeps on an exact report"
    );
    // Not a single needless answer: node 3 answered at most 3 heartbeats after applying.
    let answers_after = t.answers.iter().filter(|a| a.0 == 3).count() - answers_before;
    assert!(
        answers_after <= 3,
        "{answers_after} answers from node 3 after it applied"
    );
    // Asleep: the leader sends nothing. (Its followers' sleep is the multi-Raft host's part,
    // pinned in `multiraft.rs`; here their election timers run, so look before they fire.)
    let sent = t.sent[&1];
    t.run(Duration::from_millis(90));
    assert_eq!(t.sent[&1], sent, "a quiesced leader sent messages");
}

#[test]
fn a_follower_that_applies_at_once_delays_quiescence_by_at_most_one_round() {
    // Without a held follower: every answer to the append bringing the commit still says
    // "not applied" (the apply comes after the answer); the next round's says "applied".
    let mut t = Trio::new(|_| {});
    t.propose(5);
    t.run(Duration::from_millis(4 * 20 + 5));
    assert!(
        t.nodes[&1].is_quiesced(),
        "an idle group with prompt followers sleeps within 4 heartbeats"
    );
}

/// The bug switch: a leader that sleeps without its followers' applied reports keeps reporting
/// the lag it saw before the sleep.
#[cfg(feature = "bug-injection")]
#[test]
fn bug_quiesce_ignores_follower_apply_leaves_a_stale_lag_report() {
    let mut t = Trio::new(|cfg| cfg.bugs.quiesce_ignores_follower_apply = true);
    t.held.insert(3);
    t.propose(5);
    let mut waited = 0;
    while !t.nodes[&1].is_quiesced() {
        t.run(Duration::from_millis(5));
        waited += 5;
        assert!(waited < 1_000, "the bug sleeps with node 3 unapplied");
    }
    t.apply_all(3);
    // Well inside the followers' election timeout (100 ms; no host puts them to sleep here).
    t.run(Duration::from_millis(60));
    assert!(t.nodes[&1].is_quiesced());
    assert!(
        t.reported(3) < t.nodes[&3].applied_index(),
        "the report stays stale while the group sleeps"
    );
}
