//! Configuration changes (etcd's `ConfChangeV2` and `confchange` package, in our own words): what
//! a change asks for, and the pure function that turns the current [`Membership`] into the next.
//!
//! A change is a list of single steps (add a voter, add a learner, remove a node) plus how to get
//! there. A change that moves at most one voter is applied directly ("simple"): any majority of
//! the old voters and any majority of the new ones still intersect. Anything larger goes through a
//! joint configuration (Raft thesis §4.3): decisions need a majority of the old *and* of the new
//! voters until a second, empty change leaves the joint configuration — on the leader's own
//! initiative (`auto_leave`) or on request.
//!
//! The log entry carries the resulting membership next to the change itself, so a node can learn
//! its configuration from the newest configuration entry without replaying every older one (the
//! entries before a snapshot are gone).

use super::membership::Membership;
use crate::contract::NodeId;
use crate::quorum::{JointQuorum, MajorityQuorum};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use thiserror::Error;

/// One step of a configuration change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConfChangeStep {
    /// Make the node a voter. It must already be a learner (or a voter: then nothing changes), so
    /// that it holds the log before it counts in quorums (add as learner, catch up, promote).
    AddVoter(NodeId),
    /// Make the node a learner: a new node, or a voter demoted (while joint it stays a voter of
    /// the outgoing half until the joint configuration is left).
    AddLearner(NodeId),
    /// Remove the node from the group, whatever its role.
    Remove(NodeId),
}

impl ConfChangeStep {
    /// The node this step concerns.
    pub fn node(&self) -> NodeId {
        match *self {
            ConfChangeStep::AddVoter(id) | ConfChangeStep::AddLearner(id) | ConfChangeStep::Remove(id) => id,
        }
    }
}

/// How a non-empty change is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConfTransition {
    /// Directly if it moves at most one voter, otherwise through a joint configuration that the
    /// leader leaves on its own once it has been applied (etcd's `ConfChangeTransitionAuto`).
    Auto,
    /// Always through a joint configuration, left automatically (`JointImplicit`).
    JointAutoLeave,
    /// Always through a joint configuration, left only when an empty change is proposed
    /// (`JointExplicit`).
    JointExplicit,
}

/// A requested configuration change. An empty `steps` list means "leave the joint
/// configuration" (the transition is then ignored).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConfChange {
    /// The steps, applied in order.
    pub steps: Vec<ConfChangeStep>,
    /// How to get there.
    pub transition: ConfTransition,
}

impl ConfChange {
    /// The empty change that leaves a joint configuration.
    pub fn leave_joint() -> Self {
        ConfChange { steps: Vec::new(), transition: ConfTransition::Auto }
    }

    /// A change of `steps` carried out as [`ConfTransition::Auto`] decides.
    pub fn auto(steps: impl IntoIterator<Item = ConfChangeStep>) -> Self {
        ConfChange { steps: steps.into_iter().collect(), transition: ConfTransition::Auto }
    }

    /// Whether this is the leave-joint change.
    pub fn is_leave_joint(&self) -> bool {
        self.steps.is_empty()
    }
}

/// The payload of a configuration log entry: the change and the membership it produced on the
/// leader that proposed it (followers recompute it and must agree; a node restarting from its log
/// takes it as is).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConfEntry {
    /// What was asked for.
    pub change: ConfChange,
    /// The membership once the entry is applied.
    pub membership: Membership,
}

impl ConfEntry {
    /// Rough encoded size, for batch and uncommitted-bytes accounting.
    pub fn approx_len(&self) -> usize {
        8 * (self.change.steps.len() + self.membership.members().len() + self.membership.voters.outgoing.voters().len())
    }
}

/// Why a configuration change is invalid for the current membership.
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChangeError {
    /// The leave-joint change was proposed outside a joint configuration.
    #[error("cannot leave a joint configuration: the configuration is not joint")]
    NotJoint,
    /// A change other than leaving was proposed while joint.
    #[error("a joint configuration must be left before the next change")]
    AlreadyJoint,
    /// Node id 0 is reserved.
    #[error("node id 0 is not a valid member")]
    InvalidNode,
    /// `AddVoter` for a node that is neither a learner nor a voter.
    #[error("node {0} cannot be promoted: it is not a learner of the group (add it as a learner first)")]
    UnknownLearner(NodeId),
    /// `Remove` of a node that is not a member.
    #[error("node {0} cannot be removed: it is not a member")]
    UnknownNode(NodeId),
    /// The change would leave no voter.
    #[error("the change removes every voter")]
    NoVoters,
    /// The result breaks a structural rule of [`Membership::validate`].
    #[error("the resulting membership is invalid: {0}")]
    InvalidResult(String),
}

