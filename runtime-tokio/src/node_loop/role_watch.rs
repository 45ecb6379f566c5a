//! Logs and counts each hosted group's role changes, so an operator can tell a follower that
//! lost its leader (an election under load) from a leader that stepped down (check-quorum) and
//! see which node and group each happened on. Read-only, like `group_status`.

use std::collections::HashMap;
use vecraft_core::contract::NodeId;
use vecraft_core::node::Node;
use vecraft_core::raft::{GroupId, Role, Term};

/// What the watch saw last of one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    role: Role,
    term: Term,
    leader: Option<NodeId>,
}

/// The last seen role of every hosted group.
#[derive(Debug, Default)]
pub struct RoleWatch {
    seen: HashMap<GroupId, Seen>,
}

/// A change worth reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleChange {
    /// This node began campaigning although it had a leader: no word from it within the
    /// election timeout.
    LostLeader { group: GroupId, leader: NodeId, term: Term },
    /// This node leads the group from `term`.
    BecameLeader { group: GroupId, term: Term },
    /// This node led the group and no longer does (a higher term, or check-quorum).
    SteppedDown { group: GroupId, term: Term, leader: Option<NodeId> },
}

impl RoleWatch {
    /// Compares every hosted group with what was seen last; returns the changes.
    pub fn observe(&mut self, node: &Node) -> Vec<RoleChange> {
        let me = node.id();
        let mut changes = Vec::new();
        for (group, r) in node.groups() {
            let now = Seen { role: r.role(), term: r.term(), leader: r.leader() };
            // Called on every loop turn: an unchanged group costs one lookup, no insert.
            match self.seen.get_mut(&group) {
                Some(before) if *before == now => {}
                Some(before) => {
                    let was = std::mem::replace(before, now);
                    changes.extend(change(group, me, was, now));
                }
                None => {
                    self.seen.insert(group, now);
                }
            }
        }
        changes
    }

    /// Forgets groups this node no longer hosts.
    pub fn retain(&mut self, node: &Node) {
        self.seen.retain(|g, _| node.group(*g).is_some());
    }
}

fn change(group: GroupId, me: NodeId, before: Seen, now: Seen) -> Option<RoleChange> {
    let campaigning = matches!(now.role, Role::PreCandidate | Role::Candidate);
    match (before.role, now.role) {
        (Role::Follower, _) if campaigning => before
            .leader
            .filter(|l| *l != me)
            .map(|leader| RoleChange::LostLeader { group, leader, term: before.term }),
        (r, Role::Leader) if r != Role::Leader => Some(RoleChange::BecameLeader { group, term: now.term }),
        (Role::Leader, r) if r != Role::Leader => {
            Some(RoleChange::SteppedDown { group, term: now.term, leader: now.leader })
        }
        _ => None,
    }
}

/// The loop turn in which a change was seen: whether the loop itself was away (a long gap
/// before the turn, a late timer) or the peers were silent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TurnContext {
    /// What the turn stepped (`tick`, `envelope`, ...).
    pub input: &'static str,
    /// Milliseconds between the end of the previous turn and the start of this one.
    pub gap_ms: u64,
    /// For a tick: how many milliseconds after its deadline it was stepped.
    pub late_ms: u64,
}

/// Logs a change and counts lost leaders in `vecraft_raft_elections_started_total`.
pub fn report(change: RoleChange, turn: TurnContext) {
    let TurnContext { input, gap_ms, late_ms } = turn;
    match change {
        RoleChange::LostLeader { group, leader, term } => {
            metrics::counter!(crate::http::metrics::RAFT_ELECTIONS_STARTED, "group" => group.to_string())
                .increment(1);
            tracing::warn!(group, leader, term, input, gap_ms, late_ms, "raft: no word from the leader within the election timeout; campaigning");
        }
        RoleChange::BecameLeader { group, term } => tracing::info!(group, term, "raft: leading"),
        RoleChange::SteppedDown { group, term, leader } => {
            tracing::warn!(group, term, ?leader, input, gap_ms, late_ms, "raft: stepped down as leader")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(role: Role, term: Term, leader: Option<NodeId>) -> Seen {
        Seen { role, term, leader }
    }

    #[test]
    fn a_follower_that_had_a_leader_and_campaigns_lost_it() {
        let c = change(7, 2, seen(Role::Follower, 3, Some(1)), seen(Role::PreCandidate, 3, None));
        assert_eq!(c, Some(RoleChange::LostLeader { group: 7, leader: 1, term: 3 }));
        // Without a known leader (a fresh group) campaigning is not a lost leader.
        assert_eq!(change(7, 2, seen(Role::Follower, 0, None), seen(Role::Candidate, 1, None)), None);
    }

    #[test]
    fn leading_and_stepping_down_are_reported() {
        assert_eq!(
            change(7, 2, seen(Role::Candidate, 4, None), seen(Role::Leader, 4, Some(2))),
            Some(RoleChange::BecameLeader { group: 7, term: 4 })
        );
        assert_eq!(
            change(7, 2, seen(Role::Leader, 4, Some(2)), seen(Role::Follower, 4, None)),
            Some(RoleChange::SteppedDown { group: 7, term: 4, leader: None })
        );
        // A term change while following is not reported.
        assert_eq!(change(7, 2, seen(Role::Follower, 4, Some(1)), seen(Role::Follower, 5, Some(3))), None);
    }
}
