//! The node's single write-ahead log: one ordered, durable stream of opaque records from all
//! groups (architecture §2, "one durable stream per node").
//!
//! - [`format`]: segment files and checksummed record framing (crc32c seeded per segment).
//! - [`scan`]: pure scan of one segment's bytes (fuzzed).
//! - [`recovery`]: torn tail versus corruption across all segments, the [`Recovery`] report.
//! - [`writer`]: the synchronous core, [`Wal`]: group commit, segment roll, prefix deletion.
//! - [`task`]: the async front, [`WalHandle`]: a bounded queue into a writer thread that
//!   acknowledges the highest durable seq through a `watch` channel.
//!
//! The WAL moves bytes; it makes no protocol decision. Records are opaque payloads (the node
//! encodes and tags them with their owner group); the WAL numbers them with consecutive seqs so
//! that `Persisted { seq }` acknowledges a prefix.

pub mod format;
pub mod recovery;
pub mod scan;
pub mod task;
pub mod writer;

pub use recovery::{Corruption, CorruptionKind, Record, Recovery, TornTail};
pub use task::{Durability, WalHandle, spawn_writer};
pub use writer::Wal;

use std::path::Path;
use thiserror::Error;

/// Tunables of the WAL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Roll to a new segment when a batch would grow the active one beyond this many bytes.
    pub segment_size: u64,
    /// Reserve `segment_size` bytes when creating a segment (`fallocate`, else `set_len`).
    pub preallocate: bool,
    /// Largest accepted payload; bigger appends are refused before anything is written.
    pub max_record_len: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            segment_size: 64 << 20,
            preallocate: true,
            max_record_len: 16 << 20,
        }
    }
}

/// Why a WAL operation failed.
#[derive(Debug, Error)]
pub enum WalError {
    /// An I/O call failed; `context` says which.
    #[error("wal i/o error ({context}): {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A payload exceeds `max_record_len`.
    #[error("wal record of {len} bytes exceeds the limit of {max}")]
    RecordTooLarge {
        /// Payload length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// An earlier write or fsync failed; the WAL accepts nothing more until reopened.
    #[error("wal failed earlier and refuses further writes; reopen to recover")]
    Failed,
    /// The writer thread is gone (it failed or was shut down).
    #[error("wal writer is closed: {0}")]
    Closed(String),
    /// The async front and the writer disagree on the next seq (a bug, reported rather than
    /// written out of order).
    #[error("wal seq mismatch: handle sent {sent}, writer expected {expected}")]
    SeqMismatch {
        /// Seq the handle assigned.
        sent: u64,
        /// Seq the writer would give.
        expected: u64,
    },
}

/// Maps an `io::Error` into [`WalError::Io`] with a context.
pub(crate) fn io_err(context: &'static str) -> impl Fn(std::io::Error) -> WalError {
    move |source| WalError::Io { context, source }
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), WalError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync wal directory"))
}
