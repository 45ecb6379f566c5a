//! Boot: which shard engines start from their snapshot file, and at which index.
//!
//! For every group the WAL recovered (its [`DurableState`]), the newest snapshot file that
//! verifies and fits the durable state is restored into an engine; the group's log is then
//! replayed after its index (`Node::restore`'s `restored_applied`). A file fits when
//!
//! 1. the WAL recorded exactly this snapshot (index, term, size, checksum of the state's
//!    `snapshot`): then [`DurableState::adopt_snapshot`] runs, as the Raft contract asks, so a
//!    log that ends before the snapshot is cut to reach it; or
//! 2. the durable log still holds the file's index with the file's term: the snapshot is newer
//!    than the last compaction the WAL recorded (a crash between the file's rename and the
//!    compaction record, or after an install whose record was lost), and the log joins it.
//!
//! Any other file (unreadable, corrupt, the log holds another entry at its index, or ends
//! before it without a record) is refused with an error log and a counter. Then:
//! - if the durable log starts at index 1 (`base_index == 0`), the engine starts empty and the
//!   whole log replays: nothing is lost;
//! - otherwise the log was compacted past every usable snapshot and the engine cannot be
//!   rebuilt here. The engine is never started silently short: the group's durable state is
//!   reset to an empty log and marked **damaged** (term and vote kept, the term raised to the
//!   highest seen), so the replica neither votes nor campaigns until a leader of a later term
//!   has repaired it, which it does with a snapshot install. A group whose only replica is this
//!   node stays unavailable (reported, never invented).
//!
//! Snapshot files of groups the WAL knows nothing of are left alone here; the worker deletes a
//! group's files when the metadata group drops the shard (`ShardDropped`, replayed at every boot
//! from the never-compacted metadata log), and a newer snapshot of a group deletes its older
//! ones.

use super::snapshot_store::{FoundSnapshot, SNAPSHOTS_REFUSED, SNAPSHOTS_RESTORED, SnapshotHeader};
use std::collections::BTreeMap;
use vecraft_core::node::shard::restore_bytes;
use vecraft_core::raft::{DurableState, GroupId, HardState, LogIndex, Term};
use vecraft_core::vector::collection::Collection;

/// An engine restored from its snapshot file.
#[derive(Debug)]
pub struct RestoredEngine {
    /// The engine.
    pub engine: Collection,
    /// Its applied index.
    pub index: LogIndex,
    /// Term of the entry at `index`.
    pub term: Term,
}

/// What boot decided.
#[derive(Debug, Default)]
pub struct BootSnapshots {
    /// Engines restored from snapshots, per group.
    pub engines: BTreeMap<GroupId, RestoredEngine>,
    /// Snapshot files refused, with the reason.
    pub refused: Vec<(String, String)>,
    /// Groups whose log was compacted past every usable snapshot: reset and marked damaged,
    /// they wait for a snapshot from a peer.
    pub need_repair: Vec<GroupId>,
}

impl BootSnapshots {
    /// `group → index` for `Node::restore`.
    pub fn restored_applied(&self) -> BTreeMap<GroupId, LogIndex> {
        self.engines.iter().map(|(g, e)| (*g, e.index)).collect()
    }
}

/// Whether the file `h` may be the engine's starting point for `state` (see the module docs).
fn fits(state: &DurableState, h: &SnapshotHeader) -> Result<bool, String> {
    if let Some(m) = &state.snapshot
        && m.index == h.index
    {
        return if h.matches(m) {
            Ok(true) // case 1: adopt
        } else {
            Err(format!(
                "the WAL recorded snapshot {} with another term, size or checksum",
                m.index
            ))
        };
    }
    let held_term = if h.index == state.base_index && h.index > 0 {
        Some(state.base_term)
    } else {
        state.entry(h.index).map(|e| e.term)
    };
    match held_term {
        Some(t) if t == h.term => Ok(false), // case 2: the log joins it
        Some(t) => Err(format!(
            "the log holds term {t} at index {}, the snapshot term {}",
            h.index, h.term
        )),
        None => Err(format!(
            "the log (entries {}..={}) neither holds index {} nor recorded this snapshot",
            state.base_index + 1,
            state.last_index(),
            h.index
        )),
    }
}

