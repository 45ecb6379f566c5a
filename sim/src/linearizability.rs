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

/// The determinate operations linearized so far, as a bitset over their ranks (in invoke
/// order), with a compact key for the cache: since operations are linearized roughly in order,
/// the set is a long run of ones followed by a short window, and only the window is stored.
/// That keeps each cached configuration a few words long however long the history is.
struct LinearizedSet {
    words: Vec<u64>,
    /// Number of leading words that are all ones.
    full_words: usize,
    /// One past the last word with any bit set.
    used_words: usize,
}

impl LinearizedSet {
    fn new(len: usize) -> LinearizedSet {
        LinearizedSet {
            words: vec![0; len.div_ceil(64)],
            full_words: 0,
            used_words: 0,
        }
    }

    fn insert(&mut self, rank: usize) {
        let w = rank / 64;
        debug_assert!(self.words[w] & (1 << (rank % 64)) == 0, "linearized twice");
        self.words[w] |= 1 << (rank % 64);
        self.used_words = self.used_words.max(w + 1);
        while self.full_words < self.words.len() && self.words[self.full_words] == u64::MAX {
            self.full_words += 1;
        }
    }

    fn remove(&mut self, rank: usize) {
        let w = rank / 64;
        debug_assert!(self.words[w] & (1 << (rank % 64)) != 0, "not linearized");
        self.words[w] &= !(1 << (rank % 64));
        self.full_words = self.full_words.min(w);
        while self.used_words > 0 && self.words[self.used_words - 1] == 0 {
            self.used_words -= 1;
        }
    }

    /// Identifies the set exactly: the count of full leading words, then the words after them.
    fn key(&self) -> Box<[u64]> {
        let window = &self.words[self.full_words..self.used_words.max(self.full_words)];
        std::iter::once(self.full_words as u64)
            .chain(window.iter().copied())
            .collect()
    }
}

/// The configurations the search has visited, with dominance (Lowe's cache, strengthened).
///
/// A configuration is the set of determinate operations linearized, the register value, how
/// many operations of each live group of interchangeable indeterminate operations were used,
/// and whether the last operation linearized was indeterminate. The first two form the key; they
/// fix which groups are still usable ("live"), so only live groups' counts are stored. Using
/// fewer indeterminate operations (with the flag clear or equal) leaves open every option that
/// using more would, since they are optional; so a configuration is skipped if a visited one
/// with the same key used no more of each live group.
#[derive(Default)]
struct VisitedConfigurations {
    by_key: HashMap<ConfigurationKey, Vec<IndeterminateUse>, WordHash>,
    len: usize,
}

type WordHash = BuildHasherDefault<WordHasher>;
/// Determinate operations linearized (compact bitset) and the register value.
type ConfigurationKey = (Box<[u64]>, Option<Value>);
/// Whether the last operation was indeterminate, and `(group, used)` for live groups with a
/// non-zero count, sorted by group.
type IndeterminateUse = (bool, Box<[(u32, u32)]>);

impl VisitedConfigurations {
    /// Records a configuration; false if it (or one that dominates it) was visited before.
    fn insert(&mut self, key: ConfigurationKey, usage: IndeterminateUse) -> bool {
        let visited = self.by_key.entry(key).or_default();
        if visited.iter().any(|seen| dominates(seen, &usage)) {
            return false;
        }
        let before = visited.len();
        visited.retain(|seen| !dominates(&usage, seen));
        visited.push(usage);
        self.len = self.len + visited.len() - before;
        true
    }
}

/// Whether configuration usage `a` leaves open every option `b` does.
fn dominates(a: &IndeterminateUse, b: &IndeterminateUse) -> bool {
    if a.0 && !b.0 {
        return false;
    }
    // Every count in `a` must be at most the matching count in `b` (absent means zero).
    let mut b_counts = b.1.iter().peekable();
    a.1.iter().all(|&(group, used)| {
        while b_counts.next_if(|&&(g, _)| g < group).is_some() {}
        matches!(b_counts.peek(), Some(&&(g, u)) if g == group && u >= used)
    })
}

/// What one search found and what it cost.
struct SearchReport {
    outcome: SearchOutcome,
    /// Search steps taken (each candidate tried or choice undone is one step).
    steps: u64,
    /// Configurations cached.
    states: usize,
}

/// What a list entry stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    /// The list head (a sentinel).
    Head,
    /// Invocation of a determinate operation (index into the ops).
    Call(usize),
    /// Completion of a determinate operation.
    Return(usize),
    /// A group of interchangeable indeterminate operations, placed at its first invoke.
    Group(usize),
    /// The pool of indeterminate writes of values nobody can observe any more (never linked
    /// into the lists; it is tried when a scan reaches the first pending completion).
    Pool,
}

