//! `vecraft snapshot ...`: snapshot management as a client of a running node, with progress bars
//! on the transfers (download for verify, upload for restore from a file).

use super::SnapshotCommand;
use super::client::{Answer, ClientError, HttpClient, error_message};
use hyper::{Method, StatusCode};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::path::PathBuf;
use thiserror::Error;
use vecraft_core::vector::snapshot::verify_snapshot;

/// Why a snapshot command failed.
#[derive(Debug, Error)]
pub enum SnapshotCliError {
    /// Transport failure.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The node refused.
    #[error("server answered {status}: {message}")]
    Server {
        /// HTTP status.
        status: StatusCode,
        /// Its error message.
        message: String,
    },
    /// The downloaded snapshot is damaged or differs from the listing.
    #[error("verification failed: {0}")]
    Verify(String),
}

fn check(answer: Answer) -> Result<Value, SnapshotCliError> {
    if answer.status.is_success() {
        Ok(answer.json()?["result"].take())
    } else {
        Err(SnapshotCliError::Server { status: answer.status, message: error_message(&answer) })
    }
}

fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn bytes_bar(total: Option<u64>, what: &str) -> ProgressBar {
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// A spinner for server-side work whose progress the API does not report.
fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn describe(s: &Value) -> String {
    format!(
        "{}  {} bytes  {}  blake3 {}",
        s["name"].as_str().unwrap_or("?"),
        s["size"],
        s["creation_time"].as_str().unwrap_or("?"),
        s["checksum"].as_str().unwrap_or("?")
    )
}

/// Runs one snapshot command; returns what to print.
pub async fn run(command: SnapshotCommand) -> Result<String, SnapshotCliError> {
    match command {
        SnapshotCommand::Create { collection, remote } => {
            let client = HttpClient::new(&remote.url, remote.api_key)?;
            let path = format!("/collections/{}/snapshots", encode(&collection));
            let spinner = spinner(&format!("snapshotting `{collection}`"));
            let answer = client.call(Method::POST, &path, None).await;
            spinner.finish_and_clear();
            let result = check(answer?)?;
            Ok(format!("created {}", describe(&result)))
        }
        SnapshotCommand::List { collection, remote } => {
            let client = HttpClient::new(&remote.url, remote.api_key)?;
            let path = format!("/collections/{}/snapshots", encode(&collection));
            let result = check(client.call(Method::GET, &path, None).await?)?;
            let lines: Vec<String> =
                result.as_array().map(|a| a.iter().map(describe).collect()).unwrap_or_default();
            Ok(if lines.is_empty() { "no snapshots".into() } else { lines.join("\n") })
        }
        SnapshotCommand::Delete { collection, name, remote } => {
            let client = HttpClient::new(&remote.url, remote.api_key)?;
            let path = format!("/collections/{}/snapshots/{}", encode(&collection), encode(&name));
            check(client.call(Method::DELETE, &path, None).await?)?;
            Ok(format!("deleted {name}"))
        }
        SnapshotCommand::Verify { collection, name, output, remote } => {
            let client = HttpClient::new(&remote.url, remote.api_key)?;
            verify(&client, &collection, &name, output).await
        }
        SnapshotCommand::Restore { collection, name, file, remote } => {
            let client = HttpClient::new(&remote.url, remote.api_key)?;
            let base = format!("/collections/{}/snapshots", encode(&collection));
            if let Some(file) = file {
                let size = std::fs::metadata(&file).map_err(ClientError::Io)?.len();
                let bar = bytes_bar(Some(size), "uploading");
                let progress = bar.clone();
                let answer = client
                    .upload(&format!("{base}/upload"), &file, move |sent| {
                        progress.set_position(sent)
                    })
                    .await?;
                bar.finish_and_clear();
                check(answer)?;
                Ok(format!("restored `{collection}` from {}", file.display()))
            } else {
                let name = name.unwrap_or_default();
                let body = json!({"snapshot": name});
                let spinner = spinner(&format!("restoring `{collection}` from {name}"));
                let answer =
                    client.call(Method::PUT, &format!("{base}/recover"), Some(&body)).await;
                spinner.finish_and_clear();
                check(answer?)?;
                Ok(format!("restored `{collection}` from snapshot {name}"))
            }
        }
    }
}

async fn verify(
    client: &HttpClient,
    collection: &str,
    name: &str,
    output: Option<PathBuf>,
) -> Result<String, SnapshotCliError> {
    let base = format!("/collections/{}/snapshots", encode(collection));
    let listing = check(client.call(Method::GET, &base, None).await?)?;
    let expected = listing
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .and_then(|s| s["checksum"].as_str().map(str::to_string))
        .ok_or_else(|| SnapshotCliError::Verify(format!("no snapshot `{name}` on the node")))?;
    let keep = output.is_some();
    let dest = output.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("vecraft-verify-{}-{}.snap", std::process::id(), name))
    });
    let bar = bytes_bar(None, "downloading");
    let mut set_total = true;
    let downloaded = client
        .download(&format!("{base}/{}", encode(name)), &dest, &mut |done, total| {
            if set_total && let Some(t) = total {
                bar.set_length(t);
                set_total = false;
            }
            bar.set_position(done);
        })
        .await?;
    bar.finish_and_clear();
    if let Err(answer) = downloaded {
        return Err(SnapshotCliError::Server {
            status: answer.status,
            message: error_message(&answer),
        });
    }
    let path = dest.clone();
    let summary = tokio::task::spawn_blocking(move || {
        std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| verify_snapshot(std::io::BufReader::new(f)).map_err(|e| e.to_string()))
    })
    .await
    .map_err(|e| SnapshotCliError::Verify(e.to_string()))?;
    if !keep {
        let _ = std::fs::remove_file(&dest);
    }
    let summary = summary.map_err(SnapshotCliError::Verify)?;
    let actual = blake3::Hash::from_bytes(summary.file_hash).to_hex().to_string();
    if actual != expected {
        return Err(SnapshotCliError::Verify(format!(
            "file hash {actual} differs from the node's listing {expected}"
        )));
    }
    Ok(format!(
        "ok: {name}: collection `{}`, seq {}, {} points, {} chunks, {} bytes, blake3 {actual}{}",
        summary.header.collection,
        summary.header.seq,
        summary.header.point_count,
        summary.chunks,
        summary.bytes,
        if keep { format!(", saved to {}", dest.display()) } else { String::new() }
    ))
}
