//! The apply worker: the threads that own every shard replica's vector engine ([`Collection`]),
//! apply committed commands in log order per shard and answer the node's reads.
//!
//! Why threads: HNSW inserts and searches take milliseconds; on the node loop they would delay
//! heartbeats and elections (architecture §2, "apply and reads leave `step`"). The node loop
//! only queues jobs here and steps the results back, so it never waits for engine work.
//!
//! Shape: a dispatcher thread takes the node's jobs in order; it creates and drops engines
//! itself (`shard_engines`), hands each group's applies and snapshot work to the group's apply
//! lane (`apply_lane`: one thread per core, groups spread by id, log order per group kept), and
//! hands reads to the read pool (`read_pool`: one thread per core, any shard, under the
//! engine's read lock). So shards apply in parallel, searches run on all cores, and a read sees
//! a state between whole commands at or after the applied index the node waited for.
//!
//! Snapshots (architecture §2: the node asks, bytes stream through the driver): the group's
//! lane also serialises an engine at its applied index for `TakeSnapshot`, reads chunks of the
//! group's snapshot file for transfers, stages received chunks, and installs a verified
//! snapshot (engine replaced, file durable, then `SnapshotInstalled`), all through
//! [`SnapshotStore`]. Running them here keeps each group's take/serve/install in the node's
//! order relative to its applies, and keeps serialisation off the node loop. Serialising holds
//! the engine's read lock (reads go on); an install swaps the engine under its write lock. Limit:
//! a large serialisation delays the lane's other groups meanwhile (never the loop's heartbeats). Applies queued before an
//! install and at or below its index are skipped (the sim drops them the same way).
//!
//! Back-pressure: the job queue, the lanes' queues and the read queue are bounded (the node loop
//! waits when they are full). The result channel is unbounded so that the worker can never
//! block on the loop while the loop blocks on the worker; it holds at most one result per job
//! taken from the bounded queues that the loop has not yet read.

use super::apply_lane::{ApplyLane, SharedStore};
use super::boot_snapshots::RestoredEngine;
use super::change_feed::ChangeFeed;
use super::indexer::spawn_indexers;
use super::read_pool::{ReadJob, spawn_read_pool};
pub use super::shard_engines::ShardEngines;
use super::shard_engines::write;
use super::snapshot_store::SnapshotStore;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use tokio::sync::mpsc;
use vecraft_core::contract::NodeId;
use vecraft_core::node::metadata::group_shard;
use vecraft_core::node::shard::{ShardAnswer, ShardQuery};
use vecraft_core::raft::{GroupId, LogIndex, RaftInput, SnapshotMeta, Term};
use vecraft_core::vector::collection::{Collection, CollectionConfig};

