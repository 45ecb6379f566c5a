//! WAL trimming by checkpoint: the WAL is one stream for all groups, so an old segment can only
//! go when nothing in it is still needed by any group. Instead of tracking which group still
//! needs which record, the loop rewrites every live group's durable state into the current
//! segment and then deletes everything older.
//!
//! **Payloads.** A WAL payload is either a [`PersistRecord`] in `vecraft_core::wire` form (first
//! byte `WIRE_VERSION`, 1) or a 10-byte runtime marker: [`MARKER_TAG`], a kind byte, a u64 LE.
//! Kinds: checkpoint begin (its id), checkpoint end (the same id), group damaged (the group).
//!
//! **A checkpoint** is `Begin(id)`, then per live group one `Group` record (a [`PersistRecord`]
//! behind a marker) that re-creates the group's [`DurableState`] from nothing (its hard state, a
//! `reset` snapshot record naming the state's snapshot and log base, and every retained entry),
//! preceded by `Damaged(group)` for a damaged group, then `End(id)`. A group's state is never
//! split over two records. The `id` is the WAL seq of the first record the checkpoint does *not*
//! cover: the loop clones the mirror when a checkpoint is due, builds the records from the clone
//! on a blocking thread (encoding tens of megabytes of retained log took 400 ms and stalled
//! every group's heartbeats), and writes them when they are ready, while the node's own records
//! go on being written in between. So `Begin(id)` sits at a seq at or after `id`.
//!
//! **Recovery** ([`super::recovery::recover_groups`]) starts from the last *complete*
//! checkpoint (an `End(id)` after a `Begin(id)`): each group starts from that checkpoint's
//! `Group` record, then replays its ordinary records of seq `id` and later, wherever they sit
//! (some precede the `Begin`); older ordinary records are superseded, and so is damage entirely
//! before `id`. `Group` records of any other checkpoint (torn, or superseded) are ignored: they
//! describe a state older than records written before them. Without a complete checkpoint every
//! ordinary record counts. A crash anywhere in a checkpoint, or between its `End` and the
//! deletion of the segments before `id`, therefore recovers exactly the state from before it.
//! (WALs written before checkpoints were built aside hold `Begin(id)` at seq `id` followed by
//! plain records; recovery reads them as it always did.)
//!
//! **Damage is never laundered.** A group that recovery found damaged stays damaged in the
//! mirror (until its shard is dropped) and every checkpoint writes its `Damaged` marker, so
//! deleting the segments that held the corruption does not make it trustworthy again. (The
//! conservative choice: a repaired replica is repaired again after each restart, as it is
//! without checkpoints; clearing the mark when the core reports the repair is a possible
//! refinement.)
//!
//! **The mirror** is the loop's copy of every group's durable state, kept by applying each
//! record as it is queued to the WAL. Memory: one more copy of every group's retained log (with
//! compaction on, at most `snapshot_entries` + `snapshot_keep_entries` entries per shard group,
//! the whole metadata log), plus, for a damaged group only, its records since boot. If a record
//! does not apply (recovery would call the group damaged), the mirror is marked broken and no
//! checkpoint is taken again in this process: the WAL then grows as before, never wrong.

use std::collections::BTreeMap;
use vecraft_core::raft::{DurableState, GroupId, PersistRecord, SnapshotRecord};

/// First byte of a runtime marker payload (never a `wire` version byte).
pub const MARKER_TAG: u8 = 0xCB;
const KIND_BEGIN: u8 = 1;
const KIND_END: u8 = 2;
const KIND_DAMAGED: u8 = 3;
const KIND_GROUP: u8 = 4;

/// Counter: WAL checkpoints written.
pub const WAL_CHECKPOINTS: &str = "vecraft_wal_checkpoints_total";
/// Counter: WAL segments deleted after a checkpoint.
pub const WAL_SEGMENTS_DELETED: &str = "vecraft_wal_segments_deleted_total";

