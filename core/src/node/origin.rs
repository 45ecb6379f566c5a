//! The origin side of a client request: it is split into parts, one per group it touches; each
//! part goes to the replica its level calls for (the leader by hint cache, or a replica by the
//! router policy), is retried on "not leader" or silence (reads only), and the answers are
//! gathered into one reply — top-k merged with the id tie-break, counts summed, pages merged —
//! or one error naming the shard that failed.

use std::time::Duration;
use super::io::NodeOutput;
use super::machine::{Node, Timer};
use super::message::{PartRef, PeerMessage, ServeError, ServeLevel, Served};
use super::metadata::{METADATA_GROUP, MetaCommand, shard_group};
use super::request::{ClientId, NodeError, ReadLevel, ReadOptions, Reply, Request, WriteAck};
use super::shard::{ShardQuery, split_command};
use super::sharding::{ShardId, shard_of};
use crate::contract::{NodeId, Time};
use crate::raft::{GroupId, LogIndex, ReadMode};
use crate::vector::collection::{Distance, PointsOp};
use crate::vector::point::PointId;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// What a request's answers become.
pub(super) enum Gather {
    /// A barrier read of the metadata group (see `name_barrier`).
    NameBarrier,
    Meta,
    Write,
    Search { distance: Distance, offset: usize, limit: usize },
    Get { order: Vec<PointId> },
    Count,
    Scroll { limit: usize },
    Status,
    FieldIndexes,
    VectorSettings,
    Changes,
}

/// Why one part failed.
#[derive(Clone, Debug)]
pub(super) enum PartFailure {
    /// No answer in time; `in_doubt` if the write may have been proposed.
    Timeout { in_doubt: bool },
    /// The serving node's answer.
    Serve(ServeError),
}

pub(super) enum PartResult {
    Write(Result<LogIndex, PartFailure>),
    Read(Result<Served, PartFailure>, NodeId),
}

/// A client request being answered.
pub(super) struct ClientState {
    pub(super) gather: Gather,
    pub(super) read: ReadOptions,
    pub(super) open: BTreeSet<u64>,
    pub(super) results: Vec<(ShardId, PartResult)>,
    /// A committed metadata write: answer once this node applied it too.
    pub(super) wait_meta: Option<LogIndex>,
    /// A read, kept to be routed again (once) if its collection is dropped or replaced under
    /// it: the name then means another collection, which the read should reach.
    pub(super) rerun: Option<(Request, Time)>,
}

pub(super) enum PartKind {
    Write { command: Bytes, ack: WriteAck },
    Read { query: Option<ShardQuery>, level: ServeLevel, any_replica: bool },
}

/// One part of a client request.
pub(super) struct Part {
    client: ClientId,
    shard: ShardId,
    group: GroupId,
    replicas: Vec<NodeId>,
    kind: PartKind,
    target: NodeId,
    attempt: u32,
    sent_at: Time,
    /// A write sent and not refused: it may be proposed.
    in_doubt: bool,
    /// The request's deadline (serving nodes keep the part until then, and a time-out more).
    deadline: Time,
}

impl Node {
    pub(super) fn respond(&mut self, client: ClientId, result: Result<Reply, NodeError>, out: &mut Vec<NodeOutput>) {
        out.push(NodeOutput::Respond { client, result });
    }

    /// A new client request.
    pub(super) fn client_request(
        &mut self,
        now: Time,
        client: ClientId,
        request: Request,
        timeout: Option<Duration>,
        out: &mut Vec<NodeOutput>,
    ) {
        *self.stats.requests.entry(request.kind()).or_insert(0) += 1;
        if client >= super::name_barrier::INTERNAL_CLIENTS {
            return self.respond(client, Err(NodeError::Invalid(format!("request id {client} is reserved for the node"))), out);
        }
        if self.clients.contains_key(&client) || self.barrier.holds(client) {
            return self.respond(client, Err(NodeError::Invalid(format!("request id {client} already in flight"))), out);
        }
        if self.needs_barrier(&request) {
            return self.park(now, client, request, timeout, out);
        }
        self.route_request(now, client, request, timeout, out)
    }