/// Work for the apply worker, in the order the node emitted it.
#[derive(Debug)]
pub enum ApplyJob {
    /// Host an engine for a shard replica (idempotent).
    Create {
        /// The shard group.
        group: GroupId,
        /// Collection name.
        collection: String,
        /// Its configuration.
        config: CollectionConfig,
    },
    /// Drop a shard replica's engine.
    Drop {
        /// The shard group.
        group: GroupId,
    },
    /// Relabel a shard replica's engine (its collection replaced another under that name).
    Rename {
        /// The shard group.
        group: GroupId,
        /// The new name.
        collection: String,
    },
    /// Apply a committed entry.
    Apply {
        /// The shard group.
        group: GroupId,
        /// The entry's index.
        index: LogIndex,
        /// The encoded command, if any.
        command: Option<Bytes>,
        /// The entry's term (0 if the loop did not find it): a snapshot file records the term
        /// of its last applied entry, so boot can tell whether the log still joins it.
        term: Term,
        /// The apply backlog around this entry when it was handed out: entries committed
        /// after it, or handed out before it and not applied yet, whichever is more. A long
        /// backlog means the replica is catching up, and its engine defers linking further
        /// (see `IndexingPolicy::catch_up_max_unindexed`).
        behind: u64,
    },
    /// Answer a query from the applied state.
    Read {
        /// The node's read id.
        read: u64,
        /// The shard group.
        group: GroupId,
        /// The query.
        query: ShardQuery,
    },
    /// Snapshot the engine at its applied index (at least `index`), durably, then report
    /// [`ApplyDone::SnapshotTaken`]. Nothing is reported if it cannot be done (no engine, a
    /// failed write): the log then simply stays uncompacted.
    TakeSnapshot {
        /// The shard group.
        group: GroupId,
        /// The lowest acceptable index.
        index: LogIndex,
    },
    /// Read a chunk of the group's snapshot `meta` for a transfer to `to`.
    ReadSnapshotChunk {
        /// The shard group.
        group: GroupId,
        /// The follower.
        to: NodeId,
        /// Which snapshot.
        meta: SnapshotMeta,
        /// Where.
        offset: u64,
        /// How much.
        len: u64,
    },
    /// Stage a received chunk.
    StageSnapshotChunk {
        /// The shard group.
        group: GroupId,
        /// Which snapshot.
        meta: SnapshotMeta,
        /// Where the chunk starts.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Verify the staged snapshot, restore the engine from it, keep it durably, report.
    InstallSnapshot {
        /// The shard group.
        group: GroupId,
        /// The snapshot.
        meta: SnapshotMeta,
    },
}

/// What the worker reports back to the node loop.
#[derive(Debug)]
pub enum ApplyDone {
    /// `group` applied up to `index`.
    Applied {
        /// The shard group.
        group: GroupId,
        /// Its applied index.
        index: LogIndex,
    },
    /// A read's answer.
    Read {
        /// The node's read id.
        read: u64,
        /// The answer.
        result: Result<ShardAnswer, String>,
    },
    /// The engine's snapshot at `index` is durable on disk.
    SnapshotTaken {
        /// The shard group.
        group: GroupId,
        /// The engine's applied index in it.
        index: LogIndex,
        /// Its length.
        size: u64,
        /// blake3 of its bytes.
        checksum: [u8; 32],
    },
    /// An answer to a snapshot transfer request (`SnapshotChunk`, `SnapshotInstalled`,
    /// `SnapshotRejected`).
    Raft {
        /// The shard group.
        group: GroupId,
        /// The input for the group.
        input: RaftInput,
    },
}

/// Counters of the worker (for tests and metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries applied.
    pub applied: u64,
    /// Commands the engine refused (deterministically, on every replica).
    pub refused: u64,
    /// Reads answered.
    pub reads: u64,
    /// Snapshots taken and made durable.
    pub snapshots_taken: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Snapshot takes or installs that failed (I/O, verification, decoding).
    pub snapshot_failures: u64,
    /// Deferred points the background indexer linked into their graphs.
    pub indexed: u64,
}

/// How many threads the worker uses: apply lanes (shard groups are spread over them by id; each
/// group applies in log order on its lane) and readers (queries of any shard, concurrently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyThreads {
    /// Apply lanes.
    pub lanes: usize,
    /// Read threads.
    pub readers: usize,
}

impl Default for ApplyThreads {
    /// One of each per core.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ApplyThreads {
            lanes: cores,
            readers: cores,
        }
    }
}

/// Starts the worker without a snapshot store (snapshot jobs are then refused: no snapshot is
/// taken, chunks read as absent, installs are rejected). It ends when the job sender is
/// dropped.
pub fn spawn_apply_worker(
    jobs: mpsc::Receiver<ApplyJob>,
    done: mpsc::UnboundedSender<ApplyDone>,
) -> std::io::Result<std::thread::JoinHandle<ApplyStats>> {
    spawn_apply_worker_with(jobs, done, None, BTreeMap::new())
}

