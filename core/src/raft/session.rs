//! Client sessions: exactly-once application of proposals that clients retry (Raft dissertation
//! §6.3).
//!
//! A client that times out cannot tell whether its proposal was lost or committed, so it retries,
//! and without help the state machine would apply a committed command twice (a retried increment
//! counts twice, a retried compare-and-set reports failure although it succeeded). Sessions fix
//! that *inside the replicated state machine*, where every replica sees the same log:
//!
//! * a client registers through the log ([`SessionRequest::Register`]); the session id is the log
//!   index of that entry, so every replica assigns the same id without coordination;
//! * each command carries `(session, seq)` plus the lowest sequence number whose answer the client
//!   has not yet seen ([`SessionCommand::lowest_unacked`]); the table keeps the response of every
//!   applied sequence at or above it (clients may pipeline), bounded per session, and answers a
//!   retried sequence from there instead of applying it again;
//! * a sequence below `lowest_unacked` was acknowledged and its response discarded: a late copy of
//!   it is refused, never re-applied;
//! * the table holds at most [`SessionConfig::capacity`] sessions; registering one more evicts the
//!   least recently used, by *apply index* (ties by id), never by wall clock, so every replica
//!   evicts the same session at the same log position. A command of an evicted or unknown session
//!   is refused as expired, and the client must register again rather than risk a double apply.
//!
//! Raft knows nothing of this: sessions are state-machine logic on top of `Apply`. The table is
//! generic over the response type and serde-serializable, so any state machine (the simulator's
//! key-value store, a vector shard) embeds it and its snapshot carries it.

use super::config::InjectedBugs;
use super::message::LogIndex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A session's id: the log index of the entry that registered it.
pub type SessionId = LogIndex;
/// A client's sequence number within its session (the client numbers its commands 1, 2, …).
pub type Seq = u64;

/// Bounds of a session table. Every replica must use the same values (they decide evictions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// Most sessions kept; registering one more evicts the least recently used.
    pub capacity: usize,
    /// Most responses kept per session (the client's pipelining window): a new sequence beyond it
    /// is refused unapplied until the client acknowledges older answers.
    pub max_responses_per_session: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig { capacity: 1024, max_responses_per_session: 64 }
    }
}

/// What a client puts in the log when it uses sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionRequest<C> {
    /// Open a session; its id is the index of this entry.
    Register,
    /// A command within a session.
    Command(SessionCommand<C>),
}

/// A command tagged for exactly-once application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCommand<C> {
    /// The session (from the `Register` answer).
    pub session: SessionId,
    /// This command's sequence number; a retry repeats it.
    pub seq: Seq,
    /// The lowest sequence number whose answer the client has not seen yet: answers below it may
    /// be discarded.
    pub lowest_unacked: Seq,
    /// The state machine's command.
    pub command: C,
}

/// How the table classifies `(session, seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCheck<'a, R> {
    /// Not applied yet: apply it and [`ClientSessions::record`] the response.
    New,
    /// Already applied: answer with this response, do not apply again.
    Duplicate(&'a R),
    /// Below the client's acknowledged mark: applied (or skipped) and its response discarded.
    /// Refuse; never apply again.
    AlreadyAcknowledged,
    /// The session is unknown or was evicted: the client must register again.
    Expired,
    /// New, but the session already keeps its maximum of unacknowledged responses.
    WindowFull,
}

/// The outcome of [`ClientSessions::apply`], which the state machine turns into its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionOutcome<R> {
    /// A session was opened with this id.
    Registered(SessionId),
    /// The command was applied now, with this response.
    Applied(R),
    /// The command had been applied before; this is the response it produced then.
    Duplicate(R),
    /// Refused: the sequence was acknowledged before (a late copy), not applied.
    AlreadyAcknowledged,
    /// Refused: unknown or evicted session, not applied.
    Expired,
    /// Refused: too many unacknowledged responses in the session, not applied.
    WindowFull,
}

/// Deterministic counters of what the table did (functions of the applied log, so equal on
/// replicas that applied the same prefix).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCounters {
    /// Sessions registered.
    pub registered: u64,
    /// Commands applied for the first time.
    pub applied: u64,
    /// Retried commands answered from the table.
    pub duplicates: u64,
    /// Late copies refused as already acknowledged.
    pub already_acknowledged: u64,
    /// Commands refused because their session was unknown or evicted.
    pub expired: u64,
    /// Commands refused because the session's response window was full.
    pub window_full: u64,
    /// Sessions evicted to stay within capacity.
    pub evicted: u64,
}

/// One client's session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session<R> {
    /// Apply index of the last entry that used the session (registration included): the LRU key.
    last_used: LogIndex,
    /// Highest `lowest_unacked` the client has sent: responses below it are gone.
    lowest_unacked: Seq,
    /// Responses of applied sequences at or above `lowest_unacked`.
    responses: BTreeMap<Seq, R>,
}

