//! What nodes send each other: one [`NodeEnvelope`] per destination per step, carrying the
//! multi-Raft envelope (every group's messages, heartbeats coalesced) and the node's own
//! messages: forwarded writes and reads, their answers, and a liveness ping so a node notices a
//! dead peer even when every group between them is quiesced.

use super::request::WriteAck;
use super::shard::{ShardAnswer, ShardQuery};
use crate::contract::NodeId;
use crate::multiraft::Envelope;
use crate::raft::{GroupId, LogIndex, ReadMode};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Names one forwarded part on its origin node.
pub type PartId = u64;

/// One send of a part: the part and its attempt, echoed in the reply, so the origin acts only
/// on the answer to its current attempt (a duplicated or replayed refusal of an earlier attempt
/// must not trigger a second send of a write that the current attempt may have proposed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartRef {
    /// The part.
    pub id: PartId,
    /// Its attempt (a retry, even at the same node, is a new send).
    pub attempt: u32,
}

/// How a forwarded read must be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServeLevel {
    /// From the applied state as it is.
    Applied,
    /// After this replica applied at least this index (read-your-writes).
    AtLeast(LogIndex),
    /// Linearizably, at the leader.
    Linearizable(ReadMode),
    /// The leader's view of its replicas (no engine involved).
    Status,
}

/// Why a node could not serve a forwarded part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum ServeError {
    /// Not the group's leader; try `leader` if known. Nothing was done.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader the serving node believes in.
        leader: Option<NodeId>,
    },
    /// The group is not hosted on this node. Nothing was done.
    #[error("group not hosted")]
    NotHosted,
    /// The leader is at its uncommitted-bytes bound. Nothing was done.
    #[error("overloaded")]
    Overloaded,
    /// Leadership was lost after the write was proposed: it may or may not take effect.
    #[error("leadership lost, outcome unknown")]
    Indeterminate,
    /// The group refused the request. Nothing was done.
    #[error("refused: {0}")]
    Refused(String),
    /// The engine could not answer the query.
    #[error("query failed: {0}")]
    Failed(String),
    /// The metadata group refused a create: the name exists. Nothing was done.
    #[error("collection {0:?} already exists")]
    CollectionExists(String),
    /// The metadata group refused a drop: no such collection. Nothing was done.
    #[error("collection {0:?} not found")]
    NoSuchCollection(String),
}

impl ServeError {
    /// Whether the part may have taken effect.
    pub fn in_doubt(&self) -> bool {
        matches!(self, ServeError::Indeterminate)
    }
}

/// A successful answer to a forwarded read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// The engine's answer (or the status, encoded in `status`).
    pub answer: Option<ShardAnswer>,
    /// Replica status lines (for `ServeLevel::Status`).
    pub status: Vec<super::request::ReplicaStatus>,
    /// The serving replica's applied index.
    pub applied: LogIndex,
    /// The commit index it knew.
    pub commit: LogIndex,
    /// Time since it last heard its leader (zero if it leads; see `ReplicaStaleness`).
    pub since_leader: Option<std::time::Duration>,
}

/// A node's own message to a peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Propose `command` in `group` (to its leader) and answer once `ack` holds.
    Write {
        /// Echoed.
        part: PartRef,
        /// The origin's incarnation: with `part`, it names this send, so a duplicated or
        /// replayed copy is not proposed twice.
        origin_incarnation: u64,
        /// The group.
        group: GroupId,
        /// The command.
        command: Bytes,
        /// When to answer.
        ack: WriteAck,
        /// Time left until the origin's deadline for the request when sent: the serving node
        /// keeps the write that long (plus a request time-out) to answer it, so a client's long
        /// `timeout` is not cut short by the server's default.
        time_left: std::time::Duration,
    },
    /// The answer to a write: the entry's index, or why not.
    WriteReply {
        /// The part.
        part: PartRef,
        /// Index reached, or the failure.
        result: Result<LogIndex, ServeError>,
    },
    /// Answer `query` on `group` as `level` says.
    Read {
        /// Echoed.
        part: PartRef,
        /// The group.
        group: GroupId,
        /// The query.
        query: Option<ShardQuery>,
        /// How fresh.
        level: ServeLevel,
        /// As for `Write`.
        time_left: std::time::Duration,
    },
    /// The answer to a read.
    ReadReply {
        /// The part.
        part: PartRef,
        /// The answer or why not.
        result: Result<Served, ServeError>,
    },
    /// "I am alive" (sent every ping interval; any envelope counts as one), with the sender's
    /// incarnation: a new one tells peers it restarted, so what they knew of its groups (who led
    /// them, what it held) may be gone even if it came back before anyone suspected it.
    Ping {
        /// The sender's incarnation.
        incarnation: u64,
    },
}

/// Everything one node sends another in one step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeEnvelope {
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// Raft traffic of every group between the two.
    pub raft: Option<Envelope>,
    /// The node's own messages, in order.
    pub peer: Vec<PeerMessage>,
}
