//! Client histories: what clients invoked and what they saw, in virtual time.
//!
//! The simulator records every client operation on the replicated register store here, and the
//! linearizability checker (`crate::linearizability`) judges the result. A history is written to
//! and read from a JSON-lines file so a failing run can be kept, shared and re-checked.
//!
//! # The model
//!
//! Each key (`u64`) holds a register whose value is an `i64` or absent (`null`); every key starts
//! absent. A client issues one operation at a time: `read`, `write(v)` or `cas(expected, new)`
//! (compare-and-set; `expected` may be absent, meaning "only if the key has never been written").
//! Every operation is an `invoke` event followed later by at most one completion event:
//!
//! * `ok`: the operation took effect. A read's completion carries the value it saw; a CAS that is
//!   `ok` found `expected` and stored `new`.
//! * `fail`: the operation completed and changed nothing. For a write or a read this means it
//!   definitely did not happen. **For a CAS it means the CAS executed and found a value different
//!   from `expected`** ("a failed CAS is a completed operation that changed nothing"); the checker
//!   treats it as a read asserting `value != expected`. A CAS that was refused before executing
//!   (say, by a node that is not the leader) must therefore be recorded as `info`, never `fail`.
//! * `info`: indeterminate (for example timed out): it may or may not have taken effect, at any
//!   moment after its invoke.
//!
//! An operation with no completion at the end of the history is indeterminate, like `info`.
//!
//! # The JSON-lines format (`--history-out FILE`)
//!
//! UTF-8 text, one event per line, lines in the order the events happened. Blank lines are
//! ignored. Each line is a JSON object with these fields (other fields are ignored):
//!
//! | field    | type                  | meaning                                                  |
//! |----------|-----------------------|----------------------------------------------------------|
//! | `client` | integer ≥ 0           | the client that issued the operation                     |
//! | `kind`   | `"invoke"`, `"ok"`, `"fail"`, `"info"` | invocation or completion        |
//! | `op`     | `"read"`, `"write"`, `"cas"` | the operation                                     |
//! | `key`    | integer ≥ 0 (u64)     | the register operated on                                 |
//! | `value`  | see below             | the operation's argument or result                       |
//! | `time`   | integer ≥ 0 (u64)     | virtual time in nanoseconds; never decreases line to line |
//!
//! `value` by `op`:
//! * `write`: the integer written (i64), on the invoke and repeated on the completion.
//! * `cas`: `[expected, new]`, `expected` an integer or `null` (key absent), `new` an integer;
//!   repeated on the completion.
//! * `read`: `null` on the invoke, on `fail` and on `info`; on `ok` the integer seen, or `null` if
//!   the key was absent. (A missing `value` field counts as `null`.)
//!
//! A completion repeats `client`, `op`, `key` (and `value` for writes and CAS) of the client's
//! outstanding invoke and must agree with it. A client has at most one outstanding operation.
//! Example:
//!
//! ```text
//! {"client":3,"kind":"invoke","op":"write","key":7,"value":42,"time":1234567}
//! {"client":1,"kind":"invoke","op":"read","key":7,"value":null,"time":1234600}
//! {"client":3,"kind":"ok","op":"write","key":7,"value":42,"time":1300000}
//! {"client":1,"kind":"ok","op":"read","key":7,"value":42,"time":1300010}
//! {"client":2,"kind":"invoke","op":"cas","key":7,"value":[42,43],"time":1400000}
//! {"client":2,"kind":"fail","op":"cas","key":7,"value":[42,43],"time":1500000}
//! ```
//!
//! Reading ([`History::read_jsonl`]) validates all of the above and reports the first problem with
//! its line number; it never panics on bad input.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::io::{BufRead, Write};

/// Identifies a client (one logical process issuing operations one at a time).
pub type ClientId = u64;
/// Names a register in the key-value store.
pub type Key = u64;
/// The contents of a register.
pub type Value = i64;

