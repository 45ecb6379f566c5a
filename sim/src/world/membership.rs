//! The membership nemesis: during the fault phase it asks the current leader to change the
//! group — add a node as a learner, promote learners (one directly, two through a joint
//! configuration), remove or demote a voter (the leader itself included), replace a voter by a
//! learner in one joint change, drop a learner — while partitions, crashes and pauses go on. It
//! draws from its own random stream, so a seed's other faults stay what they were, and it never
//! shrinks the voters below the world's floor (`min_voters`) so the workload can make progress.
//!
//! What the changes did is read back from the nodes' `MembershipChanged` outputs: the checker
//! holds every applied configuration to quorum intersection with the one it replaced, and the
//! counters say how often each kind of change committed.

use super::{Event, World};
use rand::RngExt;
use vecraft_core::contract::NodeId;
use vecraft_core::raft::{
    ClientError, ClientResponse, ConfChange, ConfChangeStep, ConfTransition, LogIndex, next_membership, Membership, RaftInput, RequestId,
};

/// Request ids of the nemesis's configuration changes (client ids are `client << 40 | n`).
pub(super) const CONF_REQUEST_BASE: RequestId = 1 << 62;

/// The kinds of change the nemesis asks for.
#[derive(Clone, Copy, Debug)]
enum Kind {
    AddLearner,
    Promote,
    PromoteTwo,
    RemoveVoter,
    RemoveLeader,
    Demote,
    Replace,
    RemoveLearner,
}

impl World {
    /// Arms the next membership change (exponential delay from the nemesis's own stream).
    pub(super) fn schedule_membership(&mut self) {
        if let Some(every) = self.cfg.membership_every {
            let u: f64 = self.member_rng.random_range(f64::EPSILON..1.0);
            let at = self.now + (-(u.ln()) * every.as_nanos() as f64) as u64;
            self.schedule(at, Event::Membership);
        }
    }

