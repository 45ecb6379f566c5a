//! Raft safety invariants, checked after every step of every node.
//!
//! The checker keeps an oracle of the committed log (the first entry any node reports committed at
//! each index) and holds every node to it: at most one leader per term; no two nodes commit or
//! apply different entries at one index; a new leader's log holds every committed entry (leader
//! completeness); logs that agree on an (index, term) agree on everything before it (log
//! matching); and every committed entry stays durable on a quorum of disks through any crash
//! (disks into which a storage fault was injected excused, see [`RaftInvariants::check_durability`]).
//!
//! Leaders are identified by (node, incarnation): a node that crashes and restarts is a new process
//! with only its disk in common with the old one, so a restarted node leading a term its previous
//! incarnation led is two leaders in one term (possible only if the disk forgot the vote).

use std::collections::BTreeMap;
use vecraft_core::contract::NodeId;
use vecraft_core::raft::{DurableState, Entry, EntryPayload, LogIndex, Membership, RaftNode, Role, Term, quorums_intersect};
use vecraft_core::quorum::JointQuorum;

/// Hash of an entry, so the oracle does not hold payloads.
fn entry_hash(e: &Entry) -> [u8; 32] {
    *blake3::hash(&postcard::to_stdvec(e).expect("entries encode")).as_bytes()
}

/// The checker's memory across a run.
#[derive(Debug, Default)]
pub struct RaftInvariants {
    leaders: BTreeMap<Term, (NodeId, u64)>,
    /// Per committed index: the entry's term and hash, and the term of the node that first
    /// reported it committed (at least the term in which it was committed).
    committed: Vec<(Term, [u8; 32], Term)>,
    checked_commit: BTreeMap<NodeId, LogIndex>,
    applied: BTreeMap<NodeId, LogIndex>,
    violations: Vec<String>,
    /// The group's configuration before any change.
    initial_membership: Membership,
    /// Every configuration entry some node applied: index -> membership.
    configs: BTreeMap<LogIndex, Membership>,
}

impl RaftInvariants {
    /// Violations found so far (empty while all is well).
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Number of entries known committed.
    pub fn committed_len(&self) -> u64 {
        self.committed.len() as u64
    }

    /// Distinct terms that had a leader.
    pub fn leader_terms(&self) -> usize {
        self.leaders.len()
    }

    fn violate(&mut self, msg: String) {
        self.violations.push(msg);
    }

    /// Checks one node (in its `incarnation`) right after it stepped; `became_leader` if this step
    /// made it leader.
    pub fn after_step(&mut self, node: &RaftNode, incarnation: u64, became_leader: bool) {
        let id = node.id();
        if node.role() == Role::Leader {
            let term = node.term();
            match self.leaders.get(&term) {
                Some(&(other, inc)) if (other, inc) != (id, incarnation) => {
                    self.violate(format!(
                        "two leaders in term {term}: node {other} (incarnation {inc}) and node {id} (incarnation {incarnation})"
                    ));
                }
                _ => {
                    self.leaders.insert(term, (id, incarnation));
                }
            }
            if became_leader && !node.membership().is_voter(id) {
                self.violate(format!("node {id} became leader of term {term} but is not a voter of its configuration"));
                return;
            }
            if became_leader {
                // Leader completeness: everything committed in an earlier term is in the new
                // leader's log. (A leader of an old term can still be elected late, e.g. by a
                // candidate paused with its votes queued; it need not hold later commits, and
                // cannot commit anything without a quorum of its term.)
                for (i, (t, h, seen_in)) in self.committed.iter().enumerate() {
                    if *seen_in >= term {
                        continue;
                    }
                    let index = i as u64 + 1;
                    match node.log().get(index) {
                        Some(e) if e.term == *t && entry_hash(e) == *h => {}
                        _ => {
                            let msg = format!(
                                "leader completeness: node {id} became leader of term {term} without committed entry {index} (term {t})"
                            );
                            self.violate(msg);
                            return;
                        }
                    }
                }
            }
        }
        // Commit agreement, extending the oracle as commits advance.
        let from = self.checked_commit.get(&id).copied().unwrap_or(0) + 1;
        for index in from..=node.commit_index() {
            let Some(e) = node.log().get(index) else {
                self.violate(format!("node {id} claims commit index {} but lacks entry {index}", node.commit_index()));
                return;
            };
            let h = entry_hash(e);
            match self.committed.get(index as usize - 1) {
                Some(&(t, oh, _)) if t == e.term && oh == h => {}
                Some(&(t, _, _)) => {
                    self.violate(format!(
                        "node {id} committed entry {index} of term {} but entry {index} of term {t} was committed before",
                        e.term
                    ));
                    return;
                }
                None => {
                    debug_assert_eq!(self.committed.len() as u64 + 1, index);
                    self.committed.push((e.term, h, node.term()));
                }
            }
        }
        self.checked_commit.insert(id, node.commit_index().max(from - 1));
    }

