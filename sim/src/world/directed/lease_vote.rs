//! The lease-vote race. A leader holding a lease is cut off from a minority of the voters, and
//! one follower F of the majority stops hearing it for a while, so F and the minority campaign;
//! their vote requests to each other are slow (held back). Once a minority candidate C has won its
//! pre-vote (with F's grant) and asks for real votes in the next term, F hears the leader again
//! and is back inside its lease. Then F's old pre-vote reaches C, whose refusal carries C's term:
//! F moves to that term without voting, still inside the lease. (Throughout, clients send their
//! writes to a minority node, which redirects them in vain, and their reads, in lease mode, to
//! the old leader: its log stands still, so the minority's logs stay as up to date as F's.) C's held vote request arrives
//! right after, at F's own current term, while clients read from the old leader in lease mode
//! (once F helped the old leader renew its lease, every link into the old leader goes down, so
//! it hears of no new term).
//!
//! What it attacks: a vote undercuts a lease whatever the term it is asked at; a voter that
//! honours a leader's lease refuses every vote request but a transfer's. With the rule in place
//! C cannot win while the lease lasts; without it, C wins with F's vote and commits writes the
//! old leader's lease reads do not see.

use super::World;
use vecraft_core::raft::{Message, MessageBody, Role, Term};

enum Phase {
    /// The minority and F campaign; their vote requests to each other are held, until the
    /// deadline.
    Court,
    /// C is a candidate with its vote request to F held: F hears the leader again.
    Regain { candidate: usize },
    /// F follows the leader again: waiting for the leader to renew its lease with F's help.
    Renew { candidate: usize },
    /// F is back in the lease: its held pre-vote goes to C at the next step.
    Race { candidate: usize },
    /// Waiting for F to take C's term from the refusal.
    AwaitTerm { candidate: usize, term: Term },
    /// F is at C's term: C's held vote request goes to F at the next step.
    Vote { candidate: usize },
    /// The race is run; the episode ends at the next step.
    Hold,
}

pub(in crate::world) struct LeaseVote {
    leader: usize,
    term: Term,
    follower: usize,
    minority: Vec<usize>,
    /// F's newest pre-vote to each minority node.
    held_prevotes: Vec<(usize, Message)>,
    /// Each minority node's newest vote request to F.
    held_votes: Vec<(usize, Message)>,
    phase: Phase,
}

impl World {
    pub(super) fn lease_vote_start(&mut self) -> Option<LeaseVote> {
        if !self.cfg.check_quorum {
            return None; // no leases without check-quorum
        }
        let leader = self.leader_index()?;
        let now = self.nodes[leader].clock.monotonic(self.now);
        let raft = self.directed_raft(leader)?;
        if !raft.lease_valid(now) {
            return None; // right after a lease renewal only
        }
        let term = raft.term();
        let others = self.directed_other_voters(leader);
        if others.len() < 2 {
            return None;
        }
        let follower = self.directed_sample(&others, 1)[0];
        let rest: Vec<usize> = others.iter().copied().filter(|&o| o != follower).collect();
        let minority = self.directed_sample(&rest, (others.len() / 2).max(1));
        self.directed_isolate(leader, &minority);
        self.directed_cut(leader, follower);
        self.directed_steer(leader, std::time::Duration::from_millis(3_000), true);
        self.directed_route_split(leader, minority[0], std::time::Duration::from_millis(3_000));
        let deadline = self.directed_ms(2_000, 3_000);
        self.directed_step_in(deadline);
        Some(LeaseVote {
            leader,
            term,
            follower,
            minority,
            held_prevotes: Vec::new(),
            held_votes: Vec::new(),
            phase: Phase::Court,
        })
    }

    pub(super) fn lease_vote_on_send(
        &mut self,
        e: &mut LeaseVote,
        n: usize,
        msg: &Message,
    ) -> bool {
        if !matches!(
            e.phase,
            Phase::Court
                | Phase::Regain { .. }
                | Phase::Renew { .. }
                | Phase::Race { .. }
                | Phase::AwaitTerm { .. }
        ) {
            return false;
        }
        let to = (msg.to - 1) as usize;
        let held = match msg.body {
            MessageBody::PreVote { .. } if n == e.follower && e.minority.contains(&to) => {
                keep_newest(&mut e.held_prevotes, to, msg);
                true
            }
            MessageBody::Vote {
                transfer: false, ..
            } if to == e.follower && e.minority.contains(&n) => {
                keep_newest(&mut e.held_votes, n, msg);
                true
            }
            _ => false,
        };
        if held
            && matches!(e.phase, Phase::Court)
            && let Some(c) = self.lease_vote_ready(e)
        {
            // C courts F in a term F has not reached: F hears the leader again.
            e.phase = Phase::Regain { candidate: c };
            self.directed_uncut(e.leader, e.follower);
        }
        held
    }

