//! The apply worker: a thread that owns every shard replica's vector engine ([`Collection`]),
//! applies committed commands in log order and answers the node's reads.
//!
//! Why a thread: HNSW inserts and searches take milliseconds; on the node loop they would delay
//! heartbeats and elections (architecture §2, "apply and reads leave `step`"). The node loop
//! only queues jobs here and steps the results back, so it never waits for engine work.
//!
//! Ordering: one queue, one thread, so every group's applies run in index order, and a read
//! queued after an apply sees it. The node emits a `Read` only once the replica's applied index
//! (which this worker reported) is fresh enough, so answering from the engine as it is then is
//! correct. Limit (said, not hidden): reads run on this same thread, serialised with applies;
//! parallel searches against a consistent applied state are future work.
//!
//! Snapshots (architecture §2: the node asks, bytes stream through the driver): this worker
//! also serialises an engine at its applied index for `TakeSnapshot`, reads chunks of the
//! group's snapshot file for transfers, stages received chunks, and installs a verified
//! snapshot (engine replaced, file durable, then `SnapshotInstalled`), all through
//! [`SnapshotStore`]. Running them here keeps each group's take/serve/install in the node's
//! order relative to its applies, and keeps serialisation off the node loop. Limit: a large
//! serialisation or install delays this worker's applies and reads meanwhile (never the loop's
//! heartbeats); serialising from a copy-on-write view is future work. Applies queued before an
//! install and at or below its index are skipped (the sim drops them the same way).
//!
//! Back-pressure: the job queue is bounded (the node loop waits when it is full). The result
//! channel is unbounded so that the worker can never block on the loop while the loop blocks on
//! the worker; it holds at most one result per job taken from the bounded queue that the loop
//! has not yet read.

use super::boot_snapshots::RestoredEngine;
use super::snapshot_store::{SNAPSHOT_BYTES, SNAPSHOTS_INSTALLED, SNAPSHOTS_TAKEN, SnapshotStore};
use bytes::Bytes;
use std::collections::BTreeMap;
use tokio::sync::mpsc;
use vecraft_core::contract::NodeId;
use vecraft_core::node::shard::{
    ShardAnswer, ShardQuery, answer, apply_command, restore_bytes, snapshot_bytes,
};
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
}

/// Starts the worker thread without a snapshot store (snapshot jobs are then refused: no
/// snapshot is taken, chunks read as absent, installs are rejected). It ends when the job
/// sender is dropped.
pub fn spawn_apply_worker(
    jobs: mpsc::Receiver<ApplyJob>,
    done: mpsc::UnboundedSender<ApplyDone>,
) -> std::io::Result<std::thread::JoinHandle<ApplyStats>> {
    spawn_apply_worker_with(jobs, done, None, BTreeMap::new())
}

/// Starts the worker thread with the node's snapshot store and the engines boot restored from
/// it (see `boot_snapshots`).
pub fn spawn_apply_worker_with(
    jobs: mpsc::Receiver<ApplyJob>,
    done: mpsc::UnboundedSender<ApplyDone>,
    store: Option<SnapshotStore>,
    restored: BTreeMap<GroupId, RestoredEngine>,
) -> std::io::Result<std::thread::JoinHandle<ApplyStats>> {
    std::thread::Builder::new()
        .name("apply-worker".into())
        .spawn(move || run(jobs, done, store, restored))
}