/// The session table of one replicated state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSessions<R> {
    config: SessionConfig,
    sessions: BTreeMap<SessionId, Session<R>>,
    counters: SessionCounters,
    /// Injected bug `session_ignored`: a retried command is applied again. Process
    /// configuration, not replicated state, so it is not serialized.
    #[serde(skip)]
    ignore_table: bool,
}

impl<R> Default for ClientSessions<R> {
    fn default() -> Self {
        Self::new(SessionConfig::default())
    }
}

impl<R> ClientSessions<R> {
    /// An empty table with the given bounds (each at least 1).
    pub fn new(config: SessionConfig) -> Self {
        let config = SessionConfig {
            capacity: config.capacity.max(1),
            max_responses_per_session: config.max_responses_per_session.max(1),
        };
        ClientSessions { config, sessions: BTreeMap::new(), counters: SessionCounters::default(), ignore_table: false }
    }

    /// Switches on the injected bugs that concern sessions (only in `bug-injection` builds).
    pub fn with_injected_bugs(mut self, bugs: InjectedBugs) -> Self {
        self.ignore_table = InjectedBugs::on(bugs.session_ignored);
        self
    }

    /// The bounds.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Number of live sessions (never above the capacity).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Whether `session` is live.
    pub fn contains(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// Number of responses kept for `session` (0 if unknown).
    pub fn responses_kept(&self, session: SessionId) -> usize {
        self.sessions.get(&session).map_or(0, |s| s.responses.len())
    }

    /// What the table did so far.
    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// Opens the session registered by the entry at `index` (its id is `index`) and, if the table
    /// then exceeds its capacity, evicts the least recently used session (smallest last-use apply
    /// index, ties by smaller id), which is returned. Registering the same index twice is a no-op
    /// (it cannot happen in apply order, but replaying must not corrupt the table).
    pub fn register(&mut self, index: LogIndex) -> (SessionId, Option<SessionId>) {
        if self.sessions.contains_key(&index) {
            return (index, None);
        }
        debug_assert!(self.sessions.values().all(|s| s.last_used < index), "registrations come in apply order");
        self.sessions.insert(index, Session { last_used: index, lowest_unacked: 0, responses: BTreeMap::new() });
        self.counters.registered += 1;
        let mut evicted = None;
        while self.sessions.len() > self.config.capacity {
            // Registering is rare, so a scan is cheaper than keeping a second index consistent.
            let lru = self.sessions.iter().map(|(&id, s)| (s.last_used, id)).min().map(|(_, id)| id);
            let Some(lru) = lru else { break };
            self.sessions.remove(&lru);
            self.counters.evicted += 1;
            evicted = Some(lru);
        }
        (index, evicted)
    }

    /// Records that the client of `session` has seen every answer below `lowest_unacked`: those
    /// responses are discarded. Never moves backwards (late copies carry older marks).
    pub fn acknowledge(&mut self, session: SessionId, lowest_unacked: Seq) {
        let Some(s) = self.sessions.get_mut(&session) else { return };
        if lowest_unacked > s.lowest_unacked {
            s.lowest_unacked = lowest_unacked;
            s.responses = s.responses.split_off(&lowest_unacked);
        }
    }

    /// Classifies `(session, seq)` without changing anything.
    pub fn check(&self, session: SessionId, seq: Seq) -> SessionCheck<'_, R> {
        let Some(s) = self.sessions.get(&session) else { return SessionCheck::Expired };
        if seq < s.lowest_unacked {
            if self.ignore_table {
                return SessionCheck::New;
            }
            return SessionCheck::AlreadyAcknowledged;
        }
        if let Some(r) = s.responses.get(&seq) {
            if self.ignore_table {
                return SessionCheck::New;
            }
            return SessionCheck::Duplicate(r);
        }
        if s.responses.len() >= self.config.max_responses_per_session {
            return SessionCheck::WindowFull;
        }
        SessionCheck::New
    }

    /// Stores the response of `(session, seq)`, applied at `index`, and marks the session used
    /// there. Ignored for an unknown session (the caller checked first) and for a sequence below
    /// the acknowledged mark (nobody can ask for it again).
    pub fn record(&mut self, session: SessionId, seq: Seq, response: R, index: LogIndex) {
        let Some(s) = self.sessions.get_mut(&session) else { return };
        s.last_used = s.last_used.max(index);
        if seq >= s.lowest_unacked {
            s.responses.insert(seq, response);
        }
    }

    /// Marks `session` used at `index` (for the LRU order) without storing anything.
    fn touch(&mut self, session: SessionId, index: LogIndex) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.last_used = s.last_used.max(index);
        }
    }
}