    /// Resolves the request's names in this node's metadata and sends its parts.
    pub(super) fn route_request(
        &mut self,
        now: Time,
        client: ClientId,
        request: Request,
        timeout: Option<Duration>,
        out: &mut Vec<NodeOutput>,
    ) {
        let members = self.cfg.members.clone();
        let deadline = now + timeout.unwrap_or(self.cfg.request_timeout);
        let rerun = request.is_read().then(|| (request.clone(), deadline));
        let mut parts: Vec<(ShardId, GroupId, Vec<NodeId>, PartKind)> = Vec::new();
        let mut read = ReadOptions::default();
        let gather = match request {
            Request::ListCollections => {
                let list = self.meta.collections().map(|c| c.info()).collect();
                return self.respond(client, Ok(Reply::Collections(list)), out);
            }
            Request::CreateCollection { name, config, shards, replication_factor } => {
                if let Err(e) = self.meta.check_create(&name, &config, shards, replication_factor) {
                    return self.respond(client, Err(NodeError::Invalid(e)), out);
                }
                if self.meta.collection_named(&name).is_some() {
                    return self.respond(client, Err(NodeError::CollectionExists(name)), out);
                }
                let alias_of = self.meta.aliases().find(|(a, _)| *a == name).map(|(_, c)| c.to_string());
                if let Some(target) = alias_of {
                    let e = format!("{name:?} is an alias of collection {target:?}; delete the alias first");
                    return self.respond(client, Err(NodeError::Invalid(e)), out);
                }
                let cmd = MetaCommand::CreateCollection { name, config, shards, replication_factor };
                let kind = PartKind::Write { command: Bytes::from(cmd.encode()), ack: WriteAck::Quorum };
                parts.push((0, METADATA_GROUP, members, kind));
                Gather::Meta
            }
            Request::ListAliases => {
                let list = self.meta.aliases().map(|(a, c)| (a.to_string(), c.to_string())).collect();
                return self.respond(client, Ok(Reply::Aliases(list)), out);
            }
            Request::UpdateAliases { actions } => {
                if let Err(e) = self.meta.check_aliases(&actions) {
                    let e = match e {
                        super::metadata::MetaRefusal::Missing(name) => NodeError::NoSuchCollection(name),
                        other => NodeError::Invalid(other.to_string()),
                    };
                    return self.respond(client, Err(e), out);
                }
                let cmd = MetaCommand::UpdateAliases { actions };
                let kind = PartKind::Write { command: Bytes::from(cmd.encode()), ack: WriteAck::Quorum };
                parts.push((0, METADATA_GROUP, members, kind));
                Gather::Meta
            }
            Request::ReplaceCollection { name, with } => {
                if let Err(e) = self.meta.check_replace(&name, &with) {
                    let e = match e {
                        super::metadata::MetaRefusal::Missing(name) => NodeError::NoSuchCollection(name),
                        other => NodeError::Invalid(other.to_string()),
                    };
                    return self.respond(client, Err(e), out);
                }
                let cmd = MetaCommand::ReplaceCollection { name, with };
                let kind = PartKind::Write { command: Bytes::from(cmd.encode()), ack: WriteAck::Quorum };
                parts.push((0, METADATA_GROUP, members, kind));
                Gather::Meta
            }
            Request::DropCollection { name } => {
                if self.meta.collection_named(&name).is_none() {
                    return self.respond(client, Err(NodeError::NoSuchCollection(name)), out);
                }
                let cmd = MetaCommand::DropCollection { name };
                let kind = PartKind::Write { command: Bytes::from(cmd.encode()), ack: WriteAck::Quorum };
                parts.push((0, METADATA_GROUP, members, kind));
                Gather::Meta
            }
            Request::Write { collection, op, ack } => {
                let Some(c) = self.meta.collection(&collection) else {
                    return self.respond(client, Err(NodeError::NoSuchCollection(collection)), out);
                };
                if let Err(e) = check_vectors(&op, c.config.vector_size) {
                    return self.respond(client, Err(NodeError::Invalid(e)), out);
                }
                for (shard, op) in split_command(op, c.shard_count()) {
                    let command = super::shard::encode_command(&op);
                    let replicas = c.replicas[shard as usize].clone();
                    parts.push((shard, shard_group(c.id, shard), replicas, PartKind::Write { command, ack }));
                }
                Gather::Write
            }
            Request::Search { collection, request, read: r } => {
                let Some(c) = self.meta.collection(&collection) else {
                    return self.respond(client, Err(NodeError::NoSuchCollection(collection)), out);
                };
                if request.vector.len() != c.config.vector_size as usize {
                    let e = format!("query vector has {} dimensions, collection has {}", request.vector.len(), c.config.vector_size);
                    return self.respond(client, Err(NodeError::Invalid(e)), out);
                }
                let gather = Gather::Search { distance: c.config.distance, offset: request.offset, limit: request.limit };
                let mut per_shard = request;
                per_shard.limit = per_shard.offset.saturating_add(per_shard.limit);
                per_shard.offset = 0;
                read = r;
                for shard in 0..c.shard_count() {
                    let q = Some(ShardQuery::Search(per_shard.clone()));
                    parts.push((shard, shard_group(c.id, shard), c.replicas[shard as usize].clone(), self.read_kind(q, &read, shard)));
                }
                gather
            }
            Request::Get { collection, ids, with_payload, with_vector, read: r } => {
                let Some(c) = self.meta.collection(&collection) else {
                    return self.respond(client, Err(NodeError::NoSuchCollection(collection)), out);
                };
                let mut by_shard: BTreeMap<ShardId, Vec<PointId>> = BTreeMap::new();
                for id in &ids {
                    by_shard.entry(shard_of(*id, c.shard_count())).or_default().push(*id);
                }
                read = r;
                for (shard, ids) in by_shard {
                    let q = Some(ShardQuery::Get { ids, with_payload, with_vector });
                    parts.push((shard, shard_group(c.id, shard), c.replicas[shard as usize].clone(), self.read_kind(q, &read, shard)));
                }
                Gather::Get { order: ids }
            }
            Request::Count { collection, filter, read: r } => {
                let Some(c) = self.meta.collection(&collection) else {
                    return self.respond(client, Err(NodeError::NoSuchCollection(collection)), out);
                };
                read = r;
                for shard in 0..c.shard_count() {
                    let q = Some(ShardQuery::Count(filter.clone()));
                    parts.push((shard, shard_group(c.id, shard), c.replicas[shard as usize].clone(), self.read_kind(q, &read, shard)));
                }
                Gather::Count
            }
            Request::Scroll { collection, request, read: r } => {
                let Some(c) = self.meta.collection(&collection) else {
                    return self.respond(client, Err(NodeError::NoSuchCollection(collection)), out);
                };
                read = r;
                let limit = request.limit;
                for shard in 0..c.shard_count() {
                    let q = Some(ShardQuery::Scroll(request.clone()));
                    parts.push((shard, shard_group(c.id, shard), c.replicas[shard as usize].clone(), self.read_kind(q, &read, shard)));
                }
                Gather::Scroll { limit }
            }
            Request::ReplicaStatus { collection } => {
                let Some(c) = self.meta.collection(&collection) else {
                    return self.respond(client, Err(NodeError::NoSuchCollection(collection)), out);
                };
                for shard in 0..c.shard_count() {
                    let kind = PartKind::Read { query: None, level: ServeLevel::Status, any_replica: false };
                    parts.push((shard, shard_group(c.id, shard), c.replicas[shard as usize].clone(), kind));
                }
                Gather::Status
            }
            Request::FieldIndexes { collection, read: r } => {
                let Some(c) = self.meta.collection(&collection) else {
                    return self.respond(client, Err(NodeError::NoSuchCollection(collection)), out);
                };
                read = r;
                for shard in 0..c.shard_count() {
                    let q = Some(ShardQuery::FieldIndexes);
                    parts.push((shard, shard_group(c.id, shard), c.replicas[shard as usize].clone(), self.read_kind(q, &read, shard)));
                }
                Gather::FieldIndexes
            }
            Request::VectorSettings { collection, read: r } => {
                let Some(c) = self.meta.collection(&collection) else {
                    return self.respond(client, Err(NodeError::NoSuchCollection(collection)), out);
                };
                read = r;
                for shard in 0..c.shard_count() {
                    let q = Some(ShardQuery::VectorSettings);
                    parts.push((shard, shard_group(c.id, shard), c.replicas[shard as usize].clone(), self.read_kind(q, &read, shard)));
                }
                Gather::VectorSettings
            }
            Request::ShardChanges { collection, shard, since, after, limit, read: r } => {
                let Some(c) = self.meta.collection(&collection) else {
                    return self.respond(client, Err(NodeError::NoSuchCollection(collection)), out);
                };
                if shard >= c.shard_count() {
                    let e = format!("shard {shard} of collection {collection:?}: it has {} shards", c.shard_count());
                    return self.respond(client, Err(NodeError::Invalid(e)), out);
                }
                read = r;
                let q = Some(ShardQuery::Changes { since, after, limit });
                parts.push((shard, shard_group(c.id, shard), c.replicas[shard as usize].clone(), self.read_kind(q, &read, shard)));
                Gather::Changes
            }
        };
        self.launch(now, client, gather, read, parts, deadline, rerun, out);
    }

