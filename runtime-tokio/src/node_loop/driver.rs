//! The node loop: one tokio task owns the [`Node`] and is the only caller of `step`.
//!
//! It sleeps until the node's next deadline or the next input (client requests, peer
//! envelopes, WAL durability progress, apply-worker results), steps the node, and carries each
//! output to its executor: envelopes to the transport, persist batches to the WAL, shard work to
//! the apply worker, answers to the waiting HTTP request. It decides nothing itself.
//!
//! Persist and `Persisted`: the node numbers its batches; the WAL numbers its records. The loop
//! remembers, per node batch, the WAL seq of the batch's last record; when the WAL's durable
//! seq passes it, the node gets `Persisted { seq }` for the newest such batch (one step for
//! everything one fsync made durable: group commit). If the WAL fails, the loop stops (fail-stop:
//! after a failed fsync the page cache cannot be trusted, so the node must not go on as if its
//! writes were durable); the process then exits and recovery decides on restart.
//!
//! Snapshots: `TakeSnapshot` and the transfer requests become apply-worker jobs; their answers
//! come back as `SnapshotTaken` / `NodeInput::Raft`. WAL trimming: every record queued to the
//! WAL also updates the checkpoint mirror; when the loop is quiet it writes a checkpoint if one
//! is due and queues the deletion of the segments a durable checkpoint superseded (`wal_trim`).

use super::apply::{ApplyDone, ApplyJob};
use super::checkpoint::{WAL_CHECKPOINTS, WAL_SEGMENTS_DELETED};
use super::group_status::{self, GROUP_STATUS_EVERY, GroupStatus};
use super::recovery::encode_record;
use super::role_watch::{self, RoleWatch};
use super::wal_trim::WalTrim;
use super::{ClientCall, NodeStatus};
use crate::transport::Transport;
use crate::wal::{Durability, WalHandle};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::node::message::NodeEnvelope;
use vecraft_core::node::metadata::METADATA_GROUP;
use vecraft_core::node::request::{ClientId, NodeError, Reply};
use vecraft_core::node::{Node, NodeInput, NodeOutput};
use vecraft_core::raft::RaftOutput;

/// Why the node loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoopExit {
    /// Asked to stop.
    #[error("shut down")]
    Shutdown,
    /// The WAL failed: nothing more can be made durable.
    #[error("wal failed: {0}")]
    Wal(String),
    /// The apply worker is gone.
    #[error("apply worker stopped")]
    ApplyWorker,
}

/// Everything the loop owns.
pub(super) struct Driver {
    pub node: Node,
    pub start: Instant,
    pub transport: Transport<NodeEnvelope>,
    pub wal: WalHandle,
    pub durable: watch::Receiver<Durability>,
    pub jobs: mpsc::Sender<ApplyJob>,
    pub done: mpsc::UnboundedReceiver<ApplyDone>,
    pub requests: mpsc::Receiver<ClientCall>,
    pub inbound: mpsc::Receiver<(NodeId, NodeEnvelope)>,
    pub status: watch::Sender<NodeStatus>,
    pub shutdown: CancellationToken,
    /// Node batch seq → WAL seq of its last record, oldest first.
    pub pending: VecDeque<(u64, u64)>,
    pub clients: HashMap<ClientId, oneshot::Sender<Result<Reply, NodeError>>>,
    pub next_client: ClientId,
    /// WAL checkpoints and segment deletion (see `wal_trim`, `checkpoint`).
    pub trim: WalTrim,
    /// A checkpoint being encoded on a blocking thread: its id, payloads and build time, or
    /// `None` if it could not be built.
    pub checkpoint_build: Option<oneshot::Receiver<CheckpointBuilt>>,
    /// Wakes the loop when that build is done.
    pub checkpoint_ready: Arc<tokio::sync::Notify>,
    /// A built checkpoint being handed to the WAL chunk by chunk.
    pub checkpoint_writing: Option<CheckpointWrite>,
    /// The per-group picture for metrics (see `group_status`).
    pub groups: watch::Sender<Arc<Vec<GroupStatus>>>,
    /// When the picture may be refreshed next, and whether a turn since the last refresh may
    /// have changed it (then the loop wakes at that time to publish it).
    pub groups_due: tokio::time::Instant,
    pub groups_dirty: bool,
    /// Each group's last seen role, for the role-change log (observed after every turn).
    pub roles: RoleWatch,
    /// When the last turn ended (a long gap before a turn means the loop was away).
    pub last_turn_end: Instant,
}

