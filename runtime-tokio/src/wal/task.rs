//! The async front of the WAL: a bounded queue into a dedicated writer thread.
//!
//! Why a thread and not a tokio task: every batch ends in `fdatasync`, which blocks for
//! milliseconds; a dedicated OS thread keeps that off the async workers without the churn of a
//! `spawn_blocking` per batch. The thread takes the first queued command, then everything else
//! already queued (up to `max_batch`), and writes it all with one write and one fsync: while one
//! fsync runs, the next batch accumulates, which is group commit with no timer to tune.
//!
//! Back-pressure: the queue is a bounded `tokio::sync::mpsc`; `append` waits for room. Seqs are
//! assigned by the handle as records are queued (the queue is FIFO and the writer never skips a
//! record), so the caller knows each record's seq at once and learns durability from a `watch`.

use super::{Wal, WalError};
use tokio::sync::{mpsc, oneshot, watch};

/// Durability progress published by the writer thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durability {
    /// Every record with a seq up to and including this one is durable.
    pub seq: u64,
    /// Set when the writer stopped on an error; nothing more will become durable.
    pub failed: Option<String>,
    /// Batches written so far (one fsync each).
    pub batches: u64,
    /// Records written so far.
    pub records: u64,
}

enum Command {
    Append {
        seq: u64,
        payload: Vec<u8>,
    },
    TruncatePrefix {
        seq: u64,
        done: oneshot::Sender<Result<usize, String>>,
    },
}

/// Handle used by the node loop to append records. Single producer: seqs are assigned here.
#[derive(Debug)]
pub struct WalHandle {
    tx: mpsc::Sender<Command>,
    next_seq: u64,
    max_record_len: usize,
    durable: watch::Receiver<Durability>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Append { seq, payload } => {
                write!(f, "Append(seq {seq}, {} bytes)", payload.len())
            }
            Command::TruncatePrefix { seq, .. } => write!(f, "TruncatePrefix({seq})"),
        }
    }
}

/// Moves `wal` onto a writer thread fed by a queue of `queue_capacity` records; each batch takes
/// at most `max_batch` queued commands. The thread ends when the handle is dropped (after writing
/// what was queued) or on the first error.
pub fn spawn_writer(
    wal: Wal,
    queue_capacity: usize,
    max_batch: usize,
) -> std::io::Result<(WalHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(queue_capacity.max(1));
    let initial = Durability {
        seq: wal.durable_seq(),
        ..Durability::default()
    };
    let next_seq = wal.next_seq();
    let max_record_len = wal.options().max_record_len;
    let (watch_tx, watch_rx) = watch::channel(initial);
    let join = std::thread::Builder::new()
        .name("wal-writer".into())
        .spawn(move || run(wal, rx, watch_tx, max_batch.max(1)))?;
    Ok((
        WalHandle {
            tx,
            next_seq,
            max_record_len,
            durable: watch_rx,
        },
        join,
    ))
}

impl WalHandle {
    /// Queues `payload`, waiting while the queue is full, and returns the seq it will have.
    /// An oversized payload is refused here, without using a seq, so it cannot fail a batch.
    pub async fn append(&mut self, payload: Vec<u8>) -> Result<u64, WalError> {
        self.check_len(&payload)?;
        let seq = self.next_seq;
        self.tx
            .send(Command::Append { seq, payload })
            .await
            .map_err(|_| self.closed())?;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Queues `payload` without waiting; `Ok(None)` if the queue is full (nothing was queued).
    pub fn try_append(&mut self, payload: Vec<u8>) -> Result<Option<u64>, WalError> {
        self.check_len(&payload)?;
        let seq = self.next_seq;
        match self.tx.try_send(Command::Append { seq, payload }) {
            Ok(()) => {
                self.next_seq += 1;
                Ok(Some(seq))
            }
            Err(mpsc::error::TrySendError::Full(_)) => Ok(None),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.closed()),
        }
    }

    /// The seq the next queued record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// A receiver of durability progress, for a `select!` in the node loop.
    pub fn durable(&self) -> watch::Receiver<Durability> {
        self.durable.clone()
    }