/// What a client asks of one register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// Read the register's current value.
    Read,
    /// Store a value unconditionally.
    Write(Value),
    /// Store `new` only if the register currently holds `expected` (`None`: absent).
    Cas {
        /// The value the register must hold for the CAS to succeed.
        expected: Option<Value>,
        /// The value stored on success.
        new: Value,
    },
}

/// One client request: a command on a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// The register operated on.
    pub key: Key,
    /// What to do with it.
    pub command: Command,
}

impl Operation {
    /// A read of `key`.
    pub fn read(key: Key) -> Operation {
        Operation {
            key,
            command: Command::Read,
        }
    }

    /// A write of `value` to `key`.
    pub fn write(key: Key, value: Value) -> Operation {
        Operation {
            key,
            command: Command::Write(value),
        }
    }

    /// A compare-and-set of `key` from `expected` to `new`.
    pub fn cas(key: Key, expected: Option<Value>, new: Value) -> Operation {
        Operation {
            key,
            command: Command::Cas { expected, new },
        }
    }
}

/// How an operation ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// A write or CAS took effect (for a CAS: it found `expected` and stored `new`).
    Ok,
    /// A read took effect and saw this value (`None`: the key was absent).
    ReadOk(Option<Value>),
    /// Completed without changing anything. A read or write definitely did not happen; a CAS
    /// executed and found a value other than `expected`.
    Fail,
    /// Indeterminate: it may or may not have taken effect, at any time after its invoke.
    Info,
}

impl Outcome {
    /// The `kind` name used in the JSON-lines format.
    pub fn kind_name(self) -> &'static str {
        match self {
            Outcome::Ok | Outcome::ReadOk(_) => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    }
}

/// Names one operation within a [`History`] (its index in [`History::operations`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub usize);

/// Whether an event starts or ends an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// The client sent the request.
    Invoke,
    /// The client learned how it ended.
    Complete(Outcome),
}

/// One line of a history: a client invoking or completing an operation at a virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// The operation this event belongs to.
    pub op_id: OpId,
    /// The client that issued the operation.
    pub client: ClientId,
    /// The operation itself (repeated on the completion, as in the file format).
    pub operation: Operation,
    /// Invoke or completion.
    pub kind: EventKind,
    /// Virtual time in nanoseconds.
    pub time: u64,
}

/// The end of an operation: its outcome and where it sits in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Completion {
    /// How it ended.
    pub outcome: Outcome,
    /// Virtual time of the completion event, in nanoseconds.
    pub time: u64,
    /// Index of the completion event in [`History::events`]; orders it against other events.
    pub event_index: usize,
}

/// An operation paired with its completion: the unit the checker reasons about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordedOp {
    /// This operation's id.
    pub id: OpId,
    /// The client that issued it.
    pub client: ClientId,
    /// What was asked.
    pub operation: Operation,
    /// Virtual time of the invoke event, in nanoseconds.
    pub invoke_time: u64,
    /// Index of the invoke event in [`History::events`].
    pub invoke_index: usize,
    /// How and when it ended; `None` if it was still outstanding when the history ended
    /// (treated as indeterminate).
    pub completion: Option<Completion>,
}

impl RecordedOp {
    /// The outcome as the checker sees it: an operation never completed counts as `Info`.
    pub fn effective_outcome(&self) -> Outcome {
        self.completion.map_or(Outcome::Info, |c| c.outcome)
    }
}

impl fmt::Display for RecordedOp {
    /// One human-readable line: `client 3: write 42 [t=100..t=250] ok (events #4..#9)`. Event
    /// `#n` is the n-th event of the history, which is line n of a file written by
    /// [`History::write_jsonl`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}: ", self.client)?;
        match self.operation.command {
            Command::Read => match self.completion.map(|c| c.outcome) {
                Some(Outcome::ReadOk(v)) => write!(f, "read -> {}", show_value(v))?,
                _ => write!(f, "read")?,
            },
            Command::Write(v) => write!(f, "write {v}")?,
            Command::Cas { expected, new } => write!(f, "cas {} -> {new}", show_value(expected))?,
        }
        match self.completion {
            Some(c) => write!(
                f,
                " [t={}..t={}] {} (events #{}..#{})",
                self.invoke_time,
                c.time,
                c.outcome.kind_name(),
                self.invoke_index + 1,
                c.event_index + 1
            ),
            None => write!(
                f,
                " [t={}..never] no completion (event #{})",
                self.invoke_time,
                self.invoke_index + 1
            ),
        }
    }
}

