//! Tests of the register linearizability checker through its public API: hand-written classic
//! cases, histories generated from a real sequential register (must pass), mutated ones (must
//! fail), agreement with a brute-force checker on tiny random histories, budgets, and a size
//! sanity check.

use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use vecraft_sim::history::{
    ClientId, Command, History, Key, OpId, Operation, Outcome, RecordedOp, Value,
};
use vecraft_sim::linearizability::{CheckerConfig, Verdict, check};

/// Records a hand-written history with a clock that ticks by one per event.
#[derive(Default)]
struct Script {
    history: History,
    time: u64,
}

impl Script {
    fn invoke(&mut self, client: ClientId, op: Operation) -> OpId {
        self.time += 10;
        self.history.invoke(client, op, self.time).unwrap()
    }

    fn done(&mut self, id: OpId, outcome: Outcome) {
        self.time += 10;
        self.history.complete(id, outcome, self.time).unwrap();
    }

    /// An operation that runs alone from invoke to completion.
    fn run(&mut self, client: ClientId, op: Operation, outcome: Outcome) -> OpId {
        let id = self.invoke(client, op);
        self.done(id, outcome);
        id
    }

    fn verdict(&self) -> Verdict {
        check(&self.history, &CheckerConfig::default())
    }
}

fn read_ok(v: Option<Value>) -> Outcome {
    Outcome::ReadOk(v)
}

/// The ids of the operations a `NotLinearizable` verdict reports, or a failure otherwise.
fn reported(verdict: &Verdict) -> (Key, Vec<OpId>, bool) {
    match verdict {
        Verdict::NotLinearizable { key, ops, minimal } => {
            (*key, ops.iter().map(|op| op.id).collect(), *minimal)
        }
        other => panic!("expected NotLinearizable, got {other}"),
    }
}

#[test]
fn sequential_history_is_linearizable() {
    let mut s = Script::default();
    s.run(1, Operation::read(1), read_ok(None));
    s.run(1, Operation::write(1, 5), Outcome::Ok);
    s.run(2, Operation::read(1), read_ok(Some(5)));
    assert_eq!(s.verdict(), Verdict::Linearizable);
    assert_eq!(s.verdict().to_string(), "linearizable");
}

#[test]
fn classic_stale_read_is_caught_with_its_writers() {
    let mut s = Script::default();
    let w1 = s.run(1, Operation::write(1, 1), Outcome::Ok);
    let w2 = s.run(2, Operation::write(1, 2), Outcome::Ok);
    s.run(1, Operation::read(2), read_ok(None)); // another key, irrelevant
    let r = s.run(3, Operation::read(1), read_ok(Some(1)));
    let verdict = s.verdict();
    let (key, ids, minimal) = reported(&verdict);
    assert_eq!(key, 1);
    assert_eq!(ids, vec![w1, w2, r]);
    assert!(minimal);
    let text = verdict.to_string();
    assert!(text.contains("NOT linearizable: on key 1"), "{text}");
    assert!(text.contains("client 3: read -> 1"), "{text}");
    assert!(text.contains("client 2: write 2"), "{text}");
}

#[test]
fn read_of_a_value_never_written_is_caught_alone() {
    let mut s = Script::default();
    s.run(1, Operation::write(4, 1), Outcome::Ok);
    let r = s.run(2, Operation::read(4), read_ok(Some(7)));
    s.run(1, Operation::read(4), read_ok(Some(1)));
    let (key, ids, minimal) = reported(&s.verdict());
    assert_eq!((key, ids, minimal), (4, vec![r], true));
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    for (first, second) in [(1, 2), (2, 1)] {
        let mut s = Script::default();
        let a = s.invoke(1, Operation::write(1, 1));
        let b = s.invoke(2, Operation::write(1, 2));
        s.done(b, Outcome::Ok);
        s.done(a, Outcome::Ok);
        s.run(3, Operation::read(1), read_ok(Some(first)));
        s.run(3, Operation::read(1), read_ok(Some(first)));
        assert_eq!(s.verdict(), Verdict::Linearizable, "reading {first}");
        // Once both are done, the value cannot change back.
        s.run(3, Operation::read(1), read_ok(Some(second)));
        assert!(
            !s.verdict().is_linearizable(),
            "reading {first} then {second}"
        );
    }
}

