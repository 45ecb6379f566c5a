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
use vecraft_core::quorum::JointQuorum;
use vecraft_core::raft::{
    DurableState, Entry, EntryPayload, LogIndex, Membership, RaftLog, RaftNode, Role, SnapshotMeta, Term, quorums_intersect,
};

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
    /// Entries applied in the step being checked (term and hash by index): a node may compact
    /// an entry in the very step that commits and applies it.
    observed: BTreeMap<LogIndex, (Term, [u8; 32])>,
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
                    if index < node.log().base_index() {
                        continue; // compacted into the snapshot; the base's term is checked
                    }
                    if index == node.log().base_index() && node.log().term_at(index) == Some(*t) {
                        continue;
                    }
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
            let held = node.log().get(index).map(|e| (e.term, entry_hash(e))).or_else(|| self.observed.get(&index).copied());
            let Some((term, h)) = held else {
                // Compacted into the node's snapshot: the oracle must already know it, and the
                // snapshot's own (index, term) must agree with it.
                let base = node.log().base_index();
                match self.committed.get(index as usize - 1) {
                    Some(&(t, _, _)) if index < base || (index == base && node.log().term_at(base) == Some(t)) => continue,
                    Some(&(t, _, _)) if index == base => {
                        self.violate(format!(
                            "node {id} holds a snapshot at {index} of term {:?} but entry {index} of term {t} was committed",
                            node.log().term_at(base)
                        ));
                        return;
                    }
                    _ => {}
                }
                self.violate(format!("node {id} claims commit index {} but lacks entry {index}", node.commit_index()));
                return;
            };
            let e = Entry { term, index, payload: vecraft_core::raft::EntryPayload::Noop };
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
        self.observed.clear();
    }

    /// Entries a node applied in the step about to be checked (see `observed`).
    pub fn observe_applies<'a>(&mut self, entries: impl IntoIterator<Item = &'a Entry>) {
        self.observed.clear();
        for e in entries {
            self.observed.insert(e.index, (e.term, entry_hash(e)));
        }
    }

    /// A node (re)started with its state machine restored from a snapshot at `applied`: applies
    /// continue after it.
    pub fn on_restored(&mut self, id: NodeId, applied: LogIndex) {
        if applied > 0 {
            self.applied.insert(id, applied);
        }
    }

    /// A node installed a snapshot: its state machine jumped to `meta.index`, which must be
    /// committed with `meta.term`, and never below what it had applied (an install that moves
    /// applied backwards re-applies entries).
    pub fn on_snapshot_installed(&mut self, node: &RaftNode, meta: &SnapshotMeta) {
        let id = node.id();
        let applied = self.applied.get(&id).copied().unwrap_or(0);
        if meta.index < applied {
            self.violate(format!(
                "node {id} installed a snapshot at {} below its applied index {applied}: applied moved backwards",
                meta.index
            ));
            return;
        }
        match self.committed.get(meta.index as usize - 1) {
            Some(&(t, _, _)) if t == meta.term => {}
            Some(&(t, _, _)) => self.violate(format!(
                "node {id} installed a snapshot at {} of term {} but entry {} of term {t} was committed",
                meta.index, meta.term, meta.index
            )),
            None => self.violate(format!("node {id} installed a snapshot at {} that no node reported committed", meta.index)),
        }
        self.applied.insert(id, meta.index);
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
            let index = i as u64 + 1;
            // A durable snapshot holds what it covers (its own index must carry the term).
            let covered = |d: &DurableState| {
                d.snapshot.as_ref().is_some_and(|m| index < m.index || (index == m.index && m.term == t))
                    || index < d.base_index
                    || (index == d.base_index && d.base_term == t)
            };
            let holds =
                |d: &DurableState| covered(d) || d.entry(index).is_some_and(|e| e.term == t && entry_hash(e) == h);
            let healthy_or_damaged =
                |v: NodeId| disks.iter().any(|(id, d, damaged)| *id == v && (*damaged || holds(d)));
            let all = |v: NodeId| disks.iter().any(|(id, d, _)| *id == v && holds(d));
            if !configs.iter().any(|q| q.is_active(healthy_or_damaged)) {
                let msg = format!(
                    "durability: committed entry {index} (term {t}) is on no quorum of any configuration the group has had (damaged disks counted as holders)"
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

    /// Log matching over every pair of (in-memory, possibly compacted) logs: over the indexes
    /// both still hold, plus each one's compacted base (index, term), the highest index where
    /// both have the same term must have identical entries (and terms) below it.
    pub fn check_compacted_log_matching<'a>(&mut self, logs: impl IntoIterator<Item = (NodeId, &'a RaftLog)>) {
        let logs: Vec<(NodeId, &RaftLog)> = logs.into_iter().collect();
        for (i, (a_id, a)) in logs.iter().enumerate() {
            for (b_id, b) in &logs[i + 1..] {
                let lo = a.base_index().max(b.base_index());
                let hi = a.last_index().min(b.last_index());
                if lo > hi {
                    continue;
                }
                let Some(k) = (lo..=hi).rev().find(|&k| a.term_at(k).is_some() && a.term_at(k) == b.term_at(k)) else {
                    continue;
                };
                let differs = (lo..=k).find(|&j| match (a.get(j), b.get(j)) {
                    (Some(x), Some(y)) => x != y,
                    _ => a.term_at(j) != b.term_at(j),
                });
                if let Some(j) = differs {
                    self.violate(format!(
                        "log matching: nodes {a_id} and {b_id} agree on entry {k} (term {:?}) but differ at entry {j}",
                        a.term_at(k)
                    ));
                    return;
                }
            }
        }
    }
}

fn show(q: &JointQuorum) -> String {
    let inc: Vec<NodeId> = q.incoming.voters().iter().copied().collect();
    let out: Vec<NodeId> = q.outgoing.voters().iter().copied().collect();
    if out.is_empty() { format!("{inc:?}") } else { format!("{inc:?}&{out:?}") }
}
