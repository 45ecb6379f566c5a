//! The vector engine: all collections of a node as one deterministic state machine.
//!
//! Replication (Raft or the leaderless feed) delivers [`Command`]s in log order; every replica
//! calls [`VectorEngine::apply`] with the same commands and so holds byte-identical point data
//! (compare [`VectorEngine::digest`]). Rejections are deterministic too: a replica that rejects a
//! command rejects it everywhere, and a rejected command changes nothing. Queries borrow a
//! [`Collection`] through [`VectorEngine::collection`].

use crate::contract::{StateMachine, Time};
use crate::vector::collection::{Collection, CollectionConfig, PointsOp};
use crate::vector::error::EngineError;
use crate::vector::payload_index::FieldSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A state-changing request, as written to the replicated log (serde + postcard).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Create an empty collection.
    CreateCollection {
        /// Its name (see [`crate::vector::collection::validate_collection_name`]).
        name: String,
        /// Its fixed configuration.
        config: CollectionConfig,
    },
    /// Drop a collection and all its points.
    DeleteCollection {
        /// Its name.
        name: String,
    },
    /// Change points of one collection.
    Points {
        /// Target collection.
        collection: String,
        /// What to do.
        op: PointsOp,
    },
    /// Declare a payload field index (Qdrant's `create_field_index`): filtered reads on the
    /// field then check only the points its posting lists name. Replicated like any command, so
    /// every replica indexes the same fields.
    CreateFieldIndex {
        /// Target collection.
        collection: String,
        /// Payload key (dotted path).
        field: String,
        /// What the index holds.
        schema: FieldSchema,
    },
    /// Drop a payload field index.
    DeleteFieldIndex {
        /// Target collection.
        collection: String,
        /// Payload key (dotted path).
        field: String,
    },
}

/// What a successful command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandOutcome {
    /// The collection was created.
    CollectionCreated,
    /// Deleting a collection: whether it existed.
    CollectionDeleted {
        /// False when there was nothing to delete.
        existed: bool,
    },
    /// A field index was declared or dropped; `changed` is false when it already was (or was
    /// not) there.
    FieldIndexChanged {
        /// Whether anything changed.
        changed: bool,
    },
    /// A points command was applied.
    PointsApplied {
        /// The collection's sequence number after the command.
        seq: u64,
        /// Points the command touched.
        affected: usize,
    },
}

/// All collections of a node.
#[derive(Debug, Default)]
pub struct VectorEngine {
    collections: BTreeMap<String, Collection>,
}

impl VectorEngine {
    /// An engine with no collections.
    pub fn new() -> Self {
        VectorEngine::default()
    }

    /// Applies one command; on error nothing changed.
    pub fn apply(&mut self, command: Command) -> Result<CommandOutcome, EngineError> {
        match command {
            Command::CreateCollection { name, config } => {
                if self.collections.contains_key(&name) {
                    return Err(EngineError::CollectionExists(name));
                }
                let collection = Collection::new(&name, config)?;
                self.collections.insert(name, collection);
                Ok(CommandOutcome::CollectionCreated)
            }
            Command::DeleteCollection { name } => Ok(CommandOutcome::CollectionDeleted {
                existed: self.collections.remove(&name).is_some(),
            }),
            Command::Points { collection, op } => {
                let target = self.collection_mut(&collection)?;
                let affected = target.apply(op)?;
                Ok(CommandOutcome::PointsApplied { seq: target.seq(), affected })
            }
            Command::CreateFieldIndex { collection, field, schema } => {
                let changed = self.collection_mut(&collection)?.create_field_index(&field, schema)?;
                Ok(CommandOutcome::FieldIndexChanged { changed })
            }
            Command::DeleteFieldIndex { collection, field } => {
                let changed = self.collection_mut(&collection)?.drop_field_index(&field);
                Ok(CommandOutcome::FieldIndexChanged { changed })
            }
        }
    }

    /// The named collection, for queries.
    pub fn collection(&self, name: &str) -> Result<&Collection, EngineError> {
        self.collections.get(name).ok_or_else(|| EngineError::UnknownCollection(name.to_string()))
    }

    /// The named collection, for local maintenance (index rebuilds, deletion-log pruning).
    /// Replicated changes go through [`Self::apply`].
    pub fn collection_mut(&mut self, name: &str) -> Result<&mut Collection, EngineError> {
        self.collections
            .get_mut(name)
            .ok_or_else(|| EngineError::UnknownCollection(name.to_string()))
    }

    /// Collection names in order.
    pub fn collection_names(&self) -> impl Iterator<Item = &str> {
        self.collections.keys().map(String::as_str)
    }

    /// Names of collections whose index should be rebuilt (see [`Collection::needs_rebuild`]).
    pub fn collections_needing_rebuild(&self) -> Vec<String> {
        self.collections
            .values()
            .filter(|c| c.needs_rebuild())
            .map(|c| c.name().to_string())
            .collect()
    }

    /// Puts a collection in place (e.g. one restored from a snapshot), returning the one it
    /// replaced. The swap is the only step, so a failed restore never reaches here.
    pub fn install_collection(&mut self, collection: Collection) -> Option<Collection> {
        self.collections.insert(collection.name().to_string(), collection)
    }

    /// blake3 over every collection's name and digest, in name order.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"vecraft/engine-digest/v1");
        for (name, collection) in &self.collections {
            hasher.update(&(name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(&collection.digest());
        }
        *hasher.finalize().as_bytes()
    }
}

impl StateMachine for VectorEngine {
    type Input = Command;
    type Output = Result<CommandOutcome, EngineError>;

    /// The engine ignores time: applying a command depends only on the command and the state.
    fn step(&mut self, _now: Time, input: Command, out: &mut Vec<Self::Output>) {
        out.push(self.apply(input));
    }
}
