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
//! * [`RaftOutput::Respond`] — answer a client;
//! * [`RaftOutput::Applied`] — a committed entry was applied to the replicated state machine
//!   (observability, and what the simulator's checkers watch).
//!
//! Safety rules the implementation follows (and the simulator checks): a node votes at most once
//! per term and only for logs at least as up to date as its own; a leader commits only entries of
//! its own term, by a quorum of *durable* match indexes; ReadIndex reads wait for an own-term
//! commit and a quorum heartbeat round; lease reads additionally need check-quorum, vote stickiness
//! and a lease shortened by the configured clock-drift bound.

mod config;
mod log;
mod message;
mod node;
mod storage;

pub use config::{InjectedBugs, RaftConfig};
pub use log::RaftLog;
pub use message::{
    ClientError, ClientResponse, Entry, EntryPayload, GroupId, HardState, LogIndex, Message, MessageBody,
    RejectHint, RequestId, Term,
};
pub use node::{RaftInput, RaftNode, RaftOutput, ReadMode, ReplicatedStateMachine, Role};
pub use storage::{DurableState, PersistRecord, RecoveryError, WAL_FRAME_HEADER, WalReplay, decode_wal, encode_wal_frame};