/// Starts the worker with the node's snapshot store and the engines boot restored from it (see
/// `boot_snapshots`), one lane and one reader per core.
pub fn spawn_apply_worker_with(
    jobs: mpsc::Receiver<ApplyJob>,
    done: mpsc::UnboundedSender<ApplyDone>,
    store: Option<SnapshotStore>,
    restored: BTreeMap<GroupId, RestoredEngine>,
) -> std::io::Result<std::thread::JoinHandle<ApplyStats>> {
    spawn_apply_worker_threads(
        jobs,
        done,
        store,
        restored,
        ApplyThreads::default(),
        ShardEngines::default(),
        ChangeFeed::default(),
    )
}

/// [`spawn_apply_worker_with`] with explicit thread counts. The returned thread is the
/// dispatcher: it takes jobs in the node's order, creates and drops engines itself, hands
/// reads to the read pool and everything else to the group's lane; joined, it returns the
/// summed counters of all threads. `engines` is where the engines live (a clone lets the
/// caller read them, e.g. point counts for metrics; only this worker changes them). `feed`
/// receives every applied change (see `change_feed`).
pub fn spawn_apply_worker_threads(
    jobs: mpsc::Receiver<ApplyJob>,
    done: mpsc::UnboundedSender<ApplyDone>,
    store: Option<SnapshotStore>,
    restored: BTreeMap<GroupId, RestoredEngine>,
    threads: ApplyThreads,
    engines: ShardEngines,
    feed: ChangeFeed,
) -> std::io::Result<std::thread::JoinHandle<ApplyStats>> {
    let lanes = threads.lanes.max(1);
    let mut applied: Vec<BTreeMap<GroupId, (LogIndex, Term)>> = vec![BTreeMap::new(); lanes];
    for (group, r) in restored {
        applied[lane_of(group, lanes)].insert(group, (r.index, r.term));
        engines.insert_if_absent(group, r.engine);
    }
    let store: SharedStore = Arc::new(Mutex::new(store));
    let mut lane_txs = Vec::with_capacity(lanes);
    let mut lane_handles = Vec::with_capacity(lanes);
    for (i, applied) in applied.into_iter().enumerate() {
        let (tx, rx) = std_mpsc::sync_channel(LANE_QUEUE);
        let lane = ApplyLane {
            engines: engines.clone(),
            applied,
            store: store.clone(),
            done: done.clone(),
            feed: feed.clone(),
        };
        lane_handles.push(
            std::thread::Builder::new()
                .name(format!("apply-lane-{i}"))
                .spawn(move || lane.run(rx))?,
        );
        lane_txs.push(tx);
    }
    let (read_tx, read_handles, answered) =
        spawn_read_pool(threads.readers, READ_QUEUE, engines.clone(), done)?;
    let indexers = spawn_indexers(&engines, lanes)?;
    std::thread::Builder::new().name("apply-dispatch".into()).spawn(move || {
        dispatch(jobs, &engines, &lane_txs, &read_tx);
        drop(lane_txs);
        drop(read_tx);
        let mut stats = ApplyStats::default();
        for h in lane_handles {
            let s = h.join().unwrap_or_default();
            stats.applied += s.applied;
            stats.refused += s.refused;
            stats.snapshots_taken += s.snapshots_taken;
            stats.snapshots_installed += s.snapshots_installed;
            stats.snapshot_failures += s.snapshot_failures;
        }
        engines.indexer().stop();
        stats.indexed = indexers.into_iter().map(|h| h.join().unwrap_or_default()).sum();
        for h in read_handles {
            let _ = h.join();
        }
        stats.reads = answered.load(Ordering::Relaxed);
        stats
    })
}

/// Jobs waiting per lane and reads waiting for a reader; when full, the dispatcher waits,
/// then the node loop's bounded job queue fills and the loop waits (back-pressure).
const LANE_QUEUE: usize = 1024;
const READ_QUEUE: usize = 1024;

/// The lane of a group. A group id is the collection's number over the shard's (see
/// `metadata::shard_group`), both dense: their sum spreads one collection's shards over
/// consecutive lanes and starts the next collection one lane further.
fn lane_of(group: GroupId, lanes: usize) -> usize {
    let (collection, shard) = group_shard(group);
    ((collection as u64 + shard as u64) % lanes as u64) as usize
}

