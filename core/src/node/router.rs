//! Which replica serves a read that any replica may serve (`eventual`, `read_your_writes`): the
//! node's router policy, configurable per node.
//!
//! Every policy skips replicas the failure detector suspects, unless all are suspected. Ties are
//! broken by node id, so the choice is deterministic given the node's history.

use crate::contract::{NodeId, Time};
use std::collections::BTreeMap;
use std::time::Duration;

/// How to pick a replica.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RouterPolicy {
    /// This node's own replica when it has one, else round-robin.
    #[default]
    LocalFirst,
    /// Each replica in turn.
    RoundRobin,
    /// The replica with the fewest of this node's requests in flight.
    LeastLoaded,
    /// The replica with the lowest observed reply latency (moving average; unmeasured replicas
    /// count as fastest so they get measured).
    LowestLatency,
}

/// The router's memory: turns, loads and latencies per node.
#[derive(Clone, Debug, Default)]
pub struct Router {
    policy: RouterPolicy,
    turn: u64,
    in_flight: BTreeMap<NodeId, u32>,
    /// Exponentially weighted moving average of reply latency, in nanoseconds.
    latency: BTreeMap<NodeId, u64>,
}

impl Router {
    /// A router with `policy`.
    pub fn new(policy: RouterPolicy) -> Self {
        Router { policy, ..Default::default() }
    }

    /// The policy.
    pub fn policy(&self) -> RouterPolicy {
        self.policy
    }

    /// Picks one of `replicas` (non-empty) for a read from node `me`.
    pub fn pick(&mut self, me: NodeId, replicas: &[NodeId], suspected: impl Fn(NodeId) -> bool) -> NodeId {
        debug_assert!(!replicas.is_empty());
        let alive: Vec<NodeId> = replicas.iter().copied().filter(|n| !suspected(*n)).collect();
        let pool = if alive.is_empty() { replicas.to_vec() } else { alive };
        let round_robin = |turn: &mut u64| {
            let n = pool[(*turn % pool.len() as u64) as usize];
            *turn += 1;
            n
        };
        match self.policy {
            RouterPolicy::LocalFirst if pool.contains(&me) => me,
            RouterPolicy::LocalFirst | RouterPolicy::RoundRobin => round_robin(&mut self.turn),
            RouterPolicy::LeastLoaded => {
                *pool.iter().min_by_key(|n| (self.in_flight.get(n).copied().unwrap_or(0), **n)).expect("non-empty")
            }
            RouterPolicy::LowestLatency => {
                *pool.iter().min_by_key(|n| (self.latency.get(n).copied().unwrap_or(0), **n)).expect("non-empty")
            }
        }
    }

    /// A request to `node` started.
    pub fn started(&mut self, node: NodeId) {
        *self.in_flight.entry(node).or_insert(0) += 1;
    }

    /// A request to `node`, started at `sent`, finished at `now` (answered or given up).
    pub fn finished(&mut self, node: NodeId, sent: Time, now: Time, answered: bool) {
        if let Some(n) = self.in_flight.get_mut(&node) {
            *n = n.saturating_sub(1);
        }
        // A request given up on counts as slow as the wait it caused.
        let took = now.saturating_since(sent).as_nanos().min(u64::MAX as u128) as u64;
        let took = if answered { took } else { took.max(Duration::from_secs(1).as_nanos() as u64) };
        let avg = self.latency.entry(node).or_insert(took);
        // avg ← avg + (took − avg) / 4
        *avg = (*avg as i128 + (took as i128 - *avg as i128) / 4) as u64;
    }

    /// Requests in flight to `node`.
    pub fn in_flight(&self, node: NodeId) -> u32 {
        self.in_flight.get(&node).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Time {
        Time::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn local_first_prefers_the_local_replica_then_rotates() {
        let mut r = Router::new(RouterPolicy::LocalFirst);
        assert_eq!(r.pick(2, &[1, 2, 3], |_| false), 2);
        let picks: Vec<_> = (0..4).map(|_| r.pick(9, &[1, 2, 3], |_| false)).collect();
        assert_eq!(picks, vec![1, 2, 3, 1]);
        // A suspected local replica is skipped.
        assert_ne!(r.pick(2, &[1, 2, 3], |n| n == 2), 2);
        // All suspected: still answers with one of them.
        assert!([1, 2].contains(&r.pick(5, &[1, 2], |_| true)));
    }

    #[test]
    fn least_loaded_and_lowest_latency_follow_what_they_observe() {
        let mut r = Router::new(RouterPolicy::LeastLoaded);
        r.started(1);
        r.started(1);
        r.started(2);
        assert_eq!(r.pick(9, &[1, 2, 3], |_| false), 3);
        r.started(3);
        r.started(3);
        assert_eq!(r.pick(9, &[1, 2, 3], |_| false), 2);
        r.finished(1, t(0), t(1), true);
        r.finished(1, t(0), t(1), true);
        assert_eq!(r.in_flight(1), 0);
        assert_eq!(r.pick(9, &[1, 2, 3], |_| false), 1);

        let mut r = Router::new(RouterPolicy::LowestLatency);
        r.finished(1, t(0), t(40), true);
        r.finished(2, t(0), t(10), true);
        r.finished(3, t(0), t(20), true);
        assert_eq!(r.pick(9, &[1, 2, 3], |_| false), 2);
        // Unmeasured replicas are tried first.
        assert_eq!(r.pick(9, &[1, 2, 3, 4], |_| false), 4);
        // A timeout makes a replica look slow.
        r.finished(2, t(0), t(0), false);
        assert_eq!(r.pick(9, &[1, 2, 3], |_| false), 3);
    }
}