    /// A minority candidate whose vote request to F (at its current term) and F's pre-vote to it
    /// are both held.
    fn lease_vote_ready(&self, e: &LeaseVote) -> Option<usize> {
        e.minority.iter().copied().find(|&c| {
            let Some(raft) = self.directed_raft(c) else {
                return false;
            };
            raft.role() == Role::Candidate
                && raft.term() > e.term
                && e.held_prevotes.iter().any(|(to, _)| *to == c)
                && e.held_votes
                    .iter()
                    .any(|(from, m)| *from == c && m.term == raft.term())
        })
    }

    pub(super) fn lease_vote_after_step(&mut self, e: &mut LeaseVote, n: usize) {
        if let Phase::Renew { candidate } = e.phase
            && n == e.leader
        {
            let now = self.nodes[n].clock.monotonic(self.now);
            if self
                .directed_raft(n)
                .is_some_and(|r| r.role() == Role::Leader && r.lease_valid(now))
            {
                e.phase = Phase::Race { candidate };
                self.directed_step_in(0);
            }
        }
        if n != e.follower {
            return;
        }
        let Some(raft) = self.directed_raft(n) else {
            return;
        };
        let (term, leader, vote) = (raft.term(), raft.leader(), raft.vote());
        match e.phase {
            Phase::Regain { candidate }
                if term == e.term && leader == Some(self.nodes[e.leader].id) =>
            {
                e.phase = Phase::Renew { candidate };
            }
            Phase::AwaitTerm { candidate, term: t } if term == t && vote.is_none() => {
                e.phase = Phase::Vote { candidate };
                self.directed_step_in(0);
            }
            _ => {}
        }
    }

    pub(super) fn lease_vote_step(&mut self, mut e: LeaseVote) -> Option<LeaseVote> {
        match e.phase {
            Phase::Court | Phase::Regain { .. } | Phase::Renew { .. } | Phase::Hold => None, // deadline, or the end
            Phase::Race { candidate } => {
                let term = self
                    .directed_raft(candidate)
                    .filter(|r| r.role() == Role::Candidate)
                    .map(|r| r.term())?;
                let i = e
                    .held_prevotes
                    .iter()
                    .position(|(to, _)| *to == candidate)?;
                let (_, prevote) = e.held_prevotes.swap_remove(i);
                // From now on the old leader hears nobody (it would learn the new term), which
                // leaves it the lease it just renewed.
                for other in 0..self.nodes.len() {
                    self.directed_cut(other, e.leader);
                }
                e.phase = Phase::AwaitTerm { candidate, term };
                let deadline = self.directed_ms(150, 250);
                self.directed_step_in(deadline);
                // Stepped while the episode is out of its slot: C's refusal leaves unwatched.
                self.directed_deliver(candidate, prevote, false);
                Some(e)
            }
            Phase::AwaitTerm { .. } => None, // F never took the term
            Phase::Vote { candidate } => {
                let i = e
                    .held_votes
                    .iter()
                    .position(|(from, _)| *from == candidate)?;
                let (_, vote) = e.held_votes.swap_remove(i);
                self.stats.lease_vote_races += 1;
                self.directed_route_split(
                    e.leader,
                    candidate,
                    std::time::Duration::from_millis(1_000),
                );
                e.phase = Phase::Hold;
                let hold = self.directed_ms(500, 1_500);
                self.directed_step_in(hold);
                self.directed_deliver(e.follower, vote, false);
                Some(e)
            }
        }
    }
}

/// Keeps `msg` as the newest held message of `key`.
fn keep_newest(held: &mut Vec<(usize, Message)>, key: usize, msg: &Message) {
    match held.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = msg.clone(),
        None => held.push((key, msg.clone())),
    }
}
