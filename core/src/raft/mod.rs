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
//! * [`RaftOutput::Respond`] — answer a client whose request will not be applied or read here.
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
//! until a leader of a later term has repaired it.

mod config;
mod election;
mod local_replica;
mod log;
mod membership;
mod message;
mod node;
mod quiesce;
mod read;
mod replication;
mod storage;
mod transfer;

pub use config::{InjectedBugs, RaftConfig};
pub use local_replica::{LocalReplica, ReplicatedStateMachine};
pub use log::RaftLog;
pub use membership::Membership;
pub use message::{
    ClientError, ClientResponse, Entry, EntryPayload, GroupId, HardState, LogIndex, Message, MessageBody, RejectHint,
    RequestId, Term,
};
pub use node::{RaftInput, RaftNode, RaftOutput, ReadMode, Role};
pub use storage::{
    DurableState, PersistRecord, RecoveryError, WAL_FRAME_HEADER, WalReplay, WalTail, decode_wal, encode_wal_frame,
};
