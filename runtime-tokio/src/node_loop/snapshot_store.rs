//! The node's shard snapshots on disk: one file per shard group, `snapshots/<group>-<index>.snap`,
//! holding the engine's state (`vecraft_core::node::shard::snapshot_bytes`) at `index`.
//!
//! File layout: an 80-byte header, then the snapshot bytes.
//!
//! ```text
//! magic "VCSNAP01" | group u64 | index u64 | term u64 | size u64 | blake3(bytes) [32] | check [8]
//! ```
//!
//! (integers little-endian; `check` is the first 8 bytes of blake3 of the 72 bytes before it).
//! `term` is the term of the entry at `index`: at boot it tells whether the durable log still
//! holds the entry the engine applied last (see `boot_snapshots`). The rest of the Raft
//! `SnapshotMeta` (membership) is not known when the engine is serialised; it reaches the WAL in
//! the compaction record the node writes after `SnapshotTaken`.
//!
//! Durability: a file is written as `<name>.tmp`, fsynced, renamed, and the directory fsynced;
//! only then are the group's other snapshot files deleted (and the directory fsynced again), so a
//! crash leaves either the old file, or the new one, or both (boot takes the newest that
//! verifies). A received snapshot is staged as `<group>.staging` with room for the header; the
//! install writes the header, fsyncs and renames the staging file into place, so its bytes are
//! written once.
//!
//! All calls block on disk I/O; the apply worker makes them (it owns the engines, and one
//! thread keeps "take", "read a chunk" and "install" of a group in the node's order).

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use vecraft_core::raft::{GroupId, LogIndex, SnapshotMeta, Term};

/// Name of the snapshot directory under the data directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
const MAGIC: &[u8; 8] = b"VCSNAP01";
/// Bytes before the snapshot bytes in a file.
pub const HEADER_LEN: usize = 80;
const EXT: &str = ".snap";
const TMP: &str = ".tmp";
const STAGING: &str = ".staging";

/// Counter: shard snapshots taken and made durable.
pub const SNAPSHOTS_TAKEN: &str = "vecraft_node_snapshots_taken_total";
/// Counter: shard snapshots received from a leader and installed.
pub const SNAPSHOTS_INSTALLED: &str = "vecraft_node_snapshots_installed_total";
/// Counter: bytes of shard snapshots written (taken or installed).
pub const SNAPSHOT_BYTES: &str = "vecraft_node_snapshot_bytes_total";
/// Counter: shard engines restored from a snapshot file at boot.
pub const SNAPSHOTS_RESTORED: &str = "vecraft_node_snapshots_restored_total";
/// Counter: snapshot files refused at boot (unreadable, corrupt, or not matching the WAL).
pub const SNAPSHOTS_REFUSED: &str = "vecraft_node_snapshots_refused_total";

/// What a snapshot file's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The shard group.
    pub group: GroupId,
    /// The engine's applied index in the snapshot.
    pub index: LogIndex,
    /// Term of the entry at `index` (0 if the driver did not know it).
    pub term: Term,
    /// Length of the snapshot bytes.
    pub size: u64,
    /// blake3 of the snapshot bytes.
    pub checksum: [u8; 32],
}

impl SnapshotHeader {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&self.group.to_le_bytes());
        h[16..24].copy_from_slice(&self.index.to_le_bytes());
        h[24..32].copy_from_slice(&self.term.to_le_bytes());
        h[32..40].copy_from_slice(&self.size.to_le_bytes());
        h[40..72].copy_from_slice(&self.checksum);
        let check = blake3::hash(&h[..72]);
        h[72..80].copy_from_slice(&check.as_bytes()[..8]);
        h
    }

    /// Parses a header; `None` if the magic or the header check is wrong.
    pub fn decode(h: &[u8]) -> Option<SnapshotHeader> {
        let h = h.get(..HEADER_LEN)?;
        if &h[..8] != MAGIC || blake3::hash(&h[..72]).as_bytes()[..8] != h[72..80] {
            return None;
        }
        let u = |r: std::ops::Range<usize>| u64::from_le_bytes(h[r].try_into().expect("8 bytes"));
        Some(SnapshotHeader {
            group: u(8..16),
            index: u(16..24),
            term: u(24..32),
            size: u(32..40),
            checksum: h[40..72].try_into().expect("32 bytes"),
        })
    }

    /// Whether this header describes exactly the snapshot `meta` names.
    pub fn matches(&self, meta: &SnapshotMeta) -> bool {
        self.index == meta.index
            && self.term == meta.term
            && self.size == meta.size
            && self.checksum == meta.checksum
    }
}

