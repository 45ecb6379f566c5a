//! Validation of a command against the current state *before* it is queued.
//!
//! With `wait=false` the client is answered before the worker applies the command, so the
//! engine's own rejection would never reach it. Checking the same rules up front (against the
//! state as it is now) turns every input error a client can cause into a 4xx answer. The engine
//! still validates again when applying; this is a mirror of its rules, not a replacement.

use vecraft_core::vector::collection::{
    Collection, Distance, PointSelector, PointsOp, validate_collection_name,
};
use vecraft_core::vector::engine::{Command, VectorEngine};
use vecraft_core::vector::error::{EngineError, VectorOwner};
use vecraft_core::vector::payload::{split_key_path, validate_payload};
use vecraft_core::vector::payload_index::normalise_field;

/// Rejects a command the engine would reject if applied to `engine` as it is now.
pub(super) fn precheck(engine: &VectorEngine, command: &Command) -> Result<(), EngineError> {
    match command {
        Command::CreateCollection { name, config } => {
            validate_collection_name(name)?;
            config.validate()?;
            if engine.collection(name).is_ok() {
                return Err(EngineError::CollectionExists(name.clone()));
            }
            Ok(())
        }
        Command::DeleteCollection { .. } => Ok(()),
        Command::Points { collection, op } => check_op(engine.collection(collection)?, op),
        Command::CreateFieldIndex { collection, field, schema } => {
            let collection = engine.collection(collection)?;
            let Some(name) = normalise_field(field) else {
                return Err(EngineError::InvalidPayloadKey(field.clone()));
            };
            match collection.field_indexes().get(&name) {
                Some((existing, _)) if existing != schema => Err(EngineError::InvalidRequest(format!(
                    "field `{name}` is already indexed as {existing:?}"
                ))),
                _ => Ok(()),
            }
        }
        Command::DeleteFieldIndex { collection, .. } => engine.collection(collection).map(|_| ()),
    }
}

fn check_op(collection: &Collection, op: &PointsOp) -> Result<(), EngineError> {
    match op {
        PointsOp::Upsert(points) => points.iter().try_for_each(|p| {
            validate_payload(&p.payload)?;
            check_vector(collection, &p.vector, VectorOwner::Point(p.id))
        }),
        PointsOp::Delete(selector) => check_selector(collection, selector, false),
        PointsOp::SetPayload { selector, payload }
        | PointsOp::OverwritePayload { selector, payload } => {
            validate_payload(payload)?;
            check_selector(collection, selector, true)
        }
        PointsOp::DeletePayloadKeys { selector, keys } => {
            if let Some(bad) = keys.iter().find(|k| split_key_path(k).is_none()) {
                return Err(EngineError::InvalidPayloadKey(bad.clone()));
            }
            check_selector(collection, selector, true)
        }
        PointsOp::CreateFieldIndex { field, schema } => check_field_index(collection, field, *schema),
        PointsOp::DeleteFieldIndex { .. } => Ok(()),
        PointsOp::SetQuantization { quantization } => match quantization {
            Some(q) => q.validate().map_err(EngineError::InvalidConfig),
            None => Ok(()),
        },
        PointsOp::SetVectorsOnDisk { .. } => Ok(()),
    }
}

/// A field index declaration the engine would refuse: a key that is no payload path, or a field
/// already indexed with another schema (an identical re-declaration is a no-op, not an error).
pub(crate) fn check_field_index(
    collection: &Collection,
    field: &str,
    schema: vecraft_core::vector::payload_index::FieldSchema,
) -> Result<(), EngineError> {
    let Some(name) = normalise_field(field) else {
        return Err(EngineError::InvalidPayloadKey(field.to_string()));
    };
    match collection.field_indexes().get(&name) {
        Some((existing, _)) if *existing != schema => Err(EngineError::InvalidRequest(format!(
            "field `{name}` is already indexed as {existing:?}"
        ))),
        _ => Ok(()),
    }
}

fn check_selector(
    collection: &Collection,
    selector: &PointSelector,
    require_existing: bool,
) -> Result<(), EngineError> {
    match selector {
        PointSelector::Ids(ids) if require_existing => {
            match ids.iter().find(|id| collection.point(**id).is_none()) {
                Some(missing) => Err(EngineError::PointNotFound(*missing)),
                None => Ok(()),
            }
        }
        PointSelector::Ids(_) => Ok(()),
        PointSelector::Filter(filter) => Ok(filter.validate()?),
    }
}

fn check_vector(
    collection: &Collection,
    vector: &[f32],
    owner: VectorOwner,
) -> Result<(), EngineError> {
    let expected = collection.config().vector_size as usize;
    if vector.len() != expected {
        return Err(EngineError::DimensionMismatch { point: owner, expected, got: vector.len() });
    }
    if let Some(index) = vector.iter().position(|x| !x.is_finite()) {
        return Err(EngineError::NonFiniteVector { point: owner, index });
    }
    if collection.config().distance == Distance::Cosine && vector.iter().all(|x| *x == 0.0) {
        return Err(EngineError::ZeroVector { point: owner });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::vector::collection::CollectionConfig;
    use vecraft_core::vector::payload::Payload;
    use vecraft_core::vector::point::{PointId, PointStruct};

    fn engine() -> VectorEngine {
        let mut e = VectorEngine::new();
        let config = CollectionConfig::new(2, Distance::Cosine);
        e.apply(Command::CreateCollection { name: "c".into(), config }).unwrap();
        e
    }

    fn upsert(vector: Vec<f32>) -> Command {
        let point = PointStruct { id: PointId::Num(1), vector, payload: Payload::new() };
        Command::Points { collection: "c".into(), op: PointsOp::Upsert(vec![point]) }
    }

    #[test]
    fn mirrors_engine_rejections() {
        let e = engine();
        let cases = [
            upsert(vec![1.0]),
            upsert(vec![f32::NAN, 1.0]),
            upsert(vec![0.0, 0.0]),
            Command::Points {
                collection: "nope".into(),
                op: PointsOp::Delete(PointSelector::Ids(vec![])),
            },
            Command::Points {
                collection: "c".into(),
                op: PointsOp::SetPayload {
                    selector: PointSelector::Ids(vec![PointId::Num(9)]),
                    payload: Payload::new(),
                },
            },
            Command::CreateCollection {
                name: "c".into(),
                config: CollectionConfig::new(2, Distance::Dot),
            },
        ];
        for command in cases {
            let pre = precheck(&e, &command).unwrap_err();
            let mut applied = engine();
            assert_eq!(applied.apply(command).unwrap_err(), pre);
        }
        assert!(precheck(&e, &upsert(vec![0.5, 0.5])).is_ok());
    }
}