/// Decides every group's starting point and adjusts `groups` (adopted snapshots, repairs).
pub fn plan(
    groups: &mut BTreeMap<GroupId, DurableState>,
    found: Vec<FoundSnapshot>,
) -> BootSnapshots {
    let mut out = BootSnapshots::default();
    let mut by_group: BTreeMap<GroupId, Vec<FoundSnapshot>> = BTreeMap::new();
    for f in found {
        by_group.entry(f.group).or_default().push(f);
    }
    let refuse = |out: &mut BootSnapshots, f: &FoundSnapshot, why: String| {
        tracing::error!(group = f.group, index = f.index, path = %f.path.display(), reason = %why,
            "snapshot file refused at boot");
        metrics::counter!(SNAPSHOTS_REFUSED).increment(1);
        out.refused.push((f.path.display().to_string(), why));
    };
    for (group, state) in groups.iter_mut() {
        let mut files = by_group.remove(group).unwrap_or_default();
        files.sort_by_key(|f| std::cmp::Reverse(f.index));
        for f in &files {
            if out.engines.contains_key(group) {
                break;
            }
            let (h, bytes) = match &f.contents {
                Ok(c) => c,
                Err(why) => {
                    refuse(&mut out, f, why.clone());
                    continue;
                }
            };
            let adopt = match fits(state, h) {
                Ok(adopt) => adopt,
                Err(why) => {
                    refuse(&mut out, f, why);
                    continue;
                }
            };
            match restore_bytes(bytes) {
                Ok(engine) => {
                    if adopt && let Some(m) = state.snapshot.clone() {
                        state.adopt_snapshot(m);
                    }
                    debug_assert!(h.index >= state.base_index);
                    tracing::info!(
                        group,
                        index = h.index,
                        bytes = h.size,
                        points = engine.len(),
                        "shard engine restored from snapshot; log replay starts after it"
                    );
                    metrics::counter!(SNAPSHOTS_RESTORED).increment(1);
                    out.engines.insert(
                        *group,
                        RestoredEngine {
                            engine,
                            index: h.index,
                            term: h.term,
                        },
                    );
                }
                Err(why) => refuse(&mut out, f, format!("does not decode: {why}")),
            }
        }
        if !out.engines.contains_key(group) && state.base_index > 0 {
            tracing::error!(
                group,
                compacted_to = state.base_index,
                "no usable snapshot and the log is compacted: the replica is reset and waits for a snapshot from a peer"
            );
            reset_for_repair(state);
            out.need_repair.push(*group);
        }
    }
    for files in by_group.values() {
        for f in files {
            tracing::info!(
                group = f.group,
                index = f.index,
                "snapshot file of a group without WAL state left alone"
            );
        }
    }
    out
}

