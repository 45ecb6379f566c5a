//! Raft consensus for one replication group, as a pure state machine.
//!
//! Drive a [`RaftNode`] with [`RaftInput`]s through [`crate::contract::StateMachine::step`] and act
//! on the [`RaftOutput`]s it returns:
//!
//! * [`RaftOutput::Send`] — deliver a message (any order, any loss: the protocol retries);
//! * [`RaftOutput::Persist`] — durably append a [`PersistRecord`] (in order!) and then step
//!   [`RaftInput::Persisted`] with its sequence number. Votes, own log entries and append
//!   acknowledgements only take effect after that acknowledgement, so disk writes can be slow,
//!   reordered with the network, or lost in a crash, exactly like packets;
//! * [`RaftOutput::Apply`] — apply a committed entry to the state machine (Raft does not own
//!   it), answer the proposing request if named, and step [`RaftInput::Applied`] back;
//! * [`RaftOutput::ReadReady`] — serve a linearizable read once the state machine has applied
//!   the given index;
//! * [`RaftOutput::Respond`] — answer a client whose request will not be applied or read here;
//! * [`RaftOutput::MembershipChanged`] — the group's membership as this node uses it changed
//!   (open connections to new members, close those to former ones).
//!
//! * [`RaftOutput::TakeSnapshot`] — snapshot the applied state (at the asked index or any later
//!   applied one), store it durably with its [`SnapshotMeta`] header (index, term, membership,
//!   size, blake3 checksum), then step [`RaftInput::SnapshotTaken`]; Raft compacts its log behind
//!   it, keeping `snapshot_keep_entries`, and persists a [`SnapshotRecord`] (part of the next
//!   [`PersistRecord`]) so recovery knows where the log starts. Asked for when
//!   `snapshot_entries` entries or `snapshot_bytes` bytes were applied since the last snapshot;
//! * [`RaftOutput::ReadSnapshotChunk`] — (leader) read bytes of a snapshot for a follower whose
//!   next entry was compacted and step [`RaftInput::SnapshotChunk`] back; Raft streams them as
//!   `InstallSnapshot` messages, at most `snapshot_window` chunks in flight, resending from the
//!   follower's acknowledged offset after a stall, at most `max_snapshot_sends` transfers at once,
//!   heartbeats flowing meanwhile;
//! * [`RaftOutput::StageSnapshotChunk`] / [`RaftOutput::InstallSnapshot`] — (follower) stage
//!   in-order chunks (staging need not survive a crash); on the last one verify size and checksum,
//!   install atomically and durably, and step [`RaftInput::SnapshotInstalled`] (or
//!   [`RaftInput::SnapshotRejected`], which restarts the transfer). Only then does Raft reset its
//!   log to the snapshot (keeping a matching suffix), move commit/applied up to it (never back),
//!   adopt its membership, and answer the leader once the record is durable. A snapshot at or
//!   below the commit index is acknowledged without install. An install from a leader of a later
//!   term repairs a damaged node like appends do.
//!
//! Raft never holds the state machine nor a snapshot's bytes. At start, a driver restores its
//! state machine from its newest snapshot, calls [`DurableState::adopt_snapshot`] on the replayed
//! WAL state and passes the snapshot's index as `applied` ([`LocalReplica::from_snapshot`] does all
//! three); the group's membership then comes from the snapshot.
//!
//! Sleep until [`RaftNode::next_deadline`] and step [`RaftInput::Tick`] then. [`LocalReplica`]
//! wraps a node with a synchronously applied state machine for drivers that need nothing more.
//!
//! Safety rules the implementation follows (and the simulator checks): a node votes at most once
//! per term and only for logs at least as up to date as its own; a leader commits only entries of
//! its own term, by a quorum of *durable* match indexes; ReadIndex reads wait for an own-term
//! commit and a quorum heartbeat round of the current term (a round echoed from an older term
//! confirms nothing); lease reads additionally need check-quorum, vote stickiness at every term
//! and a lease shortened by the configured clock-drift bound, and end for good once a leadership
//! transfer's `TimeoutNow` has left; a node whose disk was damaged neither votes nor campaigns
//! until a leader of a later term has repaired it. A follower acknowledges an append twice when
//! new entries wait for the disk (its term and vote already durable): at once for the prefix that
//! is durable, with the append's round, and again once the new entries are; so a slow write
//! delays commits but never silences the follower towards check-quorum and read rounds.
//!
//! Membership changes ([`RaftInput::ProposeConfChange`], see `conf_change` and `reconfig`) go
//! one at a time, through a joint configuration whenever more than one voter moves, and take
//! effect when applied (as in etcd); learners get the log but never vote or count in quorums; a
//! node does not campaign with a committed configuration entry unapplied; a removed leader hands
//! over to the most up-to-date remaining voter.
//!
//! Snapshots add: a log is compacted only behind a snapshot the driver durably holds of its
//! *applied* state (never beyond commit); an install never moves commit or applied backwards;
//! nothing is installed before the last chunk arrived and the whole snapshot verified.

mod conf_change;
mod config;
mod election;
mod local_replica;
mod log;
mod membership;
mod message;
mod node;
mod quiesce;
mod read;
mod reconfig;
mod replication;
mod session;
mod snapshot;
mod snapshot_recv;
mod snapshot_send;
mod status;
mod storage;
mod transfer;

pub use conf_change::{
    ConfChange, ConfChangeError, ConfChangeRefusal, ConfChangeStep, ConfEntry, ConfTransition, next_membership,
    quorums_intersect,
};
pub use config::{InjectedBugs, RaftConfig};
pub use local_replica::{LocalReplica, ReplicatedStateMachine};
pub use log::RaftLog;
pub use membership::Membership;
pub use message::{
    ClientError, ClientResponse, Entry, EntryPayload, GroupId, HardState, LogIndex, Message, MessageBody, RejectHint,
    RequestId, Term,
};
pub use node::{RaftInput, RaftNode, RaftOutput, ReadMode, Role};
pub use session::{
    ClientSessions, Seq, SessionCheck, SessionCommand, SessionConfig, SessionCounters, SessionId, SessionOutcome,
    SessionRequest,
};
pub use status::FollowerStatus;
pub use snapshot::{SnapshotError, SnapshotMeta, SnapshotRecord, SnapshotStats};
pub use storage::{
    DurableState, PersistRecord, RecoveryError, WAL_FRAME_HEADER, WalReplay, WalTail, decode_wal, encode_wal_frame,
};
