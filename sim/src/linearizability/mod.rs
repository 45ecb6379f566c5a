//! Linearizability checking of register histories.
//!
//! [`check`] decides whether a [`History`] of reads, writes and compare-and-sets could have been
//! produced by one register per key, each operation taking effect at a single instant between
//! its invoke and its completion.
//!
//! # How
//!
//! * **Per key.** Linearizability is compositional (P-compositionality): the history is
//!   linearizable iff the sub-history of every key is, so keys are checked separately.
//! * **Search.** Wing & Gong's depth-first search with Lowe's memoisation, as in Porcupine: the
//!   events of a key form a linked list; the search repeatedly picks an operation whose invoke
//!   precedes every not-yet-linearized completion, applies it to the register model, and
//!   backtracks when a completion is reached with its operation still unlinearized. A cache of
//!   visited configurations (linearized operations as a compact bitset, register value, ...)
//!   prunes configurations already explored.
//! * **Completions.**
//!   - `ok`: the operation must be linearized inside its interval with the observed result.
//!   - `fail` on a read or write: it did not happen, so it is dropped.
//!   - `fail` on a CAS: the CAS executed and found another value, so it is kept as a read that
//!     asserts `value != expected` somewhere inside its interval.
//!   - `info`, or no completion at all: the operation may take effect at any instant after its
//!     invoke, or never. Indeterminate reads constrain nothing and are dropped.
//! * **Taming indeterminate operations.** Timeouts make the search exponential. Each rule below
//!   keeps the checker complete (the tests compare it with a brute-force checker on many random
//!   small histories):
//!   - if any linearization exists, one exists in which every indeterminate write or CAS is
//!     immediately followed by an operation that needs its value: a read of it, a CAS
//!     expecting it, or a failed CAS expecting the value *before* it (otherwise that failed CAS
//!     could go first). So indeterminate operations are only placed there; one that matches
//!     nothing is the same as one that never happened;
//!   - indeterminate operations with the same effect are interchangeable (none has a
//!     deadline): one list entry per group, used earliest-invoke first;
//!   - a group whose value no remaining operation can use, or (a CAS) whose expected value can
//!     no longer appear, is dropped from the scan while the search is below that point;
//!   - once no remaining operation can tell a written value apart, the writes of it join a
//!     pool of "some unobservable value" writes, counted rather than listed, and such values
//!     are merged in cached configurations;
//!   - the cache is a dominance check: a configuration that used no fewer indeterminate
//!     operations of each still-usable group than a visited one, with the same linearized
//!     determinate operations and register value, is skipped (unused ones stay optional).
//! * **Budget.** The search counts steps; when a key's budget runs out the verdict is
//!   [`Verdict::Unknown`], never a pass. Nothing depends on wall-clock time, so a verdict is a
//!   pure function of the history and the [`CheckerConfig`].
//! * **Explanation.** For a non-linearizable key, the operations are shrunk by delta debugging
//!   to a small set that still cannot be linearized: first only reads and failed CAS are removed
//!   (sound: the reads left are real culprits), then writes and CAS, never dropping every write
//!   that could have produced a value a remaining operation saw. So a stale read is shown with
//!   the writes that make it stale, and a read of a value nobody wrote is shown alone.
//!
//! # Example
//!
//! ```
//! use vecraft_sim::history::{History, Operation, Outcome};
//! use vecraft_sim::linearizability::{check, CheckerConfig, Verdict};
//!
//! let mut history = History::new();
//! let w = history.invoke(1, Operation::write(7, 42), 100).unwrap();
//! history.complete(w, Outcome::Ok, 200).unwrap();
//! let r = history.invoke(2, Operation::read(7), 300).unwrap();
//! history.complete(r, Outcome::ReadOk(None), 400).unwrap(); // stale: 42 was written before
//! let verdict = check(&history, &CheckerConfig::default());
//! assert!(matches!(verdict, Verdict::NotLinearizable { key: 7, .. }));
//! println!("{verdict}");
//! ```

use crate::history::{Command, History, Key, Outcome, RecordedOp, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

mod search;
mod shrink;
mod word_hash;

use search::*;
use shrink::*;
use word_hash::*;

/// Limits that keep a check finite; all counted in search steps, never in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckerConfig {
    /// Search steps allowed for one key before that key's verdict is `Unknown`.
    pub step_budget_per_key: u64,
    /// Search steps allowed, in total, for shrinking a violation to a small set of operations.
    /// When it runs out the (still failing, but possibly not minimal) set found so far is reported.
    pub shrink_step_budget: u64,
}

impl Default for CheckerConfig {
    /// Generous limits: a few seconds of work at most on typical simulator histories.
    fn default() -> CheckerConfig {
        CheckerConfig {
            step_budget_per_key: 20_000_000,
            shrink_step_budget: 20_000_000,
        }
    }
}