/// What a checkpoint build sends back: id, payloads, milliseconds it took (`None`: not built).
pub(super) type CheckpointBuilt = Option<(u64, Vec<Vec<u8>>, u64)>;

/// A checkpoint on its way to the WAL. It goes in chunks, each handed over once the previous
/// one is durable, so the node's own records (appends, votes) queued meanwhile are written
/// between them instead of behind one write of the whole live state (tens of megabytes: 1.6 s
/// with three nodes on one disk). Recovery already takes records inside a checkpoint's span as
/// ordinary records after it (see `checkpoint`), and a checkpoint without its `End` as torn.
pub struct CheckpointWrite {
    id: u64,
    payloads: VecDeque<Vec<u8>>,
    bytes: u64,
    records: usize,
    chunks: usize,
    begin: u64,
    build_ms: u64,
    /// WAL seq of the last record handed over (0: none yet).
    last_seq: u64,
}

/// Bytes of checkpoint handed to the WAL at once: an eighth of the checkpoint bound, within
/// [4 KiB, 4 MiB] (a payload larger than that still goes whole).
pub(super) fn checkpoint_chunk_bytes(bound: u64) -> u64 {
    (bound / 8).clamp(4 << 10, 4 << 20)
}

impl Driver {
    /// The node's monotonic clock.
    fn now(&self) -> Time {
        Time(self.start.elapsed().as_nanos() as u64)
    }

