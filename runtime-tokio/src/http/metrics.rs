//! Prometheus metrics: the `metrics` facade with one process-wide Prometheus recorder, rendered
//! at `GET /metrics`.
//!
//! The HTTP layer records requests by route template and status, and a latency histogram per
//! route. Other parts of the runtime record through the same facade with the names below (the
//! hooks the WAL, transport and Raft driver fill in), so `/metrics` shows them without any
//! wiring through this module.

use super::State;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

/// Counter: HTTP requests, labels `method`, `route`, `status`.
pub const HTTP_REQUESTS: &str = "vecraft_http_requests_total";
/// Histogram (seconds): HTTP request latency, labels `method`, `route`.
pub const HTTP_LATENCY: &str = "vecraft_http_request_duration_seconds";
/// Gauge: writes queued for the apply worker.
pub const APPLY_QUEUE_DEPTH: &str = "vecraft_apply_queue_depth";
/// Gauge hook for the Raft driver: current term, label `group`.
pub const RAFT_TERM: &str = "vecraft_raft_term";
/// Gauge hook for the Raft driver: commit index, label `group`.
pub const RAFT_COMMIT_INDEX: &str = "vecraft_raft_commit_index";
/// Gauge hook for the Raft driver: applied index, label `group`.
pub const RAFT_APPLIED_INDEX: &str = "vecraft_raft_applied_index";
/// Gauge hook for the Raft driver: 1 when this node leads the group, label `group`.
pub const RAFT_IS_LEADER: &str = "vecraft_raft_is_leader";
/// Gauge: last index of the local log, label `group`.
pub const RAFT_LAST_INDEX: &str = "vecraft_raft_last_index";
/// Gauge: 1 while the group's replica here waits for repair after storage damage.
pub const RAFT_DAMAGED: &str = "vecraft_raft_damaged";
/// Gauge: entries committed but not yet applied here (the apply worker's backlog), label `group`.
pub const RAFT_APPLY_LAG: &str = "vecraft_raft_apply_lag_entries";
/// Gauge: on a group's leader, entries of its log a follower lacks, labels `group`, `collection`,
/// `shard`, `follower`.
pub const REPLICATION_LAG: &str = "vecraft_replication_lag_entries";
/// Gauge: on a group's leader, entries a follower holds but had not applied at its last answer,
/// labels `group`, `collection`, `shard`, `follower`.
pub const REPLICATION_APPLY_LAG: &str = "vecraft_replication_apply_lag_entries";
/// Gauge: points in this node's replica of a shard, labels `group`, `collection`, `shard`.
pub const SHARD_POINTS: &str = "vecraft_shard_points";
/// Points of a shard replica stored and not yet linked into its HNSW graph.
pub const SHARD_UNINDEXED: &str = "vecraft_shard_unindexed_points";
/// Gauge per shard replica: 1 when its f32 vectors are in a mapped file (`on_disk`).
pub const SHARD_VECTORS_ON_DISK: &str = "vecraft_shard_vectors_on_disk";
/// Gauge: bytes of the vector files of this node's `on_disk` replicas.
pub const VECTOR_FILE_BYTES: &str = "vecraft_vector_file_bytes";
/// Gauge: vector stores that fell back to the heap because their file could not be made or grown.
pub const VECTOR_FILE_FALLBACKS: &str = "vecraft_vector_file_fallbacks";
/// Counter: points linked into a graph after their apply (by an idle apply lane, or before a
/// shard snapshot), not at it: deferred indexing at work.
pub const POINTS_LINKED_DEFERRED: &str = "vecraft_points_linked_deferred_total";
/// Gauge hook for the WAL: bytes on disk.
pub const WAL_BYTES: &str = "vecraft_wal_bytes";
/// Histogram hook for the WAL (seconds): fsync latency.
pub const WAL_FSYNC_SECONDS: &str = "vecraft_wal_fsync_seconds";
/// One turn of the node loop: a step and carrying out its outputs (a long turn delays every
/// group's heartbeats and votes).
pub const NODE_LOOP_TURN_SECONDS: &str = "vecraft_node_loop_turn_seconds";
/// How late the loop stepped a due deadline (time the loop's thread waited to run, or sat in
/// a long turn): a lateness near the election timeout means followers time out while the
/// leader is alive.
pub const NODE_LOOP_TIMER_LATENESS_SECONDS: &str = "vecraft_node_loop_timer_lateness_seconds";
/// Counter: elections this node started for a group after hearing from its leader, by group.
pub const RAFT_ELECTIONS_STARTED: &str = "vecraft_raft_elections_started_total";
/// Messages the node's transport sent and received.
pub const TRANSPORT_MESSAGES: &str = "vecraft_transport_messages_total";
/// Messages the transport dropped, by reason (a full peer queue, an unknown peer, ...).
pub const TRANSPORT_DROPPED: &str = "vecraft_transport_dropped_total";
/// Counter: writes refused by admission, label `rule` (`bound` or `wait`).
pub const ADMISSION_REFUSED: &str = "vecraft_admission_refused_total";
/// The rate at which this node answers written points while busy (admission's estimate).
pub const ADMISSION_DRAIN_RATE: &str = "vecraft_admission_drain_points_per_second";
/// Points accepted for writing and not yet answered.
pub const ADMISSION_POINTS_IN_FLIGHT: &str = "vecraft_admission_points_in_flight";
/// Counter: snapshots taken, label `trigger` (`api` or `schedule`).
pub const SNAPSHOTS_TAKEN: &str = "vecraft_snapshots_taken_total";

