//! The simulator's side of client sessions: how each node's key-value store is built (session
//! capacity, injected session bugs) and what the session tables did, read back at the end of a run.

use super::World;
use crate::kv::KvStore;
use vecraft_core::raft::SessionConfig;

/// Responses kept per session. The simulated clients keep one command outstanding, so one would
/// do; a little slack keeps the bound from masking a client bug that pipelines by accident.
const RESPONSES_PER_SESSION: usize = 4;

impl World {
    /// A fresh state machine for a booting node. Every replica gets the same session bounds: they
    /// decide evictions, which must agree across replicas.
    pub(super) fn kv_store(&self) -> KvStore {
        let config = SessionConfig { capacity: self.cfg.session_capacity, max_responses_per_session: RESPONSES_PER_SESSION };
        KvStore::with_sessions(config, self.cfg.bugs)
    }

    /// Copies the session tables' counters into the run statistics and checks their bound.
    ///
    /// The counters are functions of the applied log, so the most advanced running replica (the
    /// one that applied the longest prefix; nodes replay the whole log at boot) holds the counts
    /// of the committed log. A table above its capacity is a violation: capacity is what keeps
    /// sessions from growing without bound in long runs.
    pub(super) fn collect_session_stats(&mut self) {
        let mut best: Option<(u64, vecraft_core::raft::SessionCounters)> = None;
        for n in &self.nodes {
            let Some(r) = n.raft.as_ref() else { continue };
            let sessions = r.state_machine().sessions();
            if sessions.len() > sessions.config().capacity {
                self.violations.push(format!(
                    "node {} keeps {} client sessions, above the capacity {}",
                    n.id,
                    sessions.len(),
                    sessions.config().capacity
                ));
            }
            let applied = r.applied_index();
            if best.is_none_or(|(a, _)| applied > a) {
                best = Some((applied, sessions.counters()));
            }
        }
        if let Some((_, c)) = best {
            self.stats.sessions_registered = c.registered;
            self.stats.session_duplicates = c.duplicates;
            self.stats.session_late_copies = c.already_acknowledged;
            self.stats.sessions_evicted = c.evicted;
        }
    }
}
