//! Serving parts: a write or read of one group, asked by some node (this one included) that
//! split a client request. Writes are proposed at the group's leader and answered when their
//! acknowledgement level holds; reads wait until the replica is fresh enough for their level,
//! then go to the driver's engine as a `Read` output.

use super::io::NodeOutput;
use super::machine::{Node, Timer};
use super::message::{PartRef, PeerMessage, ServeError, ServeLevel, Served};
use super::metadata::{METADATA_GROUP, MetaRefusal};
use super::request::{ReplicaState, ReplicaStatus, WriteAck};
use super::shard::{ShardAnswer, ShardQuery};
use crate::contract::{NodeId, StateMachine, Time};
use crate::multiraft::MultiRaftInput;
use crate::raft::{ClientError, ClientResponse, GroupId, LogIndex, Role, Term};
use bytes::Bytes;
use std::time::Duration;

/// One part being served here.
pub(super) struct Serve {
    origin: NodeId,
    part: PartRef,
    group: GroupId,
    kind: ServeKind,
}

enum ServeKind {
    Write {
        ack: WriteAck,
        /// Where the proposal landed, in which term.
        at: Option<(LogIndex, Term)>,
        /// Its `Apply` was emitted here (committed, this leadership).
        committed: bool,
    },
    Read {
        query: ShardQuery,
        /// Serve once the replica applied this (`None`: waiting for the leader's read index).
        wait: Option<LogIndex>,
        /// The `Read` output left; waiting for `ReadDone`.
        issued: bool,
    },
    /// A name barrier (see `name_barrier`): the metadata leader's confirmed read index, sent
    /// back once its own metadata is applied that far.
    MetaIndex { wait: Option<LogIndex> },
}

impl Serve {
    /// Whether this serve will want the metadata apply result at `index`.
    pub(super) fn waits_for_meta(&self, index: LogIndex) -> bool {
        self.group == METADATA_GROUP && matches!(self.kind, ServeKind::Write { at: Some((i, _)), .. } if i == index)
    }
}

fn refusal(e: &ClientError) -> ServeError {
    match e {
        ClientError::NotLeader { leader } => ServeError::NotLeader { leader: *leader },
        ClientError::Transferring { to } => ServeError::NotLeader { leader: Some(*to) },
        ClientError::Indeterminate => ServeError::Indeterminate,
        ClientError::Overloaded => ServeError::Overloaded,
        ClientError::Rejected(m) => ServeError::Refused(m.clone()),
        ClientError::ConfChangeRefused(r) => ServeError::Refused(format!("{r:?}")),
    }
}

impl Node {
    fn reply_write(&mut self, to: NodeId, part: PartRef, result: Result<LogIndex, ServeError>) {
        self.send_peer(to, PeerMessage::WriteReply { part, result });
    }

    fn reply_read(&mut self, to: NodeId, part: PartRef, result: Result<Served, ServeError>) {
        self.send_peer(to, PeerMessage::ReadReply { part, result });
    }

    fn not_leader(&self, group: GroupId) -> ServeError {
        match self.host.group(group) {
            None => ServeError::NotHosted,
            Some(r) => ServeError::NotLeader { leader: r.leader().filter(|l| *l != self.cfg.id) },
        }
    }

    /// How long a served part is kept for its answer: past the origin's deadline (`time_left`
    /// when sent) by a request time-out, so the answer of a part sent with a client's long
    /// `timeout` is not dropped before the origin stops waiting; never less than twice the
    /// default time-out. A dropped serve is forgotten silently: a write the origin then never
    /// hears of ends in doubt.
    pub(super) fn serve_expiry(&self, time_left: Duration) -> Duration {
        (self.cfg.request_timeout * 2).max(time_left.saturating_add(self.cfg.request_timeout))
    }

