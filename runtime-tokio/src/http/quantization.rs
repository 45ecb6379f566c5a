//! Qdrant's quantization JSON: `quantization_config` on collection create (and in collection
//! info) and `params.quantization` on search/query. Every refusal is a 400 naming the field.
//!
//! Accepted: `{"scalar": {"type": "int8", "quantile"?, "always_ram"?, "memory"?}}` and
//! `{"binary": {"always_ram"?, "memory"?, "encoding"?: "one_bit", "query_encoding"?:
//! "default" | "binary"}}`. `always_ram`/`memory` are accepted and have no effect (codes are
//! always in RAM; the f32 originals go to disk with the collection's `vectors.on_disk`). Product and turbo quantization, and binary encodings other than one
//! bit, are refused by name rather than silently served as something else.

use super::envelope::ApiError;
use serde_json::{Map, Value, json};
use vecraft_core::vector::quantization::{QuantizationConfig, QuantizationSearchParams};

fn bad(msg: String) -> ApiError {
    ApiError::bad_request(msg)
}

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| bad(format!("{field} must be an object, got {value}")))
}

fn optional_bool(
    o: &Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Option<bool>, ApiError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad(format!("{path}.{field} must be a boolean, got {v}"))),
    }
}

fn refuse_unknown(o: &Map<String, Value>, known: &[&str], path: &str) -> Result<(), ApiError> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(bad(format!("{path}.{k} is not a known field"))),
        None => Ok(()),
    }
}

/// Parses a create body's `quantization_config` (`None` for absent or null).
pub fn parse_config(value: Option<&Value>) -> Result<Option<QuantizationConfig>, ApiError> {
    const FIELD: &str = "quantization_config";
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let o = object(value, FIELD)?;
    if o.len() != 1 {
        return Err(bad(format!(
            "{FIELD} must have exactly one of `scalar`, `binary`"
        )));
    }
    let (kind, body) = o.iter().next().expect("one entry");
    let path = format!("{FIELD}.{kind}");
    let config = match kind.as_str() {
        "scalar" => {
            let s = object(body, &path)?;
            refuse_unknown(s, &["type", "quantile", "always_ram", "memory"], &path)?;
            match s.get("type") {
                Some(Value::String(t)) if t == "int8" => {}
                Some(v) => return Err(bad(format!("{path}.type must be \"int8\", got {v}"))),
                None => return Err(bad(format!("{path}.type is required (\"int8\")"))),
            }
            let quantile = match s.get("quantile") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_f64()
                        .ok_or_else(|| bad(format!("{path}.quantile must be a number, got {v}")))?
                        as f32,
                ),
            };
            QuantizationConfig::Scalar {
                quantile,
                always_ram: optional_bool(s, "always_ram", &path)?,
            }
        }
        "binary" => {
            let b = object(body, &path)?;
            refuse_unknown(
                b,
                &["always_ram", "memory", "encoding", "query_encoding"],
                &path,
            )?;
            match b.get("encoding") {
                None | Some(Value::Null) => {}
                Some(Value::String(e)) if e == "one_bit" => {}
                Some(v) => {
                    return Err(bad(format!(
                        "{path}.encoding {v} is not supported (only \"one_bit\")"
                    )));
                }
            }
            match b.get("query_encoding") {
                None | Some(Value::Null) => {}
                Some(Value::String(e)) if e == "default" || e == "binary" => {}
                Some(v) => {
                    return Err(bad(format!(
                        "{path}.query_encoding {v} is not supported (\"default\" or \"binary\")"
                    )));
                }
            }
            QuantizationConfig::Binary {
                always_ram: optional_bool(b, "always_ram", &path)?,
            }
        }
        "product" | "turbo" => {
            return Err(bad(format!("{path}: {kind} quantization is not supported")));
        }
        other => {
            return Err(bad(format!(
                "{FIELD}.{other} is not a quantization kind (scalar, binary)"
            )));
        }
    };
    config.validate().map_err(bad)?;
    Ok(Some(config))
}

/// Parses a PATCH body's `quantization_config`: `None` leaves it unchanged (absent or null),
/// `Some(None)` is Qdrant's `"Disabled"`, `Some(Some(_))` a new config (as at create).
pub fn parse_update(value: Option<&Value>) -> Result<Option<Option<QuantizationConfig>>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "Disabled" => Ok(Some(None)),
        Some(Value::String(s)) => Err(bad(format!(
            "quantization_config \"{s}\" is not known (an object, or \"Disabled\")"
        ))),
        Some(v) => parse_config(Some(v)).map(Some),
    }
}

/// The collection info's `quantization_config` (`null` without quantization).
pub fn config_json(config: Option<QuantizationConfig>) -> Value {
    match config {
        None => Value::Null,
        Some(QuantizationConfig::Scalar {
            quantile,
            always_ram,
        }) => {
            // The shortest decimal of the f32 (0.99, as the client sent it, not 0.9900000095...).
            let quantile = quantile.and_then(|q| q.to_string().parse::<f64>().ok());
            json!({"scalar": {"type": "int8", "quantile": quantile, "always_ram": always_ram}})
        }
        Some(QuantizationConfig::Binary { always_ram }) => {
            json!({"binary": {"always_ram": always_ram}})
        }
    }
}