/// One event in the search's doubly linked lists.
#[derive(Clone, Copy)]
struct Entry {
    kind: EntryKind,
    event_index: usize,
    /// For a call, its return; for a return, its call.
    partner: usize,
}

/// Indeterminate operations with the same effect: interchangeable, as none has a deadline, so
/// the search always takes the earliest-invoked unused one.
struct Group {
    /// Indices into the ops, in invoke order.
    members: Vec<usize>,
    /// When the group can no longer be used (see [`Liveness::death_of`]), precomputed.
    death: GroupDeath,
    /// For writes: the group joins the pool once the frontier passes this event index (its
    /// value can no longer be told apart by any remaining operation, and all its members have
    /// been invoked). `None` for CAS.
    pooled_after: Option<usize>,
}

impl Group {
    fn is_pooled(&self, frontier: usize) -> bool {
        self.pooled_after.is_some_and(|at| at < frontier)
    }
}

/// Precomputed bounds for [`Liveness::death_of`], so the check is a few comparisons.
#[derive(Clone, Copy)]
struct GroupDeath {
    /// The latest deadline of an operation that could use the stored value (`None`: none).
    last_user: Option<usize>,
    /// For a CAS: the value it expects and the latest deadline of a writer of that value.
    expects: Option<(Option<Value>, Option<usize>)>,
}

impl GroupDeath {
    fn is_dead(&self, frontier: usize, state: Option<Value>) -> bool {
        self.last_user.is_none_or(|at| at < frontier)
            || self.expects.is_some_and(|(expected, last_writer)| {
                state != expected && last_writer.is_none_or(|at| at < frontier)
            })
    }
}

/// Facts that tell when a group can no longer be used, whatever happens next.
struct Liveness {
    /// Per value: the latest deadline of an operation that reads it or CAS-expects it.
    latest_use: HashMap<Value, usize>,
    /// The latest-deadline failed CAS, and the latest one expecting something else.
    failed_cas: [Option<(usize, Option<Value>)>; 2],
    /// Per value: the latest deadline of an operation that writes it.
    latest_write: HashMap<Value, usize>,
    /// Per value: the latest deadline of an operation whose outcome depends on whether the
    /// register holds it (reads of it, CAS expecting it, failed ones included).
    latest_distinguisher: HashMap<Value, usize>,
}

impl Liveness {
    fn of(ops: &[PreparedOp]) -> Liveness {
        let mut facts = Liveness {
            latest_use: HashMap::new(),
            failed_cas: [None, None],
            latest_write: HashMap::new(),
            latest_distinguisher: HashMap::new(),
        };
        for op in ops {
            let deadline = op.complete_index.unwrap_or(usize::MAX);
            if let Some(v) = op.written() {
                let latest = facts.latest_write.entry(v).or_insert(0);
                *latest = (*latest).max(deadline);
            }
            if let Effect::Read(Some(v))
            | Effect::Cas {
                expected: Some(v), ..
            }
            | Effect::CasFailed { expected: Some(v) } = op.effect
            {
                let latest = facts.latest_distinguisher.entry(v).or_insert(0);
                *latest = (*latest).max(deadline);
            }
            match op.effect {
                Effect::Read(Some(v))
                | Effect::Cas {
                    expected: Some(v), ..
                } => {
                    let latest = facts.latest_use.entry(v).or_insert(0);
                    *latest = (*latest).max(deadline);
                }
                Effect::CasFailed { expected } => {
                    let entry = (deadline, expected);
                    match facts.failed_cas[0] {
                        Some(first) if first.1 == expected => {
                            facts.failed_cas[0] = Some(first.max(entry))
                        }
                        Some(first) if entry > first => {
                            facts.failed_cas = [Some(entry), Some(first)]
                        }
                        Some(_) => facts.failed_cas[1] = facts.failed_cas[1].max(Some(entry)),
                        None => facts.failed_cas[0] = Some(entry),
                    }
                }
                Effect::Read(None) | Effect::Cas { expected: None, .. } | Effect::Write(_) => {}
            }
        }
        facts
    }

    /// The latest deadline of any operation that could use a stored `x` right after it was
    /// stored (see [`PreparedOp::could_use`]), if any.
    fn latest_user(&self, x: Value) -> Option<usize> {
        let by_observer = self.latest_use.get(&x).copied();
        let by_failed_cas = self
            .failed_cas
            .iter()
            .flatten()
            .find(|(_, expected)| *expected != Some(x))
            .map(|(at, _)| *at);
        by_observer.max(by_failed_cas)
    }

