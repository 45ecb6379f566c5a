//! Persistent clients: each has one operation outstanding, follows redirects and, on a time-out
//! or an indeterminate answer, retries the *same* operation (possibly on another node) until it
//! is answered, recording everything in the history the linearizability checker judges.
//!
//! Writes and compare-and-sets go through a client session (Raft dissertation §6.3): the client
//! registers one through the log, numbers its commands, and a retry repeats the (session, seq) of
//! the original, so the state machine answers it from its session table instead of applying it
//! twice. A retried operation is one operation in the history, from its first invocation to its
//! final answer; one never answered stays open (indeterminate). Only a "session expired" answer
//! ends an operation as indeterminate: it may have been applied before its session was evicted.
//! Reads need no session (they change nothing), but are retried the same way.

use super::node_host::Answer;
use super::{Event, World, nanos};
use crate::history::{ClientId, Command, OpId, Operation, Outcome};
use crate::kv::{KvCommand, KvProposal, KvResult};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;
use vecraft_core::raft::{ClientResponse, RaftInput, RequestId, Seq, SessionCommand, SessionId, SessionRequest};

/// What one client request asks of a node.
#[derive(Clone, Debug)]
pub(super) enum ClientRequest {
    /// A linearizable read of a register (no session).
    Read {
        /// The register.
        key: crate::kv::Key,
    },
    /// A proposal for the log: a session registration or a session command.
    Propose(KvProposal),
}

/// Clients stop invoking this long before the end, so the cluster can converge.
const DRAIN: Duration = Duration::from_millis(3_000);

pub(super) struct SimClient {
    process: ClientId,
    target: usize,
    op: Option<(OpId, Operation)>,
    request: RequestId,
    last_seen: BTreeMap<u64, Option<i64>>,
    counter: i64,
    pub definite_in_liveness: u64,
    /// Fraction of this client's operations that are reads (read-heavy clients linger on a
    /// deposed leader, which is what exposes stale reads).
    read_ratio: f64,
    /// The client's session, once registered (and until it expires).
    session: Option<SessionId>,
    /// The last sequence number used in `session`.
    last_seq: Seq,
    /// The sequence number of the outstanding write, once it has been sent in a session.
    op_seq: Option<Seq>,
}

impl SimClient {
    /// Client `i` of a cluster of `nodes`, aimed at a random node.
    pub fn new(i: usize, nodes: usize, rng: &mut ChaCha8Rng) -> SimClient {
        SimClient {
            process: i as ClientId,
            target: rng.random_range(0..nodes),
            op: None,
            request: 0,
            last_seen: BTreeMap::new(),
            counter: 0,
            definite_in_liveness: 0,
            read_ratio: rng.random_range(0.3..0.95),
            session: None,
            last_seq: 0,
            op_seq: None,
        }
    }
}

impl SimClient {
    /// Points the client at node `node` (a directed episode steers clients at the node it is
    /// about; the client moves on as usual after a redirect or a time-out).
    pub(super) fn steer(&mut self, node: usize) {
        self.target = node;
    }
}

impl World {
    pub(super) fn client_next(&mut self, c: usize) {
        if self.now + nanos(DRAIN) >= self.end || self.clients[c].op.is_some() {
            return;
        }
        let key = self.rng.random_range(0..self.cfg.keys);
        let client = &mut self.clients[c];
        client.counter += 1;
        let unique = (c as i64 + 1) * 1_000_000_000 + client.counter;
        let roll: f64 = self.rng.random_range(0.0..1.0);
        let read_ratio = self.clients[c].read_ratio;
        let operation = if roll < read_ratio {
            Operation::read(key)
        } else if roll < read_ratio + (1.0 - read_ratio) * 0.7 {
            Operation::write(key, unique)
        } else {
            let guess = self.clients[c].last_seen.get(&key).copied().unwrap_or(None);
            Operation::cas(key, guess, unique)
        };
        let client = &mut self.clients[c];
        let op = match self.history.invoke(client.process, operation, self.now) {
            Ok(op) => op,
            Err(e) => {
                self.violations.push(format!("simulator bug: history rejected an invoke: {e}"));
                return;
            }
        };
        client.op = Some((op, operation));
        client.op_seq = None;
        self.stats.ops_invoked += 1;
        let at = self.now + nanos(self.cfg.client_timeout);
        self.schedule(at, Event::ClientTimeout { client: c, op });
        self.send_request(c);
    }

    /// No answer in time: the operation may be lost or applied, so the client sends it again
    /// (the same session and sequence number), to another node chosen at random, and waits again.
    pub(super) fn client_timeout(&mut self, c: usize, op: OpId) {
        if self.clients[c].op.is_some_and(|(o, _)| o == op) {
            self.clients[c].target = self.rng.random_range(0..self.nodes.len());
            self.send_request(c);
            let at = self.now + nanos(self.cfg.client_timeout);
            self.schedule(at, Event::ClientTimeout { client: c, op });
        }
    }

