//! Server configuration: a TOML file, then `VECRAFT_*` environment variables, then command-line
//! flags, each overriding the one before; anything unset takes the documented default.
//!
//! clap reads each flag's environment variable itself (`flag > env`), so the layering is one
//! `Option::or` per field: `flag-or-env`, else the file, else the default. The file is parsed
//! with `deny_unknown_fields`, so a typo (`htp_addr`) is an error naming the key, not a silently
//! ignored setting.

use crate::transport::PeerAddr;
use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Why the configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key and line.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid setting `{key}`: {message}")]
    Invalid {
        /// The setting's name.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The node id file could not be read or written.
    #[error("node id file {path}: {message}")]
    NodeId {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The TOML file's schema: every field optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    data_dir: Option<PathBuf>,
    http_addr: Option<SocketAddr>,
    cluster_addr: Option<SocketAddr>,
    peers: Option<Vec<String>>,
    node_id: Option<u64>,
    cluster_secret: Option<String>,
    api_keys: Option<Vec<String>>,
    read_only_api_keys: Option<Vec<String>>,
    request_timeout_secs: Option<u64>,
    body_limit_bytes: Option<usize>,
    write_queue_capacity: Option<usize>,
    max_concurrent_requests: Option<usize>,
    max_points_in_flight: Option<u64>,
    admission_wait_share_pct: Option<u64>,
    change_history_bytes: Option<usize>,
    indexing_threshold_kb: Option<u64>,
    snapshot_interval_secs: Option<u64>,
    snapshot_max_incrementals: Option<u32>,
    snapshot_retain: Option<usize>,
    engine: Option<String>,
    raft_snapshot_entries: Option<u64>,
    raft_snapshot_keep_entries: Option<u64>,
    raft_heartbeat_ms: Option<u64>,
    raft_election_timeout_ms: Option<u64>,
    wal_segment_bytes: Option<u64>,
    wal_checkpoint_bytes: Option<u64>,
}

/// `vecraft serve` flags; each also reads its `VECRAFT_*` environment variable.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// TOML config file (lowest precedence: env vars and flags override it).
    #[arg(long, env = "VECRAFT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory: snapshots, the node id file. [default: ./vecraft-data]
    #[arg(long, env = "VECRAFT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the REST API. [default: 0.0.0.0:6333]
    #[arg(long, env = "VECRAFT_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Address for node-to-node traffic. [default: 0.0.0.0:6335]
    #[arg(long, env = "VECRAFT_CLUSTER_ADDR")]
    pub cluster_addr: Option<SocketAddr>,
    /// The other cluster members, comma-separated `id=host:port` (their cluster addresses);
    /// every member lists the same set. None: a one-node cluster.
    /// Host names are resolved on every (re)connect, so peers may start later or move.
    #[arg(long, env = "VECRAFT_PEERS", value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// This node's id; by default generated once and kept in `<data-dir>/node_id`.
    #[arg(long, env = "VECRAFT_NODE_ID")]
    pub node_id: Option<u64>,
    /// Shared secret nodes use to authenticate each other (required with peers).
    #[arg(long, env = "VECRAFT_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Read-write API keys, comma-separated; with any key set, requests need one.
    #[arg(long, env = "VECRAFT_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Option<Vec<String>>,
    /// Read-only API keys, comma-separated: allowed on read routes only.
    #[arg(long, env = "VECRAFT_READ_ONLY_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub read_only_api_keys: Option<Vec<String>>,
    /// Server-side limit on a request's duration, seconds (snapshot transfers exempt). [default: 60]
    #[arg(long, env = "VECRAFT_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Largest JSON request body, bytes. [default: 67108864 (64 MiB)]
    #[arg(long, env = "VECRAFT_BODY_LIMIT_BYTES")]
    pub body_limit_bytes: Option<usize>,
    /// Writes that may wait for the apply worker; beyond it writes get 503. [default: 1024]
    #[arg(long, env = "VECRAFT_WRITE_QUEUE_CAPACITY")]
    pub write_queue_capacity: Option<usize>,
    /// Requests served at once; beyond it requests get 503. [default: 1024]
    #[arg(long, env = "VECRAFT_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<usize>,
    /// Points a node accepts for writing and has not yet answered (replicated node); beyond it
    /// writes get 503 with Retry-After, so accepted writes finish in time. [default: 50000]
    #[arg(long, env = "VECRAFT_MAX_POINTS_IN_FLIGHT")]
    pub max_points_in_flight: Option<u64>,
    /// Percent of a write's deadline (Qdrant's `timeout`, else the node's 5 s) its expected wait
    /// behind the points in flight may take, at the rate this node answers points; beyond it the
    /// write gets 503 with Retry-After at once instead of timing out in doubt. 0 turns this rule
    /// off (the static bound alone). [default: 50]
    #[arg(long, env = "VECRAFT_ADMISSION_WAIT_SHARE_PCT")]
    pub admission_wait_share_pct: Option<u64>,
    /// Bytes of applied commands a node keeps so a change-stream subscriber can resume from its
    /// cursor (`Last-Event-ID`); older changes become a `gap` event. 0 keeps none.
    /// [default: 67108864]
    #[arg(long, env = "VECRAFT_CHANGE_HISTORY_BYTES")]
    pub change_history_bytes: Option<usize>,
    /// Vectors a shard replica may hold stored but not yet linked into its HNSW graph, in KB of
    /// vector data (Qdrant's `indexing_threshold`): applies store points at once and a background
    /// indexer at the lowest CPU priority (nice 19) links them, while searches scan that tail exactly. 0 links at apply.
    /// [default: 20000]
    #[arg(long, env = "VECRAFT_INDEXING_THRESHOLD_KB")]
    pub indexing_threshold_kb: Option<u64>,
    /// Take scheduled snapshots of every collection this often, seconds; 0 disables. [default: 0]
    #[arg(long, env = "VECRAFT_SNAPSHOT_INTERVAL_SECS")]
    pub snapshot_interval_secs: Option<u64>,
    /// Incremental snapshots between two full ones. [default: 5]
    #[arg(long, env = "VECRAFT_SNAPSHOT_MAX_INCREMENTALS")]
    pub snapshot_max_incrementals: Option<u32>,
    /// Scheduled snapshots kept per collection (and the bases they need); 0 keeps all. [default: 3]
    #[arg(long, env = "VECRAFT_SNAPSHOT_RETAIN")]
    pub snapshot_retain: Option<usize>,
    /// What holds the data: `node` (the replicated node state machine: WAL, Raft groups,
    /// sharded collections; a one-node cluster without peers) or `local` (one unreplicated
    /// engine with snapshots and payload field indexes, which the node does not offer yet).
    /// [default: node]
    #[arg(long, env = "VECRAFT_ENGINE")]
    pub engine: Option<String>,
    /// Node engine: a shard group's log is compacted (its engine snapshotted to
    /// `<data-dir>/snapshots`) once it holds this many applied entries. [default: 10000]
    #[arg(long, env = "VECRAFT_RAFT_SNAPSHOT_ENTRIES")]
    pub raft_snapshot_entries: Option<u64>,
    /// Node engine: entries kept behind a shard snapshot for slow followers. [default: 1000]
    #[arg(long, env = "VECRAFT_RAFT_SNAPSHOT_KEEP_ENTRIES")]
    pub raft_snapshot_keep_entries: Option<u64>,
    /// Node engine: Raft heartbeat interval, ms (at most half the election timeout). [default: 50]
    #[arg(long, env = "VECRAFT_RAFT_HEARTBEAT_MS")]
    pub raft_heartbeat_ms: Option<u64>,
    /// Node engine: Raft election timeout, ms; each timeout is drawn from [t, 2t), and a leader
    /// that hears from no quorum for t steps down. Longer rides out longer stalls of a loaded
    /// machine, at the cost of slower failover. [default: 300]
    #[arg(long, env = "VECRAFT_RAFT_ELECTION_TIMEOUT_MS")]
    pub raft_election_timeout_ms: Option<u64>,
    /// Node engine: WAL segment size, bytes (the unit of deletion). [default: 16777216 (16 MiB)]
    #[arg(long, env = "VECRAFT_WAL_SEGMENT_BYTES")]
    pub wal_segment_bytes: Option<u64>,
    /// Node engine: after this many WAL bytes, every group's state is rewritten into a
    /// checkpoint and older segments are deleted; 0 never deletes. [default: 67108864 (64 MiB)]
    #[arg(long, env = "VECRAFT_WAL_CHECKPOINT_BYTES")]
    pub wal_checkpoint_bytes: Option<u64>,
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// REST API address.
    pub http_addr: SocketAddr,
    /// Node-to-node address.
    pub cluster_addr: SocketAddr,
    /// Seed peers.
    pub peers: Vec<String>,
    /// Node id, if given (else see [`Config::resolve_node_id`]).
    pub node_id: Option<u64>,
    /// Cluster secret.
    pub cluster_secret: Option<String>,
    /// Read-write API keys.
    pub api_keys: Vec<String>,
    /// Read-only API keys.
    pub read_only_api_keys: Vec<String>,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Body limit in bytes.
    pub body_limit_bytes: usize,
    /// Write queue capacity.
    pub write_queue_capacity: usize,
    /// Concurrent request limit.
    pub max_concurrent_requests: usize,
    /// Points accepted and not yet answered (replicated node).
    pub max_points_in_flight: u64,
    /// Percent of a write's deadline its expected wait may take (0: the static bound alone).
    pub admission_wait_share_pct: u64,
    /// Bytes of applied commands kept for resuming change-stream subscribers (0: none).
    pub change_history_bytes: usize,
    /// Unindexed vector data a shard replica may hold, KB (0: index at apply).
    pub indexing_threshold_kb: u64,
    /// Snapshot interval (`None`: no scheduled snapshots).
    pub snapshot_interval: Option<Duration>,
    /// Incrementals between full snapshots.
    pub snapshot_max_incrementals: u32,
    /// Snapshots kept per collection.
    pub snapshot_retain: usize,
    /// What holds the data.
    pub engine: Engine,
    /// Applied entries that trigger a shard group's log compaction.
    pub raft_snapshot_entries: u64,
    /// Entries kept behind a shard snapshot.
    pub raft_snapshot_keep_entries: u64,
    /// Raft heartbeat interval.
    pub raft_heartbeat: Duration,
    /// Raft election timeout (the lower end of its range).
    pub raft_election_timeout: Duration,
    /// WAL segment size in bytes.
    pub wal_segment_bytes: u64,
    /// WAL bytes between checkpoints (0: never).
    pub wal_checkpoint_bytes: u64,
}

