//! Who belongs to a Raft group: the voting configuration (two majorities during a joint-consensus
//! change) and the learners that receive the log without voting.
//!
//! This is the value that configuration-change entries produce and that snapshots carry, so a node
//! restored from a snapshot knows its group without replaying the entries the snapshot replaced.

use crate::contract::NodeId;
use crate::quorum::JointQuorum;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The membership of one group at one log index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The voters: `incoming` alone, or `incoming` and `outgoing` while joint.
    pub voters: JointQuorum,
    /// Non-voting members that receive the log.
    pub learners: BTreeSet<NodeId>,
    /// Outgoing voters that stay as learners once the joint configuration is left (etcd's
    /// `LearnersNext`): a voter cannot become a learner while it still votes in `outgoing`.
    pub learners_next: BTreeSet<NodeId>,
    /// Leave the joint configuration on our own once entering it has committed.
    pub auto_leave: bool,
}

impl Membership {
    /// A plain configuration of `voters` and no learners.
    pub fn simple(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership { voters: JointQuorum::simple(voters), ..Membership::default() }
    }

    /// Whether a joint-consensus change is under way.
    pub fn is_joint(&self) -> bool {
        !self.voters.outgoing.voters().is_empty()
    }

    /// Whether `id` votes in either half.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(id)
    }

    /// Whether `id` receives the log without voting.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id) || self.learners_next.contains(&id)
    }

    /// Every member, voting or not: the nodes a leader replicates to.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.voters();
        all.extend(self.learners.iter().copied());
        all.extend(self.learners_next.iter().copied());
        all
    }

    /// Checks the structural rules every configuration obeys (at protocol boundaries, e.g. a
    /// snapshot header or a decoded change): at least one incoming voter, learners disjoint from
    /// voters, `learners_next` only while joint and only for outgoing voters.
    pub fn validate(&self) -> Result<(), String> {
        if self.voters.incoming.voters().is_empty() {
            return Err("membership has no voters".into());
        }
        if let Some(id) = self.learners.iter().find(|&&id| self.is_voter(id)) {
            return Err(format!("node {id} is both a voter and a learner"));
        }
        if !self.learners_next.is_empty() && !self.is_joint() {
            return Err("learners_next outside a joint configuration".into());
        }
        if let Some(id) = self.learners_next.iter().find(|&&id| !self.voters.outgoing.voters().contains(&id)) {
            return Err(format!("node {id} in learners_next is not an outgoing voter"));
        }
        if let Some(id) = self.learners_next.iter().find(|id| self.learners.contains(id)) {
            return Err(format!("node {id} is in learners and learners_next"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::MajorityQuorum;

    #[test]
    fn simple_membership_is_valid_and_not_joint() {
        let m = Membership::simple([1, 2, 3]);
        assert!(m.validate().is_ok());
        assert!(!m.is_joint());
        assert_eq!(m.members(), BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn validate_rejects_overlaps() {
        let mut m = Membership::simple([1, 2, 3]);
        m.learners.insert(2);
        assert!(m.validate().unwrap_err().contains("both a voter and a learner"));
        let mut m = Membership::simple([1, 2, 3]);
        m.learners_next.insert(3);
        assert!(m.validate().unwrap_err().contains("outside a joint"));
        let m = Membership {
            voters: JointQuorum { incoming: MajorityQuorum::new([1, 2]), outgoing: MajorityQuorum::new([1, 2, 3]) },
            learners_next: BTreeSet::from([3]),
            ..Membership::default()
        };
        assert!(m.validate().is_ok());
        assert!(m.is_joint());
        assert!(m.is_learner(3) && m.is_voter(3));
        assert!(Membership::default().validate().is_err());
    }
}
