//! On-disk catalogue of collection snapshots: one directory, a `<id>.snap` file (the core
//! snapshot format, see `vecraft_core::vector::snapshot`) plus a `<id>.json` metadata file per
//! snapshot.
//!
//! Crash safety: a snapshot is written to `<id>.snap.tmp`, fsynced and renamed; then its metadata
//! is written the same way, and the directory is fsynced. The metadata file is the commit point:
//! on [`SnapshotCatalog::open`], temporary files and snapshot files without metadata (a crash
//! mid-create) are removed. Deleting removes the metadata first, then the file.
//!
//! The catalogue does blocking file I/O; the async runtime calls it from a blocking task. Time is
//! a parameter (`now_ms`), never read here, so the schedule and retention rules are testable.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use thiserror::Error;
use vecraft_core::vector::collection::Collection;
use vecraft_core::vector::snapshot::{
    RestoreProgress, SnapshotError, SnapshotKind, SnapshotOptions, SnapshotSummary, read_header,
    restore_full, restore_incremental, verify_snapshot, write_full_snapshot,
    write_incremental_snapshot,
};

const SNAPSHOT_EXT: &str = "snap";
const META_EXT: &str = "json";
const TMP_SUFFIX: &str = ".tmp";

/// What kind of snapshot a catalogue entry is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogKind {
    /// Self-contained.
    Full,
    /// Needs the entry `base` (and its own bases) to restore.
    Incremental {
        /// Id of the base entry.
        base: String,
    },
}

/// Metadata of one stored snapshot (the `<id>.json` file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Catalogue id, also the file stem.
    pub id: String,
    /// Collection the snapshot is of.
    pub collection: String,
    /// Full or incremental (with its base).
    pub kind: CatalogKind,
    /// Collection sequence number at the snapshot.
    pub seq: u64,
    /// Points in the collection at the snapshot.
    pub point_count: u64,
    /// Collection content digest at the snapshot (hex).
    pub content_digest: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Whole-file blake3 hash (hex), as stored at the end of the file.
    pub file_hash: String,
    /// Creation time, milliseconds since the Unix epoch (as given by the caller).
    pub created_at_ms: u64,
}

/// Why a catalogue operation failed.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Writing, reading or restoring the snapshot itself failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A metadata file could not be parsed.
    #[error("bad metadata in {path}: {reason}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No snapshot with that id.
    #[error("no snapshot `{0}` in the catalogue")]
    UnknownSnapshot(String),
    /// A snapshot with that id already exists (same collection, seq and kind).
    #[error("snapshot `{0}` already exists")]
    AlreadyExists(String),
    /// Deleting a snapshot that incrementals depend on.
    #[error("snapshot `{id}` is the base of {dependants:?}")]
    HasDependants {
        /// The snapshot.
        id: String,
        /// Incrementals built on it.
        dependants: Vec<String>,
    },
    /// An incremental whose base is of another collection.
    #[error("base `{base}` is a snapshot of `{base_collection}`, not of `{collection}`")]
    WrongCollection {
        /// Requested base.
        base: String,
        /// Its collection.
        base_collection: String,
        /// The collection being snapshotted.
        collection: String,
    },
    /// The file no longer matches its metadata.
    #[error("snapshot `{id}` does not match its metadata: {reason}")]
    MetadataMismatch {
        /// The snapshot.
        id: String,
        /// What differs.
        reason: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CatalogError + 'a {
    move |source| CatalogError::Io { op, path: path.to_path_buf(), source }
}

fn hex(bytes: &[u8; 32]) -> String {
    blake3::Hash::from_bytes(*bytes).to_hex().to_string()
}

/// A directory of snapshots with their metadata.
#[derive(Debug)]
pub struct SnapshotCatalog {
    dir: PathBuf,
    entries: BTreeMap<String, SnapshotMeta>,
    options: SnapshotOptions,
}