    /// Sends a request's parts and arms its deadline.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch(
        &mut self,
        now: Time,
        client: ClientId,
        gather: Gather,
        read: ReadOptions,
        parts: Vec<(ShardId, GroupId, Vec<NodeId>, PartKind)>,
        deadline: Time,
        rerun: Option<(Request, Time)>,
        out: &mut Vec<NodeOutput>,
    ) {
        let mut state = ClientState { gather, read, open: BTreeSet::new(), results: Vec::new(), wait_meta: None, rerun };
        if parts.is_empty() {
            self.clients.insert(client, state);
            return self.complete(now, client, out);
        }
        let mut ids = Vec::new();
        for (shard, group, replicas, kind) in parts {
            let id = self.fresh_id();
            state.open.insert(id);
            let target = replicas[0];
            self.parts.insert(id, Part { client, shard, group, replicas, kind, target, attempt: 0, sent_at: now, in_doubt: false, deadline });
            ids.push(id);
        }
        self.clients.insert(client, state);
        self.timers.insert((deadline, Timer::Deadline(client)));
        for id in ids {
            self.send_part(now, id, None);
        }
    }

    /// How a read part of `level` is routed and served.
    fn read_kind(&self, query: Option<ShardQuery>, read: &ReadOptions, shard: ShardId) -> PartKind {
        let (level, any_replica) = match &read.level {
            ReadLevel::Eventual => (ServeLevel::Applied, true),
            ReadLevel::ReadYourWrites(t) => (ServeLevel::AtLeast(t.marks.get(&shard).copied().unwrap_or(0)), true),
            ReadLevel::Strong if self.bugs.strong_read_at_follower => (ServeLevel::Applied, true),
            ReadLevel::Strong => (ServeLevel::Linearizable(ReadMode::Lease), false),
            ReadLevel::Quorum => (ServeLevel::Linearizable(ReadMode::ReadIndex), false),
        };
        PartKind::Read { query, level, any_replica }
    }

    /// Sends part `id` (again), to `to` or to the target its routing picks.
    fn send_part(&mut self, now: Time, id: u64, to: Option<NodeId>) {
        let me = self.cfg.id;
        let Some(p) = self.parts.get(&id) else { return };
        let target = match (to, &p.kind) {
            (Some(t), _) => t,
            (None, PartKind::Read { any_replica: true, .. }) => {
                let suspected = self.suspected.clone();
                let replicas = p.replicas.clone();
                self.router.pick(me, &replicas, |n| suspected.contains(&n))
            }
            (None, _) => match self.leader_hints.get(&p.group) {
                Some(l) if p.replicas.contains(l) => *l,
                // No hint: the replicas in turn, skipping suspected ones while any other is left.
                _ => {
                    let alive: Vec<NodeId> =
                        p.replicas.iter().copied().filter(|n| !self.suspected.contains(n)).collect();
                    let pool = if alive.is_empty() { &p.replicas } else { &alive };
                    pool[p.attempt as usize % pool.len()]
                }
            },
        };
        let p = self.parts.get_mut(&id).expect("checked above");
        p.attempt += 1;
        p.target = target;
        p.sent_at = now;
        let attempt = p.attempt;
        let time_left = p.deadline.saturating_since(now);
        let msg = match &p.kind {
            PartKind::Write { command, ack } => {
                p.in_doubt = true;
                PeerMessage::Write {
                    part: PartRef { id, attempt },
                    origin_incarnation: self.cfg.incarnation,
                    group: p.group,
                    command: command.clone(),
                    ack: *ack,
                    time_left,
                }
            }
            PartKind::Read { query, level, .. } => {
                PeerMessage::Read { part: PartRef { id, attempt }, group: p.group, query: query.clone(), level: *level, time_left }
            }
        };
        if matches!(msg, PeerMessage::Read { .. }) {
            self.router.started(target);
            self.timers.insert((now + self.cfg.read_attempt_timeout, Timer::ReadAttempt(id, attempt)));
        }
        if target != me {
            self.stats.forwarded += 1;
        }
        self.send_peer(target, msg);
    }

    /// A target could not serve part `id` (no leader there, not hosted, overloaded): retry at
    /// the hinted leader now, or after a backoff at the next replica.
    fn retry_part(&mut self, now: Time, id: u64, from: NodeId, hint: Option<NodeId>, out: &mut Vec<NodeOutput>) {
        self.stats.retries += 1;
        let Some(p) = self.parts.get_mut(&id) else { return };
        // A read of a collection this node's metadata has dropped since (or replaced: a
        // recovery's swap) is over: its groups are going away everywhere, so retrying would
        // only run into the deadline. It fails now, as a name this node no longer knows, and
        // a client that asks again reaches what the name means now.
        let collection = super::metadata::group_shard(p.group).0;
        if matches!(p.kind, PartKind::Read { .. }) && p.group != METADATA_GROUP && self.meta.collection_by_id(collection).is_none() {
            let gone = ServeError::NoSuchCollection(format!("#{collection} (dropped or replaced while the request ran)"));
            return self.finish_part(now, id, PartResult::Read(Err(PartFailure::Serve(gone)), from), out);
        }
        // A refusal does not clear the doubt: a copy of this or an earlier attempt (duplicated
        // or delayed in the network) may still reach a node that leads by then and propose it.
        match hint {
            Some(l) if l != from && p.replicas.contains(&l) => {
                self.leader_hints.insert(p.group, l);
                self.send_part(now, id, Some(l));
            }
            _ => {
                if self.leader_hints.get(&p.group) == Some(&from) {
                    self.leader_hints.remove(&p.group);
                }
                let attempt = p.attempt;
                self.timers.insert((now + self.cfg.retry_backoff, Timer::Retry(id, attempt)));
            }
        }
    }

    /// `node` is suspected dead: parts waiting on it stop waiting. Reads go to another replica
    /// now; writes it may have proposed end in doubt now rather than at the request's deadline
    /// (the client learns within the suspicion delay and may retry elsewhere).
    pub(super) fn target_suspected(&mut self, now: Time, node: NodeId, out: &mut Vec<NodeOutput>) {
        let waiting: Vec<u64> = self.parts.iter().filter(|(_, p)| p.target == node).map(|(id, _)| *id).collect();
        for id in waiting {
            let p = &self.parts[&id];
            let (group, sent, in_doubt) = (p.group, p.sent_at, p.in_doubt);
            if self.leader_hints.get(&group) == Some(&node) {
                self.leader_hints.remove(&group);
            }
            match p.kind {
                PartKind::Read { .. } => {
                    self.router.finished(node, sent, now, false);
                    self.stats.retries += 1;
                    self.send_part(now, id, None);
                }
                PartKind::Write { .. } if in_doubt => {
                    let failure = PartFailure::Timeout { in_doubt: true };
                    self.finish_part(now, id, PartResult::Write(Err(failure)), out);
                }
                // Refused there and waiting for its retry timer: it will pick another target.
                PartKind::Write { .. } => {}
            }
        }
    }

    pub(super) fn retry_due(&mut self, now: Time, id: u64, attempt: u32) {
        if self.parts.get(&id).is_some_and(|p| p.attempt == attempt) {
            self.send_part(now, id, None);
        }
    }

    /// A read attempt got no answer in time: try another replica (reads are safe to resend).
    pub(super) fn read_attempt_expired(&mut self, now: Time, id: u64, attempt: u32) {
        let Some(p) = self.parts.get(&id) else { return };
        if p.attempt != attempt {
            return;
        }
        let (target, sent, group) = (p.target, p.sent_at, p.group);
        self.router.finished(target, sent, now, false);
        if self.leader_hints.get(&group) == Some(&target) {
            self.leader_hints.remove(&group);
        }
        self.stats.retries += 1;
        self.send_part(now, id, None);
    }

    pub(super) fn write_replied(
        &mut self,
        now: Time,
        from: NodeId,
        part: PartRef,
        result: Result<LogIndex, ServeError>,
        out: &mut Vec<NodeOutput>,
    ) {
        let id = part.id;
        let Some(p) = self.parts.get(&id) else { return };
        // Only the current attempt's answer counts: a late copy of an earlier refusal would
        // send the write again while the current attempt may be proposed (applied twice).
        if p.target != from || p.attempt != part.attempt || !matches!(p.kind, PartKind::Write { .. }) {
            return;
        }
        match result {
            Ok(index) => {
                self.leader_hints.insert(p.group, from);
                self.finish_part(now, id, PartResult::Write(Ok(index)), out);
            }
            Err(ServeError::NotLeader { leader }) => self.retry_part(now, id, from, leader, out),
            Err(ServeError::NotHosted | ServeError::Overloaded) => self.retry_part(now, id, from, None, out),
            Err(e) => self.finish_part(now, id, PartResult::Write(Err(PartFailure::Serve(e))), out),
        }
    }

    pub(super) fn read_replied(
        &mut self,
        now: Time,
        from: NodeId,
        part: PartRef,
        result: Result<Served, ServeError>,
        out: &mut Vec<NodeOutput>,
    ) {
        let id = part.id;
        let Some(p) = self.parts.get(&id) else { return };
        if !matches!(p.kind, PartKind::Read { .. }) {
            return;
        }
        if p.target == from {
            self.router.finished(from, p.sent_at, now, true);
        }
        match result {
            Ok(served) => self.finish_part(now, id, PartResult::Read(Ok(served), from), out),
            // An older attempt's refusal; the current one stands.
            Err(_) if p.target != from || p.attempt != part.attempt => {}
            Err(ServeError::NotLeader { leader }) => self.retry_part(now, id, from, leader, out),
            Err(ServeError::NotHosted | ServeError::Overloaded | ServeError::Indeterminate) => {
                self.retry_part(now, id, from, None, out)
            }
            Err(e) => self.finish_part(now, id, PartResult::Read(Err(PartFailure::Serve(e)), from), out),
        }
    }

    fn finish_part(&mut self, now: Time, id: u64, result: PartResult, out: &mut Vec<NodeOutput>) {
        let Some(p) = self.parts.remove(&id) else { return };
        let Some(c) = self.clients.get_mut(&p.client) else { return };
        c.open.remove(&id);
        c.results.push((p.shard, result));
        if c.open.is_empty() {
            self.complete(now, p.client, out);
        }
    }

    /// A request's deadline: every open part fails with a timeout.
    pub(super) fn deadline(&mut self, now: Time, client: ClientId, out: &mut Vec<NodeOutput>) {
        let Some(c) = self.clients.get(&client) else {
            return self.parked_deadline(client, out);
        };
        if c.open.is_empty() {
            // Committed metadata write not yet applied here: it is done all the same.
            if c.wait_meta.is_some() {
                self.clients.remove(&client);
                self.respond(client, Ok(Reply::Done), out);
            }
            return;
        }
        for id in c.open.clone() {
            let p = &self.parts[&id];
            let result = match p.kind {
                PartKind::Write { .. } => PartResult::Write(Err(PartFailure::Timeout { in_doubt: p.in_doubt })),
                PartKind::Read { .. } => PartResult::Read(Err(PartFailure::Timeout { in_doubt: false }), p.target),
            };
            self.finish_part(now, id, result, out);
        }
    }

    /// The metadata group was applied here up to `index`: answer the creates and drops waiting.
    pub(super) fn metadata_applied(&mut self, now: Time, index: LogIndex, out: &mut Vec<NodeOutput>) {
        let ready: Vec<ClientId> =
            self.clients.iter().filter(|(_, c)| c.wait_meta.is_some_and(|w| w <= index)).map(|(id, _)| *id).collect();
        for client in ready {
            self.clients.remove(&client);
            self.respond(client, Ok(Reply::Done), out);
        }
        self.release(now, index, out);
    }
}

/// Rejects vectors of the wrong dimension or with non-finite values before anything is proposed.
fn check_vectors(op: &PointsOp, dim: u32) -> Result<(), String> {
    // Every replica would refuse it alike; refusing here spares the logs a command that fails.
    if let PointsOp::SetQuantization { quantization: Some(q) } = op {
        q.validate()?;
    }
    if let PointsOp::Upsert(points) = op {
        for p in points {
            if p.vector.len() != dim as usize {
                return Err(format!("point {:?} has {} dimensions, collection has {dim}", p.id, p.vector.len()));
            }
            if p.vector.iter().any(|x| !x.is_finite()) {
                return Err(format!("point {:?} has a non-finite component", p.id));
            }
        }
    }
    Ok(())
}