fn show_value(v: Option<Value>) -> String {
    v.map_or_else(|| "null".to_string(), |v| v.to_string())
}

/// Misuse of the [`History`] recorder (a bug in whoever drives it, reported rather than hidden).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A client invoked while its previous operation was still outstanding.
    #[error("client {client} invoked a new operation while {outstanding:?} is still outstanding")]
    ClientBusy {
        /// The client.
        client: ClientId,
        /// Its outstanding operation.
        outstanding: OpId,
    },
    /// `complete` named an operation this history never invoked.
    #[error("operation {0:?} was never invoked")]
    UnknownOp(OpId),
    /// `complete` named an operation that already has a completion.
    #[error("operation {0:?} was already completed")]
    AlreadyCompleted(OpId),
    /// An event's time is earlier than the previous event's.
    #[error("time went backwards: event at t={time} after an event at t={previous}")]
    TimeWentBackwards {
        /// The offending event's time.
        time: u64,
        /// The previous event's time.
        previous: u64,
    },
    /// A read completed with `Ok`, or a write/CAS with `ReadOk`.
    #[error("outcome {outcome:?} does not fit operation {command:?}")]
    OutcomeMismatch {
        /// The operation's command.
        command: Command,
        /// The outcome given.
        outcome: Outcome,
    },
}

/// A problem found while reading a JSON-lines history; every variant names the 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum HistoryReadError {
    /// The underlying reader failed.
    #[error("line {line}: cannot read: {source}")]
    Io {
        /// 1-based line number.
        line: usize,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The line is not a JSON object of the expected shape.
    #[error("line {line}: not a valid event: {source}")]
    Json {
        /// 1-based line number.
        line: usize,
        /// What serde_json objected to.
        source: serde_json::Error,
    },
    /// The line is well-formed JSON but breaks a rule of the format.
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line number.
        line: usize,
        /// What is wrong, in words.
        message: String,
    },
    /// The line breaks a rule of the recorder (busy client, time going backwards, ...).
    #[error("line {line}: {source}")]
    History {
        /// 1-based line number.
        line: usize,
        /// The rule broken.
        source: HistoryError,
    },
}