impl SnapshotCatalog {
    /// Opens (creating if needed) the catalogue in `dir`, loading metadata and removing leftovers
    /// of interrupted creates.
    pub fn open(dir: impl Into<PathBuf>) -> Result<SnapshotCatalog, CatalogError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let mut entries = BTreeMap::new();
        let mut snap_files = BTreeSet::new();
        for item in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let path = item.map_err(io_err("list", &dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if name.ends_with(TMP_SUFFIX) {
                fs::remove_file(&path).map_err(io_err("remove leftover", &path))?;
            } else if let Some(stem) = name.strip_suffix(&format!(".{META_EXT}")) {
                let text = fs::read_to_string(&path).map_err(io_err("read", &path))?;
                let meta: SnapshotMeta = serde_json::from_str(&text).map_err(|e| {
                    CatalogError::Metadata { path: path.clone(), reason: e.to_string() }
                })?;
                if meta.id != stem {
                    return Err(CatalogError::Metadata {
                        path,
                        reason: format!("id `{}` differs from the file name", meta.id),
                    });
                }
                entries.insert(meta.id.clone(), meta);
            } else if let Some(stem) = name.strip_suffix(&format!(".{SNAPSHOT_EXT}")) {
                snap_files.insert(stem.to_string());
            }
        }
        let catalog = SnapshotCatalog { dir, entries, options: SnapshotOptions::default() };
        // A snapshot file without metadata was never committed.
        for orphan in snap_files.iter().filter(|s| !catalog.entries.contains_key(*s)) {
            let path = catalog.snap_path(orphan);
            fs::remove_file(&path).map_err(io_err("remove uncommitted", &path))?;
        }
        for meta in catalog.entries.values() {
            if !snap_files.contains(&meta.id) {
                return Err(CatalogError::MetadataMismatch {
                    id: meta.id.clone(),
                    reason: "snapshot file is missing".into(),
                });
            }
        }
        Ok(catalog)
    }

    /// Uses these writer options (chunk size, zstd level) for new snapshots.
    pub fn with_options(mut self, options: SnapshotOptions) -> Self {
        self.options = options;
        self
    }

