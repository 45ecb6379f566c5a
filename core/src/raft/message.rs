//! Raft wire types. Everything here crosses the network or the disk, so it is serde + postcard and
//! every field is validated by the receiver, never trusted.

use crate::contract::NodeId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A Raft term (election epoch).
pub type Term = u64;
/// A position in the replicated log, 1-based; 0 means "before the first entry".
pub type LogIndex = u64;
/// Which Raft group a message belongs to (many groups share one node in multi-Raft).
pub type GroupId = u64;
/// A client-chosen request identifier, echoed in the response.
pub type RequestId = u64;

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by every new leader so that it can commit an entry of its own term (Raft §8).
    Noop,
    /// An opaque command for the replicated state machine. Shared, not copied, between the log,
    /// every follower's append and the apply output.
    Command(Bytes),
    /// A configuration change and the membership it produces (see `conf_change`): it takes
    /// effect on each node when that node applies it.
    ConfChange(Box<super::conf_change::ConfEntry>),
}

impl EntryPayload {
    /// Bytes this payload costs in batches and in the uncommitted-bytes bound.
    pub fn len(&self) -> usize {
        match self {
            EntryPayload::Noop => 0,
            EntryPayload::Command(b) => b.len(),
            EntryPayload::ConfChange(c) => c.approx_len(),
        }
    }

    /// Whether the payload carries no command bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One replicated log entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// Term of the leader that created it.
    pub term: Term,
    /// Its position in the log.
    pub index: LogIndex,
    /// What it carries.
    pub payload: EntryPayload,
}

impl Entry {
    /// Approximate encoded size: payload plus a fixed allowance for term, index and framing.
    pub fn size(&self) -> usize {
        self.payload.len() + 24
    }
}

/// The state that must survive a crash besides the log: a node must never vote twice in a term.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Whom it voted for in `term`, if anyone.
    pub vote: Option<NodeId>,
}

/// Why the leader should move its `next_index` back, sent with a rejected append (the fast
/// conflict backtracking of the Raft thesis §5.3): one round trip per conflicting term instead of
/// one per entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectHint {
    /// Term of the follower's entry at the rejected `prev_index`, if it has one.
    pub conflict_term: Option<Term>,
    /// First index of `conflict_term` in the follower's log, or its last index + 1 if its log is
    /// too short.
    pub conflict_index: LogIndex,
}

/// A Raft message between two members of one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The group this message belongs to.
    pub group: GroupId,
    /// Sender.
    pub from: NodeId,
    /// Receiver.
    pub to: NodeId,
    /// Sender's term (for pre-votes: the term the sender would campaign in).
    pub term: Term,
    /// What it says.
    pub body: MessageBody,
}

/// The kinds of Raft messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// "Would you vote for me in `term`?" — changes no state on the receiver (pre-vote, thesis §9.6).
    PreVote {
        /// Index of the candidate's last entry.
        last_index: LogIndex,
        /// Term of the candidate's last entry.
        last_term: Term,
    },
    /// Answer to a pre-vote.
    PreVoteResponse {
        /// Whether the receiver would vote.
        granted: bool,
    },
    /// A real vote request.
    Vote {
        /// Index of the candidate's last entry.
        last_index: LogIndex,
        /// Term of the candidate's last entry.
        last_term: Term,
        /// The campaign was started by a leadership transfer (the old leader asked for it), so
        /// voters may disregard the old leader's lease: it gave its lease up before asking.
        transfer: bool,
    },
    /// Answer to a vote request, sent only after the vote is durable.
    VoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// Log replication and heartbeat (an append with no entries).
    Append {
        /// Index of the entry just before `entries`.
        prev_index: LogIndex,
        /// Its term; the follower must hold the same entry (log matching).
        prev_term: Term,
        /// Entries to append, contiguous from `prev_index + 1`.
        entries: Vec<Entry>,
        /// Leader's commit index (capped so the follower never commits what it may not hold).
        commit: LogIndex,
        /// Leader's heartbeat round when sent; echoed back so the leader can confirm leadership
        /// for ReadIndex and lease reads.
        round: u64,
    },
    /// Answer to an append.
    AppendResponse {
        /// Whether the follower's log matched at `prev_index`.
        success: bool,
        /// On success: the follower durably holds the leader's log up to here.
        match_index: LogIndex,
        /// On rejection: the `prev_index` that was rejected (to discard stale rejections) and
        /// where to retry.
        reject: Option<(LogIndex, RejectHint)>,
        /// The round of the append being answered; 0 when the append was from an older term
        /// (its round belongs to another leadership and must confirm nothing).
        round: u64,
        /// The follower's disk was damaged and it lost entries the leader may believe it holds:
        /// the leader must forget the follower's match index above the rejection's hint.
        reset: bool,
        /// The follower's applied index when it answered: the leader reports apply lag per
        /// replica (a replica that holds the log but is still replaying it serves stale state)
        /// and does not quiesce the group before every follower has applied everything.
        applied: LogIndex,
    },
    /// Leadership transfer: the leader has brought the receiver up to date and asks it to
    /// campaign at once, skipping pre-vote and its election timeout.
    TimeoutNow,
    /// One chunk of a snapshot for a follower whose next entry was compacted away.
    InstallSnapshot {
        /// The snapshot (every chunk carries it, so a chunk is understood on its own).
        meta: super::snapshot::SnapshotMeta,
        /// Where `data` starts in the snapshot's bytes.
        offset: u64,
        /// The chunk.
        data: Bytes,
        /// This chunk ends the snapshot: verify and install.
        last: bool,
        /// Leader's commit index (lets a damaged follower know what it must hold to be repaired).
        commit: LogIndex,
    },
    /// Answer to a snapshot chunk.
    InstallSnapshotResponse {
        /// The snapshot's index.
        index: LogIndex,
        /// The next offset the follower expects (everything before it is staged).
        next_offset: u64,
        /// The follower holds the log up to `index` durably (installed, or already had it).
        done: bool,
        /// The follower holds nothing of this transfer (a rejected install, or a chunk of a
        /// transfer it never started): resend from `next_offset`.
        restart: bool,
    },
}

/// Why a client request was not (or may not have been) carried out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientError {
    /// This node is not the leader; retry at `leader` if known. The request was not executed.
    NotLeader {
        /// The leader this node believes in, if any.
        leader: Option<NodeId>,
    },
    /// The node lost leadership after accepting the proposal: it may or may not commit.
    Indeterminate,
    /// The request was malformed for this group.
    Rejected(String),
    /// The leader holds as many uncommitted bytes as it is configured to accept; the request
    /// was not executed. Back-pressure: retry later.
    Overloaded,
    /// A leadership transfer to `to` is in progress; the request was not executed. Retry there.
    Transferring {
        /// The transfer target.
        to: NodeId,
    },
    /// A configuration change was refused; nothing was proposed.
    ConfChangeRefused(super::conf_change::ConfChangeRefusal),
}

/// A response to a client request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientResponse {
    /// The request this answers.
    pub id: RequestId,
    /// The state machine's answer, or why there is none.
    pub result: Result<Vec<u8>, ClientError>,
}