    fn instant_of(&self, t: Time) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + std::time::Duration::from_nanos(t.0))
    }

    /// Runs until shutdown or a fatal error.
    pub async fn run(mut self, boot: Vec<NodeOutput>) -> LoopExit {
        if let Err(e) = self.dispatch(boot).await {
            return e;
        }
        let far = std::time::Duration::from_secs(3600);
        let mut ticked = false;
        loop {
            self.publish_status();
            let wake = match self.node.next_deadline() {
                Some(t) => self.instant_of(t),
                None => tokio::time::Instant::now() + far,
            };
            // A due deadline goes first. The select below is biased with its timer last, so
            // under a steady stream of envelopes and apply reports it would never reach it: a
            // loaded node then sent no heartbeats for its quiet groups and their followers
            // held elections. Never twice in a row, so a deadline the tick leaves due cannot
            // shut out every other input.
            let due = !ticked && tokio::time::Instant::now() >= wake;
            ticked = due;
            let input = if due {
                // Envelopes that arrived while the loop was away (a long turn, its thread not
                // scheduled, the whole machine stalled) are older than this tick: they are
                // stepped first. Otherwise a leader away for longer than check-quorum's window
                // steps down with its followers' answers unread in its queue, and a follower
                // campaigns with its leader's heartbeats unread. (A precaution: the step-downs
                // seen under ingest turned out to be silent followers, with the loops on
                // time.) Only those queued now, so the tick still comes next.
                let queued = self.inbound.len();
                for _ in 0..queued {
                    let Ok((_, env)) = self.inbound.try_recv() else { break };
                    if let Err(e) = self.turn(Some(NodeInput::Envelope(env)), None).await {
                        return e;
                    }
                }
                Some(NodeInput::Tick)
            } else {
                tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return LoopExit::Shutdown,
                changed = self.durable.changed() => {
                    if changed.is_err() {
                        return LoopExit::Wal("writer thread exited".into());
                    }
                    let d = self.durable.borrow_and_update().clone();
                    if let Some(f) = d.failed {
                        return LoopExit::Wal(f);
                    }
                    None // released below
                }
                done = self.done.recv() => match done {
                    Some(ApplyDone::Applied { group, index }) => Some(NodeInput::Applied { group, index }),
                    Some(ApplyDone::Read { read, result }) => Some(NodeInput::ReadDone { read, result }),
                    Some(ApplyDone::SnapshotTaken { group, index, size, checksum }) => {
                        Some(NodeInput::SnapshotTaken { group, index, size, checksum })
                    }
                    Some(ApplyDone::Raft { group, input }) => Some(NodeInput::Raft { group, input }),
                    None => return LoopExit::ApplyWorker,
                },
                env = self.inbound.recv() => match env {
                    // The transport checked that the sender is the authenticated peer.
                    Some((_, env)) => Some(NodeInput::Envelope(env)),
                    None => return LoopExit::Shutdown,
                },
                call = self.requests.recv() => match call {
                    Some(call) => self.accept_call(call),
                    None => return LoopExit::Shutdown,
                },
                _ = tokio::time::sleep_until(wake) => Some(NodeInput::Tick),
                _ = tokio::time::sleep_until(self.groups_due), if self.groups_dirty => None,
                // A checkpoint built aside is written by the dispatch that follows.
                _ = self.checkpoint_ready.notified(), if self.checkpoint_build.is_some() => None,
                }
            };
            let late = matches!(input, Some(NodeInput::Tick)).then(|| {
                let late = tokio::time::Instant::now().saturating_duration_since(wake);
                metrics::histogram!(crate::http::metrics::NODE_LOOP_TIMER_LATENESS_SECONDS).record(late.as_secs_f64());
                late
            });
            if let Err(e) = self.turn(input, late).await {
                return e;
            }
        }
    }

    /// One turn: steps `input` (if any), carries out the outputs, and reports role changes
    /// with the turn's timing. `late`: for a tick, how late its deadline was stepped.
    async fn turn(&mut self, input: Option<NodeInput>, late: Option<std::time::Duration>) -> Result<(), LoopExit> {
        let turn = std::time::Instant::now();
        let gap = turn.saturating_duration_since(self.last_turn_end);
        let mut out = Vec::new();
        let kind = input.as_ref().map(input_kind).unwrap_or("none");
        if let Some(input) = input {
            let now = self.now();
            self.node.step(now, input, &mut out);
        }
        let stepped = turn.elapsed();
        let outputs = out.len();
        self.dispatch(out).await?;
        let took = turn.elapsed();
        metrics::histogram!(crate::http::metrics::NODE_LOOP_TURN_SECONDS).record(took.as_secs_f64());
        if took >= SLOW_TURN {
            tracing::warn!(input = kind, step_ms = stepped.as_millis() as u64, total_ms = took.as_millis() as u64, outputs,
                "slow node loop turn: heartbeats and votes of every group waited");
        }
        let context = role_watch::TurnContext {
            input: kind,
            gap_ms: gap.as_millis() as u64,
            late_ms: late.map_or(0, |l| l.as_millis() as u64),
        };
        for change in self.roles.observe(&self.node) {
            role_watch::report(change, context);
        }
        self.last_turn_end = std::time::Instant::now();
        Ok(())
    }

    /// Registers a client call; `None` if its HTTP request already gave up.
    fn accept_call(&mut self, call: ClientCall) -> Option<NodeInput> {
        let (request, timeout, reply) = call;
        if reply.is_closed() {
            return None;
        }
        let client = self.next_client;
        self.next_client += 1;
        self.clients.insert(client, reply);
        Some(NodeInput::Request { client, request, timeout })
    }

    /// Carries out outputs, then steps `Persisted` for whatever became durable, until quiet.
    async fn dispatch(&mut self, mut out: Vec<NodeOutput>) -> Result<(), LoopExit> {
        loop {
            for o in std::mem::take(&mut out) {
                self.output(o).await?;
            }
            let durable = self.durable.borrow().seq;
            let mut released = None;
            while let Some(&(node_seq, wal_seq)) = self.pending.front() {
                if wal_seq > durable {
                    break;
                }
                self.pending.pop_front();
                released = Some(node_seq);
            }
            match released {
                Some(seq) => {
                    let now = self.now();
                    self.node.step(now, NodeInput::Persisted { seq }, &mut out);
                }
                None => return self.trim_wal(durable).await,
            }
        }
    }

    /// Writes a WAL checkpoint when one is due, and queues the deletion of the segments a
    /// durable checkpoint superseded (see `wal_trim`). The deletion runs on the WAL thread after
    /// everything queued before it; the loop does not wait for it.
    async fn trim_wal(&mut self, durable: u64) -> Result<(), LoopExit> {
        if let Some(below) = self.trim.deletable_below(durable) {
            match self.wal.try_truncate_prefix(below) {
                Ok(Some(rx)) => {
                    self.trim.truncation_queued();
                    tokio::spawn(async move {
                        match rx.await {
                            Ok(Ok(n)) => {
                                metrics::counter!(WAL_SEGMENTS_DELETED).increment(n as u64);
                                tracing::info!(segments = n, below_seq = below, "wal: segments before the checkpoint deleted");
                            }
                            Ok(Err(e)) => tracing::error!(error = %e, "wal: deleting old segments failed"),
                            Err(_) => {}
                        }
                    });
                }
                Ok(None) => {} // queue full: retried after the next step
                Err(e) => return Err(LoopExit::Wal(e.to_string())),
            }
        }
        // A checkpoint built off the loop is written as soon as it is ready (records queued
        // meanwhile are already in the WAL, before it: recovery replays them after it).
        if let Some(rx) = self.checkpoint_build.as_mut()
            && let Ok(built) = rx.try_recv()
        {
            self.checkpoint_build = None;
            match built {
                Some((id, payloads, build_ms)) => {
                    self.checkpoint_writing = Some(CheckpointWrite {
                        id,
                        bytes: payloads.iter().map(|p| p.len() as u64).sum(),
                        records: payloads.len(),
                        payloads: payloads.into(),
                        chunks: 0,
                        begin: self.wal.next_seq(),
                        build_ms,
                        last_seq: 0,
                    });
                }
                None => self.trim.abandoned(),
            }
        }
        // Its next chunk once the previous one is durable (see `CheckpointWrite`).
        if let Some(w) = self.checkpoint_writing.as_mut()
            && durable >= w.last_seq
        {
            let max = checkpoint_chunk_bytes(self.trim.bound());
            let mut chunk = 0u64;
            while let Some(p) = w.payloads.front() {
                if chunk > 0 && chunk + p.len() as u64 > max {
                    break;
                }
                let p = w.payloads.pop_front().expect("checked");
                chunk += p.len() as u64;
                self.wal.append(p).await.map_err(|e| LoopExit::Wal(e.to_string()))?;
            }
            w.chunks += 1;
            w.last_seq = self.wal.next_seq() - 1;
            if w.payloads.is_empty() {
                let w = self.checkpoint_writing.take().expect("checked");
                self.trim.written(w.id, w.last_seq, w.bytes);
                metrics::counter!(WAL_CHECKPOINTS).increment(1);
                tracing::info!(id = w.id, begin_seq = w.begin, records = w.records, bytes = w.bytes, chunks = w.chunks,
                    build_ms = w.build_ms, groups = self.trim.mirror().len(), "wal checkpoint written");
            }
        }
        if self.checkpoint_build.is_none()
            && self.checkpoint_writing.is_none()
            && let Some((id, copy)) = self.trim.due(self.wal.next_seq())
        {
            let max = self.wal.max_record_len();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let wake = self.checkpoint_ready.clone();
            tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let built = copy.checkpoint(id, max).map(|p| (id, p, started.elapsed().as_millis() as u64));
                let _ = tx.send(built);
                wake.notify_one();
            });
            self.checkpoint_build = Some(rx);
        }
        Ok(())
    }

    async fn output(&mut self, o: NodeOutput) -> Result<(), LoopExit> {
        match o {
            NodeOutput::Send(env) => {
                // Best effort: a full queue or unknown peer drops it (counted); Raft retries.
                let to = env.to;
                self.transport.send(to, env);
            }
            NodeOutput::Persist { seq, records } => {
                for r in &records {
                    let payload = encode_record(r);
                    self.trim.persisted(r, payload.len());
                    // Waits while the WAL queue is full: back-pressure onto every input.
                    let waited = std::time::Instant::now();
                    self.wal
                        .append(payload)
                        .await
                        .map_err(|e| LoopExit::Wal(e.to_string()))?;
                    if waited.elapsed() >= SLOW_TURN / 2 {
                        tracing::warn!(ms = waited.elapsed().as_millis() as u64, "node loop waited for room in the WAL queue");
                    }
                }
                let last = self.wal.next_seq().saturating_sub(1);
                debug_assert!(
                    self.pending.back().is_none_or(|&(s, _)| s < seq),
                    "persist seqs increase"
                );
                self.pending.push_back((seq, last));
            }
            NodeOutput::ShardCreated {
                group,
                collection,
                config,
            } => {
                self.job(ApplyJob::Create {
                    group,
                    collection,
                    config,
                })
                .await?
            }
            NodeOutput::ShardRenamed { group, collection } => {
                self.job(ApplyJob::Rename { group, collection }).await?
            }
            NodeOutput::ShardDropped { group } => {
                self.trim.dropped(group);
                self.job(ApplyJob::Drop { group }).await?
            }
            NodeOutput::Apply {
                group,
                index,
                command,
            } => {
                // The entry was just handed out of the group's log, so the log holds it.
                let raft = self.node.group(group);
                let term = raft.and_then(|r| r.log().term_at(index)).unwrap_or(0);
                // The apply pipeline's length around this entry: committed after it (a replay
                // after a restart), or queued before it (a lane slower than the commits).
                let behind = raft.map_or(0, |r| {
                    let after = r.commit_index().saturating_sub(index);
                    let before = index.saturating_sub(r.applied_index());
                    after.max(before)
                });
                self.job(ApplyJob::Apply {
                    group,
                    index,
                    command,
                    term,
                    behind,
                })
                .await?
            }
            NodeOutput::Read { read, group, query } => {
                self.job(ApplyJob::Read { read, group, query }).await?
            }
            NodeOutput::Respond { client, result } => {
                if let Some(tx) = self.clients.remove(&client) {
                    let _ = tx.send(result); // the HTTP request may have given up
                }
            }
            // Snapshots: the apply worker owns the engines and the snapshot files, so taking,
            // serving, staging and installing run there, in the node's order.
            NodeOutput::TakeSnapshot { group, index } => {
                self.job(ApplyJob::TakeSnapshot { group, index }).await?
            }
            NodeOutput::Raft { group, output } => match output {
                RaftOutput::ReadSnapshotChunk {
                    to,
                    meta,
                    offset,
                    len,
                } => {
                    self.job(ApplyJob::ReadSnapshotChunk {
                        group,
                        to,
                        meta,
                        offset,
                        len,
                    })
                    .await?
                }
                RaftOutput::StageSnapshotChunk { meta, offset, data } => {
                    self.job(ApplyJob::StageSnapshotChunk {
                        group,
                        meta,
                        offset,
                        data,
                    })
                    .await?
                }
                RaftOutput::InstallSnapshot { meta } => {
                    self.job(ApplyJob::InstallSnapshot { group, meta }).await?
                }
                other => {
                    tracing::debug!(group, ?other, "raft output not carried out by the driver");
                }
            },
            // Outputs added to the node after this driver was written: ignored and logged, so a
            // merge with a newer node still builds (each output's documented answer when ignored
            // must keep it safe, as `TakeSnapshot`'s does: an uncompacted log).
            #[allow(unreachable_patterns)]
            other => {
                tracing::debug!(?other, "node output not carried out by this runtime yet");
            }
        }
        Ok(())
    }

    async fn job(&mut self, job: ApplyJob) -> Result<(), LoopExit> {
        let waited = std::time::Instant::now();
        self.jobs.send(job).await.map_err(|_| LoopExit::ApplyWorker)?;
        if waited.elapsed() >= SLOW_TURN / 2 {
            tracing::warn!(ms = waited.elapsed().as_millis() as u64, "node loop waited for room in the apply queue");
        }
        Ok(())
    }

    /// Publishes what `/readyz`, `/cluster` and metrics need (only when it changed).
    fn publish_status(&mut self) {
        let meta = self.node.group(METADATA_GROUP);
        let groups = self.node.groups().filter(|(g, _)| *g != METADATA_GROUP);
        let (mut shard_groups, mut shard_leaders_known) = (0usize, 0usize);
        for (_, r) in groups {
            shard_groups += 1;
            shard_leaders_known += usize::from(r.leader().is_some());
        }
        let next = NodeStatus {
            node_id: self.node.id(),
            meta_leader: meta.and_then(|r| r.leader()),
            meta_term: meta.map_or(0, |r| r.term()),
            meta_commit: meta.map_or(0, |r| r.commit_index()),
            meta_applied: meta.map_or(0, |r| r.applied_index()),
            meta_damaged: meta.is_some_and(|r| r.is_damaged()),
            shard_groups,
            shard_leaders_known,
            requests_in_flight: self.clients.len(),
        };
        self.publish_groups();
        self.status.send_if_modified(|s| {
            if *s == next {
                false
            } else {
                *s = next;
                true
            }
        });
    }

    /// Refreshes the per-group picture at most every [`GROUP_STATUS_EVERY`]; a turn in between
    /// marks it dirty so the loop wakes to publish it then.
    fn publish_groups(&mut self) {
        let now = tokio::time::Instant::now();
        if now < self.groups_due {
            self.groups_dirty = true;
            return;
        }
        self.groups_due = now + GROUP_STATUS_EVERY;
        self.groups_dirty = false;
        record_transport(&self.transport.stats());
        self.roles.retain(&self.node);
        let next = group_status::collect(&self.node);
        self.groups.send_if_modified(|g| {
            if **g == next {
                false
            } else {
                *g = Arc::new(next);
                true
            }
        });
    }
}

