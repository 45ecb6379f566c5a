//! The `vecraft` command line: `serve` runs a node, `snapshot ...` talks to a running node over
//! its REST API. Parsing lives here so the binary stays a thin `main` and the library tests can
//! parse command lines too.

pub mod client;
pub mod cluster;
pub mod serve;
pub mod serve_node;
pub mod snapshot;

use crate::config::ServeArgs;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// vecraft: a distributed vector database with a Qdrant-compatible REST API.
#[derive(Debug, Parser)]
#[command(name = "vecraft", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node: a member of a cluster (with --peers) or a one-node cluster.
    ///
    /// Settings come from a TOML file (--config), then VECRAFT_* environment variables, then
    /// these flags, each overriding the one before.
    Serve(ServeArgs),
    /// Manage collection snapshots on a running node.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Run a local cluster of real processes on loopback.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

/// `vecraft cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start N nodes (HTTP on 6333, 6334, ...), wait until ready, print how to use them, stop
    /// them on Ctrl-C. Started again on the same --dir, the cluster resumes from its data.
    Up(cluster::UpArgs),
}

/// How to reach a node.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// The node's REST address.
    #[arg(long, env = "VECRAFT_URL", default_value = "http://127.0.0.1:6333")]
    pub url: String,
    /// API key, if the node requires one.
    #[arg(long, env = "VECRAFT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// `vecraft snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a full snapshot of a collection now.
    Create {
        /// Collection name.
        collection: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a collection's snapshots, oldest first.
    List {
        /// Collection name.
        collection: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Download a snapshot and check every checksum in it against the server's listing.
    Verify {
        /// Collection name.
        collection: String,
        /// Snapshot name (as `list` shows it).
        name: String,
        /// Keep the downloaded file here (default: a temporary file, removed afterwards).
        #[arg(long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Replace a collection's contents with a snapshot: one of the node's (by name) or a local
    /// file uploaded to it (--file).
    Restore {
        /// Collection name.
        collection: String,
        /// Snapshot name on the node.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        name: Option<String>,
        /// A snapshot file on this machine to upload.
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a snapshot.
    Delete {
        /// Collection name.
        collection: String,
        /// Snapshot name.
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_parses() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["vecraft", "snapshot", "restore", "docs", "--file", "x.snap"])
                .unwrap();
        assert!(matches!(
            cli.command,
            Command::Snapshot(SnapshotCommand::Restore { name: None, file: Some(_), .. })
        ));
        assert!(Cli::try_parse_from(["vecraft", "snapshot", "restore", "docs"]).is_err());
        let cli = Cli::try_parse_from(["vecraft", "cluster", "up", "--nodes", "5", "--dir", "d"]).unwrap();
        let Command::Cluster(ClusterCommand::Up(up)) = cli.command else { panic!("cluster up expected") };
        assert_eq!((up.nodes, up.http_port, up.cluster_port), (5, 6333, 7333));
        let cli = Cli::try_parse_from(["vecraft", "serve", "--http-addr", "127.0.0.1:9"]).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve expected") };
        assert_eq!(args.http_addr, Some("127.0.0.1:9".parse().unwrap()));
    }
}