/// A snapshot file found at boot.
#[derive(Debug)]
pub struct FoundSnapshot {
    /// Its path.
    pub path: PathBuf,
    /// Its header (checked) and bytes (verified against the header's size and checksum), or why
    /// it cannot be used.
    pub contents: Result<(SnapshotHeader, Vec<u8>), String>,
    /// Group and index from the file name.
    pub group: GroupId,
    /// Index from the file name.
    pub index: LogIndex,
}

/// A staging copy being received.
#[derive(Debug)]
struct Staging {
    meta: SnapshotMeta,
    len: u64,
    file: File,
}

/// The snapshot directory of one node.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    staging: BTreeMap<GroupId, Staging>,
}

fn file_name(group: GroupId, index: LogIndex) -> String {
    format!("{group}-{index}{EXT}")
}

fn parse_name(name: &str) -> Option<(GroupId, LogIndex)> {
    let stem = name.strip_suffix(EXT)?;
    let (g, i) = stem.split_once('-')?;
    Some((g.parse().ok()?, i.parse().ok()?))
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl SnapshotStore {
    /// Opens (creating) `data_dir/snapshots`, removing leftovers of interrupted writes
    /// (`.tmp`) and transfers (`.staging`): neither was ever acknowledged.
    pub fn open(data_dir: &Path) -> io::Result<SnapshotStore> {
        let dir = data_dir.join(SNAPSHOT_DIR);
        fs::create_dir_all(&dir)?;
        let mut removed = false;
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(TMP) || name.ends_with(STAGING) {
                fs::remove_file(e.path())?;
                removed = true;
            }
        }
        if removed {
            fsync_dir(&dir)?;
        }
        Ok(SnapshotStore {
            dir,
            staging: BTreeMap::new(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of group `group`'s snapshot at `index`.
    pub fn path(&self, group: GroupId, index: LogIndex) -> PathBuf {
        self.dir.join(file_name(group, index))
    }

    /// `(group, index, path)` of every snapshot file, by group then index.
    pub fn list(&self) -> io::Result<Vec<(GroupId, LogIndex, PathBuf)>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            if let Some((g, i)) = parse_name(&e.file_name().to_string_lossy()) {
                out.push((g, i, e.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads and verifies every snapshot file (header check, name agrees with header, size and
    /// blake3 of the bytes). Unusable files are returned with the reason, never dropped quietly.
    pub fn load_all(&self) -> io::Result<Vec<FoundSnapshot>> {
        let mut out = Vec::new();
        for (group, index, path) in self.list()? {
            let contents = read_verified(&path).and_then(|(h, b)| {
                if h.group != group || h.index != index {
                    Err(format!(
                        "header names group {} index {}, not the file name's",
                        h.group, h.index
                    ))
                } else {
                    Ok((h, b))
                }
            });
            out.push(FoundSnapshot {
                path,
                contents,
                group,
                index,
            });
        }
        Ok(out)
    }

    /// Writes group `group`'s snapshot at `index` durably (tmp, fsync, rename, fsync dir), then
    /// deletes its other snapshot files. Returns the header written.
    pub fn write(
        &mut self,
        group: GroupId,
        index: LogIndex,
        term: Term,
        bytes: &[u8],
    ) -> io::Result<SnapshotHeader> {
        let header = SnapshotHeader {
            group,
            index,
            term,
            size: bytes.len() as u64,
            checksum: *blake3::hash(bytes).as_bytes(),
        };
        let path = self.path(group, index);
        let tmp = self.dir.join(format!("{}{TMP}", file_name(group, index)));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&header.encode())?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        fsync_dir(&self.dir)?;
        self.remove_others(group, Some(index))?;
        Ok(header)
    }

    /// Deletes group `group`'s snapshot files except the one at `keep` (and its staging copy).
    pub fn remove_others(&mut self, group: GroupId, keep: Option<LogIndex>) -> io::Result<usize> {
        let mut n = 0;
        for (g, i, path) in self.list()? {
            if g == group && Some(i) != keep {
                fs::remove_file(path)?;
                n += 1;
            }
        }
        if keep.is_none() && self.staging.remove(&group).is_some() {
            let _ = fs::remove_file(self.staging_path(group));
        }
        if n > 0 {
            fsync_dir(&self.dir)?;
        }
        Ok(n)
    }

    /// Reads `len` bytes at `offset` of group `group`'s snapshot `meta` (fewer at its end);
    /// `None` if that exact snapshot is not held (replaced by a newer one, or never taken here).
    pub fn read_chunk(
        &self,
        group: GroupId,
        meta: &SnapshotMeta,
        offset: u64,
        len: u64,
    ) -> Option<Bytes> {
        let f = File::open(self.path(group, meta.index)).ok()?;
        let mut h = [0u8; HEADER_LEN];
        f.read_exact_at(&mut h, 0).ok()?;
        let header = SnapshotHeader::decode(&h)?;
        if header.size != meta.size || header.checksum != meta.checksum {
            return None;
        }
        let start = offset.min(header.size);
        let end = offset.saturating_add(len).min(header.size);
        let mut buf = vec![0u8; (end - start) as usize];
        f.read_exact_at(&mut buf, HEADER_LEN as u64 + start).ok()?;
        Some(Bytes::from(buf))
    }

    fn staging_path(&self, group: GroupId) -> PathBuf {
        self.dir.join(format!("{group}{STAGING}"))
    }

    /// Stages a received chunk: offset 0 starts a new copy (discarding any other); a chunk that
    /// continues the copy of the same snapshot is appended; anything else drops the copy (the
    /// install then fails to verify and the leader restarts the transfer).
    pub fn stage(
        &mut self,
        group: GroupId,
        meta: &SnapshotMeta,
        offset: u64,
        data: &[u8],
    ) -> io::Result<()> {
        if offset == 0 {
            self.staging.remove(&group);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(self.staging_path(group))?;
            file.write_all_at(data, HEADER_LEN as u64)?;
            self.staging.insert(
                group,
                Staging {
                    meta: meta.clone(),
                    len: data.len() as u64,
                    file,
                },
            );
            return Ok(());
        }
        match self.staging.get_mut(&group) {
            Some(s) if s.meta == *meta && s.len == offset => {
                if let Err(e) = s.file.write_all_at(data, HEADER_LEN as u64 + offset) {
                    self.drop_staging(group);
                    return Err(e);
                }
                s.len += data.len() as u64;
                Ok(())
            }
            _ => {
                self.drop_staging(group);
                Ok(())
            }
        }
    }

    fn drop_staging(&mut self, group: GroupId) {
        if self.staging.remove(&group).is_some() {
            let _ = fs::remove_file(self.staging_path(group));
        }
    }

    /// The staged bytes of `meta`, verified against its size and checksum; the staging copy is
    /// kept for [`SnapshotStore::commit_staged`].
    pub fn staged_bytes(&mut self, group: GroupId, meta: &SnapshotMeta) -> Result<Vec<u8>, String> {
        let s = match self.staging.get(&group) {
            Some(s) if s.meta == *meta => s,
            _ => {
                return Err(format!(
                    "nothing staged for snapshot {} of group {group}",
                    meta.index
                ));
            }
        };
        let mut bytes = vec![0u8; s.len as usize];
        if let Err(e) = s.file.read_exact_at(&mut bytes, HEADER_LEN as u64) {
            self.drop_staging(group);
            return Err(format!("reading the staged snapshot: {e}"));
        }
        if let Err(e) = meta.verify(&bytes) {
            self.drop_staging(group);
            return Err(e.to_string());
        }
        Ok(bytes)
    }

    /// Makes the staged copy of `meta` the group's durable snapshot: header written, fsync,
    /// rename, directory fsync; then the group's older files go.
    pub fn commit_staged(&mut self, group: GroupId, meta: &SnapshotMeta) -> io::Result<()> {
        let s = match self.staging.remove(&group) {
            Some(s) if s.meta == *meta => s,
            _ => return Err(io::Error::other("staged snapshot vanished")),
        };
        let header = SnapshotHeader {
            group,
            index: meta.index,
            term: meta.term,
            size: meta.size,
            checksum: meta.checksum,
        };
        s.file.write_all_at(&header.encode(), 0)?;
        s.file.sync_all()?;
        drop(s);
        fs::rename(self.staging_path(group), self.path(group, meta.index))?;
        fsync_dir(&self.dir)?;
        self.remove_others(group, Some(meta.index))?;
        Ok(())
    }

    /// Abandons any staging copy of `group` (an install that failed).
    pub fn abandon_staging(&mut self, group: GroupId) {
        self.drop_staging(group);
    }
}

/// Reads a snapshot file and verifies it completely.
pub fn read_verified(path: &Path) -> Result<(SnapshotHeader, Vec<u8>), String> {
    let mut f = File::open(path).map_err(|e| format!("open: {e}"))?;
    let mut h = [0u8; HEADER_LEN];
    f.read_exact(&mut h).map_err(|e| format!("header: {e}"))?;
    let header = SnapshotHeader::decode(&h).ok_or("bad header (magic or header check)")?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)
        .map_err(|e| format!("read: {e}"))?;
    if bytes.len() as u64 != header.size {
        return Err(format!(
            "{} bytes after the header, the header says {}",
            bytes.len(),
            header.size
        ));
    }
    if *blake3::hash(&bytes).as_bytes() != header.checksum {
        return Err("checksum mismatch".into());
    }
    Ok((header, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::raft::Membership;

    #[test]
    fn write_keeps_only_the_newest_and_reads_back_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SnapshotStore::open(dir.path()).unwrap();
        store.write(7, 10, 2, b"old state").unwrap();
        let h = store.write(7, 20, 3, b"new state!").unwrap();
        store.write(8, 5, 1, b"other").unwrap();
        let names: Vec<_> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|(g, i, _)| (g, i))
            .collect();
        assert_eq!(names, vec![(7, 20), (8, 5)]);
        let meta = SnapshotMeta {
            index: 20,
            term: 3,
            membership: Membership::simple([1]),
            size: h.size,
            checksum: h.checksum,
        };
        assert_eq!(store.read_chunk(7, &meta, 4, 3).unwrap().as_ref(), b"sta");
        assert_eq!(store.read_chunk(7, &meta, 8, 100).unwrap().as_ref(), b"e!");
        assert_eq!(store.read_chunk(7, &meta, 50, 1).unwrap().len(), 0);
        let old = SnapshotMeta {
            index: 10,
            ..meta.clone()
        };
        assert!(
            store.read_chunk(7, &old, 0, 1).is_none(),
            "replaced snapshots are not served"
        );
        let loaded = store.load_all().unwrap();
        assert!(loaded.iter().all(|f| f.contents.is_ok()));
    }

    #[test]
    fn staged_chunks_install_and_mismatches_drop_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SnapshotStore::open(dir.path()).unwrap();
        let bytes = b"0123456789";
        let meta = SnapshotMeta::for_bytes(9, 4, Membership::simple([1, 2, 3]), bytes);
        store.stage(3, &meta, 0, &bytes[..4]).unwrap();
        store.stage(3, &meta, 4, &bytes[4..]).unwrap();
        assert_eq!(store.staged_bytes(3, &meta).unwrap(), bytes);
        store.commit_staged(3, &meta).unwrap();
        let (h, b) = read_verified(&store.path(3, 9)).unwrap();
        assert!(h.matches(&meta));
        assert_eq!(b, bytes);
        // A gap drops the staging copy.
        store.stage(3, &meta, 0, &bytes[..4]).unwrap();
        store.stage(3, &meta, 5, &bytes[5..]).unwrap();
        assert!(store.staged_bytes(3, &meta).is_err());
        // A wrong checksum is refused.
        let bad = SnapshotMeta {
            checksum: [1; 32],
            ..meta.clone()
        };
        store.stage(3, &bad, 0, bytes).unwrap();
        assert!(store.staged_bytes(3, &bad).is_err());
    }

    #[test]
    fn a_flipped_byte_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SnapshotStore::open(dir.path()).unwrap();
        store.write(1, 3, 1, b"abcdef").unwrap();
        let p = store.path(1, 3);
        let mut raw = fs::read(&p).unwrap();
        raw[HEADER_LEN + 2] ^= 0x40;
        fs::write(&p, &raw).unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.len(), 1);
        assert!(
            loaded[0]
                .contents
                .as_ref()
                .unwrap_err()
                .contains("checksum")
        );
        raw[3] ^= 1; // the magic
        fs::write(&p, &raw).unwrap();
        assert!(store.load_all().unwrap()[0].contents.is_err());
    }
}
