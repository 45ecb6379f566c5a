//! Query parameters: Qdrant's `wait`, `ordering`, `consistency`, `timeout`, and vecraft's own
//! `write_ack`, `read_consistency`, `token`, mapped onto [`WriteOptions`] / [`ReadOptions`].
//!
//! Mapping (also in `runtime-tokio/API.md`):
//!
//! | Qdrant parameter | vecraft meaning |
//! |---|---|
//! | `wait=true` | answer once applied (`status: completed`); default ack `quorum` |
//! | `wait=false` (Qdrant's server default) | answer once validated and ordered (`acknowledged`); default ack `leader` (see below) |
//! | `ordering=weak\|medium\|strong` | accepted; every vecraft write is totally ordered by its shard's log, which is at least Qdrant's `strong`, so it changes nothing |
//! | no `consistency` (what qdrant-client sends by default) | `strong` (read-after-write holds, as Qdrant users expect after `wait=true`) |
//! | `consistency=1` | `eventual` (one replica) |
//! | `consistency=N>1`, `majority`, `quorum` | `quorum` |
//! | `consistency=all` | `strong` (linearizable) |
//! | `timeout=S` | give up after `S` seconds |
//!
//! vecraft additions: `write_ack=leader|one_copy|quorum` (default `quorum` with `wait=true`,
//! `leader` otherwise: as Qdrant's `wait=false` answers once the write is in the WAL, the node
//! answers once it is durable on the shard leader, before a majority has it; such a write can
//! still be lost if that leader fails first, which `wait=true` or `write_ack=quorum` rule out),
//! `read_consistency=eventual|strong|quorum|read_your_writes` (overrides `consistency`), and
//! `token=SHARD:INDEX[,SHARD:INDEX...]` (the `vecraft-read-token` header of a write's answer; implies
//! `read_your_writes`), `allow_partial=true` (answer from the shards that can answer, naming the
//! others in the `vecraft-missing-shards` header, instead of failing). Unknown values are a 400 naming the parameter, never silently ignored.

use super::envelope::ApiError;
use crate::backend::{AckLevel, ReadConsistency, ReadOptions, ReadToken, WriteOptions};
use std::collections::HashMap;
use std::time::Duration;

/// Raw query parameters of a request.
pub type Params = HashMap<String, String>;

/// Longest accepted `timeout` (one day): larger values are surely mistakes.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

fn bool_param(params: &Params, name: &str) -> Result<Option<bool>, ApiError> {
    match params.get(name).map(String::as_str) {
        None => Ok(None),
        Some("true") | Some("True") | Some("1") => Ok(Some(true)),
        Some("false") | Some("False") | Some("0") => Ok(Some(false)),
        Some(other) => Err(ApiError::bad_request(format!(
            "query parameter `{name}`: `{other}` is not a boolean"
        ))),
    }
}

fn timeout_param(params: &Params) -> Result<Option<Duration>, ApiError> {
    match params.get("timeout") {
        None => Ok(None),
        Some(text) => match text.parse::<u64>() {
            Ok(secs) if (1..=MAX_TIMEOUT_SECS).contains(&secs) => {
                Ok(Some(Duration::from_secs(secs)))
            }
            _ => Err(ApiError::bad_request(format!(
                "query parameter `timeout`: `{text}` is not a number of seconds in 1..={MAX_TIMEOUT_SECS}"
            ))),
        },
    }
}

/// Options of a write request.
pub fn write_options(params: &Params) -> Result<WriteOptions, ApiError> {
    if let Some(ordering) = params.get("ordering")
        && !matches!(ordering.as_str(), "weak" | "medium" | "strong")
    {
        return Err(ApiError::bad_request(format!(
            "query parameter `ordering`: `{ordering}` is not one of weak, medium, strong"
        )));
    }
    let wait = bool_param(params, "wait")?.unwrap_or(false);
    let ack = match params.get("write_ack").map(String::as_str) {
        // Qdrant's `wait=false` answers once the write is in the WAL, before it is applied:
        // on the node that is the shard leader's durable log (`leader`).
        None if !wait => AckLevel::Leader,
        None | Some("quorum") => AckLevel::Quorum,
        Some("leader") => AckLevel::Leader,
        Some("one_copy") => AckLevel::OneCopy,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "query parameter `write_ack`: `{other}` is not one of leader, one_copy, quorum"
            )));
        }
    };
    Ok(WriteOptions {
        ack,
        wait,
        timeout: timeout_param(params)?,
    })
}