fn run(
    mut jobs: mpsc::Receiver<ApplyJob>,
    done: mpsc::UnboundedSender<ApplyDone>,
    mut store: Option<SnapshotStore>,
    restored: BTreeMap<GroupId, RestoredEngine>,
) -> ApplyStats {
    let mut applied: BTreeMap<GroupId, (LogIndex, Term)> =
        restored.iter().map(|(g, r)| (*g, (r.index, r.term))).collect();
    let mut engines: BTreeMap<GroupId, Collection> =
        restored.into_iter().map(|(g, r)| (g, r.engine)).collect();
    let mut stats = ApplyStats::default();
    while let Some(job) = jobs.blocking_recv() {
        let report = match job {
            ApplyJob::Create {
                group,
                collection,
                config,
            } => {
                if let std::collections::btree_map::Entry::Vacant(e) = engines.entry(group) {
                    match Collection::new(&collection, config) {
                        Ok(c) => {
                            e.insert(c);
                        }
                        // The metadata group validated the config before committing it, so
                        // this is a bug; the replica then answers reads with an error.
                        Err(err) => {
                            tracing::error!(group, error = %err, "cannot create shard engine")
                        }
                    }
                }
                None
            }
            ApplyJob::Drop { group } => {
                engines.remove(&group);
                applied.remove(&group);
                if let Some(store) = store.as_mut()
                    && let Err(e) = store.remove_others(group, None)
                {
                    tracing::warn!(group, error = %e, "cannot delete a dropped shard's snapshot files");
                }
                None
            }
            ApplyJob::Apply {
                group,
                index,
                command,
                term,
            } => {
                let a = applied.entry(group).or_insert((0, 0));
                if index <= a.0 {
                    // Queued before an install that already covers it: the new state must
                    // not see it (the node ignores applied reports at or below an install).
                    continue;
                }
                *a = (index, term);
                if let (Some(c), Some(cmd)) = (engines.get_mut(&group), command.as_ref()) {
                    // A refusal is deterministic and identical on every replica: it changes
                    // nothing anywhere, so the entry still counts as applied.
                    if let Err(e) = apply_command(c, cmd) {
                        stats.refused += 1;
                        tracing::debug!(group, index, error = %e, "shard command refused by the engine");
                    }
                }
                stats.applied += 1;
                Some(ApplyDone::Applied { group, index })
            }
            ApplyJob::Read { read, group, query } => {
                stats.reads += 1;
                let result = match engines.get(&group) {
                    Some(c) => answer(c, &query),
                    None => Err(format!("no engine for group {group} on this node")),
                };
                Some(ApplyDone::Read { read, result })
            }
            ApplyJob::TakeSnapshot { group, index } => {
                take_snapshot(&engines, &applied, store.as_mut(), group, index, &mut stats)
            }
            ApplyJob::ReadSnapshotChunk {
                group,
                to,
                meta,
                offset,
                len,
            } => {
                let data = store
                    .as_ref()
                    .and_then(|s| s.read_chunk(group, &meta, offset, len));
                let input = RaftInput::SnapshotChunk {
                    to,
                    index: meta.index,
                    offset,
                    data,
                };
                Some(ApplyDone::Raft { group, input })
            }
            ApplyJob::StageSnapshotChunk {
                group,
                meta,
                offset,
                data,
            } => {
                if let Some(store) = store.as_mut()
                    && let Err(e) = store.stage(group, &meta, offset, &data)
                {
                    tracing::warn!(group, index = meta.index, error = %e, "cannot stage a snapshot chunk");
                }
                None
            }
            ApplyJob::InstallSnapshot { group, meta } => {
                let installed = install(&mut engines, store.as_mut(), group, &meta);
                let input = match installed {
                    Ok(()) => {
                        applied.insert(group, (meta.index, meta.term));
                        stats.snapshots_installed += 1;
                        metrics::counter!(SNAPSHOTS_INSTALLED).increment(1);
                        metrics::counter!(SNAPSHOT_BYTES).increment(meta.size);
                        tracing::info!(group, index = meta.index, bytes = meta.size, "snapshot installed from the leader");
                        RaftInput::SnapshotInstalled { meta }
                    }
                    Err(e) => {
                        stats.snapshot_failures += 1;
                        tracing::warn!(group, index = meta.index, error = %e, "snapshot install rejected");
                        RaftInput::SnapshotRejected { meta }
                    }
                };
                Some(ApplyDone::Raft { group, input })
            }
        };
        if let Some(r) = report
            && done.send(r).is_err()
        {
            break; // the node loop is gone
        }
    }
    stats
}

