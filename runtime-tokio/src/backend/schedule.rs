//! Scheduled snapshots with retention, run by the server for a [`LocalBackend`].
//!
//! Every tick, each collection is asked the catalogue's [`SnapshotSchedule::decide`]: a full
//! snapshot, an incremental one on the newest, or nothing (interval not elapsed, or nothing
//! changed). After a snapshot, [`SnapshotCatalog::retain_newest`] keeps the newest `retain`
//! snapshots and the bases they need. Errors are logged and retried at the next tick: a failed
//! scheduled snapshot must never take the server down.
//!
//! [`SnapshotCatalog::retain_newest`]: crate::snapshot_catalog::SnapshotCatalog::retain_newest

use super::BackendError;
use super::local::{LocalBackend, now_ms};
use crate::snapshot_catalog::{SnapshotDue, SnapshotMeta, SnapshotSchedule};
use std::time::Duration;

/// Schedule and retention settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// When snapshots are due.
    pub schedule: SnapshotSchedule,
    /// Snapshots kept per collection (with their bases); 0 keeps everything.
    pub retain: usize,
    /// How often to check.
    pub tick: Duration,
}

/// Runs one round over all collections; returns the snapshots taken.
pub fn run_once(
    backend: &LocalBackend,
    options: &ScheduleOptions,
) -> Result<Vec<SnapshotMeta>, BackendError> {
    let shared = &backend.shared;
    let engine = shared.read_engine();
    let mut taken = Vec::new();
    for name in engine.collection_names() {
        let collection = engine.collection(name)?;
        let mut catalog = shared.lock_catalog();
        let last = catalog.last_snapshot(name);
        let meta = match options.schedule.decide(last.as_ref(), collection.seq(), now_ms()) {
            SnapshotDue::NotYet { .. } => continue,
            SnapshotDue::Full => catalog.create_full(collection, now_ms())?,
            SnapshotDue::Incremental { base } => {
                catalog.create_incremental(collection, &base, now_ms())?
            }
        };
        tracing::info!(snapshot = %meta.id, bytes = meta.size_bytes, "scheduled snapshot taken");
        if options.retain > 0 {
            let deleted = catalog.retain_newest(name, options.retain)?;
            if !deleted.is_empty() {
                tracing::info!(?deleted, "snapshot retention removed old snapshots");
            }
        }
        taken.push(meta);
    }
    Ok(taken)
}

/// Runs [`run_once`] every `options.tick` until the task is dropped.
pub async fn run_forever(backend: LocalBackend, options: ScheduleOptions) {
    let mut ticker = tokio::time::interval(options.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let b = backend.clone();
        match tokio::task::spawn_blocking(move || run_once(&b, &options)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "scheduled snapshot failed"),
            Err(e) => tracing::error!(error = %e, "scheduled snapshot task panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::LocalOptions;
    use crate::backend::{Backend, WriteOptions};
    use crate::snapshot_catalog::CatalogKind;
    use vecraft_core::vector::collection::{CollectionConfig, Distance, PointsOp};
    use vecraft_core::vector::engine::Command;
    use vecraft_core::vector::payload::Payload;
    use vecraft_core::vector::point::{PointId, PointStruct};

    fn upsert(id: u64) -> Command {
        let point = PointStruct {
            id: PointId::Num(id),
            vector: vec![1.0, id as f32],
            payload: Payload::new(),
        };
        Command::Points { collection: "c".into(), op: PointsOp::Upsert(vec![point]) }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn schedule_takes_full_then_incrementals_and_applies_retention() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(LocalOptions {
            snapshot_dir: dir.path().join("snapshots"),
            queue_capacity: 8,
            node_id: 1,
            restore_on_open: false,
        })
        .unwrap();
        let config = CollectionConfig::new(2, Distance::Dot);
        let w = WriteOptions::default();
        backend.write(Command::CreateCollection { name: "c".into(), config }, w).await.unwrap();
        // interval 0: due whenever something changed; a full one after 2 incrementals.
        let options = ScheduleOptions {
            schedule: SnapshotSchedule { interval_ms: 0, max_incrementals: 2 },
            retain: 2,
            tick: Duration::from_millis(10),
        };
        let mut kinds = Vec::new();
        for id in 0..6 {
            backend.write(upsert(id), w).await.unwrap();
            let b = backend.clone();
            let taken =
                tokio::task::spawn_blocking(move || run_once(&b, &options)).await.unwrap().unwrap();
            assert_eq!(taken.len(), 1);
            kinds.push(matches!(taken[0].kind, CatalogKind::Full));
            // Nothing changed since: nothing is due.
            let b = backend.clone();
            assert!(
                tokio::task::spawn_blocking(move || run_once(&b, &options))
                    .await
                    .unwrap()
                    .unwrap()
                    .is_empty()
            );
        }
        assert_eq!(kinds, vec![true, false, false, true, false, false]);
        // Retention kept the newest 2 and their chain: full #4 and its two incrementals.
        let left = backend.snapshot_list("c".into()).await.unwrap();
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(matches!(left[0].kind, CatalogKind::Full));
    }
}
