//! Payload field indexes through the replicated node: `PUT /collections/{c}/index` and
//! `DELETE /collections/{c}/index/{field}` become a [`PointsOp::CreateFieldIndex`] /
//! [`PointsOp::DeleteFieldIndex`] write that the node puts in the log of every shard of the
//! collection (so every replica builds the index at the same log position, and replays and
//! snapshot installs declare it again), and GET collection's `payload_schema` is gathered from
//! the shards with [`Request::FieldIndexes`].
//!
//! Errors keep the local engine's meaning (`backend/precheck.rs`): a key that is no payload path
//! and a field already indexed with another schema are 400 before anything is proposed; an
//! unknown collection is 404; an index write that times out after it was proposed is 500 (in
//! doubt), as every other write. The schema conflict check reads the declarations first (a
//! `strong` read) and is as racy as the local precheck under concurrent writers: a conflicting
//! create that slips past it is refused by every replica when applied and changes nothing
//! (the client then sees success although the field keeps its older schema).

use super::{NodeBackend, read_level, unexpected};
use crate::backend::{
    BackendError, ReadConsistency, WriteOptions, WriteReceipt,
};
use std::collections::BTreeMap;
use std::time::Duration;
use vecraft_core::node::request::{self as nreq, Reply, Request};
use vecraft_core::vector::collection::PointsOp;
use vecraft_core::vector::engine::CommandOutcome;
use vecraft_core::vector::error::EngineError;
use vecraft_core::vector::payload_index::{FieldSchema, normalise_field};

/// Declared field indexes as GET collection reports them: field -> (schema, points indexed).
pub(super) type FieldIndexes = BTreeMap<String, (FieldSchema, usize)>;

impl NodeBackend {
    /// The collection's declared payload field indexes, gathered from every shard at `consistency`.
    pub(super) async fn field_indexes(
        &self,
        collection: String,
        consistency: &ReadConsistency,
        timeout: Option<Duration>,
    ) -> Result<FieldIndexes, BackendError> {
        let read = nreq::ReadOptions {
            level: read_level(consistency),
            allow_partial: false,
        };
        match self
            .call(Request::FieldIndexes { collection, read }, timeout)
            .await?
        {
            Reply::FieldIndexes { fields, .. } => Ok(fields
                .into_iter()
                .map(|(field, info)| (field, (info.schema, info.points as usize)))
                .collect()),
            _ => Err(unexpected()),
        }
    }

    /// Declares (`schema` set) or drops (`None`) the index of `field` in every shard's log.
    pub(super) async fn write_field_index(
        &self,
        collection: String,
        field: String,
        schema: Option<FieldSchema>,
        options: WriteOptions,
        operation_id: u64,
    ) -> Result<WriteReceipt, BackendError> {
        let name = match (&schema, normalise_field(&field)) {
            (_, Some(name)) => name,
            // Dropping a field that cannot be indexed drops nothing, as in the local engine;
            // it still answers 404 for an unknown collection (below, from the node).
            (None, None) => field.clone(),
            (Some(_), None) => {
                return Err(BackendError::Engine(EngineError::InvalidPayloadKey(field)));
            }
        };
        let declared = self
            .field_indexes(
                collection.clone(),
                &ReadConsistency::Strong,
                options.timeout,
            )
            .await?;
        let existing = declared.get(&name).map(|(s, _)| *s);
        if let (Some(want), Some(have)) = (schema, existing)
            && want != have
        {
            return Err(BackendError::Engine(EngineError::InvalidRequest(format!(
                "field `{name}` is already indexed as {have:?}"
            ))));
        }
        let op = match schema {
            Some(schema) => PointsOp::CreateFieldIndex { field, schema },
            None => PointsOp::DeleteFieldIndex { field },
        };
        let (token, status) = self.write_op(collection, op, &options).await?;
        // Whether it changed, as far as the declarations read just before tell.
        let changed = schema.is_some() != existing.is_some();
        Ok(WriteReceipt {
            operation_id,
            status,
            token,
            outcome: Some(CommandOutcome::FieldIndexChanged { changed }),
        })
    }
}
