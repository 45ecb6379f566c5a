//! ANN benchmark harness: recall@k, single-thread QPS, p50/p99 latency, build time and memory
//! per point for an `ef` sweep, measured through the engine's `AnnIndex` trait, optionally side
//! by side with hnswlib and faiss on the very same files (`peers.rs`); `quantized.rs` holds the
//! `--quantization` runs.
//!
//! ```text
//! cargo run --release -p vecraft-benches --bin ann_harness -- --peer hnswlib
//! cargo run --release -p vecraft-benches --bin ann_harness -- \
//!     --base sift_base.fvecs --queries sift_query.fvecs --truth sift_groundtruth.ivecs
//! ```
//! Without `--base` it generates a clustered Gaussian mixture (100k x 128-d, 100 clusters) and
//! brute-forces the ground truth; `--write-dir` saves those as TEXMEX files for other tools.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};

use vecraft_benches::ground_truth::exact_knn;
use vecraft_benches::measure::{SearchFigures, run_queries};
use vecraft_benches::report::{EngineRun, result_line, summary, table};
use vecraft_benches::rounds;
use vecraft_benches::snapshot_bench::{SnapshotBenchSpec, measure_snapshots};
use vecraft_benches::synthetic::{Mixture, MixtureSpec};
use vecraft_benches::texmex;
use vecraft_core::vector::collection::{CollectionConfig, Distance, HnswParams};
use vecraft_core::vector::distance;
use vecraft_core::vector::hnsw::{HnswIndex, HnswRsIndex, SearchPath};
use vecraft_core::vector::index::{AnnIndex, FlatIndex, IndexKind, IndexSpec, Metric, Slot};

mod peers;
mod quantized;

use peers::{PeerArg, peers_round};
use quantized::{QuantizationArg, quantization_main};

/// Global allocator that counts live heap bytes, so memory per point is measured, not guessed.
struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only adds
// relaxed counter updates, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl comment).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl comment).
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see the impl comment).
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged (see the impl comment).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MetricArg {
    /// Squared Euclidean (hnswlib space `l2`).
    L2,
    /// Cosine on normalised vectors (hnswlib space `cosine`).
    Cosine,
    /// Inner product (hnswlib space `ip`).
    Dot,
}

impl MetricArg {
    fn metric(self) -> Metric {
        match self {
            MetricArg::L2 => Metric::L2Squared,
            MetricArg::Cosine => Metric::CosineNormalized,
            MetricArg::Dot => Metric::NegDot,
        }
    }

    fn distance(self) -> Distance {
        match self {
            MetricArg::L2 => Distance::Euclid,
            MetricArg::Cosine => Distance::Cosine,
            MetricArg::Dot => Distance::Dot,
        }
    }