/// Why a leader refused a proposed configuration change (nothing was appended).
#[derive(Clone, Debug, Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChangeRefusal {
    /// A new leader must first commit an entry of its own term: until then it may not know the
    /// latest committed configuration, and a change based on an older one could skip a step.
    #[error("the leader has not yet committed an entry of its term")]
    NoOwnTermCommit,
    /// Another configuration change (at `index`) is not applied yet: changes go one at a time,
    /// each based on the configuration the previous one produced.
    #[error("configuration change at index {index} is still pending")]
    Pending {
        /// Index of the pending change (or the leader's last index at election, conservatively).
        index: u64,
    },
    /// The change does not fit the current membership.
    #[error(transparent)]
    Invalid(#[from] ConfChangeError),
}

/// Computes the membership that `change` produces from `current`. Pure: the leader calls it to
/// validate a proposal and build the entry, followers to check the entry they apply.
///
/// `skip_joint` is the injected bug "joint phase skipped": a change of several voters is applied
/// directly (only ever passed as `true` under the `bug-injection` feature).
pub fn next_membership(current: &Membership, change: &ConfChange, skip_joint: bool) -> Result<Membership, ConfChangeError> {
    if change.is_leave_joint() {
        if !current.is_joint() {
            return Err(ConfChangeError::NotJoint);
        }
        let mut next = current.clone();
        next.voters.outgoing = MajorityQuorum::default();
        let demoted = std::mem::take(&mut next.learners_next);
        next.learners.extend(demoted);
        next.auto_leave = false;
        return check(next);
    }
    if current.is_joint() {
        return Err(ConfChangeError::AlreadyJoint);
    }
    let mut incoming: BTreeSet<NodeId> = current.voters.incoming.voters().clone();
    let mut learners = current.learners.clone();
    for step in &change.steps {
        let id = step.node();
        if id == 0 {
            return Err(ConfChangeError::InvalidNode);
        }
        match *step {
            ConfChangeStep::AddVoter(_) => {
                if !incoming.contains(&id) && !learners.contains(&id) {
                    return Err(ConfChangeError::UnknownLearner(id));
                }
                learners.remove(&id);
                incoming.insert(id);
            }
            ConfChangeStep::AddLearner(_) => {
                incoming.remove(&id);
                learners.insert(id);
            }
            ConfChangeStep::Remove(_) => {
                if !incoming.remove(&id) && !learners.remove(&id) {
                    return Err(ConfChangeError::UnknownNode(id));
                }
            }
        }
    }
    if incoming.is_empty() {
        return Err(ConfChangeError::NoVoters);
    }
    let outgoing = current.voters.incoming.voters();
    let moved = incoming.symmetric_difference(outgoing).count();
    let joint = match change.transition {
        ConfTransition::Auto => moved > 1,
        ConfTransition::JointAutoLeave | ConfTransition::JointExplicit => true,
    } && !skip_joint;
    if !joint {
        return check(Membership {
            voters: JointQuorum::simple(incoming),
            learners,
            learners_next: BTreeSet::new(),
            auto_leave: false,
        });
    }
    // A demoted voter still votes in the outgoing half: it becomes a learner only on leaving.
    let learners_next: BTreeSet<NodeId> = learners.iter().copied().filter(|id| outgoing.contains(id)).collect();
    learners.retain(|id| !learners_next.contains(id));
    check(Membership {
        voters: JointQuorum { incoming: MajorityQuorum::new(incoming), outgoing: current.voters.incoming.clone() },
        learners,
        learners_next,
        auto_leave: change.transition != ConfTransition::JointExplicit,
    })
}

fn check(m: Membership) -> Result<Membership, ConfChangeError> {
    m.validate().map_err(ConfChangeError::InvalidResult)?;
    Ok(m)
}

