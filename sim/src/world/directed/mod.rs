//! Directed faults: episodes that watch the cluster and time their faults off what the nodes do
//! (who leads, who campaigns, which message just left), in the spirit of Jepsen's targeted
//! nemeses and TigerBeetle's VOPR. Each class lives in its own file; this one holds what they
//! share: the episode life cycle, the hooks the node host calls, the cuts an episode made (undone
//! when it ends) and the steering of clients towards the node an episode is about.
//!
//! An episode only ever uses faults the world already has — cuts (one-way or both ways), crashes,
//! late deliveries of packets a node really sent, leadership-transfer requests — so with every
//! safety rule of core in place every check must still hold. Packets an episode holds back and
//! delivers late skip the cut check at delivery: they were already past the cut, in a queue of
//! the far side (a late packet is what a partition does not stop).
//!
//! The directed nemesis draws from a random stream of its own, and a world without directed
//! faults never reaches any of this code, so every other seed runs exactly as before.

mod figure8;
mod late_packet;
mod lease_vote;
mod transfer_reads;

use super::{Event, World, nanos};
use crate::directed_faults::DirectedClass;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use vecraft_core::contract::NodeId;
use vecraft_core::raft::{Message, RaftInput, ReadMode, Role};

/// The directed nemesis's state in one world.
pub(super) struct DirectedState {
    rng: ChaCha8Rng,
    episode: Option<Episode>,
    /// Bumped whenever a step is scheduled or an episode ends: only the newest step is live.
    id: u64,
    /// Directed cuts this episode made, undone when it ends.
    cuts: Vec<(usize, usize)>,
    /// Reads that reach this node use lease mode until the instant (clients that read at a node
    /// an episode is about, the mode whose guarantees are at stake).
    lease_reads_at: Option<(usize, u64)>,
    /// Until the instant, clients send reads to `.0` and writes to `.1` (a client whose routing
    /// splits: reads to the node it believes leads, writes wherever it was redirected last).
    route: Option<(usize, usize, u64)>,
    /// While a late packet is stepped at `.0`, its replies to `.1` are held back (and delivered
    /// later by the episode).
    hold_replies: Option<(usize, usize)>,
}

enum Episode {
    LatePacket(late_packet::LatePacket),
    LeaseVote(lease_vote::LeaseVote),
    TransferReads(transfer_reads::TransferReads),
    Figure8(figure8::Figure8),
}

impl DirectedState {
    pub(super) fn new(seed: u64) -> DirectedState {
        DirectedState {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xD1EC_7ED0_0000_0006),
            episode: None,
            id: 0,
            cuts: Vec::new(),
            lease_reads_at: None,
            route: None,
            hold_replies: None,
        }
    }

    /// Whether an episode is under way (the hooks cost nothing otherwise).
    #[inline]
    pub(super) fn active(&self) -> bool {
        self.episode.is_some()
    }
}

impl World {
    /// Arms the next directed episode, if the world has directed faults.
    pub(super) fn schedule_directed(&mut self) {
        if let Some(every) = self.cfg.directed.every {
            let u: f64 = self.directed.rng.random_range(f64::EPSILON..1.0);
            let at = self.now + (-(u.ln()) * every.as_nanos() as f64) as u64;
            self.schedule(at, Event::Directed);
        }
    }

    /// Starts an episode of a class drawn from those on (unless one is under way).
    pub(super) fn directed_trigger(&mut self) {
        if !self.faults_on {
            return;
        }
        if self.directed.episode.is_none() {
            let classes = self.cfg.directed.classes();
            if !classes.is_empty() {
                let class = classes[self.directed.rng.random_range(0..classes.len())];
                let episode = match class {
                    DirectedClass::LatePacket => self.late_packet_start().map(Episode::LatePacket),
                    DirectedClass::LeaseVote => self.lease_vote_start().map(Episode::LeaseVote),
                    DirectedClass::TransferReads => {
                        self.transfer_reads_start().map(Episode::TransferReads)
                    }
                    DirectedClass::Figure8 => self.figure8_start().map(Episode::Figure8),
                };
                if let Some(e) = episode {
                    self.directed.episode = Some(e);
                    self.stats.count_directed_episode(class);
                }
            }
        }
        self.schedule_directed();
    }

