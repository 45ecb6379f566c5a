//! The apply worker: a thread that owns every shard replica's vector engine ([`Collection`]),
//! applies committed commands in log order and answers the node's reads.
//!
//! Why a thread: HNSW inserts and searches take milliseconds; on the node loop they would delay
//! heartbeats and elections (architecture §2, "apply and reads leave `step`"). The node loop
//! only queues jobs here and steps the results back, so it never waits for engine work.
//!
//! Ordering: one queue, one thread, so every group's applies run in index order, and a read
//! queued after an apply sees it. The node emits a `Read` only once the replica's applied index
//! (which this worker reported) is fresh enough, so answering from the engine as it is then is
//! correct. Limit (said, not hidden): reads run on this same thread, serialised with applies;
//! parallel searches against a consistent applied state are future work.
//!
//! Back-pressure: the job queue is bounded (the node loop waits when it is full). The result
//! channel is unbounded so that the worker can never block on the loop while the loop blocks on
//! the worker; it holds at most one result per job taken from the bounded queue that the loop
//! has not yet read.

use bytes::Bytes;
use std::collections::BTreeMap;
use tokio::sync::mpsc;
use vecraft_core::node::shard::{ShardAnswer, ShardQuery, answer, apply_command};
use vecraft_core::raft::{GroupId, LogIndex};
use vecraft_core::vector::collection::{Collection, CollectionConfig};

/// Work for the apply worker, in the order the node emitted it.
#[derive(Debug)]
pub enum ApplyJob {
    /// Host an engine for a shard replica (idempotent).
    Create {
        /// The shard group.
        group: GroupId,
        /// Collection name.
        collection: String,
        /// Its configuration.
        config: CollectionConfig,
    },
    /// Drop a shard replica's engine.
    Drop {
        /// The shard group.
        group: GroupId,
    },
    /// Apply a committed entry.
    Apply {
        /// The shard group.
        group: GroupId,
        /// The entry's index.
        index: LogIndex,
        /// The encoded command, if any.
        command: Option<Bytes>,
    },
    /// Answer a query from the applied state.
    Read {
        /// The node's read id.
        read: u64,
        /// The shard group.
        group: GroupId,
        /// The query.
        query: ShardQuery,
    },
}

/// What the worker reports back to the node loop.
#[derive(Debug)]
pub enum ApplyDone {
    /// `group` applied up to `index`.
    Applied {
        /// The shard group.
        group: GroupId,
        /// Its applied index.
        index: LogIndex,
    },
    /// A read's answer.
    Read {
        /// The node's read id.
        read: u64,
        /// The answer.
        result: Result<ShardAnswer, String>,
    },
}

/// Counters of the worker (for tests and metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries applied.
    pub applied: u64,
    /// Commands the engine refused (deterministically, on every replica).
    pub refused: u64,
    /// Reads answered.
    pub reads: u64,
}

/// Starts the worker thread. It ends when the job sender is dropped.
pub fn spawn_apply_worker(
    jobs: mpsc::Receiver<ApplyJob>,
    done: mpsc::UnboundedSender<ApplyDone>,
) -> std::io::Result<std::thread::JoinHandle<ApplyStats>> {
    std::thread::Builder::new()
        .name("apply-worker".into())
        .spawn(move || run(jobs, done))
}

fn run(mut jobs: mpsc::Receiver<ApplyJob>, done: mpsc::UnboundedSender<ApplyDone>) -> ApplyStats {
    let mut engines: BTreeMap<GroupId, Collection> = BTreeMap::new();
    let mut stats = ApplyStats::default();
    while let Some(job) = jobs.blocking_recv() {
        let report = match job {
            ApplyJob::Create {
                group,
                collection,
                config,
            } => {
                if let std::collections::btree_map::Entry::Vacant(e) = engines.entry(group) {
                    match Collection::new(&collection, config) {
                        Ok(c) => {
                            e.insert(c);
                        }
                        // The metadata group validated the config before committing it, so
                        // this is a bug; the replica then answers reads with an error.
                        Err(err) => {
                            tracing::error!(group, error = %err, "cannot create shard engine")
                        }
                    }
                }
                None
            }
            ApplyJob::Drop { group } => {
                engines.remove(&group);
                None
            }
            ApplyJob::Apply {
                group,
                index,
                command,
            } => {
                if let (Some(c), Some(cmd)) = (engines.get_mut(&group), command.as_ref()) {
                    // A refusal is deterministic and identical on every replica: it changes
                    // nothing anywhere, so the entry still counts as applied.
                    if let Err(e) = apply_command(c, cmd) {
                        stats.refused += 1;
                        tracing::debug!(group, index, error = %e, "shard command refused by the engine");
                    }
                }
                stats.applied += 1;
                Some(ApplyDone::Applied { group, index })
            }
            ApplyJob::Read { read, group, query } => {
                stats.reads += 1;
                let result = match engines.get(&group) {
                    Some(c) => answer(c, &query),
                    None => Err(format!("no engine for group {group} on this node")),
                };
                Some(ApplyDone::Read { read, result })
            }
        };
        if let Some(r) = report
            && done.send(r).is_err()
        {
            break; // the node loop is gone
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::node::shard::encode_command;
    use vecraft_core::vector::collection::{Distance, PointsOp};
    use vecraft_core::vector::point::PointStruct;

    #[test]
    fn applies_in_order_and_answers_reads_after_them() {
        let (jtx, jrx) = mpsc::channel(16);
        let (dtx, mut drx) = mpsc::unbounded_channel();
        let worker = spawn_apply_worker(jrx, dtx).unwrap();
        let config = CollectionConfig::new(2, Distance::Dot);
        jtx.blocking_send(ApplyJob::Create {
            group: 9,
            collection: "c".into(),
            config,
        })
        .unwrap();
        let points = (0..5u64)
            .map(|i| PointStruct {
                id: i.into(),
                vector: vec![1.0, i as f32],
                payload: Default::default(),
            })
            .collect();
        let cmd = encode_command(&PointsOp::Upsert(points));
        jtx.blocking_send(ApplyJob::Apply {
            group: 9,
            index: 1,
            command: Some(cmd),
        })
        .unwrap();
        // A bad command is refused, still counts as applied.
        jtx.blocking_send(ApplyJob::Apply {
            group: 9,
            index: 2,
            command: Some(Bytes::from_static(&[7])),
        })
        .unwrap();
        jtx.blocking_send(ApplyJob::Apply {
            group: 9,
            index: 3,
            command: None,
        })
        .unwrap();
        jtx.blocking_send(ApplyJob::Read {
            read: 4,
            group: 9,
            query: ShardQuery::Count(None),
        })
        .unwrap();
        jtx.blocking_send(ApplyJob::Read {
            read: 5,
            group: 8,
            query: ShardQuery::Count(None),
        })
        .unwrap();
        drop(jtx);
        let stats = worker.join().unwrap();
        assert_eq!(
            stats,
            ApplyStats {
                applied: 3,
                refused: 1,
                reads: 2
            }
        );
        let mut got = Vec::new();
        while let Ok(d) = drx.try_recv() {
            got.push(d);
        }
        assert!(matches!(got[0], ApplyDone::Applied { group: 9, index: 1 }));
        assert!(matches!(got[2], ApplyDone::Applied { group: 9, index: 3 }));
        assert!(matches!(
            &got[3],
            ApplyDone::Read {
                read: 4,
                result: Ok(ShardAnswer::Count(5))
            }
        ));
        assert!(matches!(
            &got[4],
            ApplyDone::Read {
                read: 5,
                result: Err(_)
            }
        ));
    }
}
