//! The Qdrant-compatible REST API (axum), over a [`Backend`].
//!
//! One file per concern: [`envelope`] (response and error shapes, JSON extraction), [`params`]
//! (query parameters -> consistency levels), [`convert`] and [`filter_json`] (JSON <-> engine
//! types), [`collections`], [`points`], [`search`], [`snapshots`], [`cluster`] (root, health,
//! cluster info), [`auth`] (API keys) and [`metrics`] (Prometheus). The HTTP layer makes no
//! protocol decisions: it validates and translates, and the backend decides.

pub mod aliases;
mod auth;
pub mod changes;
pub mod cluster;
pub mod collections;
pub mod convert;
pub mod envelope;
pub mod filter_json;
pub mod limits;
pub mod metrics;
pub mod params;
pub mod points;
pub mod quantization;
pub mod read_details;
pub mod search;
pub mod snapshots;

use crate::backend::Backend;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The Qdrant version this API follows; qdrant-client compares its own version with it at
/// construction and warns when the minor versions differ by more than one.
pub const QDRANT_COMPAT_VERSION: &str = "1.19.0";

/// Default request body limit: large enough for real batch upserts (64 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 64 << 20;

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Read-write API keys (empty with `read_only_keys` empty: no authentication).
    pub api_keys: Vec<String>,
    /// Keys allowed on read routes only.
    pub read_only_keys: Vec<String>,
    /// Where uploaded snapshots are spooled before recovery.
    pub upload_dir: PathBuf,
    /// Whether `PUT /collections/{c}/snapshots/recover` may read local `file://` locations.
    pub allow_file_locations: bool,
    /// Requests served at once (beyond: 503).
    pub max_concurrent_requests: usize,
    /// Longest a request may take (beyond: 408).
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            body_limit: DEFAULT_BODY_LIMIT,
            api_keys: Vec::new(),
            read_only_keys: Vec::new(),
            upload_dir: std::env::temp_dir(),
            allow_file_locations: true,
            max_concurrent_requests: 1024,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Shared state of all handlers.
pub struct AppState {
    /// Where the data is.
    pub backend: Arc<dyn Backend>,
    /// HTTP settings.
    pub options: HttpOptions,
    /// Throttles.
    pub limits: limits::Limits,
}

/// The state handlers receive.
pub type State = Arc<AppState>;

/// Builds the router with every route, auth, metrics and the body limit.
pub fn router(backend: Arc<dyn Backend>, options: HttpOptions) -> Router {
    let body_limit = options.body_limit;
    let limits = limits::Limits::new(options.max_concurrent_requests, options.request_timeout);
    let state: State = Arc::new(AppState { backend, options, limits });
    let c = "/collections/{collection}";
    Router::new()
        .route("/", get(cluster::root))
        .route("/healthz", get(cluster::healthz))
        .route("/livez", get(cluster::livez))
        .route("/readyz", get(cluster::readyz))
        .route("/metrics", get(metrics::scrape))
        .route("/cluster", get(cluster::cluster))
        .route("/collections", get(collections::list))
        .route("/collections/aliases", post(aliases::update))
        .route("/aliases", get(aliases::list))
        .route(&format!("{c}/aliases"), get(aliases::of_collection))
        .route(
            c,
            put(collections::create)
                .get(collections::info)
                .delete(collections::delete)
                .patch(collections::update),
        )
        .route(&format!("{c}/index"), put(collections::create_index))
        .route(&format!("{c}/index/{{field}}"), delete(collections::delete_index))
        .route(&format!("{c}/exists"), get(collections::exists))
        .route(&format!("{c}/cluster"), get(cluster::collection_cluster))
        .route(&format!("{c}/changes"), get(changes::changes))
        .route(&format!("{c}/points"), put(points::upsert).post(points::retrieve))
        .route(&format!("{c}/points/{{id}}"), get(points::get_one))
        .route(&format!("{c}/points/delete"), post(points::delete))
        .route(
            &format!("{c}/points/payload"),
            post(points::set_payload).put(points::overwrite_payload),
        )
        .route(&format!("{c}/points/payload/delete"), post(points::delete_payload))
        .route(&format!("{c}/points/payload/clear"), post(points::clear_payload))
        .route(&format!("{c}/points/query"), post(search::query))
        .route(&format!("{c}/points/query/batch"), post(search::query_batch))
        .route(&format!("{c}/points/search"), post(search::search))
        .route(&format!("{c}/points/search/batch"), post(search::search_batch))
        .route(&format!("{c}/points/scroll"), post(search::scroll))
        .route(&format!("{c}/points/count"), post(search::count))
        .route(&format!("{c}/snapshots"), get(snapshots::list).post(snapshots::create))
        .route(&format!("{c}/snapshots/upload"), post(snapshots::upload))
        .route(&format!("{c}/snapshots/recover"), put(snapshots::recover))
        .route(
            &format!("{c}/snapshots/{{name}}"),
            get(snapshots::download).delete(snapshots::delete),
        )
        .fallback(cluster::not_found)
        .method_not_allowed_fallback(cluster::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::enforce))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}

/// Binds `addr` and serves in a background task; returns the bound address (for tests and
/// `127.0.0.1:0`).
pub async fn spawn(addr: SocketAddr, router: Router) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, router, std::future::pending()).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok(bound)
}
