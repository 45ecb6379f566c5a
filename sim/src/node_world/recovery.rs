//! Boot-time recovery of a simulated node's WAL: one stream of every group's records, read back
//! the way the runtime reads its WAL (`runtime-tokio/src/node_loop/recovery.rs`).

use super::host::World;
use std::collections::BTreeMap;
use vecraft_core::node::metadata::METADATA_GROUP;
use vecraft_core::raft::{DurableState, GroupId, PersistRecord};

impl World {
    /// Every group's durable state after a crash. Corruption before valid records destroyed a
    /// record of an unknown group, so every group (the metadata group included) comes back
    /// damaged; records of one group that do not fit together damage that group. A torn tail
    /// was never acknowledged and is cut.
    pub(super) fn recover_groups(&mut self, m: usize) -> BTreeMap<GroupId, DurableState> {
        let rec = self.machines[m].disk.recover_stream();
        if rec.discarded_tail > 0 {
            *self.faults.entry("torn-tails-cut").or_insert(0) += 1;
        }
        let mut per_group: BTreeMap<GroupId, Vec<&PersistRecord>> = BTreeMap::new();
        for r in &rec.records {
            per_group.entry(r.group).or_default().push(r);
        }
        if rec.corrupt && self.cfg.storage.trust_corrupt_wal {
            return per_group
                .into_iter()
                .map(|(g, rs)| (g, DurableState { damaged: false, ..DurableState::replay_damaged(rs) }))
                .collect();
        }
        if rec.corrupt {
            *self.faults.entry("corruption-detected").or_insert(0) += 1;
            per_group.entry(METADATA_GROUP).or_default();
            return per_group.into_iter().map(|(g, rs)| (g, DurableState::replay_damaged(rs))).collect();
        }
        per_group
            .into_iter()
            .map(|(g, rs)| {
                let s = DurableState::replay(rs.iter().copied()).unwrap_or_else(|_| DurableState::replay_damaged(rs));
                (g, s)
            })
            .collect()
    }
}