/// Whether every quorum of `a` intersects every quorum of `b` (a joint configuration's quorums
/// need a majority of both halves). Two configurations one change apart must have this property,
/// or two leaders could be elected (or two values committed) by disjoint quorums. Exhaustive over
/// the subsets of the members, so only for the small groups of tests and the simulator's checker.
pub fn quorums_intersect(a: &JointQuorum, b: &JointQuorum) -> bool {
    let all: Vec<NodeId> = a.voters().union(&b.voters()).copied().collect();
    if all.len() > 16 {
        return true; // beyond what is cheap to check; groups that large are not simulated
    }
    let is_quorum = |q: &JointQuorum, members: &BTreeSet<NodeId>| q.is_active(|v| members.contains(&v));
    for mask in 0u32..(1 << all.len()) {
        let (s, rest): (BTreeSet<NodeId>, BTreeSet<NodeId>) =
            all.iter().enumerate().fold((BTreeSet::new(), BTreeSet::new()), |(mut s, mut r), (i, &id)| {
                if mask & (1 << i) != 0 { s.insert(id) } else { r.insert(id) };
                (s, r)
            });
        if is_quorum(a, &s) && is_quorum(b, &rest) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConfChangeStep::*;

    fn voters(m: &Membership) -> (Vec<NodeId>, Vec<NodeId>) {
        (m.voters.incoming.voters().iter().copied().collect(), m.voters.outgoing.voters().iter().copied().collect())
    }

    #[test]
    fn single_voter_change_is_simple_and_larger_ones_go_joint() {
        let m = Membership::simple([1, 2, 3]);
        let added = next_membership(&m, &ConfChange::auto([AddLearner(4), AddLearner(5)]), false).unwrap();
        assert!(!added.is_joint() && added.learners == BTreeSet::from([4, 5]));
        let one = next_membership(&added, &ConfChange::auto([AddVoter(4)]), false).unwrap();
        assert_eq!(voters(&one), (vec![1, 2, 3, 4], vec![]));
        let two = next_membership(&added, &ConfChange::auto([AddVoter(4), AddVoter(5)]), false).unwrap();
        assert_eq!(voters(&two), (vec![1, 2, 3, 4, 5], vec![1, 2, 3]));
        assert!(two.auto_leave);
        let left = next_membership(&two, &ConfChange::leave_joint(), false).unwrap();
        assert_eq!(voters(&left), (vec![1, 2, 3, 4, 5], vec![]));
        assert!(!left.auto_leave);
        // The injected bug applies the two-voter change directly.
        let skipped = next_membership(&added, &ConfChange::auto([AddVoter(4), AddVoter(5)]), true).unwrap();
        assert_eq!(voters(&skipped), (vec![1, 2, 3, 4, 5], vec![]));
    }

    #[test]
    fn demoted_voter_stays_in_outgoing_until_leave() {
        let m = Membership::simple([1, 2, 3]);
        let c = ConfChange { steps: vec![AddLearner(3)], transition: ConfTransition::JointExplicit };
        let j = next_membership(&m, &c, false).unwrap();
        assert_eq!(voters(&j), (vec![1, 2], vec![1, 2, 3]));
        assert_eq!(j.learners_next, BTreeSet::from([3]));
        assert!(j.learners.is_empty() && !j.auto_leave);
        let left = next_membership(&j, &ConfChange::leave_joint(), false).unwrap();
        assert_eq!(left.learners, BTreeSet::from([3]));
        assert!(left.learners_next.is_empty());
    }

    #[test]
    fn invalid_changes_are_refused_with_reasons() {
        let m = Membership::simple([1]);
        assert_eq!(next_membership(&m, &ConfChange::auto([Remove(1)]), false), Err(ConfChangeError::NoVoters));
        assert_eq!(next_membership(&m, &ConfChange::auto([AddVoter(2)]), false), Err(ConfChangeError::UnknownLearner(2)));
        assert_eq!(next_membership(&m, &ConfChange::auto([Remove(9)]), false), Err(ConfChangeError::UnknownNode(9)));
        assert_eq!(next_membership(&m, &ConfChange::auto([AddLearner(0)]), false), Err(ConfChangeError::InvalidNode));
        assert_eq!(next_membership(&m, &ConfChange::leave_joint(), false), Err(ConfChangeError::NotJoint));
        let m = Membership::simple([1, 2, 3]);
        let j = next_membership(&m, &ConfChange { steps: vec![Remove(3)], transition: ConfTransition::JointExplicit }, false).unwrap();
        assert_eq!(next_membership(&j, &ConfChange::auto([AddLearner(4)]), false), Err(ConfChangeError::AlreadyJoint));
        // A voter is promoted "again" harmlessly.
        assert_eq!(next_membership(&m, &ConfChange::auto([AddVoter(2)]), false).unwrap(), m);
    }

    #[test]
    fn quorum_intersection_holds_for_legal_steps_only() {
        let a = JointQuorum::simple([1, 2, 3]);
        assert!(quorums_intersect(&a, &JointQuorum::simple([1, 2, 3, 4])));
        assert!(quorums_intersect(&a, &JointQuorum::simple([1, 2])));
        assert!(!quorums_intersect(&a, &JointQuorum::simple([1, 4, 5])));
        let joint = JointQuorum { incoming: MajorityQuorum::new([1, 4, 5]), outgoing: MajorityQuorum::new([1, 2, 3]) };
        assert!(quorums_intersect(&a, &joint));
        assert!(quorums_intersect(&joint, &JointQuorum::simple([1, 4, 5])));
    }

    #[test]
    fn entries_round_trip_through_postcard() {
        let m = Membership::simple([1, 2, 3]);
        let change = ConfChange::auto([AddLearner(4)]);
        let e = ConfEntry { membership: next_membership(&m, &change, false).unwrap(), change };
        let bytes = postcard::to_stdvec(&e).unwrap();
        assert_eq!(postcard::from_bytes::<ConfEntry>(&bytes).unwrap(), e);
    }
}
