//! Shrinking a failing history to a small set of operations that still cannot be ordered.

use super::*;

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
pub(super) fn shrink(ops: &[PreparedOp], config: &CheckerConfig) -> (Vec<PreparedOp>, bool) {
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
pub(super) fn reduce(
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
pub(super) fn close_under_writer_rule(
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
pub(super) enum Need {
    /// This value (a read's result, a CAS's expected value).
    Value(Value),
    /// Any value but this one (a failed CAS). The initial absent value does not count: the
    /// point is to keep whatever write made the CAS fail.
    Not(Option<Value>),
}

/// For each value, the two earliest-invoked operations that write it, and the earliest writers
/// of two different values: enough to ask "can another operation writing what this one needs
/// precede it?".
pub(super) struct EarliestWriters {
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