/// The result of checking a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's operations can be ordered as a single register would have executed them.
    Linearizable,
    /// Some key's operations cannot be ordered. `ops` is a small subset of that key's operations
    /// (sorted by invoke) that already cannot be ordered; it is the whole explanation.
    NotLinearizable {
        /// The key whose register misbehaved (the smallest such key).
        key: Key,
        /// Operations that cannot be linearized together, as recorded in the history.
        ops: Vec<RecordedOp>,
        /// Whether shrinking ran to completion: no read or failed CAS could be dropped with all
        /// writes present, and then no write or CAS could be dropped without orphaning an
        /// observed value. `false` if the shrink budget ran out first: `ops` still cannot be
        /// ordered, but may be larger than needed.
        minimal: bool,
    },
    /// The budget ran out before a verdict was reached for some key, and no key was found to be
    /// non-linearizable. This is not a pass.
    Unknown {
        /// Which key(s) and which budget, in words.
        reason: String,
    },
}

impl Verdict {
    /// True only for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

impl fmt::Display for Verdict {
    /// A verdict for humans (used by the CLI): one line, plus one line per operation on failure.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::NotLinearizable { key, ops, minimal } => {
                write!(
                    f,
                    "NOT linearizable: on key {key}, these {} operations cannot be ordered as one \
                     register would execute them ({}):",
                    ops.len(),
                    if *minimal {
                        "a minimal set"
                    } else {
                        "shrinking stopped early; the set may not be minimal"
                    }
                )?;
                for op in ops {
                    write!(f, "\n  {op}")?;
                }
                Ok(())
            }
            Verdict::Unknown { reason } => write!(f, "UNKNOWN (not a pass): {reason}"),
        }
    }
}

/// Checks a whole history: each key separately, in increasing key order.
///
/// Returns `NotLinearizable` for the smallest failing key if any key fails (even if other keys
/// ran out of budget), otherwise `Unknown` if any key ran out of budget, otherwise `Linearizable`.
pub fn check(history: &History, config: &CheckerConfig) -> Verdict {
    let mut partitions: BTreeMap<Key, Vec<PreparedOp>> = BTreeMap::new();
    for (index, op) in history.operations().iter().enumerate() {
        if let Some(prepared) = PreparedOp::from_recorded(op, index) {
            partitions
                .entry(op.operation.key)
                .or_default()
                .push(prepared);
        }
    }
    let mut unknown: Vec<String> = Vec::new();
    for (&key, ops) in &partitions {
        let report = search(ops, config.step_budget_per_key);
        match report.outcome {
            SearchOutcome::Linearizable => {}
            SearchOutcome::OutOfBudget => unknown.push(format!(
                "key {key} ({} operations): step budget of {} exhausted after caching {} \
                 configurations",
                ops.len(),
                config.step_budget_per_key,
                report.states
            )),
            SearchOutcome::NotLinearizable => {
                let (kept, minimal) = shrink(ops, config);
                let mut reported: Vec<RecordedOp> = kept
                    .iter()
                    .map(|p| history.operations()[p.record])
                    .collect();
                reported.sort_by_key(|op| op.invoke_index);
                return Verdict::NotLinearizable {
                    key,
                    ops: reported,
                    minimal,
                };
            }
        }
    }
    if unknown.is_empty() {
        Verdict::Linearizable
    } else {
        Verdict::Unknown {
            reason: unknown.join("; "),
        }
    }
}

/// What an operation does to the register model once its outcome is taken into account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Effect {
    /// Saw this value.
    Read(Option<Value>),
    /// Stored this value.
    Write(Value),
    /// Found `expected` and stored `new`.
    Cas { expected: Option<Value>, new: Value },
    /// Found a value other than `expected` (a failed CAS).
    CasFailed { expected: Option<Value> },
}

/// An operation ready for the search.
#[derive(Clone, Copy, Debug)]
struct PreparedOp {
    effect: Effect,
    /// Completed with a known outcome, so it must be linearized inside its interval. Otherwise
    /// it is indeterminate: linearized at any point after its invoke, or never.
    required: bool,
    invoke_index: usize,
    /// Event index of the completion, for required operations only.
    complete_index: Option<usize>,
    /// Index into `History::operations`.
    record: usize,
}