/// A recorded history: the events in order, and the operations they form.
///
/// Built either by the simulator through [`History::invoke`] / [`History::complete`], or from a
/// file by [`History::read_jsonl`]. Both paths enforce the same rules, so every `History` value
/// is well formed: one outstanding operation per client, outcomes that fit their operations,
/// non-decreasing times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    events: Vec<Event>,
    ops: Vec<RecordedOp>,
    outstanding: HashMap<ClientId, OpId>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Records that `client` sent `operation` at virtual time `time` (nanoseconds), returning the
    /// id to complete it with later.
    pub fn invoke(
        &mut self,
        client: ClientId,
        operation: Operation,
        time: u64,
    ) -> Result<OpId, HistoryError> {
        if let Some(&outstanding) = self.outstanding.get(&client) {
            return Err(HistoryError::ClientBusy {
                client,
                outstanding,
            });
        }
        self.check_time(time)?;
        let id = OpId(self.ops.len());
        let invoke_index = self.events.len();
        self.events.push(Event {
            op_id: id,
            client,
            operation,
            kind: EventKind::Invoke,
            time,
        });
        self.ops.push(RecordedOp {
            id,
            client,
            operation,
            invoke_time: time,
            invoke_index,
            completion: None,
        });
        self.outstanding.insert(client, id);
        Ok(id)
    }

    /// Records how operation `id` ended, observed at virtual time `time` (nanoseconds).
    pub fn complete(&mut self, id: OpId, outcome: Outcome, time: u64) -> Result<(), HistoryError> {
        let op = *self.ops.get(id.0).ok_or(HistoryError::UnknownOp(id))?;
        if op.completion.is_some() {
            return Err(HistoryError::AlreadyCompleted(id));
        }
        let fits = match (op.operation.command, outcome) {
            (Command::Read, Outcome::Ok) => false,
            (Command::Read, _) => true,
            (_, Outcome::ReadOk(_)) => false,
            (_, _) => true,
        };
        if !fits {
            return Err(HistoryError::OutcomeMismatch {
                command: op.operation.command,
                outcome,
            });
        }
        self.check_time(time)?;
        let event_index = self.events.len();
        self.events.push(Event {
            op_id: id,
            client: op.client,
            operation: op.operation,
            kind: EventKind::Complete(outcome),
            time,
        });
        self.ops[id.0].completion = Some(Completion {
            outcome,
            time,
            event_index,
        });
        self.outstanding.remove(&op.client);
        Ok(())
    }

    /// The operation `client` is waiting on, if any.
    pub fn outstanding(&self, client: ClientId) -> Option<OpId> {
        self.outstanding.get(&client).copied()
    }

    /// All events, in the order they happened.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// All operations, indexed by [`OpId`], in invoke order.
    pub fn operations(&self) -> &[RecordedOp] {
        &self.ops
    }

    /// One operation by id.
    pub fn operation(&self, id: OpId) -> Option<&RecordedOp> {
        self.ops.get(id.0)
    }

    fn check_time(&self, time: u64) -> Result<(), HistoryError> {
        match self.events.last() {
            Some(last) if time < last.time => Err(HistoryError::TimeWentBackwards {
                time,
                previous: last.time,
            }),
            _ => Ok(()),
        }
    }

    /// Writes the history in the JSON-lines format described in the module docs.
    pub fn write_jsonl<W: Write>(&self, mut out: W) -> std::io::Result<()> {
        for event in &self.events {
            serde_json::to_writer(&mut out, &EventLine::from_event(event))?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The history in the JSON-lines format, as a string.
    pub fn to_jsonl_string(&self) -> String {
        let mut buf = Vec::new();
        // Writing into a Vec cannot fail, and serde_json only emits UTF-8.
        self.write_jsonl(&mut buf)
            .expect("writing a history into memory cannot fail");
        String::from_utf8(buf).expect("serde_json emits UTF-8")
    }

    /// Reads and validates a history in the JSON-lines format described in the module docs.
    pub fn read_jsonl<R: BufRead>(input: R) -> Result<History, HistoryReadError> {
        let mut history = History::new();
        for (index, line) in input.lines().enumerate() {
            let line_no = index + 1;
            let line = line.map_err(|source| HistoryReadError::Io {
                line: line_no,
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: EventLine =
                serde_json::from_str(&line).map_err(|source| HistoryReadError::Json {
                    line: line_no,
                    source,
                })?;
            history.apply_line(parsed).map_err(|e| e.at_line(line_no))?;
        }
        Ok(history)
    }

    /// Parses a history from a string in the JSON-lines format.
    pub fn from_jsonl_str(text: &str) -> Result<History, HistoryReadError> {
        History::read_jsonl(text.as_bytes())
    }

    fn apply_line(&mut self, line: EventLine) -> Result<(), LineError> {
        match line.kind {
            KindName::Invoke => {
                let command = match line.op {
                    OpName::Read => {
                        if !line.value.is_null() {
                            return Err(LineError::invalid(format!(
                                "a read invoke must have value null, not {}",
                                line.value
                            )));
                        }
                        Command::Read
                    }
                    OpName::Write => Command::Write(parse_write_value(&line.value)?),
                    OpName::Cas => parse_cas_value(&line.value)?,
                };
                self.invoke(
                    line.client,
                    Operation {
                        key: line.key,
                        command,
                    },
                    line.time,
                )?;
                Ok(())
            }
            kind => {
                let id = self.outstanding(line.client).ok_or_else(|| {
                    LineError::invalid(format!(
                        "{} completion for client {}, which has no outstanding operation",
                        kind.name(),
                        line.client
                    ))
                })?;
                let invoked = self.ops[id.0].operation;
                let invoke_line = self.ops[id.0].invoke_index;
                if line.op != OpName::of(invoked.command) || line.key != invoked.key {
                    return Err(LineError::invalid(format!(
                        "{} completion of {} on key {} does not match client {}'s outstanding \
                         {} on key {} (event #{})",
                        kind.name(),
                        line.op.name(),
                        line.key,
                        line.client,
                        OpName::of(invoked.command).name(),
                        invoked.key,
                        invoke_line + 1
                    )));
                }
                let outcome = match (invoked.command, kind) {
                    (Command::Read, KindName::Ok) => {
                        Outcome::ReadOk(parse_optional_value(&line.value, "a read's ok value")?)
                    }
                    (Command::Read, _) if !line.value.is_null() => {
                        return Err(LineError::invalid(format!(
                            "a read's {} completion must have value null, not {}",
                            kind.name(),
                            line.value
                        )));
                    }
                    (command, _) => {
                        let repeated = match command {
                            Command::Read => Command::Read,
                            Command::Write(_) => Command::Write(parse_write_value(&line.value)?),
                            Command::Cas { .. } => parse_cas_value(&line.value)?,
                        };
                        if repeated != command {
                            return Err(LineError::invalid(format!(
                                "completion value {} differs from the invoked value {}",
                                line.value,
                                EventLine::value_of(command, EventKind::Invoke)
                            )));
                        }
                        kind.outcome()
                    }
                };
                self.complete(id, outcome, line.time)?;
                Ok(())
            }
        }
    }
}

/// An error found on one line, before the line number is attached.
enum LineError {
    Invalid(String),
    History(HistoryError),
}

impl LineError {
    fn invalid(message: String) -> LineError {
        LineError::Invalid(message)
    }

    fn at_line(self, line: usize) -> HistoryReadError {
        match self {
            LineError::Invalid(message) => HistoryReadError::Invalid { line, message },
            LineError::History(source) => HistoryReadError::History { line, source },
        }
    }
}

impl From<HistoryError> for LineError {
    fn from(e: HistoryError) -> LineError {
        LineError::History(e)
    }
}

fn parse_integer(value: &serde_json::Value, what: &str) -> Result<Value, LineError> {
    value.as_i64().ok_or_else(|| {
        LineError::invalid(format!(
            "{what} must be an integer in the i64 range, not {value}"
        ))
    })
}

fn parse_optional_value(value: &serde_json::Value, what: &str) -> Result<Option<Value>, LineError> {
    if value.is_null() {
        Ok(None)
    } else {
        parse_integer(value, what).map(Some)
    }
}

fn parse_write_value(value: &serde_json::Value) -> Result<Value, LineError> {
    parse_integer(value, "a write's value")
}

fn parse_cas_value(value: &serde_json::Value) -> Result<Command, LineError> {
    match value.as_array().map(Vec::as_slice) {
        Some([expected, new]) => Ok(Command::Cas {
            expected: parse_optional_value(expected, "a cas's expected value")?,
            new: parse_integer(new, "a cas's new value")?,
        }),
        _ => Err(LineError::invalid(format!(
            "a cas's value must be [expected, new], not {value}"
        ))),
    }
}

/// The `kind` field of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum KindName {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl KindName {
    fn name(self) -> &'static str {
        match self {
            KindName::Invoke => "invoke",
            KindName::Ok => "ok",
            KindName::Fail => "fail",
            KindName::Info => "info",
        }
    }

    /// The outcome of a non-read completion of this kind.
    fn outcome(self) -> Outcome {
        match self {
            KindName::Ok => Outcome::Ok,
            KindName::Fail => Outcome::Fail,
            KindName::Invoke | KindName::Info => Outcome::Info,
        }
    }
}

/// The `op` field of a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OpName {
    Read,
    Write,
    Cas,
}