    pub(super) fn client_retry(&mut self, c: usize, op: OpId) {
        if self.clients[c].op.is_some_and(|(o, _)| o == op) {
            self.send_request(c);
        }
    }

    /// What the outstanding operation of client `c` asks for now: its read, the registration of
    /// a session it lacks, or its command in its session (a new sequence number the first time,
    /// the same one on every retry).
    fn next_request(&mut self, c: usize, operation: Operation) -> ClientRequest {
        let client = &mut self.clients[c];
        let command = match operation.command {
            Command::Read => return ClientRequest::Read { key: operation.key },
            Command::Write(value) => KvCommand::Put { key: operation.key, value },
            Command::Cas { expected, new } => KvCommand::Cas { key: operation.key, expected, new },
        };
        let Some(session) = client.session else { return ClientRequest::Propose(SessionRequest::Register) };
        let seq = match client.op_seq {
            Some(seq) => {
                self.stats.session_retries += 1;
                seq
            }
            None => {
                client.last_seq += 1;
                client.op_seq = Some(client.last_seq);
                client.last_seq
            }
        };
        // One command outstanding: every answer below `seq` has been seen.
        ClientRequest::Propose(SessionRequest::Command(SessionCommand { session, seq, lowest_unacked: seq, command }))
    }

    fn send_request(&mut self, c: usize) {
        let Some((op, operation)) = self.clients[c].op else { return };
        self.clients[c].request += 1;
        let id = ((c as u64) << 40) | self.clients[c].request;
        self.requests.insert(id, (c, op));
        let request = self.next_request(c, operation);
        let input = self.request_input(id, &request);
        let node = self.directed_route(matches!(request, ClientRequest::Read { .. })).unwrap_or(self.clients[c].target);
        let input = match input {
            RaftInput::Read { id, mode } => RaftInput::Read { id, mode: self.directed_read_mode(node).unwrap_or(mode) },
            other => other,
        };
        // Clients sit outside the partitions but suffer loss, delay (so reordering) and
        // duplication like everyone: a duplicated proposal reaches the log twice, and the session
        // table must answer the second copy without applying it. Reads are not duplicated:
        // `LocalReplica` keys a read's query by request id, so two copies in flight at one node
        // would share (and the first answer would consume) one query.
        if self.faults_on && self.cfg.loss > 0.0 && self.rng.random_bool(self.cfg.loss) {
            self.stats.dropped += 1;
            return;
        }
        if self.faults_on
            && matches!(request, ClientRequest::Propose(_))
            && self.cfg.duplication > 0.0
            && self.rng.random_bool(self.cfg.duplication)
        {
            self.stats.duplicated += 1;
            // Half the copies straggle for up to two time-outs (a retransmitting proxy, a slow
            // queue): they reach the log after the client moved on to its next command, which the
            // table must refuse as already acknowledged rather than apply.
            let mut at = self.now + self.net.delay(&mut self.rng);
            if self.rng.random_bool(0.5) {
                at += self.rng.random_range(0..=2 * nanos(self.cfg.client_timeout));
            }
            self.schedule(at, Event::Request { node, client: c, input: input.clone() });
        }
        let at = self.now + self.net.delay(&mut self.rng);
        self.schedule(at, Event::Request { node, client: c, input });
    }

    /// Sends a node's answer back to client `c`: maybe lost, maybe duplicated.
    pub(super) fn respond(&mut self, c: usize, resp: ClientResponse) {
        let (loss, dup) = if self.faults_on { (self.cfg.loss, self.cfg.duplication) } else { (0.0, 0.0) };
        if loss > 0.0 && self.rng.random_bool(loss) {
            self.stats.dropped += 1;
            return;
        }
        if dup > 0.0 && self.rng.random_bool(dup) {
            self.stats.duplicated += 1;
            let at = self.now + self.net.delay(&mut self.rng);
            self.schedule(at, Event::Response { client: c, resp: resp.clone() });
        }
        let at = self.now + self.net.delay(&mut self.rng);
        self.schedule(at, Event::Response { client: c, resp });
    }

