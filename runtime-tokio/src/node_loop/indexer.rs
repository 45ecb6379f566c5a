//! The background indexer: threads (one per apply lane) that link deferred points into their
//! engines' graphs with CPU time nothing else wants; two of them never work on one engine at
//! once.
//!
//! Deferral (see `IndexingPolicy`) takes graph work out of the write path; this thread does it
//! later. It used to run in the apply lanes whenever a lane was idle, at the lanes' priority, so
//! on a machine whose cores several busy threads share (or several nodes, as in a local
//! cluster) the graph work competed with the request path it was meant to stay out of: a
//! profile of a 3-node ingest on 2 cores had the lanes' linking on 79% of the CPU while JSON
//! decoding, the WAL and consensus waited. Here the linking runs at the lowest scheduling
//! priority (nice 19), so it takes what the request path leaves and yields the moment the path
//! wants a core. When the machine is saturated for long the unindexed tail grows until the
//! threshold's bound links inline at apply time: back-pressure, never unbounded work.
//!
//! A low-priority thread holding an engine's write lock could delay an apply or a read of that
//! shard while the scheduler runs others (priority inversion). The thread therefore links one
//! point per step and lets go of the lock as soon as a lane or reader announces it wants it
//! (`IndexerSignal::contenders`), or after [`INDEX_STEP`] at most.

use super::shard_engines::{ShardEngines, read, write};
use crate::http::metrics::POINTS_LINKED_DEFERRED;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long one indexing step may hold an engine's write lock when nobody asks for it.
const INDEX_STEP: Duration = Duration::from_millis(2);

/// How long the indexer sleeps when it has nothing to link and nobody woke it (a safety net:
/// every apply that leaves points unlinked wakes it).
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// The nice value of the indexer thread (the lowest priority `setpriority` allows).
const INDEXER_NICE: i32 = 19;

/// What the apply lanes and readers tell the indexer.
#[derive(Debug, Default)]
pub struct IndexerSignal {
    /// Threads waiting for an engine lock right now: the indexer releases its write lock.
    contenders: AtomicUsize,
    /// An apply left points unlinked since the indexer last looked.
    work: Mutex<bool>,
    ready: Condvar,
    /// The worker is shutting down.
    stop: AtomicBool,
}

impl IndexerSignal {
    /// Counts the caller as a contender while `f` waits for a lock.
    pub fn contend<T>(&self, f: impl FnOnce() -> T) -> T {
        self.contenders.fetch_add(1, Ordering::AcqRel);
        let t = f();
        self.contenders.fetch_sub(1, Ordering::AcqRel);
        t
    }

    /// Whether anybody waits for an engine lock.
    fn contended(&self) -> bool {
        self.contenders.load(Ordering::Acquire) > 0
    }

    /// Wakes the indexer: there are points to link.
    pub fn wake(&self) {
        *self.work.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.ready.notify_all();
    }

    /// Ends the indexer after its current step.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps until woken or `IDLE_WAIT` passes; clears the wake flag.
    fn sleep(&self) {
        let mut work = self.work.lock().unwrap_or_else(|e| e.into_inner());
        if !*work {
            work = self.ready.wait_timeout(work, IDLE_WAIT).unwrap_or_else(|e| e.into_inner()).0;
        }
        *work = false;
    }
}

/// Starts `threads` indexers of `engines`; they end after `engines.indexer().stop()` and each
/// returns how many points it linked.
pub fn spawn_indexers(
    engines: &ShardEngines,
    threads: usize,
) -> std::io::Result<Vec<std::thread::JoinHandle<u64>>> {
    (0..threads.max(1))
        .map(|i| {
            let engines = engines.clone();
            std::thread::Builder::new().name(format!("indexer-{i}")).spawn(move || {
                lower_priority();
                let signal = engines.indexer();
                // Indexers start at different engines.
                let mut cursor = i;
                let mut linked = 0u64;
                let mut busy = 0u32;
                while !signal.stopped() {
                    match step(&engines, &mut cursor, busy >= BUSY_TRIES) {
                        Step::Linked(n) => (linked, busy) = (linked + n, 0),
                        Step::Busy => {
                            busy += 1;
                            std::thread::sleep(BUSY_WAIT);
                        }
                        Step::Idle => (_, busy) = (signal.sleep(), 0),
                    }
                }
                linked
            })
        })
        .collect()
}

/// How long an indexer waits when every engine with waiting points is locked by another
/// thread.
const BUSY_WAIT: Duration = Duration::from_millis(1);

/// Busy steps in a row after which an indexer queues for a lock: readers that overlap without
/// end would otherwise keep a `try_write` from ever succeeding.
const BUSY_TRIES: u32 = 8;

enum Step {
    /// Linked this many points.
    Linked(u64),
    /// Engines have points waiting, but each is locked by another thread.
    Busy,
    /// No engine has points waiting.
    Idle,
}

/// Links points of one engine that has some waiting (engines in turn) for one step; with
/// `queue`, waits for the first such engine's lock instead of skipping it.
fn step(engines: &ShardEngines, cursor: &mut usize, queue: bool) -> Step {
    let signal = engines.indexer();
    let all = engines.all();
    let n = all.len();
    let mut busy = false;
    for k in 0..n {
        let (_, engine) = &all[(*cursor + k) % n];
        if read(engine).unindexed() == 0 {
            continue;
        }
        // Another indexer (or an apply) holds it: try the next engine rather than queue.
        let mut guard = match engine.try_write() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::WouldBlock) if queue => write(engine),
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                busy = true;
                continue;
            }
        };
        *cursor = (*cursor + k + 1) % n;
        let started = Instant::now();
        let mut step = 0u64;
        // At least one point per step, so a steady stream of readers cannot starve it.
        loop {
            let linked = guard.index_pending(1);
            step += linked as u64;
            if linked == 0 || signal.contended() || started.elapsed() >= INDEX_STEP {
                break;
            }
        }
        // Counted before the lock is released: whoever sees these points linked sees them
        // counted.
        metrics::counter!(POINTS_LINKED_DEFERRED).increment(step);
        drop(guard);
        return Step::Linked(step);
    }
    if busy { Step::Busy } else { Step::Idle }
}

/// Puts the calling thread at the lowest CPU priority (Linux: nice applies per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, INDEXER_NICE)
        };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot lower the indexer's priority; it links at normal priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = INDEXER_NICE;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indexer_runs_at_nice_19() {
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            lower_priority();
            // SAFETY: reads the calling thread's own priority.
            #[cfg(target_os = "linux")]
            let nice = unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::getpriority(libc::PRIO_PROCESS, tid)
            };
            #[cfg(not(target_os = "linux"))]
            let nice = INDEXER_NICE;
            tx.send(nice).unwrap();
        });
        h.join().unwrap();
        assert_eq!(rx.recv().unwrap(), INDEXER_NICE);
        // The test thread itself is untouched.
        #[cfg(target_os = "linux")]
        assert_ne!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, INDEXER_NICE);
    }

    #[test]
    fn a_contender_is_counted_while_it_waits_and_a_wake_is_not_lost() {
        let s = IndexerSignal::default();
        assert!(!s.contended());
        assert!(s.contend(|| s.contended()));
        assert!(!s.contended());
        s.wake();
        let t = Instant::now();
        s.sleep();
        assert!(t.elapsed() < IDLE_WAIT, "a wake before the sleep returns at once");
        s.stop();
        assert!(s.stopped());
    }
}
