//! One Raft node (id 1 of voters 1, 2, 3) driven by an arbitrary sequence of inputs, with its
//! safety invariants checked after every step.
//!
//! Why structured: a node fed random bytes never becomes leader (2.8M runs, zero leaderships),
//! so replication, append responses and reads went unfuzzed. Here an optional first phase elects
//! the node honestly (tick past the election timeout, grant its pre-vote and vote, acknowledge its
//! writes); then the fuzzer picks messages whose terms are mostly relative to the node's own term
//! and answers that echo what the node actually sent, so they are accepted and move state.
//! The driver half (persist acks, applied reports) is kept honest: the node's contract is only
//! promised for drivers that acknowledge what was written and apply what was handed out.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vecraft_fuzz::raft_check::NodeWatch;
use vecraft_fuzz::stats::Counter;
use std::time::Duration;
use vecraft_core::contract::{StateMachine, Time};
use vecraft_core::raft::{
    DurableState, Entry, EntryPayload, Message, MessageBody, RaftConfig, RaftInput, RaftNode, RaftOutput, ReadMode,
    RejectHint, Role,
};

static LEADER: Counter = Counter::new("raft_inputs", "inputs where node 1 was leader");
static COMMITTED: Counter = Counter::new("raft_inputs", "inputs that committed past index 1");

/// A term chosen relative to the node's current term, so most messages are neither stale nor
/// from a far future that merely resets the node.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum TermSel {
    Current,
    Previous,
    Next,
    Absolute(u8),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Tick(u16),
    /// Acknowledge the writes up to `back` before the newest one.
    Persisted { back: u8 },
    /// Report applied up to `back` before the newest apply handed out.
    Applied { back: u8 },
    Propose(u8),
    Read { lease: bool },
    Transfer { to: u8 },
    /// Answer the newest append the node sent to `peer` as that peer would.
    EchoAppend { peer: bool, success: bool, reset: bool },
    PreVote { from: u8, term: TermSel, last_index: u8, last_term: TermSel },
    Vote { from: u8, term: TermSel, last_index: u8, last_term: TermSel, transfer: bool },
    VoteResponse { from: u8, term: TermSel, granted: bool },
    PreVoteResponse { from: u8, term: TermSel, granted: bool },
    Append { from: u8, term: TermSel, prev_index: u8, prev_term: TermSel, entries: Vec<(TermSel, u8)>, commit: u8, round: u8 },
    AppendResponse { from: u8, term: TermSel, success: bool, match_back: u8, reject: Option<(u8, Option<TermSel>, u8)>, round: u8, reset: bool },
    TimeoutNow { from: u8, term: TermSel },
    /// A message for another group: must be ignored.
    WrongGroup { term: TermSel },
}

#[derive(Arbitrary, Debug)]
struct Input {
    elect: bool,
    steps: Vec<Step>,
}

/// Node 1 plus the honest half of its driver: pending writes and the newest append per peer.
struct Harness {
    node: RaftNode,
    now: Time,
    watch: NodeWatch,
    last_seq: u64,
    last_append: [Option<Message>; 2],
    next_id: u64,
}

impl Harness {
    fn step(&mut self, input: RaftInput) {
        let mut out = Vec::new();
        self.node.step(self.now, input, &mut out);
        for o in &out {
            match o {
                RaftOutput::Persist { seq, .. } => self.last_seq = *seq,
                RaftOutput::Send(m) if matches!(m.body, MessageBody::Append { .. }) && (m.to == 2 || m.to == 3) => {
                    self.last_append[(m.to - 2) as usize] = Some(m.clone());
                }
                _ => {}
            }
        }
        self.watch.observe(&self.node, &out);
    }

    fn term(&self, sel: TermSel) -> u64 {
        let t = self.node.term();
        match sel {
            TermSel::Current => t,
            TermSel::Previous => t.saturating_sub(1),
            TermSel::Next => t + 1,
            TermSel::Absolute(a) => a as u64,
        }
    }

    fn msg(&self, from: u8, term: TermSel, body: MessageBody) -> RaftInput {
        // Mostly the real peers; sometimes itself or a stranger (both must be harmless).
        let from = [2, 3, 2, 3, 2, 3, 1, 4][from as usize % 8];
        RaftInput::Message(Message { group: 1, from, to: 1, term: self.term(term), body })
    }

    fn ack_all(&mut self) {
        if self.last_seq > 0 {
            self.step(RaftInput::Persisted { seq: self.last_seq });
        }
    }

    /// Elects node 1 the way a healthy cluster would; returns whether it became leader.
    fn elect(&mut self) -> bool {
        for _ in 0..4 {
            self.now = self.now + Duration::from_millis(700);
            let mut out = Vec::new();
            self.node.step(self.now, RaftInput::Tick, &mut out);
            self.watch.observe(&self.node, &out);
            let mut pending = out;
            for _ in 0..8 {
                let mut replies = Vec::new();
                for o in pending.drain(..) {
                    match o {
                        RaftOutput::Persist { seq, .. } => self.last_seq = seq,
                        RaftOutput::Send(m) => match m.body {
                            MessageBody::PreVote { .. } if m.to == 2 => replies
                                .push(Message { group: 1, from: 2, to: 1, term: m.term, body: MessageBody::PreVoteResponse { granted: true } }),
                            MessageBody::Vote { .. } if m.to == 2 => replies
                                .push(Message { group: 1, from: 2, to: 1, term: m.term, body: MessageBody::VoteResponse { granted: true } }),
                            _ => {}
                        },
                        _ => {}
                    }
                }
                if self.last_seq > 0 {
                    self.node.step(self.now, RaftInput::Persisted { seq: self.last_seq }, &mut pending);
                    self.watch.observe(&self.node, &pending);
                }
                for r in replies {
                    let mut out = Vec::new();
                    self.node.step(self.now, RaftInput::Message(r), &mut out);
                    self.watch.observe(&self.node, &out);
                    pending.extend(out);
                }
                if pending.is_empty() {
                    break;
                }
            }
            if self.node.role() == Role::Leader {
                self.ack_all();
                return true;
            }
        }
        false
    }

