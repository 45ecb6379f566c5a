//! A Raft node with its state machine applied synchronously, for drivers that have no reason to
//! apply elsewhere: interaction tests, the key-value simulator workload, benchmarks.
//!
//! [`RaftNode`] hands committed entries and confirmed reads out; this wrapper applies and answers
//! them at once and steps `Applied` back, turning the node's outputs into client answers. Drivers
//! whose applies are slow (the vector engine) apply on their own schedule instead.

use super::message::{ClientResponse, EntryPayload, LogIndex, RequestId};
use super::node::{RaftInput, RaftNode, RaftOutput, ReadMode};
use super::storage::DurableState;
use super::config::RaftConfig;
use crate::contract::{StateMachine, Time};
use std::collections::BTreeMap;

/// The application Raft replicates: deterministic, so every replica that applies the same
/// commands in the same order reaches the same state.
pub trait ReplicatedStateMachine {
    /// Applies a committed command and returns the answer for the client that proposed it.
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Vec<u8>;
    /// Answers a read-only query from the applied state.
    fn query(&self, query: &[u8]) -> Vec<u8>;
}

/// A [`RaftNode`] plus a state machine applied in step.
pub struct LocalReplica<S> {
    raft: RaftNode,
    sm: S,
    /// Queries of reads in flight, by request id.
    queries: BTreeMap<RequestId, Vec<u8>>,
    /// Reads confirmed at an index the state machine has not applied yet.
    ready: Vec<(RequestId, LogIndex)>,
    applied: LogIndex,
}

impl<S: ReplicatedStateMachine> LocalReplica<S> {
    /// Builds the node; `sm` must hold exactly the entries up to `applied`.
    pub fn new(cfg: RaftConfig, sm: S, durable: DurableState, applied: LogIndex, now: Time) -> Self {
        let raft = RaftNode::new(cfg, durable, applied, now);
        let applied = raft.applied_index();
        LocalReplica { raft, sm, queries: BTreeMap::new(), ready: Vec::new(), applied }
    }

    /// The Raft node.
    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// The replicated state machine.
    pub fn state_machine(&self) -> &S {
        &self.sm
    }

    /// Starts a linearizable read of `query`; its answer comes out as a `Respond`.
    pub fn read(&mut self, now: Time, id: RequestId, query: Vec<u8>, mode: ReadMode, out: &mut Vec<RaftOutput>) {
        self.queries.insert(id, query);
        self.step(now, RaftInput::Read { id, mode }, out);
    }

    fn answer_ready_reads(&mut self, out: &mut Vec<RaftOutput>) {
        let applied = self.applied;
        let (now_ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready).into_iter().partition(|(_, i)| *i <= applied);
        self.ready = later;
        for (id, _) in now_ready {
            let query = self.queries.remove(&id).unwrap_or_default();
            out.push(RaftOutput::Respond(ClientResponse { id, result: Ok(self.sm.query(&query)) }));
        }
    }
}

impl<S> std::ops::Deref for LocalReplica<S> {
    type Target = RaftNode;
    fn deref(&self) -> &RaftNode {
        &self.raft
    }
}

impl<S: ReplicatedStateMachine> StateMachine for LocalReplica<S> {
    type Input = RaftInput;
    type Output = RaftOutput;

    /// Steps the node, then applies what it committed and answers what it confirmed. `Apply`
    /// outputs are passed through (after the answer to their request) so observers see them;
    /// `ReadReady` becomes the read's `Respond`.
    fn step(&mut self, now: Time, input: RaftInput, out: &mut Vec<RaftOutput>) {
        let mut raw = Vec::new();
        self.raft.step(now, input, &mut raw);
        loop {
            let before = self.applied;
            self.absorb(std::mem::take(&mut raw), out);
            if self.applied == before {
                return;
            }
            self.raft.step(now, RaftInput::Applied { index: self.applied }, &mut raw);
            self.answer_ready_reads(out);
        }
    }
}

impl<S: ReplicatedStateMachine> LocalReplica<S> {
    fn absorb(&mut self, raw: Vec<RaftOutput>, out: &mut Vec<RaftOutput>) {
        for o in raw {
            match o {
                RaftOutput::Apply { entry, request } => {
                    let result = match &entry.payload {
                        EntryPayload::Noop => Vec::new(),
                        EntryPayload::Command(cmd) => self.sm.apply(entry.index, cmd),
                        // Raft itself acts on configuration entries; the state machine has nothing to do.
                        EntryPayload::ConfChange(_) => Vec::new(),
                    };
                    self.applied = entry.index;
                    if let Some(id) = request {
                        out.push(RaftOutput::Respond(ClientResponse { id, result: Ok(result) }));
                    }
                    out.push(RaftOutput::Apply { entry, request });
                }
                RaftOutput::ReadReady { id, index } => {
                    self.ready.push((id, index));
                    self.answer_ready_reads(out);
                }
                RaftOutput::Respond(r) => {
                    self.queries.remove(&r.id);
                    out.push(RaftOutput::Respond(r));
                }
                other => out.push(other),
            }
        }
    }
}
