//! A replicated collection's quantization through the node: `PATCH /collections/{c}` with
//! `quantization_config` is a [`PointsOp::SetQuantization`] write that the node puts in the log
//! of every shard (see `vecraft_core::node::quantization`), and GET collection reports the
//! config the shards use, gathered with [`Request::Quantization`], not the create-time one the
//! metadata keeps.
//!
//! [`PointsOp::SetQuantization`]: vecraft_core::vector::collection::PointsOp::SetQuantization

use super::{NodeBackend, read_level, unexpected};
use crate::backend::{BackendError, ReadConsistency};
use std::time::Duration;
use vecraft_core::node::request::{self as nreq, Reply, Request};
use vecraft_core::vector::quantization::QuantizationConfig;

impl NodeBackend {
    /// The quantization the collection's shards use (the lowest shard's, when a change is still
    /// on its way to some shard), read at `consistency`.
    pub(super) async fn quantization(
        &self,
        collection: String,
        consistency: &ReadConsistency,
        timeout: Option<Duration>,
    ) -> Result<Option<QuantizationConfig>, BackendError> {
        let read = nreq::ReadOptions { level: read_level(consistency), allow_partial: false };
        match self.call(Request::Quantization { collection, read }, timeout).await? {
            Reply::Quantization { config, conflicting, .. } => {
                if conflicting {
                    tracing::debug!("shards use different quantization configs (a change in flight or in doubt)");
                }
                Ok(config)
            }
            _ => Err(unexpected()),
        }
    }
}