impl<R: Clone> ClientSessions<R> {
    /// The whole exactly-once rule for the entry at `index`: registers, or acknowledges, checks,
    /// applies `command` through `apply` only if new, and records the response. The state machine
    /// turns the outcome into its answer (a duplicate's answer is the original response).
    pub fn apply<C>(
        &mut self,
        index: LogIndex,
        request: &SessionRequest<C>,
        apply: impl FnOnce(&C) -> R,
    ) -> SessionOutcome<R> {
        let cmd = match request {
            SessionRequest::Register => return SessionOutcome::Registered(self.register(index).0),
            SessionRequest::Command(cmd) => cmd,
        };
        self.acknowledge(cmd.session, cmd.lowest_unacked);
        let outcome = match self.check(cmd.session, cmd.seq) {
            SessionCheck::Expired => {
                self.counters.expired += 1;
                return SessionOutcome::Expired;
            }
            SessionCheck::AlreadyAcknowledged => {
                self.counters.already_acknowledged += 1;
                SessionOutcome::AlreadyAcknowledged
            }
            SessionCheck::WindowFull => {
                self.counters.window_full += 1;
                SessionOutcome::WindowFull
            }
            SessionCheck::Duplicate(r) => {
                let r = r.clone();
                self.counters.duplicates += 1;
                SessionOutcome::Duplicate(r)
            }
            SessionCheck::New => {
                let response = apply(&cmd.command);
                self.counters.applied += 1;
                self.record(cmd.session, cmd.seq, response.clone(), index);
                return SessionOutcome::Applied(response);
            }
        };
        self.touch(cmd.session, index);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(capacity: usize, window: usize) -> ClientSessions<u64> {
        ClientSessions::new(SessionConfig { capacity, max_responses_per_session: window })
    }

    fn cmd(session: SessionId, seq: Seq, lowest_unacked: Seq, add: u64) -> SessionRequest<u64> {
        SessionRequest::Command(SessionCommand { session, seq, lowest_unacked, command: add })
    }

    /// Applies `req` at `index` to a counter that adds the command to `total` (not idempotent).
    fn run(t: &mut ClientSessions<u64>, total: &mut u64, index: LogIndex, req: SessionRequest<u64>) -> SessionOutcome<u64> {
        t.apply(index, &req, |add| {
            *total += add;
            *total
        })
    }

    #[test]
    fn session_id_is_the_register_index() {
        let mut t = table(4, 4);
        assert_eq!(t.apply(7, &SessionRequest::<u64>::Register, |_| 0), SessionOutcome::Registered(7));
        assert!(t.contains(7));
        assert_eq!(t.counters().registered, 1);
    }

    #[test]
    fn a_retry_is_answered_from_the_table_not_applied_twice() {
        let mut t = table(4, 4);
        let mut total = 0;
        t.register(1);
        assert_eq!(run(&mut t, &mut total, 2, cmd(1, 1, 1, 10)), SessionOutcome::Applied(10));
        assert_eq!(run(&mut t, &mut total, 3, cmd(1, 1, 1, 10)), SessionOutcome::Duplicate(10));
        assert_eq!(total, 10, "the retry did not apply again");
        assert_eq!(t.counters().duplicates, 1);
        assert_eq!(t.counters().applied, 1);
    }

    #[test]
    fn pipelined_responses_are_kept_from_the_lowest_unacked_on() {
        let mut t = table(4, 8);
        let mut total = 0;
        t.register(1);
        for seq in 1..=3 {
            assert!(matches!(run(&mut t, &mut total, 1 + seq, cmd(1, seq, 1, 1)), SessionOutcome::Applied(_)));
        }
        assert_eq!(t.responses_kept(1), 3);
        // The client has seen the answers to 1 and 2: only 3 stays, and 4 is new.
        assert_eq!(run(&mut t, &mut total, 5, cmd(1, 4, 3, 1)), SessionOutcome::Applied(4));
        assert_eq!(t.responses_kept(1), 2);
        // Exact boundary: seq 3 (= lowest unacked) is still answered, seq 2 (= lowest - 1) refused.
        assert_eq!(run(&mut t, &mut total, 6, cmd(1, 3, 3, 1)), SessionOutcome::Duplicate(3));
        assert_eq!(run(&mut t, &mut total, 7, cmd(1, 2, 1, 1)), SessionOutcome::AlreadyAcknowledged);
        assert_eq!(total, 4, "neither the duplicate nor the late copy applied");
        // A late copy's older mark does not move the mark back.
        assert_eq!(t.check(1, 2), SessionCheck::AlreadyAcknowledged);
    }

    #[test]
    fn the_response_window_is_bounded_per_session() {
        let mut t = table(4, 2);
        let mut total = 0;
        t.register(1);
        assert!(matches!(run(&mut t, &mut total, 2, cmd(1, 1, 1, 1)), SessionOutcome::Applied(1)));
        assert!(matches!(run(&mut t, &mut total, 3, cmd(1, 2, 1, 1)), SessionOutcome::Applied(2)));
        // Window 2 is full: seq 3 is refused unapplied, and its retry later is still new.
        assert_eq!(run(&mut t, &mut total, 4, cmd(1, 3, 1, 1)), SessionOutcome::WindowFull);
        assert_eq!(total, 2);
        assert_eq!(run(&mut t, &mut total, 5, cmd(1, 3, 2, 1)), SessionOutcome::Applied(3));
        assert_eq!(t.responses_kept(1), 2);
    }

    #[test]
    fn capacity_sessions_fit_and_one_more_evicts_the_least_recently_used() {
        let mut t = table(3, 4);
        let mut total = 0;
        assert_eq!(t.register(1), (1, None));
        assert_eq!(t.register(2), (2, None));
        assert_eq!(t.register(3), (3, None));
        assert_eq!(t.len(), 3, "capacity sessions fit");
        // Session 1 is used at index 4, so session 2 becomes the least recently used.
        run(&mut t, &mut total, 4, cmd(1, 1, 1, 1));
        assert_eq!(t.register(5), (5, Some(2)), "capacity + 1 evicts the LRU by apply index");
        assert_eq!(t.len(), 3);
        assert_eq!(run(&mut t, &mut total, 6, cmd(2, 1, 1, 1)), SessionOutcome::Expired);
        assert_eq!(total, 1, "an expired session's command is not applied");
        assert_eq!(t.counters().evicted, 1);
        assert_eq!(t.counters().expired, 1);
    }

    #[test]
    fn eviction_ties_break_by_smaller_id() {
        // Equal last-use indexes cannot arise from apply order, but a table built by hand or by a
        // future bulk registration must still evict deterministically.
        let mut t = table(2, 4);
        t.register(10);
        t.register(11);
        for s in t.sessions.values_mut() {
            s.last_used = 20;
        }
        assert_eq!(t.register(21), (21, Some(10)));
    }

    #[test]
    fn unknown_session_is_expired() {
        let mut t = table(2, 2);
        assert_eq!(t.check(99, 1), SessionCheck::Expired);
        let mut total = 0;
        assert_eq!(run(&mut t, &mut total, 1, cmd(99, 1, 1, 5)), SessionOutcome::Expired);
        assert_eq!(total, 0);
    }

    #[test]
    fn the_table_stays_within_capacity_however_many_register() {
        let mut t = table(8, 2);
        let mut total = 0;
        for i in 1..=10_000u64 {
            if i % 3 == 0 {
                t.register(i);
            } else {
                run(&mut t, &mut total, i, cmd(i - 1, i, i, 1));
            }
            assert!(t.len() <= 8);
            assert!(t.sessions.values().all(|s| s.responses.len() <= 2));
        }
        assert_eq!(t.len(), 8);
        assert_eq!(t.counters().evicted, 3_333 - 8);
    }

    #[test]
    fn replicas_applying_the_same_log_agree_and_the_table_round_trips() {
        let log: Vec<SessionRequest<u64>> =
            vec![SessionRequest::Register, cmd(1, 1, 1, 3), cmd(1, 1, 1, 3), SessionRequest::Register, cmd(4, 1, 0, 2)];
        let replay = || {
            let mut t = table(1, 4);
            let mut total = 0;
            let outs: Vec<_> = log.iter().enumerate().map(|(i, r)| run(&mut t, &mut total, i as u64 + 1, r.clone())).collect();
            (t, total, outs)
        };
        let (a, ta, oa) = replay();
        let (b, tb, ob) = replay();
        assert_eq!((&a, ta, &oa), (&b, tb, &ob));
        let bytes = crate::wire::encode(&a).expect("encodes");
        let back: ClientSessions<u64> = crate::wire::decode(&bytes).expect("decodes");
        assert_eq!(back, a);
    }

    #[cfg(feature = "bug-injection")]
    #[test]
    fn injected_bug_applies_a_retry_again() {
        let bugs = InjectedBugs { session_ignored: true, ..InjectedBugs::default() };
        let mut t = table(4, 4).with_injected_bugs(bugs);
        let mut total = 0;
        t.register(1);
        run(&mut t, &mut total, 2, cmd(1, 1, 1, 10));
        assert_eq!(run(&mut t, &mut total, 3, cmd(1, 1, 1, 10)), SessionOutcome::Applied(20));
        assert_eq!(total, 20);
    }
}
