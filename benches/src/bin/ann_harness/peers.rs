//! The peers (hnswlib, faiss) as child processes: one Python script each, on the same TEXMEX
//! files, printing the same `RESULT` lines; with `--rounds` they build once and reload.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use clap::ValueEnum;

use vecraft_benches::report::{EngineRun, parse_results};
use vecraft_benches::rounds;

use super::{Args, round_lines};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(super) enum PeerArg {
    /// hnswlib via `peers/hnswlib_peer.py` (needs `pip install hnswlib numpy`).
    Hnswlib,
    /// faiss `IndexHNSWFlat` via `peers/faiss_peer.py` (needs `pip install faiss-cpu numpy`).
    Faiss,
}

impl PeerArg {
    fn script(self) -> &'static str {
        match self {
            PeerArg::Hnswlib => "peers/hnswlib_peer.py",
            PeerArg::Faiss => "peers/faiss_peer.py",
        }
    }
}

/// What a peer process does with its index file.
#[derive(Clone, Copy)]
enum PeerIndexFile<'a> {
    /// Build, keep nothing.
    None,
    /// Build, then save the index here.
    Save(&'a Path),
    /// Load the index saved here instead of building.
    Load(&'a Path),
}

fn run_peer(args: &Args, peer: PeerArg, files: &(PathBuf, PathBuf, PathBuf), index_file: PeerIndexFile, round: usize) -> Result<EngineRun> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(peer.script());
    let ef_list: Vec<String> = args.ef.iter().map(|e| e.to_string()).collect();
    eprintln!("running peer: {} {}", args.python, script.display());
    let mut command = Command::new(&args.python);
    command
        .arg(&script)
        .arg("--base").arg(&files.0)
        .arg("--queries").arg(&files.1)
        .arg("--truth").arg(&files.2)
        .args(["--space", args.metric.peer_space()])
        .args(["--m", &args.m.to_string()])
        .args(["--ef-construct", &args.ef_construct.to_string()])
        .args(["--k", &args.k.to_string()])
        .args(["--ef", &ef_list.join(",")])
        .args(["--warmup", &args.warmup.to_string()]);
    match index_file {
        PeerIndexFile::None => {}
        PeerIndexFile::Save(path) => {
            command.arg("--save").arg(path);
        }
        PeerIndexFile::Load(path) => {
            command.arg("--load").arg(path);
        }
    }
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", args.python))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{}", round_lines(args, round, &stdout));
    ensure!(output.status.success(), "peer exited with {}", output.status);
    Ok(parse_results(&stdout)?)
}

/// One round of every peer: round 0 builds (saving the index when more rounds follow) and keeps
/// each peer's run in `runs`; later rounds load the saved index and return only the sweeps.
pub(super) fn peers_round(
    args: &Args,
    files: Option<&(PathBuf, PathBuf, PathBuf)>,
    index_dir: &Path,
    round: usize,
    runs: &mut Vec<EngineRun>,
) -> Result<rounds::Sweeps> {
    let Some(files) = files else { return Ok(Vec::new()) };
    let mut sweeps = Vec::new();
    for &peer in &args.peer {
        let path = index_dir.join(format!("{peer:?}.index"));
        let index_file = match (round, args.rounds) {
            (0, 1) => PeerIndexFile::None,
            (0, _) => PeerIndexFile::Save(&path),
            _ => PeerIndexFile::Load(&path),
        };
        let run = run_peer(args, peer, files, index_file, round)?;
        sweeps.push(run.sweep.clone());
        if round == 0 {
            runs.push(run);
        }
    }
    Ok(sweeps)
}