    /// Schedules the current episode's next step `after` from now. Only the step scheduled last
    /// counts: one scheduled earlier (a deadline, a poll) is stale once the episode moved on.
    pub(super) fn directed_step_in(&mut self, after: u64) {
        let at = self.now + after;
        self.directed.id += 1;
        let episode = self.directed.id;
        self.schedule(at, Event::DirectedStep { episode });
    }

    /// A timed step of episode `episode` (ignored if that episode is over).
    pub(super) fn directed_step(&mut self, episode: u64) {
        if !self.faults_on || episode != self.directed.id {
            return;
        }
        match self.directed.episode.take() {
            Some(Episode::LatePacket(e)) => {
                let next = self.late_packet_step(e).map(Episode::LatePacket);
                self.directed_continue(next);
            }
            Some(Episode::LeaseVote(e)) => {
                let next = self.lease_vote_step(e).map(Episode::LeaseVote);
                self.directed_continue(next);
            }
            Some(Episode::TransferReads(e)) => {
                let next = self.transfer_reads_step(e).map(Episode::TransferReads);
                self.directed_continue(next);
            }
            Some(Episode::Figure8(e)) => {
                let next = self.figure8_step(e).map(Episode::Figure8);
                self.directed_continue(next);
            }
            None => {}
        }
    }

    /// Keeps `next` as the episode, or ends the episode if there is none.
    fn directed_continue(&mut self, next: Option<Episode>) {
        match next {
            Some(e) => self.directed.episode = Some(e),
            None => self.directed_end(),
        }
    }

    /// Ends the episode: its cuts are undone and clients read as they please again.
    pub(super) fn directed_end(&mut self) {
        self.directed.episode = None;
        self.directed.id += 1;
        self.directed.lease_reads_at = None;
        self.directed.route = None;
        self.directed.hold_replies = None;
        for (a, b) in std::mem::take(&mut self.directed.cuts) {
            self.net.uncut(a, b);
        }
    }

    /// Hook: node `n` is about to send `msg`. True if the episode holds it back (it will deliver
    /// it later itself, or never).
    pub(super) fn directed_on_send(&mut self, n: usize, msg: &Message) -> bool {
        if let Some((from, to)) = self.directed.hold_replies
            && from == n
            && msg.to == self.nodes[to].id
        {
            return self.late_packet_hold_reply(to, msg);
        }
        match self.directed.episode.take() {
            Some(Episode::LatePacket(mut e)) => {
                self.late_packet_on_send(&mut e, n, msg);
                self.directed.episode = Some(Episode::LatePacket(e));
                false
            }
            Some(Episode::LeaseVote(mut e)) => {
                let held = self.lease_vote_on_send(&mut e, n, msg);
                self.directed.episode = Some(Episode::LeaseVote(e));
                held
            }
            Some(Episode::TransferReads(mut e)) => {
                self.transfer_reads_on_send(&mut e, n, msg);
                self.directed.episode = Some(Episode::TransferReads(e));
                false
            }
            other => {
                self.directed.episode = other;
                false
            }
        }
    }

    /// Hook: node `n` just stepped (before its outputs leave); `became_leader` if this step made
    /// it leader.
    pub(super) fn directed_after_step(&mut self, n: usize, became_leader: bool) {
        match self.directed.episode.take() {
            Some(Episode::LatePacket(mut e)) => {
                self.late_packet_after_step(&mut e, n, became_leader);
                self.directed.episode = Some(Episode::LatePacket(e));
            }
            Some(Episode::LeaseVote(mut e)) => {
                self.lease_vote_after_step(&mut e, n);
                self.directed.episode = Some(Episode::LeaseVote(e));
            }
            Some(Episode::Figure8(e)) => {
                let next = self
                    .figure8_after_step(e, n, became_leader)
                    .map(Episode::Figure8);
                self.directed_continue(next);
            }
            other => self.directed.episode = other,
        }
    }

