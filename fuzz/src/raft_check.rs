//! Safety invariants of one Raft node incarnation, checked after every step.
//!
//! "No panic" says little about a consensus core: the bugs that matter leave it running with a
//! regressed term, a second vote, or a rewritten committed entry. [`NodeWatch`] remembers what
//! the node has shown so far and panics (so libFuzzer records a crash) when a later state
//! contradicts it.
//!
//! Logs may be compacted behind snapshots (`RaftLog::base_index`) and a follower may jump ahead by
//! installing one, so the watch cannot assume every committed entry stays readable: it compares
//! what the log still holds (and the base's term) and accepts gaps that an install explains.

use std::collections::BTreeMap;
use vecraft_core::contract::NodeId;
use vecraft_core::raft::{Entry, LogIndex, MessageBody, RaftNode, RaftOutput, Term};

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
    /// Entries at indexes 1..=len as first seen committed (the contiguous prefix: what a cluster
    /// checker compares across nodes).
    committed: Vec<Entry>,
    /// Entries first seen committed after a gap (indexes a snapshot install skipped, or that
    /// were compacted before this incarnation saw them), by index.
    committed_later: BTreeMap<LogIndex, Entry>,
    /// Highest index handed out as `Apply`, or covered by an installed snapshot.
    applied_out: u64,
    /// Highest applied index the node reported (must never go back, installs included).
    applied: u64,
    /// Snapshots installed so far (a new install explains a jump of the applied index).
    installed: u64,
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
            committed_later: BTreeMap::new(),
            applied_out: node.apply_sent_index(),
            applied: node.applied_index(),
            installed: node.snapshot_stats().installed,
        };
        // A node restored from a snapshot holds only the entries after its log base.
        for i in 1..=w.commit {
            if let Some(e) = node.log().get(i) {
                w.record_committed(i, e.clone());
            }
        }
        w.check_state(node);
        w
    }

    fn record_committed(&mut self, index: LogIndex, entry: Entry) {
        if index == self.committed.len() as u64 + 1 && self.committed_later.is_empty() {
            self.committed.push(entry);
        } else {
            self.committed_later.insert(index, entry);
        }
    }

    fn committed_at(&self, index: LogIndex) -> Option<&Entry> {
        if index >= 1 && index <= self.committed.len() as u64 {
            return self.committed.get(index as usize - 1);
        }
        self.committed_later.get(&index)
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
                    if let Some(snap) = &record.snapshot {
                        // Recovery trusts the record: it must describe a snapshot a node may adopt.
                        assert!(snap.log_base <= snap.meta.index, "log base {} beyond snapshot {}", snap.log_base, snap.meta.index);
                        assert!(snap.meta.membership.validate().is_ok(), "persisted snapshot membership invalid: {:?}", snap.meta.membership);
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
                RaftOutput::MembershipChanged { membership, .. } => {
                    assert!(membership.validate().is_ok(), "announced membership invalid: {membership:?}");
                }
                _ => {}
            }
        }
        self.check_commit(node);
        let installed = node.snapshot_stats().installed;
        if installed > self.installed {
            // An install hands the state machine everything up to the snapshot at once: applies
            // resume after it, and nothing below it is handed out again.
            self.installed = installed;
            let snap = node.snapshot_meta().map_or(0, |m| m.index);
            self.applied_out = self.applied_out.max(snap);
        }
        for o in out {
            match o {
                RaftOutput::Apply { entry, .. } => {
                    assert_eq!(entry.index, self.applied_out + 1, "apply not contiguous");
                    assert!(entry.index <= node.commit_index(), "applied {} beyond commit", entry.index);
                    let committed = self.committed_at(entry.index);
                    assert_eq!(Some(entry), committed, "applied entry differs from committed");
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
        let log = node.log();
        assert!(commit >= self.commit, "node {} commit went back from {} to {commit}", self.id, self.commit);
        assert!(commit <= log.last_index(), "commit {commit} beyond last index {}", log.last_index());
        assert!(log.base_index() <= commit, "log base {} beyond commit {commit}", log.base_index());
        // Entries compacted away cannot be compared; the base still names its term, and every
        // held entry must be the one first seen committed.
        let base = log.base_index();
        let seen = self.committed.iter().map(|e| (e.index, e)).chain(self.committed_later.iter().map(|(i, e)| (*i, e)));
        for (i, e) in seen {
            if i == base {
                assert_eq!(log.base_term(), e.term, "node {} committed entry {i} (now the log base) changed term", self.id);
            } else if i > base {
                assert_eq!(log.get(i), Some(e), "node {} committed entry {i} changed", self.id);
            }
        }
        for i in self.commit + 1..=commit {
            // Indexes at or below the base arrived in an installed snapshot: never seen as entries.
            if let Some(e) = log.get(i) {
                self.record_committed(i, e.clone());
            }
        }
        self.commit = commit;
    }

    fn check_state(&mut self, node: &RaftNode) {
        let (applied, sent, commit, last) =
            (node.applied_index(), node.apply_sent_index(), node.commit_index(), node.log().last_index());
        assert!(applied <= sent && sent <= commit && commit <= last, "applied {applied} sent {sent} commit {commit} last {last}");
        assert!(applied >= self.applied, "node {} applied went back from {} to {applied}", self.id, self.applied);
        self.applied = applied;
        assert_eq!(sent, self.applied_out, "apply_sent_index disagrees with the Apply outputs");
        assert!(node.durable_index() <= last, "durable {} beyond last {last}", node.durable_index());
        if let Some(meta) = node.snapshot_meta() {
            // A snapshot holds applied state only, and the log continues right behind it.
            assert!(meta.index <= applied, "snapshot at {} beyond applied {applied}", meta.index);
            assert!(node.log().base_index() <= meta.index, "log base {} beyond snapshot {}", node.log().base_index(), meta.index);
            assert!(meta.membership.validate().is_ok(), "snapshot membership invalid: {:?}", meta.membership);
        }
        assert!(node.membership().validate().is_ok(), "node {} membership invalid: {:?}", self.id, node.membership());
        assert!(node.applied_membership().validate().is_ok(), "node {} applied membership invalid", self.id);
    }

    /// The entries this incarnation has seen committed, contiguous from index 1 (entries it saw
    /// committed only after a gap an install left are not included).
    pub fn committed(&self) -> &[Entry] {
        &self.committed
    }
}
