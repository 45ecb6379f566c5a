//! Raft's figure 8, driven off the leaders the world observes. Leader A (term t) and a few
//! partners, a minority, are cut off from the rest, and clients keep writing to A, so A's newest
//! entries reach only the minority. The rest elect B (a later term), which is cut off from
//! everyone the moment it wins (its first entry stays on its own disk) and crashed. A's side
//! rejoins the rest (B and A's partners stay out) and a leader X of a later term, holding A's
//! entries, replicates them; X is crashed right after its commit index first moves. Then B
//! rejoins, its last entry's term newer than that of every node X did not reach with an entry of
//! its own term. (X stays cut off until the episode ends.)
//!
//! What it attacks: a leader may count replicas only for entries of its own term (§5.4.2). With
//! the rule in place X's first commit carries its own entry to a majority, so B cannot win; if X
//! committed A's entries by counting, B wins and overwrites them, which the Raft invariants see
//! (a leader without a committed entry, a committed entry replaced).

use super::World;
use vecraft_core::raft::{Role, Term};

enum Phase {
    /// A's side is cut off; waiting for the rest to elect B, until the deadline.
    Isolated,
    /// B is cut off; it is crashed at the next step.
    CrashNewLeader { b: usize },
    /// A's side rejoins the rest; waiting for a leader X of a term after B's.
    Rejoined { b: usize, b_term: Term },
    /// X leads: it is crashed at its first commit.
    Replicating { b: usize, x: usize, commit: u64 },
    /// X's commit moved: it is crashed at the next step and B rejoins.
    CrashReplicator { b: usize, x: usize },
    /// The end comes at the next step.
    Aftermath,
}

pub(in crate::world) struct Figure8 {
    a: usize,
    term: Term,
    partners: Vec<usize>,
    rest: Vec<usize>,
    phase: Phase,
}

impl World {
    pub(super) fn figure8_start(&mut self) -> Option<Figure8> {
        let a = self.leader_index()?;
        let term = self.directed_raft(a)?.term();
        let others = self.directed_other_voters(a);
        if others.len() < 2 {
            return None;
        }
        let minority = others.len() / 2; // of the voters, A included
        let partners = self.directed_sample(&others, minority.saturating_sub(1));
        let rest: Vec<usize> = others
            .iter()
            .copied()
            .filter(|o| !partners.contains(o))
            .collect();
        for &side in std::iter::once(&a).chain(&partners) {
            self.directed_isolate(side, &rest);
        }
        self.directed_steer(a, std::time::Duration::ZERO, false);
        let deadline = self.directed_ms(2_500, 3_500);
        self.directed_step_in(deadline);
        Some(Figure8 {
            a,
            term,
            partners,
            rest,
            phase: Phase::Isolated,
        })
    }

    pub(super) fn figure8_after_step(
        &mut self,
        mut e: Figure8,
        n: usize,
        became_leader: bool,
    ) -> Option<Figure8> {
        let Some(raft) = self.directed_raft(n) else {
            return Some(e);
        };
        let (role, term, commit) = (raft.role(), raft.term(), raft.commit_index());
        match e.phase {
            Phase::Isolated if became_leader && term > e.term && e.rest.contains(&n) => {
                // Cut off before its first entry leaves (this step's sends are dropped on arrival).
                let all: Vec<usize> = (0..self.nodes.len()).collect();
                self.directed_isolate(n, &all);
                e.phase = Phase::CrashNewLeader { b: n };
                let durable = self.directed_ms(30, 80);
                self.directed_step_in(durable);
            }
            Phase::Rejoined { b, b_term } if became_leader && n != b && term > b_term => {
                e.phase = Phase::Replicating { b, x: n, commit };
                let deadline = self.directed_ms(2_000, 3_000);
                self.directed_step_in(deadline);
            }
            Phase::Replicating {
                b,
                x,
                commit: at_win,
            } if n == x && (role != Role::Leader || commit > at_win) => {
                if role != Role::Leader {
                    return None;
                }
                // Crashed right after this step's outputs leave (never inside a step).
                e.phase = Phase::CrashReplicator { b, x };
                self.directed_step_in(0);
            }
            _ => {}
        }
        Some(e)
    }

    pub(super) fn figure8_step(&mut self, mut e: Figure8) -> Option<Figure8> {
        match e.phase {
            Phase::Isolated
            | Phase::Rejoined { .. }
            | Phase::Replicating { .. }
            | Phase::Aftermath => None,
            Phase::CrashNewLeader { b } => {
                let b_term = self.directed_raft(b).map_or(e.term + 1, |r| r.term());
                if self.nodes[b].is_up() {
                    self.crash(b);
                    self.check_durability();
                }
                for &r in e.rest.iter().filter(|&&r| r != b) {
                    self.directed_uncut(e.a, r);
                    self.directed_uncut(r, e.a);
                }
                e.phase = Phase::Rejoined { b, b_term };
                let deadline = self.directed_ms(3_000, 4_000);
                self.directed_step_in(deadline);
                Some(e)
            }
            Phase::CrashReplicator { b, x } => {
                if self.nodes[x].is_up() {
                    self.crash(x);
                    self.check_durability();
                }
                self.stats.figure8_crashes += 1;
                for other in (0..self.nodes.len()).filter(|o| !e.partners.contains(o)) {
                    self.directed_uncut(b, other);
                    self.directed_uncut(other, b);
                }
                // X stays out until the episode ends, as the paper's S1 does (a quick restart
                // would simply win again and finish the replication).
                let all: Vec<usize> = (0..self.nodes.len()).collect();
                self.directed_isolate(x, &all);
                e.phase = Phase::Aftermath;
                let aftermath = self.directed_ms(2_000, 3_000);
                self.directed_step_in(aftermath);
                Some(e)
            }
        }
    }
}
