//! Executing queries against an applied engine state, and rebuilding the engine from the
//! snapshot catalogue at start-up: the parts of the [`super::local::LocalBackend`] that touch the
//! engine's query API, kept apart from its threading.

use super::{BackendError, CollectionSummary, ReadAnswer, ReadQuery};
use crate::snapshot_catalog::{CatalogError, SnapshotCatalog};
use vecraft_core::vector::engine::VectorEngine;

/// Answers a query against an applied state.
pub(super) fn execute(engine: &VectorEngine, query: ReadQuery) -> Result<ReadAnswer, BackendError> {
    Ok(match query {
        ReadQuery::ListCollections => {
            ReadAnswer::Collections(engine.collection_names().map(str::to_string).collect())
        }
        ReadQuery::CollectionInfo(name) => {
            let c = engine.collection(&name)?;
            ReadAnswer::Collection(CollectionSummary {
                name,
                config: *c.config(),
                points: c.len() as u64,
                indexed: c.len().saturating_sub(c.unindexed()) as u64,
                indexing: c.unindexed() > 0,
                seq: c.seq(),
                shards: 1,
                replication_factor: 1,
                field_indexes: c.field_indexes(),
            })
        }
        ReadQuery::Retrieve { collection, ids, with_payload, with_vector } => ReadAnswer::Records(
            engine.collection(&collection)?.get(&ids, with_payload, with_vector),
        ),
        ReadQuery::Search { collection, requests } => {
            let c = engine.collection(&collection)?;
            ReadAnswer::Hits(requests.iter().map(|r| c.search(r)).collect::<Result<_, _>>()?)
        }
        ReadQuery::Scroll { collection, request } => {
            ReadAnswer::Page(engine.collection(&collection)?.scroll(&request)?)
        }
        ReadQuery::Count { collection, filter } => {
            ReadAnswer::Count(engine.collection(&collection)?.count(filter.as_ref())? as u64)
        }
    })
}

/// Restores every collection from the newest snapshot (chain) in the catalogue.
pub(super) fn restore_newest(
    catalog: &SnapshotCatalog,
    engine: &mut VectorEngine,
) -> Result<(), CatalogError> {
    let mut names: Vec<String> = catalog.list(None).iter().map(|m| m.collection.clone()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let newest = catalog.last_snapshot(&name).expect("listed collections have snapshots");
        let collection = catalog.restore(&newest.id, &mut |_, _| ())?;
        tracing::info!(collection = %name, snapshot = %newest.id, points = collection.len(),
            "restored collection from snapshot");
        engine.install_collection(collection);
    }
    Ok(())
}
