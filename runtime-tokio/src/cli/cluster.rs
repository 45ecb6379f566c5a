//! `vecraft cluster up --nodes N`: a local cluster of real `vecraft serve` processes on loopback.
//!
//! Layout under `--dir` (default `./vecraft-cluster`): `node-<i>/` is node `i`'s data directory
//! (WAL, incarnation counter) and `node-<i>/vecraft.log` its log; `cluster_secret` is generated
//! once and reused, so a second `cluster up` on the same directory resumes the same cluster
//! from its data. Node `i` (1-based) serves HTTP on `http_port + i - 1` and talks to its peers on
//! `cluster_port + i - 1`, all on 127.0.0.1. The secret reaches the children through the
//! environment, never the command line (visible in `ps`).
//!
//! Ready means every node answers `/readyz` (it applied the metadata group and knows its
//! leader). Ctrl-C sends SIGTERM to every child, waits for them (SIGKILL after a grace period)
//! and returns.

use super::client::HttpClient;
use anyhow::{Context, bail};
use clap::Args;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `vecraft cluster up` options.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Directory holding every node's data (created if missing; reused to resume).
    #[arg(long, default_value = "vecraft-cluster")]
    pub dir: PathBuf,
    /// HTTP port of node 1; node i uses this + i - 1.
    #[arg(long, default_value_t = 6333)]
    pub http_port: u16,
    /// Cluster (node-to-node) port of node 1; node i uses this + i - 1.
    #[arg(long, default_value_t = 7333)]
    pub cluster_port: u16,
    /// Give up if the cluster is not ready within this many seconds.
    #[arg(long, default_value_t = 60)]
    pub ready_timeout_secs: u64,
}

/// One child node.
struct NodeProc {
    id: u32,
    http: SocketAddr,
    child: Child,
}

/// The running children; dropping it stops them (so an error path never leaks processes).
struct Children(Vec<NodeProc>);

impl Drop for Children {
    fn drop(&mut self) {
        stop_all(&mut self.0, Duration::from_secs(10));
    }
}

fn stop_all(nodes: &mut [NodeProc], grace: Duration) {
    for n in nodes.iter() {
        // SAFETY: kill(2) on a pid we spawned and have not reaped.
        unsafe {
            libc::kill(n.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    for n in nodes.iter_mut() {
        loop {
            match n.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = n.child.kill();
                    let _ = n.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

fn port(base: u16, i: u32) -> anyhow::Result<u16> {
    u16::try_from(base as u32 + i - 1).context("port out of range")
}

/// Reads or creates the cluster secret file (random, 32 bytes hex).
fn cluster_secret(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("cluster_secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().to_string());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("os rng: {e}"))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, &secret).with_context(|| format!("write {}", path.display()))?;
    Ok(secret)
}

/// Starts the cluster, waits until ready, prints how to use it, and runs until `shutdown`.
pub async fn up(
    args: UpArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 64 {
        bail!("--nodes must be between 1 and 64");
    }
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let secret = cluster_secret(&args.dir)?;
    let exe = std::env::current_exe().context("cannot find the vecraft binary")?;
    let mut layout = Vec::new();
    for i in 1..=args.nodes {
        let http: SocketAddr = ([127, 0, 0, 1], port(args.http_port, i)?).into();
        let cluster: SocketAddr = ([127, 0, 0, 1], port(args.cluster_port, i)?).into();
        for addr in [http, cluster] {
            TcpListener::bind(addr).with_context(|| {
                format!(
                    "port {} is taken; choose others with --http-port/--cluster-port",
                    addr.port()
                )
            })?;
        }
        layout.push((i, http, cluster));
    }
    let mut children = Children(Vec::new());
    for &(i, http, cluster) in &layout {
        let data = args.dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&data)?;
        let peers: Vec<String> = layout
            .iter()
            .filter(|(j, ..)| *j != i)
            .map(|(j, _, c)| format!("{j}={c}"))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("vecraft.log"))?;
        let mut cmd = Command::new(&exe);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .arg("--node-id")
            .arg(i.to_string())
            .arg("--http-addr")
            .arg(http.to_string())
            .arg("--cluster-addr")
            .arg(cluster.to_string())
            .env("VECRAFT_CLUSTER_SECRET", &secret)
            .env_remove("VECRAFT_CONFIG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if !peers.is_empty() {
            cmd.arg("--peers").arg(peers.join(","));
        } else {
            cmd.env_remove("VECRAFT_PEERS");
        }
        let child = cmd.spawn().with_context(|| format!("start node {i}"))?;
        children.0.push(NodeProc { id: i, http, child });
    }
    eprintln!(
        "starting {} nodes under {} ...",
        args.nodes,
        args.dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(args.ready_timeout_secs);
    for n in children.0.iter_mut() {
        let client = HttpClient::new(&format!("http://{}", n.http), None)?;
        loop {
            if let Ok(Some(status)) = n.child.try_wait() {
                bail!(
                    "node {} exited ({status}) before it was ready; see {}",
                    n.id,
                    args.dir
                        .join(format!("node-{}/vecraft.log", n.id))
                        .display()
                );
            }
            if let Ok(a) = client.call(hyper::Method::GET, "/readyz", None).await
                && a.status.is_success()
            {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "node {} not ready within {}s; see its log under {}",
                    n.id,
                    args.ready_timeout_secs,
                    args.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let first = children.0[0].http;
    println!(
        "vecraft cluster of {} nodes is ready (data under {}):",
        args.nodes,
        args.dir.display()
    );
    for n in &children.0 {
        println!("  node {}: http://{}", n.id, n.http);
    }
    println!();
    println!("try:");
    println!(
        "  curl -X PUT http://{first}/collections/demo -H 'content-type: application/json' \\\n    -d '{{\"vectors\": {{\"size\": 4, \"distance\": \"Cosine\"}}, \"shard_number\": 2, \"replication_factor\": 3}}'"
    );
    println!(
        "  curl -X PUT 'http://{first}/collections/demo/points?wait=true' -H 'content-type: application/json' \\\n    -d '{{\"points\": [{{\"id\": 1, \"vector\": [0.1, 0.2, 0.3, 0.4], \"payload\": {{\"color\": \"red\"}}}}]}}'"
    );
    println!(
        "  curl -X POST http://{first}/collections/demo/points/search -H 'content-type: application/json' \\\n    -d '{{\"vector\": [0.1, 0.2, 0.3, 0.4], \"limit\": 3, \"with_payload\": true}}'"
    );
    println!();
    println!("Ctrl-C stops the cluster; `vecraft cluster up` on the same --dir resumes it.");
    let watch = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for n in children.0.iter_mut() {
                if let Ok(Some(status)) = n.child.try_wait() {
                    return (n.id, status);
                }
            }
        }
    };
    tokio::select! {
        _ = shutdown => {
            eprintln!("stopping the cluster ...");
        }
        (id, status) = watch => {
            eprintln!("node {id} exited ({status}); stopping the cluster");
        }
    }
    let mut nodes = std::mem::take(&mut children.0);
    stop_all(&mut nodes, Duration::from_secs(10));
    eprintln!("stopped");
    Ok(())
}