/// A decoded WAL payload.
// Payloads are decoded once at boot and consumed at once; boxing the record buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A group's durable write.
    Persist(PersistRecord),
    /// A checkpoint starts.
    Begin(u64),
    /// The checkpoint with this id is complete.
    End(u64),
    /// The group's state that follows is damaged.
    Damaged(GroupId),
    /// A checkpoint's record of one group's whole state.
    Group(PersistRecord),
}

fn marker(kind: u8, value: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(10);
    p.push(MARKER_TAG);
    p.push(kind);
    p.extend_from_slice(&value.to_le_bytes());
    p
}

/// Encodes a payload for the WAL.
pub fn encode(p: &Payload) -> Vec<u8> {
    match p {
        Payload::Persist(r) => super::recovery::encode_record(r),
        Payload::Begin(id) => marker(KIND_BEGIN, *id),
        Payload::End(id) => marker(KIND_END, *id),
        Payload::Damaged(g) => marker(KIND_DAMAGED, *g),
        Payload::Group(r) => {
            let mut p = vec![MARKER_TAG, KIND_GROUP];
            p.extend_from_slice(&super::recovery::encode_record(r));
            p
        }
    }
}

/// Decodes a WAL payload; an error names what is wrong (never a panic).
pub fn decode(bytes: &[u8]) -> Result<Payload, String> {
    if bytes.first() == Some(&MARKER_TAG) && bytes.get(1) == Some(&KIND_GROUP) {
        return vecraft_core::wire::decode::<PersistRecord>(&bytes[2..])
            .map(Payload::Group)
            .map_err(|e| format!("checkpoint group record: {e}"));
    }
    if bytes.first() == Some(&MARKER_TAG) {
        let value = bytes
            .get(2..10)
            .filter(|_| bytes.len() == 10)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| format!("runtime marker of {} bytes", bytes.len()))?;
        return match bytes[1] {
            KIND_BEGIN => Ok(Payload::Begin(value)),
            KIND_END => Ok(Payload::End(value)),
            KIND_DAMAGED => Ok(Payload::Damaged(value)),
            k => Err(format!("unknown runtime marker kind {k}")),
        };
    }
    vecraft_core::wire::decode::<PersistRecord>(bytes)
        .map(Payload::Persist)
        .map_err(|e| e.to_string())
}

/// The one record that re-creates `state` for `group` from nothing.
pub fn checkpoint_record(group: GroupId, state: &DurableState) -> PersistRecord {
    debug_assert!(
        state.snapshot.is_some() || state.base_index == 0,
        "a compacted log has a snapshot"
    );
    let snapshot = state.snapshot.clone().map(|meta| SnapshotRecord {
        meta,
        log_base: state.base_index,
        log_base_term: state.base_term,
        reset: true,
    });
    PersistRecord {
        group,
        hard_state: Some(state.hard_state),
        entries: state.entries.clone(),
        snapshot,
    }
}

/// One group in the mirror.
// Most groups are clean; the damaged variant is rare and boxing the common one costs a
// pointer chase per record applied.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Mirrored {
    /// Trusted state.
    Clean(DurableState),
    /// Damaged: every record since boot, replayed with `DurableState::replay_damaged` when
    /// checkpointing (that fold cannot be resumed from a state).
    Damaged(Vec<PersistRecord>),
}

/// The loop's copy of every group's durable state (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Mirror {
    groups: BTreeMap<GroupId, Mirrored>,
    broken: Option<String>,
}

impl Mirror {
    /// Starts from what recovery rebuilt (before boot adjusts anything for snapshots):
    /// `damaged` maps each damaged group to the records recovery replayed for it.
    pub fn new(
        clean: &BTreeMap<GroupId, DurableState>,
        damaged: BTreeMap<GroupId, Vec<PersistRecord>>,
    ) -> Mirror {
        let mut groups: BTreeMap<GroupId, Mirrored> = clean
            .iter()
            .filter(|(g, _)| !damaged.contains_key(g))
            .map(|(g, s)| (*g, Mirrored::Clean(s.clone())))
            .collect();
        for (g, rs) in damaged {
            groups.insert(g, Mirrored::Damaged(rs));
        }
        Mirror {
            groups,
            broken: None,
        }
    }