    /// The catalogue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn snap_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.{SNAPSHOT_EXT}"))
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.{META_EXT}"))
    }

    /// Writes a full snapshot of `collection`.
    pub fn create_full(
        &mut self,
        collection: &Collection,
        now_ms: u64,
    ) -> Result<SnapshotMeta, CatalogError> {
        let id = format!("{}@{:020}-full", collection.name(), collection.seq());
        let options = self.options;
        self.create(id, CatalogKind::Full, now_ms, |out| {
            write_full_snapshot(collection, out, &options)
        })
    }

    /// Writes a full snapshot of `collection` under the id `<name>@<tag>-full`, for callers
    /// whose engine's sequence number does not tell snapshots apart (the replicated node builds
    /// each snapshot's engine afresh, so it tags them with the creation time).
    pub fn create_full_tagged(
        &mut self,
        collection: &Collection,
        tag: &str,
        now_ms: u64,
    ) -> Result<SnapshotMeta, CatalogError> {
        let id = format!("{}@{tag}-full", collection.name());
        let options = self.options;
        self.create(id, CatalogKind::Full, now_ms, |out| {
            write_full_snapshot(collection, out, &options)
        })
    }

    /// Writes the changes of `collection` since the snapshot `base_id` (full or incremental).
    pub fn create_incremental(
        &mut self,
        collection: &Collection,
        base_id: &str,
        now_ms: u64,
    ) -> Result<SnapshotMeta, CatalogError> {
        let base_meta =
            self.get(base_id).ok_or_else(|| CatalogError::UnknownSnapshot(base_id.to_string()))?;
        if base_meta.collection != collection.name() {
            return Err(CatalogError::WrongCollection {
                base: base_id.to_string(),
                base_collection: base_meta.collection.clone(),
                collection: collection.name().to_string(),
            });
        }
        let base = read_header(BufReader::new(self.open_file(base_id)?))?.as_base();
        let id =
            format!("{}@{:020}-incr-from-{:020}", collection.name(), collection.seq(), base.seq);
        let options = self.options;
        self.create(id, CatalogKind::Incremental { base: base_id.to_string() }, now_ms, |out| {
            write_incremental_snapshot(collection, base, out, &options)
        })
    }

    fn create(
        &mut self,
        id: String,
        kind: CatalogKind,
        now_ms: u64,
        write: impl FnOnce(&mut BufWriter<File>) -> Result<SnapshotSummary, SnapshotError>,
    ) -> Result<SnapshotMeta, CatalogError> {
        if self.entries.contains_key(&id) {
            return Err(CatalogError::AlreadyExists(id));
        }
        let final_path = self.snap_path(&id);
        let tmp_path = self.dir.join(format!("{id}.{SNAPSHOT_EXT}{TMP_SUFFIX}"));
        let file = File::create(&tmp_path).map_err(io_err("create", &tmp_path))?;
        let mut out = BufWriter::new(file);
        let written = write(&mut out).map_err(CatalogError::from).and_then(|summary| {
            let file =
                out.into_inner().map_err(|e| e.into_error()).map_err(io_err("flush", &tmp_path))?;
            file.sync_all().map_err(io_err("fsync", &tmp_path))?;
            Ok(summary)
        });
        let summary = match written {
            Ok(summary) => summary,
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                return Err(e);
            }
        };
        fs::rename(&tmp_path, &final_path).map_err(io_err("rename", &tmp_path))?;
        let meta = SnapshotMeta {
            id: id.clone(),
            collection: summary.header.collection.clone(),
            kind,
            seq: summary.header.seq,
            point_count: summary.header.point_count,
            content_digest: hex(&summary.header.content_digest),
            size_bytes: summary.bytes,
            file_hash: hex(&summary.file_hash),
            created_at_ms: now_ms,
        };
        let meta_path = self.meta_path(&id);
        let meta_tmp = self.dir.join(format!("{id}.{META_EXT}{TMP_SUFFIX}"));
        let json = serde_json::to_vec_pretty(&meta).expect("metadata always serialises");
        let mut file = File::create(&meta_tmp).map_err(io_err("create", &meta_tmp))?;
        file.write_all(&json).map_err(io_err("write", &meta_tmp))?;
        file.sync_all().map_err(io_err("fsync", &meta_tmp))?;
        fs::rename(&meta_tmp, &meta_path).map_err(io_err("rename", &meta_tmp))?;
        self.sync_dir()?;
        self.entries.insert(id, meta.clone());
        Ok(meta)
    }

    fn sync_dir(&self) -> Result<(), CatalogError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync directory", &self.dir))
    }

    /// Snapshots, optionally of one collection, oldest first (by creation time, then seq, then id).
    pub fn list(&self, collection: Option<&str>) -> Vec<&SnapshotMeta> {
        let mut all: Vec<&SnapshotMeta> = self
            .entries
            .values()
            .filter(|m| collection.is_none_or(|c| m.collection == c))
            .collect();
        all.sort_by(|a, b| (a.created_at_ms, a.seq, &a.id).cmp(&(b.created_at_ms, b.seq, &b.id)));
        all
    }

    /// One snapshot's metadata.
    pub fn get(&self, id: &str) -> Option<&SnapshotMeta> {
        self.entries.get(id)
    }

    /// Opens a snapshot file for reading (e.g. to stream it to a peer).
    pub fn open_file(&self, id: &str) -> Result<File, CatalogError> {
        if !self.entries.contains_key(id) {
            return Err(CatalogError::UnknownSnapshot(id.to_string()));
        }
        let path = self.snap_path(id);
        File::open(&path).map_err(io_err("open", &path))
    }

    /// Re-reads the whole file, checking every checksum, and compares it with the metadata.
    pub fn verify(&self, id: &str) -> Result<SnapshotSummary, CatalogError> {
        let meta = self.get(id).ok_or_else(|| CatalogError::UnknownSnapshot(id.to_string()))?;
        let summary = verify_snapshot(BufReader::new(self.open_file(id)?))?;
        let mismatch =
            |reason: String| Err(CatalogError::MetadataMismatch { id: id.to_string(), reason });
        if hex(&summary.file_hash) != meta.file_hash {
            return mismatch("file hash differs".into());
        }
        if summary.bytes != meta.size_bytes {
            return mismatch(format!("size {} != {}", summary.bytes, meta.size_bytes));
        }
        if summary.header.seq != meta.seq || summary.header.collection != meta.collection {
            return mismatch("header differs".into());
        }
        let incremental = matches!(summary.header.kind, SnapshotKind::Incremental { .. });
        if incremental != matches!(meta.kind, CatalogKind::Incremental { .. }) {
            return mismatch("kind differs".into());
        }
        Ok(summary)
    }

    /// The chain needed to restore `id`: a full snapshot first, then incrementals up to `id`.
    pub fn chain(&self, id: &str) -> Result<Vec<&SnapshotMeta>, CatalogError> {
        let mut chain = Vec::new();
        let mut next = id;
        loop {
            let meta =
                self.get(next).ok_or_else(|| CatalogError::UnknownSnapshot(next.to_string()))?;
            if chain.len() > self.entries.len() {
                return Err(CatalogError::MetadataMismatch {
                    id: id.to_string(),
                    reason: "base cycle".into(),
                });
            }
            chain.push(meta);
            match &meta.kind {
                CatalogKind::Full => break,
                CatalogKind::Incremental { base } => next = base,
            }
        }
        chain.reverse();
        Ok(chain)
    }

    /// Restores the collection as of snapshot `id` (following its chain of bases), reporting
    /// progress per chunk with the index of the chain link being applied.
    pub fn restore(
        &self,
        id: &str,
        progress: &mut dyn FnMut(usize, RestoreProgress),
    ) -> Result<Collection, CatalogError> {
        let chain = self.chain(id)?;
        let mut collection: Option<Collection> = None;
        for (link, meta) in chain.iter().enumerate() {
            let input = BufReader::new(self.open_file(&meta.id)?);
            let mut report = |p| progress(link, p);
            collection = Some(match &collection {
                None => restore_full(input, &mut report)?,
                Some(base) => restore_incremental(base, input, &mut report)?,
            });
        }
        Ok(collection.expect("a chain has at least one link"))
    }

    fn dependants(&self, id: &str) -> Vec<String> {
        self.entries
            .values()
            .filter(|m| matches!(&m.kind, CatalogKind::Incremental { base } if base == id))
            .map(|m| m.id.clone())
            .collect()
    }

    /// Deletes a snapshot; refused while incrementals depend on it.
    pub fn delete(&mut self, id: &str) -> Result<(), CatalogError> {
        if !self.entries.contains_key(id) {
            return Err(CatalogError::UnknownSnapshot(id.to_string()));
        }
        let dependants = self.dependants(id);
        if !dependants.is_empty() {
            return Err(CatalogError::HasDependants { id: id.to_string(), dependants });
        }
        self.remove(id)
    }

    fn remove(&mut self, id: &str) -> Result<(), CatalogError> {
        let meta_path = self.meta_path(id);
        fs::remove_file(&meta_path).map_err(io_err("remove", &meta_path))?;
        self.entries.remove(id);
        let snap_path = self.snap_path(id);
        fs::remove_file(&snap_path).map_err(io_err("remove", &snap_path))?;
        self.sync_dir()
    }

    /// Keeps the newest `keep` snapshots of `collection` and every base they (transitively) need;
    /// deletes the rest. Returns the deleted ids.
    pub fn retain_newest(
        &mut self,
        collection: &str,
        keep: usize,
    ) -> Result<Vec<String>, CatalogError> {
        let newest_first: Vec<String> =
            self.list(Some(collection)).into_iter().rev().map(|m| m.id.clone()).collect();
        let mut kept = BTreeSet::new();
        for id in newest_first.iter().take(keep) {
            for link in self.chain(id)? {
                kept.insert(link.id.clone());
            }
        }
        // Everything not kept is deleted; the kept set is closed under "base of", so no kept
        // snapshot loses its base.
        let doomed: Vec<String> =
            newest_first.into_iter().filter(|id| !kept.contains(id)).collect();
        for id in &doomed {
            self.remove(id)?;
        }
        Ok(doomed)
    }

    /// What the scheduler needs to know about the newest snapshot of `collection`.
    pub fn last_snapshot(&self, collection: &str) -> Option<LastSnapshot> {
        let newest = *self.list(Some(collection)).last()?;
        let chain_len = self.chain(&newest.id).map(|c| c.len() as u32).unwrap_or(1);
        Some(LastSnapshot {
            id: newest.id.clone(),
            at_ms: newest.created_at_ms,
            seq: newest.seq,
            incrementals_since_full: chain_len.saturating_sub(1),
        })
    }
}