    pub(super) fn nemesis_membership(&mut self) {
        if !self.faults_on {
            return;
        }
        if let Some(l) = self.leader_index() {
            let raft = self.nodes[l].raft.as_ref().expect("a leader is up");
            let (membership, leader) = (raft.membership().clone(), raft.id());
            if let Some(change) = self.pick_change(&membership, leader).filter(|c| self.keeps_healthy_majority(&membership, c)) {
                self.conf_requests += 1;
                let id = CONF_REQUEST_BASE + self.conf_requests;
                self.stats.conf_proposed += 1;
                self.deliver(l, RaftInput::ProposeConfChange { id, change });
            }
        }
        self.schedule_membership();
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.member_rng.random_range(0..from.len())]
    }

    /// A change that fits `m` (led by `leader`), or `None` when nothing fits.
    fn pick_change(&mut self, m: &Membership, leader: NodeId) -> Option<ConfChange> {
        use ConfChangeStep::*;
        if m.is_joint() {
            // Left automatically unless the change asked to leave explicitly: then we ask.
            return (!m.auto_leave).then(ConfChange::leave_joint);
        }
        let all: Vec<NodeId> = (1..=self.nodes.len() as NodeId).collect();
        let members = m.members();
        let voters: Vec<NodeId> = m.voters.incoming.voters().iter().copied().collect();
        let learners: Vec<NodeId> = m.learners.iter().copied().collect();
        let outsiders: Vec<NodeId> = all.iter().copied().filter(|id| !members.contains(id)).collect();
        let can_shrink = voters.len() > self.cfg.min_voters;
        let mut kinds = Vec::new();
        if !outsiders.is_empty() {
            kinds.extend([Kind::AddLearner, Kind::AddLearner]);
        }
        if !learners.is_empty() {
            kinds.extend([Kind::Promote, Kind::Replace, Kind::Replace, Kind::RemoveLearner]);
        }
        if learners.len() >= 2 {
            kinds.push(Kind::PromoteTwo);
        }
        if can_shrink {
            kinds.extend([Kind::RemoveVoter, Kind::RemoveLeader, Kind::Demote]);
        }
        if kinds.is_empty() {
            return None;
        }
        let joint = if self.member_rng.random_bool(0.25) { ConfTransition::JointExplicit } else { ConfTransition::Auto };
        let others: Vec<NodeId> = voters.iter().copied().filter(|&v| v != leader).collect();
        let change = |steps: Vec<ConfChangeStep>, transition| Some(ConfChange { steps, transition });
        match self.pick(&kinds) {
            Kind::AddLearner => change(vec![AddLearner(self.pick(&outsiders))], ConfTransition::Auto),
            Kind::Promote => change(vec![AddVoter(self.pick(&learners))], joint),
            Kind::PromoteTwo => {
                let a = self.pick(&learners);
                let rest: Vec<NodeId> = learners.iter().copied().filter(|&x| x != a).collect();
                change(vec![AddVoter(a), AddVoter(self.pick(&rest))], joint)
            }
            Kind::RemoveVoter if !others.is_empty() => change(vec![Remove(self.pick(&others))], joint),
            Kind::RemoveVoter | Kind::RemoveLeader => change(vec![Remove(leader)], joint),
            Kind::Demote => change(vec![AddLearner(self.pick(&voters))], joint),
            Kind::Replace => {
                // One learner in, one voter out (the leader in a third of the cases): two voters
                // move, so this goes through a joint configuration.
                let out = if others.is_empty() || self.member_rng.random_bool(0.33) { leader } else { self.pick(&others) };
                change(vec![AddVoter(self.pick(&learners)), Remove(out)], joint)
            }
            Kind::RemoveLearner => change(vec![Remove(self.pick(&learners))], ConfTransition::Auto),
        }
    }

    /// Whether the voters after `change` still have healthy disks in a majority (the storage
    /// faults are injected into a minority of the nodes; concentrating them in the voters would
    /// make the group unrecoverable, which no protocol can help).
    fn keeps_healthy_majority(&self, m: &Membership, change: &ConfChange) -> bool {
        let Ok(next) = next_membership(m, change, false) else { return true }; // refused anyway
        let faulty = |q: &vecraft_core::quorum::MajorityQuorum| {
            let f = q.voters().iter().filter(|&&id| self.nodes[(id - 1) as usize].disk.faulty).count();
            f * 2 < q.voters().len() || q.voters().is_empty()
        };
        faulty(&next.voters.incoming) && faulty(&next.voters.outgoing)
    }

    /// The answer to one of the nemesis's requests (an `Ok` is its entry applied).
    pub(super) fn on_conf_response(&mut self, resp: &ClientResponse) {
        if matches!(
            resp.result,
            Err(ClientError::ConfChangeRefused(_) | ClientError::NotLeader { .. } | ClientError::Transferring { .. })
        ) {
            self.stats.conf_refused += 1;
        }
    }

    /// Node `n` applied the configuration entry at `index`: check it and count what it changed.
    pub(super) fn on_conf_entry_applied(&mut self, n: usize, index: LogIndex, membership: &Membership) {
        let raft = self.nodes[n].raft.as_ref().expect("stepped just now");
        let Some(prev) = self.checker.on_membership_applied(raft, index, membership) else { return };
        let s = &mut self.stats;
        s.conf_committed += 1;
        s.joint_entered += (!prev.is_joint() && membership.is_joint()) as u64;
        s.joint_left += (prev.is_joint() && !membership.is_joint()) as u64;
        let was_learner = |id: &NodeId| prev.is_learner(*id);
        s.learners_added += membership.learners.iter().chain(&membership.learners_next).filter(|id| !was_learner(id)).count() as u64;
        s.learners_promoted += membership.voters.voters().iter().filter(|id| was_learner(id)).count() as u64;
        s.voters_removed += prev.voters.voters().iter().filter(|&&id| !membership.is_voter(id)).count() as u64;
    }

    /// Whether node id `id` belongs to the group as the given leader sees it.
    pub(super) fn is_member(leader: &Membership, id: NodeId) -> bool {
        leader.members().contains(&id)
    }
}