    /// Delivers a packet an episode held back, past any cut; with `hold_replies`, the replies of
    /// the receiver to the packet's sender are held back in turn.
    pub(super) fn directed_deliver(&mut self, to: usize, msg: Message, hold_replies: bool) {
        if !self.faults_on {
            return;
        }
        let from = (msg.from - 1) as usize;
        if hold_replies {
            self.directed.hold_replies = Some((to, from));
        }
        self.deliver(to, RaftInput::Message(msg));
        self.directed.hold_replies = None;
    }

    /// Cuts `from → to` for the rest of the episode.
    fn directed_cut(&mut self, from: usize, to: usize) {
        if from != to && !self.net.is_cut(from, to) {
            self.net.cut(from, to);
            self.directed.cuts.push((from, to));
        }
    }

    /// Undoes this episode's cut `from → to` (if it made it).
    fn directed_uncut(&mut self, from: usize, to: usize) {
        if let Some(i) = self.directed.cuts.iter().position(|&c| c == (from, to)) {
            self.directed.cuts.swap_remove(i);
            self.net.uncut(from, to);
        }
    }

    /// Cuts node `a` off from every node in `others`, both ways.
    fn directed_isolate(&mut self, a: usize, others: &[usize]) {
        for &b in others {
            self.directed_cut(a, b);
            self.directed_cut(b, a);
        }
    }

    /// Reads reaching `node` use lease mode for `window`, and about half the clients are pointed
    /// at it (clients that still believe it leads, as a stale DNS entry or client cache makes).
    fn directed_steer(&mut self, node: usize, window: Duration, lease: bool) {
        if lease {
            self.directed.lease_reads_at = Some((node, self.now + nanos(window)));
        }
        for c in 0..self.clients.len() {
            if self.directed.rng.random_bool(0.5) {
                self.clients[c].steer(node);
            }
        }
    }

    /// Routes clients' reads to `reads` and their writes to `writes` for `window`.
    fn directed_route_split(&mut self, reads: usize, writes: usize, window: Duration) {
        self.directed.route = Some((reads, writes, self.now + nanos(window)));
    }

    /// Where a client sends a read (`read`) or a write because of an episode, if anywhere.
    pub(super) fn directed_route(&self, read: bool) -> Option<usize> {
        match self.directed.route {
            Some((reads, writes, until)) if self.now < until => {
                Some(if read { reads } else { writes })
            }
            _ => None,
        }
    }

    /// The read mode a read at `node` must use because of an episode, if any.
    pub(super) fn directed_read_mode(&self, node: usize) -> Option<ReadMode> {
        match self.directed.lease_reads_at {
            Some((n, until)) if n == node && self.now < until => Some(ReadMode::Lease),
            _ => None,
        }
    }

    /// Node `n`'s Raft node, if it is up.
    fn directed_raft(&self, n: usize) -> Option<&vecraft_core::raft::RaftNode> {
        self.nodes[n].raft.as_deref()
    }

    /// Whether node `n` is up and leads.
    fn directed_leads(&self, n: usize) -> bool {
        self.directed_raft(n)
            .is_some_and(|r| r.role() == Role::Leader)
    }

    /// The voters of node `l`'s configuration other than `l` itself, as node indexes (empty if
    /// `l` is down or the configuration is joint: the directed faults reason about one majority).
    fn directed_other_voters(&self, l: usize) -> Vec<usize> {
        let Some(raft) = self.directed_raft(l) else {
            return Vec::new();
        };
        let m = raft.membership();
        if m.is_joint() {
            return Vec::new();
        }
        let me = raft.id();
        m.voters
            .incoming
            .voters()
            .iter()
            .filter(|&&id| id != me)
            .map(|&id: &NodeId| (id - 1) as usize)
            .filter(|&i| i < self.nodes.len())
            .collect()
    }

    /// A random sample of `k` of `from`, in random order.
    fn directed_sample(&mut self, from: &[usize], k: usize) -> Vec<usize> {
        let mut pool = from.to_vec();
        let mut out = Vec::new();
        while out.len() < k && !pool.is_empty() {
            out.push(pool.swap_remove(self.directed.rng.random_range(0..pool.len())));
        }
        out
    }

    /// A delay drawn uniformly from `lo..=hi` milliseconds, in nanoseconds.
    fn directed_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.directed
            .rng
            .random_range(nanos(Duration::from_millis(lo))..=nanos(Duration::from_millis(hi)))
    }
}