/// The newest snapshot of a collection, as the schedule sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastSnapshot {
    /// Its id (the base for the next incremental).
    pub id: String,
    /// When it was taken.
    pub at_ms: u64,
    /// Collection sequence number it captured.
    pub seq: u64,
    /// Incrementals in its chain after the full snapshot.
    pub incrementals_since_full: u32,
}

/// When to snapshot: every `interval_ms`, as an incremental on the newest snapshot, but a full
/// one after `max_incrementals` incrementals (bounding restore chains), and never when nothing
/// changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotSchedule {
    /// Minimum time between snapshots.
    pub interval_ms: u64,
    /// Chain length limit; 0 means always full.
    pub max_incrementals: u32,
}

/// The schedule's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotDue {
    /// Nothing to do now; check again in `wait_ms` (`None`: only once the collection changes).
    NotYet {
        /// Time until the interval elapses, if it has not.
        wait_ms: Option<u64>,
    },
    /// Take a full snapshot.
    Full,
    /// Take an incremental snapshot on top of `base`.
    Incremental {
        /// Base snapshot id.
        base: String,
    },
}

impl SnapshotSchedule {
    /// Pure decision: given the newest snapshot (if any), the collection's current seq and the
    /// time now, is a snapshot due, and which kind?
    pub fn decide(
        &self,
        last: Option<&LastSnapshot>,
        current_seq: u64,
        now_ms: u64,
    ) -> SnapshotDue {
        let Some(last) = last else { return SnapshotDue::Full };
        let due_at = last.at_ms.saturating_add(self.interval_ms);
        if now_ms < due_at {
            return SnapshotDue::NotYet { wait_ms: Some(due_at - now_ms) };
        }
        if current_seq == last.seq {
            return SnapshotDue::NotYet { wait_ms: None };
        }
        if current_seq < last.seq || last.incrementals_since_full >= self.max_incrementals {
            // A lower seq means the collection was recreated: its history no longer chains.
            SnapshotDue::Full
        } else {
            SnapshotDue::Incremental { base: last.id.clone() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::vector::collection::{CollectionConfig, Distance, PointSelector, PointsOp};
    use vecraft_core::vector::payload::Payload;
    use vecraft_core::vector::point::{PointId, PointStruct};

    fn collection(name: &str, n: u64) -> Collection {
        let mut c = Collection::new(name, CollectionConfig::new(4, Distance::Euclid)).unwrap();
        let points = (0..n)
            .map(|i| PointStruct {
                id: PointId::Num(i),
                vector: vec![i as f32; 4],
                payload: Payload::new(),
            })
            .collect();
        c.apply(PointsOp::Upsert(points)).unwrap();
        c
    }

    fn small_chunks(dir: &Path) -> SnapshotCatalog {
        SnapshotCatalog::open(dir)
            .unwrap()
            .with_options(SnapshotOptions { chunk_target_bytes: 256, zstd_level: 1 })
    }

    #[test]
    fn create_list_get_verify_restore_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cat = small_chunks(tmp.path());
        let mut c = collection("docs", 50);
        let full = cat.create_full(&c, 1_000).unwrap();
        assert_eq!(full.kind, CatalogKind::Full);
        assert!(matches!(cat.create_full(&c, 1_001), Err(CatalogError::AlreadyExists(_))));
        c.apply(PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(3)]))).unwrap();
        let inc1 = cat.create_incremental(&c, &full.id, 2_000).unwrap();
        c.apply(PointsOp::Upsert(vec![PointStruct {
            id: PointId::Num(99),
            vector: vec![1.0; 4],
            payload: Payload::new(),
        }]))
        .unwrap();
        let inc2 = cat.create_incremental(&c, &inc1.id, 3_000).unwrap();
        assert!(inc2.size_bytes < full.size_bytes);
        let other = collection("other", 3);
        cat.create_full(&other, 1_500).unwrap();
        assert!(matches!(
            cat.create_incremental(&other, &full.id, 4_000),
            Err(CatalogError::WrongCollection { .. })
        ));

