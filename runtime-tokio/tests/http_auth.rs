//! API keys over real HTTP: 401 without a key, 403 with a wrong one or a read-only key on a
//! write route, health probes open.

mod http_common;

use http_common::start_with;
use hyper::{Method, StatusCode};
use serde_json::json;
use vecraft_runtime::cli::client::HttpClient;
use vecraft_runtime::http::HttpOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_guard_every_route_but_health() {
    let options = HttpOptions {
        api_keys: vec!["rw-secret".into()],
        read_only_keys: vec!["ro-secret".into()],
        ..HttpOptions::default()
    };
    let s = start_with(options, 64).await;
    let rw = HttpClient::new(&s.url, Some("rw-secret".into())).unwrap();
    let ro = HttpClient::new(&s.url, Some("ro-secret".into())).unwrap();
    let wrong = HttpClient::new(&s.url, Some("guess".into())).unwrap();

    for probe in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(s.raw(Method::GET, probe, b"").await.status, StatusCode::OK);
    }
    for path in ["/", "/collections", "/metrics", "/cluster"] {
        let msg = s.err(Method::GET, path, None, StatusCode::UNAUTHORIZED).await;
        assert!(msg.contains("API key"), "{msg}");
    }
    let (status, _) = wrong.json(Method::GET, "/collections", None).await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);

    let create = json!({"vectors": {"size": 2, "distance": "Dot"}});
    let (status, _) = ro.json(Method::PUT, "/collections/c", Some(&create)).await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "read-only key cannot create");
    let (status, v) = rw.json(Method::PUT, "/collections/c", Some(&create)).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    let upsert = json!({"points": [{"id": 1, "vector": [1, 0]}]});
    let (status, _) =
        ro.json(Method::PUT, "/collections/c/points?wait=true", Some(&upsert)).await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) =
        rw.json(Method::PUT, "/collections/c/points?wait=true", Some(&upsert)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let (status, _) = ro
        .json(Method::POST, "/collections/c/points/delete", Some(&json!({"points": [1]})))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = ro.json(Method::POST, "/collections/c/snapshots", None).await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Read routes, including the POST ones, work with the read-only key.
    let (status, v) = ro
        .json(Method::POST, "/collections/c/points/query", Some(&json!({"query": [1, 0]})))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["result"]["points"][0]["id"], 1);
    let (status, v) =
        ro.json(Method::POST, "/collections/c/points", Some(&json!({"ids": [1]}))).await.unwrap();
    assert_eq!((status, v["result"][0]["id"].clone()), (StatusCode::OK, json!(1)));
    let (status, _) =
        ro.json(Method::POST, "/collections/c/points/count", Some(&json!({}))).await.unwrap();
    assert_eq!(status, StatusCode::OK);

    // Bearer form.
    let answer = s
        .client
        .raw(Method::GET, "/collections", Vec::new(), &[("authorization", "Bearer ro-secret")])
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
}
