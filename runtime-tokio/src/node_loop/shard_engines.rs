//! The vector engines of the shard replicas this node hosts, shared between the apply lanes
//! (which mutate them in log order) and the read pool (which answers queries concurrently).
//!
//! Each engine sits behind its own `RwLock`: an apply takes the write lock for one whole
//! command, so a read sees a state between commands, never half a batch; reads of one shard
//! share the lock and run in parallel on all read threads. The map itself changes only when a
//! replica is created or dropped (by the dispatcher, in the node's order).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use vecraft_core::raft::GroupId;
use vecraft_core::vector::collection::{Collection, IndexingPolicy};

/// How many times the indexing threshold an engine may hold unindexed while its replica
/// catches up (see `IndexingPolicy::catch_up_max_unindexed`): a restarted node replays its log
/// at copy speed instead of linking every point beyond the threshold before it may answer a
/// write; searches scan the longer tail exactly meanwhile.
const CATCH_UP_FACTOR: usize = 4;

/// One shard replica's engine.
pub type ShardEngine = Arc<RwLock<Collection>>;

/// Group → engine, cheap to clone (all clones share the same map).
#[derive(Clone, Default)]
pub struct ShardEngines {
    map: Arc<RwLock<BTreeMap<GroupId, ShardEngine>>>,
    /// Bytes of vectors an engine may hold unindexed (0: index at apply); see [`Self::prepare`].
    indexing_threshold_bytes: u64,
}

impl std::fmt::Debug for ShardEngines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardEngines").field("groups", &read(&self.map).len()).finish()
    }
}

impl ShardEngines {
    /// The engine of `group`, if hosted.
    pub fn get(&self, group: GroupId) -> Option<ShardEngine> {
        read(&self.map).get(&group).cloned()
    }

    /// Engines that defer indexing up to `bytes` of vector data each (the apply lanes link
    /// deferred points when idle; see `apply_lane`).
    pub fn with_indexing_threshold(bytes: u64) -> ShardEngines {
        ShardEngines { indexing_threshold_bytes: bytes, ..ShardEngines::default() }
    }

    /// Gives an engine this node's indexing policy: every engine that starts being hosted
    /// (created, restored at boot, installed from a snapshot) goes through here.
    pub fn prepare(&self, engine: &mut Collection) {
        let row_bytes = (engine.config().vector_size as u64).max(1) * 4;
        let max_unindexed = (self.indexing_threshold_bytes / row_bytes) as usize;
        let catch_up = max_unindexed.saturating_mul(CATCH_UP_FACTOR);
        engine.set_indexing_policy(IndexingPolicy::deferred_with_catch_up(max_unindexed, catch_up));
    }

    /// Hosts `engine` for `group` unless one is already there; true if inserted.
    pub fn insert_if_absent(&self, group: GroupId, mut engine: Collection) -> bool {
        let mut map = write(&self.map);
        if map.contains_key(&group) {
            return false;
        }
        self.prepare(&mut engine);
        map.insert(group, Arc::new(RwLock::new(engine)));
        true
    }

    /// Every hosted engine, for background work (see `apply_lane`).
    pub fn all(&self) -> Vec<(GroupId, ShardEngine)> {
        read(&self.map).iter().map(|(g, e)| (*g, e.clone())).collect()
    }

    /// True if `group` is hosted.
    pub fn contains(&self, group: GroupId) -> bool {
        read(&self.map).contains_key(&group)
    }

    /// Stops hosting `group` (reads already holding its engine finish on it).
    pub fn remove(&self, group: GroupId) {
        write(&self.map).remove(&group);
    }
}

/// A read guard; a panic elsewhere while a lock was held does not stop the node from serving
/// (the engine's own invariants are checked where they matter).
pub fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// A write guard (see [`read`]).
pub fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::vector::collection::{CollectionConfig, Distance};

    #[test]
    fn an_engine_defers_the_threshold_and_four_times_it_while_catching_up() {
        let engines = ShardEngines::with_indexing_threshold(64 * 4 * 100);
        let mut engine = Collection::new("c", CollectionConfig::new(64, Distance::Dot)).unwrap();
        engines.prepare(&mut engine);
        let policy = engine.indexing_policy();
        assert_eq!((policy.max_unindexed, policy.catch_up_max_unindexed), (100, 400));
        assert!(!policy.catching_up);
        let mut immediate = Collection::new("c", CollectionConfig::new(64, Distance::Dot)).unwrap();
        ShardEngines::default().prepare(&mut immediate);
        assert_eq!(immediate.indexing_policy().hard_max_unindexed(), 0, "no threshold: link at apply");
    }
}