    /// Waits until every record up to `seq` is durable.
    pub async fn wait_durable(&self, seq: u64) -> Result<(), WalError> {
        let mut rx = self.durable.clone();
        let state = rx
            .wait_for(|d| d.seq >= seq || d.failed.is_some())
            .await
            .map_err(|_| WalError::Closed("writer thread exited".into()))?
            .clone();
        if state.seq >= seq {
            Ok(())
        } else {
            Err(WalError::Closed(state.failed.unwrap_or_default()))
        }
    }

    /// Deletes whole segments below `seq`, after everything queued before it is written.
    pub async fn truncate_prefix(&self, seq: u64) -> Result<usize, WalError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::TruncatePrefix { seq, done })
            .await
            .map_err(|_| self.closed())?;
        rx.await
            .map_err(|_| self.closed())?
            .map_err(WalError::Closed)
    }

    /// Queues the deletion of whole segments below `seq` without waiting for room or for the
    /// deletion: `Ok(None)` if the queue is full (nothing queued; try again later), else a
    /// receiver of the number of segments deleted.
    pub fn try_truncate_prefix(
        &self,
        seq: u64,
    ) -> Result<Option<oneshot::Receiver<Result<usize, String>>>, WalError> {
        let (done, rx) = oneshot::channel();
        match self.tx.try_send(Command::TruncatePrefix { seq, done }) {
            Ok(()) => Ok(Some(rx)),
            Err(mpsc::error::TrySendError::Full(_)) => Ok(None),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.closed()),
        }
    }

    /// Largest accepted payload.
    pub fn max_record_len(&self) -> usize {
        self.max_record_len
    }

    fn check_len(&self, payload: &[u8]) -> Result<(), WalError> {
        if payload.len() > self.max_record_len {
            return Err(WalError::RecordTooLarge {
                len: payload.len(),
                max: self.max_record_len,
            });
        }
        Ok(())
    }

    fn closed(&self) -> WalError {
        WalError::Closed(
            self.durable
                .borrow()
                .failed
                .clone()
                .unwrap_or_else(|| "writer thread exited".into()),
        )
    }
}

/// The writer thread's loop.
fn run(
    mut wal: Wal,
    mut rx: mpsc::Receiver<Command>,
    durable: watch::Sender<Durability>,
    max_batch: usize,
) {
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut cmds = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        cmds.push(first);
        while cmds.len() < max_batch {
            match rx.try_recv() {
                Ok(c) => cmds.push(c),
                Err(_) => break,
            }
        }
        for cmd in cmds.drain(..) {
            match cmd {
                Command::Append { seq, payload } => {
                    let expected = wal.next_seq() + batch.len() as u64;
                    if seq != expected {
                        return fail(
                            &durable,
                            WalError::SeqMismatch {
                                sent: seq,
                                expected,
                            },
                        );
                    }
                    batch.push(payload);
                }
                Command::TruncatePrefix { seq, done } => {
                    if let Err(e) = flush(&mut wal, &mut batch, &durable) {
                        let _ = done.send(Err(e.to_string()));
                        return fail(&durable, e);
                    }
                    let _ = done.send(wal.truncate_prefix(seq).map_err(|e| e.to_string()));
                }
            }
        }
        if let Err(e) = flush(&mut wal, &mut batch, &durable) {
            return fail(&durable, e);
        }
    }
}

/// Writes the pending batch (one write, one fsync) and publishes the new durable seq.
fn flush(
    wal: &mut Wal,
    batch: &mut Vec<Vec<u8>>,
    durable: &watch::Sender<Durability>,
) -> Result<(), WalError> {
    if let Some(seq) = wal.append_batch(batch)? {
        let n = batch.len() as u64;
        durable.send_modify(|d| {
            d.seq = seq;
            d.batches += 1;
            d.records += n;
        });
    }
    batch.clear();
    Ok(())
}

fn fail(durable: &watch::Sender<Durability>, err: WalError) {
    tracing::error!(error = %err, "wal writer stopped");
    durable.send_modify(|d| d.failed = Some(err.to_string()));
}
