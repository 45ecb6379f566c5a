//! What a multi-Raft host takes in and asks its driver to do.

use super::envelope::Envelope;
use crate::contract::NodeId;
use crate::raft::{RaftInput, RaftOutput};
use crate::raft::{
    ClientResponse, DurableState, Entry, GroupId, LogIndex, PersistRecord, RaftConfig, ReadMode, RequestId,
};
use bytes::Bytes;
use std::time::Duration;

/// How a host and all its groups behave.
#[derive(Clone, Debug)]
pub struct MultiRaftConfig {
    /// The node this host runs on.
    pub node: NodeId,
    /// Template for every group's Raft configuration: its timings, flow control and bugs are
    /// used as they are; `id`, `group`, `voters` and `seed` are filled in per group.
    pub raft: RaftConfig,
    /// Timer grid: every group deadline is rounded up to a multiple of it, so the leaders of a
    /// node heartbeat in the same step and their heartbeats coalesce. The heartbeat interval is
    /// the natural value.
    pub tick: Duration,
    /// Idle groups stop their timers (see `raft/quiesce.rs`).
    pub quiescence: bool,
    /// Mixed with the group id into each group's seed.
    pub seed: u64,
}

impl MultiRaftConfig {
    /// Production defaults for `node` (Raft defaults, tick = heartbeat interval, quiescence on).
    pub fn new(node: NodeId, seed: u64) -> Self {
        let raft = RaftConfig::new(node, 0, vec![node], seed);
        MultiRaftConfig { node, tick: raft.heartbeat_interval, raft, quiescence: true, seed }
    }
}

/// Everything that can happen to a multi-Raft host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiRaftInput {
    /// Time passed; step it at (or after) `MultiRaft::next_deadline`.
    Tick,
    /// An envelope from a peer node.
    Envelope(Envelope),
    /// The driver made every persist batch up to and including `seq` durable.
    Persisted {
        /// Node-level sequence number of the newest durable batch.
        seq: u64,
    },
    /// A client asks group `group` to replicate `command`.
    Propose {
        /// The group.
        group: GroupId,
        /// Echoed in the answer.
        id: RequestId,
        /// Opaque command.
        command: Bytes,
    },
    /// A client asks group `group` for a linearizable read.
    Read {
        /// The group.
        group: GroupId,
        /// Echoed in `ReadReady` or the error.
        id: RequestId,
        /// How to make it linearizable.
        mode: ReadMode,
    },
    /// The driver applied group `group` up to `index`.
    Applied {
        /// The group.
        group: GroupId,
        /// Highest applied index.
        index: LogIndex,
    },
    /// Ask group `group`'s leader here to hand leadership to `to`.
    TransferLeadership {
        /// The group.
        group: GroupId,
        /// The next leader.
        to: NodeId,
    },
    /// Host a replica of `group` (ignored if already hosted).
    CreateGroup {
        /// The group.
        group: GroupId,
        /// All voting members, this node included.
        voters: Vec<NodeId>,
        /// What survived of its durable state (empty on first creation).
        durable: DurableState,
        /// Index its state machine has applied.
        applied: LogIndex,
    },
    /// Stop hosting `group`; in-flight persist acknowledgements for it are dropped.
    RemoveGroup {
        /// The group.
        group: GroupId,
    },
    /// The failure detector suspects `node`: groups it led wake and elect; groups it belongs to
    /// may not quiesce.
    PeerDown {
        /// The suspected node.
        node: NodeId,
    },
    /// The failure detector trusts `node` again.
    PeerUp {
        /// The node.
        node: NodeId,
    },
    /// `node` restarted (perhaps before anyone suspected it): groups it led lost their leader,
    /// and quiesced groups led here that it belongs to must talk to it again, since a follower
    /// that lost its state (a damaged disk) or cannot campaign would otherwise wait forever.
    PeerRestarted {
        /// The node.
        node: NodeId,
    },
    /// Any other input for one group, passed to it as is: configuration changes
    /// (`ProposeConfChange`) and the driver's snapshot answers (`SnapshotTaken`, `SnapshotChunk`,
    /// `SnapshotInstalled`, `SnapshotRejected`). Messages, ticks and persist acknowledgements
    /// have node-level forms above and are refused here.
    Group {
        /// The group.
        group: GroupId,
        /// Its input.
        input: RaftInput,
    },
}

/// Everything a host asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiRaftOutput {
    /// Send the envelope to its `to` node (best effort). At most one per destination per step.
    Send(Envelope),
    /// Durably append `records` (in order, after every earlier batch), then step
    /// `Persisted { seq }`. At most one per step.
    Persist {
        /// Node-level sequence number, strictly increasing.
        seq: u64,
        /// Records of all groups.
        records: Vec<PersistRecord>,
    },
    /// Apply a committed entry of `group` (then step `Applied`).
    Apply {
        /// The group.
        group: GroupId,
        /// The entry.
        entry: Entry,
        /// The request that proposed it here, if any.
        request: Option<RequestId>,
    },
    /// Read `id` of `group` may be served once `index` is applied.
    ReadReady {
        /// The group.
        group: GroupId,
        /// The read.
        id: RequestId,
        /// The index to apply first.
        index: LogIndex,
    },
    /// Answer a client whose request will not be applied or read here.
    Respond {
        /// The group.
        group: GroupId,
        /// The answer.
        response: ClientResponse,
    },
    /// Any other output of one group, as Raft emitted it: `MembershipChanged` and the snapshot
    /// requests (`TakeSnapshot`, `ReadSnapshotChunk`, `StageSnapshotChunk`, `InstallSnapshot`),
    /// answered with [`MultiRaftInput::Group`].
    Group {
        /// The group.
        group: GroupId,
        /// Its output.
        output: RaftOutput,
    },
}
