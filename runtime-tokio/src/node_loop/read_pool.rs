//! The read pool: threads that answer the node's shard queries (searches, gets, counts,
//! scrolls) concurrently, each under its engine's read lock, so searches use every core and
//! never wait behind another shard's applies (issue: "searches run concurrently on all cores
//! against a consistent applied state").
//!
//! Why this is consistent: the node emits a read only once the replica's applied index, as the
//! apply lane reported it, is fresh enough; a lane reports an index only after releasing the
//! write lock of that command, so the read sees at least that state (possibly later committed
//! commands, which is allowed) and never half a command.

use super::apply::ApplyDone;
use super::shard_engines::ShardEngines;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use tokio::sync::mpsc;
use vecraft_core::node::shard::{ShardQuery, answer};
use vecraft_core::raft::GroupId;

/// One query for the pool.
pub struct ReadJob {
    /// The node's read id.
    pub read: u64,
    /// The shard group.
    pub group: GroupId,
    /// The query.
    pub query: ShardQuery,
}

/// A started pool: where to send reads, its threads, and the count of answered reads.
pub type ReadPool = (std_mpsc::SyncSender<ReadJob>, Vec<std::thread::JoinHandle<()>>, Arc<AtomicU64>);

/// Starts `threads` readers on a bounded queue of `capacity`; they end when the sender is
/// dropped.
pub fn spawn_read_pool(
    threads: usize,
    capacity: usize,
    engines: ShardEngines,
    done: mpsc::UnboundedSender<ApplyDone>,
) -> std::io::Result<ReadPool> {
    let (tx, rx) = std_mpsc::sync_channel::<ReadJob>(capacity.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let answered = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let (rx, engines, done, answered) = (rx.clone(), engines.clone(), done.clone(), answered.clone());
        let h = std::thread::Builder::new().name(format!("shard-read-{i}")).spawn(move || {
            loop {
                // Holding the receiver's lock only while waiting for the next job.
                let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                    Ok(job) => job,
                    Err(_) => return, // the dispatcher is gone
                };
                let result = match engines.get(job.group) {
                    Some(engine) => answer(&engines.read_for_query(&engine), &job.query),
                    None => Err(format!("no engine for group {} on this node", job.group)),
                };
                answered.fetch_add(1, Ordering::Relaxed);
                if done.send(ApplyDone::Read { read: job.read, result }).is_err() {
                    return; // the node loop is gone
                }
            }
        })?;
        handles.push(h);
    }
    Ok((tx, handles, answered))
}
