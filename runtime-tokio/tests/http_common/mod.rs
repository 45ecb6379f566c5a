//! Shared harness of the HTTP integration tests: a real server (LocalBackend + router) on
//! 127.0.0.1:0, and a client for it.

#![allow(dead_code)]

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use vecraft_runtime::backend::local::{LocalBackend, LocalOptions};
use vecraft_runtime::cli::client::{Answer, HttpClient};
use vecraft_runtime::http::{HttpOptions, router, spawn};

/// A running test server.
pub struct Server {
    pub client: HttpClient,
    pub url: String,
    pub dir: tempfile::TempDir,
}

/// Starts a server with these HTTP options (upload dir set to the temp dir).
pub async fn start_with(mut options: HttpOptions, queue_capacity: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::open(LocalOptions {
        snapshot_dir: dir.path().join("snapshots"),
        queue_capacity,
        node_id: 1,
        restore_on_open: true,
    })
    .unwrap();
    options.upload_dir = dir.path().join("uploads");
    vecraft_runtime::http::metrics::install();
    let addr =
        spawn("127.0.0.1:0".parse().unwrap(), router(Arc::new(backend), options)).await.unwrap();
    let url = format!("http://{addr}");
    Server { client: HttpClient::new(&url, None).unwrap(), url, dir }
}

/// A server with default options.
pub async fn start() -> Server {
    start_with(HttpOptions::default(), 1024).await
}

impl Server {
    /// Calls and parses JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.client.json(method, path, body.as_ref()).await.unwrap()
    }

    /// Calls, asserts 200 and returns `result`.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["status"], "ok", "{v}");
        v["result"].clone()
    }

    /// Calls, asserts the status and Qdrant's error shape, returns the message.
    pub async fn err(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: StatusCode,
    ) -> String {
        let (got, v) = self.call(method, path, body).await;
        assert_eq!(got, status, "{path}: {v}");
        assert!(v["result"].is_null(), "{v}");
        v["status"]["error"].as_str().unwrap_or_else(|| panic!("no error message: {v}")).to_string()
    }

    /// Raw call.
    pub async fn raw(&self, method: Method, path: &str, body: &[u8]) -> Answer {
        self.client.raw(method, path, body.to_vec(), &[]).await.unwrap()
    }

    /// Creates a collection of `size`-d vectors.
    pub async fn collection(&self, name: &str, size: u32, distance: &str) {
        let body = json!({"vectors": {"size": size, "distance": distance}});
        assert_eq!(
            self.ok(Method::PUT, &format!("/collections/{name}"), Some(body)).await,
            json!(true)
        );
    }

    /// Upserts points `(id, vector, payload)` with wait=true.
    pub async fn upsert(&self, name: &str, points: Value) -> Value {
        self.ok(
            Method::PUT,
            &format!("/collections/{name}/points?wait=true"),
            Some(json!({"points": points})),
        )
        .await
    }

    /// Counts points (exact).
    pub async fn count(&self, name: &str) -> u64 {
        let r = self
            .ok(Method::POST, &format!("/collections/{name}/points/count"), Some(json!({})))
            .await;
        r["count"].as_u64().unwrap()
    }
}