/// An empty log, marked damaged, keeping every term and vote promise (see the module docs).
fn reset_for_repair(state: &mut DurableState) {
    let max = state.max_term();
    let hard_state = if max > state.hard_state.term {
        HardState {
            term: max,
            vote: None,
        }
    } else {
        state.hard_state
    };
    *state = DurableState {
        hard_state,
        damaged: true,
        ..DurableState::default()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node_loop::snapshot_store::SnapshotStore;
    use vecraft_core::node::shard::snapshot_bytes;
    use vecraft_core::raft::{
        Entry, EntryPayload, Membership, PersistRecord, SnapshotMeta, SnapshotRecord,
    };
    use vecraft_core::vector::collection::{CollectionConfig, Distance};

    fn engine_bytes() -> Vec<u8> {
        let c = Collection::new("c", CollectionConfig::new(2, Distance::Dot)).unwrap();
        snapshot_bytes(&c)
    }

    fn log(term: Term, upto: LogIndex) -> PersistRecord {
        let entries = (1..=upto)
            .map(|index| Entry {
                term,
                index,
                payload: EntryPayload::Noop,
            })
            .collect();
        PersistRecord {
            group: 5,
            hard_state: Some(HardState {
                term,
                vote: Some(1),
            }),
            entries,
            snapshot: None,
        }
    }

    fn compaction(meta: &SnapshotMeta, base: LogIndex) -> PersistRecord {
        let snapshot = Some(SnapshotRecord {
            meta: meta.clone(),
            log_base: base,
            log_base_term: meta.term,
            reset: false,
        });
        PersistRecord {
            group: 5,
            snapshot,
            ..PersistRecord::default()
        }
    }

    fn boot(records: &[PersistRecord], store: &SnapshotStore) -> (DurableState, BootSnapshots) {
        let mut groups = BTreeMap::from([(5, DurableState::replay(records).unwrap())]);
        let plan = plan(&mut groups, store.load_all().unwrap());
        (groups.remove(&5).unwrap(), plan)
    }

    #[test]
    fn a_recorded_snapshot_is_restored_and_replay_starts_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SnapshotStore::open(dir.path()).unwrap();
        let bytes = engine_bytes();
        store.write(5, 8, 2, &bytes).unwrap();
        let meta = SnapshotMeta::for_bytes(8, 2, Membership::simple([1]), &bytes);
        let (state, plan) = boot(&[log(2, 10), compaction(&meta, 6)], &store);
        assert_eq!(plan.restored_applied(), BTreeMap::from([(5, 8)]));
        assert!(plan.refused.is_empty() && plan.need_repair.is_empty());
        assert_eq!((state.base_index, state.last_index()), (6, 10));
    }

    #[test]
    fn an_unrecorded_snapshot_the_log_still_holds_is_restored() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SnapshotStore::open(dir.path()).unwrap();
        store.write(5, 10, 2, &engine_bytes()).unwrap();
        let (state, plan) = boot(&[log(2, 10)], &store);
        assert_eq!(plan.restored_applied(), BTreeMap::from([(5, 10)]));
        assert_eq!(state.last_index(), 10);
        // Index 11 is beyond the log: refused, and the uncompacted log replays from 1.
        let mut store2 = SnapshotStore::open(&dir.path().join("b")).unwrap();
        store2.write(5, 11, 2, &engine_bytes()).unwrap();
        let (_, plan) = boot(&[log(2, 10)], &store2);
        assert!(plan.engines.is_empty() && plan.need_repair.is_empty());
        assert_eq!(plan.refused.len(), 1);
        // Another term at the index: refused.
        let mut store3 = SnapshotStore::open(&dir.path().join("c")).unwrap();
        store3.write(5, 10, 3, &engine_bytes()).unwrap();
        let (_, plan) = boot(&[log(2, 10)], &store3);
        assert!(plan.engines.is_empty() && plan.refused[0].1.contains("term"));
    }

    #[test]
    fn a_corrupt_snapshot_behind_a_compacted_log_marks_the_group_for_repair() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SnapshotStore::open(dir.path()).unwrap();
        let bytes = engine_bytes();
        store.write(5, 8, 2, &bytes).unwrap();
        let meta = SnapshotMeta::for_bytes(8, 2, Membership::simple([1]), &bytes);
        let p = store.path(5, 8);
        let mut raw = std::fs::read(&p).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&p, raw).unwrap();
        let (state, plan) = boot(&[log(2, 10), compaction(&meta, 8)], &store);
        assert!(plan.engines.is_empty());
        assert_eq!(plan.need_repair, vec![5]);
        assert_eq!(plan.refused.len(), 1);
        assert!(state.damaged && state.entries.is_empty() && state.base_index == 0);
        assert_eq!(
            state.hard_state,
            HardState {
                term: 2,
                vote: Some(1)
            },
            "promises kept"
        );
    }
}