/// Parses `params.quantization` of a search or query (`None` for absent or null).
pub fn parse_search_params(
    value: Option<&Value>,
) -> Result<Option<QuantizationSearchParams>, ApiError> {
    const PATH: &str = "params.quantization";
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let o = object(value, PATH)?;
    refuse_unknown(o, &["ignore", "rescore", "oversampling"], PATH)?;
    let defaults = QuantizationSearchParams::default();
    let oversampling = match o.get("oversampling") {
        None | Some(Value::Null) => defaults.oversampling,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| bad(format!("{PATH}.oversampling must be a number, got {v}")))?
            as f32,
    };
    let params = QuantizationSearchParams {
        ignore: optional_bool(o, "ignore", PATH)?.unwrap_or(defaults.ignore),
        rescore: optional_bool(o, "rescore", PATH)?.unwrap_or(defaults.rescore),
        oversampling,
    };
    params.validate().map_err(bad)?;
    Ok(Some(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_leaves_sets_or_disables_and_reports_the_quantile_as_sent() {
        assert_eq!(parse_update(None).unwrap(), None);
        assert_eq!(parse_update(Some(&Value::Null)).unwrap(), None, "null leaves it unchanged");
        assert_eq!(parse_update(Some(&json!("Disabled"))).unwrap(), Some(None));
        let binary = json!({"binary": {}});
        assert_eq!(
            parse_update(Some(&binary)).unwrap(),
            Some(Some(QuantizationConfig::Binary { always_ram: None }))
        );
        for (bad, needle) in [(json!("disabled"), "Disabled"), (json!(3), "must be an object"), (json!({"scalar": {}}), "type")] {
            let e = parse_update(Some(&bad)).unwrap_err();
            assert!(format!("{e:?}").contains(needle), "{bad}: {e:?}");
        }
        let q = QuantizationConfig::Scalar { quantile: Some(0.99), always_ram: None };
        assert_eq!(config_json(Some(q))["scalar"]["quantile"], json!(0.99));
    }

    #[test]
    fn configs_parse_and_refusals_name_the_field() {
        let scalar = json!({"scalar": {"type": "int8", "quantile": 0.99, "always_ram": true}});
        let parsed = parse_config(Some(&scalar)).unwrap().unwrap();
        assert_eq!(
            parsed,
            QuantizationConfig::Scalar {
                quantile: Some(0.99),
                always_ram: Some(true)
            }
        );
        assert_eq!(config_json(Some(parsed))["scalar"]["type"], "int8");
        let binary = json!({"binary": {"always_ram": false, "encoding": "one_bit"}});
        assert_eq!(
            parse_config(Some(&binary)).unwrap(),
            Some(QuantizationConfig::Binary {
                always_ram: Some(false)
            })
        );
        assert_eq!(parse_config(Some(&Value::Null)).unwrap(), None);
        assert_eq!(parse_config(None).unwrap(), None);
        assert_eq!(config_json(None), Value::Null);
        for (body, needle) in [
            (
                json!({"scalar": {"type": "int4"}}),
                "quantization_config.scalar.type",
            ),
            (json!({"scalar": {}}), "quantization_config.scalar.type"),
            (
                json!({"scalar": {"type": "int8", "quantile": 0.4}}),
                "quantization_config.scalar.quantile",
            ),
            (
                json!({"scalar": {"type": "int8", "quantile": 1.01}}),
                "quantization_config.scalar.quantile",
            ),
            (
                json!({"scalar": {"type": "int8", "quantile": "high"}}),
                "quantization_config.scalar.quantile",
            ),
            (
                json!({"scalar": {"type": "int8", "always_ram": 1}}),
                "quantization_config.scalar.always_ram",
            ),
            (
                json!({"scalar": {"type": "int8", "bits": 4}}),
                "quantization_config.scalar.bits",
            ),
            (
                json!({"binary": {"encoding": "two_bits"}}),
                "quantization_config.binary.encoding",
            ),
            (
                json!({"binary": {"query_encoding": "scalar8bits"}}),
                "quantization_config.binary.query_encoding",
            ),
            (
                json!({"product": {"compression": "x16"}}),
                "quantization_config.product",
            ),
            (
                json!({"scalar": {"type": "int8"}, "binary": {}}),
                "quantization_config",
            ),
            (json!([1]), "quantization_config"),
        ] {
            let e = parse_config(Some(&body)).unwrap_err();
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
        // Quantile bounds are inclusive at both ends.
        for ok in [0.5, 1.0] {
            assert!(
                parse_config(Some(&json!({"scalar": {"type": "int8", "quantile": ok}}))).is_ok()
            );
        }
    }

    #[test]
    fn search_params_parse_with_qdrant_defaults_and_bounds() {
        let p = parse_search_params(Some(&json!({"rescore": true, "oversampling": 2.5})))
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            QuantizationSearchParams {
                ignore: false,
                rescore: true,
                oversampling: 2.5
            }
        );
        let p = parse_search_params(Some(&json!({"ignore": true})))
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            QuantizationSearchParams {
                ignore: true,
                rescore: true,
                oversampling: 1.0
            }
        );
        assert_eq!(parse_search_params(None).unwrap(), None);
        for ok in [1.0, 100.0] {
            assert!(
                parse_search_params(Some(&json!({"oversampling": ok}))).is_ok(),
                "{ok}"
            );
        }
        for (body, needle) in [
            (
                json!({"oversampling": 0.99}),
                "params.quantization.oversampling",
            ),
            (
                json!({"oversampling": 100.5}),
                "params.quantization.oversampling",
            ),
            (
                json!({"oversampling": "2"}),
                "params.quantization.oversampling",
            ),
            (json!({"rescore": "yes"}), "params.quantization.rescore"),
            (json!({"ignore": 0}), "params.quantization.ignore"),
            (
                json!({"rescore_all": true}),
                "params.quantization.rescore_all",
            ),
            (json!(true), "params.quantization"),
        ] {
            let e = parse_search_params(Some(&body)).unwrap_err();
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
    }
}
