//! Safety invariants of one Raft node incarnation, checked after every step.
//!
//! "No panic" says little about a consensus core: the bugs that matter leave it running with a
//! regressed term, a second vote, or a rewritten committed entry. [`NodeWatch`] remembers what
//! the node has shown so far and panics (so libFuzzer records a crash) when a later state
//! contradicts it.

use std::collections::BTreeMap;
use vecraft_core::contract::NodeId;
use vecraft_core::raft::{Entry, MessageBody, RaftNode, RaftOutput, Term};

/// What one node incarnation has shown so far.
pub struct NodeWatch {
    id: NodeId,
    term: Term,
    /// Vote recorded per term, from the node's own hard state and from its persist records.
    votes: BTreeMap<Term, NodeId>,
    /// Highest hard-state term written so far (records are written in order).
    written_term: Term,
    last_seq: u64,
    commit: u64,
    /// Entries at indexes 1..=commit as first seen committed.
    committed: Vec<Entry>,
    /// Highest index handed out as `Apply`.
    applied_out: u64,
}

impl NodeWatch {
    /// Starts watching a freshly built node.
    pub fn new(node: &RaftNode) -> Self {
        let mut w = NodeWatch {
            id: node.id(),
            term: node.term(),
            votes: BTreeMap::new(),
            written_term: 0,
            last_seq: 0,
            commit: node.commit_index(),
            committed: Vec::new(),
            applied_out: node.apply_sent_index(),
        };
        w.committed = (1..=w.commit).map(|i| node.log().get(i).expect("commit within log").clone()).collect();
        w.check_state(node);
        w
    }

    fn record_vote(&mut self, term: Term, vote: NodeId, whence: &str) {
        let first = *self.votes.entry(term).or_insert(vote);
        assert_eq!(first, vote, "node {} voted for {first} and then {vote} in term {term} ({whence})", self.id);
    }

    /// Checks the node after a step that produced `out`.
    pub fn observe(&mut self, node: &RaftNode, out: &[RaftOutput]) {
        assert!(node.term() >= self.term, "node {} term went back from {} to {}", self.id, self.term, node.term());
        self.term = node.term();
        if let Some(v) = node.vote() {
            self.record_vote(node.term(), v, "hard state");
        }
        for o in out {
            match o {
                RaftOutput::Persist { seq, record } => {
                    assert!(*seq > self.last_seq, "persist seq {seq} after {}", self.last_seq);
                    self.last_seq = *seq;
                    if let Some(hs) = record.hard_state {
                        assert!(hs.term >= self.written_term, "written term went back to {}", hs.term);
                        self.written_term = hs.term;
                        if let Some(v) = hs.vote {
                            self.record_vote(hs.term, v, "persist record");
                        }
                    }
                    for w in record.entries.windows(2) {
                        assert_eq!(w[0].index + 1, w[1].index, "persisted entries not contiguous");
                    }
                }
                RaftOutput::Send(m) => {
                    assert_eq!(m.from, self.id);
                    // Pre-votes (and answers to them) carry the term a campaign would use.
                    let prospective = matches!(m.body, MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { .. });
                    if !prospective {
                        assert!(m.term <= node.term(), "sent term {} above own term {}", m.term, node.term());
                    }
                    if let MessageBody::VoteResponse { granted: true } = m.body {
                        self.record_vote(m.term, m.to, "granted vote");
                    }
                }
                _ => {}
            }
        }
        self.check_commit(node);
        for o in out {
            match o {
                RaftOutput::Apply { entry, .. } => {
                    assert_eq!(entry.index, self.applied_out + 1, "apply not contiguous");
                    assert!(entry.index <= node.commit_index(), "applied {} beyond commit", entry.index);
                    assert_eq!(entry, &self.committed[entry.index as usize - 1], "applied entry differs from committed");
                    self.applied_out = entry.index;
                }
                RaftOutput::ReadReady { index, .. } => {
                    assert!(*index <= node.commit_index(), "read at {index} beyond commit {}", node.commit_index());
                }
                _ => {}
            }
        }
        self.check_state(node);
    }

    fn check_commit(&mut self, node: &RaftNode) {
        let commit = node.commit_index();
        assert!(commit >= self.commit, "node {} commit went back from {} to {commit}", self.id, self.commit);
        assert!(commit <= node.log().last_index(), "commit {commit} beyond last index {}", node.log().last_index());
        for (k, e) in self.committed.iter().enumerate() {
            let now = node.log().get(k as u64 + 1);
            assert_eq!(now, Some(e), "node {} committed entry {} changed", self.id, k + 1);
        }
        for i in self.committed.len() as u64 + 1..=commit {
            self.committed.push(node.log().get(i).expect("commit within log").clone());
        }
        self.commit = commit;
    }

    fn check_state(&self, node: &RaftNode) {
        let (applied, sent, commit, last) =
            (node.applied_index(), node.apply_sent_index(), node.commit_index(), node.log().last_index());
        assert!(applied <= sent && sent <= commit && commit <= last, "applied {applied} sent {sent} commit {commit} last {last}");
        assert_eq!(sent, self.applied_out, "apply_sent_index disagrees with the Apply outputs");
        assert!(node.durable_index() <= last, "durable {} beyond last {last}", node.durable_index());
    }

    /// The entries this incarnation has seen committed, from index 1.
    pub fn committed(&self) -> &[Entry] {
        &self.committed
    }
}
