//! Real server processes on loopback: a vecraft cluster (the release `vecraft serve` binary,
//! laid out as `vecraft cluster up` lays it out) and an etcd cluster, with kill -9 and restart.
//!
//! The harness starts the nodes itself instead of calling `vecraft cluster up` because the
//! failover measurement must kill -9 and restart single members, which `cluster up` (one
//! supervisor stopping everything when a child dies) does not allow. Flags, ports and the
//! secret-in-environment are the same as `cluster up`'s; fsync is always on in `vecraft serve`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Why a server process could not be started or did not become ready.
#[derive(Debug, Error)]
pub enum ProcError {
    /// Spawning or file-system work failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The process did not answer its readiness probe in time.
    #[error("{what} not ready within {secs} s (log: {log})")]
    NotReady {
        /// Which process.
        what: String,
        /// The limit.
        secs: u64,
        /// Its log file.
        log: String,
    },
    /// The process exited early.
    #[error("{what} exited: {status} (log: {log})")]
    Exited {
        /// Which process.
        what: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log file.
        log: String,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProcError {
    let context = context.into();
    move |source| ProcError::Io { context, source }
}

/// `n` distinct free loopback ports (bound then released; a race with other programs is
/// possible but unlikely on a quiet machine).
pub fn free_ports(n: usize) -> Result<Vec<u16>, ProcError> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(io("reserve a port"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(io("read a port"))
}

/// Sends SIGKILL (kill -9) and reaps.
fn kill9(child: &mut Child) {
    // SAFETY: kill(2) on a pid we spawned and have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Sends SIGTERM and waits up to `grace`, then SIGKILL.
fn stop(child: &mut Child, grace: Duration) {
    // SAFETY: as in `kill9`.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill9(child);
}

/// One vecraft node of a [`VecraftCluster`].
pub struct VecraftNode {
    /// Node id (1-based).
    pub id: u64,
    /// REST address, `127.0.0.1:port`.
    pub http: String,
    /// Node-to-node address.
    pub cluster: String,
    /// Data directory.
    pub data: PathBuf,
    child: Option<Child>,
}

impl VecraftNode {
    /// Whether its process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A vecraft cluster of real processes under one temporary directory; dropping it stops them.
pub struct VecraftCluster {
    binary: PathBuf,
    secret: String,
    peers_of: Vec<String>,
    /// Extra environment of every node (settings such as `VECRAFT_RAFT_SNAPSHOT_ENTRIES`).
    env: Vec<(String, String)>,
    /// The nodes, node `i` at index `i - 1`.
    pub nodes: Vec<VecraftNode>,
}

impl VecraftCluster {
    /// Starts `n` nodes (`n == 1`: a one-node `vecraft serve` without peers) with data under
    /// `dir`, and waits until each answers `/readyz`.
    pub fn start(binary: &Path, dir: &Path, n: usize) -> Result<Self, ProcError> {
        Self::start_with_env(binary, dir, n, &[])
    }

    /// [`Self::start`] with `env` set in every node's environment.
    pub fn start_with_env(binary: &Path, dir: &Path, n: usize, env: &[(&str, &str)]) -> Result<Self, ProcError> {
        let ports = free_ports(2 * n)?;
        // A fresh random secret per cluster (std's per-process random hasher keys; the
        // benchmark needs no stronger randomness, and it never leaves loopback).
        let secret: String = (0..2u64)
            .map(|i| {
                format!(
                    "{:016x}",
                    std::hash::BuildHasher::hash_one(
                        &std::collections::hash_map::RandomState::new(),
                        i
                    )
                )
            })
            .collect();
        let nodes: Vec<VecraftNode> = (0..n)
            .map(|i| VecraftNode {
                id: i as u64 + 1,
                http: format!("127.0.0.1:{}", ports[2 * i]),
                cluster: format!("127.0.0.1:{}", ports[2 * i + 1]),
                data: dir.join(format!("node-{}", i + 1)),
                child: None,
            })
            .collect();
        let peers_of = nodes
            .iter()
            .map(|me| {
                nodes
                    .iter()
                    .filter(|p| p.id != me.id)
                    .map(|p| format!("{}={}", p.id, p.cluster))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let mut cluster = VecraftCluster {
            binary: binary.to_path_buf(),
            secret,
            peers_of,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            nodes,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            cluster.wait_ready(i, Duration::from_secs(60))?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<(), ProcError> {
        let node = &self.nodes[i];
        std::fs::create_dir_all(&node.data).map_err(io(format!("create {:?}", node.data)))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.data.join("vecraft.log"))
            .map_err(io("open node log"))?;
        let log2 = log.try_clone().map_err(io("clone log handle"))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&node.data)
            .arg("--node-id")
            .arg(node.id.to_string())
            .arg("--http-addr")
            .arg(&node.http)
            .env_remove("VECRAFT_CONFIG")
            .env_remove("VECRAFT_PEERS")
            // Warnings only, unless the caller asks for more (`VECRAFT_LOG` is passed on).
            .env("VECRAFT_LOG", std::env::var("VECRAFT_LOG").unwrap_or_else(|_| "warn".into()))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if self.nodes.len() > 1 {
            cmd.arg("--cluster-addr")
                .arg(&node.cluster)
                .arg("--peers")
                .arg(&self.peers_of[i])
                .env("VECRAFT_CLUSTER_SECRET", &self.secret);
        }
        let child = cmd
            .spawn()
            .map_err(io(format!("start {:?}", self.binary)))?;
        self.nodes[i].child = Some(child);
        Ok(())
    }

    /// Polls `/readyz` of node index `i` until it answers 200.
    pub fn wait_ready(&mut self, i: usize, within: Duration) -> Result<(), ProcError> {
        let deadline = Instant::now() + within;
        let node = &mut self.nodes[i];
        let log = node.data.join("vecraft.log").display().to_string();
        let what = format!("vecraft node {}", node.id);
        loop {
            if let Some(child) = node.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                node.child = None;
                return Err(ProcError::Exited { what, status, log });
            }
            if probe_ok(&node.http, "/readyz") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProcError::NotReady {
                    what,
                    secs: within.as_secs(),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9 of node index `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            kill9(&mut child);
        }
    }

    /// Starts node index `i` again on its data (after [`Self::kill9`]).
    pub fn restart(&mut self, i: usize) -> Result<(), ProcError> {
        if self.nodes[i].child.is_none() {
            self.spawn(i)?;
        }
        self.wait_ready(i, Duration::from_secs(60))
    }

    /// REST addresses of the nodes whose process runs.
    pub fn running_http(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.http.clone())
            .collect()
    }
}

impl Drop for VecraftCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                stop(&mut c, Duration::from_secs(10));
            }
        }
    }
}

/// A blocking one-shot `GET path` returning whether the status was 2xx (used while nothing
/// else runs: start-up and readiness polls).
pub fn probe_ok(addr: &str, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 2")
}

/// A 3-member (or n-member) etcd cluster of Debian's `etcd` on loopback, default fsync
/// settings, each member with its own temporary data directory.
pub struct EtcdCluster {
    /// Client URLs' `host:port`s.
    pub clients: Vec<String>,
    children: Vec<Child>,
}

impl EtcdCluster {
    /// Starts `n` members under `dir` and waits until each answers `/health`.
    pub fn start(binary: &Path, dir: &Path, n: usize) -> Result<Self, ProcError> {
        let ports = free_ports(2 * n)?;
        let peer_url = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let initial: Vec<String> = (0..n).map(|i| format!("m{i}={}", peer_url(i))).collect();
        let initial = initial.join(",");
        let mut children = Vec::new();
        let mut clients = Vec::new();
        for i in 0..n {
            let data = dir.join(format!("etcd-{i}"));
            std::fs::create_dir_all(&data).map_err(io("create etcd dir"))?;
            let log = std::fs::File::create(dir.join(format!("etcd-{i}.log")))
                .map_err(io("create etcd log"))?;
            let log2 = log.try_clone().map_err(io("clone log handle"))?;
            let client = format!("127.0.0.1:{}", ports[2 * i]);
            let child = Command::new(binary)
                .arg("--name")
                .arg(format!("m{i}"))
                .arg("--data-dir")
                .arg(&data)
                .arg("--listen-client-urls")
                .arg(format!("http://{client}"))
                .arg("--advertise-client-urls")
                .arg(format!("http://{client}"))
                .arg("--listen-peer-urls")
                .arg(peer_url(i))
                .arg("--initial-advertise-peer-urls")
                .arg(peer_url(i))
                .arg("--initial-cluster")
                .arg(&initial)
                .arg("--initial-cluster-state")
                .arg("new")
                .arg("--initial-cluster-token")
                .arg(format!("bench-{}", std::process::id()))
                .arg("--log-level")
                .arg("warn")
                .env_remove("ETCD_UNSUPPORTED_ARCH")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(io(format!("start {binary:?}")))?;
            children.push(child);
            clients.push(client);
        }
        let mut cluster = EtcdCluster { clients, children };
        let deadline = Instant::now() + Duration::from_secs(60);
        for (i, c) in cluster.clients.clone().iter().enumerate() {
            while !probe_ok(c, "/health") {
                if let Ok(Some(status)) = cluster.children[i].try_wait() {
                    return Err(ProcError::Exited {
                        what: format!("etcd member {i}"),
                        status,
                        log: dir.join(format!("etcd-{i}.log")).display().to_string(),
                    });
                }
                if Instant::now() >= deadline {
                    return Err(ProcError::NotReady {
                        what: format!("etcd member {i}"),
                        secs: 60,
                        log: dir.join(format!("etcd-{i}.log")).display().to_string(),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(cluster)
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            stop(c, Duration::from_secs(10));
        }
    }
}
