//! The end-of-run and after-crash checks the world runs (the per-step Raft invariants live in
//! [`crate::invariants`]): durability of committed entries, liveness after the faults stop.

use super::World;
use super::stats::RunReport;
use std::time::Duration;

/// After faults stop, a leader must exist within this long.
const ELECTION_BOUND: Duration = Duration::from_millis(5_000);

impl World {
    /// Every committed entry must be durable on a quorum of disks. A disk into which the nemesis
    /// injected a data-losing fault does not count toward that quorum: what it lost is counted
    /// as a storage loss, and only a loss the healthy disks cannot explain is a violation.
    pub(super) fn check_durability(&mut self) {
        let mut disks = Vec::new();
        for n in &self.nodes {
            match n.disk.durable_state() {
                Ok(d) => disks.push((n.id, d, n.disk.damaged)),
                Err(e) => self.violations.push(format!("node {} disk unreadable: {e}", n.id)),
            }
        }
        // Entries were committed by quorums of whatever configuration was in force: judge them
        // against every configuration the group has had, not against a fixed node count.
        let lost = self.checker.check_durability_in_configs(&disks);
        self.stats.storage_lost_entries = self.stats.storage_lost_entries.max(lost);
    }

    pub(super) fn finish(mut self) -> RunReport {
        self.stats.virtual_ms = self.now / 1_000_000;
        self.collect_session_stats();
        if self.violations.is_empty() && self.checker.violations().is_empty() {
            self.check_log_matching();
            self.check_durability();
            self.check_liveness();
        }
        let mut violations = self.checker.violations().to_vec();
        violations.append(&mut self.violations);
        self.stats.leader_terms = self.checker.leader_terms() as u64;
        self.stats.committed = self.checker.committed_len();
        RunReport {
            config: self.cfg,
            stats: self.stats,
            violations,
            history: self.history,
            trace_hash: *self.trace.finalize().as_bytes(),
        }
    }

    /// After faults stop: one leader, all replicas converge, every client made progress.
    fn check_liveness(&mut self) {
        let Some(l) = self.leader_index() else {
            self.violations.push(format!(
                "liveness: no leader {} ms after faults stopped",
                self.cfg.liveness_phase.as_millis()
            ));
            return;
        };
        if let Err(e) = self.replicas_converged(l) {
            self.violations.push(e);
            return;
        }
        for (c, client) in self.clients.iter().enumerate() {
            if client.definite_in_liveness == 0 {
                self.violations.push(format!("liveness: client {c} completed no operation after faults stopped"));
                return;
            }
        }
        match self.stats.recovery_ms {
            Some(ms) if ms <= ELECTION_BOUND.as_millis() as u64 => {}
            other => self.violations.push(format!(
                "liveness: no leader with an own-term commit within {} ms of faults stopping (took {other:?} ms)",
                ELECTION_BOUND.as_millis()
            )),
        }
    }
}
