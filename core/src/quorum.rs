//! Quorum arithmetic: majorities, commit indexes and vote tallies.
//!
//! Kept apart from Raft so that it can be property-tested against a naive model: a commit index
//! computed from a sub-quorum is the kind of bug that silently loses acknowledged writes. A
//! [`JointQuorum`] (old and new voter sets during a membership change) needs a majority of *both*.

use crate::contract::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The outcome of an election so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A quorum granted.
    Won,
    /// Enough voters refused that a quorum can no longer grant.
    Lost,
    /// Still undecided.
    Pending,
}

/// A set of voters deciding by simple majority.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MajorityQuorum {
    voters: BTreeSet<NodeId>,
}

impl MajorityQuorum {
    /// A quorum over `voters` (duplicates collapse).
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        MajorityQuorum { voters: voters.into_iter().collect() }
    }

    /// The voters, in id order.
    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    /// How many voters make a majority. An empty set needs none (and so decides nothing useful;
    /// Raft never runs with one).
    pub fn size(&self) -> usize {
        if self.voters.is_empty() { 0 } else { self.voters.len() / 2 + 1 }
    }

    /// The largest index that a majority has acknowledged: the commit index candidate.
    ///
    /// `acked(id)` is each voter's acknowledged index (`None` counts as 0). This is the
    /// `size()`-th largest acknowledgement: every index at or below it is held by a majority.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<u64>) -> u64 {
        if self.voters.is_empty() {
            return u64::MAX; // an empty half of a joint config never holds the other half back
        }
        let mut acks: Vec<u64> = self.voters.iter().map(|&v| acked(v).unwrap_or(0)).collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        acks[self.size() - 1]
    }

    /// Tally of votes: `vote(id)` is `Some(true)` granted, `Some(false)` refused, `None` unknown.
    pub fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        if self.voters.is_empty() {
            return VoteResult::Won;
        }
        let (mut yes, mut missing) = (0, 0);
        for &v in &self.voters {
            match vote(v) {
                Some(true) => yes += 1,
                Some(false) => {}
                None => missing += 1,
            }
        }
        if yes >= self.size() {
            VoteResult::Won
        } else if yes + missing >= self.size() {
            VoteResult::Pending
        } else {
            VoteResult::Lost
        }
    }

    /// Whether the voters for which `active` holds form a majority.
    pub fn is_active(&self, active: impl Fn(NodeId) -> bool) -> bool {
        self.vote_result(|v| Some(active(v))) == VoteResult::Won
    }
}

/// The voting configuration of a Raft group: one majority, or two during a joint-consensus
/// membership change (both must agree).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JointQuorum {
    /// The configuration being moved to (or the only one).
    pub incoming: MajorityQuorum,
    /// The configuration being left, empty outside a change.
    pub outgoing: MajorityQuorum,
}

impl JointQuorum {
    /// A plain (non-joint) configuration.
    pub fn simple(voters: impl IntoIterator<Item = NodeId>) -> Self {
        JointQuorum { incoming: MajorityQuorum::new(voters), outgoing: MajorityQuorum::default() }
    }

