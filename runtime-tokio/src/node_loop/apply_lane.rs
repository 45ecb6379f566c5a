//! An apply lane: a thread that applies the committed commands of the shard groups assigned to
//! it, in log order per group, and does their snapshot work (take, serve chunks, stage,
//! install), so that each group's snapshot jobs stay in the node's order relative to its
//! applies. Groups are spread over lanes by id, so shards apply in parallel on all cores while
//! each one keeps its log order.

use super::apply::{ApplyDone, ApplyJob, ApplyStats};
use super::change_feed::ChangeFeed;
use super::shard_engines::{ShardEngines, read, write};
use super::snapshot_store::{SNAPSHOT_BYTES, SNAPSHOTS_INSTALLED, SNAPSHOTS_TAKEN, SnapshotStore};
use crate::http::metrics::POINTS_LINKED_DEFERRED;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use tokio::sync::mpsc;
use vecraft_core::node::shard::{apply_command, restore_bytes, snapshot_bytes};
use vecraft_core::raft::{GroupId, LogIndex, RaftInput, SnapshotMeta, Term};

/// The snapshot store shared by all lanes (file operations are short; serialising an engine
/// happens outside the lock).
pub type SharedStore = Arc<Mutex<Option<SnapshotStore>>>;

/// What a lane owns.
pub struct ApplyLane {
    /// The engines (shared with the read pool).
    pub engines: ShardEngines,
    /// Applied index and its term, per group of this lane.
    pub applied: BTreeMap<GroupId, (LogIndex, Term)>,
    /// Snapshot files.
    pub store: SharedStore,
    /// Reports to the node loop.
    pub done: mpsc::UnboundedSender<ApplyDone>,
    /// The change stream (see `change_feed`).
    pub feed: ChangeFeed,
}

/// Committed entries behind an apply from which the replica counts as catching up: its engine
/// then stores at copy speed and links later (a leader answers writes only once it applied
/// them, so a replica replaying its log after a restart must reach the commit index soon). A
/// follower under steady load stays well below it (the leader's appends are 64 entries at most).
const CATCH_UP_BACKLOG: u64 = 256;

/// Whether a replica `behind` entries from the far end of its group's apply pipeline counts as
/// catching up (its engine defers further; its replica status says `Partial`).
pub(crate) fn catching_up(behind: u64) -> bool {
    behind >= CATCH_UP_BACKLOG
}

impl ApplyLane {
    /// Runs until the dispatcher drops the sender; returns the lane's counters.
    pub fn run(mut self, jobs: std_mpsc::Receiver<ApplyJob>) -> ApplyStats {
        let mut stats = ApplyStats::default();
        while let Ok(job) = jobs.recv() {
            let report = self.job(job, &mut stats);
            if let Some(r) = report
                && self.done.send(r).is_err()
            {
                break; // the node loop is gone
            }
        }
        stats
    }

