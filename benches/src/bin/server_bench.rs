//! Server benchmark: real `vecraft serve` processes on loopback (fsync on), against a 3-member
//! etcd cluster and against the engine in-process. Prints `RESULT`/`RATIO` lines and a table.
//!
//! ```sh
//! cargo build --release -p vecraft-runtime --bin vecraft -p vecraft-benches --bin server_bench
//! target/release/server_bench                      # every phase
//! target/release/server_bench --phases etcd,rest   # some of them
//! ```
//!
//! Phases: `etcd` (16 clients, etcd puts vs vecraft upserts of 100-point batches at quorum),
//! `ingest` (vectors/s over a grid of batch sizes and client counts), `rest` (search through
//! REST on one node vs in-process), `failover` (kill -9 of a shard leader under load), `memory`
//! (not in the default set: a one-node server's memory per point with vectors in RAM or
//! `on_disk`, f32 or int8).
//! See benches/README.md for what each measures and the figures of the last run.

use anyhow::{Context, bail};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vecraft_benches::server::failover::{self, FailoverSpec};
use vecraft_benches::server::http::KeepAlive;
use vecraft_benches::server::load::LoadFigures;
use vecraft_benches::server::on_disk_memory::{self, OnDiskMemorySpec, Variant};
use vecraft_benches::server::procs::{EtcdCluster, VecraftCluster};
use vecraft_benches::server::rest_overhead::{self, RestOverheadSpec};
use vecraft_benches::server::workload::{
    create_collection, vector_texts, wait_collection_everywhere, wait_indexed_everywhere, elections,
};
use vecraft_benches::server::writes::{drain, etcd_puts, vecraft_searches, vecraft_upserts};

#[derive(Parser, Debug)]
#[command(
    about = "vecraft server benchmark: real processes on loopback, against etcd and in-process"
)]
struct Args {
    /// Phases to run, comma-separated: etcd, ingest, rest, failover.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "etcd,ingest,rest,failover"
    )]
    phases: Vec<String>,
    /// The `vecraft` binary (build it in release first).
    #[arg(long, default_value = "target/release/vecraft")]
    vecraft: PathBuf,
    /// The `etcd` binary (Debian: `apt-get install etcd-server`).
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// Where the clusters keep their data (a fresh temporary directory inside it per run).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds of load per measurement in the etcd phase.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Concurrent clients in the etcd phase.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Points per vecraft upsert in the etcd phase.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Vector dimension (all phases).
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Shards of the write collections (each replicated on all 3 nodes).
    #[arg(long, default_value_t = 3)]
    shards: u32,
    /// etcd value size, bytes (default: one 128-d f32 vector's worth).
    #[arg(long, default_value_t = 512)]
    etcd_value_bytes: usize,
    /// Ingest grid: batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
    ingest_batches: Vec<usize>,
    /// Ingest grid: client counts.
    #[arg(long, value_delimiter = ',', default_value = "4,16")]
    ingest_clients: Vec<usize>,
    /// Seconds per ingest configuration.
    #[arg(long, default_value_t = 10)]
    ingest_secs: u64,
    /// Search clients beside each ingest cell (0: none): their latency during the load, and
    /// for 5 s once the collection is fully indexed, for comparison.
    #[arg(long, default_value_t = 0)]
    ingest_searchers: usize,
    /// `read_consistency` of those searches (eventual, quorum, strong; default: the node's).
    #[arg(long)]
    search_consistency: Option<String>,
    /// Points loaded for the REST-overhead phase.
    #[arg(long, default_value_t = 20000)]
    rest_points: usize,
    /// Queries in the REST-overhead phase.
    #[arg(long, default_value_t = 1000)]
    rest_queries: usize,
    /// k of the searches.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// ef of the searches.
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// Concurrent REST clients for the search throughput figure.
    #[arg(long, default_value_t = 8)]
    rest_clients: usize,
    /// Points loaded per variant in the memory phase.
    #[arg(long, default_value_t = 100_000)]
    memory_points: usize,
    /// Vector dimension in the memory phase.
    #[arg(long, default_value_t = 256)]
    memory_dim: usize,
    /// Failover rounds.
    #[arg(long, default_value_t = 10)]
    failover_runs: usize,
    /// Writers during the failover phase.
    #[arg(long, default_value_t = 4)]
    failover_writers: usize,
    /// Qdrant's `timeout` parameter (seconds) on the etcd and ingest phases' upserts: the
    /// node's deadline for each (0: none, the node's own 5 s). The client gives up at 10 s.
    #[arg(long, default_value_t = 0)]
    qdrant_timeout: u64,
}

