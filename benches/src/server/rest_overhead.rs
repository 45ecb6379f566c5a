//! Search through the REST API of one `vecraft serve` node versus the same engine in-process
//! (`vecraft_core::vector` collection search): same points, same queries, same k and ef.
//!
//! The REST side includes everything a client pays: HTTP/1.1 on loopback (keep-alive), JSON
//! both ways, the node loop (a `strong` read, the default without a `consistency` parameter:
//! on one node it confirms leadership locally and waits for the applied index) and the apply
//! worker's search. The in-process side is one thread calling `Collection::search`. The two
//! sides build their HNSW graphs separately (same parameters, same insertion order), so
//! their answers are compared (overlap of the top k) to show they do the same work.

use super::http::KeepAlive;
use super::procs::{ProcError, VecraftCluster};
use super::workload::create_collection;
use crate::measure::quantile;
use crate::synthetic::{Mixture, MixtureSpec};
use hyper::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};
use thiserror::Error;
use vecraft_core::vector::collection::{
    CollectionConfig, Distance, HnswParams, PointsOp, SearchRequest,
};
use vecraft_core::vector::engine::{Command, VectorEngine};
use vecraft_core::vector::point::{PointId, PointStruct};

/// Why the REST-overhead phase failed.
#[derive(Debug, Error)]
pub enum RestOverheadError {
    /// The server did not start.
    #[error(transparent)]
    Proc(#[from] ProcError),
    /// A request was refused or answered wrongly.
    #[error("{0}")]
    Request(String),
    /// The in-process engine refused a command.
    #[error("engine: {0}")]
    Engine(String),
}

/// Shape of the measurement.
#[derive(Debug, Clone, Copy)]
pub struct RestOverheadSpec {
    /// Points loaded.
    pub points: usize,
    /// Queries timed (each side runs them all once after a warm-up pass over the first 10%).
    pub queries: usize,
    /// Dimension.
    pub dim: usize,
    /// Hits per search.
    pub k: usize,
    /// Search breadth.
    pub ef: usize,
    /// Concurrent REST clients for the throughput figure.
    pub concurrent_clients: usize,
}

/// Latency and throughput of one side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchSide {
    /// Queries per second.
    pub qps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// The phase's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct RestOverheadFigures {
    /// REST, one client, sequential.
    pub rest: SearchSide,
    /// REST, `concurrent_clients` clients.
    pub rest_concurrent: SearchSide,
    /// In-process, one thread.
    pub engine: SearchSide,
    /// Mean fraction of the engine's top k that REST also returned.
    pub overlap: f64,
}

fn side(mut lat_ms: Vec<f64>, secs: f64) -> SearchSide {
    let n = lat_ms.len();
    lat_ms.sort_by(f64::total_cmp);
    SearchSide {
        qps: n as f64 / secs,
        p50_ms: quantile(&lat_ms, 0.5),
        p99_ms: quantile(&lat_ms, 0.99),
    }
}

fn json_vec(v: &[f32]) -> Value {
    Value::from(v.iter().map(|x| f64::from(*x)).collect::<Vec<_>>())
}

fn ids_of(answer: &Value) -> Result<Vec<u64>, String> {
    answer
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("search answer without a result list: {answer}"))?
        .iter()
        .map(|h| {
            h.get("id")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("hit without an id: {h}"))
        })
        .collect()
}

