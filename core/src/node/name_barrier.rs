//! Names resolved at a confirmed metadata index: before a request's collection name is looked up
//! in this node's metadata, the metadata leader confirms its commit index (a lease or ReadIndex
//! read of the metadata group) and this node applies its metadata that far.
//!
//! Why: a node applies the metadata log a heartbeat after the leader commits it (longer when it
//! is cut off from the leader). Resolving a name from that copy as it stands routed a `strong`
//! read after an acknowledged collection replace (a snapshot recovery's swap) or alias switch
//! to the old collection's shards, which keep serving wherever a majority of their replicas has
//! not applied the change either; and a request naming a collection created a moment ago
//! through another node was answered "not found". With the barrier, whatever metadata change was
//! acknowledged before the request arrived is applied here before the name is resolved, so a
//! request is linearized after it.
//!
//! Cost: one metadata read per batch, not per request. Requests that arrive while a barrier is
//! in flight wait for the next one (a barrier sent before a request arrived proves nothing about
//! changes acknowledged between the two), and one barrier covers them all. On the metadata
//! leader the read is local (by lease while it holds one). `eventual` and `read_your_writes`
//! reads skip it when this node knows the name: they accept a replica's staleness, and routing
//! is part of it.

use super::io::NodeOutput;
use super::machine::Node;
use super::message::ServeLevel;
use super::metadata::METADATA_GROUP;
use super::origin::{Gather, PartResult};
use super::request::{ClientId, NodeError, ReadLevel, Request};
use super::scatter::{GatherError, ShardFailure};
use crate::contract::Time;
use crate::raft::{LogIndex, ReadMode};
use std::time::Duration;

/// Client ids at or above this are the node's own barrier reads (external ids stay below).
pub const INTERNAL_CLIENTS: ClientId = 1 << 63;

/// A request waiting for its barrier.
pub(super) struct Parked {
    client: ClientId,
    request: Request,
    deadline: Time,
}

/// The barrier reads of this node and the requests they hold.
#[derive(Default)]
pub(super) struct NameBarrier {
    /// The barrier read in flight (its internal client id) and the requests it covers.
    in_flight: Option<(ClientId, Vec<Parked>)>,
    /// Requests that arrived while a barrier was in flight: the next one covers them.
    next: Vec<Parked>,
    /// Requests whose barrier confirmed `index`: routed once the metadata is applied that far.
    ready: Vec<(LogIndex, Parked)>,
    next_client: u64,
}

impl NameBarrier {
    /// Whether `client` is parked here.
    pub(super) fn holds(&self, client: ClientId) -> bool {
        let parked = |p: &Parked| p.client == client;
        self.in_flight.as_ref().is_some_and(|(_, ps)| ps.iter().any(parked))
            || self.next.iter().any(parked)
            || self.ready.iter().any(|(_, p)| parked(p))
    }

    /// Requests held now.
    pub(super) fn len(&self) -> usize {
        self.in_flight.as_ref().map_or(0, |(_, ps)| ps.len()) + self.next.len() + self.ready.len()
    }
}

impl Node {
    /// Whether `request` must wait for a barrier before its name is resolved.
    pub(super) fn needs_barrier(&self, request: &Request) -> bool {
        if self.bugs.names_from_local_metadata {
            return false;
        }
        let read = |collection: &str, level: &ReadLevel| match level {
            ReadLevel::Strong | ReadLevel::Quorum => true,
            ReadLevel::Eventual | ReadLevel::ReadYourWrites(_) => self.meta.collection(collection).is_none(),
        };
        match request {
            // Metadata reads see every change acknowledged before them; metadata changes are
            // checked against this node's metadata before they are proposed (a create through
            // another node a moment ago must be seen here).
            Request::ListCollections
            | Request::ListAliases
            | Request::CreateCollection { .. }
            | Request::DropCollection { .. }
            | Request::UpdateAliases { .. }
            | Request::ReplaceCollection { .. } => true,
            Request::Write { .. } | Request::ReplicaStatus { .. } => true,
            Request::Search { collection, read: r, .. }
            | Request::Get { collection, read: r, .. }
            | Request::Count { collection, read: r, .. }
            | Request::Scroll { collection, read: r, .. }
            | Request::FieldIndexes { collection, read: r }
            | Request::VectorSettings { collection, read: r }
            | Request::ShardChanges { collection, read: r, .. } => read(collection, &r.level),
        }
    }

