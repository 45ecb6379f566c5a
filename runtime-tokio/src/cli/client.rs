//! A minimal HTTP/1.1 client on hyper (already compiled in for the server), for the `vecraft`
//! CLI and the integration tests. reqwest would bring a TLS stack and its build cost for a
//! client that talks plain HTTP to a node on a known address; TLS termination, if wanted, sits in
//! front of the node.
//!
//! One connection per request: the CLI makes a handful of calls, and the tests want each call
//! independent.

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::Path;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Why a request failed before an HTTP answer arrived.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The base URL is not `http://host:port`.
    #[error("bad server URL `{0}`: expected http://HOST:PORT")]
    BadUrl(String),
    /// Connecting or talking to the server failed.
    #[error("cannot reach {addr}: {message}")]
    Connect {
        /// host:port.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The answer was not JSON.
    #[error("server answered {status} with a body that is not JSON: {body}")]
    NotJson {
        /// HTTP status.
        status: StatusCode,
        /// The body (truncated).
        body: String,
    },
}

/// An answer: status, headers, body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|_| ClientError::NotJson {
            status: self.status,
            body: String::from_utf8_lossy(&self.body[..self.body.len().min(500)]).into_owned(),
        })
    }
}

type ReqBody = BoxBody<Bytes, std::io::Error>;

/// A client of one node.
#[derive(Debug, Clone)]
pub struct HttpClient {
    addr: String,
    api_key: Option<String>,
}

impl HttpClient {
    /// A client for `url` (`http://host:port`, a trailing `/` allowed).
    pub fn new(url: &str, api_key: Option<String>) -> Result<HttpClient, ClientError> {
        let addr = url
            .strip_prefix("http://")
            .map(|a| a.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| ClientError::BadUrl(url.to_string()))?;
        Ok(HttpClient { addr: addr.to_string(), api_key })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        content_type: &str,
        extra: &[(&str, &str)],
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let connect_err =
            |message: String| ClientError::Connect { addr: self.addr.clone(), message };
        let stream =
            TcpStream::connect(&self.addr).await.map_err(|e| connect_err(e.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.addr)
            .header(hyper::header::CONTENT_TYPE, content_type);
        if let Some(key) = &self.api_key {
            builder = builder.header("api-key", key);
        }
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body).map_err(|e| connect_err(e.to_string()))?;
        sender.send_request(request).await.map_err(|e| connect_err(e.to_string()))
    }

    /// Sends raw bytes with extra headers; collects the answer.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Result<Answer, ClientError> {
        let body = Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed();
        let response = self.send(method, path, body, "application/json", extra).await?;
        collect(response, &self.addr).await
    }

    /// Sends an optional JSON body; collects the answer.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.raw(method, path, bytes, &[]).await
    }

    /// Like [`Self::call`], returning status and parsed JSON.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let answer = self.call(method, path, body).await?;
        Ok((answer.status, answer.json()?))
    }

    /// Streams a GET body into `dest`, calling `progress(bytes_so_far, total)` per chunk.
    /// Returns the status; on a non-200 answer nothing is written and the body is returned.
    pub async fn download(
        &self,
        path: &str,
        dest: &Path,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Result<u64, Answer>, ClientError> {
        let empty = Full::new(Bytes::new()).map_err(|never| match never {}).boxed();
        let response = self.send(Method::GET, path, empty, "application/json", &[]).await?;
        if response.status() != StatusCode::OK {
            return Ok(Err(collect(response, &self.addr).await?));
        }
        let total = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let mut file = tokio::fs::File::create(dest).await?;
        let mut body = response.into_body();
        let mut done = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Connect {
                addr: self.addr.clone(),
                message: e.to_string(),
            })?;
            if let Some(data) = frame.data_ref() {
                file.write_all(data).await?;
                done += data.len() as u64;
                progress(done, total);
            }
        }
        file.flush().await?;
        Ok(Ok(done))
    }

    /// Streams a file as the body of a POST, calling `progress(bytes_sent)` per chunk.
    pub async fn upload(
        &self,
        path: &str,
        source: &Path,
        progress: impl FnMut(u64) + Send + Sync + 'static,
    ) -> Result<Answer, ClientError> {
        let file = tokio::fs::File::open(source).await?;
        let mut sent = 0u64;
        let mut progress = progress;
        let stream = tokio_util::io::ReaderStream::new(file).map(move |chunk| {
            chunk.map(|bytes| {
                sent += bytes.len() as u64;
                progress(sent);
                Frame::data(bytes)
            })
        });
        let body = BodyExt::boxed(StreamBody::new(stream));
        let response = self.send(Method::POST, path, body, "application/octet-stream", &[]).await?;
        collect(response, &self.addr).await
    }
}

async fn collect(
    response: hyper::Response<hyper::body::Incoming>,
    addr: &str,
) -> Result<Answer, ClientError> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Connect { addr: addr.to_string(), message: e.to_string() })?
        .to_bytes();
    Ok(Answer { status, headers, body })
}

/// The `status.error` message of an error answer, or the body.
pub fn error_message(answer: &Answer) -> String {
    answer
        .json()
        .ok()
        .and_then(|v| v["status"]["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned())
}