const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (later calls reuse it). `None` when another recorder
/// was installed first (then `/metrics` says so instead of lying with empty data).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status");
    metrics::describe_histogram!(HTTP_LATENCY, metrics::Unit::Seconds, "HTTP request latency");
    metrics::describe_gauge!(APPLY_QUEUE_DEPTH, "Writes waiting for the apply worker");
    metrics::describe_gauge!(RAFT_TERM, "Raft term per group");
    metrics::describe_gauge!(RAFT_COMMIT_INDEX, "Raft commit index per group");
    metrics::describe_gauge!(RAFT_APPLIED_INDEX, "Raft applied index per group");
    metrics::describe_gauge!(RAFT_IS_LEADER, "1 when this node leads the group");
    metrics::describe_gauge!(RAFT_LAST_INDEX, "Last index of the local Raft log per group");
    metrics::describe_gauge!(RAFT_DAMAGED, "1 while the group waits for repair after storage damage");
    metrics::describe_gauge!(RAFT_APPLY_LAG, "Entries committed but not yet applied here per group");
    metrics::describe_gauge!(SHARD_POINTS, "Points in this node's replica of a shard");
    metrics::describe_gauge!(SHARD_UNINDEXED, "Points of this node's replica of a shard waiting to be linked into its HNSW graph (searched exactly meanwhile)");
    metrics::describe_counter!(POINTS_LINKED_DEFERRED, "Points linked into a shard's HNSW graph after their apply (deferred indexing)");
    metrics::describe_gauge!(REPLICATION_LAG, "On the group's leader: log entries a follower lacks");
    metrics::describe_gauge!(REPLICATION_APPLY_LAG, "On the group's leader: entries a follower holds but had not applied at its last answer");
    metrics::describe_gauge!(WAL_BYTES, metrics::Unit::Bytes, "WAL size on disk");
    metrics::describe_gauge!(SHARD_VECTORS_ON_DISK, "1 when this node's replica of a shard keeps its vectors in a mapped file (on_disk)");
    metrics::describe_gauge!(VECTOR_FILE_BYTES, metrics::Unit::Bytes, "Bytes of the vector files of on_disk replicas (disk and page cache, not heap)");
    metrics::describe_gauge!(VECTOR_FILE_FALLBACKS, "Vector stores kept on the heap because their file could not be made or grown (see the log)");
    metrics::describe_histogram!(WAL_FSYNC_SECONDS, metrics::Unit::Seconds, "WAL fsync latency");
    metrics::describe_histogram!(NODE_LOOP_TURN_SECONDS, metrics::Unit::Seconds, "Node loop turn: one step and its outputs");
    metrics::describe_histogram!(NODE_LOOP_TIMER_LATENESS_SECONDS, metrics::Unit::Seconds, "How late the node loop stepped a due deadline");
    metrics::describe_counter!(RAFT_ELECTIONS_STARTED, "Elections this node started for a group it had a leader for");
    metrics::describe_counter!(TRANSPORT_MESSAGES, "Messages sent and received between nodes");
    metrics::describe_counter!(TRANSPORT_DROPPED, "Messages between nodes dropped, by reason (Raft retries)");
    metrics::describe_counter!(ADMISSION_REFUSED, "Writes refused at once by admission, by rule (bound: max_points_in_flight; wait: expected wait over the write's budget)");
    metrics::describe_gauge!(ADMISSION_DRAIN_RATE, "Points per second this node answers while it has writes in flight (admission's estimate)");
    metrics::describe_gauge!(ADMISSION_POINTS_IN_FLIGHT, "Points accepted for writing and not yet answered");
    metrics::describe_counter!(SNAPSHOTS_TAKEN, "Snapshots taken by trigger");
}

