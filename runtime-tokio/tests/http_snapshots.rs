//! Snapshot routes over real HTTP: create, list, download, recover from the catalogue, upload,
//! delete, and the errors around them.

mod http_common;

use http_common::start;
use hyper::{Method, StatusCode};
use serde_json::json;
use vecraft_core::vector::snapshot::verify_snapshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_download_recover_upload_delete() {
    let s = start().await;
    s.collection("docs", 3, "Euclid").await;
    let points: Vec<_> =
        (0..40).map(|i| json!({"id": i, "vector": [i, 1, 2], "payload": {"i": i}})).collect();
    s.upsert("docs", json!(points)).await;
    let snap = s.ok(Method::POST, "/collections/docs/snapshots", None).await;
    let name = snap["name"].as_str().unwrap().to_string();
    assert!(snap["size"].as_u64().unwrap() > 0);
    assert_eq!(snap["checksum"].as_str().unwrap().len(), 64);
    assert_eq!(snap["creation_time"].as_str().unwrap().len(), 19);
    // Same state again: the same snapshot, not a duplicate.
    assert_eq!(
        s.ok(Method::POST, "/collections/docs/snapshots", None).await["name"],
        name.as_str()
    );
    let list = s.ok(Method::GET, "/collections/docs/snapshots", None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let file = s.dir.path().join("dl.snap");
    let got = s
        .client
        .download(&format!("/collections/docs/snapshots/{name}"), &file, &mut |_, _| ())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, snap["size"].as_u64().unwrap());
    let summary = verify_snapshot(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(summary.header.point_count, 40);
    assert_eq!(
        blake3::Hash::from_bytes(summary.file_hash).to_hex().as_str(),
        snap["checksum"].as_str().unwrap()
    );

    // Change the collection, then recover from the catalogue: back to 40 points.
    s.ok(
        Method::POST,
        "/collections/docs/points/delete?wait=true",
        Some(json!({"points": [0, 1, 2]})),
    )
    .await;
    assert_eq!(s.count("docs").await, 37);
    s.ok(Method::PUT, "/collections/docs/snapshots/recover", Some(json!({"snapshot": name}))).await;
    assert_eq!(s.count("docs").await, 40);

    // Delete the collection, recover it from the uploaded file (collection is re-created).
    s.ok(Method::DELETE, "/collections/docs", None).await;
    let answer =
        s.client.upload("/collections/docs/snapshots/upload", &file, |_| ()).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.json());
    assert_eq!(s.count("docs").await, 40);
    let hit = s
        .ok(
            Method::POST,
            "/collections/docs/points/query",
            Some(json!({"query": [5, 1, 2], "limit": 1, "with_payload": true})),
        )
        .await;
    assert_eq!(hit["points"][0]["payload"]["i"], 5);

    // From a file:// location, with the right and a wrong checksum.
    let location = format!("file://{}", file.display());
    let wrong = json!({"location": location, "checksum": "00"});
    let msg = s
        .err(
            Method::PUT,
            "/collections/docs/snapshots/recover",
            Some(wrong),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(msg.contains("checksum"), "{msg}");
    let right = json!({"location": location, "checksum": snap["checksum"]});
    s.ok(Method::PUT, "/collections/docs/snapshots/recover", Some(right)).await;

    // Errors: another collection's name, garbage upload, unknown snapshot, http location.
    s.collection("other", 3, "Euclid").await;
    let msg = s
        .err(
            Method::PUT,
            "/collections/other/snapshots/recover",
            Some(json!({"location": location})),
            StatusCode::BAD_REQUEST,
        )
        .await;
    assert!(msg.contains("docs"), "{msg}");
    let junk = s.dir.path().join("junk.snap");
    std::fs::write(&junk, b"definitely not a snapshot").unwrap();
    let answer =
        s.client.upload("/collections/docs/snapshots/upload", &junk, |_| ()).await.unwrap();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.count("docs").await, 40, "a failed restore changes nothing");
    s.err(Method::GET, "/collections/docs/snapshots/nope", None, StatusCode::NOT_FOUND).await;
    s.err(
        Method::GET,
        &format!("/collections/other/snapshots/{name}"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
    s.err(
        Method::PUT,
        "/collections/docs/snapshots/recover",
        Some(json!({"location": "http://x/y"})),
        StatusCode::BAD_REQUEST,
    )
    .await;
    s.err(Method::POST, "/collections/nope/snapshots", None, StatusCode::NOT_FOUND).await;

    assert_eq!(
        s.ok(Method::DELETE, &format!("/collections/docs/snapshots/{name}"), None).await,
        json!(true)
    );
    assert_eq!(s.ok(Method::GET, "/collections/docs/snapshots", None).await, json!([]));
    s.err(
        Method::DELETE,
        &format!("/collections/docs/snapshots/{name}"),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_cli_against_a_running_node() {
    use vecraft_runtime::cli::snapshot::{SnapshotCliError, run};
    use vecraft_runtime::cli::{Remote, SnapshotCommand};
    let s = start().await;
    s.collection("docs", 2, "Dot").await;
    s.upsert("docs", json!([{"id": 1, "vector": [1, 0]}, {"id": 2, "vector": [0, 1]}])).await;
    let remote = || Remote { url: s.url.clone(), api_key: None };
    let created =
        run(SnapshotCommand::Create { collection: "docs".into(), remote: remote() }).await.unwrap();
    assert!(created.starts_with("created docs@"), "{created}");
    let listed =
        run(SnapshotCommand::List { collection: "docs".into(), remote: remote() }).await.unwrap();
    let name = listed.split_whitespace().next().unwrap().to_string();
    assert!(name.ends_with("-full"), "{listed}");
    let copy = s.dir.path().join("copy.snap");
    let verified = run(SnapshotCommand::Verify {
        collection: "docs".into(),
        name: name.clone(),
        output: Some(copy.clone()),
        remote: remote(),
    })
    .await
    .unwrap();
    assert!(verified.starts_with("ok:") && verified.contains("2 points"), "{verified}");
    s.ok(Method::POST, "/collections/docs/points/delete?wait=true", Some(json!({"points": [1]})))
        .await;
    run(SnapshotCommand::Restore {
        collection: "docs".into(),
        name: Some(name.clone()),
        file: None,
        remote: remote(),
    })
    .await
    .unwrap();
    assert_eq!(s.count("docs").await, 2);
    s.ok(Method::POST, "/collections/docs/points/delete?wait=true", Some(json!({"points": [2]})))
        .await;
    run(SnapshotCommand::Restore {
        collection: "docs".into(),
        name: None,
        file: Some(copy),
        remote: remote(),
    })
    .await
    .unwrap();
    assert_eq!(s.count("docs").await, 2);
    run(SnapshotCommand::Delete {
        collection: "docs".into(),
        name: name.clone(),
        remote: remote(),
    })
    .await
    .unwrap();
    let missing = run(SnapshotCommand::Verify {
        collection: "docs".into(),
        name,
        output: None,
        remote: remote(),
    })
    .await;
    assert!(matches!(missing, Err(SnapshotCliError::Verify(_))), "{missing:?}");
    let refused =
        run(SnapshotCommand::Create { collection: "nope".into(), remote: remote() }).await;
    assert!(
        matches!(refused, Err(SnapshotCliError::Server { status: StatusCode::NOT_FOUND, .. })),
        "{refused:?}"
    );
}
