//! `vecraft serve`: one node and its REST API. With `engine = "node"` (the default) the data
//! is held by the replicated node (see `serve_node.rs`); with `engine = "local"` by one
//! [`LocalBackend`] with scheduled snapshots, described below.
//!
//! Start-up order: resolve the node id (kept in the data dir), open the snapshot catalogue and
//! restore each collection from its newest snapshot (there is no WAL yet, so snapshots are what
//! survives a restart), bind the HTTP port, start the snapshot schedule. Ctrl-C or SIGTERM stops
//! accepting requests and lets those in flight finish.

use crate::backend::BackendError;
use crate::backend::local::{LocalBackend, LocalOptions, snapshot_dir_of};
use crate::backend::schedule::{ScheduleOptions, run_forever};
use crate::config::{Config, ConfigError};
use crate::http::{HttpOptions, router, serve};
use crate::snapshot_catalog::SnapshotSchedule;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpListener;

/// How often the snapshot schedule is checked (the interval itself is configured).
const SCHEDULE_TICK: Duration = Duration::from_secs(1);

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The backend could not open.
    #[error("cannot open the data directory: {0}")]
    Backend(#[from] BackendError),
    /// The node loop could not start or stopped on an error.
    #[error("node: {0}")]
    Node(String),
    /// The HTTP port could not be bound or serving failed.
    #[error("HTTP server on {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Builds everything and serves until `shutdown` resolves. `on_bound` gets the bound address
/// (useful with port 0).
pub async fn run(
    config: Config,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    match config.engine {
        crate::config::Engine::Node => super::serve_node::run(config, on_bound, shutdown).await,
        crate::config::Engine::Local => run_local(config, on_bound, shutdown).await,
    }
}

/// `engine = "local"`: one unreplicated engine (snapshots, field indexes).
async fn run_local(
    config: Config,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let node_id = config.resolve_node_id()?;
    let backend = LocalBackend::open(LocalOptions {
        snapshot_dir: snapshot_dir_of(&config.data_dir),
        queue_capacity: config.write_queue_capacity,
        node_id,
        restore_on_open: true,
    })?;
    crate::http::metrics::install();
    let options = HttpOptions {
        body_limit: config.body_limit_bytes,
        api_keys: config.api_keys.clone(),
        read_only_keys: config.read_only_api_keys.clone(),
        upload_dir: config.data_dir.join("uploads"),
        allow_file_locations: true,
        max_concurrent_requests: config.max_concurrent_requests,
        request_timeout: config.request_timeout,
    };
    let app = router(Arc::new(backend.clone()), options);
    let addr = config.http_addr;
    let listener =
        TcpListener::bind(addr).await.map_err(|source| ServeError::Http { addr, source })?;
    let bound = listener.local_addr().map_err(|source| ServeError::Http { addr, source })?;
    let schedule = config.snapshot_interval.map(|interval| {
        let options = ScheduleOptions {
            schedule: SnapshotSchedule {
                interval_ms: interval.as_millis() as u64,
                max_incrementals: config.snapshot_max_incrementals,
            },
            retain: config.snapshot_retain,
            tick: SCHEDULE_TICK.min(interval),
        };
        tokio::spawn(run_forever(backend.clone(), options))
    });
    tracing::info!(%bound, node_id, data_dir = %config.data_dir.display(),
        auth = !config.api_keys.is_empty() || !config.read_only_api_keys.is_empty(),
        "vecraft serving");
    on_bound(bound);
    let result = serve(listener, app, shutdown).await;
    if let Some(task) = schedule {
        task.abort();
    }
    result.map_err(|source| ServeError::Http { addr: bound, source })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