fn result_line(bench: &str, extra: &str, f: &LoadFigures) -> String {
    format!(
        "RESULT bench={bench} {extra} clients={} secs={:.1} requests_ok={} failed={} refused={} rps={:.1} items_per_s={:.0} p50_ms={:.2} p99_ms={:.2}",
        f.clients,
        f.secs,
        f.ok,
        f.failed,
        f.refused,
        f.rps(),
        f.items_per_s(),
        f.p50_ms,
        f.p99_ms
    )
}

fn run_dir(root: &Path, name: &str) -> anyhow::Result<tempfile::TempDir> {
    std::fs::create_dir_all(root)?;
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(root)
        .context("create a temporary directory")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    if !args.vecraft.exists() {
        bail!(
            "{} not found: cargo build --release -p vecraft-runtime --bin vecraft",
            args.vecraft.display()
        );
    }
    let phases: Vec<&str> = args.phases.iter().map(String::as_str).collect();
    for p in &phases {
        if !["etcd", "ingest", "rest", "failover", "memory"].contains(p) {
            bail!("unknown phase `{p}` (etcd, ingest, rest, failover, memory)");
        }
    }
    let mut table: Vec<[String; 6]> = Vec::new();
    let row = |name: String, f: &LoadFigures, unit: &str| -> [String; 6] {
        [
            name,
            format!("{}", f.clients),
            format!("{:.0}", f.rps()),
            format!("{:.0} {unit}", f.items_per_s()),
            format!("{:.1} / {:.1}", f.p50_ms, f.p99_ms),
            if f.refused > 0 {
                format!("{} ({} refused)", f.failed, f.refused)
            } else {
                format!("{}", f.failed)
            },
        ]
    };
    let mut ratios: Vec<String> = Vec::new();
    let pool = Arc::new(vector_texts(args.dim, 4096, 3));

    if phases.contains(&"etcd") {
        let dir = run_dir(&root, "etcd-")?;
        let etcd = tokio::task::block_in_place(|| EtcdCluster::start(&args.etcd, dir.path(), 3))
            .context("start etcd (Debian: apt-get install -y etcd-server etcd-client)")?;
        let f_etcd = etcd_puts(
            &etcd.clients,
            args.clients,
            args.etcd_value_bytes,
            Duration::from_secs(args.secs),
        )
        .await;
        drop(etcd);
        let extra = format!("value_bytes={}", args.etcd_value_bytes);
        println!("{}", result_line("etcd_put", &extra, &f_etcd));
        table.push(row(
            format!("etcd put ({} B value)", args.etcd_value_bytes),
            &f_etcd,
            "puts/s",
        ));

        let dir = run_dir(&root, "vecraft-")?;
        let cluster =
            tokio::task::block_in_place(|| VecraftCluster::start(&args.vecraft, dir.path(), 3))?;
        let members: Vec<String> = cluster.nodes.iter().map(|n| n.http.clone()).collect();
        let mut admin = KeepAlive::new(members[0].clone(), Duration::from_secs(30));
        create_collection(&mut admin, "etcd_cmp", args.dim, args.shards, 3)
            .await
            .map_err(anyhow::Error::msg)?;
        wait_collection_everywhere(&members, "etcd_cmp", Duration::from_secs(30))
            .await
            .map_err(anyhow::Error::msg)?;
        let f_vc = vecraft_upserts(
            &members,
            "etcd_cmp",
            args.clients,
            args.batch,
            Duration::from_secs(args.secs),
            Arc::clone(&pool),
            0,
            (args.qdrant_timeout > 0).then_some(args.qdrant_timeout),
        )
        .await;
        drop(cluster);
        let extra = format!(
            "batch={} dim={} shards={} write_ack=quorum wait=true",
            args.batch, args.dim, args.shards
        );
        println!("{}", result_line("vecraft_upsert", &extra, &f_vc));
        table.push(row(
            format!("vecraft upsert, {} pts/req", args.batch),
            &f_vc,
            "points/s",
        ));
        let r_items = f_vc.items_per_s() / f_etcd.items_per_s();
        let r_rps = f_vc.rps() / f_etcd.rps();
        println!(
            "RATIO vecraft_points_per_s/etcd_puts_per_s={r_items:.2} vecraft_rps/etcd_rps={r_rps:.2} p99_vecraft/p99_etcd={:.2}",
            f_vc.p99_ms / f_etcd.p99_ms
        );
        ratios.push(format!(
            "vecraft points/s / etcd puts/s = {r_items:.2}x; requests/s ratio = {r_rps:.2}x"
        ));
    }

    if phases.contains(&"ingest") {
        let dir = run_dir(&root, "ingest-")?;
        let cluster =
            tokio::task::block_in_place(|| VecraftCluster::start(&args.vecraft, dir.path(), 3))?;
        let members: Vec<String> = cluster.nodes.iter().map(|n| n.http.clone()).collect();
        let mut admin = KeepAlive::new(members[0].clone(), Duration::from_secs(30));
        let mut best: Option<LoadFigures> = None;
        let mut best_batch = 0;
        for &batch in &args.ingest_batches {
            for &clients in &args.ingest_clients {
                let name = format!("ingest_b{batch}_c{clients}");
                create_collection(&mut admin, &name, args.dim, args.shards, 3)
                    .await
                    .map_err(anyhow::Error::msg)?;
                wait_collection_everywhere(&members, &name, Duration::from_secs(30))
                    .await
                    .map_err(anyhow::Error::msg)?;
                let searches = (args.ingest_searchers > 0).then(|| {
                    let (members, name, pool) = (members.clone(), name.clone(), Arc::clone(&pool));
                    let (n, secs) = (args.ingest_searchers, args.ingest_secs);
                    let consistency = args.search_consistency.clone();
                    tokio::spawn(async move {
                        vecraft_searches(&members, &name, n, Duration::from_secs(secs), pool, consistency.as_deref()).await
                    })
                });
                let f = vecraft_upserts(
                    &members,
                    &name,
                    clients,
                    batch,
                    Duration::from_secs(args.ingest_secs),
                    Arc::clone(&pool),
                    0,
                    (args.qdrant_timeout > 0).then_some(args.qdrant_timeout),
                )
                .await;
                if let Some(s) = searches {
                    let s = s.await?;
                    println!("{}", result_line("search_during_ingest", &format!("ingest_clients={clients} ingest_batch={batch}"), &s));
                }
                let extra = format!(
                    "batch={batch} dim={} shards={} write_ack=quorum wait=true",
                    args.dim, args.shards
                );
                println!("{}", result_line("ingest", &extra, &f));
                let drained = drain(
                    &members,
                    &name,
                    &pool,
                    Duration::from_millis(300),
                    Duration::from_secs(60),
                )
                .await;
                println!("# backlog drained in {:.1} s", drained.as_secs_f64());
                // Groups publish their terms once a second.
                tokio::time::sleep(Duration::from_millis(1_100)).await;
                println!("# elections in the shard groups during the cell: {}", elections(&members, &name).await);
                // Deferred indexing: the ingest rate above is what clients saw; the graph work
                // it postponed finishes here, and the sustained rate counts it.
                let indexed = wait_indexed_everywhere(&members, &name, Duration::from_secs(600)).await;
                match indexed {
                    Some(t) => {
                        let whole = f.secs + drained.as_secs_f64() + t.as_secs_f64();
                        println!(
                            "RESULT bench=ingest_indexed batch={batch} clients={clients} index_wait_s={:.1} sustained_vectors_per_s={:.0}",
                            t.as_secs_f64(),
                            f.items as f64 / whole
                        );
                    }
                    None => println!("# not fully indexed within 600 s"),
                }
                if args.ingest_searchers > 0 {
                    let s = vecraft_searches(&members, &name, args.ingest_searchers, Duration::from_secs(5), Arc::clone(&pool), args.search_consistency.as_deref()).await;
                    println!("{}", result_line("search_indexed_idle", &format!("ingest_clients={clients} ingest_batch={batch}"), &s));
                }
                table.push(row(format!("ingest, {batch} pts/req"), &f, "vectors/s"));
                if best
                    .as_ref()
                    .is_none_or(|b| f.items_per_s() > b.items_per_s())
                {
                    best = Some(f);
                    best_batch = batch;
                }
            }
        }
        drop(cluster);
        if let Some(b) = best {
            println!(
                "RESULT bench=ingest_best batch={best_batch} clients={} vectors_per_s={:.0} goal=100000",
                b.clients,
                b.items_per_s()
            );
            ratios.push(format!("best ingest {:.0} vectors/s (batch {best_batch}, {} clients) = {:.2}x of the 100K/s goal", b.items_per_s(), b.clients, b.items_per_s() / 100_000.0));
        }
    }

    if phases.contains(&"rest") {
        let dir = run_dir(&root, "rest-")?;
        let spec = RestOverheadSpec {
            points: args.rest_points,
            queries: args.rest_queries,
            dim: args.dim,
            k: args.k,
            ef: args.ef,
            concurrent_clients: args.rest_clients,
        };
        let f = rest_overhead::measure(&args.vecraft, dir.path(), spec).await?;
        for (name, s) in [
            ("rest_search_1client", f.rest),
            (
                &format!("rest_search_{}clients", args.rest_clients),
                f.rest_concurrent,
            ),
            ("engine_search_1thread", f.engine),
        ] {
            println!(
                "RESULT bench={name} points={} dim={} k={} ef={} qps={:.0} p50_ms={:.3} p99_ms={:.3}",
                args.rest_points, args.dim, args.k, args.ef, s.qps, s.p50_ms, s.p99_ms
            );
            table.push([
                name.to_string(),
                String::new(),
                format!("{:.0}", s.qps),
                String::new(),
                format!("{:.2} / {:.2}", s.p50_ms, s.p99_ms),
                String::new(),
            ]);
        }
        println!(
            "RATIO rest_qps/engine_qps={:.2} rest_p99/engine_p99={:.2} top{}_overlap={:.3}",
            f.rest.qps / f.engine.qps,
            f.rest.p99_ms / f.engine.p99_ms,
            args.k,
            f.overlap
        );
        ratios.push(format!(
            "REST search, 1 client, / in-process, 1 thread: QPS {:.2}x, p99 {:.2}x (top-{} overlap {:.3})",
            f.rest.qps / f.engine.qps,
            f.rest.p99_ms / f.engine.p99_ms,
            args.k,
            f.overlap
        ));
    }

    if phases.contains(&"failover") {
        let dir = run_dir(&root, "failover-")?;
        let spec = FailoverSpec {
            runs: args.failover_runs,
            writers: args.failover_writers,
            batch: 10,
            dim: args.dim,
            give_up: Duration::from_secs(30),
        };
        let runs = failover::measure(&args.vecraft, dir.path(), spec).await?;
        let mut gaps: Vec<f64> = runs.iter().filter_map(|r| r.gap_ms).collect();
        gaps.sort_by(f64::total_cmp);
        let none = runs.len() - gaps.len();
        let p50 = vecraft_benches::measure::quantile(&gaps, 0.5);
        let max = gaps.last().copied().unwrap_or(f64::NAN);
        let mut rejoin: Vec<f64> = runs.iter().map(|r| r.rejoin_ms).collect();
        rejoin.sort_by(f64::total_cmp);
        println!(
            "RESULT bench=failover runs={} p50_ms={p50:.0} max_ms={max:.0} runs_without_ack={none} rejoin_p50_ms={:.0} writers={} batch=10",
            runs.len(),
            vecraft_benches::measure::quantile(&rejoin, 0.5),
            args.failover_writers
        );
        ratios.push(format!("failover (kill -9 of the shard leader -> next acknowledged write): p50 {p50:.0} ms, max {max:.0} ms over {} runs ({none} without an ack in 30 s)", runs.len()));
    }

    if phases.contains(&"memory") {
        let spec = OnDiskMemorySpec { points: args.memory_points, dim: args.memory_dim, batch: 500, queries: 1000 };
        let mut rows = Vec::new();
        for variant in Variant::ALL {
            let dir = run_dir(&root, "memory-")?;
            let f = on_disk_memory::measure(&args.vecraft, dir.path(), spec, variant).await?;
            println!(
                "RESULT bench=memory variant={} points={} dim={} anon_b_per_point={:.0} files_b_per_point={:.0} anon_after_queries={:.0} files_after_queries={:.0} qps={:.0} self_first={:.3}",
                variant.name(), spec.points, spec.dim, f.anon_per_point, f.files_per_point_after_ingest,
                f.anon_per_point_after_queries, f.files_per_point_after_queries, f.qps, f.self_first
            );
            rows.push(f);
        }
        println!();
        println!("| variant | anon B/point after ingest | vector files resident B/point | after 1000 searches: anon / files | searches/s (1 client) | found itself first |");
        println!("|---|---:|---:|---:|---:|---:|");
        for f in &rows {
            println!(
                "| {} | {:.0} | {:.0} | {:.0} / {:.0} | {:.0} | {:.3} |",
                f.variant.name(), f.anon_per_point, f.files_per_point_after_ingest,
                f.anon_per_point_after_queries, f.files_per_point_after_queries, f.qps, f.self_first
            );
        }
        for pair in rows.chunks(2) {
            if let [ram, disk] = pair {
                ratios.push(format!(
                    "{} / {}: anonymous memory per point {:.2}x",
                    disk.variant.name(), ram.variant.name(), disk.anon_per_point / ram.anon_per_point
                ));
            }
        }
    }

    if !table.is_empty() {
        println!();
        println!("| measurement | clients | requests/s | items/s | p50 / p99 ms | failed |");
        println!("|---|---:|---:|---:|---:|---:|");
        for r in &table {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                r[0], r[1], r[2], r[3], r[4], r[5]
            );
        }
    }
    println!();
    for r in &ratios {
        println!("- {r}");
    }
    Ok(())
}
