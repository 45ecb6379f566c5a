//! Late packets across a restart: a leader's heartbeats and appends are captured for a while (as
//! a slow queue or a retransmitting proxy would keep copies), the leader is crashed and restarts,
//! and once that node leads again the captured packets of its previous incarnation reach their
//! followers. Their replies are held much longer and reach the new incarnation one by one while it
//! is cut off from the group, which meanwhile elects another leader and writes.
//!
//! What it attacks: an answer to a previous incarnation's heartbeat must confirm nothing for the
//! new one (its heartbeat rounds restarted from zero, so an old round number can look current).
//! With the rule in place the restarted leader's reads wait and time out; without it, a read at
//! the cut-off node is confirmed, or its lease extended, by a reply from the past.

use super::World;
use vecraft_core::raft::{Message, MessageBody, RaftInput};

/// Packets kept per follower (the newest; a heartbeat every 50 ms makes this the last ~0.8 s).
const PER_FOLLOWER: usize = 16;

enum Phase {
    /// Copying the leader's appends.
    Capture,
    /// The leader was crashed; waiting for it to lead again, until the deadline.
    AwaitLead { deadline: u64 },
    /// It leads again: the captured packets go out at the next step.
    Replay,
    /// Replies are being released; the episode ends at the next step.
    Release,
}

pub(in crate::world) struct LatePacket {
    leader: usize,
    incarnation: u64,
    phase: Phase,
    captured: Vec<Message>,
    /// When the next held reply is released.
    release_at: u64,
}

impl World {
    pub(super) fn late_packet_start(&mut self) -> Option<LatePacket> {
        let leader = self.leader_index()?;
        let incarnation = self.nodes[leader].incarnation;
        let capture = self.directed_ms(400, 1_500);
        self.directed_step_in(capture);
        Some(LatePacket {
            leader,
            incarnation,
            phase: Phase::Capture,
            captured: Vec::new(),
            release_at: 0,
        })
    }

    pub(super) fn late_packet_on_send(&mut self, e: &mut LatePacket, n: usize, msg: &Message) {
        if !matches!(e.phase, Phase::Capture)
            || n != e.leader
            || self.nodes[n].incarnation != e.incarnation
        {
            return;
        }
        if !matches!(msg.body, MessageBody::Append { .. }) {
            return;
        }
        let same: Vec<usize> = e
            .captured
            .iter()
            .enumerate()
            .filter(|(_, m)| m.to == msg.to)
            .map(|(i, _)| i)
            .collect();
        if same.len() >= PER_FOLLOWER {
            e.captured.remove(same[0]);
        }
        e.captured.push(msg.clone());
    }

    pub(super) fn late_packet_after_step(
        &mut self,
        e: &mut LatePacket,
        n: usize,
        became_leader: bool,
    ) {
        if matches!(e.phase, Phase::AwaitLead { .. })
            && n == e.leader
            && became_leader
            && self.nodes[n].incarnation != e.incarnation
        {
            e.phase = Phase::Replay;
            let settle = self.directed_ms(20, 150);
            self.directed_step_in(settle);
        }
    }

    pub(super) fn late_packet_step(&mut self, mut e: LatePacket) -> Option<LatePacket> {
        match e.phase {
            Phase::Capture => {
                let alive = self.nodes[e.leader].incarnation == e.incarnation
                    && self.directed_leads(e.leader);
                if !alive || e.captured.is_empty() {
                    return None;
                }
                self.crash(e.leader);
                self.check_durability();
                let deadline = self.now + self.directed_ms(6_000, 8_000);
                e.phase = Phase::AwaitLead { deadline };
                let poll = self.directed_ms(200, 400);
                self.directed_step_in(poll);
                Some(e)
            }
            Phase::AwaitLead { deadline } => {
                if self.now >= deadline {
                    return None;
                }
                // Let it win again: once it is back, ask whoever leads to hand over to it (the
                // transfer is abandoned if it cannot catch up, and asked again at the next poll).
                if self.nodes[e.leader].is_up()
                    && let Some(l) = self.leader_index()
                    && l != e.leader
                {
                    let to = self.nodes[e.leader].id;
                    self.deliver(l, RaftInput::TransferLeadership { to });
                }
                let poll = self.directed_ms(200, 400);
                self.directed_step_in(poll);
                Some(e)
            }
            Phase::Replay => {
                if !self.directed_leads(e.leader) {
                    return None;
                }
                self.stats.late_packets_replayed += e.captured.len() as u64;
                let others: Vec<usize> = (0..self.nodes.len()).filter(|&i| i != e.leader).collect();
                self.directed_isolate(e.leader, &others);
                let window = std::time::Duration::from_millis(300 + 120 * e.captured.len() as u64);
                self.directed_steer(e.leader, window, true);
                e.release_at = self.now + self.directed_ms(200, 400);
                // Round-robin over the followers, oldest first, so replies of several followers
                // interleave (a quorum of stale replies is what would fool the leader).
                let mut order: Vec<(usize, Message)> = Vec::new();
                let mut rank = std::collections::BTreeMap::new();
                for m in std::mem::take(&mut e.captured) {
                    let r = rank.entry(m.to).or_insert(0usize);
                    order.push((*r, m));
                    *r += 1;
                }
                order.sort_by_key(|(r, m)| (*r, m.to));
                for (k, (_, m)) in order.into_iter().enumerate() {
                    let to = (m.to - 1) as usize;
                    if to < self.nodes.len() {
                        let at = self.now + 1 + k as u64;
                        self.schedule(
                            at,
                            super::Event::DirectedDeliver {
                                to,
                                msg: m,
                                hold_replies: true,
                            },
                        );
                    }
                }
                e.phase = Phase::Release;
                let end = nanos_of(window) + self.directed_ms(500, 1_000);
                self.directed_step_in(end);
                Some(e)
            }
            Phase::Release => None,
        }
    }

    /// A reply to a late packet, from a follower to `to` (the restarted leader): held back and
    /// released later, each a little after the previous one. True (it does not leave now).
    pub(super) fn late_packet_hold_reply(&mut self, to: usize, msg: &Message) -> bool {
        if !matches!(msg.body, MessageBody::AppendResponse { .. }) {
            return false;
        }
        let gap = self.directed.rng_gap();
        let Some(super::Episode::LatePacket(e)) = self.directed.episode.as_mut() else {
            return false;
        };
        e.release_at += gap;
        let at = e.release_at;
        self.stats.late_replies_held += 1;
        self.schedule(
            at,
            super::Event::DirectedDeliver {
                to,
                msg: msg.clone(),
                hold_replies: false,
            },
        );
        true
    }
}

fn nanos_of(d: std::time::Duration) -> u64 {
    d.as_nanos() as u64
}

impl super::DirectedState {
    /// The gap between two released replies: 40-120 ms, so a few replies of different followers
    /// land within every check-quorum period.
    fn rng_gap(&mut self) -> u64 {
        use rand::RngExt;
        self.rng.random_range(40_000_000..=120_000_000)
    }
}
