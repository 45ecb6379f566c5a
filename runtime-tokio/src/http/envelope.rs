//! Qdrant's response envelope and error shape, and the JSON body extractor.
//!
//! Success: `{"result": T, "status": "ok", "time": seconds}`. Error:
//! `{"status": {"error": msg}, "time": seconds, "result": null}` with a 4xx/5xx code. Every
//! rejection the server produces, including malformed JSON and oversized bodies (which axum
//! would answer in plain text), goes through [`ApiError`] so clients always get this shape.

use crate::backend::BackendError;
use crate::snapshot_catalog::CatalogError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Instant;
use vecraft_core::vector::error::EngineError;

/// An error answer: status code and a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable reason, put in `status.error`.
    pub message: String,
}

impl ApiError {
    /// A 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    /// A 404 with a message.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, message: message.into() }
    }

    /// Any status with a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"status": {"error": self.message}, "time": 0.0, "result": null});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE
            || self.status == StatusCode::TOO_MANY_REQUESTS
        {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        let status = match &e {
            EngineError::UnknownCollection(_) | EngineError::PointNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            _ => StatusCode::BAD_REQUEST,
        };
        let prefix = if status == StatusCode::NOT_FOUND { "Not found" } else { "Wrong input" };
        ApiError::new(status, format!("{prefix}: {e}"))
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> ApiError {
        let message = e.to_string();
        let status = match e {
            BackendError::Engine(engine) => return engine.into(),
            BackendError::Overloaded(_)
            | BackendError::PointsInFlight { .. }
            | BackendError::QueueWait { .. }
            | BackendError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            BackendError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            BackendError::Snapshot(CatalogError::UnknownSnapshot(_)) => StatusCode::NOT_FOUND,
            BackendError::Snapshot(CatalogError::HasDependants { .. })
            | BackendError::Snapshot(CatalogError::AlreadyExists(_)) => StatusCode::CONFLICT,
            BackendError::Snapshot(CatalogError::Snapshot(_)) => StatusCode::BAD_REQUEST,
            BackendError::Snapshot(_) => StatusCode::INTERNAL_SERVER_ERROR,
            BackendError::Restore(_) | BackendError::Unsupported(_) => StatusCode::BAD_REQUEST,
            BackendError::Conflict(_) => StatusCode::CONFLICT,
            BackendError::InDoubt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, message)
    }
}

/// Wraps a result in the success envelope, timing from `start`.
pub fn ok(start: Instant, result: Value) -> Response {
    let time = start.elapsed().as_secs_f64();
    axum::Json(json!({"result": result, "status": "ok", "time": time})).into_response()
}

/// A handler's return type.
pub type ApiResult = Result<Response, ApiError>;

/// A JSON request body: read within the configured body limit, parsed with the failing field's
/// path in the error (`points[3].vector: invalid type ...`). An empty body parses as `{}`, since
/// clients omit bodies whose every field is optional.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "request body is larger than the server's body limit")
            } else {
                ApiError::new(status, format!("cannot read request body: {rejection}"))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Path parameters, rejected in the error envelope (axum's own rejection is plain text).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// Query parameters, rejected in the error envelope.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), rejection.body_text())),
        }
    }
}

/// Parses a JSON body into `T`, with Qdrant's "Format error in JSON body" message.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("Format error in JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("Format error in JSON body: {path}: {inner}"))
        }
    })?;
    de.end().map_err(|e| ApiError::bad_request(format!("Format error in JSON body: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[allow(dead_code)]
        limit: Option<u32>,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"limit": "ten"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("limit"), "{}", e.message);
        assert!(parse_json::<Body>(b"").is_ok());
        assert!(parse_json::<Body>(b"{} x").is_err());
        assert!(parse_json::<Body>(b"{\"limit\": 3").is_err());
    }

    #[test]
    fn engine_errors_map_to_qdrant_codes() {
        let e: ApiError = EngineError::UnknownCollection("c".into()).into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e: ApiError = BackendError::Overloaded(8).into();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        let e: ApiError = EngineError::InvalidRequest("x".into()).into();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
