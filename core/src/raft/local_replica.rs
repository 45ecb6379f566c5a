//! A Raft node with its state machine applied synchronously, for drivers that have no reason to
//! apply elsewhere: interaction tests, the key-value simulator workload, benchmarks.
//!
//! [`RaftNode`] hands committed entries and confirmed reads out; this wrapper applies and answers
//! them at once and steps `Applied` back, turning the node's outputs into client answers. Drivers
//! whose applies are slow (the vector engine) apply on their own schedule instead.

use super::message::{ClientResponse, EntryPayload, LogIndex, RequestId};
use super::node::{RaftInput, RaftNode, RaftOutput, ReadMode};
use super::snapshot::{SnapshotError, SnapshotMeta};
use super::storage::DurableState;
use super::config::RaftConfig;
use crate::contract::{StateMachine, Time};
use bytes::Bytes;
use std::collections::BTreeMap;

/// The application Raft replicates: deterministic, so every replica that applies the same
/// commands in the same order reaches the same state.
pub trait ReplicatedStateMachine {
    /// Applies a committed command and returns the answer for the client that proposed it.
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Vec<u8>;
    /// Answers a read-only query from the applied state.
    fn query(&self, query: &[u8]) -> Vec<u8>;
    /// The whole applied state as bytes (deterministic: equal states give equal bytes).
    fn snapshot(&self) -> Vec<u8>;
    /// Replaces the whole state by one [`Self::snapshot`] produced; on error the state is
    /// unchanged.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), String>;
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
    /// The newest snapshot taken or installed (a durable driver keeps it on disk; this one
    /// keeps it in memory and lets its owner persist it, see [`LocalReplica::held_snapshot`]).
    snapshot: Option<(SnapshotMeta, Bytes)>,
    /// Chunks of a snapshot being received.
    staging: Option<(SnapshotMeta, Vec<u8>)>,
}

impl<S: ReplicatedStateMachine> LocalReplica<S> {
    /// Builds the node; `sm` must hold exactly the entries up to `applied`.
    pub fn new(cfg: RaftConfig, sm: S, durable: DurableState, applied: LogIndex, now: Time) -> Self {
        let raft = RaftNode::new(cfg, durable, applied, now);
        let applied = raft.applied_index();
        LocalReplica { raft, sm, queries: BTreeMap::new(), ready: Vec::new(), applied, snapshot: None, staging: None }
    }

    /// Builds the node from a snapshot plus its durable log: `sm` is restored from `snapshot`
    /// (verified first), the log starts behind it, and nothing at or below its index is applied
    /// again. Without a snapshot this is [`LocalReplica::new`] from an empty state machine.
    pub fn from_snapshot(
        cfg: RaftConfig,
        mut sm: S,
        mut durable: DurableState,
        snapshot: Option<(SnapshotMeta, Bytes)>,
        now: Time,
    ) -> Result<Self, SnapshotError> {
        let Some((meta, bytes)) = snapshot else { return Ok(Self::new(cfg, sm, durable, 0, now)) };
        meta.verify(&bytes)?;
        sm.restore(&bytes).map_err(SnapshotError::Decode)?;
        durable.adopt_snapshot(meta.clone());
        let mut replica = Self::new(cfg, sm, durable, meta.index, now);
        replica.snapshot = Some((meta, bytes));
        Ok(replica)
    }

    /// The newest snapshot this replica took or installed, with its bytes.
    pub fn held_snapshot(&self) -> Option<&(SnapshotMeta, Bytes)> {
        self.snapshot.as_ref()
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
        let mut follow_ups = Vec::new();
        loop {
            let before = self.applied;
            self.absorb(std::mem::take(&mut raw), out, &mut follow_ups);
            if self.applied == before && follow_ups.is_empty() {
                return;
            }
            if self.applied != before {
                self.raft.step(now, RaftInput::Applied { index: self.applied }, &mut raw);
            }
            for input in follow_ups.drain(..) {
                self.raft.step(now, input, &mut raw);
            }
            self.answer_ready_reads(out);
        }
    }
}

impl<S: ReplicatedStateMachine> LocalReplica<S> {
    fn absorb(&mut self, raw: Vec<RaftOutput>, out: &mut Vec<RaftOutput>, follow_ups: &mut Vec<RaftInput>) {
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
                RaftOutput::TakeSnapshot { index } => {
                    if self.applied >= index
                        && let Some(term) = self.raft.log().term_at(self.applied)
                    {
                        let bytes = self.sm.snapshot();
                        let meta = SnapshotMeta::for_bytes(self.applied, term, self.raft.applied_membership(), &bytes);
                        self.snapshot = Some((meta.clone(), bytes.into()));
                        follow_ups.push(RaftInput::SnapshotTaken { meta });
                    }
                }
                RaftOutput::ReadSnapshotChunk { to, meta, offset, len } => {
                    let data = match &self.snapshot {
                        Some((held, bytes)) if *held == meta => {
                            let start = (offset as usize).min(bytes.len());
                            let end = (offset.saturating_add(len) as usize).min(bytes.len());
                            Some(bytes.slice(start..end))
                        }
                        _ => None,
                    };
                    follow_ups.push(RaftInput::SnapshotChunk { to, index: meta.index, offset, data });
                }
                RaftOutput::StageSnapshotChunk { meta, offset, data } => match &mut self.staging {
                    _ if offset == 0 => self.staging = Some((meta, data.to_vec())),
                    Some((m, bytes)) if *m == meta && bytes.len() as u64 == offset => bytes.extend_from_slice(&data),
                    _ => self.staging = None,
                },
                RaftOutput::InstallSnapshot { meta } => {
                    let staged = self.staging.take().filter(|(m, _)| *m == meta).map(|(_, b)| b).unwrap_or_default();
                    let installed = meta.verify(&staged).and_then(|()| self.sm.restore(&staged).map_err(SnapshotError::Decode));
                    match installed {
                        Ok(()) => {
                            self.applied = meta.index;
                            self.snapshot = Some((meta.clone(), staged.into()));
                            follow_ups.push(RaftInput::SnapshotInstalled { meta });
                        }
                        Err(_) => follow_ups.push(RaftInput::SnapshotRejected { meta }),
                    }
                }
                other => out.push(other),
            }
        }
    }
}
