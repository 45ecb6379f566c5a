//! The `vecraft` binary: parses the command line and hands over to the library
//! (`vecraft_runtime::cli`). `anyhow` lives only here, for the top-level error report.

use anyhow::Context;
use clap::Parser;
use vecraft_runtime::cli::{Cli, ClusterCommand, Command, cluster, serve, snapshot};
use vecraft_runtime::config::Config;

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VECRAFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hnsw_rs=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The error chain on one line per cause, without a backtrace: these are user-facing.
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args).context("invalid configuration")?;
            runtime
                .block_on(serve::run(
                    config,
                    |addr| println!("vecraft listening on http://{addr}"),
                    serve::shutdown_signal(),
                ))
                .context("server failed")?;
        }
        Command::Cluster(ClusterCommand::Up(args)) => {
            runtime.block_on(cluster::up(args, serve::shutdown_signal()))?;
        }
        Command::Snapshot(command) => {
            let output = runtime.block_on(snapshot::run(command))?;
            println!("{output}");
        }
    }
    Ok(())
}