/// What holds a server's data (see `ServeArgs::engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The replicated node.
    Node,
    /// One local engine.
    Local,
}

/// A cluster member as `id=host:port` (`peers` setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub id: u64,
    /// Its cluster address as written: a host name is resolved by the transport on every
    /// (re)connect, not here, so a peer whose name does not resolve yet (a container that has
    /// not started) does not stop this node from starting.
    pub addr: PeerAddr,
}

/// Parses the `peers` setting: each `id=host:port`, ids distinct, nonzero and not `me`.
/// Only the syntax is checked; names are resolved when dialed.
pub fn parse_peers(peers: &[String], me: u64) -> Result<Vec<Peer>, ConfigError> {
    let bad = |message: String| ConfigError::Invalid { key: "peers", message };
    let mut out: Vec<Peer> = Vec::new();
    for p in peers.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let (id, addr) = p.split_once('=').ok_or_else(|| bad(format!("`{p}` is not id=host:port")))?;
        let id: u64 = id.trim().parse().map_err(|_| bad(format!("`{p}`: node id is not a number")))?;
        if id == 0 || id == me {
            return Err(bad(format!("`{p}`: node id must be nonzero and not this node's ({me})")));
        }
        if out.iter().any(|q| q.id == id) {
            return Err(bad(format!("node id {id} appears twice")));
        }
        let addr = PeerAddr::parse(addr).map_err(|e| bad(format!("node {id}: {e}")))?;
        out.push(Peer { id, addr });
    }
    Ok(out)
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(
    key: &'static str,
    value: T,
) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid { key, message: format!("must be positive, got {value}") })
    }
}

