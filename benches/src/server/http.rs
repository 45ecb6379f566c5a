//! A keep-alive HTTP/1.1 client for load generation: one persistent connection per client,
//! re-dialed after any error.
//!
//! Why not the `vecraft` CLI's client: it opens a connection per request (right for a CLI, wrong
//! for a benchmark, where connection setup would be measured as server latency). Both servers
//! under test (vecraft's REST API and etcd's gRPC gateway) are driven through this same client,
//! so client overhead is equal on both sides of a ratio.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;

/// Why a request got no HTTP answer.
#[derive(Debug, Error)]
pub enum HttpError {
    /// Connect, write or read failed (the connection is dropped and re-dialed next time).
    #[error("{addr}: {message}")]
    Transport {
        /// host:port.
        addr: String,
        /// What failed.
        message: String,
    },
    /// No answer within the client's timeout.
    #[error("{addr}: no answer within {timeout:?}")]
    Timeout {
        /// host:port.
        addr: String,
        /// The limit.
        timeout: Duration,
    },
}

/// An HTTP answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Body bytes.
    pub body: Bytes,
}

impl Answer {
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One client: one connection to one server at a time.
pub struct KeepAlive {
    addr: String,
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl KeepAlive {
    /// A client of `addr` (`host:port`); connects lazily. Every request (connect included) is
    /// abandoned after `timeout`.
    pub fn new(addr: impl Into<String>, timeout: Duration) -> Self {
        KeepAlive {
            addr: addr.into(),
            timeout,
            sender: None,
        }
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Points the client at another server (drops the connection).
    pub fn retarget(&mut self, addr: impl Into<String>) {
        self.addr = addr.into();
        self.sender = None;
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        let err = |e: &dyn std::fmt::Display| HttpError::Transport {
            addr: self.addr.clone(),
            message: e.to_string(),
        };
        let stream = TcpStream::connect(&self.addr).await.map_err(|e| err(&e))?;
        stream.set_nodelay(true).map_err(|e| err(&e))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| err(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Answer, HttpError> {
        let err = |addr: &str, e: &dyn std::fmt::Display| HttpError::Transport {
            addr: addr.to_string(),
            message: e.to_string(),
        };
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        sender.ready().await.map_err(|e| err(&self.addr, &e))?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.addr)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| err(&self.addr, &e))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| err(&self.addr, &e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| err(&self.addr, &e))?
            .to_bytes();
        self.sender = Some(sender);
        Ok(Answer { status, body })
    }

    /// Sends one request and reads the whole answer, within the timeout. Any failure drops the
    /// connection, so the next request starts on a fresh one.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<Answer, HttpError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(method, path, body.into())).await {
            Ok(r) => r,
            Err(_) => {
                self.sender = None;
                Err(HttpError::Timeout {
                    addr: self.addr.clone(),
                    timeout,
                })
            }
        }
    }

    /// GET without a body.
    pub async fn get(&mut self, path: &str) -> Result<Answer, HttpError> {
        self.request(Method::GET, path, Bytes::new()).await
    }
}
