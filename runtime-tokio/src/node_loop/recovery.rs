//! Boot-time state: the incarnation counter and each group's durable state rebuilt from the WAL.
//!
//! WAL layout chosen here: **one WAL record per [`PersistRecord`]**, its payload the record in
//! `vecraft_core::wire` form (a version byte, then postcard). One record per `PersistRecord`
//! rather than per node batch keeps a record's size bounded by one group's append (a batch of
//! all groups could pass the WAL's record limit), and a damaged record then names one group's
//! loss, not a whole batch's. Group commit is unaffected: the WAL writer fsyncs everything
//! queued at once.
//!
//! Recovery follows the contract of the architecture note (§2): a torn tail was never
//! acknowledged and the WAL already cut it; corruption *before* valid records destroyed
//! acknowledged data, and since a destroyed record's group is unknown, every group found in the
//! log (and the metadata group) comes back **damaged**: it may not vote or campaign until a
//! leader repairs it. Nothing is silently shortened.
//!
//! WAL checkpoints (see `checkpoint`) add runtime marker payloads: recovery starts at the last
//! complete checkpoint, ignores damage entirely before it, and keeps groups the checkpoint
//! marks damaged damaged.

use super::checkpoint::{self, Payload};
use crate::wal::Recovery;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use vecraft_core::node::metadata::METADATA_GROUP;
use vecraft_core::raft::{DurableState, GroupId, PersistRecord};

/// Name of the incarnation counter file in the data directory.
pub const INCARNATION_FILE: &str = "incarnation";

/// Encodes one persist record as a WAL payload.
pub fn encode_record(record: &PersistRecord) -> Vec<u8> {
    vecraft_core::wire::encode(record).expect("persist records always encode")
}

/// What boot recovered from the WAL.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every group's durable state.
    pub groups: BTreeMap<GroupId, DurableState>,
    /// WAL records read.
    pub records: usize,
    /// Groups that came back damaged (they wait for repair before voting).
    pub damaged: Vec<GroupId>,
    /// Why, if any group is damaged.
    pub damage: Option<String>,
    /// The records each damaged group was replayed from (the checkpoint mirror needs them:
    /// see `checkpoint`).
    pub damaged_records: BTreeMap<GroupId, Vec<PersistRecord>>,
    /// Seq of the `Begin` marker of the checkpoint recovery started from (0: none).
    pub checkpoint_seq: u64,
}

/// Rebuilds every group's durable state from what the WAL recovered, starting at the last
/// complete checkpoint (see `checkpoint` for the payloads and why this is exact).
pub fn recover_groups(recovery: &Recovery) -> Recovered {
    let mut decoded: Vec<(u64, Result<Payload, String>)> = Vec::with_capacity(recovery.records.len());
    // Checkpoint id -> seq of its `Begin`; the last complete one: (id, begin seq, end seq).
    let mut begins: BTreeMap<u64, u64> = BTreeMap::new();
    let mut chosen: Option<(u64, u64, u64)> = None;
    for r in &recovery.records {
        let p = checkpoint::decode(&r.payload);
        match &p {
            // A checkpoint is written at or after the seq it covers up to (its id).
            Ok(Payload::Begin(id)) if *id <= r.seq => {
                begins.insert(*id, r.seq);
            }
            Ok(Payload::End(id)) => {
                if let Some(&b) = begins.get(id) {
                    chosen = Some((*id, b, r.seq));
                }
            }
            _ => {}
        }
        decoded.push((r.seq, p));
    }
    // Ordinary records from seq `start` on count; the chosen checkpoint's group records go
    // first, whatever their position.
    let start = chosen.map_or(0, |(id, _, _)| id);
    let in_chosen = |seq: u64| chosen.is_some_and(|(_, b, e)| seq > b && seq < e);
    let mut per_group: BTreeMap<GroupId, Vec<PersistRecord>> = BTreeMap::new();
    let mut marked: std::collections::BTreeSet<GroupId> = std::collections::BTreeSet::new();
    let mut undecodable = 0usize;
    for (seq, p) in &decoded {
        if let Ok(Payload::Group(rec)) = p
            && in_chosen(*seq)
        {
            per_group.entry(rec.group).or_default().push(rec.clone());
        }
    }
    for (seq, p) in decoded.into_iter().filter(|(seq, _)| *seq >= start) {
        match p {
            Ok(Payload::Persist(rec)) => per_group.entry(rec.group).or_default().push(rec),
            // Group records: the chosen checkpoint's were taken above; any other checkpoint's
            // describe a state older than records before them.
            Ok(Payload::Group(_)) => {}
            Ok(Payload::Damaged(g)) => {
                marked.insert(g);
            }
            Ok(Payload::Begin(_) | Payload::End(_)) => {}
            Err(e) => {
                undecodable += 1;
                tracing::error!(seq, error = %e, "wal record passed its checksum but does not decode");
            }
        }
    }
    // Damage entirely before the checkpoint's `Begin` only destroyed superseded records.
    let corruption: Vec<_> =
        recovery.corruption.iter().filter(|c| c.before_seq.is_none_or(|b| b > start)).collect();
    let mut damage = None;
    if !corruption.is_empty() {
        damage = Some(format!("wal corruption: {corruption:?}"));
    } else if undecodable > 0 {
        damage = Some(format!("{undecodable} wal records do not decode"));
    }
    let mut out = Recovered {
        records: recovery.records.len(),
        checkpoint_seq: start,
        ..Recovered::default()
    };
    if damage.is_some() {
        // A destroyed record may have belonged to any group, the metadata group included.
        per_group.entry(METADATA_GROUP).or_default();
        marked.extend(per_group.keys().copied());
    }
    for (g, rs) in per_group {
        let state = if marked.contains(&g) {
            None
        } else {
            match DurableState::replay(&rs) {
                Ok(s) => Some(s),
                Err(e) => {
                    // Valid checksums, records that do not fit: a driver bug or a misdirected
                    // write. Same answer as corruption: never a silently shortened log.
                    tracing::error!(group = g, error = %e, "wal records of a group do not fit together");
                    damage.get_or_insert_with(|| format!("group {g}: {e}"));
                    None
                }
            }
        };
        match state {
            Some(s) => {
                out.groups.insert(g, s);
            }
            None => {
                out.groups.insert(g, DurableState::replay_damaged(&rs));
                out.damaged.push(g);
                out.damaged_records.insert(g, rs);
            }
        }
    }
    if damage.is_none() && !out.damaged.is_empty() {
        damage = Some(format!("groups {:?} were damaged before the last wal checkpoint", out.damaged));
    }
    out.damage = damage;
    out
}