    /// Holds `request` until a barrier read started after now confirms the metadata.
    pub(super) fn park(&mut self, now: Time, client: ClientId, request: Request, timeout: Option<Duration>, out: &mut Vec<NodeOutput>) {
        let deadline = now + timeout.unwrap_or(self.cfg.request_timeout);
        self.park_until(now, client, request, deadline, out);
    }

    /// [`Self::park`] with the request's deadline.
    pub(super) fn park_until(&mut self, now: Time, client: ClientId, request: Request, deadline: Time, out: &mut Vec<NodeOutput>) {
        self.barrier.next.push(Parked { client, request, deadline });
        self.timers.insert((deadline, super::machine::Timer::Deadline(client)));
        if self.barrier.in_flight.is_none() {
            self.start_barrier(now, out);
        }
    }

    /// Sends a barrier read for every request waiting for the next one.
    fn start_barrier(&mut self, now: Time, out: &mut Vec<NodeOutput>) {
        let covered = std::mem::take(&mut self.barrier.next);
        let Some(deadline) = covered.iter().map(|p| p.deadline).min() else { return };
        let client = INTERNAL_CLIENTS + self.barrier.next_client;
        self.barrier.next_client += 1;
        self.stats.name_barriers += 1;
        self.barrier.in_flight = Some((client, covered));
        let kind = self.barrier_part();
        let members = self.cfg.members.clone();
        self.launch(now, client, Gather::NameBarrier, Default::default(), vec![(0, METADATA_GROUP, members, kind)], deadline, None, out);
    }

    /// The barrier's one part answered (or timed out).
    pub(super) fn barrier_done(&mut self, now: Time, client: ClientId, result: Option<PartResult>, out: &mut Vec<NodeOutput>) {
        let Some((id, covered)) = self.barrier.in_flight.take() else { return };
        debug_assert_eq!(id, client, "one barrier in flight at a time");
        match result {
            Some(PartResult::Read(Ok(served), _)) => {
                self.barrier.ready.extend(covered.into_iter().map(|p| (served.applied, p)));
                let applied = self.applied.get(&METADATA_GROUP).copied().unwrap_or(0);
                self.release(now, applied, out);
            }
            other => {
                let why = match other {
                    Some(PartResult::Read(Err(e), _)) => format!("{e:?}"),
                    _ => "no answer".into(),
                };
                let failure = ShardFailure::Unavailable(format!("metadata leader not reached to resolve the name: {why}"));
                for p in covered {
                    self.respond(p.client, Err(NodeError::Shard(GatherError { shard: 0, failure: failure.clone() })), out);
                }
            }
        }
        if !self.barrier.next.is_empty() {
            self.start_barrier(now, out);
        }
    }

    /// The metadata is applied here through `applied`: route the requests whose barrier it covers.
    pub(super) fn release(&mut self, now: Time, applied: LogIndex, out: &mut Vec<NodeOutput>) {
        let (go, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.barrier.ready).into_iter().partition(|(i, _)| *i <= applied);
        self.barrier.ready = wait;
        for (_, p) in go {
            let timeout = p.deadline.saturating_since(now);
            self.route_request(now, p.client, p.request, Some(timeout), out);
        }
    }

    /// A parked request's deadline passed before its barrier released it.
    pub(super) fn parked_deadline(&mut self, client: ClientId, out: &mut Vec<NodeOutput>) {
        let before = self.barrier.ready.len() + self.barrier.next.len();
        self.barrier.ready.retain(|(_, p)| p.client != client);
        self.barrier.next.retain(|p| p.client != client);
        if self.barrier.ready.len() + self.barrier.next.len() < before {
            let failure = ShardFailure::Timeout;
            self.respond(client, Err(NodeError::Shard(GatherError { shard: 0, failure })), out);
        }
    }

    fn barrier_part(&self) -> super::origin::PartKind {
        super::origin::PartKind::Read { query: None, level: ServeLevel::Linearizable(ReadMode::Lease), any_replica: false }
    }
}
