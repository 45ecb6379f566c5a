//! End-to-end tests of the REST API over real HTTP: collections, points, search, payloads,
//! consistency parameters.

mod http_common;

use http_common::start;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

fn ids(points: &Value) -> Vec<u64> {
    points.as_array().unwrap().iter().map(|p| p["id"].as_u64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_health_and_metrics() {
    let s = start().await;
    let root = s.client.json(Method::GET, "/", None).await.unwrap().1;
    assert_eq!(root["version"], "1.19.0");
    assert!(root["title"].as_str().unwrap().contains("vecraft"));
    for probe in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(s.raw(Method::GET, probe, b"").await.status, StatusCode::OK, "{probe}");
    }
    s.err(Method::GET, "/no/such/route", None, StatusCode::NOT_FOUND).await;
    // Undecodable path and query parameters are answered in the error envelope too.
    s.err(Method::GET, "/collections/%FF/exists", None, StatusCode::BAD_REQUEST).await;
    s.err(Method::GET, "/collections?consistency=%FF", None, StatusCode::BAD_REQUEST).await;
    let msg = s.err(Method::DELETE, "/collections", None, StatusCode::METHOD_NOT_ALLOWED).await;
    assert!(msg.contains("DELETE"), "{msg}");
    let metrics = s.raw(Method::GET, "/metrics", b"").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&metrics.body).to_string();
    assert!(text.contains("vecraft_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/readyz\""), "{text}");
    assert!(text.contains("vecraft_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("vecraft_apply_queue_depth"), "{text}");
    let cluster = s.ok(Method::GET, "/cluster", None).await;
    assert_eq!(cluster["status"], "disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_lifecycle() {
    let s = start().await;
    s.collection("docs", 4, "Cosine").await;
    let msg = s
        .err(
            Method::PUT,
            "/collections/docs",
            Some(json!({"vectors": {"size": 4, "distance": "Dot"}})),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(msg.contains("already exists"), "{msg}");
    s.collection("other", 2, "Euclid").await;
    let list = s.ok(Method::GET, "/collections", None).await;
    assert_eq!(list, json!({"collections": [{"name": "docs"}, {"name": "other"}]}));
    let info = s.ok(Method::GET, "/collections/docs", None).await;
    assert_eq!(info["status"], "green");
    assert_eq!(info["config"]["params"]["vectors"], json!({"size": 4, "distance": "Cosine", "on_disk": false}));
    assert_eq!(info["config"]["hnsw_config"]["m"], 16);
    assert!(info["config"]["optimizer_config"]["default_segment_number"].is_number());
    assert_eq!(info["points_count"], 0);
    assert_eq!(s.ok(Method::GET, "/collections/docs/exists", None).await, json!({"exists": true}));
    assert_eq!(s.ok(Method::GET, "/collections/nope/exists", None).await, json!({"exists": false}));
    let cluster = s.ok(Method::GET, "/collections/docs/cluster", None).await;
    assert_eq!(cluster["local_shards"][0]["state"], "Active");
    assert_eq!(cluster["shard_count"], 1);
    // Payload indexes: declared, reported in `payload_schema`, dropped; unsupported schemas and
    // missing collections are refused by name.
    let index = json!({"field_name": "color", "field_schema": "keyword"});
    assert_eq!(
        s.ok(Method::PUT, "/collections/docs/index?wait=true", Some(index.clone())).await["status"],
        "completed"
    );
    let object_form = json!({"field_name": "year", "field_schema": {"type": "integer", "lookup": true}});
    let answer = s.ok(Method::PUT, "/collections/docs/index", Some(object_form)).await;
    assert_eq!(answer["status"], "acknowledged", "wait=false, as Qdrant");
    let again = json!({"field_name": "year", "field_schema": "integer"});
    s.ok(Method::PUT, "/collections/docs/index?wait=true", Some(again)).await; // same schema: no-op
    let info = s.ok(Method::GET, "/collections/docs", None).await;
    assert_eq!(info["payload_schema"]["color"]["data_type"], "keyword");
    assert_eq!(info["payload_schema"]["year"]["data_type"], "integer");
    assert_eq!(info["payload_schema"]["year"]["points"], 0);
    let float = json!({"field_name": "price", "field_schema": "float"});
    let msg = s.err(Method::PUT, "/collections/docs/index", Some(float), StatusCode::BAD_REQUEST).await;
    assert!(msg.contains("`float` is not supported"), "{msg}");
    let conflict = json!({"field_name": "color", "field_schema": "integer"});
    let msg = s.err(Method::PUT, "/collections/docs/index", Some(conflict), StatusCode::BAD_REQUEST).await;
    assert!(msg.contains("already indexed"), "{msg}");
    s.err(Method::PUT, "/collections/nope/index", Some(index), StatusCode::NOT_FOUND).await;
    s.ok(Method::DELETE, "/collections/docs/index/color?wait=true", None).await;
    s.ok(Method::DELETE, "/collections/docs/index/year?wait=true", None).await;
    let info = s.ok(Method::GET, "/collections/docs", None).await;
    assert_eq!(info["payload_schema"], json!({}));
    // Storage tuning: accepted (no effect), never for changes that would alter results.
    let tuning = json!({"optimizers_config": {"indexing_threshold": 0}});
    assert_eq!(s.ok(Method::PATCH, "/collections/docs", Some(tuning)).await, json!(true));
    let msg = s
        .err(
            Method::PATCH,
            "/collections/docs",
            Some(json!({"hnsw_config": {"m": 4}})),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(msg.contains("hnsw_config.m"), "{msg}");
    let same_graph = json!({"hnsw_config": {"m": 16, "full_scan_threshold": 100, "on_disk": true}});
    assert_eq!(s.ok(Method::PATCH, "/collections/docs", Some(same_graph)).await, json!(true));
    // The local engine keeps its create-time quantization (its incremental snapshots need it).
    let int8 = json!({"quantization_config": {"scalar": {"type": "int8"}}});
    let msg = s.err(Method::PATCH, "/collections/docs", Some(int8), StatusCode::BAD_REQUEST).await;
    assert!(msg.contains("node engine"), "{msg}");
    let msg = s
        .err(Method::PATCH, "/collections/docs", Some(json!({"quantization_config": "Off"})), StatusCode::BAD_REQUEST)
        .await;
    assert!(msg.contains("Disabled"), "{msg}");
    let on_disk = json!({"vectors": {"": {"on_disk": true}}});
    let msg = s.err(Method::PATCH, "/collections/docs", Some(on_disk), StatusCode::BAD_REQUEST).await;
    assert!(msg.contains("node engine"), "{msg}");
    // Aliases live in the node's replicated metadata: the local engine refuses them by name.
    let alias = json!({"actions": [{"create_alias": {"collection_name": "docs", "alias_name": "d"}}]});
    let msg = s.err(Method::POST, "/collections/aliases", Some(alias), StatusCode::BAD_REQUEST).await;
    assert!(msg.contains("node"), "{msg}");
    let msg = s.err(Method::GET, "/aliases", None, StatusCode::BAD_REQUEST).await;
    assert!(msg.contains("node"), "{msg}");
    let info = s.ok(Method::GET, "/collections/docs", None).await;
    assert_eq!(info["config"]["quantization_config"], Value::Null, "nothing changed");
    assert_eq!(info["config"]["params"]["vectors"]["on_disk"], false);
    assert_eq!(s.ok(Method::DELETE, "/collections/other", None).await, json!(true));
    assert_eq!(s.ok(Method::DELETE, "/collections/other", None).await, json!(false));
    let msg = s.err(Method::GET, "/collections/other", None, StatusCode::NOT_FOUND).await;
    assert!(msg.contains("other"), "{msg}");
    for (body, needle) in [
        (json!({"vectors": {"size": 0, "distance": "Cosine"}}), "vector size"),
        (json!({"vectors": {"size": 3, "distance": "Manhattan"}}), "Manhattan"),
        (json!({"vectors": {"size": 3}}), "distance"),
    ] {
        let msg = s.err(Method::PUT, "/collections/bad", Some(body), StatusCode::BAD_REQUEST).await;
        assert!(msg.contains(needle), "{needle}: {msg}");
    }
    let msg = s
        .err(
            Method::PUT,
            "/collections/bad%20name",
            Some(json!({"vectors": {"size": 3, "distance": "Dot"}})),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(msg.contains("invalid collection name"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_write_retrieve_and_payloads() {
    let s = start().await;
    s.collection("c", 2, "Dot").await;
    let answer = s
        .client
        .call(
            Method::PUT,
            "/collections/c/points?wait=true",
            Some(&json!({"points": [
                {"id": 1, "vector": [1.0, 0.0], "payload": {"color": "red", "n": 1}},
                {"id": 2, "vector": [0.0, 1.0], "payload": {"color": "blue", "n": 2}}
            ]})),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json().unwrap();
    assert_eq!(body["result"]["status"], "completed");
    assert!(answer.headers.get("vecraft-read-token").is_some());
    let batch = json!({"batch": {"ids": [3, "550e8400-e29b-41d4-a716-446655440000"],
        "vectors": [[1.0, 1.0], [0.5, 0.5]], "payloads": [{"color": "red", "n": 3}, null]}});
    s.ok(Method::PUT, "/collections/c/points?wait=true", Some(batch)).await;
    assert_eq!(s.count("c").await, 4);

    let got = s
        .ok(
            Method::POST,
            "/collections/c/points",
            Some(json!({"ids": [2, 1, 99], "with_vector": true})),
        )
        .await;
    assert_eq!(ids(&got), vec![2, 1]);
    assert_eq!(got[0]["payload"], json!({"color": "blue", "n": 2}));
    assert_eq!(got[0]["vector"], json!([0.0, 1.0]));
    let one =
        s.ok(Method::GET, "/collections/c/points/550e8400-e29b-41d4-a716-446655440000", None).await;
    assert_eq!(one["id"], "550e8400-e29b-41d4-a716-446655440000");
    s.err(Method::GET, "/collections/c/points/77", None, StatusCode::NOT_FOUND).await;
    s.err(Method::GET, "/collections/c/points/not-an-id", None, StatusCode::BAD_REQUEST).await;

    let path = "/collections/c/points/payload?wait=true";
    s.ok(Method::POST, path, Some(json!({"payload": {"tag": "x"}, "points": [1]}))).await;
    s.ok(Method::PUT, path, Some(json!({"payload": {"only": true}, "points": [2]}))).await;
    s.ok(Method::POST, "/collections/c/points/payload/delete?wait=true", Some(json!({"keys": ["n"], "filter": {"must": [{"key": "color", "match": {"value": "red"}}]}}))).await;
    let got = s.ok(Method::POST, "/collections/c/points", Some(json!({"ids": [1, 2, 3]}))).await;
    assert_eq!(got[0]["payload"], json!({"color": "red", "tag": "x"}));
    assert_eq!(got[1]["payload"], json!({"only": true}));
    assert_eq!(got[2]["payload"], json!({"color": "red"}));
    s.ok(
        Method::POST,
        "/collections/c/points/payload/clear?wait=true",
        Some(json!({"points": [3]})),
    )
    .await;
    let got = s
        .ok(Method::POST, "/collections/c/points", Some(json!({"ids": [3], "with_payload": true})))
        .await;
    assert_eq!(got[0]["payload"], json!({}));
    let msg = s
        .err(
            Method::POST,
            path,
            Some(json!({"payload": {"a": 1}, "points": [42]})),
            StatusCode::NOT_FOUND,
        )
        .await;
    assert!(msg.contains("42"), "{msg}");

    s.ok(Method::POST, "/collections/c/points/delete?wait=true", Some(json!({"points": [1]})))
        .await;
    s.ok(
        Method::POST,
        "/collections/c/points/delete?wait=true",
        Some(json!({"filter": {"must": [{"has_id": [2]}]}})),
    )
    .await;
    assert_eq!(s.count("c").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_search_scroll_count() {
    let s = start().await;
    s.collection("v", 2, "Cosine").await;
    let points: Vec<Value> = (0..20u64)
        .map(|i| {
            let angle = i as f32 * 0.07;
            json!({"id": i, "vector": [angle.cos(), angle.sin()], "payload": {"i": i, "even": i % 2 == 0}})
        })
        .collect();
    s.upsert("v", Value::Array(points)).await;
    let r = s
        .ok(
            Method::POST,
            "/collections/v/points/query",
            Some(json!({"query": {"nearest": [1.0, 0.0]}, "limit": 3, "with_payload": true})),
        )
        .await;
    let hits = &r["points"];
    assert_eq!(ids(hits), vec![0, 1, 2]);
    assert!(hits[0]["score"].as_f64().unwrap() > 0.999);
    assert!(hits[0]["version"].is_number());
    assert_eq!(hits[0]["payload"]["i"], 0);
    let filtered = s
        .ok(Method::POST, "/collections/v/points/query", Some(json!({
            "query": [1.0, 0.0], "limit": 3, "params": {"exact": true},
            "filter": {"must": [{"key": "even", "match": {"value": false}}], "must_not": [{"key": "i", "range": {"lt": 3}}]}
        })))
        .await;
    assert_eq!(ids(&filtered["points"]), vec![3, 5, 7]);
    assert!(filtered["points"][0]["payload"].is_null());
    let legacy = s
        .ok(
            Method::POST,
            "/collections/v/points/search",
            Some(json!({"vector": [1.0, 0.0], "limit": 2, "offset": 1})),
        )
        .await;
    assert_eq!(ids(&legacy), vec![1, 2]);
    let batch = s
        .ok(Method::POST, "/collections/v/points/search/batch", Some(json!({"searches": [
            {"vector": [1.0, 0.0], "limit": 1}, {"vector": {"name": "", "vector": [0.0, 1.0]}, "limit": 1}
        ]})))
        .await;
    assert_eq!(ids(&batch[0]), vec![0]);
    assert_eq!(ids(&batch[1]), vec![19]);
    let qbatch = s
        .ok(
            Method::POST,
            "/collections/v/points/query/batch",
            Some(json!({"searches": [{"query": [1.0, 0.0], "limit": 2}]})),
        )
        .await;
    assert_eq!(ids(&qbatch[0]["points"]), vec![0, 1]);
    let threshold = s
        .ok(
            Method::POST,
            "/collections/v/points/query",
            Some(json!({"query": [1.0, 0.0], "limit": 20, "score_threshold": 0.99})),
        )
        .await;
    assert!(ids(&threshold["points"]).len() < 20 && !ids(&threshold["points"]).is_empty());

    let mut seen = Vec::new();
    let mut offset = Value::Null;
    loop {
        let page = s
            .ok(Method::POST, "/collections/v/points/scroll", Some(json!({"limit": 7, "offset": offset, "filter": {"must": [{"key": "even", "match": {"value": true}}]}})))
            .await;
        seen.extend(ids(&page["points"]));
        offset = page["next_page_offset"].clone();
        if offset.is_null() {
            break;
        }
    }
    assert_eq!(seen, (0..20).step_by(2).collect::<Vec<u64>>());
    let c = s
        .ok(
            Method::POST,
            "/collections/v/points/count",
            Some(json!({"filter": {"must": [{"key": "i", "range": {"gte": 15}}]}, "exact": true})),
        )
        .await;
    assert_eq!(c["count"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_and_changes_nothing() {
    let s = start().await;
    s.collection("c", 3, "Cosine").await;
    s.upsert("c", json!([{"id": 1, "vector": [1, 2, 3]}])).await;
    let up = "/collections/c/points?wait=true";
    let cases: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            up,
            json!({"points": [{"id": 2, "vector": [1, 2]}]}),
            StatusCode::BAD_REQUEST,
            "dimension 2",
        ),
        (
            up,
            json!({"points": [{"id": 2, "vector": [1e39, 1, 1]}]}),
            StatusCode::BAD_REQUEST,
            "non-finite",
        ),
        (
            up,
            json!({"points": [{"id": 2, "vector": [0, 0, 0]}]}),
            StatusCode::BAD_REQUEST,
            "zero length",
        ),
        (
            up,
            json!({"points": [{"id": -5, "vector": [1, 2, 3]}]}),
            StatusCode::BAD_REQUEST,
            "points[0].id",
        ),
        (
            up,
            json!({"points": [{"id": 2, "vector": [1, 2, 3], "payload": 7}]}),
            StatusCode::BAD_REQUEST,
            "payload",
        ),
        (
            up,
            json!({"points": [{"id": 2, "vector": [1, 2, 3]}, {"id": 3, "vector": [1]}]}),
            StatusCode::BAD_REQUEST,
            "point 3",
        ),
        (
            "/collections/nope/points?wait=true",
            json!({"points": [{"id": 2, "vector": [1, 2, 3]}]}),
            StatusCode::NOT_FOUND,
            "nope",
        ),
        (
            "/collections/c/points?wait=false",
            json!({"points": [{"id": 2, "vector": [1, 2]}]}),
            StatusCode::BAD_REQUEST,
            "dimension",
        ),
        (
            "/collections/c/points/query",
            json!({"query": [1, 2]}),
            StatusCode::BAD_REQUEST,
            "dimension",
        ),
        (
            "/collections/c/points/query",
            json!({"query": [1, 2, 3], "filter": {"must": [{"key": "a", "geo_radius": {}}]}}),
            StatusCode::BAD_REQUEST,
            "geo_radius",
        ),
        (
            "/collections/c/points/query",
            json!({"query": [1, 2, 3], "params": {"hnsw_ef": 0}}),
            StatusCode::BAD_REQUEST,
            "ef 0",
        ),
        ("/collections/c/points/scroll", json!({"limit": "ten"}), StatusCode::BAD_REQUEST, "limit"),
        ("/collections/c/points/delete?wait=true", json!({}), StatusCode::BAD_REQUEST, "points"),
        (
            "/collections/c/points/count",
            json!({"filter": {"must": [{"key": "", "match": {"value": 1}}]}}),
            StatusCode::BAD_REQUEST,
            "filter",
        ),
    ];
    for (path, body, status, needle) in cases {
        let method = if path.contains("/points?") { Method::PUT } else { Method::POST };
        let msg = s.err(method, path, Some(body), status).await;
        assert!(msg.contains(needle), "{path} {needle}: {msg}");
    }
    for raw in [&b"{\"points\": ["[..], b"not json", b"[1, 2"] {
        let a = s.raw(Method::PUT, up, raw).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert!(a.json().unwrap()["status"]["error"].as_str().unwrap().contains("JSON"));
    }
    let bad_param = s
        .err(
            Method::PUT,
            "/collections/c/points?wait=maybe",
            Some(json!({"points": []})),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(bad_param.contains("wait"), "{bad_param}");
    let huge = vec![b' '; 65 << 20];
    let a = s.raw(Method::PUT, up, &huge).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(a.json().unwrap()["status"]["error"].as_str().unwrap().contains("limit"));
    assert_eq!(s.count("c").await, 1, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwaited_writes_and_read_tokens() {
    let s = start().await;
    s.collection("c", 2, "Dot").await;
    let mut token = String::new();
    for i in 0..50u64 {
        let a = s
            .client
            .call(
                Method::PUT,
                "/collections/c/points?wait=false&ordering=strong",
                Some(&json!({"points": [{"id": i, "vector": [1, i]}]})),
            )
            .await
            .unwrap();
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.json().unwrap()["result"]["status"], "acknowledged");
        token = a.headers["vecraft-read-token"].to_str().unwrap().to_string();
    }
    let r = s
        .ok(Method::POST, &format!("/collections/c/points/count?token={token}"), Some(json!({})))
        .await;
    assert_eq!(r["count"], 50, "a read with the last write's token sees all 50");
    let r =
        s.ok(Method::POST, "/collections/c/points/count?consistency=all", Some(json!({}))).await;
    assert_eq!(r["count"], 50);
    let r = s
        .ok(
            Method::POST,
            "/collections/c/points/count?read_consistency=quorum&timeout=5",
            Some(json!({})),
        )
        .await;
    assert_eq!(r["count"], 50);
    s.err(
        Method::POST,
        "/collections/c/points/count?token=0:999999",
        Some(json!({})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    s.err(
        Method::POST,
        "/collections/c/points/count?read_consistency=sometimes",
        Some(json!({})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    s.ok(
        Method::PUT,
        "/collections/c/points?wait=true&write_ack=one_copy",
        Some(json!({"points": [{"id": 99, "vector": [1, 1]}]})),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers() {
    let s = std::sync::Arc::new(start().await);
    s.collection("c", 4, "Euclid").await;
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u64 {
                let id = w * 1000 + i;
                let body =
                    json!({"points": [{"id": id, "vector": [w, i, 1, 1], "payload": {"w": w}}]});
                let wait = if i % 2 == 0 { "true" } else { "false" };
                let (status, v) = s
                    .call(Method::PUT, &format!("/collections/c/points?wait={wait}"), Some(body))
                    .await;
                assert_eq!(status, StatusCode::OK, "{v}");
            }
        }));
    }
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..25 {
                let r = s
                    .ok(
                        Method::POST,
                        "/collections/c/points/query?consistency=all",
                        Some(json!({"query": [0, 0, 1, 1], "limit": 5})),
                    )
                    .await;
                assert!(r["points"].as_array().unwrap().len() <= 5);
                let n = s.count("c").await;
                assert!(n >= last, "counts never go backwards: {n} < {last}");
                last = n;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = s
        .ok(Method::POST, "/collections/c/points/count?read_consistency=strong", Some(json!({})))
        .await;
    assert_eq!(r["count"], 100);
}