#[test]
fn indeterminate_write_may_appear_later() {
    let mut s = Script::default();
    s.run(1, Operation::write(1, 1), Outcome::Ok);
    s.run(2, Operation::write(1, 5), Outcome::Info);
    s.run(3, Operation::read(1), read_ok(Some(1)));
    s.run(3, Operation::read(1), read_ok(Some(1)));
    s.run(3, Operation::read(1), read_ok(Some(5)));
    assert_eq!(s.verdict(), Verdict::Linearizable);
    // ... but only once: it cannot take effect twice.
    s.run(3, Operation::read(1), read_ok(Some(1)));
    s.run(3, Operation::read(1), read_ok(Some(5)));
    assert!(!s.verdict().is_linearizable());
}

#[test]
fn indeterminate_write_may_never_appear() {
    let mut s = Script::default();
    s.run(2, Operation::write(1, 5), Outcome::Info);
    s.invoke(4, Operation::write(1, 6)); // never completes
    s.run(3, Operation::read(1), read_ok(None));
    s.run(3, Operation::read(1), read_ok(None));
    assert_eq!(s.verdict(), Verdict::Linearizable);
}

#[test]
fn indeterminate_write_cannot_appear_before_its_invoke() {
    let mut s = Script::default();
    let r = s.run(3, Operation::read(1), read_ok(Some(5)));
    s.run(2, Operation::write(1, 5), Outcome::Info);
    // The write cannot precede the read, so the read alone is the explanation.
    let (_, ids, _) = reported(&s.verdict());
    assert_eq!(ids, vec![r]);
}

#[test]
fn failed_operations() {
    // A failed write did not happen.
    let mut s = Script::default();
    s.run(1, Operation::write(1, 9), Outcome::Fail);
    s.run(2, Operation::read(1), read_ok(None));
    assert_eq!(s.verdict(), Verdict::Linearizable);
    s.run(2, Operation::read(1), read_ok(Some(9)));
    assert!(!s.verdict().is_linearizable());

    // A failed CAS executed and found something other than `expected`.
    let mut s = Script::default();
    s.run(1, Operation::write(1, 1), Outcome::Ok);
    s.run(2, Operation::cas(1, Some(3), 2), Outcome::Fail);
    s.run(2, Operation::read(1), read_ok(Some(1)));
    assert_eq!(s.verdict(), Verdict::Linearizable);
    let w = OpId(0);
    let bad = s.run(2, Operation::cas(1, Some(1), 2), Outcome::Fail);
    let (_, ids, _) = reported(&s.verdict());
    assert_eq!(ids, vec![w, bad]);

    // A CAS expecting "absent" may fail if a concurrent write came first.
    let mut s = Script::default();
    let c = s.invoke(1, Operation::cas(1, None, 2));
    s.run(2, Operation::write(1, 7), Outcome::Ok);
    s.done(c, Outcome::Fail);
    s.run(2, Operation::read(1), read_ok(Some(7)));
    assert_eq!(s.verdict(), Verdict::Linearizable);
}

#[test]
fn failed_cas_can_be_explained_only_by_an_indeterminate_write() {
    let mut s = Script::default();
    s.run(1, Operation::write(1, 1), Outcome::Ok);
    s.run(2, Operation::write(1, 5), Outcome::Info);
    s.run(3, Operation::cas(1, Some(1), 2), Outcome::Fail);
    assert_eq!(s.verdict(), Verdict::Linearizable);
}

#[test]
fn an_indeterminate_write_takes_effect_at_most_once() {
    // The timed-out write of 5 explains the read of 5; it cannot also explain, later, a CAS
    // that failed to find 1 while 1 was the only value around.
    let mut s = Script::default();
    s.run(1, Operation::write(1, 1), Outcome::Ok);
    s.invoke(2, Operation::write(1, 5)); // never completes
    s.run(3, Operation::read(1), read_ok(Some(5)));
    s.run(3, Operation::write(1, 1), Outcome::Ok);
    s.run(3, Operation::read(1), read_ok(Some(1)));
    s.run(3, Operation::cas(1, Some(1), 9), Outcome::Fail);
    assert!(!s.verdict().is_linearizable());

    // A second timed-out write (of a value nobody read) can explain it.
    let mut s = Script::default();
    s.run(1, Operation::write(1, 1), Outcome::Ok);
    s.invoke(2, Operation::write(1, 5));
    s.run(4, Operation::write(1, 6), Outcome::Info);
    s.run(3, Operation::read(1), read_ok(Some(5)));
    s.run(3, Operation::write(1, 1), Outcome::Ok);
    s.run(3, Operation::read(1), read_ok(Some(1)));
    s.run(3, Operation::cas(1, Some(1), 9), Outcome::Fail);
    assert_eq!(s.verdict(), Verdict::Linearizable);
}

