//! Request bodies and REST calls both servers are driven with: vecraft upserts of batches of
//! points, etcd puts through its gRPC gateway, collection set-up and shard-leader lookup.
//!
//! Bodies are assembled from pre-formatted pieces (each vector's JSON text is made once), so the
//! load generator spends its CPU on sending, not on float formatting: on a 2-core machine the
//! clients share the cores with the servers they measure.

use super::http::{Answer, HttpError, KeepAlive};
use crate::synthetic::{Mixture, MixtureSpec};
use hyper::Method;
use serde_json::{Value, json};
use std::fmt::Write;

/// Name of the collection the write benchmarks use.
pub const COLLECTION: &str = "bench";

/// `count` vectors of `dim` floats, each already formatted as a JSON array.
pub fn vector_texts(dim: usize, count: usize, seed: u64) -> Vec<String> {
    let mix = Mixture::new(MixtureSpec {
        dim,
        clusters: 100,
        spread: 1.0,
        seed,
    });
    mix.sample(count, seed ^ 0x5eed)
        .chunks_exact(dim)
        .map(|v| {
            let mut s = String::with_capacity(dim * 10);
            s.push('[');
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(s, "{x:.5}");
            }
            s.push(']');
            s
        })
        .collect()
}

/// `{"points":[{"id":first,"vector":…}, …]}` with `batch` points, vectors taken round-robin
/// from `pool` starting at `first`.
pub fn upsert_body(first: u64, batch: usize, pool: &[String]) -> String {
    let per = pool.first().map_or(16, |v| v.len() + 32);
    let mut s = String::with_capacity(batch * per + 16);
    s.push_str("{\"points\":[");
    for i in 0..batch as u64 {
        if i > 0 {
            s.push(',');
        }
        let id = first + i;
        let v = &pool[(id % pool.len() as u64) as usize];
        let _ = write!(s, "{{\"id\":{id},\"vector\":{v}}}");
    }
    s.push_str("]}");
    s
}

/// The upsert route with the acknowledgement the benchmarks use: `wait=true` (answer once
/// applied) and `write_ack=quorum` (a majority of the shard's replicas hold it durably).
pub fn upsert_path(collection: &str) -> String {
    format!("/collections/{collection}/points?wait=true&write_ack=quorum")
}

/// Creates `collection` (Cosine, `dim`, HNSW m=16, ef_construct=100) with `shards` shards of
/// `replication` replicas each; fails on any answer but 200.
pub async fn create_collection(
    client: &mut KeepAlive,
    collection: &str,
    dim: usize,
    shards: u32,
    replication: u32,
) -> Result<(), String> {
    let body = json!({
        "vectors": {"size": dim, "distance": "Cosine"},
        "shard_number": shards,
        "replication_factor": replication,
        "hnsw_config": {"m": 16, "ef_construct": 100},
    });
    let a = client
        .request(
            Method::PUT,
            &format!("/collections/{collection}"),
            body.to_string(),
        )
        .await
        .map_err(|e| e.to_string())?;
    if a.status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "create {collection}: {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ))
    }
}

