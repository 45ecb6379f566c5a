//! A Raft node fed arbitrary messages, acks, ticks and client requests never panics, and keeps
//! its basic invariants (commit <= last index, applied <= commit, durable <= last index).
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vecraft_core::contract::{StateMachine, Time};
use vecraft_core::raft::{
    DurableState, Entry, EntryPayload, LogIndex, Message, MessageBody, RaftConfig, RaftInput, RaftNode, ReadMode,
    RejectHint, ReplicatedStateMachine,
};

struct Sink;
impl ReplicatedStateMachine for Sink {
    fn apply(&mut self, _: LogIndex, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
    fn query(&self, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
}

#[derive(Arbitrary, Debug)]
enum Step {
    Tick(u16),
    Persisted(u8),
    Propose(u8),
    Read(bool),
    PreVote { from: u8, term: u8, last_index: u8, last_term: u8 },
    Vote { from: u8, term: u8, last_index: u8, last_term: u8 },
    VoteResponse { from: u8, term: u8, granted: bool },
    PreVoteResponse { from: u8, term: u8, granted: bool },
    Append { from: u8, term: u8, prev_index: u8, prev_term: u8, entries: Vec<(u8, u8)>, commit: u8, round: u8 },
    AppendResponse { from: u8, term: u8, success: bool, match_index: u8, reject: Option<(u8, Option<u8>, u8)>, round: u8 },
}

fuzz_target!(|steps: Vec<Step>| {
    let cfg = RaftConfig::new(1, 1, vec![1, 2, 3], 9);
    let mut node = RaftNode::new(cfg, Sink, DurableState::default(), Time::ZERO);
    let mut now = Time::ZERO;
    let mut out = Vec::new();
    let mut id = 0;
    for step in steps.into_iter().take(256) {
        let msg = |from: u8, term: u8, body| Message { group: 1, from: from as u64 % 4, to: 1, term: term as u64, body };
        let input = match step {
            Step::Tick(ms) => {
                now = now + std::time::Duration::from_millis(ms as u64);
                RaftInput::Tick
            }
            Step::Persisted(seq) => RaftInput::Persisted { seq: seq as u64 },
            Step::Propose(b) => {
                id += 1;
                RaftInput::Propose { id, command: vec![b] }
            }
            Step::Read(lease) => {
                id += 1;
                RaftInput::Read { id, query: vec![], mode: if lease { ReadMode::Lease } else { ReadMode::ReadIndex } }
            }
            Step::PreVote { from, term, last_index, last_term } => RaftInput::Message(msg(from, term, MessageBody::PreVote {
                last_index: last_index as u64,
                last_term: last_term as u64,
            })),
            Step::Vote { from, term, last_index, last_term } => RaftInput::Message(msg(from, term, MessageBody::Vote {
                last_index: last_index as u64,
                last_term: last_term as u64,
            })),
            Step::VoteResponse { from, term, granted } => RaftInput::Message(msg(from, term, MessageBody::VoteResponse { granted })),
            Step::PreVoteResponse { from, term, granted } => {
                RaftInput::Message(msg(from, term, MessageBody::PreVoteResponse { granted }))
            }
            Step::Append { from, term, prev_index, prev_term, entries, commit, round } => {
                let entries = entries
                    .into_iter()
                    .map(|(i, t)| Entry { index: i as u64, term: t as u64, payload: EntryPayload::Command(vec![i]) })
                    .collect();
                RaftInput::Message(msg(from, term, MessageBody::Append {
                    prev_index: prev_index as u64,
                    prev_term: prev_term as u64,
                    entries,
                    commit: commit as u64,
                    round: round as u64,
                }))
            }
            Step::AppendResponse { from, term, success, match_index, reject, round } => {
                let reject = reject.map(|(p, t, i)| {
                    (p as u64, RejectHint { conflict_term: t.map(|t| t as u64), conflict_index: i as u64 })
                });
                RaftInput::Message(msg(from, term, MessageBody::AppendResponse {
                    success,
                    match_index: match_index as u64,
                    reject,
                    round: round as u64,
                }))
            }
        };
        out.clear();
        node.step(now, input, &mut out);
        assert!(node.commit_index() <= node.log().last_index());
        assert!(node.applied_index() <= node.commit_index());
        assert!(node.durable_index() <= node.log().last_index());
    }
});
