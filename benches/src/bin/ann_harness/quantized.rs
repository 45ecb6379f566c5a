//! `--quantization`: one graph with int8 or binary codes, swept as f32 and on the codes with
//! rescoring, each against the peers; optionally with the f32 originals in a mapped file.

use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::ValueEnum;

use vecraft_benches::mapped_memory::{MappedBytes, mapped_under};
use vecraft_benches::report::{EngineRun, summary, table};
use vecraft_benches::rounds;
use vecraft_core::vector::index::AnnIndex;
use vecraft_core::vector::quantization::{QuantizationConfig, QuantizationSearchParams, QuantizedHnsw};
use vecraft_core::vector::vector_store::{InMemoryVectors, VectorStoreProvider};
use vecraft_runtime::mmap_vectors::MmapVectorProvider;

use super::peers::peers_round;
use super::{Args, DataSet, IndexArg, data_row, hnsw_spec, live_bytes, load_average, print_medians, sweep};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum QuantizationArg {
    /// Scalar int8 codes (global range over all values, Qdrant's `scalar: {type: int8}`).
    Int8,
    /// One bit per dimension, Hamming distance.
    Binary,
}

impl QuantizationArg {
    fn config(self, quantile: Option<f32>) -> QuantizationConfig {
        match self {
            QuantizationArg::Int8 => QuantizationConfig::Scalar { quantile, always_ram: None },
            QuantizationArg::Binary => QuantizationConfig::Binary { always_ram: None },
        }
    }

    fn name(self) -> &'static str {
        match self {
            QuantizationArg::Int8 => "int8",
            QuantizationArg::Binary => "binary",
        }
    }
}

/// Builds our HNSW with quantized codes (single-threaded inserts, then a retrain on all points
/// as a collection rebuild does) and returns it with build wall/CPU seconds and heap bytes per
/// point of the graph with vectors (without codes) and of the codes alone.
fn build_quantized(
    args: &Args,
    data: &DataSet,
    quantization: QuantizationArg,
    vectors: &dyn VectorStoreProvider,
) -> (QuantizedHnsw, f64, f64, f64, f64) {
    let n = data.base.len() / data.dim;
    let spec = hnsw_spec(args, data);
    let before = live_bytes();
    let start = Instant::now();
    let cpu_start = cpu_time::ThreadTime::now();
    let mut index = QuantizedHnsw::new_in(&spec, quantization.config(args.quantile), QuantizationSearchParams::default(), vectors);
    let report_every = (n / 10).max(1);
    for (slot, v) in data.base.chunks_exact(data.dim).enumerate() {
        index.insert(slot, v);
        if (slot + 1) % report_every == 0 {
            eprintln!("  inserted {} / {n} ({:.1} s)", slot + 1, start.elapsed().as_secs_f64());
        }
    }
    index.retrain();
    let build_s = start.elapsed().as_secs_f64();
    let build_cpu_s = cpu_start.elapsed().as_secs_f64();
    let total = (live_bytes() - before) as f64 / n as f64;
    let codes = index.code_bytes() as f64 / n as f64;
    (index, build_s, build_cpu_s, total - codes, codes)
}

/// The resident mapped bytes of the `--originals-on-disk` files (zero without it).
fn mapped(args: &Args) -> Result<MappedBytes> {
    match &args.originals_on_disk {
        Some(dir) => mapped_under(dir).with_context(|| format!("reading the mappings of {}", dir.display())),
        None => Ok(MappedBytes::default()),
    }
}

