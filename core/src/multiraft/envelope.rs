//! The one message two nodes exchange per step: an envelope batching every group's traffic, with
//! heartbeats and their acknowledgements coalesced into compact per-group entries (CockroachDB's
//! coalesced heartbeats).
//!
//! A group's heartbeat is an empty `Append` whose `prev_index` is the follower's match index (or a
//! probe point). It is coalesced only when `prev_index <= commit`; the compact entry then carries
//! `commit = prev_index = min(match, leader commit)` with that entry's term, and expands back into
//! exactly the `Append` it came from: the follower still checks log matching at that index and
//! commits nothing it may not hold. (A heartbeat whose `prev_index` is above the leader's commit
//! is an active group's transient and travels uncompressed, so nothing is lost by compaction.)
//! Every successful, non-resetting `AppendResponse` is `(match_index, round, applied)` and also
//! coalesces losslessly. Everything else travels as a full [`Message`].

use crate::contract::NodeId;
use crate::raft::{GroupId, LogIndex, Message, MessageBody, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One group's heartbeat inside an [`Envelope`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The group.
    pub group: GroupId,
    /// The leader's term.
    pub term: Term,
    /// The index the follower may commit: `min(its match index, leader commit)`. The follower
    /// must hold this entry with `commit_term` (log matching), else it rejects.
    pub commit: LogIndex,
    /// Term of the entry at `commit`.
    pub commit_term: Term,
    /// The leader's heartbeat round, echoed in the acknowledgement (read and lease confirmation).
    pub round: u64,
    /// The leader is idle and asks the follower to stop its election timer (see
    /// `raft/quiesce.rs`).
    pub quiesce: bool,
}

/// One group's successful append acknowledgement inside an [`Envelope`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// The group.
    pub group: GroupId,
    /// The follower's term.
    pub term: Term,
    /// The follower durably holds the leader's log up to here.
    pub match_index: LogIndex,
    /// The round answered (0 for an append of an older term).
    pub round: u64,
    /// The follower's applied index when it answered.
    pub applied: LogIndex,
}

/// Everything one node sends another in one step.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Sending node.
    pub from: NodeId,
    /// Receiving node.
    pub to: NodeId,
    /// Coalesced heartbeats, one per group.
    pub heartbeats: Vec<Heartbeat>,
    /// Coalesced acknowledgements.
    pub acks: Vec<HeartbeatAck>,
    /// Every other group message, uncompressed.
    pub messages: Vec<Message>,
}

impl Envelope {
    /// Group messages this envelope stands for (heartbeats, acks and full messages).
    pub fn group_messages(&self) -> usize {
        self.heartbeats.len() + self.acks.len() + self.messages.len()
    }

    /// Whether it carries nothing.
    pub fn is_empty(&self) -> bool {
        self.group_messages() == 0
    }
}

impl Heartbeat {
    /// The `Append` this entry stands for, as `from`'s group member sent it to `to`.
    pub fn to_message(&self, from: NodeId, to: NodeId) -> Message {
        Message {
            group: self.group,
            from,
            to,
            term: self.term,
            body: MessageBody::Append {
                prev_index: self.commit,
                prev_term: self.commit_term,
                entries: Vec::new(),
                commit: self.commit,
                round: self.round,
            },
        }
    }
}

impl HeartbeatAck {
    /// The `AppendResponse` this entry stands for.
    pub fn to_message(&self, from: NodeId, to: NodeId) -> Message {
        Message {
            group: self.group,
            from,
            to,
            term: self.term,
            body: MessageBody::AppendResponse {
                success: true,
                match_index: self.match_index,
                reject: None,
                round: self.round,
                reset: false,
                applied: self.applied,
            },
        }
    }
}

/// Envelopes being filled during one step, one per destination node.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    by_node: BTreeMap<NodeId, Envelope>,
}

impl Outbox {
    /// Adds a group's message, coalescing it when that is lossless. `quiesce_round` is the
    /// sending leader's marked round: heartbeats of that round carry the quiesce mark.
    pub(super) fn push(&mut self, me: NodeId, msg: Message, quiesce_round: Option<u64>) {
        debug_assert_eq!(msg.from, me, "a hosted group sends as its node");
        let env =
            self.by_node.entry(msg.to).or_insert_with(|| Envelope { from: me, to: msg.to, ..Envelope::default() });
        match msg.body {
            MessageBody::Append { prev_index, prev_term, ref entries, commit, round }
                if entries.is_empty() && prev_index <= commit =>
            {
                env.heartbeats.push(Heartbeat {
                    group: msg.group,
                    term: msg.term,
                    commit: prev_index,
                    commit_term: prev_term,
                    round,
                    quiesce: quiesce_round == Some(round),
                });
            }
            MessageBody::AppendResponse { success: true, match_index, reject: None, round, reset: false, applied } => {
                env.acks.push(HeartbeatAck { group: msg.group, term: msg.term, match_index, round, applied });
            }
            _ => env.messages.push(msg),
        }
    }

    /// The filled envelopes, one per destination, in node order.
    pub(super) fn drain(&mut self) -> impl Iterator<Item = Envelope> + '_ {
        std::mem::take(&mut self.by_node).into_values().filter(|e| !e.is_empty())
    }
}