#[test]
fn cas_chain() {
    let mut s = Script::default();
    s.run(1, Operation::cas(1, None, 1), Outcome::Ok);
    let a = s.invoke(1, Operation::cas(1, Some(1), 2));
    let b = s.invoke(2, Operation::cas(1, Some(2), 3));
    let c = s.invoke(3, Operation::cas(1, Some(3), 4));
    // Completed in the reverse of the only order that works.
    s.done(c, Outcome::Ok);
    s.done(b, Outcome::Ok);
    s.done(a, Outcome::Ok);
    s.run(1, Operation::read(1), read_ok(Some(4)));
    assert_eq!(s.verdict(), Verdict::Linearizable);

    // Two CAS cannot both succeed from the same value.
    let mut s = Script::default();
    let x = s.invoke(1, Operation::cas(1, None, 1));
    let y = s.invoke(2, Operation::cas(1, None, 2));
    s.done(x, Outcome::Ok);
    s.done(y, Outcome::Ok);
    let (_, ids, minimal) = reported(&s.verdict());
    assert_eq!((ids, minimal), (vec![x, y], true));

    // An indeterminate CAS in a chain may have taken effect.
    let mut s = Script::default();
    s.run(1, Operation::write(1, 1), Outcome::Ok);
    s.run(2, Operation::cas(1, Some(1), 2), Outcome::Info);
    s.run(3, Operation::cas(1, Some(2), 3), Outcome::Ok);
    s.run(3, Operation::read(1), read_ok(Some(3)));
    assert_eq!(s.verdict(), Verdict::Linearizable);
}

#[test]
fn keys_are_independent() {
    let mut s = Script::default();
    let a = s.invoke(1, Operation::write(1, 1));
    let b = s.invoke(2, Operation::write(2, 1));
    s.done(a, Outcome::Ok);
    s.done(b, Outcome::Ok);
    s.run(1, Operation::read(2), read_ok(Some(1)));
    s.run(2, Operation::read(1), read_ok(Some(1)));
    s.run(3, Operation::read(3), read_ok(None));
    assert_eq!(s.verdict(), Verdict::Linearizable);
}

#[test]
fn tiny_budget_on_a_hard_history_is_unknown_not_a_pass() {
    // Twenty overlapping writes, then a read of a value none of them wrote: refuting it means
    // trying many orders, far more than 200 steps.
    let mut s = Script::default();
    let ids: Vec<OpId> = (0..20)
        .map(|c| s.invoke(c, Operation::write(1, c as i64)))
        .collect();
    let r = s.invoke(99, Operation::read(1));
    for id in ids {
        s.done(id, Outcome::Ok);
    }
    s.done(r, read_ok(Some(1000)));
    let tiny = CheckerConfig {
        step_budget_per_key: 200,
        shrink_step_budget: 200,
    };
    let verdict = check(&s.history, &tiny);
    assert!(matches!(verdict, Verdict::Unknown { .. }), "{verdict}");
    assert!(
        verdict
            .to_string()
            .starts_with("UNKNOWN (not a pass): key 1"),
        "{verdict}"
    );
    assert!(!verdict.is_linearizable());
}

/// Shapes of generated histories.
#[derive(Clone, Copy, Debug)]
struct Workload {
    clients: u64,
    keys: u64,
    ops: usize,
    /// Probability that a completed operation is reported as `info` anyway.
    info: f64,
    /// Probability that a write or CAS is lost (never applied, reported `info`).
    lost: f64,
    /// Draw written values from 1..=n (repeats possible) instead of unique values.
    value_domain: Option<i64>,
}