/// `--quantization`: one graph, swept as f32 (`ignore`) and on codes with rescoring at each
/// oversampling factor; every run is compared with each peer. Memory per point: the f32 run
/// counts graph and vectors, the quantized runs add the codes. Heap only: with
/// `--originals-on-disk` the vectors are in a mapped file, whose resident pages are reported
/// separately (`MAPPED` lines and the `originals on disk` row).
pub(super) fn quantization_main(args: &Args, data: &DataSet, quantization: QuantizationArg, load_at_start: &str) -> Result<()> {
    ensure!(args.index == IndexArg::Hnsw, "--quantization works with --index hnsw");
    ensure!(
        args.oversampling.iter().all(|&o| QuantizationSearchParams { oversampling: o, ..Default::default() }.validate().is_ok()),
        "--oversampling values must be in 1..=100"
    );
    let n = (data.base.len() / data.dim) as f64;
    let provider: Box<dyn VectorStoreProvider> = match &args.originals_on_disk {
        Some(dir) => Box::new(MmapVectorProvider::new(dir)?),
        None => Box::new(InMemoryVectors),
    };
    let where_vectors = if args.originals_on_disk.is_some() { "mapped file" } else { "heap" };
    eprintln!("building hnsw + {} codes (m={}, ef_construct={}), f32 vectors on the {where_vectors}", quantization.name(), args.m, args.ef_construct);
    let (mut index, build_s, build_cpu_s, graph_bytes, code_bytes) = build_quantized(args, data, quantization, &*provider);
    eprintln!("build: {build_s:.1} s wall, {build_cpu_s:.1} s thread CPU, {graph_bytes:.0} heap bytes/point graph (+ vectors when on the heap), {code_bytes:.0} bytes/point codes");
    let after_build = mapped(args)?;
    let mut mapped_rows = Vec::new();
    if args.originals_on_disk.is_some() {
        println!("MAPPED phase=build size_bytes_per_point={:.1} rss_bytes_per_point={:.1}", after_build.size as f64 / n, after_build.rss as f64 / n);
        mapped_rows.push(format!("file {:.0} B/pt, resident after build {:.0} B/pt", after_build.size as f64 / n, after_build.rss as f64 / n));
    }
    let mut variants = vec![("vecraft-hnsw-f32".to_string(), QuantizationSearchParams { ignore: true, ..Default::default() }, graph_bytes)];
    for &o in &args.oversampling {
        let params = QuantizationSearchParams { ignore: false, rescore: true, oversampling: o };
        variants.push((format!("vecraft-{}-x{o}", quantization.name()), params, graph_bytes + code_bytes));
    }
    let index_dir = tempfile::tempdir()?;
    let mut peers = Vec::new();
    let (our_sweeps, peer_sweeps) = rounds::alternate(
        args.rounds as usize,
        |round| {
            let mut sweeps = Vec::new();
            for (engine, params, bytes_per_point) in &variants {
                index.set_params(*params);
                // Each run starts with none of the file resident: what it maps is what its queries read.
                index.graph().release_resident_vectors();
                let run = EngineRun { engine: engine.clone(), build_s, build_cpu_s, bytes_per_point: *bytes_per_point, sweep: Vec::new() };
                let sweep = sweep(args, data, &index, &run, round);
                if args.originals_on_disk.is_some() && round == 0 {
                    let after = mapped(args)?;
                    println!("MAPPED phase=queries engine={} rss_bytes_per_point={:.1}", run.engine, after.rss as f64 / n);
                    mapped_rows.push(format!("{} resident after its queries {:.0} B/pt", run.engine, after.rss as f64 / n));
                }
                sweeps.push(sweep);
            }
            Ok(sweeps)
        },
        |round| peers_round(args, data.files.as_ref(), index_dir.path(), round, &mut peers),
    )?;
    drop(index);
    let runs: Vec<EngineRun> = variants
        .into_iter()
        .zip(our_sweeps)
        .map(|((engine, _, bytes_per_point), sweep)| EngineRun { engine, build_s, build_cpu_s, bytes_per_point, sweep })
        .collect();
    for (peer, sweep) in peers.iter_mut().zip(peer_sweeps) {
        peer.sweep = sweep;
    }
    print_medians(args, runs.iter().chain(&peers));
    let extra: Vec<(String, String)> = vec![
        data_row(args, data),
        ("load average".into(), format!("start {load_at_start}, end {}", load_average())),
        ("params".into(), format!("m={} ef_construct={} metric={:?} quantization={} quantile={:?} rounds={}", args.m, args.ef_construct, args.metric, quantization.name(), args.quantile, args.rounds)),
        ("codes bytes/point".into(), format!("{code_bytes:.1}")),
    ];
    let mut extra = extra;
    if !mapped_rows.is_empty() {
        extra.push(("originals on disk".into(), mapped_rows.join("; ")));
    }
    println!();
    for run in &runs {
        if peers.is_empty() {
            print!("{}", table(run, None, &extra));
        }
        for peer in &peers {
            println!("== {} vs {} ==", run.engine, peer.engine);
            print!("{}", table(run, Some(peer), &extra));
            print!("{}", summary(run, peer, &[0.9, 0.95, 0.99]));
            println!();
        }
    }
    for run in runs.iter().skip(1) {
        println!("== {} vs {} (same graph) ==", run.engine, runs[0].engine);
        print!("{}", summary(run, &runs[0], &[0.9, 0.95, 0.99]));
    }
    Ok(())
}