    /// Applies a record queued to the WAL.
    pub fn apply(&mut self, record: &PersistRecord) {
        if self.broken.is_some() {
            return;
        }
        let g = self
            .groups
            .entry(record.group)
            .or_insert_with(|| Mirrored::Clean(DurableState::default()));
        match g {
            Mirrored::Clean(s) => {
                if let Err(e) = s.apply(0, record) {
                    tracing::error!(group = record.group, error = %e, "wal mirror: a record does not fit; checkpoints are off for this process");
                    self.broken = Some(format!("group {}: {e}", record.group));
                }
            }
            Mirrored::Damaged(rs) => rs.push(record.clone()),
        }
    }

    /// Forgets a group whose shard was dropped: the next checkpoint leaves it out.
    pub fn drop_group(&mut self, group: GroupId) {
        self.groups.remove(&group);
    }

    /// Why checkpoints are off, if they are.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// About how many bytes a checkpoint of this mirror would write now (the retained entries;
    /// a damaged group counts the records it replays).
    pub fn live_bytes(&self) -> u64 {
        self.groups
            .values()
            .map(|m| match m {
                Mirrored::Clean(s) => s.entries.iter().map(|e| e.size() as u64).sum::<u64>(),
                Mirrored::Damaged(rs) => rs.iter().flat_map(|r| &r.entries).map(|e| e.size() as u64).sum(),
            })
            .sum()
    }

    /// Groups mirrored.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group is mirrored.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The state recovery would rebuild for `group` now (damaged groups replayed).
    pub fn state(&self, group: GroupId) -> Option<DurableState> {
        match self.groups.get(&group)? {
            Mirrored::Clean(s) => Some(s.clone()),
            Mirrored::Damaged(rs) => Some(DurableState::replay_damaged(rs)),
        }
    }

    /// The payloads of a checkpoint with id `id` (`Begin`, the groups, `End`), or `None` when
    /// checkpoints are off or a group's record would exceed `max_record_len`. `id` must be the
    /// WAL seq of the first record this mirror has not applied (see the module docs).
    pub fn checkpoint(&self, id: u64, max_record_len: usize) -> Option<Vec<Vec<u8>>> {
        if self.broken.is_some() {
            return None;
        }
        let mut out = vec![encode(&Payload::Begin(id))];
        for (&g, m) in &self.groups {
            let state = match m {
                Mirrored::Clean(s) => std::borrow::Cow::Borrowed(s),
                Mirrored::Damaged(rs) => {
                    out.push(encode(&Payload::Damaged(g)));
                    std::borrow::Cow::Owned(DurableState::replay_damaged(rs))
                }
            };
            let p = encode(&Payload::Group(checkpoint_record(g, &state)));
            if p.len() > max_record_len {
                tracing::warn!(
                    group = g,
                    bytes = p.len(),
                    max_record_len,
                    "wal checkpoint skipped: a group's state exceeds the record limit"
                );
                return None;
            }
            out.push(p);
        }
        out.push(encode(&Payload::End(id)));
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_garbage_is_an_error() {
        for p in [
            Payload::Begin(7),
            Payload::End(u64::MAX),
            Payload::Damaged(3),
        ] {
            assert_eq!(decode(&encode(&p)).unwrap(), p);
        }
        assert!(decode(&[MARKER_TAG, 1, 0]).is_err());
        let group = Payload::Group(PersistRecord { group: 9, ..PersistRecord::default() });
        assert_eq!(decode(&encode(&group)).unwrap(), group);
        assert!(decode(&[MARKER_TAG, KIND_GROUP, 0xFF, 0xFF]).is_err(), "a garbled group record is an error");
        assert!(decode(&[MARKER_TAG, 9, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(&[]).is_err());
        let r = PersistRecord {
            group: 4,
            ..PersistRecord::default()
        };
        assert_eq!(
            decode(&encode(&Payload::Persist(r.clone()))).unwrap(),
            Payload::Persist(r)
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = decode(&bytes);
            let mut marked = bytes.clone();
            marked.insert(0, MARKER_TAG);
            let _ = decode(&marked);
        }
    }
}