impl OpName {
    fn of(command: Command) -> OpName {
        match command {
            Command::Read => OpName::Read,
            Command::Write(_) => OpName::Write,
            Command::Cas { .. } => OpName::Cas,
        }
    }

    fn name(self) -> &'static str {
        match self {
            OpName::Read => "read",
            OpName::Write => "write",
            OpName::Cas => "cas",
        }
    }
}

/// One line of the JSON-lines format, field for field (field order is the output order).
#[derive(Serialize, Deserialize)]
struct EventLine {
    client: ClientId,
    kind: KindName,
    op: OpName,
    key: Key,
    #[serde(default)]
    value: serde_json::Value,
    time: u64,
}

impl EventLine {
    fn from_event(event: &Event) -> EventLine {
        let kind = match event.kind {
            EventKind::Invoke => KindName::Invoke,
            EventKind::Complete(Outcome::Ok | Outcome::ReadOk(_)) => KindName::Ok,
            EventKind::Complete(Outcome::Fail) => KindName::Fail,
            EventKind::Complete(Outcome::Info) => KindName::Info,
        };
        EventLine {
            client: event.client,
            kind,
            op: OpName::of(event.operation.command),
            key: event.operation.key,
            value: EventLine::value_of(event.operation.command, event.kind),
            time: event.time,
        }
    }