impl Config {
    /// Parses a TOML config text (`path` only names it in errors).
    pub fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })
    }

    /// Layers file, env (inside `args`) and flags, then validates.
    pub fn load(args: &ServeArgs) -> Result<Config, ConfigError> {
        let file = match &args.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.clone(), source })?;
                Self::parse_file(&text, path)?
            }
        };
        Self::merge(args.clone(), file)
    }

    /// `args` (flags and env) over `file` over defaults.
    pub fn merge(args: ServeArgs, file: FileConfig) -> Result<Config, ConfigError> {
        let interval = args.snapshot_interval_secs.or(file.snapshot_interval_secs).unwrap_or(0);
        let api_keys = args.api_keys.or(file.api_keys).unwrap_or_default();
        let read_only = args.read_only_api_keys.or(file.read_only_api_keys).unwrap_or_default();
        if api_keys.iter().chain(&read_only).any(|k| k.trim().is_empty()) {
            return Err(ConfigError::Invalid { key: "api_keys", message: "empty key".into() });
        }
        if read_only.iter().any(|k| api_keys.contains(k)) {
            return Err(ConfigError::Invalid {
                key: "read_only_api_keys",
                message: "a key cannot be both read-write and read-only".into(),
            });
        }
        let heartbeat_ms =
            positive("raft_heartbeat_ms", args.raft_heartbeat_ms.or(file.raft_heartbeat_ms).unwrap_or(50))?;
        let election_ms = args.raft_election_timeout_ms.or(file.raft_election_timeout_ms).unwrap_or(300);
        if election_ms < heartbeat_ms.saturating_mul(2) {
            return Err(ConfigError::Invalid {
                key: "raft_election_timeout_ms",
                message: format!("must be at least twice raft_heartbeat_ms ({heartbeat_ms}), got {election_ms}"),
            });
        }
        let wait_share_pct =
            args.admission_wait_share_pct.or(file.admission_wait_share_pct).unwrap_or(50);
        if wait_share_pct > 100 {
            return Err(ConfigError::Invalid {
                key: "admission_wait_share_pct",
                message: format!("a percent of the deadline, 0 to 100, got {wait_share_pct}"),
            });
        }
        Ok(Config {
            data_dir: args.data_dir.or(file.data_dir).unwrap_or_else(|| "vecraft-data".into()),
            http_addr: args
                .http_addr
                .or(file.http_addr)
                .unwrap_or_else(|| "0.0.0.0:6333".parse().expect("valid literal")),
            cluster_addr: args
                .cluster_addr
                .or(file.cluster_addr)
                .unwrap_or_else(|| "0.0.0.0:6335".parse().expect("valid literal")),
            peers: args.peers.or(file.peers).unwrap_or_default(),
            node_id: args.node_id.or(file.node_id),
            cluster_secret: args.cluster_secret.or(file.cluster_secret),
            api_keys,
            read_only_api_keys: read_only,
            request_timeout: Duration::from_secs(positive(
                "request_timeout_secs",
                args.request_timeout_secs.or(file.request_timeout_secs).unwrap_or(60),
            )?),
            body_limit_bytes: positive(
                "body_limit_bytes",
                args.body_limit_bytes.or(file.body_limit_bytes).unwrap_or(64 << 20),
            )?,
            write_queue_capacity: positive(
                "write_queue_capacity",
                args.write_queue_capacity.or(file.write_queue_capacity).unwrap_or(1024),
            )?,
            max_concurrent_requests: positive(
                "max_concurrent_requests",
                args.max_concurrent_requests.or(file.max_concurrent_requests).unwrap_or(1024),
            )?,
            max_points_in_flight: positive(
                "max_points_in_flight",
                args.max_points_in_flight.or(file.max_points_in_flight).unwrap_or(50_000),
            )?,
            admission_wait_share_pct: wait_share_pct,
            change_history_bytes: args
                .change_history_bytes
                .or(file.change_history_bytes)
                .unwrap_or(crate::node_loop::change_history::DEFAULT_HISTORY_BYTES),
            indexing_threshold_kb: args.indexing_threshold_kb.or(file.indexing_threshold_kb).unwrap_or(20_000),
            snapshot_interval: (interval > 0).then(|| Duration::from_secs(interval)),
            snapshot_max_incrementals: args
                .snapshot_max_incrementals
                .or(file.snapshot_max_incrementals)
                .unwrap_or(5),
            snapshot_retain: args.snapshot_retain.or(file.snapshot_retain).unwrap_or(3),
            engine: match args.engine.or(file.engine).as_deref() {
                None | Some("node") => Engine::Node,
                Some("local") => Engine::Local,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        key: "engine",
                        message: format!("`{other}` is not one of node, local"),
                    });
                }
            },
            raft_snapshot_entries: positive(
                "raft_snapshot_entries",
                args.raft_snapshot_entries.or(file.raft_snapshot_entries).unwrap_or(10_000),
            )?,
            raft_snapshot_keep_entries: args
                .raft_snapshot_keep_entries
                .or(file.raft_snapshot_keep_entries)
                .unwrap_or(1_000),
            raft_heartbeat: Duration::from_millis(heartbeat_ms),
            raft_election_timeout: Duration::from_millis(election_ms),
            wal_segment_bytes: positive(
                "wal_segment_bytes",
                args.wal_segment_bytes.or(file.wal_segment_bytes).unwrap_or(16 << 20),
            )?,
            wal_checkpoint_bytes: args
                .wal_checkpoint_bytes
                .or(file.wal_checkpoint_bytes)
                .unwrap_or(64 << 20),
        })
    }

    /// The configured node id, or the one kept in `<data_dir>/node_id`, or a new one (random,
    /// nonzero) written there, so a node keeps its identity across restarts.
    pub fn resolve_node_id(&self) -> Result<u64, ConfigError> {
        if let Some(id) = self.node_id {
            return Ok(id);
        }
        let path = self.data_dir.join("node_id");
        let err = |message: String| ConfigError::NodeId { path: path.clone(), message };
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|e| err(format!("not a number: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.data_dir).map_err(|e| err(e.to_string()))?;
                let seed = format!(
                    "{:?}-{}-{:?}",
                    std::time::SystemTime::now(),
                    std::process::id(),
                    self.data_dir
                );
                let hash = blake3::hash(seed.as_bytes());
                let id = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes")) | 1;
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, id.to_string()).map_err(|e| err(e.to_string()))?;
                std::fs::rename(&tmp, &path).map_err(|e| err(e.to_string()))?;
                Ok(id)
            }
            Err(e) => Err(err(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vecraft.toml");
        std::fs::write(
            &path,
            "http_addr = \"127.0.0.1:7000\"\nbody_limit_bytes = 1000\nsnapshot_retain = 9\n\
             api_keys = [\"file-key\"]\n",
        )
        .unwrap();
        let file = Config::parse_file(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        let config = Config::merge(ServeArgs::default(), file).unwrap();
        assert_eq!(config.http_addr, "127.0.0.1:7000".parse().unwrap());
        assert_eq!((config.body_limit_bytes, config.snapshot_retain), (1000, 9));
        assert_eq!(config.write_queue_capacity, 1024, "default");

        // The only test touching VECRAFT_* variables, so no other test races with it.
        unsafe { std::env::set_var("VECRAFT_BODY_LIMIT_BYTES", "2000") };
        unsafe { std::env::set_var("VECRAFT_SNAPSHOT_RETAIN", "4") };
        let cli = Cli::try_parse_from([
            "x",
            "--config",
            path.to_str().unwrap(),
            "--snapshot-retain",
            "5",
            "--api-keys",
            "a,b",
        ])
        .unwrap();
        unsafe { std::env::remove_var("VECRAFT_BODY_LIMIT_BYTES") };
        unsafe { std::env::remove_var("VECRAFT_SNAPSHOT_RETAIN") };
        let config = Config::load(&cli.serve).unwrap();
        assert_eq!(config.body_limit_bytes, 2000, "env over file");
        assert_eq!(config.snapshot_retain, 5, "flag over env");
        assert_eq!(config.http_addr, "127.0.0.1:7000".parse().unwrap(), "file over default");
        assert_eq!(config.api_keys, vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let p = Path::new("c.toml");
        let e = Config::parse_file("htp_addr = \"1.2.3.4:5\"\n", p).unwrap_err().to_string();
        assert!(e.contains("htp_addr") && e.contains("c.toml"), "{e}");
        let e = Config::parse_file("body_limit_bytes = \"big\"\n", p).unwrap_err().to_string();
        assert!(e.contains("body_limit_bytes"), "{e}");
        let e = Config::parse_file("http_addr = \"nowhere\"\n", p).unwrap_err().to_string();
        assert!(e.contains("http_addr"), "{e}");
        let file = Config::parse_file("write_queue_capacity = 0\n", p).unwrap();
        let e = Config::merge(ServeArgs::default(), file).unwrap_err().to_string();
        assert!(e.contains("write_queue_capacity"), "{e}");
        let file =
            Config::parse_file("api_keys = [\"k\"]\nread_only_api_keys = [\"k\"]\n", p).unwrap();
        assert!(Config::merge(ServeArgs::default(), file).is_err());
        // A percent: 100 is the bound, 101 names the key; 0 turns the deadline rule off.
        let share = |text: &str| Config::merge(ServeArgs::default(), Config::parse_file(text, p).unwrap());
        assert_eq!(share("").unwrap().admission_wait_share_pct, 50, "default");
        assert_eq!(share("admission_wait_share_pct = 100\n").unwrap().admission_wait_share_pct, 100);
        assert_eq!(share("admission_wait_share_pct = 0\n").unwrap().admission_wait_share_pct, 0);
        let e = share("admission_wait_share_pct = 101\n").unwrap_err().to_string();
        assert!(e.contains("admission_wait_share_pct"), "{e}");
    }

    #[test]
    fn raft_timing_keys_have_defaults_and_the_election_timeout_must_be_twice_the_heartbeat() {
        let p = Path::new("c.toml");
        let c = Config::merge(ServeArgs::default(), Config::parse_file("", p).unwrap()).unwrap();
        assert_eq!((c.raft_heartbeat, c.raft_election_timeout), (Duration::from_millis(50), Duration::from_millis(300)));
        let file = Config::parse_file("raft_heartbeat_ms = 100\nraft_election_timeout_ms = 200\n", p).unwrap();
        let c = Config::merge(ServeArgs::default(), file).unwrap();
        assert_eq!((c.raft_heartbeat, c.raft_election_timeout), (Duration::from_millis(100), Duration::from_millis(200)));
        let file = Config::parse_file("raft_heartbeat_ms = 100\nraft_election_timeout_ms = 199\n", p).unwrap();
        let e = Config::merge(ServeArgs::default(), file).unwrap_err().to_string();
        assert!(e.contains("raft_election_timeout_ms"), "{e}");
        let file = Config::parse_file("raft_heartbeat_ms = 0\n", p).unwrap();
        let e = Config::merge(ServeArgs::default(), file).unwrap_err().to_string();
        assert!(e.contains("raft_heartbeat_ms"), "{e}");
    }

    #[test]
    fn peers_parse_and_bad_ones_are_named() {
        let ok = parse_peers(&["2=127.0.0.1:7001".into(), " 3=127.0.0.1:7002 ".into()], 1).unwrap();
        assert_eq!(ok.iter().map(|p| p.id).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(ok[1].addr, "127.0.0.1:7002".parse().unwrap());
        // Names are kept as written, even ones that do not resolve now (resolved when dialed).
        let named = parse_peers(&["2=vecraft-1.vecraft:7333".into(), "3=later.invalid:1".into()], 1)
            .unwrap();
        assert_eq!(named[0].addr.to_string(), "vecraft-1.vecraft:7333");
        assert_eq!(named[1].addr.host(), "later.invalid");
        for bad in ["127.0.0.1:7001", "x=127.0.0.1:1", "0=127.0.0.1:1", "1=127.0.0.1:1", "2=nowhere", "2=h:0", "2=a b:1"] {
            let e = parse_peers(&[bad.into()], 1).unwrap_err().to_string();
            assert!(e.contains("peers"), "{bad}: {e}");
        }
        assert!(parse_peers(&["2=127.0.0.1:1".into(), "2=127.0.0.1:2".into()], 1).is_err());
        let file = Config::parse_file("engine = \"local\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(Config::merge(ServeArgs::default(), file).unwrap().engine, Engine::Local);
        let file = Config::parse_file("engine = \"raft\"\n", Path::new("c.toml")).unwrap();
        let e = Config::merge(ServeArgs::default(), file).unwrap_err().to_string();
        assert!(e.contains("engine"), "{e}");
    }

    #[test]
    fn node_id_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs { data_dir: Some(dir.path().into()), ..ServeArgs::default() };
        let config = Config::merge(args, FileConfig::default()).unwrap();
        let id = config.resolve_node_id().unwrap();
        assert_ne!(id, 0);
        assert_eq!(config.resolve_node_id().unwrap(), id);
        let fixed = Config { node_id: Some(7), ..config };
        assert_eq!(fixed.resolve_node_id().unwrap(), 7);
    }
}