fn dispatch(
    mut jobs: mpsc::Receiver<ApplyJob>,
    engines: &ShardEngines,
    lanes: &[std_mpsc::SyncSender<ApplyJob>],
    reads: &std_mpsc::SyncSender<ReadJob>,
) {
    while let Some(job) = jobs.blocking_recv() {
        let group = match &job {
            ApplyJob::Create {
                group,
                collection,
                config,
            } => {
                // Created here, not on the lane, so a read the node emits right after the
                // create finds the engine whichever thread answers it.
                if !engines.contains(*group) {
                    match Collection::new(collection, *config) {
                        Ok(c) => {
                            engines.insert_if_absent(*group, c);
                        }
                        // The metadata group validated the config before committing it, so
                        // this is a bug; the replica then answers reads with an error.
                        Err(err) => {
                            tracing::error!(group, error = %err, "cannot create shard engine")
                        }
                    }
                }
                continue;
            }
            ApplyJob::Drop { group } => {
                engines.remove(*group);
                *group
            }
            ApplyJob::Rename { group, collection } => {
                // Here, in the node's order: a read emitted after the rename finds the new
                // name; the lanes' change stream labels later applies with it.
                if let Some(engine) = engines.get(*group)
                    && let Err(e) = write(&engine).set_name(collection)
                {
                    tracing::error!(group, error = %e, "cannot relabel a shard engine");
                }
                continue;
            }
            ApplyJob::Read { .. } => {
                let ApplyJob::Read { read, group, query } = job else {
                    unreachable!()
                };
                if reads.send(ReadJob { read, group, query }).is_err() {
                    return; // every reader is gone: the node loop is gone
                }
                continue;
            }
            ApplyJob::Apply { group, .. }
            | ApplyJob::TakeSnapshot { group, .. }
            | ApplyJob::ReadSnapshotChunk { group, .. }
            | ApplyJob::StageSnapshotChunk { group, .. }
            | ApplyJob::InstallSnapshot { group, .. } => *group,
        };
        if lanes[lane_of(group, lanes.len())].send(job).is_err() {
            return; // a lane ended: the node loop is gone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::node::shard::encode_command;
    use vecraft_core::vector::collection::{Distance, PointsOp};
    use vecraft_core::vector::point::PointStruct;

    fn points(ids: std::ops::Range<u64>, dim: usize) -> Bytes {
        let points = ids
            .map(|i| PointStruct {
                id: i.into(),
                vector: (0..dim).map(|d| ((i * 31 + d as u64) % 17) as f32 + 1.0).collect(),
                payload: Default::default(),
            })
            .collect();
        encode_command(&PointsOp::Upsert(points))
    }

    fn create(jtx: &mpsc::Sender<ApplyJob>, group: GroupId, dim: usize) {
        jtx.blocking_send(ApplyJob::Create {
            group,
            collection: format!("c{group}"),
            config: CollectionConfig::new(dim as u32, Distance::Dot),
        })
        .unwrap();
    }

    fn apply(jtx: &mpsc::Sender<ApplyJob>, group: GroupId, index: LogIndex, command: Option<Bytes>) {
        jtx.blocking_send(ApplyJob::Apply {
            group,
            index,
            command,
            term: 1,
            behind: 0,
        })
        .unwrap();
    }

    fn count(jtx: &mpsc::Sender<ApplyJob>, read: u64, group: GroupId) {
        jtx.blocking_send(ApplyJob::Read {
            read,
            group,
            query: ShardQuery::Count(None),
        })
        .unwrap();
    }

    /// Waits for the next report (the worker runs on its own threads).
    fn next(drx: &mut mpsc::UnboundedReceiver<ApplyDone>) -> ApplyDone {
        drx.blocking_recv().expect("the worker reports")
    }

    #[test]
    fn applies_in_order_and_answers_reads_of_what_was_reported_applied() {
        let (jtx, jrx) = mpsc::channel(16);
        let (dtx, mut drx) = mpsc::unbounded_channel();
        let worker = spawn_apply_worker(jrx, dtx).unwrap();
        create(&jtx, 9, 2);
        apply(&jtx, 9, 1, Some(points(0..5, 2)));
        // A bad command is refused, still counts as applied.
        apply(&jtx, 9, 2, Some(Bytes::from_static(&[7])));
        apply(&jtx, 9, 3, None);
        for want in 1..=3 {
            assert!(matches!(next(&mut drx), ApplyDone::Applied { group: 9, index } if index == want));
        }
        // As the node does: reads only once the applied index is known.
        count(&jtx, 4, 9);
        assert!(matches!(
            next(&mut drx),
            ApplyDone::Read {
                read: 4,
                result: Ok(ShardAnswer::Count(5))
            }
        ));
        count(&jtx, 5, 8);
        assert!(matches!(next(&mut drx), ApplyDone::Read { read: 5, result: Err(_) }));
        // A stale apply (at or below the applied index) is skipped and not reported.
        apply(&jtx, 9, 3, Some(points(5..6, 2)));
        drop(jtx);
        let stats = worker.join().unwrap();
        assert_eq!(
            stats,
            ApplyStats {
                applied: 3,
                refused: 1,
                reads: 2,
                ..ApplyStats::default()
            }
        );
        assert!(drx.try_recv().is_err());
    }

    #[test]
    fn each_group_keeps_log_order_across_lanes_and_a_read_right_after_create_finds_the_engine() {
        let (jtx, jrx) = mpsc::channel(64);
        let (dtx, mut drx) = mpsc::unbounded_channel();
        let threads = ApplyThreads { lanes: 3, readers: 2 };
        let worker = spawn_apply_worker_threads(jrx, dtx, None, BTreeMap::new(), threads, ShardEngines::default(), ChangeFeed::default()).unwrap();
        for g in 1..=4 {
            create(&jtx, g, 4);
        }
        // Read of a just created group: answered, not "no engine".
        count(&jtx, 100, 4);
        // Interleaved applies: group g gets 5 commands of 10 points, ids reused across
        // commands so that only in-order application ends with the last payloads.
        for i in 1..=5u64 {
            for g in 1..=4 {
                apply(&jtx, g, i, Some(points(i * 10..i * 10 + 10, 4)));
            }
        }
        let mut last = BTreeMap::new();
        let mut read_empty = None;
        while last.values().filter(|&&i| i == 5).count() < 4 || read_empty.is_none() {
            match next(&mut drx) {
                ApplyDone::Applied { group, index } => {
                    let prev = last.insert(group, index).unwrap_or(0);
                    assert_eq!(index, prev + 1, "group {group} reported out of order");
                }
                ApplyDone::Read { read: 100, result } => read_empty = Some(result),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Found, not "no engine". The read runs beside group 4's lane, so it may already see
        // some of the applies queued after it (a later state is allowed), but only whole ones.
        assert!(
            matches!(read_empty, Some(Ok(ShardAnswer::Count(n))) if n % 10 == 0 && n <= 50),
            "{read_empty:?}"
        );
        for g in 1..=4 {
            count(&jtx, g, g);
        }
        let mut counts = BTreeMap::new();
        for _ in 1..=4 {
            let ApplyDone::Read { read, result } = next(&mut drx) else { panic!() };
            counts.insert(read, result.unwrap());
        }
        assert!(counts.values().all(|a| matches!(a, ShardAnswer::Count(50))), "{counts:?}");
        drop(jtx);
        let stats = worker.join().unwrap();
        assert_eq!((stats.applied, stats.reads), (20, 5));
    }

    /// With deferral on, an apply only stores the points; the background indexer links them
    /// (every point, counted in the stats), a search meanwhile finds any stored point (the
    /// unindexed tail is scanned exactly).
    #[test]
    fn the_indexer_links_deferred_points_and_searches_find_them_meanwhile() {
        use vecraft_core::vector::collection::SearchRequest;
        let (jtx, jrx) = mpsc::channel(16);
        let (dtx, mut drx) = mpsc::unbounded_channel();
        // 8-d vectors are 32 bytes: a 1 MB threshold defers 32,768 points.
        let engines = ShardEngines::with_indexing_threshold(1 << 20);
        let threads = ApplyThreads { lanes: 1, readers: 1 };
        let worker = spawn_apply_worker_threads(jrx, dtx, None, BTreeMap::new(), threads, engines.clone(), ChangeFeed::default()).unwrap();
        jtx.blocking_send(ApplyJob::Create { group: 0, collection: "c".into(), config: CollectionConfig::new(8, Distance::Euclid) })
            .unwrap();
        let vector = |i: u64| -> Vec<f32> { (0..8).map(|d| ((i * 7919 + d * 104_729) % 10_007) as f32 / 1_000.0).collect() };
        let batch = |ids: std::ops::Range<u64>| {
            encode_command(&PointsOp::Upsert(ids.map(|i| PointStruct { id: i.into(), vector: vector(i), payload: Default::default() }).collect()))
        };
        apply(&jtx, 0, 1, Some(batch(0..3_000)));
        assert!(matches!(next(&mut drx), ApplyDone::Applied { group: 0, index: 1 }));
        let engine = engines.get(0).unwrap();
        assert_eq!(super::super::shard_engines::read(&engine).indexing_policy().max_unindexed, 32_768);
        for probe in [0u64, 1_234, 2_999] {
            let hits = super::super::shard_engines::read(&engine).search(&SearchRequest::new(vector(probe), 1)).unwrap();
            assert_eq!((hits[0].id, hits[0].score), (probe.into(), 0.0), "stored point {probe} is found at once");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while super::super::shard_engines::read(&engine).unindexed() > 0 {
            assert!(std::time::Instant::now() < deadline, "the indexer never linked the tail");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // More points, then the worker stops (possibly before it linked them all).
        apply(&jtx, 0, 2, Some(batch(3_000..3_500)));
        assert!(matches!(next(&mut drx), ApplyDone::Applied { group: 0, index: 2 }));
        drop(jtx);
        let stats = worker.join().unwrap();
        assert_eq!(stats.applied, 2);
        assert!(stats.indexed >= 3_000 && stats.indexed <= 3_500, "{stats:?}");
        assert!(drx.try_recv().is_err());
    }

    #[test]
    fn a_read_of_one_shard_does_not_wait_behind_a_long_apply_of_another() {
        let (jtx, jrx) = mpsc::channel(16);
        let (dtx, mut drx) = mpsc::unbounded_channel();
        let threads = ApplyThreads { lanes: 2, readers: 1 };
        let worker = spawn_apply_worker_threads(jrx, dtx, None, BTreeMap::new(), threads, ShardEngines::default(), ChangeFeed::default()).unwrap();
        create(&jtx, 0, 32);
        create(&jtx, 1, 32);
        apply(&jtx, 1, 1, Some(points(0..3, 32)));
        assert!(matches!(next(&mut drx), ApplyDone::Applied { group: 1, index: 1 }));
        // A large batch on group 0 (thousands of HNSW inserts), then a read of group 1.
        apply(&jtx, 0, 1, Some(points(0..10_000, 32)));
        count(&jtx, 7, 1);
        // The read is answered first: it neither queues behind group 0's apply (as it did when
        // one thread did everything) nor needs group 0's lock.
        assert!(matches!(
            next(&mut drx),
            ApplyDone::Read {
                read: 7,
                result: Ok(ShardAnswer::Count(3))
            }
        ));
        assert!(matches!(next(&mut drx), ApplyDone::Applied { group: 0, index: 1 }));
        drop(jtx);
        worker.join().unwrap();
    }
}