    /// When an operation with `effect` can never again be used: at a configuration whose first
    /// pending completion is `frontier` and whose value is `state`, every determinate operation
    /// with a deadline before `frontier` is already linearized; so the operation is dead if no
    /// user of its value remains, or (for a CAS) the register holds something else and no
    /// writer of the expected value remains. Deadness never reverts along a search path.
    fn death_of(&self, effect: Effect) -> GroupDeath {
        let written = match effect {
            Effect::Write(v) | Effect::Cas { new: v, .. } => Some(v),
            Effect::Read(_) | Effect::CasFailed { .. } => None,
        };
        let expects = match effect {
            Effect::Cas { expected, .. } => Some((
                expected,
                expected.and_then(|e| self.latest_write.get(&e).copied()),
            )),
            _ => None,
        };
        GroupDeath {
            last_user: written.and_then(|x| self.latest_user(x)),
            expects,
        }
    }
}

/// One choice on the search path, to undo when backtracking, and facts about the
/// configuration it led to.
struct Frame {
    /// The entry linearized (a call, a group, or the pool).
    entry: usize,
    /// For the pool: the entry the scan was at, to resume from after undoing.
    resume: usize,
    state: Option<Value>,
    after_indeterminate: bool,
    /// For a group: whether this use exhausted it, so its entry was lifted.
    exhausted: bool,
    /// Group entries found dead at the configuration this choice led to, lifted in order.
    dead: Vec<usize>,
    /// `(group, used)` for the groups used so far that are still live and not pooled at the
    /// configuration this choice led to, sorted by group: what the cache compares...
    live_used: Vec<(u32, u32)>,
    /// ...with how many pooled writes were used (as members of groups now pooled, or from
    /// the pool itself).
    pool_consumed: u32,
    /// Writes added to the pool at the configuration this choice led to.
    pooled: u32,
    /// Whether the pool was tried at the configuration this choice led to.
    pool_tried: bool,
}

impl Frame {
    /// The root configuration, before any choice.
    fn root() -> Frame {
        Frame {
            entry: NIL,
            resume: NIL,
            state: None,
            after_indeterminate: false,
            exhausted: false,
            dead: Vec::new(),
            live_used: Vec::new(),
            pool_consumed: 0,
            pooled: 0,
            pool_tried: false,
        }
    }
}

/// Wing & Gong / Lowe search over one key's operations (see the module docs).
struct Search {
    ops: Vec<PreparedOp>,
    entries: Vec<Entry>,
    /// The list of all live entries, in event order.
    next: Vec<usize>,
    prev: Vec<usize>,
    /// The list of pending return entries only, in event order (its first one is the frontier).
    next_return: Vec<usize>,
    prev_return: Vec<usize>,
    groups: Vec<Group>,
    used: Vec<u32>,
    /// The stand-in for values nobody can observe any more.
    unobservable: Value,
    /// Per value: the latest deadline of an operation that can tell it apart.
    latest_distinguisher: HashMap<Value, usize>,
    /// Pooled writes usable now, and the entry standing for the pool.
    pool_available: u32,
    pool_entry: usize,
    required_rank: Vec<usize>,
    linearized: LinearizedSet,
    required_left: usize,
    state: Option<Value>,
    after_indeterminate: bool,
    /// The choices made, after the root frame (which is never popped).
    path: Vec<Frame>,
    visited: VisitedConfigurations,
}