    fn value_of(command: Command, kind: EventKind) -> serde_json::Value {
        match (command, kind) {
            (Command::Read, EventKind::Complete(Outcome::ReadOk(Some(v)))) => v.into(),
            (Command::Read, _) => serde_json::Value::Null,
            (Command::Write(v), _) => v.into(),
            (Command::Cas { expected, new }, _) => {
                serde_json::json!([expected, new])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> History {
        let mut h = History::new();
        let w = h.invoke(3, Operation::write(7, 42), 1_234_567).unwrap();
        let r = h.invoke(1, Operation::read(7), 1_234_600).unwrap();
        h.complete(w, Outcome::Ok, 1_300_000).unwrap();
        h.complete(r, Outcome::ReadOk(Some(42)), 1_300_010).unwrap();
        let c = h.invoke(2, Operation::cas(7, None, 5), 1_400_000).unwrap();
        h.complete(c, Outcome::Fail, 1_500_000).unwrap();
        let r2 = h.invoke(1, Operation::read(8), 1_500_001).unwrap();
        h.complete(r2, Outcome::ReadOk(None), 1_500_002).unwrap();
        h.invoke(3, Operation::cas(7, Some(42), -1), 1_600_000)
            .unwrap();
        h
    }

    #[test]
    fn writes_the_documented_format() {
        let text = sample().to_jsonl_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"client":3,"kind":"invoke","op":"write","key":7,"value":42,"time":1234567}"#
        );
        assert_eq!(
            lines[1],
            r#"{"client":1,"kind":"invoke","op":"read","key":7,"value":null,"time":1234600}"#
        );
        assert_eq!(
            lines[3],
            r#"{"client":1,"kind":"ok","op":"read","key":7,"value":42,"time":1300010}"#
        );
        assert_eq!(
            lines[5],
            r#"{"client":2,"kind":"fail","op":"cas","key":7,"value":[null,5],"time":1500000}"#
        );
        assert_eq!(
            lines[7],
            r#"{"client":1,"kind":"ok","op":"read","key":8,"value":null,"time":1500002}"#
        );
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn round_trips_through_jsonl() {
        let h = sample();
        let back = History::from_jsonl_str(&h.to_jsonl_string()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.outstanding(3), Some(OpId(4)));
        assert_eq!(back.operations()[2].effective_outcome(), Outcome::Fail);
        assert_eq!(back.operations()[4].effective_outcome(), Outcome::Info);
    }

    #[test]
    fn recorder_rejects_misuse() {
        let mut h = History::new();
        let a = h.invoke(1, Operation::read(1), 10).unwrap();
        assert_eq!(
            h.invoke(1, Operation::read(1), 11),
            Err(HistoryError::ClientBusy {
                client: 1,
                outstanding: a
            })
        );
        assert_eq!(
            h.complete(a, Outcome::Ok, 12),
            Err(HistoryError::OutcomeMismatch {
                command: Command::Read,
                outcome: Outcome::Ok
            })
        );
        assert_eq!(
            h.complete(a, Outcome::ReadOk(None), 9),
            Err(HistoryError::TimeWentBackwards {
                time: 9,
                previous: 10
            })
        );
        assert_eq!(
            h.complete(OpId(5), Outcome::Fail, 12),
            Err(HistoryError::UnknownOp(OpId(5)))
        );
        h.complete(a, Outcome::ReadOk(None), 12).unwrap();
        assert_eq!(
            h.complete(a, Outcome::Info, 13),
            Err(HistoryError::AlreadyCompleted(a))
        );
        let w = h.invoke(2, Operation::write(1, 3), 13).unwrap();
        assert!(matches!(
            h.complete(w, Outcome::ReadOk(Some(3)), 14),
            Err(HistoryError::OutcomeMismatch { .. })
        ));
    }

    /// Reads `text` and returns the error message, which must name `line`.
    fn read_error(text: &str, line: usize) -> String {
        let err = History::from_jsonl_str(text).expect_err("history should be rejected");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("line {line}:")),
            "wrong line in {message:?}"
        );
        message
    }