        let ids: Vec<&str> = cat.list(Some("docs")).iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, vec![full.id.as_str(), inc1.id.as_str(), inc2.id.as_str()]);
        assert_eq!(cat.list(None).len(), 4);
        assert_eq!(cat.get(&inc2.id), Some(&inc2));
        for m in [&full, &inc1, &inc2] {
            cat.verify(&m.id).unwrap();
        }
        let mut links = Vec::new();
        let restored =
            cat.restore(&inc2.id, &mut |link, p| links.push((link, p.chunks_done))).unwrap();
        assert_eq!(restored.digest(), c.digest());
        assert_eq!(links.iter().map(|l| l.0).max(), Some(2));
        assert_eq!(hex(&restored.digest()), inc2.content_digest);

        // Reopening sees the same catalogue.
        drop(cat);
        let cat = SnapshotCatalog::open(tmp.path()).unwrap();
        assert_eq!(cat.list(None).len(), 4);
        assert_eq!(cat.restore(&inc1.id, &mut |_, _| ()).unwrap().len(), 49);
    }

    #[test]
    fn verify_detects_corruption_and_delete_respects_dependants() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cat = small_chunks(tmp.path());
        let mut c = collection("docs", 30);
        let full = cat.create_full(&c, 1).unwrap();
        c.apply(PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(1)]))).unwrap();
        let inc = cat.create_incremental(&c, &full.id, 2).unwrap();

        let path = tmp.path().join(format!("{}.snap", full.id));
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x04;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(cat.verify(&full.id), Err(CatalogError::Snapshot(_))));
        assert!(cat.restore(&inc.id, &mut |_, _| ()).is_err());

        assert!(matches!(cat.delete(&full.id), Err(CatalogError::HasDependants { .. })));
        cat.delete(&inc.id).unwrap();
        cat.delete(&full.id).unwrap();
        assert!(matches!(cat.delete(&full.id), Err(CatalogError::UnknownSnapshot(_))));
        assert!(cat.list(None).is_empty());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn retention_keeps_bases_of_kept_incrementals() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cat = small_chunks(tmp.path());
        let mut c = collection("docs", 10);
        let mut time = 0;
        let mut next_point = 100;
        let mut change = |c: &mut Collection| {
            next_point += 1;
            c.apply(PointsOp::Upsert(vec![PointStruct {
                id: PointId::Num(next_point),
                vector: vec![0.5; 4],
                payload: Payload::new(),
            }]))
            .unwrap();
        };
        let mut tick = || {
            time += 10;
            time
        };
        let full_a = cat.create_full(&c, tick()).unwrap();
        change(&mut c);
        let inc_a1 = cat.create_incremental(&c, &full_a.id, tick()).unwrap();
        change(&mut c);
        let full_b = cat.create_full(&c, tick()).unwrap();
        change(&mut c);
        let inc_b1 = cat.create_incremental(&c, &full_b.id, tick()).unwrap();
        change(&mut c);
        let inc_b2 = cat.create_incremental(&c, &inc_b1.id, tick()).unwrap();
        let other = cat.create_full(&collection("other", 2), tick()).unwrap();

        // Keep the newest 1 (inc_b2): its chain full_b <- inc_b1 <- inc_b2 stays.
        let mut deleted = cat.retain_newest("docs", 1).unwrap();
        deleted.sort();
        let mut expected = vec![full_a.id.clone(), inc_a1.id.clone()];
        expected.sort();
        assert_eq!(deleted, expected);
        let left: Vec<&str> = cat.list(None).iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            left,
            vec![full_b.id.as_str(), inc_b1.id.as_str(), inc_b2.id.as_str(), other.id.as_str()]
        );
        assert_eq!(cat.restore(&inc_b2.id, &mut |_, _| ()).unwrap().digest(), c.digest());
        assert!(cat.retain_newest("docs", 5).unwrap().is_empty());
        assert_eq!(cat.retain_newest("docs", 0).unwrap().len(), 3);
        assert_eq!(cat.list(None).len(), 1);
    }

    #[test]
    fn open_removes_uncommitted_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cat = small_chunks(tmp.path());
        let c = collection("docs", 5);
        let meta = cat.create_full(&c, 1).unwrap();
        fs::write(tmp.path().join("x.snap.tmp"), b"partial").unwrap();
        fs::write(tmp.path().join("docs@00000000000000000009-full.snap"), b"no metadata").unwrap();
        drop(cat);
        let cat = SnapshotCatalog::open(tmp.path()).unwrap();
        assert_eq!(cat.list(None), vec![&meta]);
        let mut names: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec![format!("{}.json", meta.id), format!("{}.snap", meta.id)]);
        // Metadata whose snapshot file vanished is reported, not silently trusted.
        fs::remove_file(tmp.path().join(format!("{}.snap", meta.id))).unwrap();
        assert!(matches!(
            SnapshotCatalog::open(tmp.path()),
            Err(CatalogError::MetadataMismatch { .. })
        ));
    }

    #[test]
    fn schedule_decisions() {
        let schedule = SnapshotSchedule { interval_ms: 1_000, max_incrementals: 2 };
        assert_eq!(schedule.decide(None, 0, 0), SnapshotDue::Full);
        let last = |at_ms, seq, incrementals_since_full| LastSnapshot {
            id: "s".into(),
            at_ms,
            seq,
            incrementals_since_full,
        };
        assert_eq!(
            schedule.decide(Some(&last(500, 3, 0)), 9, 1_200),
            SnapshotDue::NotYet { wait_ms: Some(300) }
        );
        assert_eq!(
            schedule.decide(Some(&last(500, 3, 0)), 3, 5_000),
            SnapshotDue::NotYet { wait_ms: None }
        );
        assert_eq!(
            schedule.decide(Some(&last(500, 3, 1)), 9, 1_500),
            SnapshotDue::Incremental { base: "s".into() }
        );
        assert_eq!(schedule.decide(Some(&last(500, 3, 2)), 9, 1_500), SnapshotDue::Full);
        assert_eq!(schedule.decide(Some(&last(500, 30, 0)), 9, 1_500), SnapshotDue::Full);
        // The catalogue feeds the schedule.
        let tmp = tempfile::tempdir().unwrap();
        let mut cat = small_chunks(tmp.path());
        let mut c = collection("docs", 5);
        let full = cat.create_full(&c, 100).unwrap();
        c.apply(PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(0)]))).unwrap();
        cat.create_incremental(&c, &full.id, 2_000).unwrap();
        let newest = cat.last_snapshot("docs").unwrap();
        assert_eq!(newest.incrementals_since_full, 1);
        assert_eq!(newest.seq, c.seq());
        assert!(cat.last_snapshot("nope").is_none());
    }
}