impl Search {
    fn new(all_ops: &[PreparedOp]) -> Search {
        let mut merged = all_ops.to_vec();
        let unobservable = merge_unobserved_values(&mut merged);
        let ops = useful_ops(&merged);
        debug_assert!(
            ops.windows(2)
                .all(|w| w[0].invoke_index < w[1].invoke_index),
            "invoke order"
        );
        let liveness = Liveness::of(&ops);
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of: HashMap<Effect, usize> = HashMap::new();
        let mut required_rank = vec![NIL; ops.len()];
        let mut required = 0;
        let mut events: Vec<(usize, EntryKind)> = Vec::with_capacity(2 * ops.len());
        for (i, op) in ops.iter().enumerate() {
            if op.required {
                required_rank[i] = required;
                required += 1;
                events.push((op.invoke_index, EntryKind::Call(i)));
                let completion = op.complete_index.unwrap_or(usize::MAX);
                debug_assert!(completion > op.invoke_index, "completion after invoke");
                events.push((completion, EntryKind::Return(i)));
            } else {
                let g = *group_of.entry(op.effect).or_insert_with(|| {
                    groups.push(Group {
                        members: Vec::new(),
                        death: liveness.death_of(op.effect),
                        pooled_after: match op.effect {
                            Effect::Write(x) => {
                                Some(liveness.latest_distinguisher.get(&x).copied().unwrap_or(0))
                            }
                            _ => None,
                        },
                    });
                    events.push((op.invoke_index, EntryKind::Group(groups.len() - 1)));
                    groups.len() - 1
                });
                groups[g].members.push(i);
                if let Some(at) = &mut groups[g].pooled_after {
                    *at = (*at).max(op.invoke_index);
                }
            }
        }
        events.sort_by_key(|&(index, _)| index);
        let mut entries = vec![Entry {
            kind: EntryKind::Head,
            event_index: 0,
            partner: NIL,
        }];
        let mut call_entry = vec![NIL; ops.len()];
        for (event_index, kind) in events {
            let at = entries.len();
            let partner = match kind {
                EntryKind::Call(i) => {
                    call_entry[i] = at;
                    NIL
                }
                EntryKind::Return(i) => {
                    entries[call_entry[i]].partner = at;
                    call_entry[i]
                }
                EntryKind::Head | EntryKind::Group(_) | EntryKind::Pool => NIL,
            };
            entries.push(Entry {
                kind,
                event_index,
                partner,
            });
        }
        let n = entries.len();
        let next: Vec<usize> = (0..n)
            .map(|i| if i + 1 < n { i + 1 } else { NIL })
            .collect();
        let prev: Vec<usize> = (0..n).map(|i| if i == 0 { NIL } else { i - 1 }).collect();
        // The returns-only list, threaded through the same indices.
        let mut next_return = vec![NIL; n];
        let mut prev_return = vec![NIL; n];
        let mut last = 0;
        for i in 1..n {
            if matches!(entries[i].kind, EntryKind::Return(_)) {
                next_return[last] = i;
                prev_return[i] = last;
                last = i;
            }
        }
        // The pool's entry stays outside the lists.
        let pool_entry = entries.len();
        entries.push(Entry {
            kind: EntryKind::Pool,
            event_index: usize::MAX,
            partner: NIL,
        });
        let mut next: Vec<usize> = next;
        let mut prev: Vec<usize> = prev;
        for list in [&mut next, &mut prev, &mut next_return, &mut prev_return] {
            list.push(NIL);
        }
        let used = vec![0; groups.len()];
        Search {
            ops,
            entries,
            next,
            prev,
            next_return,
            prev_return,
            groups,
            used,
            unobservable,
            latest_distinguisher: liveness.latest_distinguisher,
            pool_available: 0,
            pool_entry,
            required_rank,
            linearized: LinearizedSet::new(required),
            required_left: required,
            state: None,
            after_indeterminate: false,
            path: vec![Frame::root()],
            visited: VisitedConfigurations::default(),
        }
    }

    /// Event index of the first pending completion: only operations invoked before it may be
    /// linearized next.
    fn frontier(&self) -> usize {
        match self.next_return[0] {
            NIL => usize::MAX,
            r => self.entries[r].event_index,
        }
    }

    fn unlink(next: &mut [usize], prev: &mut [usize], x: usize) {
        let (p, q) = (prev[x], next[x]);
        next[p] = q;
        if q != NIL {
            prev[q] = p;
        }
    }

    fn relink(next: &mut [usize], prev: &mut [usize], x: usize) {
        let (p, q) = (prev[x], next[x]);
        next[p] = x;
        if q != NIL {
            prev[q] = x;
        }
    }

    /// Removes an entry (with its return, for a call) from the lists; undone by `unlift`.
    fn lift(&mut self, e: usize) {
        Self::unlink(&mut self.next, &mut self.prev, e);
        let r = self.entries[e].partner;
        if r != NIL {
            Self::unlink(&mut self.next, &mut self.prev, r);
            Self::unlink(&mut self.next_return, &mut self.prev_return, r);
        }
    }

    fn unlift(&mut self, e: usize) {
        let r = self.entries[e].partner;
        if r != NIL {
            Self::relink(&mut self.next_return, &mut self.prev_return, r);
            Self::relink(&mut self.next, &mut self.prev, r);
        }
        Self::relink(&mut self.next, &mut self.prev, e);
    }

