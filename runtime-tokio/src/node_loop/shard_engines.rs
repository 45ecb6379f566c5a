//! The vector engines of the shard replicas this node hosts, shared between the apply lanes
//! (which mutate them in log order) and the read pool (which answers queries concurrently).
//!
//! Each engine sits behind its own `RwLock`: an apply takes the write lock for one whole
//! command, so a read sees a state between commands, never half a batch; reads of one shard
//! share the lock and run in parallel on all read threads. The map itself changes only when a
//! replica is created or dropped (by the dispatcher, in the node's order).

use super::indexer::IndexerSignal;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use vecraft_core::raft::GroupId;
use vecraft_core::vector::collection::{Collection, IndexingPolicy};
use vecraft_core::vector::vector_store::VectorStoreProvider;

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
    /// Where engines of collections created with `on_disk` keep their f32 vectors (a mapped
    /// file); `None` keeps them on the heap.
    on_disk: Option<Arc<dyn VectorStoreProvider>>,
    /// Shared with the background indexer (see `indexer`).
    indexer: Arc<IndexerSignal>,
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

    /// The engine's write lock for an apply: the indexer lets go of it at once if it holds it.
    pub fn write_for_apply<'a>(&self, engine: &'a ShardEngine) -> RwLockWriteGuard<'a, Collection> {
        self.indexer.contend(|| write(engine))
    }

    /// The engine's read lock for a query (see [`Self::write_for_apply`]).
    pub fn read_for_query<'a>(&self, engine: &'a ShardEngine) -> RwLockReadGuard<'a, Collection> {
        self.indexer.contend(|| read(engine))
    }

    /// What the indexer and the threads that share engines with it tell each other.
    pub fn indexer(&self) -> &IndexerSignal {
        &self.indexer
    }

    /// Engines that defer indexing up to `bytes` of vector data each (the background indexer
    /// links deferred points; see `indexer`).
    pub fn with_indexing_threshold(bytes: u64) -> ShardEngines {
        ShardEngines { indexing_threshold_bytes: bytes, ..ShardEngines::default() }
    }

    /// Engines of `on_disk` collections keep their vectors where `provider` puts them.
    pub fn with_on_disk_vectors(mut self, provider: Arc<dyn VectorStoreProvider>) -> ShardEngines {
        self.on_disk = Some(provider);
        self
    }

    /// Gives an engine this node's indexing policy and puts its vectors where its config asks:
    /// every engine that starts being hosted (created, restored at boot, installed from a
    /// snapshot) goes through here. A restored engine comes with its vectors on the heap; they
    /// move to the file here (an installed one keeps the store of the engine it replaced).
    pub fn prepare(&self, engine: &mut Collection) {
        if engine.config().on_disk && !engine.vector_store().is_external() {
            match &self.on_disk {
                Some(provider) => engine.set_vector_store(Arc::clone(provider)),
                None => tracing::warn!(collection = engine.name(), "no vector file directory: on_disk vectors stay on the heap"),
            }
        }
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

    /// Every hosted engine, for background work (see `indexer`).
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

    #[test]
    fn on_disk_engines_move_their_vectors_to_the_file_and_others_stay_on_the_heap() {
        use vecraft_core::vector::collection::{PointsOp, SearchRequest};
        use vecraft_core::vector::point::{PointId, PointStruct};
        let dir = tempfile::tempdir().unwrap();
        let provider = Arc::new(crate::mmap_vectors::MmapVectorProvider::with_chunk_bytes(dir.path(), 4096).unwrap());
        let engines = ShardEngines::default().with_on_disk_vectors(provider.clone());
        let mut on_disk = CollectionConfig::new(8, Distance::Dot);
        on_disk.on_disk = true;
        // As restored from a snapshot at boot: points already there, on the heap.
        let mut restored = Collection::new("c", on_disk).unwrap();
        let points = (0..300u64)
            .map(|i| PointStruct { id: PointId::Num(i), vector: (0..8).map(|d| ((i * 7 + d) % 13) as f32).collect(), payload: Default::default() })
            .collect();
        restored.apply(PointsOp::Upsert(points)).unwrap();
        let query = SearchRequest::new(vec![1.0; 8], 5);
        let before = restored.search(&query).unwrap();
        assert_eq!(provider.status().file_bytes, 0);
        assert!(engines.insert_if_absent(1, restored));
        let engine = engines.get(1).unwrap();
        assert!(read(&engine).vector_store().is_external(), "moved to the file");
        assert!(provider.status().file_bytes >= 300 * 8 * 4, "{:?}", provider.status());
        assert_eq!(read(&engine).search(&query).unwrap(), before, "same answers from the file");
        // A collection without on_disk stays on the heap; no provider: on the heap too.
        assert!(engines.insert_if_absent(2, Collection::new("d", CollectionConfig::new(8, Distance::Dot)).unwrap()));
        assert!(!read(&engines.get(2).unwrap()).vector_store().is_external());
        let mut no_dir = Collection::new("e", on_disk).unwrap();
        ShardEngines::default().prepare(&mut no_dir);
        assert!(!no_dir.vector_store().is_external());
        engines.remove(1);
        drop(engine);
        assert_eq!(provider.status().file_bytes, 0, "the file goes with its engine");
    }
}