    fn job(&mut self, job: ApplyJob, stats: &mut ApplyStats) -> Option<ApplyDone> {
        match job {
            // The dispatcher creates engines and answers reads itself.
            ApplyJob::Create { .. } | ApplyJob::Read { .. } | ApplyJob::Rename { .. } => None,
            ApplyJob::Drop { group } => {
                self.applied.remove(&group);
                if let Some(store) = lock(&self.store).as_mut()
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
                behind,
            } => {
                let a = self.applied.entry(group).or_insert((0, 0));
                if index <= a.0 {
                    // Queued before an install that already covers it: the new state must
                    // not see it (the node ignores applied reports at or below an install).
                    return None;
                }
                *a = (index, term);
                if let (Some(engine), Some(cmd)) = (self.engines.get(group), command.as_ref()) {
                    // One command under one write lock: reads see it whole or not at all. A
                    // refusal is deterministic and identical on every replica: it changes
                    // nothing anywhere, so the entry still counts as applied.
                    let mut guard = self.engines.write_for_apply(&engine);
                    guard.set_catching_up(catching_up(behind));
                    let was_on_disk = guard.config().on_disk;
                    match apply_command(&mut guard, cmd) {
                        Ok(affected) => {
                            // A `SetVectorsOnDisk` switched it on: the engine recorded the flag,
                            // the vectors move to this node's file here (under the same lock).
                            if !was_on_disk && guard.config().on_disk {
                                self.engines.prepare(&mut guard);
                            }
                            let name = guard.name().to_string();
                            let unlinked = guard.unindexed() > 0;
                            drop(guard);
                            if unlinked {
                                self.engines.indexer().wake();
                            }
                            self.feed.applied(&name, group, index, cmd, affected);
                        }
                        Err(e) => {
                            stats.refused += 1;
                            tracing::debug!(group, index, error = %e, "shard command refused by the engine");
                        }
                    }
                }
                stats.applied += 1;
                // Reported only after the write lock is released, so a read the node emits
                // once it knows this index sees it.
                Some(ApplyDone::Applied { group, index })
            }
            ApplyJob::TakeSnapshot { group, index } => self.take_snapshot(group, index, stats),
            ApplyJob::ReadSnapshotChunk {
                group,
                to,
                meta,
                offset,
                len,
            } => {
                let data = lock(&self.store)
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
                if let Some(store) = lock(&self.store).as_mut()
                    && let Err(e) = store.stage(group, &meta, offset, &data)
                {
                    tracing::warn!(group, index = meta.index, error = %e, "cannot stage a snapshot chunk");
                }
                None
            }
            ApplyJob::InstallSnapshot { group, meta } => {
                let input = match self.install(group, &meta) {
                    Ok(()) => {
                        self.applied.insert(group, (meta.index, meta.term));
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
        }
    }

    /// Serialises `group`'s engine at its applied index (under its read lock, so reads go on)
    /// and writes it durably; the report is made only after the file is durable.
    fn take_snapshot(&mut self, group: GroupId, index: LogIndex, stats: &mut ApplyStats) -> Option<ApplyDone> {
        if lock(&self.store).is_none() {
            return None;
        }
        let engine = self.engines.get(group)?;
        let &(at, term) = self.applied.get(&group)?;
        if at < index || at == 0 {
            // The node asks only for indexes this lane reported applied: a confused request.
            tracing::warn!(group, index, applied = at, "snapshot asked beyond the applied index; ignored");
            return None;
        }
        // This lane is the only writer of the group's engine, so it is at `at` now. Deferred
        // points are linked first (in steps, so reads go on), so the snapshot carries the
        // whole graph and an install does not rebuild it.
        loop {
            let linked = write(&engine).index_pending(64);
            if linked == 0 {
                break;
            }
            metrics::counter!(POINTS_LINKED_DEFERRED).increment(linked as u64);
        }
        let bytes = snapshot_bytes(&read(&engine));
        let written = lock(&self.store).as_mut()?.write(group, at, term, &bytes);
        match written {
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

    /// Verifies the staged snapshot, decodes it, makes it the group's durable snapshot file,
    /// and only then replaces the engine. Any failure changes nothing.
    fn install(&mut self, group: GroupId, meta: &SnapshotMeta) -> Result<(), String> {
        let mut guard = lock(&self.store);
        let store = guard.as_mut().ok_or("this worker keeps no snapshots")?;
        let Some(engine) = self.engines.get(group) else {
            store.abandon_staging(group);
            return Err(format!("group {group} is not hosted here"));
        };
        let restored = store
            .staged_bytes(group, meta)
            .and_then(|b| restore_bytes(&b))
            .inspect_err(|_| store.abandon_staging(group))?;
        store.commit_staged(group, meta).map_err(|e| {
            store.abandon_staging(group);
            format!("making the snapshot durable: {e}")
        })?;
        drop(guard);
        // The replica keeps its current name: the snapshot may predate a replace that renamed
        // the collection (the metadata, not the shard's log, says what it is called).
        let mut restored = restored;
        let mut current = write(&engine);
        let name = current.name().to_string();
        if let Err(e) = restored.set_name(&name) {
            tracing::error!(group, error = %e, "cannot keep a shard engine's name over an install");
        }
        self.engines.prepare(&mut restored);
        *current = restored;
        drop(current);
        self.feed.installed(&name, group, meta.index);
        Ok(())
    }
}

fn lock(store: &SharedStore) -> std::sync::MutexGuard<'_, Option<SnapshotStore>> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_of_256_entries_is_catching_up_and_255_is_not() {
        assert!(!catching_up(0));
        assert!(!catching_up(CATCH_UP_BACKLOG - 1));
        assert!(catching_up(CATCH_UP_BACKLOG));
        assert_eq!(CATCH_UP_BACKLOG, 256);
    }
}