    /// The next unused member of group `g`, if any, counting `extra` uses not yet recorded.
    fn next_member(&self, g: usize, extra: u32) -> Option<usize> {
        self.groups[g]
            .members
            .get((self.used[g] + extra) as usize)
            .copied()
    }

    /// Whether some operation that may be linearized next could use the value `x` just stored
    /// by the next member of group `own` (`NIL`: by the pool), which leaves the register at `x`.
    ///
    /// A failed CAS only counts if it expects the value the register held *before* (so it
    /// could not fail without the store): otherwise the failed CAS can be moved before the
    /// store in any linearization, and the store must be justified by another user.
    fn has_user(&self, own: usize, x: Value) -> bool {
        let frontier = self.frontier();
        let before = self.state;
        let usable = |u: &PreparedOp| {
            u.could_use(x)
                && u.step(Some(x)).is_some()
                && match u.effect {
                    Effect::CasFailed { expected } => expected == before,
                    _ => true,
                }
        };
        let mut c = self.next[0];
        while c != NIL {
            match self.entries[c].kind {
                EntryKind::Return(_) => return false,
                EntryKind::Call(j) if usable(&self.ops[j]) => return true,
                EntryKind::Group(h) => {
                    if let Some(m) = self.next_member(h, u32::from(h == own))
                        && self.ops[m].invoke_index < frontier
                        && usable(&self.ops[m])
                    {
                        return true;
                    }
                }
                EntryKind::Call(_) | EntryKind::Head | EntryKind::Pool => {}
            }
            c = self.next[c];
        }
        false
    }

    /// The register value as the cache sees it: a value no remaining operation can tell apart
    /// from others is replaced by the common stand-in.
    fn canonical(&self, state: Option<Value>, frontier: usize) -> Option<Value> {
        match state {
            Some(v)
                if self
                    .latest_distinguisher
                    .get(&v)
                    .is_none_or(|&at| at < frontier) =>
            {
                Some(self.unobservable)
            }
            other => other,
        }
    }

    /// Linearizes the operation of entry `e` (a call, a group's next member, or a pooled
    /// write), moving to `new_state`, if the configuration reached is new. Returns whether it
    /// did. `resume` is where the scan was (used to continue after undoing a pool choice).
    fn try_advance(&mut self, e: usize, new_state: Option<Value>, resume: usize) -> bool {
        let mut exhausted = false;
        let kind = self.entries[e].kind;
        match kind {
            EntryKind::Call(i) => {
                self.linearized.insert(self.required_rank[i]);
                self.required_left -= 1;
                self.lift(e);
            }
            EntryKind::Group(g) => {
                self.used[g] += 1;
                if self.used[g] as usize == self.groups[g].members.len() {
                    exhausted = true;
                    self.lift(e);
                }
            }
            EntryKind::Pool => self.pool_available -= 1,
            EntryKind::Return(_) | EntryKind::Head => unreachable!("only calls, groups, pool"),
        }
        // What the cache compares: the parent's live groups minus those that died or joined
        // the pool, plus this one; and the pooled writes consumed.
        let frontier = self.frontier();
        let parent = self.path.last().expect("the root frame is never popped");
        let mut pool_consumed = parent.pool_consumed + u32::from(kind == EntryKind::Pool);
        let mut live_used: Vec<(u32, u32)> = Vec::with_capacity(parent.live_used.len() + 1);
        let mut account = |g: usize, live_used: &mut Vec<(u32, u32)>| {
            let group = &self.groups[g];
            if group.death.is_dead(frontier, new_state) {
            } else if group.is_pooled(frontier) {
                pool_consumed += self.used[g];
            } else {
                live_used.push((g as u32, self.used[g]));
            }
        };
        for &(g, _) in &parent.live_used {
            account(g as usize, &mut live_used);
        }
        if let EntryKind::Group(g) = kind
            && parent
                .live_used
                .binary_search_by_key(&(g as u32), |&(h, _)| h)
                .is_err()
        {
            account(g, &mut live_used);
            live_used.sort_unstable();
        }
        let after_indeterminate = !matches!(kind, EntryKind::Call(_));
        let mut usage = live_used.clone();
        if pool_consumed > 0 {
            usage.push((u32::MAX, pool_consumed));
        }
        let fresh = self.visited.insert(
            (self.linearized.key(), self.canonical(new_state, frontier)),
            (after_indeterminate, usage.into()),
        );
        self.path.push(Frame {
            entry: e,
            resume,
            state: self.state,
            after_indeterminate: self.after_indeterminate,
            exhausted,
            dead: Vec::new(),
            live_used,
            pool_consumed,
            pooled: 0,
            pool_tried: false,
        });
        self.state = new_state;
        self.after_indeterminate = after_indeterminate;
        if !fresh {
            self.retreat();
        }
        fresh
    }