/// A history produced by clients of a real sequential register store: every operation takes
/// effect at one instant between its invoke and its completion, so it must be linearizable.
fn simulate(seed: u64, w: Workload) -> History {
    #[derive(Clone, Copy)]
    enum Phase {
        Idle,
        Invoked(OpId, Operation),
        Applied(OpId, Outcome),
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut store: HashMap<Key, Option<Value>> = HashMap::new();
    let mut phases = vec![Phase::Idle; w.clients as usize];
    let mut history = History::new();
    let mut time = 0u64;
    let mut next_value = 1i64;
    let mut invoked = 0usize;
    let mut wind_down = 3 * w.clients;
    while invoked < w.ops || wind_down > 0 {
        if invoked >= w.ops {
            wind_down -= 1;
        }
        time += rng.random_range(1..1_000u64);
        let client = rng.random_range(0..w.clients);
        let fresh_value = |rng: &mut ChaCha8Rng, next_value: &mut i64| match w.value_domain {
            Some(n) => rng.random_range(1..=n),
            None => {
                *next_value += 1;
                *next_value
            }
        };
        phases[client as usize] = match phases[client as usize] {
            Phase::Idle if invoked < w.ops => {
                let key = rng.random_range(0..w.keys);
                let current = store.get(&key).copied().flatten();
                let op = match rng.random_range(0..10) {
                    0..4 => Operation::read(key),
                    4..7 => Operation::write(key, fresh_value(&mut rng, &mut next_value)),
                    _ => {
                        let expected = if rng.random_bool(0.5) {
                            current
                        } else if rng.random_bool(0.2) {
                            None
                        } else {
                            Some(rng.random_range(1..=next_value.max(2)))
                        };
                        Operation::cas(key, expected, fresh_value(&mut rng, &mut next_value))
                    }
                };
                invoked += 1;
                Phase::Invoked(history.invoke(client, op, time).unwrap(), op)
            }
            Phase::Idle => Phase::Idle,
            Phase::Invoked(id, op) => {
                let value = store.entry(op.key).or_default();
                let lost = !matches!(op.command, Command::Read) && rng.random_bool(w.lost);
                let outcome = match op.command {
                    _ if lost => Outcome::Info,
                    Command::Read => Outcome::ReadOk(*value),
                    Command::Write(v) => {
                        *value = Some(v);
                        Outcome::Ok
                    }
                    Command::Cas { expected, new } if *value == expected => {
                        *value = Some(new);
                        Outcome::Ok
                    }
                    Command::Cas { .. } => Outcome::Fail,
                };
                Phase::Applied(id, outcome)
            }
            Phase::Applied(id, outcome) => {
                let reported = if rng.random_bool(w.info) {
                    Outcome::Info
                } else {
                    outcome
                };
                history.complete(id, reported, time).unwrap();
                Phase::Idle
            }
        };
    }
    history
}

/// Rewrites the value seen by the `which`-th ok read (mod their number) to `value`, through the
/// JSON-lines form. Returns `None` if the history has no ok read.
fn mutate_read(history: &History, which: usize, value: Value) -> Option<History> {
    let text = history.to_jsonl_string();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reads: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i]["kind"] == "ok" && lines[i]["op"] == "read")
        .collect();
    let target = *reads.get(which % reads.len().max(1))?;
    lines[target]["value"] = value.into();
    let mutated: String = lines.iter().map(|l| format!("{l}\n")).collect();
    Some(History::from_jsonl_str(&mutated).unwrap())
}