/// Whether `wait` was given as true (for routes whose default differs).
pub fn wait_param(params: &Params, default: bool) -> Result<bool, ApiError> {
    Ok(bool_param(params, "wait")?.unwrap_or(default))
}

/// Options of a read request.
pub fn read_options(params: &Params) -> Result<ReadOptions, ApiError> {
    let token = match params.get("token") {
        None => None,
        Some(text) => Some(ReadToken::decode(text).ok_or_else(|| {
            ApiError::bad_request(format!("query parameter `token`: `{text}` is not SHARD:INDEX[,SHARD:INDEX...]"))
        })?),
    };
    let from_qdrant = match params.get("consistency").map(String::as_str) {
        None => None,
        Some("majority") | Some("quorum") => Some(ReadConsistency::Quorum),
        Some("all") => Some(ReadConsistency::Strong),
        Some(n) => match n.parse::<u32>() {
            Ok(1) => Some(ReadConsistency::Eventual),
            Ok(n) if n > 1 => Some(ReadConsistency::Quorum),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "query parameter `consistency`: `{n}` is not a positive integer, majority, \
                     quorum or all"
                )));
            }
        },
    };
    let consistency = match params.get("read_consistency").map(String::as_str) {
        None => match token {
            Some(t) => ReadConsistency::ReadYourWrites(t),
            None => from_qdrant.unwrap_or_default(),
        },
        Some("eventual") => ReadConsistency::Eventual,
        Some("strong") => ReadConsistency::Strong,
        Some("quorum") => ReadConsistency::Quorum,
        Some("read_your_writes") => ReadConsistency::ReadYourWrites(token.ok_or_else(|| {
            ApiError::bad_request("read_consistency=read_your_writes needs a `token` parameter")
        })?),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "query parameter `read_consistency`: `{other}` is not one of eventual, strong, \
                 quorum, read_your_writes"
            )));
        }
    };
    Ok(ReadOptions {
        consistency,
        timeout: timeout_param(params)?,
        allow_partial: bool_param(params, "allow_partial")?.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn write_mapping() {
        let o = write_options(&p(&[])).unwrap();
        assert_eq!((o.wait, o.ack, o.timeout), (false, AckLevel::Leader, None));
        let o = write_options(&p(&[("wait", "false"), ("write_ack", "quorum")])).unwrap();
        assert_eq!((o.wait, o.ack), (false, AckLevel::Quorum));
        assert_eq!(write_options(&p(&[("wait", "true")])).unwrap().ack, AckLevel::Quorum);
        let o = write_options(&p(&[("wait", "true"), ("ordering", "strong"), ("timeout", "5")]))
            .unwrap();
        assert_eq!((o.wait, o.timeout), (true, Some(Duration::from_secs(5))));
        assert_eq!(write_options(&p(&[("write_ack", "leader")])).unwrap().ack, AckLevel::Leader);
        for bad in [("wait", "yes"), ("ordering", "x"), ("timeout", "-1"), ("write_ack", "all")] {
            let e = write_options(&p(&[bad])).unwrap_err();
            assert!(e.message.contains(bad.0), "{}", e.message);
        }
    }

    #[test]
    fn read_mapping() {
        let c = |pairs: &[(&str, &str)]| read_options(&p(pairs)).map(|o| o.consistency);
        assert_eq!(c(&[]).unwrap(), ReadConsistency::Strong);
        assert_eq!(c(&[("consistency", "1")]).unwrap(), ReadConsistency::Eventual);
        assert_eq!(c(&[("consistency", "3")]).unwrap(), ReadConsistency::Quorum);
        assert_eq!(c(&[("consistency", "majority")]).unwrap(), ReadConsistency::Quorum);
        assert_eq!(c(&[("consistency", "all")]).unwrap(), ReadConsistency::Strong);
        let t = ReadToken::single(0, 7);
        assert_eq!(c(&[("token", "0:7")]).unwrap(), ReadConsistency::ReadYourWrites(t));
        assert_eq!(
            c(&[("token", "0:7"), ("read_consistency", "strong")]).unwrap(),
            ReadConsistency::Strong
        );
        assert!(c(&[("consistency", "0")]).is_err());
        assert!(c(&[("read_consistency", "read_your_writes")]).is_err());
        assert!(c(&[("token", "abc")]).is_err());
    }
}