    /// Undoes the last choice on the path; returns the entry to continue scanning from, or
    /// `None` if no choice is left to undo.
    fn retreat(&mut self) -> Option<usize> {
        if self.path.len() == 1 {
            return None;
        }
        let frame = self.path.pop()?;
        for &d in frame.dead.iter().rev() {
            self.unlift(d);
        }
        self.pool_available -= frame.pooled;
        let resume = match self.entries[frame.entry].kind {
            EntryKind::Call(i) => {
                self.unlift(frame.entry);
                self.linearized.remove(self.required_rank[i]);
                self.required_left += 1;
                self.next[frame.entry]
            }
            EntryKind::Group(g) => {
                if frame.exhausted {
                    self.unlift(frame.entry);
                }
                self.used[g] -= 1;
                self.next[frame.entry]
            }
            EntryKind::Pool => {
                self.pool_available += 1;
                frame.resume
            }
            EntryKind::Return(_) | EntryKind::Head => unreachable!("only calls, groups, pool"),
        };
        self.state = frame.state;
        self.after_indeterminate = frame.after_indeterminate;
        Some(resume)
    }

    fn report(&self, outcome: SearchOutcome, steps: u64) -> SearchReport {
        SearchReport {
            outcome,
            steps,
            states: self.visited.len,
        }
    }

    fn run(&mut self, step_budget: u64) -> SearchReport {
        let mut steps: u64 = 0;
        let mut entry = self.next[0];
        loop {
            if self.required_left == 0 {
                return self.report(SearchOutcome::Linearizable, steps);
            }
            if steps >= step_budget {
                return self.report(SearchOutcome::OutOfBudget, steps);
            }
            steps += 1;
            let kind = if entry == NIL {
                EntryKind::Head
            } else {
                self.entries[entry].kind
            };
            match kind {
                EntryKind::Call(i) => {
                    let op = self.ops[i];
                    let allowed = !(self.after_indeterminate && op.is_write());
                    if let Some(new_state) = op.step(self.state).filter(|_| allowed)
                        && self.try_advance(entry, new_state, NIL)
                    {
                        entry = self.next[0];
                        continue;
                    }
                    entry = self.next[entry];
                }
                EntryKind::Group(g) => {
                    let frontier = self.frontier();
                    let group = &self.groups[g];
                    if group.death.is_dead(frontier, self.state) || group.is_pooled(frontier) {
                        // Never usable again below this configuration, or only through the
                        // pool: stop scanning it.
                        let pooled = (group.members.len() as u32) - self.used[g];
                        let pooling = !group.death.is_dead(frontier, self.state);
                        self.lift(entry);
                        let frame = self.path.last_mut().expect("root frame");
                        frame.dead.push(entry);
                        if pooling {
                            frame.pooled += pooled;
                            self.pool_available += pooled;
                        }
                        entry = self.next[entry];
                        continue;
                    }
                    let member = self.next_member(g, 0).expect("exhausted groups are lifted");
                    let op = self.ops[member];
                    let allowed =
                        op.invoke_index < frontier && !(self.after_indeterminate && op.is_write());
                    // An indeterminate operation only goes right before one that uses it.
                    if let Some(new_state) = op.step(self.state).filter(|_| allowed)
                        && let Some(x) = new_state
                        && self.has_user(g, x)
                        && self.try_advance(entry, new_state, NIL)
                    {
                        entry = self.next[0];
                        continue;
                    }
                    entry = self.next[entry];
                }
                EntryKind::Return(_) | EntryKind::Head | EntryKind::Pool => {
                    // The scan reached a completion whose operation is not linearized yet (or
                    // the end of the list). Every candidate here has been tried except the
                    // pool; then undo the most recent choice and go on after it.
                    let frame = self.path.last_mut().expect("root frame");
                    if !frame.pool_tried {
                        frame.pool_tried = true;
                        let junk = self.unobservable;
                        if self.pool_available > 0
                            && !self.after_indeterminate
                            && self.has_user(NIL, junk)
                            && self.try_advance(self.pool_entry, Some(junk), entry)
                        {
                            entry = self.next[0];
                            continue;
                        }
                    }
                    match self.retreat() {
                        Some(resume) => entry = resume,
                        None => return self.report(SearchOutcome::NotLinearizable, steps),
                    }
                }
            }
        }
    }
}