    pub(super) fn client_response(&mut self, c: usize, resp: ClientResponse) {
        let Some(&(_, op)) = self.requests.get(&resp.id) else { return };
        let Some((current, operation)) = self.clients[c].op else { return };
        if current != op {
            return; // a late answer to an abandoned operation
        }
        // Only the newest request of the operation counts (older ones were redirected).
        if resp.id != ((c as u64) << 40) | self.clients[c].request {
            return;
        }
        match self.answer(&resp) {
            Answer::Result(KvResult::Registered { session }) => {
                // The registration the operation waited for: now send its command.
                self.start_session(c, session);
                self.send_request(c);
            }
            Answer::Result(KvResult::SessionExpired) => {
                // Evicted (or never known): an earlier copy may have been applied before the
                // eviction, so the operation is indeterminate; the next write registers again.
                self.stats.sessions_expired += 1;
                self.clients[c].session = None;
                self.clients[c].op_seq = None;
                self.complete(c, Outcome::Info);
            }
            Answer::Result(r @ (KvResult::AlreadyAcknowledged | KvResult::SessionWindowFull)) => {
                // The client never acknowledges its outstanding command nor pipelines, so the table
                // refused a command it must have accepted.
                self.violations.push(format!("client {c}: session table refused {operation:?} as {r:?}"));
            }
            Answer::Result(result) => {
                let outcome = match result {
                    KvResult::Written => Outcome::Ok,
                    KvResult::Cas { swapped: true, .. } => Outcome::Ok,
                    KvResult::Cas { swapped: false, found } => {
                        self.clients[c].last_seen.insert(operation.key, found);
                        Outcome::Fail
                    }
                    KvResult::Value(v) => {
                        self.clients[c].last_seen.insert(operation.key, v);
                        Outcome::ReadOk(v)
                    }
                    KvResult::Invalid
                    | KvResult::Registered { .. }
                    | KvResult::SessionExpired
                    | KvResult::AlreadyAcknowledged
                    | KvResult::SessionWindowFull => {
                        self.violations.push(format!("client {c} got an invalid answer to {operation:?}"));
                        return;
                    }
                };
                if let Command::Write(v) | Command::Cas { new: v, .. } = operation.command
                    && outcome == Outcome::Ok
                {
                    self.clients[c].last_seen.insert(operation.key, Some(v));
                }
                self.complete(c, outcome);
            }
            Answer::Undecodable => self.violations.push(format!("client {c} got an undecodable answer to {operation:?}")),
            Answer::Redirect(leader) => {
                // Consume this request id: a duplicated copy of this answer must not trigger a
                // second retry (two copies of one CAS in the log).
                self.clients[c].request += 1;
                self.stats.redirects += 1;
                self.clients[c].target = leader.unwrap_or_else(|| self.rng.random_range(0..self.nodes.len()));
                let at = self.now + nanos(Duration::from_millis(20));
                self.schedule(at, Event::ClientRetry { client: c, op });
            }
            Answer::Indeterminate => {
                // The node lost leadership with the command in flight: it may still commit. Retry
                // it (same session and sequence) elsewhere; consume the id as for a redirect.
                self.clients[c].request += 1;
                self.clients[c].target = self.rng.random_range(0..self.nodes.len());
                let at = self.now + nanos(Duration::from_millis(20));
                self.schedule(at, Event::ClientRetry { client: c, op });
            }
            Answer::Rejected(why) => self.violations.push(format!("client {c}: request rejected: {why}")),
        }
    }

    fn start_session(&mut self, c: usize, session: SessionId) {
        let client = &mut self.clients[c];
        debug_assert!(client.session.is_none(), "only a client without a session registers");
        client.session = Some(session);
        client.last_seq = 0;
        client.op_seq = None;
    }

    fn complete(&mut self, c: usize, outcome: Outcome) {
        let Some((op, operation)) = self.clients[c].op.take() else { return };
        if outcome == Outcome::Ok
            && !matches!(operation.command, crate::history::Command::Read)
            && let Some(since) = self.failover_since.take()
        {
            self.stats.failover_ms.push((self.now - since) / 1_000_000);
        }
        if let Err(e) = self.history.complete(op, outcome, self.now) {
            self.violations.push(format!("simulator bug: history rejected a completion: {e}"));
        }
        match outcome {
            Outcome::Ok | Outcome::ReadOk(_) => self.stats.ops_ok += 1,
            Outcome::Fail => self.stats.ops_fail += 1,
            Outcome::Info => {
                self.stats.ops_info += 1;
                // An indeterminate operation may still take effect later; the client carries on as
                // a new process so that its next operation does not overlap it (Jepsen's rule).
                self.clients[c].process += self.cfg.clients as ClientId;
                self.clients[c].target = self.rng.random_range(0..self.nodes.len());
            }
        }
        if outcome != Outcome::Info && self.now >= self.liveness_start {
            self.clients[c].definite_in_liveness += 1;
        }
        let think = self.rng.random_range(0..nanos(Duration::from_millis(30)));
        let at = self.now + think;
        self.schedule(at, Event::ClientNext { client: c });
    }
}