    /// The configuration the group starts with (before any configuration entry).
    pub fn set_initial_membership(&mut self, m: Membership) {
        self.initial_membership = m;
    }

    /// Every configuration the group has had, oldest first (the initial one included).
    pub fn memberships(&self) -> impl Iterator<Item = &Membership> {
        std::iter::once(&self.initial_membership).chain(self.configs.values())
    }

    /// A node applied the configuration entry at `index`, whose membership is `m`. Checks
    /// the rule joint consensus rests on: every quorum of the configuration it replaces (the
    /// newest configuration entry before it in the node's log, else the initial one) intersects
    /// every quorum of the new one, so two leaders or two commits can never be decided by
    /// disjoint quorums. Returns the replaced membership the first time an index is reported.
    pub fn on_membership_applied(&mut self, node: &RaftNode, index: LogIndex, m: &Membership) -> Option<Membership> {
        let id = node.id();
        let m = m.clone();
        if let Some(seen) = self.configs.get(&index) {
            if *seen != m {
                self.violate(format!("membership agreement: node {id} applied configuration {index} as {m:?}, another node as {seen:?}"));
            }
            return None;
        }
        let log = node.log();
        let mut prev = None;
        let mut i = index.saturating_sub(1);
        while i > 0 {
            match log.get(i) {
                Some(Entry { payload: EntryPayload::ConfChange(c), .. }) => {
                    prev = Some(c.membership.clone());
                    break;
                }
                Some(_) => i -= 1,
                None => {
                    // The log no longer holds what came before (compacted): nothing to compare.
                    self.configs.insert(index, m);
                    return None;
                }
            }
        }
        let prev = prev.unwrap_or_else(|| self.initial_membership.clone());
        if !quorums_intersect(&prev.voters, &m.voters) {
            self.violate(format!(
                "configuration change: entry {index} moves from voters {} to {} without a joint phase: their quorums can be disjoint",
                show(&prev.voters),
                show(&m.voters)
            ));
        }
        self.configs.insert(index, m);
        Some(prev)
    }

    /// Every committed entry must be durable on a quorum of at least one configuration the group
    /// has had (it was committed by a quorum of the configuration in force then, and disks never
    /// drop acknowledged entries; damaged disks count as holders, as in
    /// [`RaftInvariants::check_durability`]). Returns the entries below every such quorum only
    /// because damaged disks lost them.
    pub fn check_durability_in_configs(&mut self, disks: &[(NodeId, DurableState, bool)]) -> u64 {
        let configs: Vec<JointQuorum> = self.memberships().map(|m| m.voters.clone()).collect();
        let mut storage_lost = 0;
        for (i, &(t, h, _)) in self.committed.iter().enumerate() {
            let holds = |d: &DurableState| d.entries.get(i).is_some_and(|e| e.term == t && entry_hash(e) == h);
            let healthy_or_damaged =
                |v: NodeId| disks.iter().any(|(id, d, damaged)| *id == v && (*damaged || holds(d)));
            let all = |v: NodeId| disks.iter().any(|(id, d, _)| *id == v && holds(d));
            if !configs.iter().any(|q| q.is_active(healthy_or_damaged)) {
                let msg = format!(
                    "durability: committed entry {} (term {t}) is on no quorum of any configuration the group has had (damaged disks counted as holders)",
                    i + 1
                );
                self.violate(msg);
                return storage_lost;
            }
            if !configs.iter().any(|q| q.is_active(all)) {
                storage_lost += 1;
            }
        }
        storage_lost
    }