/// Searches for a linearization of one key's operations within `step_budget` steps.
fn search(ops: &[PreparedOp], step_budget: u64) -> SearchReport {
    let mut search = Search::new(ops);
    if search.required_left == 0 {
        return search.report(SearchOutcome::Linearizable, 0);
    }
    search.run(step_budget)
}

/// Shrinks a non-linearizable set of operations to a small one that still fails. Returns the
/// set and whether shrinking finished within budget.
///
/// Stage 1 removes only pure observers (determinate reads and failed CAS). That is sound: if a
/// set fails after removing observers, the full set fails too, so the observers left are the
/// real culprits (say, the one stale read). Stage 2 then removes writes and successful or
/// indeterminate CAS to make the report small. Removing a write can create a failure that was
/// not there, so stage 2 obeys the writer rule: a candidate keeps, for every value an operation
/// needs the register to hold (a read's result, a CAS's expected value, for a failed CAS some
/// value other than its expected one), some *other* operation that writes it early enough to
/// precede it, whenever the full set has one; operations left without such a writer are
/// dropped too, transitively, and a candidate that would drop a stage-1 culprit is rejected.
fn shrink(ops: &[PreparedOp], config: &CheckerConfig) -> (Vec<PreparedOp>, bool) {
    let mut budget = config.shrink_step_budget;
    let is_observer = |op: &PreparedOp| {
        op.required && matches!(op.effect, Effect::Read(_) | Effect::CasFailed { .. })
    };
    let culprits = match reduce(ops.to_vec(), is_observer, None, &mut budget, config) {
        Ok(set) => set,
        Err(set) => return (set, false),
    };
    let writers_anywhere = EarliestWriters::of(ops);
    match reduce(
        culprits,
        |op| !is_observer(op),
        Some(&writers_anywhere),
        &mut budget,
        config,
    ) {
        Ok(set) => (set, true),
        Err(set) => (set, false),
    }
}

/// Delta debugging over the operations of `current` that are `removable`: at each granularity,
/// first try keeping one chunk of them alone, then try removing one chunk (from the end
/// backwards); finish with single removals until none applies. With `writer_rule`, candidates
/// are closed under it (see [`shrink`]). `Err` carries the current set when the budget ran out.
fn reduce(
    mut current: Vec<PreparedOp>,
    removable: impl Fn(&PreparedOp) -> bool,
    writer_rule: Option<&EarliestWriters>,
    budget: &mut u64,
    config: &CheckerConfig,
) -> Result<Vec<PreparedOp>, Vec<PreparedOp>> {
    // Builds the candidate without the removable ops whose positions (among the removable ones)
    // `drop` selects; returns it if it still fails. `Err(())`: out of budget.
    let attempt = |current: &[PreparedOp],
                   drop: &dyn Fn(usize) -> bool,
                   budget: &mut u64|
     -> Result<Option<Vec<PreparedOp>>, ()> {
        let mut rank = 0;
        let mut candidate = Vec::with_capacity(current.len());
        for op in current {
            if removable(op) {
                rank += 1;
                if drop(rank - 1) {
                    continue;
                }
            }
            candidate.push(*op);
        }
        if let Some(anywhere) = writer_rule {
            let pinned = candidate.iter().filter(|op| !removable(op)).count();
            candidate = close_under_writer_rule(candidate, anywhere);
            if candidate.iter().filter(|op| !removable(op)).count() < pinned {
                return Ok(None);
            }
        }
        if candidate.is_empty() || candidate.len() == current.len() {
            return Ok(None);
        }
        if *budget == 0 {
            return Err(());
        }
        let report = search(&candidate, (*budget).min(config.step_budget_per_key));
        *budget = budget.saturating_sub(report.steps.max(1));
        Ok(matches!(report.outcome, SearchOutcome::NotLinearizable).then_some(candidate))
    };

    let count = |set: &[PreparedOp]| set.iter().filter(|op| removable(op)).count();
    let mut chunk = count(&current).div_ceil(2).max(1);
    'granularity: loop {
        let n = count(&current);
        if n == 0 {
            return Ok(current);
        }
        // Keep one chunk alone (candidates are small, so this is cheap).
        if chunk < n {
            for start in (0..n).step_by(chunk) {
                let keep = |r: usize| !(start..start + chunk).contains(&r);
                match attempt(&current, &keep, budget) {
                    Err(()) => return Err(current),
                    Ok(Some(smaller)) => {
                        current = smaller;
                        chunk = count(&current).div_ceil(2).max(1);
                        continue 'granularity;
                    }
                    Ok(None) => {}
                }
            }
        }
        // Remove one chunk, from the end backwards, so an operation is usually tried after the
        // later operations that observed its value.
        let mut removed_any = false;
        let mut end = n;
        while end > 0 {
            let start = end.saturating_sub(chunk);
            let drop = |r: usize| (start..end).contains(&r);
            match attempt(&current, &drop, budget) {
                Err(()) => return Err(current),
                Ok(Some(smaller)) => {
                    current = smaller;
                    removed_any = true;
                    // Closing may have removed more than the chunk; never revisit past `start`.
                    end = start.min(count(&current));
                }
                Ok(None) => end = start,
            }
        }
        if chunk > 1 {
            chunk = chunk.div_ceil(2);
        } else if !removed_any {
            return Ok(current);
        }
    }
}