/// Middleware: counts and times every request by its route template (never the raw path, so
/// label cardinality stays bounded).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_LATENCY, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Sets the per-group gauges from the node's picture (refreshed by the node loop at most once a
/// second). Labels: `group` (the Raft group id), and for shard groups `collection` and `shard`;
/// the metadata group is `collection="_meta"`. A dropped group's series keep their last values
/// (the exporter does not forget label sets); its `group` id is never reused. Likewise a node
/// that stopped leading a group keeps its last `vecraft_replication_lag_entries` values: read
/// them together with `vecraft_raft_is_leader` of the same group.
fn record_groups(groups: &[crate::backend::GroupReport]) {
    for g in groups {
        let (collection, shard) = match &g.shard {
            Some((c, s)) => (c.clone(), s.to_string()),
            None => ("_meta".to_string(), String::new()),
        };
        let labels = [("group", g.group.to_string()), ("collection", collection), ("shard", shard)];
        metrics::gauge!(RAFT_TERM, &labels).set(g.term as f64);
        metrics::gauge!(RAFT_COMMIT_INDEX, &labels).set(g.commit as f64);
        metrics::gauge!(RAFT_APPLIED_INDEX, &labels).set(g.applied as f64);
        metrics::gauge!(RAFT_LAST_INDEX, &labels).set(g.last_index as f64);
        metrics::gauge!(RAFT_IS_LEADER, &labels).set(if g.is_leader { 1.0 } else { 0.0 });
        metrics::gauge!(RAFT_DAMAGED, &labels).set(if g.damaged { 1.0 } else { 0.0 });
        metrics::gauge!(RAFT_APPLY_LAG, &labels).set(g.commit.saturating_sub(g.applied) as f64);
        if let Some(points) = g.points {
            metrics::gauge!(SHARD_POINTS, &labels).set(points as f64);
        }
        if let Some(unindexed) = g.unindexed {
            metrics::gauge!(SHARD_UNINDEXED, &labels).set(unindexed as f64);
        }
        if let Some(on_disk) = g.vectors_on_disk {
            metrics::gauge!(SHARD_VECTORS_ON_DISK, &labels).set(if on_disk { 1.0 } else { 0.0 });
        }
        for (follower, lag) in &g.follower_lag {
            let mut with = labels.to_vec();
            with.push(("follower", follower.to_string()));
            metrics::gauge!(REPLICATION_LAG, &with).set(*lag as f64);
        }
        for (follower, lag) in &g.follower_apply_lag {
            let mut with = labels.to_vec();
            with.push(("follower", follower.to_string()));
            metrics::gauge!(REPLICATION_APPLY_LAG, &with).set(*lag as f64);
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn scrape(state: axum::extract::State<State>) -> Response {
    metrics::gauge!(APPLY_QUEUE_DEPTH).set(state.backend.queue_depth() as f64);
    record_groups(&state.backend.groups());
    if let Some(files) = state.backend.vector_files() {
        metrics::gauge!(VECTOR_FILE_BYTES).set(files.file_bytes as f64);
        metrics::gauge!(VECTOR_FILE_FALLBACKS).set(files.fallbacks as f64);
    }
    match install() {
        Some(handle) => {
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
                .into_response()
        }
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable (another recorder is installed)",
        )
            .into_response(),
    }
}