    /// Checks an `Applied` output: applies happen in order and only for committed entries.
    pub fn on_applied(&mut self, node: &RaftNode, index: LogIndex, term: Term) {
        let id = node.id();
        let expected = self.applied.get(&id).copied().unwrap_or(0) + 1;
        if index != expected {
            self.violate(format!("node {id} applied entry {index} out of order (expected {expected})"));
        }
        self.applied.insert(id, index);
        match self.committed.get(index as usize - 1) {
            Some(&(t, _, _)) if t == term => {}
            Some(&(t, _, _)) => self.violate(format!("node {id} applied entry {index} of term {term}, committed was term {t}")),
            None => self.violate(format!("node {id} applied entry {index} that no node reported committed")),
        }
    }

    /// A node restarted: it re-applies and re-learns commits from scratch.
    pub fn on_restart(&mut self, id: NodeId) {
        self.checked_commit.remove(&id);
        self.applied.remove(&id);
    }

    /// Log matching over every pair of (in-memory) logs.
    pub fn check_log_matching<'a>(&mut self, logs: impl IntoIterator<Item = (NodeId, &'a [Entry])>) {
        let logs: Vec<(NodeId, &[Entry])> = logs.into_iter().collect();
        for (i, (a_id, a)) in logs.iter().enumerate() {
            for (b_id, b) in &logs[i + 1..] {
                // Highest index where both hold the same term; everything below must be equal.
                let common = a.len().min(b.len());
                let Some(k) = (0..common).rev().find(|&k| a[k].term == b[k].term) else { continue };
                if let Some(j) = (0..=k).find(|&j| a[j] != b[j]) {
                    self.violate(format!(
                        "log matching: nodes {a_id} and {b_id} agree on entry {} (term {}) but differ at entry {}",
                        k + 1,
                        a[k].term,
                        j + 1
                    ));
                    return;
                }
            }
        }
    }

    /// Every committed entry must be durable (on disk, as recovery would read it) on a quorum.
    ///
    /// `disks` holds each node's recoverable state and whether a storage fault damaged that disk.
    /// The protocol put each committed entry on a quorum; a damaged disk may have lost its copy
    /// since, so damaged disks count as holders whatever they hold, and only an entry missing from
    /// more healthy disks than that allows is a violation ("the protocol lost it"). Returns how
    /// many committed entries are below a quorum only because of damaged disks ("the disk lost
    /// it").
    pub fn check_durability(&mut self, disks: &[(NodeId, DurableState, bool)], quorum: usize) -> u64 {
        let damaged = disks.iter().filter(|(_, _, damaged)| *damaged).count();
        let mut storage_lost = 0;
        for (i, &(t, h, _)) in self.committed.iter().enumerate() {
            let holds = |d: &DurableState| d.entries.get(i).is_some_and(|e| e.term == t && entry_hash(e) == h);
            let healthy = disks.iter().filter(|(_, d, damaged)| !damaged && holds(d)).count();
            let all = disks.iter().filter(|(_, d, _)| holds(d)).count();
            if healthy + damaged < quorum {
                let msg = format!(
                    "durability: committed entry {} (term {t}) is on {healthy} healthy disks (+{damaged} damaged by injected faults), a quorum is {quorum}",
                    i + 1
                );
                self.violate(msg);
                return storage_lost;
            }
            if all < quorum {
                storage_lost += 1;
            }
        }
        storage_lost
    }
}

fn show(q: &JointQuorum) -> String {
    let inc: Vec<NodeId> = q.incoming.voters().iter().copied().collect();
    let out: Vec<NodeId> = q.outgoing.voters().iter().copied().collect();
    if out.is_empty() { format!("{inc:?}") } else { format!("{inc:?}&{out:?}") }
}
