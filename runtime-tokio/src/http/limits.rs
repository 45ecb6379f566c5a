//! Server-side throttles: a cap on requests in flight and a per-request time limit.
//!
//! Both answer in Qdrant's error envelope: too many requests in flight is a 503 with
//! `Retry-After` (the same back-off signal as a full write queue), a read over its time limit a
//! 408, and a change over it a 500: it was handed on and may still take effect, so the client
//! must not take the answer for "nothing happened" (as a 4xx says). Health probes are exempt from both. Snapshot transfers (upload, download, recover) are exempt from the time limit: their
//! duration grows with the data, and they hold no engine lock while streaming.

use super::State;
use super::envelope::ApiError;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Limits shared by all requests.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Permits for requests in flight.
    pub in_flight: Arc<Semaphore>,
    /// Longest a request may take.
    pub timeout: Duration,
}

impl Limits {
    /// `max_in_flight` concurrent requests, each at most `timeout`.
    pub fn new(max_in_flight: usize, timeout: Duration) -> Limits {
        Limits { in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))), timeout }
    }
}

fn exempt_from_timeout(path: &str) -> bool {
    // Snapshot transfers take as long as they take; a change stream lasts until the client
    // goes away.
    path.contains("/snapshots") || path.ends_with("/changes")
}

/// Whether a request only reads: GETs, and the POST routes that search, query, count, scroll
/// or retrieve points.
fn only_reads(method: &axum::http::Method, path: &str) -> bool {
    const READ_POSTS: [&str; 7] = [
        "/points/search",
        "/points/search/batch",
        "/points/query",
        "/points/query/batch",
        "/points/scroll",
        "/points/count",
        "/points",
    ];
    method == axum::http::Method::GET
        || (method == axum::http::Method::POST && READ_POSTS.iter().any(|r| path.ends_with(r)))
}

/// Middleware applying [`Limits`].
pub async fn enforce(state: axum::extract::State<State>, request: Request, next: Next) -> Response {
    // Probes bypass the throttles: an overloaded node is alive, and orchestrators must see that.
    if super::auth::OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let limits = &state.limits;
    let Ok(_permit) = limits.in_flight.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node overloaded: too many requests in flight; retry later",
        )
        .into_response();
    };
    if exempt_from_timeout(request.uri().path()) {
        return next.run(request).await;
    }
    let reads = only_reads(request.method(), request.uri().path());
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) if reads => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("request took longer than the server's {:?} limit", limits.timeout),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "not acknowledged within the server's {:?} limit; the change may still take effect",
                limits.timeout
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::local::{LocalBackend, LocalOptions};
    use crate::http::{AppState, HttpOptions};
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    /// An app state over a fresh local backend with `limits` (the directory lives as long).
    fn state_with(limits: Limits) -> (State, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(LocalOptions {
            snapshot_dir: dir.path().join("s"),
            queue_capacity: 4,
            node_id: 1,
            restore_on_open: false,
        })
        .unwrap();
        let state = Arc::new(AppState { backend: Arc::new(backend), options: HttpOptions::default(), limits });
        (state, dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_flight_cap_and_timeout() {
        let (state, _dir) = state_with(Limits::new(1, Duration::from_millis(300)));
        let app = Router::new()
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }))
            .route("/healthz", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(state.clone(), enforce))
            .with_state(state);
        let call = |path: &'static str| {
            let app = app.clone();
            async move {
                let request = Request::builder().uri(path).body(Body::empty()).unwrap();
                app.oneshot(request).await.unwrap().status()
            }
        };
        let first = tokio::spawn(call("/slow"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(call("/slow").await, StatusCode::SERVICE_UNAVAILABLE, "second in flight");
        assert_eq!(call("/healthz").await, StatusCode::OK, "probes bypass the cap");
        assert_eq!(first.await.unwrap(), StatusCode::REQUEST_TIMEOUT, "over the time limit");
    }

    /// A change over the limit is in doubt (500); a read over it is a 408.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_over_the_time_limit_is_in_doubt_not_refused() {
        let (state, _dir) = state_with(Limits::new(8, Duration::from_millis(100)));
        let slow = || async { tokio::time::sleep(Duration::from_secs(5)).await };
        let app = Router::new()
            .route("/collections/c/points", axum::routing::put(slow).post(slow))
            .route("/collections/c/points/search", axum::routing::post(slow))
            .layer(axum::middleware::from_fn_with_state(state.clone(), enforce))
            .with_state(state);
        let call = |method: &str, path: &'static str| {
            let app = app.clone();
            let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
            async move { app.oneshot(request).await.unwrap().status() }
        };
        assert_eq!(call("PUT", "/collections/c/points").await, StatusCode::INTERNAL_SERVER_ERROR, "upsert");
        assert_eq!(call("POST", "/collections/c/points").await, StatusCode::REQUEST_TIMEOUT, "retrieve");
        assert_eq!(call("POST", "/collections/c/points/search").await, StatusCode::REQUEST_TIMEOUT, "search");
    }
}
