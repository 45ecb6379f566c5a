//! Collection snapshot routes: create, list, download, delete, upload and recover.
//!
//! Snapshots are files of the engine's own format (`vecraft_core::vector::snapshot`), kept in
//! the node's catalogue; `name` is the catalogue id and `checksum` the file's blake3 hash (not
//! Qdrant's SHA-256: a recover `checksum` must be the blake3 hex the list shows). Upload takes the
//! raw snapshot file as the request body (`application/octet-stream`; Qdrant's multipart form is
//! not supported) and streams it to disk, so it is not bound by the JSON body limit. Recover
//! takes `{"location": "file:///path"}` or vecraft's `{"snapshot": "<name>"}` (a catalogue
//! entry). A snapshot restores only into the collection it was taken of.

use super::State;
use super::envelope::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ok};
use super::params::{Params, wait_param};
use crate::backend::{SnapshotMeta, SnapshotSource};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use vecraft_core::vector::snapshot::verify_snapshot;

/// Formats Unix milliseconds as Qdrant's `creation_time` (`YYYY-MM-DDTHH:MM:SS`, UTC).
pub fn iso_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A Qdrant `SnapshotDescription`.
pub fn description(meta: &SnapshotMeta) -> Value {
    json!({
        "name": meta.id,
        "creation_time": iso_time(meta.created_at_ms),
        "size": meta.size_bytes,
        "checksum": meta.file_hash,
    })
}

/// `POST /collections/{c}/snapshots`.
pub async fn create(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
) -> ApiResult {
    let start = Instant::now();
    let meta = state.backend.snapshot_create(collection).await?;
    metrics::counter!(super::metrics::SNAPSHOTS_TAKEN, "trigger" => "api").increment(1);
    Ok(ok(start, description(&meta)))
}

/// `GET /collections/{c}/snapshots`.
pub async fn list(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
) -> ApiResult {
    let start = Instant::now();
    let metas = state.backend.snapshot_list(collection).await?;
    Ok(ok(start, Value::Array(metas.iter().map(description).collect())))
}

/// `DELETE /collections/{c}/snapshots/{name}`.
pub async fn delete(
    state: axum::extract::State<State>,
    ApiPath((collection, name)): ApiPath<(String, String)>,
) -> ApiResult {
    let start = Instant::now();
    state.backend.snapshot_delete(collection, name).await?;
    Ok(ok(start, json!(true)))
}

/// `GET /collections/{c}/snapshots/{name}`: the file, streamed.
pub async fn download(
    state: axum::extract::State<State>,
    ApiPath((collection, name)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (meta, path) = state.backend.snapshot_path(collection, name).await?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot open snapshot: {e}"))
    })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, meta.size_bytes.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.snap\"", meta.id)),
        ],
        body,
    )
        .into_response())
}

static UPLOAD_SEQ: AtomicU64 = AtomicU64::new(0);

/// Removes a spooled upload when dropped, whatever happens to the request.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn check_checksum(path: PathBuf, expected: Option<&String>) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let summary = tokio::task::spawn_blocking(move || {
        std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| verify_snapshot(std::io::BufReader::new(f)).map_err(|e| e.to_string()))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::bad_request(format!("snapshot is invalid: {e}")))?;
    let actual = blake3::Hash::from_bytes(summary.file_hash).to_hex().to_string();
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(ApiError::bad_request(format!(
            "checksum mismatch: snapshot's blake3 is {actual}, expected {expected}"
        )));
    }
    Ok(())
}

/// `POST /collections/{c}/snapshots/upload`: recover from the raw snapshot file in the body.
pub async fn upload(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    request: Request,
) -> ApiResult {
    let start = Instant::now();
    wait_param(&params, true)?;
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if content_type.is_some_and(|t| t.starts_with("multipart/")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "multipart uploads are not supported; send the snapshot file as the raw body \
             (application/octet-stream)",
        ));
    }
    let dir = state.options.upload_dir.clone();
    tokio::fs::create_dir_all(&dir).await.map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot create upload dir: {e}"))
    })?;
    let n = UPLOAD_SEQ.fetch_add(1, Ordering::Relaxed);
    let spool = Spool(dir.join(format!("upload-{}-{n}.snap.part", std::process::id())));
    let io_err = |e: std::io::Error| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot spool upload: {e}"))
    };
    let mut file = tokio::fs::File::create(&spool.0).await.map_err(io_err)?;
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("upload interrupted: {e}")))?;
        if let Some(data) = frame.data_ref() {
            file.write_all(data).await.map_err(io_err)?;
        }
    }
    file.flush().await.map_err(io_err)?;
    drop(file);
    check_checksum(spool.0.clone(), params.get("checksum")).await?;
    let points =
        state.backend.snapshot_recover(collection, SnapshotSource::File(spool.0.clone())).await?;
    tracing::info!(points, "collection recovered from uploaded snapshot");
    Ok(ok(start, json!(true)))
}

/// `PUT /collections/{c}/snapshots/recover`.
pub async fn recover(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<Params>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult {
    let start = Instant::now();
    wait_param(&params, true)?;
    let checksum = body.get("checksum").and_then(Value::as_str).map(str::to_string);
    let source = match (body.get("location").and_then(Value::as_str), body.get("snapshot")) {
        (Some(location), None) => {
            let path = location.strip_prefix("file://").ok_or_else(|| {
                ApiError::bad_request(format!(
                    "location `{location}`: only file:// locations are supported; upload the \
                     file or name a snapshot with {{\"snapshot\": name}}"
                ))
            })?;
            if !state.options.allow_file_locations {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "file:// locations are disabled on this server",
                ));
            }
            let path = PathBuf::from(path);
            check_checksum(path.clone(), checksum.as_ref()).await?;
            SnapshotSource::File(path)
        }
        (None, Some(Value::String(name))) => SnapshotSource::Catalog(name.clone()),
        (None, Some(other)) => {
            return Err(ApiError::bad_request(format!("`snapshot` must be a name, got {other}")));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give `location` or `snapshot`, not both"));
        }
        (None, None) => return Err(ApiError::bad_request("body needs `location` or `snapshot`")),
    };
    state.backend.snapshot_recover(collection, source).await?;
    Ok(ok(start, json!(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00");
        assert_eq!(iso_time(1_764_599_458_123), "2025-12-01T14:30:58");
    }
}