    #[test]
    fn reading_reports_problems_with_line_numbers() {
        let invoke_w = r#"{"client":1,"kind":"invoke","op":"write","key":1,"value":5,"time":1}"#;
        let after_invoke = |line: &str| format!("{invoke_w}\n{line}");
        // (history text, line the error must name, what the message must say)
        let cases: Vec<(String, usize, &str)> = vec![
            (format!("{invoke_w}\n{{not json\n"), 2, "not a valid event"),
            (r#"{"client":1,"kind":"ok","op":"read","key":1,"value":5,"time":1}"#.into(), 1, "no outstanding operation"),
            (format!("{invoke_w}\n\n{invoke_w}\n"), 3, "still outstanding"),
            (after_invoke(r#"{"client":1,"kind":"ok","op":"write","key":1,"value":6,"time":2}"#), 2, "differs"),
            (after_invoke(r#"{"client":1,"kind":"ok","op":"write","key":2,"value":5,"time":2}"#), 2, "does not match"),
            (after_invoke(r#"{"client":1,"kind":"ok","op":"write","key":1,"value":5,"time":0}"#), 2, "time went backwards"),
            (r#"{"client":1,"kind":"invoke","op":"cas","key":1,"value":[1],"time":1}"#.into(), 1, "[expected, new]"),
            (r#"{"client":1,"kind":"invoke","op":"cas","key":1,"value":[1,null],"time":1}"#.into(), 1, "new value"),
            (r#"{"client":1,"kind":"invoke","op":"write","key":1,"value":1.5,"time":1}"#.into(), 1, "integer"),
            (r#"{"client":1,"kind":"invoke","op":"write","key":1,"time":1}"#.into(), 1, "integer"),
            (r#"{"client":1,"kind":"invoke","op":"read","key":1,"value":3,"time":1}"#.into(), 1, "null"),
            (r#"{"client":1,"kind":"done","op":"read","key":1,"time":1}"#.into(), 1, "not a valid event"),
            (r#"{"client":-1,"kind":"invoke","op":"read","key":1,"time":1}"#.into(), 1, "not a valid event"),
            (
                r#"{"client":1,"kind":"invoke","op":"write","key":1,"value":99999999999999999999,"time":1}"#.into(),
                1,
                "i64",
            ),
        ];
        for (text, line, needle) in cases {
            let m = read_error(&text, line);
            assert!(m.contains(needle), "{text:?}: expected {needle:?} in {m}");
        }
    }

    #[test]
    fn reading_accepts_missing_read_values_and_extra_fields() {
        let text = concat!(
            r#"{"client":1,"kind":"invoke","op":"read","key":1,"time":1,"node":4}"#,
            "\n",
            r#"{"client":1,"kind":"info","op":"read","key":1,"time":5}"#,
            "\n"
        );
        let h = History::from_jsonl_str(text).unwrap();
        assert_eq!(h.operations().len(), 1);
        assert_eq!(h.operations()[0].effective_outcome(), Outcome::Info);
    }
}
