//! API keys, as Qdrant: the `api-key` header or `Authorization: Bearer <key>`.
//!
//! With no key configured, everything is open. With keys configured, every route except the
//! health probes (`/healthz`, `/livez`, `/readyz`) needs one: none is a 401, an unknown key a
//! 403, and a read-only key on a route that changes state a 403. Read routes are `GET`/`HEAD`
//! plus the `POST`s that only query (retrieve, query, search, scroll, count). Keys are compared
//! in constant time so response timing does not leak them.

use super::State;
use super::envelope::ApiError;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Routes open without a key.
pub const OPEN_PATHS: [&str; 3] = ["/healthz", "/livez", "/readyz"];

/// What a request may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Everything.
    ReadWrite,
    /// Read routes only.
    ReadOnly,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Which access a presented key grants, if any.
pub fn access_of(key: &str, keys: &[String], read_only: &[String]) -> Option<Access> {
    // Check every key (no early exit) so timing does not reveal which list matched.
    let rw = keys.iter().fold(false, |m, k| m | constant_time_eq(k.as_bytes(), key.as_bytes()));
    let ro =
        read_only.iter().fold(false, |m, k| m | constant_time_eq(k.as_bytes(), key.as_bytes()));
    if rw {
        Some(Access::ReadWrite)
    } else if ro {
        Some(Access::ReadOnly)
    } else {
        None
    }
}

/// Whether a route only reads.
pub fn is_read_route(method: &Method, path: &str) -> bool {
    if method == Method::GET || method == Method::HEAD {
        return true;
    }
    if method != Method::POST {
        return false;
    }
    let read_suffixes = [
        "/points/query",
        "/points/query/batch",
        "/points/search",
        "/points/search/batch",
        "/points/scroll",
        "/points/count",
    ];
    if read_suffixes.iter().any(|s| path.ends_with(s)) {
        return true;
    }
    // POST /collections/{c}/points is retrieve; its siblings (delete, payload) write.
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(parts.as_slice(), ["collections", _, "points"])
}

/// The key a request presents, from `api-key` or `Authorization: Bearer`.
fn presented_key(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(v) = headers.get("api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.to_string());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    auth.strip_prefix("Bearer ").map(|k| k.trim().to_string())
}

/// Middleware enforcing the rules above.
pub async fn require_key(
    state: axum::extract::State<State>,
    request: Request,
    next: Next,
) -> Response {
    let options = &state.options;
    if options.api_keys.is_empty() && options.read_only_keys.is_empty() {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    if OPEN_PATHS.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let Some(key) = presented_key(&request) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Must provide an API key or an Authorization bearer token",
        )
        .into_response();
    };
    match access_of(&key, &options.api_keys, &options.read_only_keys) {
        None => ApiError::new(StatusCode::FORBIDDEN, "Invalid API key").into_response(),
        Some(Access::ReadOnly) if !is_read_route(request.method(), &path) => ApiError::new(
            StatusCode::FORBIDDEN,
            format!("read-only API key cannot {} {path}", request.method()),
        )
        .into_response(),
        Some(_) => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_routes() {
        let rw = vec!["secret".to_string()];
        let ro = vec!["reader".to_string()];
        assert_eq!(access_of("secret", &rw, &ro), Some(Access::ReadWrite));
        assert_eq!(access_of("reader", &rw, &ro), Some(Access::ReadOnly));
        assert_eq!(access_of("secre", &rw, &ro), None);
        assert!(is_read_route(&Method::GET, "/collections"));
        assert!(is_read_route(&Method::POST, "/collections/c/points"));
        assert!(is_read_route(&Method::POST, "/collections/c/points/query/batch"));
        assert!(!is_read_route(&Method::POST, "/collections/c/points/delete"));
        assert!(!is_read_route(&Method::PUT, "/collections/c/points"));
        assert!(!is_read_route(&Method::POST, "/collections/c/snapshots"));
        assert!(!is_read_route(&Method::DELETE, "/collections/c"));
    }
}