    /// Proposes a forwarded write if this node leads its group.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn serve_write(
        &mut self,
        now: Time,
        from: NodeId,
        part: PartRef,
        group: GroupId,
        command: Bytes,
        ack: WriteAck,
        time_left: Duration,
        out: &mut Vec<NodeOutput>,
    ) {
        match self.host.group(group) {
            Some(r) if r.role() == Role::Leader => {}
            _ => return self.reply_write(from, part, Err(self.not_leader(group))),
        }
        let id = self.fresh_id();
        self.serves.insert(id, Serve { origin: from, part, group, kind: ServeKind::Write { ack, at: None, committed: false } });
        self.timers.insert((now + self.serve_expiry(time_left), Timer::ServeExpiry(id)));
        let mut host_out = Vec::new();
        self.host.step(now, MultiRaftInput::Propose { group, id, command }, &mut host_out);
        for o in host_out {
            self.on_host_output(now, o, out);
        }
        // Still here: not refused, so the entry is the last of the log, in the current term.
        if let (Some(s), Some(r)) = (self.serves.get_mut(&id), self.host.group(group))
            && let ServeKind::Write { at, .. } = &mut s.kind
            && at.is_none()
        {
            *at = Some((r.log().last_index(), r.term()));
        }
    }

    /// Starts serving a forwarded read at the freshness its level asks for.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn serve_read(
        &mut self,
        now: Time,
        from: NodeId,
        part: PartRef,
        group: GroupId,
        query: Option<ShardQuery>,
        level: ServeLevel,
        time_left: Duration,
        out: &mut Vec<NodeOutput>,
    ) {
        let Some(raft) = self.host.group(group) else {
            return self.reply_read(from, part, Err(ServeError::NotHosted));
        };
        let leading = raft.role() == Role::Leader;
        if level == ServeLevel::Status {
            if !leading {
                return self.reply_read(from, part, Err(self.not_leader(group)));
            }
            let served =
                Served { answer: None, status: self.status_lines(now, group), applied: 0, commit: 0, since_leader: None };
            return self.reply_read(from, part, Ok(served));
        }
        if group == METADATA_GROUP {
            let ServeLevel::Linearizable(mode) = level else {
                return self.reply_read(from, part, Err(ServeError::Refused("metadata reads are linearizable".into())));
            };
            if !leading {
                return self.reply_read(from, part, Err(self.not_leader(group)));
            }
            let id = self.fresh_id();
            self.serves.insert(id, Serve { origin: from, part, group, kind: ServeKind::MetaIndex { wait: None } });
            self.timers.insert((now + self.serve_expiry(time_left), Timer::ServeExpiry(id)));
            let mut host_out = Vec::new();
            self.host.step(now, MultiRaftInput::Read { group, id, mode }, &mut host_out);
            for o in host_out {
                self.on_host_output(now, o, out);
            }
            return;
        }
        let Some(query) = query else {
            return self.reply_read(from, part, Err(ServeError::Refused("read without a query".into())));
        };
        let id = self.fresh_id();
        let wait = match level {
            ServeLevel::Applied => Some(0),
            ServeLevel::AtLeast(i) => Some(i),
            ServeLevel::Linearizable(_) if !leading => {
                return self.reply_read(from, part, Err(self.not_leader(group)));
            }
            ServeLevel::Linearizable(_) | ServeLevel::Status => None,
        };
        self.serves.insert(id, Serve { origin: from, part, group, kind: ServeKind::Read { query, wait, issued: false } });
        self.timers.insert((now + self.serve_expiry(time_left), Timer::ServeExpiry(id)));
        if let ServeLevel::Linearizable(mode) = level {
            let mut host_out = Vec::new();
            self.host.step(now, MultiRaftInput::Read { group, id, mode }, &mut host_out);
            for o in host_out {
                self.on_host_output(now, o, out);
            }
        }
    }

    /// Raft emitted the `Apply` of a proposal made for serve `id`.
    pub(super) fn mark_committed(&mut self, id: u64, index: LogIndex) {
        if let Some(Serve { kind: ServeKind::Write { at, committed, .. }, .. }) = self.serves.get_mut(&id) {
            debug_assert!(at.is_none_or(|(i, _)| i == index));
            *committed = true;
        }
    }

    /// The leader confirmed read `id` at `index`.
    pub(super) fn read_ready(&mut self, _now: Time, id: u64, index: LogIndex, _out: &mut [NodeOutput]) {
        if let Some(Serve { kind: ServeKind::Read { wait, .. } | ServeKind::MetaIndex { wait }, .. }) = self.serves.get_mut(&id) {
            *wait = Some(index);
        }
    }

    /// A group refused or abandoned serve `response.id`.
    pub(super) fn group_refused(&mut self, _now: Time, response: ClientResponse) {
        let Err(e) = response.result else {
            return; // groups answer successes through applies and read indexes
        };
        let Some(s) = self.serves.remove(&response.id) else {
            return;
        };
        let err = refusal(&e);
        match s.kind {
            ServeKind::Write { .. } => self.reply_write(s.origin, s.part, Err(err)),
            ServeKind::Read { .. } | ServeKind::MetaIndex { .. } => self.reply_read(s.origin, s.part, Err(err)),
        }
    }

    /// The driver answered a `Read` output.
    pub(super) fn read_done(&mut self, now: Time, read: u64, result: Result<ShardAnswer, String>) {
        let Some(s) = self.serves.remove(&read) else {
            return;
        };
        let applied = self.applied.get(&s.group).copied().unwrap_or(0);
        let raft = self.host.group(s.group);
        let commit = raft.map_or(0, |r| r.commit_index());
        let since_leader = raft.and_then(|r| {
            if r.role() == crate::raft::Role::Leader {
                Some(std::time::Duration::ZERO)
            } else {
                r.last_leader_contact().map(|t| now.saturating_since(t))
            }
        });
        // An engine that is gone because this node applied the drop (or replace) of its
        // collection meanwhile: not hosted any more, which the origin handles (retry, or fail
        // the read as of a name it no longer knows), not a shard failure.
        let dropped = |group| self.meta.collection_by_id(super::metadata::group_shard(group).0).is_none();
        let reply = match result {
            Err(_) if s.group != METADATA_GROUP && dropped(s.group) => Err(ServeError::NotHosted),
            result => result
                .map(|answer| Served { answer: Some(answer), status: Vec::new(), applied, commit, since_leader })
                .map_err(ServeError::Failed),
        };
        self.reply_read(s.origin, s.part, reply);
    }

    /// Answers every write whose level now holds and issues every read now fresh enough.
    pub(super) fn check_serves(&mut self, _now: Time, out: &mut Vec<NodeOutput>) {
        let mut done: Vec<(u64, Result<LogIndex, ServeError>)> = Vec::new();
        let mut issue: Vec<u64> = Vec::new();
        let mut meta_index: Vec<(u64, LogIndex)> = Vec::new();
        for (&id, s) in &self.serves {
            let applied = self.applied.get(&s.group).copied().unwrap_or(0);
            match &s.kind {
                ServeKind::Write { ack, at: Some((index, term)), committed } => {
                    let Some(r) = self.host.group(s.group) else {
                        done.push((id, Err(ServeError::Indeterminate)));
                        continue;
                    };
                    let ours = r.log().term_at(*index) == Some(*term) && r.term() == *term;
                    let durable = ours && r.durable_index() >= *index;
                    let ack = if self.bugs.quorum_ack_before_commit && *ack == WriteAck::Quorum { WriteAck::Leader } else { *ack };
                    let ok = match ack {
                        WriteAck::Leader => durable,
                        WriteAck::OneCopy => {
                            // With a single replica there is no follower to wait for.
                            let followers = r.followers();
                            durable && (followers.is_empty() || followers.iter().any(|f| f.match_index >= *index))
                        }
                        WriteAck::Quorum => *committed && applied >= *index,
                    };
                    if ok {
                        let result = match self.meta_results.remove(index) {
                            Some(Err(e)) if s.group == METADATA_GROUP => Err(match e {
                                MetaRefusal::Exists(name) => ServeError::CollectionExists(name),
                                MetaRefusal::Missing(name) => ServeError::NoSuchCollection(name),
                                MetaRefusal::Invalid(m) => ServeError::Refused(m),
                            }),
                            _ => Ok(*index),
                        };
                        done.push((id, result));
                    }
                }
                ServeKind::Write { at: None, .. } => {}
                ServeKind::Read { wait: Some(w), issued: false, .. } if applied >= *w => issue.push(id),
                ServeKind::Read { .. } => {}
                ServeKind::MetaIndex { wait: Some(w) } if applied >= *w => meta_index.push((id, *w)),
                ServeKind::MetaIndex { .. } => {}
            }
        }
        for (id, index) in meta_index {
            if let Some(s) = self.serves.remove(&id) {
                let commit = self.host.group(METADATA_GROUP).map_or(0, |r| r.commit_index());
                let served = Served { answer: None, status: Vec::new(), applied: index, commit, since_leader: None };
                self.reply_read(s.origin, s.part, Ok(served));
            }
        }
        for (id, result) in done {
            if let Some(s) = self.serves.remove(&id) {
                self.reply_write(s.origin, s.part, result);
            }
        }
        for id in issue {
            if let Some(Serve { group, kind: ServeKind::Read { query, issued, .. }, .. }) = self.serves.get_mut(&id) {
                *issued = true;
                out.push(NodeOutput::Read { read: id, group: *group, query: query.clone() });
            }
        }
    }

    /// The leader's view of every replica of `group`.
    fn status_lines(&self, now: Time, group: GroupId) -> Vec<ReplicaStatus> {
        let Some(r) = self.host.group(group) else {
            return Vec::new();
        };
        let shard = super::machine::shard_of_group(group);
        let last = r.log().last_index();
        let election = self.cfg.raft.raft.election_timeout_max;
        let mut lines = vec![ReplicaStatus {
            shard,
            node: self.cfg.id,
            leader: true,
            index: self.applied.get(&group).copied().unwrap_or(0),
            applied: self.applied.get(&group).copied().unwrap_or(0),
            lag_entries: 0,
            lag_time: std::time::Duration::ZERO,
            state: ReplicaState::Active,
        }];
        for f in r.followers() {
            let lag_entries = last.saturating_sub(f.match_index);
            let silent = now.saturating_since(f.last_advance);
            let state = if self.suspected.contains(&f.node) || (lag_entries > 0 && silent > election) {
                ReplicaState::Dead
            } else if f.snapshotting {
                ReplicaState::Snapshotting
            } else if lag_entries > 0 {
                ReplicaState::CatchingUp
            } else {
                ReplicaState::Active
            };
            lines.push(ReplicaStatus {
                shard,
                node: f.node,
                leader: false,
                index: f.match_index,
                applied: f.applied,
                lag_entries,
                lag_time: if lag_entries == 0 { std::time::Duration::ZERO } else { silent },
                state,
            });
        }
        lines
    }
}