/// Reads, increments and durably writes the incarnation counter in `dir` (fsync of the file,
/// then of the directory after the rename), so that every boot of the node has a distinct
/// incarnation even after a crash right after this call.
pub fn next_incarnation(dir: &Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(INCARNATION_FILE);
    let current = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let next = current.checked_add(1).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "incarnation counter overflow",
        )
    })?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(next.to_string().as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{Corruption, CorruptionKind, Record};
    use vecraft_core::raft::{Entry, EntryPayload, HardState};

    fn rec(seq: u64, group: GroupId, term: u64, index: u64) -> Record {
        let r = PersistRecord {
            group,
            hard_state: Some(HardState { term, vote: None }),
            entries: vec![Entry {
                term,
                index,
                payload: EntryPayload::Noop,
            }],
            snapshot: None,
        };
        Record {
            seq,
            payload: encode_record(&r),
        }
    }

    #[test]
    fn intact_log_rebuilds_each_group() {
        let recovery = Recovery {
            records: vec![rec(1, 0, 1, 1), rec(2, 5, 1, 1), rec(3, 0, 1, 2)],
            next_seq: 4,
            ..Recovery::default()
        };
        let r = recover_groups(&recovery);
        assert!(r.damaged.is_empty() && r.damage.is_none());
        assert_eq!(r.groups[&0].last_index(), 2);
        assert_eq!(r.groups[&5].last_index(), 1);
        assert!(!r.groups[&0].damaged);
    }

    #[test]
    fn corruption_damages_every_group_and_the_metadata_group() {
        let recovery = Recovery {
            records: vec![rec(1, 5, 1, 1), rec(3, 7, 2, 1)],
            corruption: vec![Corruption {
                kind: CorruptionKind::BadRecords,
                segment: 1,
                start: 10,
                end: 20,
                after_seq: Some(1),
                before_seq: Some(3),
            }],
            next_seq: 4,
            ..Recovery::default()
        };
        let r = recover_groups(&recovery);
        assert_eq!(r.damaged, vec![0, 5, 7]);
        assert!(r.groups.values().all(|s| s.damaged));
        assert!(r.damage.unwrap().contains("corruption"));
    }

    #[test]
    fn records_that_do_not_fit_damage_their_group_only() {
        // Index 3 after index 1: a gap.
        let recovery = Recovery {
            records: vec![rec(1, 5, 1, 1), rec(2, 5, 1, 3), rec(3, 0, 1, 1)],
            next_seq: 4,
            ..Recovery::default()
        };
        let r = recover_groups(&recovery);
        assert_eq!(r.damaged, vec![5]);
        assert!(r.groups[&5].damaged && !r.groups[&0].damaged);
    }

    #[test]
    fn undecodable_payload_is_damage_not_a_panic() {
        let recovery = Recovery {
            records: vec![
                rec(1, 0, 1, 1),
                Record {
                    seq: 2,
                    payload: vec![1, 0xff, 0xff],
                },
            ],
            next_seq: 3,
            ..Recovery::default()
        };
        let r = recover_groups(&recovery);
        assert_eq!(r.damaged, vec![0]);
    }

    #[test]
    fn incarnation_increases_at_every_call() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_incarnation(dir.path()).unwrap(), 1);
        assert_eq!(next_incarnation(dir.path()).unwrap(), 2);
        std::fs::write(dir.path().join(INCARNATION_FILE), "garbage").unwrap();
        assert!(next_incarnation(dir.path()).is_err());
    }
}
