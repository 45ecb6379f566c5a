//! What a leader knows of its followers' replication, read by the node for write
//! acknowledgements (`one_copy` waits for one follower to hold an entry durably) and for replica
//! status and lag reports.

use super::node::{RaftNode, Role};
use super::message::LogIndex;
use crate::contract::{NodeId, Time};

/// One follower as its leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerStatus {
    /// The follower.
    pub node: NodeId,
    /// Highest index known durable on the follower and equal to the leader's log.
    pub match_index: LogIndex,
    /// When the leader last saw it make progress (or started a flight to it).
    pub last_progress: Time,
    /// When its match index last advanced.
    pub last_advance: Time,
    /// A snapshot is being streamed to it.
    pub snapshotting: bool,
    /// It answered since the last check-quorum.
    pub recent_active: bool,
    /// Its applied index as of its latest answer (0 before its first answer to this leader).
    pub applied: LogIndex,
}

impl RaftNode {
    /// Every follower's replication state; empty unless this node leads.
    pub fn followers(&self) -> Vec<FollowerStatus> {
        if self.role != Role::Leader {
            return Vec::new();
        }
        self.progress
            .iter()
            .filter(|(id, _)| **id != self.cfg.id)
            .map(|(id, p)| FollowerStatus {
                node: *id,
                match_index: p.match_index,
                last_progress: p.last_progress,
                last_advance: p.last_advance,
                snapshotting: self.snap.sends.contains_key(id),
                recent_active: p.recent_active,
                applied: p.applied,
            })
            .collect()
    }
}