/// The transport's counters as Prometheus counters (refreshed with the group picture).
fn record_transport(t: &crate::transport::TransportStats) {
    use crate::http::metrics::{TRANSPORT_DROPPED, TRANSPORT_MESSAGES};
    metrics::counter!(TRANSPORT_MESSAGES, "direction" => "sent").absolute(t.msgs_sent);
    metrics::counter!(TRANSPORT_MESSAGES, "direction" => "received").absolute(t.msgs_received);
    for (reason, n) in [
        ("queue_full", t.dropped_queue_full),
        ("unknown_peer", t.dropped_unknown_peer),
        ("send_failed", t.dropped_send_failed),
        ("oversize", t.dropped_oversize),
        ("stale", t.dropped_stale),
    ] {
        metrics::counter!(TRANSPORT_DROPPED, "reason" => reason).absolute(n);
    }
}

/// A turn this long is logged: it is a good part of the shortest election timeout.
const SLOW_TURN: std::time::Duration = std::time::Duration::from_millis(100);

/// The input's kind, for the slow-turn log.
fn input_kind(input: &NodeInput) -> &'static str {
    match input {
        NodeInput::Tick => "tick",
        NodeInput::Envelope(_) => "envelope",
        NodeInput::Request { .. } => "request",
        NodeInput::Applied { .. } => "applied",
        NodeInput::ReadDone { .. } => "read-done",
        NodeInput::Persisted { .. } => "persisted",
        NodeInput::SnapshotTaken { .. } => "snapshot-taken",
        NodeInput::Raft { .. } => "raft",
    }
}

#[cfg(test)]
mod tests {
    use super::checkpoint_chunk_bytes;

    #[test]
    fn a_checkpoint_goes_in_chunks_of_an_eighth_of_its_bound_within_4_kib_and_4_mib() {
        assert_eq!(checkpoint_chunk_bytes(64 << 10), 8 << 10);
        assert_eq!(checkpoint_chunk_bytes(32 << 10), 4 << 10);
        assert_eq!(checkpoint_chunk_bytes((32 << 10) - 8), 4 << 10, "floor");
        assert_eq!(checkpoint_chunk_bytes(32 << 20), 4 << 20);
        assert_eq!(checkpoint_chunk_bytes((32 << 20) + 8), 4 << 20, "cap");
    }
}
