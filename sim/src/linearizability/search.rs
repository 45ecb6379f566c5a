//! The search for a linearization: cached configurations, groups of interchangeable indeterminate operations, and the depth-first walk.

use super::*;

/// The determinate operations linearized so far, as a bitset over their ranks (in invoke
/// order), with a compact key for the cache: since operations are linearized roughly in order,
/// the set is a long run of ones followed by a short window, and only the window is stored.
/// That keeps each cached configuration a few words long however long the history is.
pub(super) struct LinearizedSet {
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
pub(super) struct VisitedConfigurations {
    by_key: HashMap<ConfigurationKey, Vec<IndeterminateUse>, WordHash>,
    len: usize,
}

pub(super) type WordHash = BuildHasherDefault<WordHasher>;
/// Determinate operations linearized (compact bitset) and the register value.
pub(super) type ConfigurationKey = (Box<[u64]>, Option<Value>);
/// Whether the last operation was indeterminate, and `(group, used)` for live groups with a
/// non-zero count, sorted by group.
pub(super) type IndeterminateUse = (bool, Box<[(u32, u32)]>);

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
pub(super) fn dominates(a: &IndeterminateUse, b: &IndeterminateUse) -> bool {
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
pub(super) struct SearchReport {
    pub(super) outcome: SearchOutcome,
    /// Search steps taken (each candidate tried or choice undone is one step).
    pub(super) steps: u64,
    /// Configurations cached.
    pub(super) states: usize,
}

/// What a list entry stands for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum EntryKind {
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
pub(super) struct Entry {
    kind: EntryKind,
    event_index: usize,
    /// For a call, its return; for a return, its call.
    partner: usize,
}

/// Indeterminate operations with the same effect: interchangeable, as none has a deadline, so
/// the search always takes the earliest-invoked unused one.
pub(super) struct Group {
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
pub(super) struct GroupDeath {
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
pub(super) struct Liveness {
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
    pub(super) fn of(ops: &[PreparedOp]) -> Liveness {
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
    pub(super) fn latest_user(&self, x: Value) -> Option<usize> {
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
pub(super) struct Frame {
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
pub(super) struct Search {
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
pub(super) fn search(ops: &[PreparedOp], step_budget: u64) -> SearchReport {
    let mut search = Search::new(ops);
    if search.required_left == 0 {
        return search.report(SearchOutcome::Linearizable, 0);
    }
    search.run(step_budget)
}