/// Drops, repeatedly, the operations of `candidate` that break the writer rule (see [`shrink`]).
fn close_under_writer_rule(
    mut candidate: Vec<PreparedOp>,
    writers_anywhere: &EarliestWriters,
) -> Vec<PreparedOp> {
    loop {
        let writers = EarliestWriters::of(&candidate);
        let before = candidate.len();
        candidate.retain(|op| {
            let needed = match op.effect {
                Effect::CasFailed { expected } => Need::Not(expected),
                _ => match op.observed() {
                    Some(v) => Need::Value(v),
                    None => return true,
                },
            };
            writers.can_precede(needed, op) || !writers_anywhere.can_precede(needed, op)
        });
        if candidate.len() == before {
            return candidate;
        }
    }
}

/// What an operation needs some earlier write to have produced.
#[derive(Clone, Copy)]
enum Need {
    /// This value (a read's result, a CAS's expected value).
    Value(Value),
    /// Any value but this one (a failed CAS). The initial absent value does not count: the
    /// point is to keep whatever write made the CAS fail.
    Not(Option<Value>),
}

/// For each value, the two earliest-invoked operations that write it, and the earliest writers
/// of two different values: enough to ask "can another operation writing what this one needs
/// precede it?".
struct EarliestWriters {
    by_value: HashMap<Value, [(usize, usize); 2]>,
    /// `(invoke_index, record, value)` of the earliest writer, and of the earliest writer of a
    /// value different from the first's.
    distinct: [Option<(usize, usize, Value)>; 2],
}

impl EarliestWriters {
    /// `(invoke_index, record)` pairs; `usize::MAX` marks "none".
    const NONE: [(usize, usize); 2] = [(usize::MAX, usize::MAX); 2];

    fn of(ops: &[PreparedOp]) -> EarliestWriters {
        let mut writers = EarliestWriters {
            by_value: HashMap::new(),
            distinct: [None, None],
        };
        for op in ops {
            let Some(v) = op.written() else { continue };
            let entry = (op.invoke_index, op.record);
            let slots = writers.by_value.entry(v).or_insert(Self::NONE);
            if entry < slots[0] {
                slots[1] = slots[0];
                slots[0] = entry;
            } else if entry < slots[1] {
                slots[1] = entry;
            }
        }
        // The earliest writer, then the earliest of a different value.
        let mut firsts: Vec<(usize, usize, Value)> = writers
            .by_value
            .iter()
            .map(|(&v, slots)| (slots[0].0, slots[0].1, v))
            .collect();
        firsts.sort_unstable();
        writers.distinct = [firsts.first().copied(), firsts.get(1).copied()];
        writers
    }

    /// Whether an operation other than `op` writes what `op` needs and was invoked before `op`
    /// had to take effect (its completion; any time for an indeterminate operation).
    fn can_precede(&self, need: Need, op: &PreparedOp) -> bool {
        let deadline = op.complete_index.unwrap_or(usize::MAX);
        let earliest = match need {
            Need::Value(v) => {
                let slots = self.by_value.get(&v).unwrap_or(&Self::NONE);
                if slots[0].1 == op.record {
                    slots[1].0
                } else {
                    slots[0].0
                }
            }
            // Only failed CAS ask this, and they write nothing, so no self-exclusion.
            Need::Not(expected) => match self.distinct {
                [Some((at, _, v)), _] if Some(v) != expected => at,
                [_, Some((at, _, _))] => at,
                _ => usize::MAX,
            },
        };
        earliest != usize::MAX && earliest < deadline
    }
}

/// A fast, deterministic hasher for cached configurations (bitset words and a value).
#[derive(Default)]
struct WordHasher(u64);

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_usize(&mut self, word: usize) {
        self.add(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
