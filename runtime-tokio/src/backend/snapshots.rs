//! Snapshot operations of the [`LocalBackend`], on top of the on-disk [`SnapshotCatalog`].
//!
//! All catalogue work is blocking file I/O and runs on tokio's blocking pool. Creating a snapshot
//! holds the engine's read lock while the file is written, so the snapshot is of one consistent
//! state; writes wait meanwhile, and so do reads that arrive after a write started waiting (the
//! lock prefers writers). The pause grows with the collection; a copy-on-write point store in
//! the engine would remove it. Recovery builds the restored collection aside and then
//! installs it through the apply worker, so it is ordered with the writes around it.
//!
//! [`SnapshotCatalog`]: crate::snapshot_catalog::SnapshotCatalog

use super::local::{Job, LocalBackend, Shared, now_ms};
use super::{BackendError, SnapshotMeta, SnapshotSource};
use crate::snapshot_catalog::{CatalogError, SnapshotCatalog};
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use vecraft_core::vector::collection::Collection;
use vecraft_core::vector::snapshot::{
    SnapshotKind, read_header, restore_full, restore_incremental,
};

/// Runs blocking catalogue work on tokio's blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Unavailable(format!("snapshot task failed: {e}")))?
}

/// Takes a full snapshot; if one at the same sequence number exists, returns it (same content).
pub(super) async fn create(
    shared: Arc<Shared>,
    collection: String,
) -> Result<SnapshotMeta, BackendError> {
    blocking(move || {
        let engine = shared.read_engine();
        let c = engine.collection(&collection)?;
        let mut catalog = shared.lock_catalog();
        match catalog.create_full(c, now_ms()) {
            Ok(meta) => Ok(meta),
            Err(CatalogError::AlreadyExists(id)) => {
                Ok(catalog.get(&id).cloned().ok_or(CatalogError::UnknownSnapshot(id))?)
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Snapshots of one collection, oldest first. The collection need not exist any more (its
/// snapshots are how it comes back).
pub(super) async fn list(
    shared: Arc<Shared>,
    collection: String,
) -> Result<Vec<SnapshotMeta>, BackendError> {
    blocking(move || {
        Ok(shared.lock_catalog().list(Some(&collection)).into_iter().cloned().collect())
    })
    .await
}

/// Looks a snapshot up and checks it belongs to `collection` (so one collection's URL cannot
/// reach another's snapshots).
fn owned(shared: &Shared, collection: &str, id: &str) -> Result<SnapshotMeta, BackendError> {
    owned_in(&shared.catalog, collection, id)
}

/// [`owned`] in any catalogue (the local engine's, or a node's).
pub(super) fn owned_in(
    catalog: &Mutex<SnapshotCatalog>,
    collection: &str,
    id: &str,
) -> Result<SnapshotMeta, BackendError> {
    match catalog.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
        Some(meta) if meta.collection == collection => Ok(meta.clone()),
        _ => Err(CatalogError::UnknownSnapshot(id.to_string()).into()),
    }
}

/// Deletes a snapshot (refused while incrementals depend on it).
pub(super) async fn delete(
    shared: Arc<Shared>,
    collection: String,
    id: String,
) -> Result<(), BackendError> {
    blocking(move || {
        owned(&shared, &collection, &id)?;
        Ok(shared.lock_catalog().delete(&id)?)
    })
    .await
}

/// The file of a snapshot, for download.
pub(super) async fn path(
    shared: Arc<Shared>,
    collection: String,
    id: String,
) -> Result<(SnapshotMeta, PathBuf), BackendError> {
    blocking(move || {
        let meta = owned(&shared, &collection, &id)?;
        let dir = shared.lock_catalog().dir().to_path_buf();
        Ok((meta, dir.join(format!("{id}.snap"))))
    })
    .await
}

/// Restores `collection` from a snapshot file or catalogue entry and installs it.
pub(super) async fn recover(
    backend: &LocalBackend,
    collection: String,
    source: SnapshotSource,
) -> Result<u64, BackendError> {
    let shared = backend.shared.clone();
    let restored = blocking(move || build(&shared, &collection, source)).await?;
    let points = restored.len() as u64;
    let (_, answer) = backend.enqueue(Job::Install(Box::new(restored)))?;
    answer.await.map_err(|_| BackendError::Unavailable("apply worker stopped".into()))??;
    Ok(points)
}

/// Builds the restored collection aside (nothing is installed here).
fn build(
    shared: &Shared,
    collection: &str,
    source: SnapshotSource,
) -> Result<Collection, BackendError> {
    restore_source(&shared.catalog, collection, source, |file| {
        let engine = shared.read_engine();
        let base = engine.collection(collection).map_err(|_| {
            BackendError::Restore(format!(
                "incremental snapshot needs its base: collection `{collection}` does not exist here"
            ))
        })?;
        restore_incremental(base, file, &mut |_| ()).map_err(|e| BackendError::Restore(e.to_string()))
    })
}

/// Restores `collection` from a catalogue entry or a file (every checksum verified, the
/// collection's name checked), aside. An incremental file is handed to `incremental` (which
/// restores it on its base, or refuses).
pub(super) fn restore_source(
    catalog: &Mutex<SnapshotCatalog>,
    collection: &str,
    source: SnapshotSource,
    incremental: impl FnOnce(BufReader<File>) -> Result<Collection, BackendError>,
) -> Result<Collection, BackendError> {
    let restored = match source {
        SnapshotSource::Catalog(id) => {
            owned_in(catalog, collection, &id)?;
            catalog.lock().unwrap_or_else(|e| e.into_inner()).restore(&id, &mut |_, _| ())?
        }
        SnapshotSource::File(path) => {
            let open = || {
                File::open(&path).map(BufReader::new).map_err(|e| {
                    BackendError::Restore(format!("cannot open {}: {e}", path.display()))
                })
            };
            let header = read_header(open()?).map_err(|e| BackendError::Restore(e.to_string()))?;
            if header.collection != collection {
                return Err(BackendError::Restore(format!(
                    "the snapshot is of collection `{}`, not `{collection}`",
                    header.collection
                )));
            }
            match header.kind {
                SnapshotKind::Full => restore_full(open()?, &mut |_| ())
                    .map_err(|e| BackendError::Restore(e.to_string()))?,
                SnapshotKind::Incremental { .. } => incremental(open()?)?,
            }
        }
    };
    if restored.name() != collection {
        return Err(BackendError::Restore(format!(
            "the snapshot is of collection `{}`, not `{collection}`",
            restored.name()
        )));
    }
    Ok(restored)
}
