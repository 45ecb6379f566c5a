//! Qdrant's collection aliases: `POST /collections/aliases` (create, delete and rename actions,
//! applied all or none), `GET /aliases` and `GET /collections/{c}/aliases`. Every request that
//! names a collection accepts one of its aliases instead (the node resolves it when it routes the
//! request). The node keeps aliases in its replicated metadata; `--engine local` refuses them.

use super::State;
use super::envelope::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ok};
use super::params::Params;
use crate::backend::WriteOptions;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Instant;
use vecraft_core::node::metadata::AliasAction;

/// `POST /collections/aliases` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeAliases {
    actions: Vec<AliasOperation>,
}

/// One action, as Qdrant spells it (`{"create_alias": {...}}`, ...).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
enum AliasOperation {
    #[serde(rename = "create_alias")]
    Create { collection_name: String, alias_name: String },
    #[serde(rename = "delete_alias")]
    Delete { alias_name: String },
    #[serde(rename = "rename_alias")]
    Rename { old_alias_name: String, new_alias_name: String },
}

impl From<AliasOperation> for AliasAction {
    fn from(op: AliasOperation) -> AliasAction {
        match op {
            AliasOperation::Create { collection_name, alias_name } => {
                AliasAction::Create { alias: alias_name, collection: collection_name }
            }
            AliasOperation::Delete { alias_name } => AliasAction::Delete { alias: alias_name },
            AliasOperation::Rename { old_alias_name, new_alias_name } => {
                AliasAction::Rename { old: old_alias_name, new: new_alias_name }
            }
        }
    }
}

fn describe(list: impl IntoIterator<Item = (String, String)>) -> Value {
    let aliases: Vec<Value> =
        list.into_iter().map(|(a, c)| json!({"alias_name": a, "collection_name": c})).collect();
    json!({"aliases": aliases})
}

/// `POST /collections/aliases`.
pub async fn update(
    state: axum::extract::State<State>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): ApiJson<ChangeAliases>,
) -> ApiResult {
    let start = Instant::now();
    if body.actions.is_empty() {
        return Err(ApiError::bad_request("actions: at least one alias action is needed"));
    }
    let actions = body.actions.into_iter().map(AliasAction::from).collect();
    let options = WriteOptions { wait: true, ..super::params::write_options(&params)? };
    state.backend.update_aliases(actions, options).await?;
    Ok(ok(start, json!(true)))
}

/// `GET /aliases`.
pub async fn list(state: axum::extract::State<State>) -> ApiResult {
    let start = Instant::now();
    let list = state.backend.list_aliases().await?;
    Ok(ok(start, describe(list)))
}

/// `GET /collections/{c}/aliases`: the aliases of `c` (404 when `c` is not a collection).
pub async fn of_collection(
    state: axum::extract::State<State>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
) -> ApiResult {
    let start = Instant::now();
    if !super::collections::collection_names(&state, &params).await?.contains(&name) {
        return Err(ApiError::new(axum::http::StatusCode::NOT_FOUND, format!("Collection `{name}` doesn't exist!")));
    }
    let list = state.backend.list_aliases().await?;
    Ok(ok(start, describe(list.into_iter().filter(|(_, c)| *c == name))))
}
