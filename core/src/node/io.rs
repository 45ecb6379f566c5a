//! The node's configuration, inputs and outputs (section 1 of the architecture note).

use super::message::NodeEnvelope;
use super::request::{ClientId, NodeError, Reply, Request};
use super::router::RouterPolicy;
use super::shard::{ShardAnswer, ShardQuery};
use crate::contract::NodeId;
use crate::multiraft::MultiRaftConfig;
use crate::raft::{GroupId, LogIndex, PersistRecord, RaftInput, RaftOutput};
use crate::vector::collection::CollectionConfig;
use bytes::Bytes;
use std::time::Duration;

/// Bug switches of the node's own safety rules (active only with the `bug-injection` feature),
/// so the simulator can prove its checkers notice each rule broken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeBugs {
    /// `strong` reads go to any replica (by the router) and are served from its applied state.
    pub strong_read_at_follower: bool,
    /// `quorum` writes are acknowledged once durable on the leader, before they commit.
    pub quorum_ack_before_commit: bool,
    /// Scatter-gather merges hits by score only, in arrival order, without the id tie-break.
    pub merge_without_tie_break: bool,
    /// Alias changes take effect only on the metadata group's leader (as if aliases were a
    /// table local to the node that handled the change), not on every node applying the log.
    pub aliases_only_on_meta_leader: bool,
    /// Requests resolve collection names in this node's metadata as it stands, without a
    /// barrier read of the metadata leader's commit index (see `name_barrier`).
    pub names_from_local_metadata: bool,
}

impl NodeBugs {
    /// Whether any switch is on.
    pub fn any(&self) -> bool {
        self.strong_read_at_follower
            || self.quorum_ack_before_commit
            || self.merge_without_tie_break
            || self.aliases_only_on_meta_leader
            || self.names_from_local_metadata
    }

    /// The switches as they act: all off unless built with `bug-injection`.
    pub(super) fn effective(self) -> NodeBugs {
        if cfg!(feature = "bug-injection") { self } else { NodeBugs::default() }
    }
}

/// How one node behaves.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node.
    pub id: NodeId,
    /// The cluster's members: voters of the metadata group, candidates for shard replicas.
    pub members: Vec<NodeId>,
    /// Multi-Raft host settings and the Raft template of every group.
    pub raft: MultiRaftConfig,
    /// Replica choice for reads any replica may serve.
    pub router: RouterPolicy,
    /// A client request not answered within this fails (reads: names the shard; writes: in
    /// doubt if they may have been proposed).
    pub request_timeout: Duration,
    /// A read attempt at one replica not answered within this is retried at another (reads are
    /// safe to resend; writes are never resent).
    pub read_attempt_timeout: Duration,
    /// Wait before retrying a part whose target knew no leader.
    pub retry_backoff: Duration,
    /// Every peer gets a ping this often, so liveness is known even when all groups are quiet.
    pub ping_interval: Duration,
    /// A peer not heard from for this long is suspected: groups it led wake and elect.
    pub suspect_after: Duration,
    /// Bug switches.
    pub bugs: NodeBugs,
    /// Distinct for every boot of this node (the runtime persists a counter; the simulator
    /// counts restarts): forwarded writes carry it so duplicates are recognised.
    pub incarnation: u64,
}

impl NodeConfig {
    /// Defaults for node `id` of `members` (Raft's compaction policy for shard groups; the
    /// metadata group is never compacted: its log is a handful of entries per collection).
    pub fn new(id: NodeId, members: Vec<NodeId>, seed: u64) -> Self {
        let raft = MultiRaftConfig::new(id, seed);
        let election = raft.raft.election_timeout_max;
        NodeConfig {
            id,
            members,
            raft,
            router: RouterPolicy::LocalFirst,
            request_timeout: Duration::from_secs(5),
            read_attempt_timeout: Duration::from_millis(500),
            retry_backoff: Duration::from_millis(20),
            ping_interval: Duration::from_millis(100),
            suspect_after: election,
            bugs: NodeBugs::default(),
            incarnation: 0,
        }
    }

    /// Sets every timing derived from Raft's: the heartbeat interval (also the host's timer
    /// grid), the election timeout drawn from `[election, 2 × election)`, and the suspicion
    /// period (the largest election timeout). Longer timeouts ride out longer stalls of a
    /// loaded machine at the cost of slower failover. Errors (and changes nothing) when Raft's
    /// rules refuse the pair: the heartbeat must be positive and at most half the election
    /// timeout.
    pub fn set_raft_timing(&mut self, heartbeat: Duration, election: Duration) -> Result<(), String> {
        let mut raft = self.raft.raft.clone();
        raft.heartbeat_interval = heartbeat;
        raft.election_timeout_min = election;
        raft.election_timeout_max = election.saturating_mul(2);
        raft.validate()?;
        self.suspect_after = raft.election_timeout_max;
        self.raft.tick = heartbeat;
        self.raft.raft = raft;
        Ok(())
    }
}

