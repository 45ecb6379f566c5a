//! Engine-level tests: command validation, search semantics, paging, rebuilds, snapshots, and
//! property tests against a naive model.

mod changes_tests;
mod engine_tests;
mod indexing_tests;
mod model_props;
mod quantizer_policy_tests;
mod set_quantization_tests;
mod snapshot_graph_tests;
mod snapshot_tests;
mod vector_store_tests;

use crate::vector::collection::{CollectionConfig, Distance, PointSelector, PointsOp};
use crate::vector::engine::{Command, VectorEngine};
use crate::vector::payload::{Payload, PayloadValue, payload_from_json};
use crate::vector::point::{PointId, PointStruct};

/// A point with an integer id and a JSON payload.
pub(super) fn point(id: u64, vector: &[f32], payload: serde_json::Value) -> PointStruct {
    PointStruct {
        id: PointId::Num(id),
        vector: vector.to_vec(),
        payload: payload_from_json(&payload).unwrap(),
    }
}

/// An engine with one collection `c`.
pub(super) fn engine_with(config: CollectionConfig) -> VectorEngine {
    let mut engine = VectorEngine::new();
    engine.apply(Command::CreateCollection { name: "c".into(), config }).unwrap();
    engine
}

pub(super) fn upsert(engine: &mut VectorEngine, points: Vec<PointStruct>) {
    engine.apply(Command::Points { collection: "c".into(), op: PointsOp::Upsert(points) }).unwrap();
}

pub(super) fn delete_ids(engine: &mut VectorEngine, ids: &[u64]) {
    let ids = ids.iter().map(|&i| PointId::Num(i)).collect();
    engine
        .apply(Command::Points {
            collection: "c".into(),
            op: PointsOp::Delete(PointSelector::Ids(ids)),
        })
        .unwrap();
}

pub(super) fn config(dim: u32, distance: Distance) -> CollectionConfig {
    CollectionConfig::new(dim, distance)
}

pub(super) fn int_payload(key: &str, v: i64) -> Payload {
    [(key.to_string(), PayloadValue::Int(v))].into()
}