    fn run(&mut self, step: Step) {
        let input = match step {
            Step::Tick(ms) => {
                self.now = self.now + Duration::from_millis(ms as u64);
                RaftInput::Tick
            }
            Step::Persisted { back } => {
                if self.last_seq == 0 {
                    return;
                }
                RaftInput::Persisted { seq: self.last_seq.saturating_sub(back as u64 % 4).max(1) }
            }
            Step::Applied { back } => {
                let lo = self.node.applied_index();
                let hi = self.node.apply_sent_index();
                RaftInput::Applied { index: hi.saturating_sub(back as u64 % 4).max(lo) }
            }
            Step::Propose(b) => {
                self.next_id += 1;
                RaftInput::Propose { id: self.next_id, command: vec![b; b as usize % 5].into() }
            }
            Step::Read { lease } => {
                self.next_id += 1;
                RaftInput::Read { id: self.next_id, mode: if lease { ReadMode::Lease } else { ReadMode::ReadIndex } }
            }
            Step::Transfer { to } => RaftInput::TransferLeadership { to: to as u64 % 5 },
            Step::EchoAppend { peer, success, reset } => {
                let Some(sent) = self.last_append[peer as usize].clone() else { return };
                let MessageBody::Append { prev_index, entries, round, .. } = sent.body else { return };
                let last = prev_index + entries.len() as u64;
                let body = if success {
                    MessageBody::AppendResponse { success: true, match_index: last, reject: None, round, reset: false }
                } else {
                    let hint = RejectHint { conflict_term: None, conflict_index: prev_index.saturating_sub(1) + 1 };
                    MessageBody::AppendResponse { success: false, match_index: 0, reject: Some((prev_index, hint)), round, reset }
                };
                RaftInput::Message(Message { group: 1, from: sent.to, to: 1, term: sent.term, body })
            }
            Step::PreVote { from, term, last_index, last_term } => {
                let body = MessageBody::PreVote { last_index: last_index as u64, last_term: self.term(last_term) };
                self.msg(from, term, body)
            }
            Step::Vote { from, term, last_index, last_term, transfer } => {
                let body = MessageBody::Vote { last_index: last_index as u64, last_term: self.term(last_term), transfer };
                self.msg(from, term, body)
            }
            Step::VoteResponse { from, term, granted } => self.msg(from, term, MessageBody::VoteResponse { granted }),
            Step::PreVoteResponse { from, term, granted } => self.msg(from, term, MessageBody::PreVoteResponse { granted }),
            Step::Append { from, term, prev_index, prev_term, entries, commit, round } => {
                let first = prev_index as u64 + 1;
                let entries = entries
                    .into_iter()
                    .take(8)
                    .enumerate()
                    .map(|(k, (t, b))| Entry {
                        index: first + k as u64,
                        term: self.term(t),
                        payload: if b == 0 { EntryPayload::Noop } else { EntryPayload::Command(vec![b].into()) },
                    })
                    .collect();
                let body = MessageBody::Append {
                    prev_index: prev_index as u64,
                    prev_term: self.term(prev_term),
                    entries,
                    commit: commit as u64,
                    round: round as u64,
                };
                self.msg(from, term, body)
            }
            Step::AppendResponse { from, term, success, match_back, reject, round, reset } => {
                let reject = reject.map(|(p, t, i)| {
                    let hint = RejectHint { conflict_term: t.map(|t| self.term(t)), conflict_index: i as u64 };
                    (p as u64, hint)
                });
                let match_index = self.node.log().last_index().saturating_sub(match_back as u64);
                let body = MessageBody::AppendResponse { success, match_index, reject, round: round as u64, reset };
                self.msg(from, term, body)
            }
            Step::TimeoutNow { from, term } => self.msg(from, term, MessageBody::TimeoutNow),
            Step::WrongGroup { term } => {
                let body = MessageBody::Append { prev_index: 0, prev_term: 0, entries: vec![], commit: 200, round: 1 };
                RaftInput::Message(Message { group: 2, from: 2, to: 1, term: self.term(term), body })
            }
        };
        self.step(input);
    }
}

fuzz_target!(|input: Input| {
    let mut cfg = RaftConfig::new(1, 1, vec![1, 2, 3], 9);
    cfg.bugs = vecraft_fuzz::inject::injected_bugs();
    let node = RaftNode::new(cfg, DurableState::default(), 0, Time::ZERO);
    let watch = NodeWatch::new(&node);
    let mut h = Harness { node, now: Time::ZERO, watch, last_seq: 0, last_append: [None, None], next_id: 0 };
    let mut led = false;
    if input.elect {
        led = h.elect();
        assert!(led, "an honest election of a healthy node must succeed");
    }
    for step in input.steps.into_iter().take(256) {
        h.run(step);
        led |= h.node.role() == Role::Leader;
    }
    if led {
        LEADER.hit();
    }
    if h.node.commit_index() > 1 {
        COMMITTED.hit();
    }
    vecraft_fuzz::stats::input_done(&[&LEADER, &COMMITTED]);
});