/// Runs the phase: starts one node under `dir`, loads, searches both ways.
pub async fn measure(
    binary: &Path,
    dir: &Path,
    spec: RestOverheadSpec,
) -> Result<RestOverheadFigures, RestOverheadError> {
    let mix = Mixture::new(MixtureSpec {
        dim: spec.dim,
        clusters: 100,
        spread: 1.0,
        seed: 11,
    });
    let base = mix.sample(spec.points, 1);
    let queries = mix.sample(spec.queries, 2);
    let dim = spec.dim;
    let req = |e: String| RestOverheadError::Request(e);

    // REST side: one node, one shard, one replica.
    let cluster = tokio::task::block_in_place(|| VecraftCluster::start(binary, dir, 1))?;
    let addr = cluster.nodes[0].http.clone();
    let mut client = KeepAlive::new(addr.clone(), Duration::from_secs(120));
    let name = "overhead";
    create_collection(&mut client, name, dim, 1, 1)
        .await
        .map_err(req)?;
    let batch = 500;
    for (b, rows) in base.chunks(batch * dim).enumerate() {
        let points: Vec<Value> = rows
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| json!({"id": b * batch + i, "vector": json_vec(v)}))
            .collect();
        let a = client
            .request(
                Method::PUT,
                &format!("/collections/{name}/points?wait=true"),
                json!({"points": points}).to_string(),
            )
            .await
            .map_err(|e| req(e.to_string()))?;
        if !a.status.is_success() {
            return Err(req(format!(
                "load: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            )));
        }
    }
    let bodies: Vec<String> = queries
        .chunks_exact(dim)
        .map(|q| {
            json!({"vector": json_vec(q), "limit": spec.k, "params": {"hnsw_ef": spec.ef}})
                .to_string()
        })
        .collect();
    let path = format!("/collections/{name}/points/search");
    let warm = (spec.queries / 10).max(1);
    for body in bodies.iter().take(warm) {
        client
            .request(Method::POST, &path, body.clone())
            .await
            .map_err(|e| req(e.to_string()))?;
    }
    let mut rest_ids = Vec::with_capacity(bodies.len());
    let mut lat = Vec::with_capacity(bodies.len());
    let start = Instant::now();
    for body in &bodies {
        let t = Instant::now();
        let a = client
            .request(Method::POST, &path, body.clone())
            .await
            .map_err(|e| req(e.to_string()))?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        if !a.status.is_success() {
            return Err(req(format!(
                "search: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            )));
        }
        rest_ids.push(ids_of(&a.json()).map_err(req)?);
    }
    let rest = side(lat, start.elapsed().as_secs_f64());

    // REST, concurrent clients, each running the whole query list from its own offset.
    let clients = spec.concurrent_clients.max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let bodies = bodies.clone();
        let path = path.clone();
        let mut client = KeepAlive::new(addr.clone(), Duration::from_secs(120));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(bodies.len());
            for i in 0..bodies.len() {
                let body = bodies[(i + c * 7919) % bodies.len()].clone();
                let t = Instant::now();
                match client.request(Method::POST, &path, body).await {
                    Ok(a) if a.status.is_success() => lat.push(t.elapsed().as_secs_f64() * 1e3),
                    other => return Err(format!("concurrent search: {other:?}")),
                }
            }
            Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| req(e.to_string()))?.map_err(req)?);
    }
    let rest_concurrent = side(all, start.elapsed().as_secs_f64());
    drop(cluster);

    // In-process side: the same engine type the node's apply worker runs.
    let engine_err =
        |e: vecraft_core::vector::error::EngineError| RestOverheadError::Engine(e.to_string());
    let mut engine = VectorEngine::new();
    let mut config = CollectionConfig::new(dim as u32, Distance::Cosine);
    config.hnsw = HnswParams {
        m: 16,
        ef_construct: 100,
        ef: spec.ef as u32,
    };
    engine
        .apply(Command::CreateCollection {
            name: name.into(),
            config,
        })
        .map_err(engine_err)?;
    for (b, rows) in base.chunks(batch * dim).enumerate() {
        let points = rows
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| PointStruct {
                id: PointId::Num((b * batch + i) as u64),
                vector: v.to_vec(),
                payload: Default::default(),
            })
            .collect();
        engine
            .apply(Command::Points {
                collection: name.into(),
                op: PointsOp::Upsert(points),
            })
            .map_err(engine_err)?;
    }
    let collection = engine.collection(name).map_err(engine_err)?;
    let search = |q: &[f32]| {
        let mut r = SearchRequest::new(q.to_vec(), spec.k);
        r.ef = Some(spec.ef);
        collection.search(&r)
    };
    for q in queries.chunks_exact(dim).take(warm) {
        search(q).map_err(engine_err)?;
    }
    let mut lat = Vec::with_capacity(spec.queries);
    let mut engine_hits = Vec::with_capacity(spec.queries);
    let start = Instant::now();
    for q in queries.chunks_exact(dim) {
        let t = Instant::now();
        let hits = search(q).map_err(engine_err)?;
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        engine_hits.push(hits);
    }
    let secs = start.elapsed().as_secs_f64();
    let mut overlap = 0.0;
    for (hits, rest_hits) in engine_hits.iter().zip(&rest_ids) {
        let mine: HashSet<u64> = hits
            .iter()
            .filter_map(|h| match h.id {
                PointId::Num(n) => Some(n),
                _ => None,
            })
            .collect();
        let shared = rest_hits.iter().filter(|id| mine.contains(id)).count();
        overlap += shared as f64 / mine.len().max(1) as f64;
    }
    let engine_side = side(lat, secs);
    Ok(RestOverheadFigures {
        rest,
        rest_concurrent,
        engine: engine_side,
        overlap: overlap / rest_ids.len().max(1) as f64,
    })
}