    /// Every voter of either half.
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.incoming.voters().union(self.outgoing.voters()).copied().collect()
    }

    /// Whether `id` votes in either half.
    pub fn contains(&self, id: NodeId) -> bool {
        self.incoming.voters().contains(&id) || self.outgoing.voters().contains(&id)
    }

    /// Largest index acknowledged by a majority of both halves.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> Option<u64>) -> u64 {
        self.incoming.committed_index(&acked).min(self.outgoing.committed_index(&acked))
    }

    /// Election outcome under both halves.
    pub fn vote_result(&self, vote: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        match (self.incoming.vote_result(&vote), self.outgoing.vote_result(&vote)) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// Whether a majority of both halves is active.
    pub fn is_active(&self, active: impl Fn(NodeId) -> bool) -> bool {
        self.incoming.is_active(&active) && self.outgoing.is_active(&active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Naive model: the largest index `i` such that more than half the voters acked >= i.
    fn naive_committed(voters: &BTreeSet<NodeId>, acks: &BTreeMap<NodeId, u64>) -> u64 {
        let candidates: BTreeSet<u64> = voters.iter().map(|v| acks.get(v).copied().unwrap_or(0)).collect();
        candidates
            .into_iter()
            .filter(|&i| voters.iter().filter(|v| acks.get(v).copied().unwrap_or(0) >= i).count() * 2 > voters.len())
            .max()
            .unwrap_or(0)
    }

    fn naive_vote(voters: &BTreeSet<NodeId>, votes: &BTreeMap<NodeId, bool>) -> VoteResult {
        let yes = voters.iter().filter(|v| votes.get(v) == Some(&true)).count();
        let no = voters.iter().filter(|v| votes.get(v) == Some(&false)).count();
        if yes * 2 > voters.len() {
            VoteResult::Won
        } else if no * 2 >= voters.len() {
            VoteResult::Lost
        } else {
            VoteResult::Pending
        }
    }

    #[test]
    fn three_node_examples() {
        let q = MajorityQuorum::new([1, 2, 3]);
        assert_eq!(q.size(), 2);
        let acks = BTreeMap::from([(1, 10), (2, 5), (3, 0)]);
        assert_eq!(q.committed_index(|v| acks.get(&v).copied()), 5);
        assert_eq!(q.vote_result(|v| (v == 1).then_some(true)), VoteResult::Pending);
        assert_eq!(q.vote_result(|v| Some(v != 3)), VoteResult::Won);
        assert_eq!(q.vote_result(|v| Some(v == 1)), VoteResult::Lost);
    }

    #[test]
    fn joint_needs_both_halves() {
        let j = JointQuorum { incoming: MajorityQuorum::new([1, 2, 3]), outgoing: MajorityQuorum::new([3, 4, 5]) };
        let acks = BTreeMap::from([(1, 9), (2, 9), (3, 1), (4, 1), (5, 1)]);
        assert_eq!(j.committed_index(|v| acks.get(&v).copied()), 1);
        assert_eq!(j.vote_result(|v| Some(v <= 2)), VoteResult::Lost);
        assert_eq!(j.vote_result(|v| Some(v == 1 || v == 3 || v == 4)), VoteResult::Won);
    }

    proptest! {
        #[test]
        fn committed_index_matches_naive(acks in proptest::collection::btree_map(0u64..9, 0u64..20, 1..9)) {
            let voters: BTreeSet<NodeId> = acks.keys().copied().collect();
            let q = MajorityQuorum::new(voters.iter().copied());
            let got = q.committed_index(|v| acks.get(&v).copied());
            prop_assert_eq!(got, naive_committed(&voters, &acks));
            // The defining property, stated directly: a majority holds it, and no larger index has one.
            let holders = voters.iter().filter(|v| acks[v] >= got).count();
            prop_assert!(holders * 2 > voters.len());
        }

        #[test]
        fn vote_result_matches_naive(
            voters in proptest::collection::btree_set(0u64..9, 1..9),
            votes in proptest::collection::btree_map(0u64..12, any::<bool>(), 0..12),
        ) {
            let q = MajorityQuorum::new(voters.iter().copied());
            prop_assert_eq!(q.vote_result(|v| votes.get(&v).copied()), naive_vote(&voters, &votes));
        }

        #[test]
        fn joint_commit_is_min_of_halves(
            a in proptest::collection::btree_set(0u64..7, 1..6),
            b in proptest::collection::btree_set(0u64..7, 1..6),
            acks in proptest::collection::btree_map(0u64..7, 0u64..20, 0..7),
        ) {
            let j = JointQuorum { incoming: MajorityQuorum::new(a.clone()), outgoing: MajorityQuorum::new(b.clone()) };
            let got = j.committed_index(|v| acks.get(&v).copied());
            prop_assert_eq!(got, naive_committed(&a, &acks).min(naive_committed(&b, &acks)));
        }
    }
}