impl PreparedOp {
    /// Turns a recorded operation into what the search needs, or `None` if it cannot affect the
    /// verdict (failed reads and writes, indeterminate reads).
    fn from_recorded(op: &RecordedOp, record: usize) -> Option<PreparedOp> {
        let outcome = op.effective_outcome();
        let (effect, required) = match (op.operation.command, outcome) {
            (Command::Read, Outcome::ReadOk(seen)) => (Effect::Read(seen), true),
            // `History` never pairs a read with `Ok`; an unobserved read constrains nothing.
            (Command::Read, _) => return None,
            (Command::Write(_), Outcome::Fail) => return None,
            (Command::Write(v), Outcome::Info) => (Effect::Write(v), false),
            (Command::Write(v), Outcome::Ok | Outcome::ReadOk(_)) => (Effect::Write(v), true),
            (Command::Cas { expected, .. }, Outcome::Fail) => {
                (Effect::CasFailed { expected }, true)
            }
            (Command::Cas { expected, new }, Outcome::Info) => {
                (Effect::Cas { expected, new }, false)
            }
            (Command::Cas { expected, new }, Outcome::Ok | Outcome::ReadOk(_)) => {
                (Effect::Cas { expected, new }, true)
            }
        };
        let complete_index = if required {
            op.completion.map(|c| c.event_index)
        } else {
            None
        };
        debug_assert!(
            !required || complete_index.is_some(),
            "required ops have completions"
        );
        Some(PreparedOp {
            effect,
            required,
            invoke_index: op.invoke_index,
            complete_index,
            record,
        })
    }

    /// The register model: the value after applying this operation to `state`, or `None` if the
    /// operation cannot be applied there. An indeterminate CAS is only applied where it matches;
    /// where it does not, it would change nothing, which is the same as never happening.
    fn step(&self, state: Option<Value>) -> Option<Option<Value>> {
        match self.effect {
            Effect::Read(seen) => (state == seen).then_some(state),
            Effect::Write(v) => Some(Some(v)),
            Effect::Cas { expected, new } => (state == expected).then_some(Some(new)),
            Effect::CasFailed { expected } => (state != expected).then_some(state),
        }
    }

    fn is_write(&self) -> bool {
        matches!(self.effect, Effect::Write(_))
    }

    /// The value this operation stores, if it stores one.
    fn written(&self) -> Option<Value> {
        match self.effect {
            Effect::Write(v) | Effect::Cas { new: v, .. } => Some(v),
            Effect::Read(_) | Effect::CasFailed { .. } => None,
        }
    }

    /// The value the register must hold for this operation to be linearized (a read's result,
    /// a CAS's expected value; determinate or not).
    fn observed(&self) -> Option<Value> {
        match self.effect {
            Effect::Read(seen) => seen,
            Effect::Cas { expected, .. } => expected,
            Effect::Write(_) | Effect::CasFailed { .. } => None,
        }
    }

    /// Whether this operation, placed right after one that stored `x`, can depend on it.
    fn could_use(&self, x: Value) -> bool {
        match self.effect {
            Effect::Read(seen) => seen == Some(x),
            Effect::Cas { expected, .. } => expected == Some(x),
            Effect::CasFailed { expected } => expected != Some(x),
            Effect::Write(_) => false,
        }
    }
}

enum SearchOutcome {
    Linearizable,
    NotLinearizable,
    OutOfBudget,
}

/// Replaces every written value that no operation reads or compares against by one shared
/// "unobserved" value: no operation can tell such values apart, so merging them loses nothing
/// and lets the cache recognise configurations that differ only in such a value.
/// Returns the shared value, which is also safe as a stand-in for any value nobody can observe.
fn merge_unobserved_values(ops: &mut [PreparedOp]) -> Value {
    let observed: HashSet<Value> = ops
        .iter()
        .filter_map(|op| match op.effect {
            Effect::Read(seen) => seen,
            Effect::Cas { expected, .. } | Effect::CasFailed { expected } => expected,
            Effect::Write(_) => None,
        })
        .collect();
    // `observed` is finite, so some value near i64::MIN is free.
    let unobserved = (i64::MIN..=i64::MAX)
        .find(|v| !observed.contains(v))
        .unwrap_or(i64::MIN);
    for op in ops {
        if let Effect::Write(v) | Effect::Cas { new: v, .. } = &mut op.effect
            && !observed.contains(v)
        {
            *v = unobserved;
        }
    }
    unobserved
}

/// Drops indeterminate operations that no operation could ever use: none that can still be
/// linearized after their invoke reads or CAS-expects their value, or is a failed CAS expecting
/// something else. (Keeping a useless operation is always safe, only slower; so an operation
/// counting as its own user, a CAS from `v` to `v`, is harmless.) Linear time.
fn useful_ops(ops: &[PreparedOp]) -> Vec<PreparedOp> {
    let liveness = Liveness::of(ops);
    ops.iter()
        .filter(|w| match w.written().filter(|_| !w.required) {
            Some(x) => liveness
                .latest_user(x)
                .is_some_and(|at| at > w.invoke_index),
            None => true,
        })
        .copied()
        .collect()
}

const NIL: usize = usize::MAX;

