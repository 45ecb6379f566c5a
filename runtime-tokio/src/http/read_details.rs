//! Response headers that say what a read's body cannot: how stale an `eventual` answer may be
//! and which shards a partial answer lacks. Headers, not body fields, so Qdrant's clients (which
//! validate the body's shape) see exactly Qdrant's envelope.
//!
//! - `vecraft-staleness`: a JSON list, one object per shard replica that served an `eventual`
//!   read: `{"shard":0,"node":2,"applied":41,"commit":43,"since_leader_ms":12}`
//!   (`since_leader_ms` is `null` if that replica has not heard its leader since it started).
//!   `commit - applied` is what the replica knew it lacked; `since_leader_ms` is how long it
//!   had been without news from its leader, not a bound on staleness.
//! - `vecraft-missing-shards`: `1,3` — shards absent from an `allow_partial=true` answer.

use crate::backend::ReadDetails;
use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::json;

/// Header naming the staleness of an `eventual` answer.
pub const STALENESS_HEADER: &str = "vecraft-staleness";
/// Header naming the shards missing from a partial answer.
pub const MISSING_SHARDS_HEADER: &str = "vecraft-missing-shards";

/// Adds the headers that `details` calls for (none for a complete, current answer).
pub fn with_details(mut response: Response, details: &ReadDetails) -> Response {
    if !details.staleness.is_empty() {
        let lines: Vec<_> = details
            .staleness
            .iter()
            .map(|s| {
                json!({
                    "shard": s.shard,
                    "node": s.node,
                    "applied": s.applied,
                    "commit": s.commit,
                    "since_leader_ms": s.since_leader.map(|d| d.as_millis() as u64),
                })
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&serde_json::Value::Array(lines).to_string()) {
            response.headers_mut().insert(STALENESS_HEADER, v);
        }
    }
    if !details.missing.is_empty() {
        let list: Vec<String> = details.missing.iter().map(u32::to_string).collect();
        if let Ok(v) = HeaderValue::from_str(&list.join(",")) {
            response.headers_mut().insert(MISSING_SHARDS_HEADER, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ShardStaleness;
    use axum::response::IntoResponse;
    use std::time::Duration;

    #[test]
    fn headers_only_when_there_is_something_to_say() {
        let plain = with_details("x".into_response(), &ReadDetails::default());
        assert!(plain.headers().get(STALENESS_HEADER).is_none());
        assert!(plain.headers().get(MISSING_SHARDS_HEADER).is_none());
        let details = ReadDetails {
            staleness: vec![
                ShardStaleness {
                    shard: 0,
                    node: 2,
                    applied: 41,
                    commit: 43,
                    since_leader: Some(Duration::from_millis(12)),
                },
                ShardStaleness {
                    shard: 1,
                    node: 3,
                    applied: 7,
                    commit: 7,
                    since_leader: None,
                },
            ],
            missing: vec![1, 3],
        };
        let r = with_details("x".into_response(), &details);
        let v: serde_json::Value =
            serde_json::from_str(r.headers()[STALENESS_HEADER].to_str().unwrap()).unwrap();
        assert_eq!(
            v,
            json!([
                {"shard": 0, "node": 2, "applied": 41, "commit": 43, "since_leader_ms": 12},
                {"shard": 1, "node": 3, "applied": 7, "commit": 7, "since_leader_ms": null}
            ])
        );
        assert_eq!(r.headers()[MISSING_SHARDS_HEADER], "1,3");
    }
}
