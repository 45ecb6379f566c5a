//! The simulated network between nodes: per-packet delay, loss, duplication, very long delays and
//! replays of old packets, plus the link state the nemesis changes (partition cuts, degraded
//! one-way links, flapping links).
//!
//! The network is generic over the packet type so that it knows nothing about Raft: the host hands
//! it a packet and gets back when (if ever) each copy arrives. Replays follow TigerBeetle's packet
//! simulator: every link keeps a small ring of packets it carried (a random sample of its
//! history, not only the latest), and now and then re-delivers a copy of one of them much later, so a protocol meets messages from old terms, old rounds and
//! previous incarnations of its peers, which is what a retransmitting TCP proxy, a slow switch
//! queue or a reconnecting client library does in production.

use crate::config::SimConfig;
use crate::world::stats::RunStats;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Packets remembered per directed link for replays (bounded: replays reach into the recent past
/// of the run, not its whole history, and memory stays flat).
const REPLAY_RING: usize = 16;
/// Probability that a full ring keeps a new packet (so a slot survives about `REPLAY_RING /
/// RING_KEEP` packets on average, with a long tail of much older ones).
const RING_KEEP: f64 = 0.1;

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// How one degraded direction of a link misbehaves (the other direction stays healthy: an
/// asymmetric fault, as a bad NIC queue or a one-sided routing problem gives).
#[derive(Clone, Copy, Debug)]
struct Degraded {
    /// Extra loss probability in this direction.
    loss: f64,
    /// Extra delay added to every packet in this direction.
    extra_delay: u64,
}

/// The network's rates for one run, copied from the configuration.
#[derive(Clone, Debug)]
struct Rates {
    min_delay: u64,
    max_delay: u64,
    loss: f64,
    duplication: f64,
    long_delay: f64,
    long_delay_max: u64,
    replay: f64,
}

/// Links between `n` nodes and the packets in flight on them.
pub struct Network<M> {
    n: usize,
    rates: Rates,
    /// Directed cuts made by partitions.
    blocked: BTreeSet<(usize, usize)>,
    /// Directed links of a flapping pair that are down at this instant.
    flap_down: BTreeSet<(usize, usize)>,
    /// Degraded directions.
    degraded: BTreeMap<(usize, usize), Degraded>,
    /// Recently carried packets per directed link (`from * n + to`), for replays.
    rings: Vec<VecDeque<M>>,
}

impl<M: Clone> Network<M> {
    /// A healthy network of `n` nodes with the rates of `cfg`.
    pub fn new(cfg: &SimConfig) -> Network<M> {
        let n = cfg.nodes;
        let rates = Rates {
            min_delay: nanos(cfg.min_delay),
            max_delay: nanos(cfg.max_delay),
            loss: cfg.loss,
            duplication: cfg.duplication,
            long_delay: cfg.long_delay,
            long_delay_max: nanos(cfg.long_delay_max),
            replay: cfg.replay,
        };
        let rings = if cfg.replay > 0.0 { (0..n * n).map(|_| VecDeque::new()).collect() } else { Vec::new() };
        Network { n, rates, blocked: BTreeSet::new(), flap_down: BTreeSet::new(), degraded: BTreeMap::new(), rings }
    }

    /// An ordinary one-way delay.
    pub fn delay(&self, rng: &mut ChaCha8Rng) -> u64 {
        rng.random_range(self.rates.min_delay..=self.rates.max_delay)
    }

    /// Whether a packet from `from` to `to` is cut at this instant (checked at delivery, so a
    /// partition that starts while a packet is in flight drops it).
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        self.blocked.contains(&(from, to)) || self.flap_down.contains(&(from, to))
    }

    /// Sends `packet` from `from` to `to` through every network fault and pushes each copy that
    /// will arrive, with its arrival time, onto `arrivals`. (Without faults, in the liveness
    /// phase, a packet simply arrives after [`Network::delay`].)
    pub fn send(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: u64,
        (from, to): (usize, usize),
        packet: M,
        stats: &mut RunStats,
        arrivals: &mut Vec<(u64, M)>,
    ) {
        if !self.rings.is_empty() && rng.random_bool(self.rates.replay) {
            let ring = &self.rings[from * self.n + to];
            if !ring.is_empty() {
                let old = ring[rng.random_range(0..ring.len())].clone();
                stats.replays += 1;
                arrivals.push((now + self.delay(rng), old));
            }
        }
        if !self.rings.is_empty() {
            // A full ring keeps a packet only now and then, in a random slot: the ring then holds
            // packets of every age (some from terms, leaders and incarnations long gone, which is
            // what replays are for), and most packets are never copied at all, which keeps the
            // simulator fast.
            let ring = &mut self.rings[from * self.n + to];
            if ring.len() < REPLAY_RING {
                ring.push_back(packet.clone());
            } else if rng.random_bool(RING_KEEP) {
                ring[rng.random_range(0..REPLAY_RING)] = packet.clone();
            }
        }
        let degraded = self.degraded.get(&(from, to)).copied();
        let loss = self.rates.loss + degraded.map_or(0.0, |d| d.loss);
        if loss > 0.0 && rng.random_bool(loss.min(1.0)) {
            stats.dropped += 1;
            return;
        }
        let copies = if self.rates.duplication > 0.0 && rng.random_bool(self.rates.duplication) { 2 } else { 1 };
        stats.duplicated += copies - 1;
        for _ in 0..copies {
            let mut at = now + self.delay(rng) + degraded.map_or(0, |d| d.extra_delay);
            if self.rates.long_delay > 0.0 && rng.random_bool(self.rates.long_delay) {
                // Longer than any election timeout: the packet arrives in another term.
                at += rng.random_range(nanos(Duration::from_millis(1_000))..=self.rates.long_delay_max);
                stats.long_delays += 1;
            }
            arrivals.push((at, packet.clone()));
        }
    }

    /// Whether any partition cut is in place.
    pub fn partitioned(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Removes every partition cut.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Cuts the direction `from → to`.
    pub fn cut(&mut self, from: usize, to: usize) {
        self.blocked.insert((from, to));
    }

    /// Removes the cut of the direction `from → to` (a directed episode undoing its own cut).
    pub fn uncut(&mut self, from: usize, to: usize) {
        self.blocked.remove(&(from, to));
    }

    /// Degrades one direction of a link: extra loss and a slower queue, the reverse untouched.
    pub fn degrade(&mut self, rng: &mut ChaCha8Rng, from: usize, to: usize) {
        let d = Degraded {
            loss: rng.random_range(0.2..0.9),
            extra_delay: rng.random_range(nanos(Duration::from_millis(20))..=nanos(Duration::from_millis(400))),
        };
        self.degraded.insert((from, to), d);
    }

    /// Restores one randomly chosen degraded direction, if any; whether one was restored.
    pub fn restore_one(&mut self, rng: &mut ChaCha8Rng) -> bool {
        if self.degraded.is_empty() {
            return false;
        }
        let k = rng.random_range(0..self.degraded.len());
        let key = *self.degraded.keys().nth(k).expect("k < len");
        self.degraded.remove(&key);
        true
    }

    /// Flips the link between `a` and `b` (both directions) up or down; returns whether it is now
    /// down.
    pub fn toggle_flap(&mut self, a: usize, b: usize) -> bool {
        if self.flap_down.remove(&(a, b)) {
            self.flap_down.remove(&(b, a));
            false
        } else {
            self.flap_down.insert((a, b));
            self.flap_down.insert((b, a));
            true
        }
    }

    /// Ends every link fault (the liveness phase starts with a healthy network).
    pub fn calm(&mut self) {
        self.blocked.clear();
        self.flap_down.clear();
        self.degraded.clear();
    }

    /// [`Network::calm`], and no more loss or long delays from now on (packets already delayed
    /// still arrive): every packet sent arrives within the normal delay, so a stability check
    /// may judge by it. Duplicates and replays of old packets go on: they carry nothing new,
    /// and a protocol must not let them disturb it.
    pub fn quiet(&mut self) {
        self.calm();
        self.rates.loss = 0.0;
        self.rates.long_delay = 0.0;
    }
}