/// Serialises `group`'s engine at its applied index and writes it durably (see the module docs
/// of `snapshot_store`); the report is made only after the file is durable.
fn take_snapshot(
    engines: &BTreeMap<GroupId, Collection>,
    applied: &BTreeMap<GroupId, (LogIndex, Term)>,
    store: Option<&mut SnapshotStore>,
    group: GroupId,
    index: LogIndex,
    stats: &mut ApplyStats,
) -> Option<ApplyDone> {
    let store = store?;
    let c = engines.get(&group)?;
    let &(at, term) = applied.get(&group)?;
    if at < index || at == 0 {
        // The node asks only for indexes this worker reported applied: a confused request.
        tracing::warn!(group, index, applied = at, "snapshot asked beyond the applied index; ignored");
        return None;
    }
    let bytes = snapshot_bytes(c);
    match store.write(group, at, term, &bytes) {
        Ok(h) => {
            stats.snapshots_taken += 1;
            metrics::counter!(SNAPSHOTS_TAKEN).increment(1);
            metrics::counter!(SNAPSHOT_BYTES).increment(h.size);
            tracing::debug!(group, index = at, bytes = h.size, "shard snapshot taken");
            Some(ApplyDone::SnapshotTaken {
                group,
                index: at,
                size: h.size,
                checksum: h.checksum,
            })
        }
        Err(e) => {
            stats.snapshot_failures += 1;
            tracing::error!(group, index = at, error = %e, "cannot write a shard snapshot; the log stays uncompacted");
            None
        }
    }
}

/// Verifies the staged snapshot, decodes it, makes it the group's durable snapshot file, and
/// only then replaces the engine. Any failure changes nothing.
fn install(
    engines: &mut BTreeMap<GroupId, Collection>,
    store: Option<&mut SnapshotStore>,
    group: GroupId,
    meta: &SnapshotMeta,
) -> Result<(), String> {
    let store = store.ok_or("this worker keeps no snapshots")?;
    if !engines.contains_key(&group) {
        store.abandon_staging(group);
        return Err(format!("group {group} is not hosted here"));
    }
    let engine = store
        .staged_bytes(group, meta)
        .and_then(|b| restore_bytes(&b))
        .inspect_err(|_| store.abandon_staging(group))?;
    store.commit_staged(group, meta).map_err(|e| {
        store.abandon_staging(group);
        format!("making the snapshot durable: {e}")
    })?;
    engines.insert(group, engine);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::node::shard::encode_command;
    use vecraft_core::vector::collection::{Distance, PointsOp};
    use vecraft_core::vector::point::PointStruct;

    #[test]
    fn applies_in_order_and_answers_reads_after_them() {
        let (jtx, jrx) = mpsc::channel(16);
        let (dtx, mut drx) = mpsc::unbounded_channel();
        let worker = spawn_apply_worker(jrx, dtx).unwrap();
        let config = CollectionConfig::new(2, Distance::Dot);
        jtx.blocking_send(ApplyJob::Create {
            group: 9,
            collection: "c".into(),
            config,
        })
        .unwrap();
        let points = (0..5u64)
            .map(|i| PointStruct {
                id: i.into(),
                vector: vec![1.0, i as f32],
                payload: Default::default(),
            })
            .collect();
        let cmd = encode_command(&PointsOp::Upsert(points));
        jtx.blocking_send(ApplyJob::Apply {
            group: 9,
            index: 1,
            command: Some(cmd),
            term: 1,
        })
        .unwrap();
        // A bad command is refused, still counts as applied.
        jtx.blocking_send(ApplyJob::Apply {
            group: 9,
            index: 2,
            command: Some(Bytes::from_static(&[7])),
            term: 1,
        })
        .unwrap();
        jtx.blocking_send(ApplyJob::Apply {
            group: 9,
            index: 3,
            command: None,
            term: 1,
        })
        .unwrap();
        jtx.blocking_send(ApplyJob::Read {
            read: 4,
            group: 9,
            query: ShardQuery::Count(None),
        })
        .unwrap();
        jtx.blocking_send(ApplyJob::Read {
            read: 5,
            group: 8,
            query: ShardQuery::Count(None),
        })
        .unwrap();
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
        let mut got = Vec::new();
        while let Ok(d) = drx.try_recv() {
            got.push(d);
        }
        assert!(matches!(got[0], ApplyDone::Applied { group: 9, index: 1 }));
        assert!(matches!(got[2], ApplyDone::Applied { group: 9, index: 3 }));
        assert!(matches!(
            &got[3],
            ApplyDone::Read {
                read: 4,
                result: Ok(ShardAnswer::Count(5))
            }
        ));
        assert!(matches!(
            &got[4],
            ApplyDone::Read {
                read: 5,
                result: Err(_)
            }
        ));
    }
}
