//! The replicated state machine under test: a map of integer registers with put, get and
//! compare-and-set, the classic shape for linearizability checking.
//!
//! Every command reaches the log inside a client session ([`SessionRequest`]): clients retry
//! through timeouts, duplicating links and failovers, and the session table answers a retried
//! command with its recorded result instead of applying it again (a compare-and-set applied twice
//! would report failure for a swap that happened). Reads need no session: they change nothing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vecraft_core::raft::{
    ClientSessions, InjectedBugs, LogIndex, ReplicatedStateMachine, SessionConfig, SessionId, SessionOutcome, SessionRequest,
};

/// A register key.
pub type Key = u64;
/// A register value.
pub type Value = i64;

/// A command replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvCommand {
    /// Set `key` to `value`.
    Put {
        /// Register.
        key: Key,
        /// New value.
        value: Value,
    },
    /// Set `key` to `new` if it currently holds `expected` (`None` = never written).
    Cas {
        /// Register.
        key: Key,
        /// Required current value.
        expected: Option<Value>,
        /// New value.
        new: Value,
    },
}

/// A read-only query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvGet {
    /// Register.
    pub key: Key,
}

/// The answer to a command or query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResult {
    /// A put took effect.
    Written,
    /// A CAS ran: whether it swapped, and the value it found.
    Cas {
        /// Whether the swap happened.
        swapped: bool,
        /// The value before the command.
        found: Option<Value>,
    },
    /// A read's value.
    Value(Option<Value>),
    /// The bytes were not a valid command (never produced by our clients).
    Invalid,
    /// A session was registered; its id is the log index of the registration.
    Registered {
        /// The new session.
        session: SessionId,
    },
    /// The command's session is unknown or was evicted: it was not applied now, and whether an
    /// earlier copy of it was applied is unknown. Register again.
    SessionExpired,
    /// A late copy of a command whose answer the client already acknowledged: not applied.
    AlreadyAcknowledged,
    /// Too many unacknowledged commands in the session: not applied.
    SessionWindowFull,
}

/// What a client appends to the log: a session registration or a session-tagged command.
pub type KvProposal = SessionRequest<KvCommand>;

/// The register map plus a running digest of everything applied, so replicas can be compared.
///
/// A snapshot is the whole store in postcard (whatever fields it grows, e.g. client sessions,
/// come along), so a replica restored from one continues the same digest chain.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct KvStore {
    values: BTreeMap<Key, Value>,
    digest: [u8; 32],
    applied: u64,
    /// Exactly-once table: part of the replicated state (and so of any snapshot).
    sessions: ClientSessions<KvResult>,
}

impl KvStore {
    /// An empty store whose session table has the given bounds (and, in `bug-injection` builds,
    /// the session bugs of `bugs`).
    pub fn with_sessions(config: SessionConfig, bugs: InjectedBugs) -> Self {
        KvStore { sessions: ClientSessions::new(config).with_injected_bugs(bugs), ..KvStore::default() }
    }
    /// The session table.
    pub fn sessions(&self) -> &ClientSessions<KvResult> {
        &self.sessions
    }
    /// Digest of the sequence of commands applied (equal on replicas that applied the same log).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
    /// Number of commands applied.
    pub fn applied(&self) -> u64 {
        self.applied
    }
    /// Current value of a register.
    pub fn get(&self, key: Key) -> Option<Value> {
        self.values.get(&key).copied()
    }
}

impl ReplicatedStateMachine for KvStore {
    fn apply(&mut self, index: LogIndex, command: &[u8]) -> Vec<u8> {
        let mut h = blake3::Hasher::new();
        h.update(&self.digest);
        h.update(&index.to_le_bytes());
        h.update(command);
        self.digest = *h.finalize().as_bytes();
        self.applied += 1;
        let values = &mut self.values;
        let result = match vecraft_core::wire::decode::<KvProposal>(command) {
            Ok(request) => match self.sessions.apply(index, &request, |cmd| apply_command(values, cmd)) {
                SessionOutcome::Registered(session) => KvResult::Registered { session },
                SessionOutcome::Applied(r) | SessionOutcome::Duplicate(r) => r,
                SessionOutcome::AlreadyAcknowledged => KvResult::AlreadyAcknowledged,
                SessionOutcome::Expired => KvResult::SessionExpired,
                SessionOutcome::WindowFull => KvResult::SessionWindowFull,
            },
            Err(_) => KvResult::Invalid,
        };
        vecraft_core::wire::encode(&result).expect("KvResult encodes")
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("KvStore encodes")
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        *self = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        let result = match vecraft_core::wire::decode::<KvGet>(query) {
            Ok(KvGet { key }) => KvResult::Value(self.values.get(&key).copied()),
            Err(_) => KvResult::Invalid,
        };
        vecraft_core::wire::encode(&result).expect("KvResult encodes")
    }
}

/// Applies one register command (the only place the register map changes).
fn apply_command(values: &mut BTreeMap<Key, Value>, cmd: &KvCommand) -> KvResult {
    match *cmd {
        KvCommand::Put { key, value } => {
            values.insert(key, value);
            KvResult::Written
        }
        KvCommand::Cas { key, expected, new } => {
            let found = values.get(&key).copied();
            let swapped = found == expected;
            if swapped {
                values.insert(key, new);
            }
            KvResult::Cas { swapped, found }
        }
    }
}