    fn peer_space(self) -> &'static str {
        match self {
            MetricArg::L2 => "l2",
            MetricArg::Cosine => "cosine",
            MetricArg::Dot => "ip",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IndexArg {
    /// Our own `HnswIndex` (what the engine uses).
    Hnsw,
    /// `HnswRsIndex`: hnsw_rs-built graph searched through its compact view (the old default).
    HnswRs,
    /// `HnswRsIndex` searching through hnsw_rs's own search (for comparison).
    HnswRsNative,
    /// Exact brute force (slow; sanity check).
    Flat,
}

#[derive(Parser, Debug)]
#[command(about = "ANN benchmark: vecraft's AnnIndex vs hnswlib on the same TEXMEX files")]
struct Args {
    /// Base vectors (.fvecs). Without it, synthetic clustered data is generated.
    #[arg(long)]
    base: Option<PathBuf>,
    /// Query vectors (.fvecs); required with --base.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// Ground-truth neighbour ids (.ivecs); computed by brute force when absent.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Write the (generated) base/queries/truth as base.fvecs, queries.fvecs, truth.ivecs here.
    #[arg(long)]
    write_dir: Option<PathBuf>,
    /// Synthetic: number of base vectors.
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Synthetic: dimension.
    #[arg(long, default_value_t = 128)]
    dim: usize,
    /// Synthetic: number of Gaussian clusters.
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Synthetic: noise scale relative to the spread of cluster centres.
    #[arg(long, default_value_t = 1.0)]
    spread: f32,
    /// Number of queries (synthetic: generated; files: the first N, default all).
    #[arg(long)]
    nq: Option<usize>,
    /// Seed for synthetic data.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Distance.
    #[arg(long, value_enum, default_value_t = MetricArg::L2)]
    metric: MetricArg,
    /// Which index to measure.
    #[arg(long, value_enum, default_value_t = IndexArg::Hnsw)]
    index: IndexArg,
    /// HNSW max links per node per layer.
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// HNSW build breadth.
    #[arg(long, default_value_t = 200)]
    ef_construct: usize,
    /// Build threads for `--index hnsw` (1: the deterministic insert path the engine uses;
    /// more: `HnswIndex::insert_batch_parallel`).
    #[arg(long, default_value_t = 1)]
    build_threads: usize,
    /// Seed of our index's level generator.
    #[arg(long, default_value_t = 1)]
    index_seed: u64,
    /// Neighbours per query (recall@k).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Search breadths to sweep.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    ef: Vec<usize>,
    /// Untimed warm-up queries before each timed pass.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Run peers on the same files and compare (comma-separated, e.g. `hnswlib,faiss`).
    #[arg(long, value_enum, value_delimiter = ',')]
    peer: Vec<PeerArg>,
    /// Measurement rounds: with more than one, the peers save the index they built and later
    /// rounds sweep ours and theirs again, alternating which goes first; every figure is the
    /// median over the rounds (see `vecraft_benches::rounds`). Use 3 or more on a shared host.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Python interpreter for the peer.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Skip the snapshot phase (engine-level load, full/incremental snapshot write, verify and
    /// restore of the base vectors; about three HNSW builds of the base set).
    #[arg(long)]
    no_snapshot: bool,
    /// Build our HNSW with quantized codes and sweep, on the same graph, the f32 walk and the
    /// walk on codes with rescoring at each `--oversampling` (replaces the plain `--index` run).
    #[arg(long, value_enum)]
    quantization: Option<QuantizationArg>,
    /// Oversampling factors to sweep with `--quantization` (candidates = k x factor, rescored).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    oversampling: Vec<f32>,
    /// Scalar quantile with `--quantization int8` (default: the whole range).
    #[arg(long)]
    quantile: Option<f32>,
    /// With `--quantization`: keep the f32 vectors in a memory-mapped file in this directory
    /// (the codes stay on the heap), as Qdrant's `on_disk` vectors with `always_ram` codes. The
    /// file's pages are dropped after the build and before each run, and the resident mapped
    /// bytes are reported after each run's queries beside the heap bytes.
    #[arg(long)]
    originals_on_disk: Option<PathBuf>,
    /// Name of the data set, printed in the `data` row so tables from several sets stay apart
    /// (default: the base file's path, or `synthetic mixture (seed N)`).
    #[arg(long)]
    label: Option<String>,
}

/// The `data` row of the final tables: label, shape, queries and k.
fn data_row(args: &Args, data: &DataSet) -> (String, String) {
    let label = match (&args.label, &args.base) {
        (Some(label), _) => label.clone(),
        (None, Some(base)) => base.display().to_string(),
        (None, None) => format!("synthetic mixture (seed {})", args.seed),
    };
    let (n, nq) = (data.base.len() / data.dim, data.queries.len() / data.dim);
    ("data".into(), format!("{label}: {n} x {}-d, {nq} queries, k={}", data.dim, args.k))
}

/// 1-, 5- and 15-minute load averages from `/proc/loadavg` (Linux), or `n/a`: on the shared
/// box the load says how much the wall-clock figures are worth.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "n/a".into())
}

/// Base, queries and truth in memory.
struct DataSet {
    dim: usize,
    base: Vec<f32>,
    queries: Vec<f32>,
    truth: Vec<Vec<u32>>,
    /// Files holding exactly this data (for the peer), if any.
    files: Option<(PathBuf, PathBuf, PathBuf)>,
}

fn normalise_rows(values: &mut [f32], dim: usize) {
    for row in values.chunks_exact_mut(dim) {
        let norm = distance::norm_squared(row).sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn load_data(args: &Args) -> Result<DataSet> {
    let metric = args.metric.metric();
    let (dim, mut base, mut queries, from_files) = match (&args.base, &args.queries) {
        (Some(b), Some(q)) => {
            let base = texmex::read_fvecs_file(b)?;
            let queries = texmex::read_fvecs_file(q)?;
            ensure!(
                base.dim == queries.dim,
                "base has dimension {} but queries have {}",
                base.dim,
                queries.dim
            );
            let nq = args.nq.unwrap_or(queries.rows()).min(queries.rows());
            let mut qv = queries.values;
            qv.truncate(nq * base.dim);
            eprintln!("loaded {} base and {} query vectors of dimension {}", base.rows(), nq, base.dim);
            (base.dim, base.values, qv, true)
        }
        (None, None) => {
            ensure!(args.truth.is_none(), "--truth needs --base and --queries");
            ensure!(args.dim > 0 && args.n > 0 && args.clusters > 0, "--n, --dim, --clusters must be > 0");
            let mix = Mixture::new(MixtureSpec {
                dim: args.dim,
                clusters: args.clusters,
                spread: args.spread,
                seed: args.seed,
            });
            let nq = args.nq.unwrap_or(10_000);
            eprintln!(
                "generating {} base + {} query vectors, {}-d, {} clusters (seed {})",
                args.n, nq, args.dim, args.clusters, args.seed
            );
            (args.dim, mix.sample(args.n, args.seed ^ 0xBA5E), mix.sample(nq, args.seed ^ 0x0E21), false)
        }
        _ => bail!("--base and --queries go together"),
    };
    let n = base.len() / dim;
    let nq = queries.len() / dim;
    ensure!(n >= args.k, "need at least k={} base vectors, have {n}", args.k);
    if metric == Metric::CosineNormalized {
        // The engine normalises Cosine vectors at insert; do the same so truth matches.
        normalise_rows(&mut base, dim);
        normalise_rows(&mut queries, dim);
    }
    let truth = match &args.truth {
        Some(path) => {
            let t = texmex::read_ivecs_file(path)?;
            ensure!(t.rows() >= nq, "{} has {} rows but there are {nq} queries", path.display(), t.rows());
            ensure!(t.dim >= args.k, "{} has {} ids per row, need k={}", path.display(), t.dim, args.k);
            let mut rows = Vec::with_capacity(nq);
            for i in 0..nq {
                let row = &t.row(i)[..args.k];
                for &id in row {
                    ensure!(id >= 0 && (id as usize) < n, "{}: row {i} has id {id}, base has {n} vectors", path.display());
                }
                rows.push(row.iter().map(|&id| id as u32).collect());
            }
            rows
        }
        None => {
            let start = Instant::now();
            let t = exact_knn(metric, dim, &base, &queries, args.k.max(100).min(n), threads());
            eprintln!("brute-force ground truth: {:.1} s", start.elapsed().as_secs_f64());
            t
        }
    };
    let mut files = if from_files && args.metric != MetricArg::Cosine {
        match (&args.base, &args.queries, &args.truth) {
            (Some(b), Some(q), Some(t)) if args.nq.is_none() => Some((b.clone(), q.clone(), t.clone())),
            _ => None,
        }
    } else {
        None
    };
    if let Some(dir) = &args.write_dir {
        files = Some(write_data(dir, dim, &base, &queries, &truth)?);
    }
    Ok(DataSet { dim, base, queries, truth, files })
}

fn write_data(dir: &Path, dim: usize, base: &[f32], queries: &[f32], truth: &[Vec<u32>]) -> Result<(PathBuf, PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (b, q, t) = (dir.join("base.fvecs"), dir.join("queries.fvecs"), dir.join("truth.ivecs"));
    let create = |p: &Path| std::fs::File::create(p).with_context(|| format!("creating {}", p.display()));
    texmex::write_fvecs(create(&b)?, dim, base)?;
    texmex::write_fvecs(create(&q)?, dim, queries)?;
    let width = truth.iter().map(Vec::len).min().unwrap_or(0);
    ensure!(width > 0, "no ground truth to write");
    let ids: Vec<i32> = truth.iter().flat_map(|row| row[..width].iter().map(|&id| id as i32)).collect();
    texmex::write_ivecs(create(&t)?, width, &ids)?;
    eprintln!("wrote {}, {}, {}", b.display(), q.display(), t.display());
    Ok((b, q, t))
}

/// Our HNSW's spec for `data` with the command line's parameters.
fn hnsw_spec(args: &Args, data: &DataSet) -> IndexSpec {
    IndexSpec {
        dim: data.dim,
        metric: args.metric.metric(),
        m: args.m,
        ef_construct: args.ef_construct,
        capacity_hint: data.base.len() / data.dim.max(1),
        seed: args.index_seed,
        kind: IndexKind::Hnsw,
    }
}

/// The index, build wall seconds, build CPU seconds of this thread (NaN for a parallel build,
/// whose work runs on other threads too) and heap bytes per point.
fn build_index(args: &Args, data: &DataSet) -> (Box<dyn AnnIndex>, f64, f64, f64) {
    let n = data.base.len() / data.dim;
    let spec = hnsw_spec(args, data);
    let before = live_bytes();
    let start = Instant::now();
    let cpu_start = cpu_time::ThreadTime::now();
    let report_every = (n / 10).max(1);
    let index: Box<dyn AnnIndex> = match args.index {
        IndexArg::Hnsw if args.build_threads > 1 => {
            let mut index = HnswIndex::new(&spec);
            let batch: Vec<(Slot, &[f32])> = data.base.chunks_exact(data.dim).enumerate().collect();
            index.insert_batch_parallel(&batch, args.build_threads);
            drop(batch);
            Box::new(index)
        }
        kind => {
            let mut index: Box<dyn AnnIndex> = match kind {
                IndexArg::Hnsw => Box::new(HnswIndex::new(&spec)),
                IndexArg::HnswRs => Box::new(HnswRsIndex::with_search_path(&spec, SearchPath::Compact)),
                IndexArg::HnswRsNative => Box::new(HnswRsIndex::with_search_path(&spec, SearchPath::Native)),
                IndexArg::Flat => Box::new(FlatIndex::new(data.dim, spec.metric)),
            };
            for (slot, v) in data.base.chunks_exact(data.dim).enumerate() {
                index.insert(slot, v);
                if (slot + 1) % report_every == 0 {
                    eprintln!("  inserted {} / {n} ({:.1} s)", slot + 1, start.elapsed().as_secs_f64());
                }
            }
            index
        }
    };
    let build_s = start.elapsed().as_secs_f64();
    let parallel = args.index == IndexArg::Hnsw && args.build_threads > 1;
    let build_cpu_s = if parallel { f64::NAN } else { cpu_start.elapsed().as_secs_f64() };
    let bytes = (live_bytes() - before) as f64 / n as f64;
    (index, build_s, build_cpu_s, bytes)
}

/// `text` as printed for `round`: unchanged in a single-round run; with `--rounds`, each line
/// is prefixed `ROUND r` so only the final medians read as `RESULT` lines.
fn round_lines(args: &Args, round: usize, text: &str) -> String {
    if args.rounds == 1 {
        return text.to_string();
    }
    text.lines().map(|l| format!("ROUND {round} {l}\n")).collect()
}

/// One sweep of `index` over `--ef`, each point printed as it is measured (prefixed `ROUND r`
/// in a multi-round run).
fn sweep(args: &Args, data: &DataSet, index: &dyn AnnIndex, run: &EngineRun, round: usize) -> Vec<SearchFigures> {
    let mut sweep = Vec::new();
    for &ef in &args.ef {
        let f = run_queries(index, data.dim, &data.queries, &data.truth, args.k, ef, args.warmup);
        print!("{}", round_lines(args, round, &format!("{}\n", result_line(run, &f))));
        sweep.push(f);
    }
    sweep
}

/// With `--rounds`, the `RESULT` lines of the medians (a single-round run printed them already).
fn print_medians<'a>(args: &Args, runs: impl IntoIterator<Item = &'a EngineRun>) {
    if args.rounds > 1 {
        for run in runs {
            for f in &run.sweep {
                println!("{}", result_line(run, f));
            }
        }
    }
}

/// Loads the base vectors into an engine collection with the same HNSW parameters and measures
/// snapshot size and write/verify/restore throughput; prints and returns the figures as rows.
fn snapshot_phase(args: &Args, data: &DataSet) -> Result<Vec<(String, String)>> {
    let hnsw_param = |v: usize, what: &str| u32::try_from(v).with_context(|| format!("--{what} {v} too large"));
    let config = CollectionConfig {
        hnsw: HnswParams {
            m: hnsw_param(args.m, "m")?,
            ef_construct: hnsw_param(args.ef_construct, "ef-construct")?,
            ef: HnswParams::default().ef,
        },
        ..CollectionConfig::new(hnsw_param(data.dim, "dim")?, args.metric.distance())
    };
    eprintln!("snapshot phase: loading {} points into an engine collection", data.base.len() / data.dim);
    let figures = measure_snapshots(&data.base, &SnapshotBenchSpec::new(config)).context("snapshot phase")?;
    let rows = figures.rows();
    for (name, value) in &rows {
        println!("SNAPSHOT {name}: {value}");
    }
    Ok(rows)
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(!args.ef.is_empty() && args.k > 0, "--ef needs values and --k must be > 0");
    ensure!(args.originals_on_disk.is_none() || args.quantization.is_some(), "--originals-on-disk needs --quantization");
    let load_at_start = load_average();
    eprintln!("load average: {load_at_start}");
    eprintln!("distance kernels: {:?}", distance::kernel_level());
    let mut data = load_data(&args)?;
    // The peer needs the data as files: keep generated data in a temporary directory if the
    // caller did not ask to keep it.
    let _tmp = match (args.peer.is_empty(), &data.files) {
        (false, None) => {
            let tmp = tempfile::tempdir()?;
            data.files = Some(write_data(tmp.path(), data.dim, &data.base, &data.queries, &data.truth)?);
            Some(tmp)
        }
        _ => None,
    };

    if let Some(quantization) = args.quantization {
        return quantization_main(&args, &data, quantization, &load_at_start);
    }
    eprintln!("building {:?} (m={}, ef_construct={})", args.index, args.m, args.ef_construct);
    let (index, build_s, build_cpu_s, bytes_per_point) = build_index(&args, &data);
    eprintln!("build: {build_s:.1} s wall, {build_cpu_s:.1} s thread CPU, {bytes_per_point:.0} bytes/point");
    let engine = match args.index {
        IndexArg::Hnsw => "vecraft-hnsw",
        IndexArg::HnswRs => "vecraft-hnsw-rs",
        IndexArg::HnswRsNative => "vecraft-hnsw-rs-native",
        IndexArg::Flat => "vecraft-flat",
    };
    let mut ours = EngineRun { engine: engine.into(), build_s, build_cpu_s, bytes_per_point, sweep: Vec::new() };
    let index_dir = tempfile::tempdir()?;
    let mut peers = Vec::new();
    let (mut our_sweeps, peer_sweeps) = rounds::alternate(
        args.rounds as usize,
        |round| {
            Ok(vec![sweep(&args, &data, index.as_ref(), &ours, round)])
        },
        |round| peers_round(&args, data.files.as_ref(), index_dir.path(), round, &mut peers),
    )?;
    drop(index);
    ours.sweep = our_sweeps.swap_remove(0);
    for (peer, sweep) in peers.iter_mut().zip(peer_sweeps) {
        peer.sweep = sweep;
    }
    print_medians(&args, std::iter::once(&ours).chain(&peers));
    let snapshot_rows = if args.no_snapshot { Vec::new() } else { snapshot_phase(&args, &data)? };
    let mut extra: Vec<(String, String)> = vec![
        data_row(&args, &data),
        ("params".into(), format!("m={} ef_construct={} metric={:?} rounds={}", args.m, args.ef_construct, args.metric, args.rounds)),
        ("load average".into(), format!("start {load_at_start}, end {}", load_average())),
    ];
    extra.extend(snapshot_rows);
    println!();
    if peers.is_empty() {
        print!("{}", table(&ours, None, &extra));
    }
    for (i, peer) in peers.iter().enumerate() {
        let rows = if i + 1 == peers.len() { extra.as_slice() } else { &[] };
        print!("{}", table(&ours, Some(peer), rows));
        print!("{}", summary(&ours, peer, &[0.9, 0.95, 0.99]));
        println!();
    }
    Ok(())
}