/// Waits until every member in `members` answers `GET /collections/{c}` with 200 and lists
/// every replica `Active`. Creation is acknowledged once the metadata group applied it on its
/// leader; the other members learn it a moment later, and a write sent to them before that
/// gets a 404, which would count as a failure of the load rather than of the set-up.
pub async fn wait_collection_everywhere(
    members: &[String],
    collection: &str,
    within: std::time::Duration,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + within;
    for addr in members {
        let mut c = KeepAlive::new(addr.clone(), std::time::Duration::from_secs(5));
        loop {
            let exists = matches!(c.get(&format!("/collections/{collection}")).await, Ok(a) if a.status.is_success());
            if exists
                && let Ok(a) = c.get(&format!("/collections/{collection}/cluster")).await
                && all_active(&a.json())
            {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(format!(
                    "collection {collection} not ready on {addr} within {within:?}"
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

/// Waits until `collection` reports `green` on every member (no deferred indexing left on that
/// node's replicas); returns the time it took, or `None` past `within`.
pub async fn wait_indexed_everywhere(
    members: &[String],
    collection: &str,
    within: std::time::Duration,
) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    for addr in members {
        let mut c = KeepAlive::new(addr.clone(), std::time::Duration::from_secs(5));
        loop {
            if let Ok(a) = c.get(&format!("/collections/{collection}")).await
                && a.status.is_success()
                && a.json()["result"]["status"] == "green"
            {
                break;
            }
            if start.elapsed() >= within {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    Some(start.elapsed())
}

/// Leader elections the members' shard groups of `collection` went through: the sum over
/// groups of the highest term any member reports, minus one (the first election), from
/// `vecraft_raft_term` in `/metrics`.
pub async fn elections(members: &[String], collection: &str) -> u64 {
    let mut terms: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let needle = format!("collection=\"{collection}\"");
    for addr in members {
        let mut c = KeepAlive::new(addr.clone(), std::time::Duration::from_secs(5));
        let Ok(a) = c.get("/metrics").await else { continue };
        for line in String::from_utf8_lossy(&a.body).lines() {
            let Some(rest) = line.strip_prefix("vecraft_raft_term{") else { continue };
            let Some((labels, value)) = rest.split_once("} ") else { continue };
            if !labels.contains(&needle) {
                continue;
            }
            let group = labels.split(',').find(|l| l.starts_with("group=")).unwrap_or_default().to_string();
            let term = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
            let e = terms.entry(group).or_default();
            *e = (*e).max(term);
        }
    }
    terms.values().map(|t| t.saturating_sub(1)).sum()
}

/// Whether an answer is an acknowledged write or read (2xx and `"status":"ok"`).
pub fn acknowledged(a: &Result<Answer, HttpError>) -> bool {
    match a {
        Ok(a) if a.status.is_success() => {
            a.json().get("status").and_then(Value::as_str) == Some("ok")
        }
        _ => false,
    }
}

/// Node id of the leader of `shard` of `collection` as node `client` sees it
/// (`GET /collections/{c}/cluster`: `local_shards` are the answering node's, `peer_id` names
/// it; `remote_shards` carry their own `peer_id`).
pub async fn shard_leader(client: &mut KeepAlive, collection: &str, shard: u64) -> Option<u64> {
    let a = client
        .get(&format!("/collections/{collection}/cluster"))
        .await
        .ok()?;
    leader_in(&a.json(), shard)
}

/// The leader of `shard` in a `/collections/{c}/cluster` answer.
pub fn leader_in(answer: &Value, shard: u64) -> Option<u64> {
    let r = answer.get("result")?;
    let me = r.get("peer_id")?.as_u64()?;
    let is = |s: &Value| {
        s.get("shard_id").and_then(Value::as_u64) == Some(shard)
            && s.get("leader").and_then(Value::as_bool) == Some(true)
    };
    if r.get("local_shards")?.as_array()?.iter().any(is) {
        return Some(me);
    }
    r.get("remote_shards")?
        .as_array()?
        .iter()
        .find(|s| is(s))?
        .get("peer_id")?
        .as_u64()
}

/// Whether every replica listed in a `/collections/{c}/cluster` answer is `Active`.
pub fn all_active(answer: &Value) -> bool {
    let Some(r) = answer.get("result") else {
        return false;
    };
    let mut n = 0;
    for key in ["local_shards", "remote_shards"] {
        for s in r.get(key).and_then(Value::as_array).into_iter().flatten() {
            n += 1;
            if s.get("state").and_then(Value::as_str) != Some("Active") {
                return false;
            }
        }
    }
    n > 0
}

/// Standard base64 (RFC 4648, padded), for etcd's JSON gateway, which takes keys and values
/// as base64 `bytes` fields.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// etcd v3 gateway route for a put (etcd 3.4 serves `/v3/...`).
pub const ETCD_PUT_PATH: &str = "/v3/kv/put";

/// `{"key": b64(key), "value": value_b64}` for one etcd put.
pub fn etcd_put_body(key: &str, value_b64: &str) -> String {
    format!(
        "{{\"key\":\"{}\",\"value\":\"{value_b64}\"}}",
        base64(key.as_bytes())
    )
}

/// Whether an etcd gateway answer is a successful put (200 with a `header`).
pub fn etcd_put_ok(a: &Result<Answer, HttpError>) -> bool {
    matches!(a, Ok(a) if a.status.is_success() && a.json().get("header").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn upsert_body_is_json_with_distinct_ids() {
        let pool = vector_texts(4, 3, 1);
        let body: Value = serde_json::from_str(&upsert_body(10, 5, &pool)).unwrap();
        let points = body["points"].as_array().unwrap();
        let ids: Vec<u64> = points.iter().map(|p| p["id"].as_u64().unwrap()).collect();
        assert_eq!(ids, vec![10, 11, 12, 13, 14]);
        assert_eq!(points[0]["vector"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn leader_and_activity_are_read_from_the_cluster_answer() {
        let answer = json!({"result": {"peer_id": 2,
            "local_shards": [{"shard_id": 0, "state": "Active", "leader": false}],
            "remote_shards": [{"shard_id": 0, "peer_id": 3, "state": "Active", "leader": true},
                              {"shard_id": 0, "peer_id": 1, "state": "Partial", "leader": false}]}});
        assert_eq!(leader_in(&answer, 0), Some(3));
        assert_eq!(leader_in(&answer, 1), None);
        assert!(!all_active(&answer));
        let mine = json!({"result": {"peer_id": 2,
            "local_shards": [{"shard_id": 0, "state": "Active", "leader": true}], "remote_shards": []}});
        assert_eq!(leader_in(&mine, 0), Some(2));
        assert!(all_active(&mine));
    }
}
