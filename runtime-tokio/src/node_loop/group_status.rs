//! A periodic picture of every Raft group this node hosts (term, commit, applied, leader,
//! which collection and shard it serves), published by the node loop for `/metrics` and the
//! REST cluster views. Read-only: nothing here feeds back into the node.
//!
//! Why periodic: the loop turns thousands of times a second; building a per-group list on each
//! turn would cost more than the groups' own work. Once a second is plenty for a scrape.

use std::collections::BTreeMap;
use std::time::Duration;
use vecraft_core::contract::NodeId;
use vecraft_core::node::Node;
use vecraft_core::node::metadata::{METADATA_GROUP, shard_group};
use vecraft_core::raft::{GroupId, LogIndex, Role, Term};

/// How often the loop refreshes the picture.
pub const GROUP_STATUS_EVERY: Duration = Duration::from_secs(1);

/// One group as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// The collection and shard it serves (`None` for the metadata group, or a shard whose
    /// collection this node's metadata no longer lists).
    pub shard: Option<(String, u32)>,
    /// Its role here.
    pub role: Role,
    /// Its current term here.
    pub term: Term,
    /// The leader it knows.
    pub leader: Option<NodeId>,
    /// Last index in the local log.
    pub last_index: LogIndex,
    /// Commit index known here.
    pub commit: LogIndex,
    /// Applied index here.
    pub applied: LogIndex,
    /// Waiting for repair after storage damage.
    pub damaged: bool,
    /// Where this node leads: each follower and the entries of the leader's log it lacks
    /// (`last_index - match_index`); empty elsewhere.
    pub follower_lag: Vec<(NodeId, u64)>,
    /// Where this node leads: each follower and the entries it holds but had not applied at
    /// its last answer (`match_index - applied`); empty elsewhere.
    pub follower_apply_lag: Vec<(NodeId, u64)>,
}

/// The picture of every hosted group, metadata group first.
pub fn collect(node: &Node) -> Vec<GroupStatus> {
    let mut names: BTreeMap<GroupId, (String, u32)> = BTreeMap::new();
    for c in node.metadata().collections() {
        for shard in 0..c.shard_count() {
            names.insert(shard_group(c.id, shard), (c.name.clone(), shard));
        }
    }
    node.groups()
        .map(|(group, r)| GroupStatus {
            group,
            shard: if group == METADATA_GROUP { None } else { names.get(&group).cloned() },
            role: r.role(),
            term: r.term(),
            leader: r.leader(),
            last_index: r.log().last_index(),
            commit: r.commit_index(),
            applied: r.applied_index(),
            damaged: r.is_damaged(),
            follower_lag: r
                .followers()
                .iter()
                .map(|f| (f.node, r.log().last_index().saturating_sub(f.match_index)))
                .collect(),
            follower_apply_lag: r.followers().iter().map(|f| (f.node, f.match_index.saturating_sub(f.applied))).collect(),
        })
        .collect()
}
