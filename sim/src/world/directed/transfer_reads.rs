//! Reads during a leadership transfer: the leader is asked to hand over to another voter; a few
//! milliseconds after its `TimeoutNow` leaves, every link *into* the old leader is cut (its own
//! sends, to the new leader included, still go through) while clients keep reading from it in
//! lease mode. The target campaigns with the transfer flag, voters disregard the old lease, and
//! the new leader commits writes the old one cannot hear about.
//!
//! What it attacks: a leader that sent `TimeoutNow` may be deposed at any moment without hearing
//! of it, so no lease of its term may be served afterwards (acknowledgements still in flight
//! would otherwise renew it). With the rule in place its reads need a quorum round, which the cut
//! stops, and time out.

use super::World;
use vecraft_core::raft::{Message, MessageBody, RaftInput};

enum Phase {
    /// The transfer is asked for at the next step.
    Ask { to: vecraft_core::contract::NodeId },
    /// The transfer was asked for; waiting for `TimeoutNow` to leave, until the deadline.
    AwaitTimeoutNow { deadline: u64 },
    /// `TimeoutNow` left: the inbound cut comes at the next step.
    Window,
    /// The old leader is deaf; the episode ends at the next step.
    Deaf,
}

pub(in crate::world) struct TransferReads {
    leader: usize,
    phase: Phase,
}

impl World {
    pub(super) fn transfer_reads_start(&mut self) -> Option<TransferReads> {
        let leader = self.leader_index()?;
        let others = self.directed_other_voters(leader);
        if others.is_empty() {
            return None;
        }
        let target = self.directed_sample(&others, 1)[0];
        let to = self.nodes[target].id;
        self.directed_step_in(0);
        Some(TransferReads {
            leader,
            phase: Phase::Ask { to },
        })
    }

    /// `TimeoutNow` left the old leader: clients read from it in lease mode, and its inbound
    /// links are cut a moment later (acknowledgements already in flight may still arrive).
    fn transfer_reads_window(&mut self, e: &mut TransferReads) {
        e.phase = Phase::Window;
        self.directed_steer(e.leader, std::time::Duration::from_millis(1_200), true);
        let delay = self.directed_ms(0, 30);
        self.directed_step_in(delay);
    }

    pub(super) fn transfer_reads_on_send(
        &mut self,
        e: &mut TransferReads,
        n: usize,
        msg: &Message,
    ) {
        if n == e.leader
            && matches!(e.phase, Phase::AwaitTimeoutNow { .. })
            && matches!(msg.body, MessageBody::TimeoutNow)
        {
            self.transfer_reads_window(e);
        }
    }

    pub(super) fn transfer_reads_step(&mut self, mut e: TransferReads) -> Option<TransferReads> {
        match e.phase {
            Phase::Ask { to } => {
                if !self.directed_leads(e.leader) {
                    return None;
                }
                // A caught-up target gets `TimeoutNow` in this very step (the episode is out of
                // its slot while stepping, so the send is seen by the counter, not the hook).
                let sent = self.stats.timeout_nows;
                self.deliver(e.leader, RaftInput::TransferLeadership { to });
                if self.stats.timeout_nows > sent {
                    self.transfer_reads_window(&mut e);
                } else {
                    let deadline = self.now + self.directed_ms(600, 900);
                    e.phase = Phase::AwaitTimeoutNow { deadline };
                    self.directed_step_in(deadline - self.now);
                }
                Some(e)
            }
            Phase::AwaitTimeoutNow { deadline } => {
                debug_assert!(
                    self.now >= deadline,
                    "the only step scheduled while waiting is the deadline"
                );
                None
            }
            Phase::Window => {
                for other in 0..self.nodes.len() {
                    self.directed_cut(other, e.leader);
                }
                self.stats.transfer_read_windows += 1;
                e.phase = Phase::Deaf;
                let deaf = self.directed_ms(300, 1_200);
                self.directed_step_in(deaf);
                Some(e)
            }
            Phase::Deaf => None,
        }
    }
}
