//! A replicated collection's vector settings through the node: `PATCH /collections/{c}` with
//! `quantization_config` or `vectors: {"": {"on_disk": ...}}` is a [`PointsOp::SetQuantization`]
//! / [`PointsOp::SetVectorsOnDisk`] write that the node puts in the log of every shard (see
//! `vecraft_core::node::vector_settings`), and GET collection reports the settings the shards
//! use, gathered with [`Request::VectorSettings`], not the create-time ones the metadata keeps.
//!
//! [`PointsOp::SetQuantization`]: vecraft_core::vector::collection::PointsOp::SetQuantization
//! [`PointsOp::SetVectorsOnDisk`]: vecraft_core::vector::collection::PointsOp::SetVectorsOnDisk

use super::{NodeBackend, read_level, unexpected};
use crate::backend::{BackendError, ReadConsistency};
use std::time::Duration;
use vecraft_core::node::request::{self as nreq, Reply, Request};
use vecraft_core::node::vector_settings::VectorSettings;

impl NodeBackend {
    /// The settings the collection's shards use (the lowest shard's, when a change is still on
    /// its way to some shard), read at `consistency`.
    pub(super) async fn vector_settings(
        &self,
        collection: String,
        consistency: &ReadConsistency,
        timeout: Option<Duration>,
    ) -> Result<VectorSettings, BackendError> {
        let read = nreq::ReadOptions { level: read_level(consistency), allow_partial: false };
        match self.call(Request::VectorSettings { collection, read }, timeout).await? {
            Reply::VectorSettings { settings, conflicting, .. } => {
                if conflicting {
                    tracing::debug!("shards use different vector settings (a change in flight or in doubt)");
                }
                Ok(settings)
            }
            _ => Err(unexpected()),
        }
    }
}