/// A straightforward exponential checker for tiny single-key histories: tries every order of
/// the operations that respects real time, with indeterminate ones optional.
fn brute_force_linearizable(ops: &[RecordedOp]) -> bool {
    #[derive(Clone, Copy)]
    struct Op {
        command: Command,
        outcome: Outcome,
        invoke: usize,
        complete: Option<usize>,
    }
    let ops: Vec<Op> = ops
        .iter()
        .map(|op| Op {
            command: op.operation.command,
            outcome: op.effective_outcome(),
            invoke: op.invoke_index,
            // An indeterminate operation may take effect even after its `info` completion.
            complete: op
                .completion
                .filter(|c| c.outcome != Outcome::Info)
                .map(|c| c.event_index),
        })
        .collect();
    fn required(op: &Op) -> bool {
        !matches!(op.outcome, Outcome::Info)
    }
    fn apply(op: &Op, state: Option<Value>) -> Option<Option<Value>> {
        match (op.command, op.outcome) {
            (_, Outcome::Fail) => match op.command {
                Command::Cas { expected, .. } => (state != expected).then_some(state),
                _ => Some(state), // did not happen
            },
            (Command::Read, Outcome::ReadOk(seen)) => (state == seen).then_some(state),
            (Command::Read, _) => Some(state),
            (Command::Write(v), _) => Some(Some(v)),
            (Command::Cas { expected, new }, Outcome::Info) => {
                Some(if state == expected { Some(new) } else { state })
            }
            (Command::Cas { expected, new }, _) => (state == expected).then_some(Some(new)),
        }
    }
    fn explore(ops: &[Op], done: &mut Vec<bool>, state: Option<Value>) -> bool {
        if ops
            .iter()
            .zip(done.iter())
            .all(|(op, &d)| d || !required(op))
        {
            return true;
        }
        for i in 0..ops.len() {
            if done[i] {
                continue;
            }
            // Real time: nothing still pending may have completed before this was invoked.
            let blocked = (0..ops.len())
                .any(|j| !done[j] && j != i && ops[j].complete.is_some_and(|c| c < ops[i].invoke));
            if blocked {
                continue;
            }
            if let Some(next) = apply(&ops[i], state) {
                done[i] = true;
                let ok = explore(ops, done, next);
                done[i] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    explore(&ops, &mut vec![false; ops.len()], None)
}

/// A random (usually not linearizable) history on one key with values from a tiny domain.
fn random_history(seed: u64, clients: u64, ops: usize) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut history = History::new();
    let mut open: Vec<Option<OpId>> = vec![None; clients as usize];
    let mut invoked = 0;
    let mut time = 0;
    for _ in 0..4 * ops {
        time += 1;
        let c = rng.random_range(0..clients);
        let small = |rng: &mut ChaCha8Rng| -> Option<Value> {
            let v = rng.random_range(0..3i64);
            (v > 0).then_some(v)
        };
        match open[c as usize] {
            None if invoked < ops => {
                let op = match rng.random_range(0..3) {
                    0 => Operation::read(0),
                    1 => Operation::write(0, rng.random_range(1..3)),
                    _ => Operation::cas(0, small(&mut rng), rng.random_range(1..3)),
                };
                invoked += 1;
                open[c as usize] = Some(history.invoke(c, op, time).unwrap());
            }
            None => {}
            Some(id) => {
                let is_read = history.operation(id).unwrap().operation.command == Command::Read;
                let outcome = match rng.random_range(0..8) {
                    0 => Outcome::Info,
                    1 => Outcome::Fail,
                    _ if is_read => Outcome::ReadOk(small(&mut rng)),
                    _ => Outcome::Ok,
                };
                if rng.random_range(0..10) > 0 {
                    history.complete(id, outcome, time).unwrap();
                    open[c as usize] = None;
                }
            }
        }
    }
    history
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn histories_of_a_real_register_are_linearizable(
        seed in any::<u64>(),
        clients in 1u64..6,
        keys in 1u64..4,
        ops in 0usize..80,
        info in 0.0f64..0.3,
        lost in 0.0f64..0.3,
        repeats in any::<bool>(),
    ) {
        let w = Workload { clients, keys, ops, info, lost, value_domain: repeats.then_some(3) };
        let history = simulate(seed, w);
        let verdict = check(&history, &CheckerConfig::default());
        prop_assert_eq!(verdict, Verdict::Linearizable, "{}", history.to_jsonl_string());
    }

    #[test]
    fn reading_a_value_never_written_is_not_linearizable(
        seed in any::<u64>(),
        clients in 1u64..6,
        keys in 1u64..4,
        ops in 1usize..80,
        info in 0.0f64..0.3,
        lost in 0.0f64..0.3,
        repeats in any::<bool>(),
        which in any::<usize>(),
    ) {
        let w = Workload { clients, keys, ops, info, lost, value_domain: repeats.then_some(3) };
        let history = simulate(seed, w);
        if let Some(mutated) = mutate_read(&history, which, -1) {
            let verdict = check(&mutated, &CheckerConfig::default());
            match &verdict {
                Verdict::NotLinearizable { ops, minimal, .. } => {
                    prop_assert!(*minimal);
                    // With unique values the culprit alone is the explanation: nobody ever
                    // wrote -1, and every other operation is consistent. (With repeated values
                    // greedy shrinking may settle on another failing subset, e.g. a cycle of
                    // CAS operations whose other writers were shrunk away.)
                    if !repeats {
                        prop_assert_eq!(ops.len(), 1, "{}", verdict);
                        prop_assert_eq!(ops[0].effective_outcome(), Outcome::ReadOk(Some(-1)));
                    }
                }
                other => prop_assert!(false, "expected a violation, got {}", other),
            }
        }
    }

}

proptest! {
    // Cheap cases (under ten operations), so many of them.
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_brute_force_on_tiny_histories(
        seed in any::<u64>(),
        clients in 1u64..4,
        ops in 0usize..10,
    ) {
        let history = random_history(seed, clients, ops);
        let expected = brute_force_linearizable(history.operations());
        let verdict = check(&history, &CheckerConfig::default());
        prop_assert_eq!(
            verdict.is_linearizable(),
            expected,
            "{}\n{}",
            verdict,
            history.to_jsonl_string()
        );
        if let Verdict::NotLinearizable { ops, .. } = &verdict {
            // The reported subset must itself be non-linearizable.
            prop_assert!(!brute_force_linearizable(ops));
        }
    }
}

#[test]
fn checks_a_long_history_with_timeouts_quickly() {
    // 5 clients x 2000 operations over 4 keys, with indeterminate and lost operations. The budget
    // is the default one; finishing at all (rather than `Unknown`) is the check.
    let w = Workload {
        clients: 5,
        keys: 4,
        ops: 10_000,
        info: 0.05,
        lost: 0.03,
        value_domain: None,
    };
    let history = simulate(7, w);
    assert!(history.operations().len() >= 10_000);
    let started = std::time::Instant::now();
    assert_eq!(
        check(&history, &CheckerConfig::default()),
        Verdict::Linearizable
    );
    eprintln!(
        "checked {} operations in {:?}",
        history.operations().len(),
        started.elapsed()
    );
    // And a single corrupted read in it is found and pinned down.
    let mutated = mutate_read(&history, 1234, -1).unwrap();
    let started = std::time::Instant::now();
    let verdict = check(&mutated, &CheckerConfig::default());
    eprintln!("found and shrank the violation in {:?}", started.elapsed());
    let (_, ids, minimal) = reported(&verdict);
    assert_eq!(ids.len(), 1, "{verdict}");
    assert!(minimal);
}

#[test]
fn refutes_quickly_despite_many_timeouts_and_repeated_values() {
    // Found by the proptest above: ~45% of writes and CAS indeterminate, values from {1,2,3}.
    // Refuting it needs the dominance cache and the grouping of interchangeable operations;
    // with plain memoisation it exhausts millions of steps.
    let w = Workload {
        clients: 5,
        keys: 1,
        ops: 57,
        info: 0.22,
        lost: 0.25,
        value_domain: Some(3),
    };
    let history = simulate(4535362744586966296, w);
    assert_eq!(
        check(&history, &CheckerConfig::default()),
        Verdict::Linearizable
    );
    let mutated = mutate_read(&history, 4975978003558085457, -1).unwrap();
    let small = CheckerConfig {
        step_budget_per_key: 100_000,
        shrink_step_budget: 100_000,
    };
    let (_, ids, minimal) = reported(&check(&mutated, &small));
    assert_eq!(ids.len(), 1);
    assert!(minimal);
}

#[test]
fn a_stale_read_in_a_long_history_is_explained_by_three_operations() {
    let w = Workload {
        clients: 5,
        keys: 4,
        ops: 10_000,
        info: 0.05,
        lost: 0.03,
        value_domain: None,
    };
    let history = simulate(7, w);
    // Make the first ok read (of a written value) past the middle return the value of the
    // fifth-latest ok write to its key before it: a stale read.
    let text = history.to_jsonl_string();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let is_ok = |l: &serde_json::Value, op: &str| l["kind"] == "ok" && l["op"] == op;
    let target = (lines.len() / 2..lines.len())
        .find(|&i| is_ok(&lines[i], "read") && !lines[i]["value"].is_null())
        .unwrap();
    let key = lines[target]["key"].clone();
    let writes: Vec<Value> = lines[..target]
        .iter()
        .filter(|l| is_ok(l, "write") && l["key"] == key)
        .map(|l| l["value"].as_i64().unwrap())
        .collect();
    let stale = writes[writes.len() - 5];
    lines[target]["value"] = stale.into();
    let mutated: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mutated = History::from_jsonl_str(&mutated).unwrap();

    let verdict = check(&mutated, &CheckerConfig::default());
    let (reported_key, _, minimal) = reported(&verdict);
    assert_eq!(Some(reported_key), key.as_u64());
    assert!(minimal);
    let Verdict::NotLinearizable { ops, .. } = &verdict else {
        unreachable!()
    };
    // The stale value's write, a later write that completed before the read began, the read.
    assert_eq!(ops.len(), 3, "{verdict}");
    assert_eq!(ops[0].operation.command, Command::Write(stale));
    assert!(matches!(ops[1].operation.command, Command::Write(v) if v != stale));
    assert!(ops[1].completion.unwrap().event_index < ops[2].invoke_index);
    assert_eq!(ops[2].effective_outcome(), Outcome::ReadOk(Some(stale)));
    assert_eq!(
        ops[2].invoke_index,
        mutated.operations()[ops[2].id.0].invoke_index
    );
    // Checking is deterministic, explanation included.
    assert_eq!(check(&mutated, &CheckerConfig::default()), verdict);
}