/// Everything that can happen to a node.
#[derive(Clone, Debug)]
pub enum NodeInput {
    /// Time passed; step at (or after) `Node::next_deadline`.
    Tick,
    /// What a peer sent.
    Envelope(NodeEnvelope),
    /// The driver made every persist batch up to `seq` durable.
    Persisted {
        /// Newest durable batch.
        seq: u64,
    },
    /// A client request.
    Request {
        /// Echoed in the answer.
        client: ClientId,
        /// The request.
        request: Request,
        /// How long the node keeps trying before it answers with a time-out (`None`:
        /// [`NodeConfig::request_timeout`]); the client's own bound (Qdrant's `timeout`
        /// parameter, or the server's request time-out), so the node neither gives up before
        /// the client does nor works long after it stopped waiting. A part sent to a replica
        /// carries the time left, and the replica keeps it that long plus one
        /// `NodeConfig::request_timeout` (at least twice that).
        timeout: Option<Duration>,
    },
    /// The driver applied a shard group's entries up to `index`.
    Applied {
        /// The shard group.
        group: GroupId,
        /// Highest applied index.
        index: LogIndex,
    },
    /// The driver answered a `Read` output.
    ReadDone {
        /// The read.
        read: u64,
        /// The engine's answer.
        result: Result<ShardAnswer, String>,
    },
    /// The driver holds, durably, a snapshot of shard group `group`'s engine at `index` (its
    /// applied index when it took it, at or above the one asked for) of `size` bytes with blake3
    /// `checksum` (answer to [`NodeOutput::TakeSnapshot`]).
    SnapshotTaken {
        /// The shard group.
        group: GroupId,
        /// The engine's applied index in the snapshot.
        index: LogIndex,
        /// Its length.
        size: u64,
        /// blake3 of its bytes.
        checksum: [u8; 32],
    },
    /// A driver answer for one group's snapshot transfer requests (see [`NodeOutput::Raft`]):
    /// `SnapshotChunk`, `SnapshotInstalled`, `SnapshotRejected`.
    Raft {
        /// The group.
        group: GroupId,
        /// Its input.
        input: RaftInput,
    },
}

/// Everything a node asks its driver to do.
#[derive(Clone, Debug)]
pub enum NodeOutput {
    /// Send to a peer (best effort).
    Send(NodeEnvelope),
    /// Durably append, in order after every earlier batch, then step `Persisted { seq }`.
    Persist {
        /// Strictly increasing.
        seq: u64,
        /// Records of all groups.
        records: Vec<PersistRecord>,
    },
    /// Host an engine for a shard replica (idempotent: a restart replays the metadata).
    ShardCreated {
        /// The shard's group.
        group: GroupId,
        /// Collection name.
        collection: String,
        /// Its configuration.
        config: CollectionConfig,
    },
    /// A shard replica's collection now goes by another name (a replace: same group, same
    /// engine; the driver relabels it, so its change stream and snapshots carry the new name).
    ShardRenamed {
        /// The shard's group.
        group: GroupId,
        /// The collection's new name.
        collection: String,
    },
    /// Drop a shard replica's engine.
    ShardDropped {
        /// The shard's group.
        group: GroupId,
    },
    /// Apply a shard group's committed entry (in index order; `None` for entries without a
    /// command), then step `Applied`.
    Apply {
        /// The shard group.
        group: GroupId,
        /// The entry's index.
        index: LogIndex,
        /// The encoded points command, if any.
        command: Option<Bytes>,
    },
    /// Answer `query` from the shard's applied state now (the node waited until it is fresh
    /// enough), then step `ReadDone`.
    Read {
        /// Echo in `ReadDone`.
        read: u64,
        /// The shard group.
        group: GroupId,
        /// The query.
        query: ShardQuery,
    },
    /// Answer a client.
    Respond {
        /// The request.
        client: ClientId,
        /// The answer.
        result: Result<Reply, NodeError>,
    },
    /// Take a snapshot of shard group `group`'s engine ([`super::shard::snapshot_bytes`]) at its
    /// applied index (at least `index`), keep it durably, and step `SnapshotTaken`. Ignoring the
    /// request is safe: the log is then not compacted.
    TakeSnapshot {
        /// The shard group.
        group: GroupId,
        /// The lowest index the snapshot may be taken at.
        index: LogIndex,
    },
    /// One group's snapshot transfer request, as Raft emitted it (`ReadSnapshotChunk`,
    /// `StageSnapshotChunk`, `InstallSnapshot`); answered with [`NodeInput::Raft`]. An installed
    /// snapshot replaces the engine and must be kept durably (it is what a restart restores).
    Raft {
        /// The group.
        group: GroupId,
        /// The request.
        output: RaftOutput,
    },
}

#[cfg(test)]
mod timing_tests {
    use super::*;

    #[test]
    fn raft_timing_sets_every_derived_value_or_nothing() {
        let mut c = NodeConfig::new(1, vec![1, 2, 3], 7);
        c.set_raft_timing(Duration::from_millis(100), Duration::from_millis(1_000)).unwrap();
        assert_eq!(c.raft.raft.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(c.raft.tick, Duration::from_millis(100));
        assert_eq!(c.raft.raft.election_timeout_min, Duration::from_millis(1_000));
        assert_eq!(c.raft.raft.election_timeout_max, Duration::from_millis(2_000));
        assert_eq!(c.suspect_after, Duration::from_millis(2_000));
        // The boundary: a heartbeat of exactly half the election timeout is accepted, one
        // millisecond more is refused and changes nothing.
        c.set_raft_timing(Duration::from_millis(500), Duration::from_millis(1_000)).unwrap();
        let before = (c.raft.raft.heartbeat_interval, c.raft.tick, c.suspect_after);
        assert!(c.set_raft_timing(Duration::from_millis(501), Duration::from_millis(1_000)).is_err());
        assert!(c.set_raft_timing(Duration::ZERO, Duration::from_millis(1_000)).is_err());
        assert_eq!((c.raft.raft.heartbeat_interval, c.raft.tick, c.suspect_after), before);
    }
}
