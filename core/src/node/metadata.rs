//! The cluster's metadata: the replicated state machine of the metadata group (group 0, every
//! cluster member a voter). It holds the collections and, for each shard, which nodes hold its
//! replicas. Every node applies the same commands in the same order and reacts to the result by
//! creating or dropping its own shard replicas, so nobody needs to be told separately.
//!
//! Placement is rendezvous hashing (highest random weight): shard `s` of collection id `c` goes to
//! the `replication_factor` members with the highest blake3 score of `(group id, node)`. It is a
//! fixed, documented function of the member list, so every node computes the same map; the
//! placement issue replaces it with a zone-aware planner that writes its decisions here.
//!
//! It also holds Qdrant's collection *aliases*: other names a collection answers to, changed by
//! lists of actions that apply all or nothing (Qdrant's blue/green switch: point `prod` at a new
//! collection and away from the old one in one step, so no request sees neither).
//!
//! And the *replace* a snapshot recovery ends with: a collection filled aside under another
//! name takes the name of the one it replaces (which is dropped) in one command, so readers see
//! the old content until that entry applies and the new content, whole, after it; never an
//! empty or partly loaded collection.

use super::request::CollectionInfo;
use super::sharding::{MAX_SHARDS, ShardId};
use crate::contract::NodeId;
use crate::raft::GroupId;
use crate::vector::collection::{CollectionConfig, validate_collection_name};
use crate::vector::snapshot::CollectionConfigV3;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The metadata group's id.
pub const METADATA_GROUP: GroupId = 0;

/// Version byte in front of every encoded metadata command. Version 2 added the config's
/// `on_disk`; version 1 commands (in logs written before) still decode.
const META_VERSION: u8 = 2;

/// The Raft group of shard `shard` of the collection numbered `collection`.
pub fn shard_group(collection: u32, shard: ShardId) -> GroupId {
    debug_assert!(collection > 0, "collection ids start at 1; group 0 is the metadata group");
    ((collection as u64) << 32) | shard as u64
}

/// The (collection number, shard) of a shard group.
pub fn group_shard(group: GroupId) -> (u32, ShardId) {
    ((group >> 32) as u32, group as u32)
}

/// A command of the metadata group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Create a collection.
    CreateCollection {
        /// Its name.
        name: String,
        /// Its configuration.
        config: CollectionConfig,
        /// Shard count.
        shards: u32,
        /// Replicas per shard.
        replication_factor: u32,
    },
    /// Drop a collection.
    DropCollection {
        /// Its name.
        name: String,
    },
    /// Change aliases: every action in order, all or none (appended last: older commands keep
    /// their encoding).
    UpdateAliases {
        /// The actions.
        actions: Vec<AliasAction>,
    },
    /// The collection `with` takes the name `name`; a collection of that name is dropped in the
    /// same step. Aliases of `name` name the new content; aliases of `with` follow it. (Appended
    /// last: older commands keep their encoding.)
    ReplaceCollection {
        /// The name that changes content.
        name: String,
        /// The collection (by its own name) that takes it.
        with: String,
    },
}

/// One change of Qdrant's `POST /collections/aliases`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AliasAction {
    /// `alias` now names `collection` (whatever it named before).
    Create { alias: String, collection: String },
    /// `alias` names nothing (no error if it named nothing).
    Delete { alias: String },
    /// The alias `old` is now called `new` (whatever `new` named before).
    Rename { old: String, new: String },
}

impl MetaCommand {
    /// Version byte + postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![META_VERSION];
        out.extend(postcard::to_allocvec(self).expect("metadata commands always encode"));
        out
    }

    /// Decodes bytes from the log; errors (never panics) on anything else.
    pub fn decode(bytes: &[u8]) -> Result<MetaCommand, String> {
        let bad = |e: postcard::Error| format!("bad metadata command: {e}");
        match bytes.split_first() {
            Some((&META_VERSION, rest)) => postcard::from_bytes(rest).map_err(bad),
            Some((1, rest)) => postcard::from_bytes::<MetaCommandV1>(rest).map(MetaCommand::from).map_err(bad),
            Some((v, _)) => Err(format!("metadata command version {v} unknown")),
            None => Err("empty metadata command".into()),
        }
    }
}

/// [`MetaCommand`] as version 1 encoded it (the config before `on_disk`).
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
enum MetaCommandV1 {
    CreateCollection { name: String, config: CollectionConfigV3, shards: u32, replication_factor: u32 },
    DropCollection { name: String },
}

impl From<MetaCommandV1> for MetaCommand {
    fn from(c: MetaCommandV1) -> Self {
        match c {
            MetaCommandV1::CreateCollection { name, config, shards, replication_factor } => {
                MetaCommand::CreateCollection { name, config: config.into(), shards, replication_factor }
            }
            MetaCommandV1::DropCollection { name } => MetaCommand::DropCollection { name },
        }
    }
}

/// One collection.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectionMeta {
    /// Number in group ids; never reused.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Its configuration.
    pub config: CollectionConfig,
    /// Replica nodes per shard, preferred leader first.
    pub replicas: Vec<Vec<NodeId>>,
}

impl CollectionMeta {
    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.replicas.len() as u32
    }

    /// As clients see it.
    pub fn info(&self) -> CollectionInfo {
        CollectionInfo { name: self.name.clone(), config: self.config, replicas: self.replicas.clone() }
    }
}

/// Why a committed metadata command changed nothing: typed, so that the client who proposed it
/// gets the same error as when its node's metadata already knew (409, 404), not a text to parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaRefusal {
    /// The command does not decode or is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A create of a name that exists.
    #[error("collection {0:?} already exists")]
    Exists(String),
    /// A drop of a name that does not.
    #[error("collection {0:?} not found")]
    Missing(String),
}

/// What applying a command changed, for the node to react to.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaEvent {
    /// A collection now exists.
    Created(CollectionMeta),
    /// A collection is gone (and every alias of it).
    Dropped(CollectionMeta),
    /// Aliases changed.
    AliasesChanged,
    /// `renamed` (already under its new name) replaced `dropped`, if a collection had that name.
    Replaced {
        /// The collection that held the name before, now gone.
        dropped: Option<CollectionMeta>,
        /// The collection that holds it now (same id and groups as before the rename).
        renamed: CollectionMeta,
    },
}

/// The metadata state machine.
#[derive(Clone, Debug)]
pub struct Metadata {
    members: Vec<NodeId>,
    next_id: u32,
    collections: BTreeMap<String, CollectionMeta>,
    by_id: BTreeMap<u32, String>,
    /// Alias -> collection name. No alias is also a collection's name.
    aliases: BTreeMap<String, String>,
}

impl Metadata {
    /// The empty metadata of a cluster of `members`.
    pub fn new(members: Vec<NodeId>) -> Self {
        Metadata { members, next_id: 1, collections: BTreeMap::new(), by_id: BTreeMap::new(), aliases: BTreeMap::new() }
    }

    /// A collection by name or by one of its aliases (every read and write path).
    pub fn collection(&self, name: &str) -> Option<&CollectionMeta> {
        self.collections.get(name).or_else(|| self.aliases.get(name).and_then(|c| self.collections.get(c)))
    }

    /// A collection by its own name only (create and drop: an alias is never dropped in its
    /// collection's place).
    pub fn collection_named(&self, name: &str) -> Option<&CollectionMeta> {
        self.collections.get(name)
    }

    /// Every alias and the collection it names, by alias.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.aliases.iter().map(|(a, c)| (a.as_str(), c.as_str()))
    }

    /// The aliases after `actions`, or why they cannot all apply (then nothing changes).
    pub fn check_aliases(&self, actions: &[AliasAction]) -> Result<BTreeMap<String, String>, MetaRefusal> {
        if actions.is_empty() {
            return Err(MetaRefusal::Invalid("no alias actions".into()));
        }
        let mut aliases = self.aliases.clone();
        let name_ok = |alias: &str| -> Result<(), MetaRefusal> {
            validate_collection_name(alias).map_err(|e| MetaRefusal::Invalid(format!("alias: {e}")))?;
            if self.collections.contains_key(alias) {
                return Err(MetaRefusal::Invalid(format!("alias {alias:?}: a collection has that name")));
            }
            Ok(())
        };
        for action in actions {
            match action {
                AliasAction::Create { alias, collection } => {
                    name_ok(alias)?;
                    if !self.collections.contains_key(collection) {
                        return Err(MetaRefusal::Missing(collection.clone()));
                    }
                    aliases.insert(alias.clone(), collection.clone());
                }
                AliasAction::Delete { alias } => {
                    aliases.remove(alias);
                }
                AliasAction::Rename { old, new } => {
                    name_ok(new)?;
                    let Some(collection) = aliases.remove(old) else {
                        return Err(MetaRefusal::Invalid(format!("alias {old:?} does not exist")));
                    };
                    aliases.insert(new.clone(), collection);
                }
            }
        }
        Ok(aliases)
    }

    /// Checks a replace (see [`MetaCommand::ReplaceCollection`]) before it is proposed and again
    /// when it applies.
    pub fn check_replace(&self, name: &str, with: &str) -> Result<(), MetaRefusal> {
        validate_collection_name(name).map_err(|e| MetaRefusal::Invalid(e.to_string()))?;
        if name == with {
            return Err(MetaRefusal::Invalid(format!("collection {name:?} cannot replace itself")));
        }
        if let Some(target) = self.aliases.get(name) {
            return Err(MetaRefusal::Invalid(format!(
                "{name:?} is an alias of collection {target:?}; replace the collection by its own name"
            )));
        }
        if !self.collections.contains_key(with) {
            return Err(MetaRefusal::Missing(with.to_string()));
        }
        Ok(())
    }

    /// A collection by number.
    pub fn collection_by_id(&self, id: u32) -> Option<&CollectionMeta> {
        self.by_id.get(&id).and_then(|n| self.collections.get(n))
    }

    /// Every collection, by name.
    pub fn collections(&self) -> impl Iterator<Item = &CollectionMeta> {
        self.collections.values()
    }

    /// Checks a create before it is proposed, so a bad request is refused without a log entry
    /// (apply checks again: the state may change between the two).
    pub fn check_create(&self, name: &str, config: &CollectionConfig, shards: u32, rf: u32) -> Result<(), String> {
        validate_collection_name(name).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        if shards == 0 || shards > MAX_SHARDS {
            return Err(format!("shard_number {shards} not in 1..={MAX_SHARDS}"));
        }
        if rf == 0 || rf as usize > self.members.len() {
            return Err(format!("replication_factor {rf} not in 1..={}", self.members.len()));
        }
        Ok(())
    }

    /// Applies one committed command. `Err` is a deterministic refusal (same on every node).
    pub fn apply(&mut self, command: MetaCommand) -> Result<MetaEvent, MetaRefusal> {
        match command {
            MetaCommand::CreateCollection { name, config, shards, replication_factor } => {
                self.check_create(&name, &config, shards, replication_factor).map_err(MetaRefusal::Invalid)?;
                if self.collections.contains_key(&name) {
                    return Err(MetaRefusal::Exists(name));
                }
                if let Some(target) = self.aliases.get(&name) {
                    return Err(MetaRefusal::Invalid(format!("{name:?} is an alias of collection {target:?}; delete the alias first")));
                }
                let id = self.next_id;
                self.next_id += 1;
                let replicas =
                    (0..shards).map(|s| place(&self.members, shard_group(id, s), replication_factor)).collect();
                let meta = CollectionMeta { id, name: name.clone(), config, replicas };
                self.by_id.insert(id, name.clone());
                self.collections.insert(name, meta.clone());
                Ok(MetaEvent::Created(meta))
            }
            MetaCommand::DropCollection { name } => {
                let meta = self.collections.remove(&name).ok_or(MetaRefusal::Missing(name))?;
                self.by_id.remove(&meta.id);
                self.aliases.retain(|_, c| *c != meta.name);
                Ok(MetaEvent::Dropped(meta))
            }
            MetaCommand::UpdateAliases { actions } => {
                self.aliases = self.check_aliases(&actions)?;
                Ok(MetaEvent::AliasesChanged)
            }
            MetaCommand::ReplaceCollection { name, with } => {
                self.check_replace(&name, &with)?;
                let dropped = self.collections.remove(&name);
                if let Some(d) = &dropped {
                    self.by_id.remove(&d.id);
                }
                let mut renamed = self.collections.remove(&with).expect("checked above");
                renamed.name = name.clone();
                self.by_id.insert(renamed.id, name.clone());
                for target in self.aliases.values_mut() {
                    if *target == with {
                        *target = name.clone();
                    }
                }
                self.collections.insert(name, renamed.clone());
                Ok(MetaEvent::Replaced { dropped, renamed })
            }
        }
    }
}

/// Rendezvous placement: the `rf` members with the highest score for `group`, best first.
pub fn place(members: &[NodeId], group: GroupId, rf: u32) -> Vec<NodeId> {
    let mut scored: Vec<(u64, NodeId)> = members
        .iter()
        .map(|&node| {
            let mut h = blake3::Hasher::new();
            h.update(b"vecraft/placement/v1");
            h.update(&group.to_le_bytes());
            h.update(&node.to_le_bytes());
            let b = h.finalize();
            (u64::from_le_bytes(b.as_bytes()[..8].try_into().expect("8 bytes")), node)
        })
        .collect();
    scored.sort_by(|a, b| b.cmp(a));
    scored.into_iter().take(rf as usize).map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::collection::Distance;

    fn create(name: &str, shards: u32, rf: u32) -> MetaCommand {
        MetaCommand::CreateCollection {
            name: name.into(),
            config: CollectionConfig::new(4, Distance::Cosine),
            shards,
            replication_factor: rf,
        }
    }

    #[test]
    fn placement_is_deterministic_distinct_and_spread() {
        let members = vec![1, 2, 3, 4, 5];
        let mut firsts = BTreeMap::new();
        for s in 0..200 {
            let p = place(&members, shard_group(1, s), 3);
            assert_eq!(p, place(&members, shard_group(1, s), 3));
            let mut d = p.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3);
            *firsts.entry(p[0]).or_insert(0) += 1;
        }
        // Every member prefers some shards, none more than twice its fair share.
        assert_eq!(firsts.len(), 5);
        assert!(firsts.values().all(|&n| n <= 80), "{firsts:?}");
    }

    #[test]
    fn create_and_drop_allocate_fresh_ids_and_refuse_bad_input() {
        let mut m = Metadata::new(vec![1, 2, 3]);
        let MetaEvent::Created(a) = m.apply(create("a", 2, 3)).unwrap() else { panic!() };
        assert_eq!(a.id, 1);
        assert_eq!(a.replicas.len(), 2);
        assert_eq!(m.apply(create("a", 1, 1)).unwrap_err(), MetaRefusal::Exists("a".into()));
        // Bounds: rf = members accepted, members + 1 refused; 0 shards refused.
        assert!(m.check_create("b", &CollectionConfig::new(4, Distance::Dot), 1, 3).is_ok());
        assert!(m.check_create("b", &CollectionConfig::new(4, Distance::Dot), 1, 4).is_err());
        assert!(m.check_create("b", &CollectionConfig::new(4, Distance::Dot), 0, 1).is_err());
        m.apply(MetaCommand::DropCollection { name: "a".into() }).unwrap();
        let MetaEvent::Created(a2) = m.apply(create("a", 1, 1)).unwrap() else { panic!() };
        assert_eq!(a2.id, 2, "ids are never reused, so a re-created collection gets fresh groups");
        assert_eq!(m.apply(MetaCommand::DropCollection { name: "zz".into() }).unwrap_err(), MetaRefusal::Missing("zz".into()));
    }

    fn aliases(m: &Metadata) -> Vec<(String, String)> {
        m.aliases().map(|(a, c)| (a.to_string(), c.to_string())).collect()
    }

    fn update(m: &mut Metadata, actions: Vec<AliasAction>) -> Result<MetaEvent, MetaRefusal> {
        let c = MetaCommand::UpdateAliases { actions };
        m.apply(MetaCommand::decode(&c.encode()).unwrap())
    }

    fn create_alias(alias: &str, collection: &str) -> AliasAction {
        AliasAction::Create { alias: alias.into(), collection: collection.into() }
    }

    #[test]
    fn aliases_resolve_switch_in_one_step_and_apply_all_or_nothing() {
        let mut m = Metadata::new(vec![1, 2, 3]);
        m.apply(create("blue", 1, 1)).unwrap();
        m.apply(create("green", 1, 1)).unwrap();
        assert_eq!(update(&mut m, vec![create_alias("prod", "blue")]), Ok(MetaEvent::AliasesChanged));
        assert_eq!(m.collection("prod").map(|c| c.name.as_str()), Some("blue"));
        assert!(m.collection_named("prod").is_none(), "create and drop use own names only");
        // The blue/green switch: delete and create in one command.
        update(&mut m, vec![AliasAction::Delete { alias: "prod".into() }, create_alias("prod", "green")]).unwrap();
        assert_eq!(m.collection("prod").map(|c| c.name.as_str()), Some("green"));
        // A list whose last action fails changes nothing, not even its first actions.
        let before = aliases(&m);
        let r = update(&mut m, vec![create_alias("staging", "blue"), create_alias("x", "missing")]);
        assert_eq!(r, Err(MetaRefusal::Missing("missing".into())));
        assert_eq!(aliases(&m), before);
        let r = update(&mut m, vec![AliasAction::Delete { alias: "prod".into() }, create_alias("blue", "green")]);
        assert!(matches!(r, Err(MetaRefusal::Invalid(_))), "an alias cannot take a collection's name: {r:?}");
        assert_eq!(aliases(&m), before);
        assert!(matches!(update(&mut m, vec![]), Err(MetaRefusal::Invalid(_))));
        // Rename: the old name is gone, the new one names the same collection; a missing old
        // alias is refused.
        update(&mut m, vec![AliasAction::Rename { old: "prod".into(), new: "live".into() }]).unwrap();
        assert_eq!(aliases(&m), vec![("live".to_string(), "green".to_string())]);
        assert!(update(&mut m, vec![AliasAction::Rename { old: "prod".into(), new: "x".into() }]).is_err());
        // Deleting an alias that does not exist is not an error (Qdrant: "delete alias if exists").
        assert!(update(&mut m, vec![AliasAction::Delete { alias: "nope".into() }]).is_ok());
        // A collection cannot be created under an alias's name; dropping a collection drops its
        // aliases, so a later collection of that name does not inherit them.
        assert!(matches!(m.apply(create("live", 1, 1)), Err(MetaRefusal::Invalid(_))));
        m.apply(MetaCommand::DropCollection { name: "green".into() }).unwrap();
        assert_eq!(aliases(&m), vec![]);
        assert_eq!(m.apply(MetaCommand::DropCollection { name: "live".into() }), Err(MetaRefusal::Missing("live".into())));
    }

    #[test]
    fn a_replace_renames_in_one_step_drops_the_old_collection_and_keeps_aliases_working() {
        let mut m = Metadata::new(vec![1, 2, 3]);
        let MetaEvent::Created(old) = m.apply(create("live", 2, 3)).unwrap() else { panic!() };
        let MetaEvent::Created(staged) = m.apply(create("live.staged", 3, 2)).unwrap() else { panic!() };
        update(&mut m, vec![create_alias("prod", "live"), create_alias("next", "live.staged")]).unwrap();
        let c = MetaCommand::ReplaceCollection { name: "live".into(), with: "live.staged".into() };
        let Ok(MetaEvent::Replaced { dropped, renamed }) = m.apply(MetaCommand::decode(&c.encode()).unwrap()) else {
            panic!("a replace applies")
        };
        assert_eq!(dropped, Some(old.clone()));
        assert_eq!((renamed.id, renamed.name.as_str(), &renamed.replicas), (staged.id, "live", &staged.replicas));
        // The name now resolves to the staged collection (its id, its groups), the staging name
        // to nothing, the old id to nothing; both aliases name the new content.
        assert_eq!(m.collection("live").map(|c| c.id), Some(staged.id));
        assert!(m.collection("live.staged").is_none());
        assert!(m.collection_by_id(old.id).is_none());
        assert_eq!(m.collection_by_id(staged.id).map(|c| c.name.as_str()), Some("live"));
        assert_eq!(m.collection("prod").map(|c| c.id), Some(staged.id));
        assert_eq!(aliases(&m), vec![("next".to_string(), "live".to_string()), ("prod".to_string(), "live".to_string())]);
        assert_eq!(m.collections().count(), 1);
        // A replace of a name nobody holds is a rename; refusals change nothing.
        m.apply(create("b", 1, 1)).unwrap();
        assert!(matches!(m.apply(MetaCommand::ReplaceCollection { name: "fresh".into(), with: "b".into() }), Ok(MetaEvent::Replaced { dropped: None, .. })));
        let before = (m.collections().cloned().collect::<Vec<_>>(), aliases(&m));
        let refusals = [
            (MetaCommand::ReplaceCollection { name: "live".into(), with: "gone".into() }, MetaRefusal::Missing("gone".into())),
            (MetaCommand::ReplaceCollection { name: "live".into(), with: "live".into() }, MetaRefusal::Invalid("collection \"live\" cannot replace itself".into())),
        ];
        for (c, want) in refusals {
            assert_eq!(m.apply(c), Err(want));
        }
        assert!(matches!(m.apply(MetaCommand::ReplaceCollection { name: "prod".into(), with: "fresh".into() }), Err(MetaRefusal::Invalid(_))), "an alias is not replaced");
        assert!(matches!(m.apply(MetaCommand::ReplaceCollection { name: ".x".into(), with: "fresh".into() }), Err(MetaRefusal::Invalid(_))));
        assert_eq!((m.collections().cloned().collect::<Vec<_>>(), aliases(&m)), before);
    }

    #[test]
    fn commands_round_trip_and_garbage_is_an_error() {
        let c = create("x", 3, 2);
        assert_eq!(MetaCommand::decode(&c.encode()).unwrap(), c);
        assert!(MetaCommand::decode(&[]).is_err());
        assert!(MetaCommand::decode(&[9, 1, 2]).is_err());
        assert!(MetaCommand::decode(&[META_VERSION, 0xff, 0xff]).is_err());
        assert_eq!(group_shard(shard_group(7, 3)), (7, 3));
    }

    #[test]
    fn version_1_commands_from_older_logs_decode_with_vectors_in_memory() {
        let MetaCommand::CreateCollection { name, mut config, shards, replication_factor } = create("x", 3, 2) else {
            unreachable!()
        };
        config.quantization = Some(crate::vector::quantization::QuantizationConfig::Binary { always_ram: None });
        let v1 = MetaCommandV1::CreateCollection { name, config: (&config).into(), shards, replication_factor };
        let mut bytes = vec![1];
        bytes.extend(postcard::to_allocvec(&v1).unwrap());
        let MetaCommand::CreateCollection { config: decoded, .. } = MetaCommand::decode(&bytes).unwrap() else {
            panic!("a create decodes as a create")
        };
        assert_eq!(decoded, config, "every version 1 field kept, on_disk false");
        let drop = postcard::to_allocvec(&MetaCommandV1::DropCollection { name: "x".into() }).unwrap();
        assert_eq!(MetaCommand::decode(&[&[1u8][..], &drop].concat()).unwrap(), MetaCommand::DropCollection { name: "x".into() });
        // The current version carries on_disk.
        config.on_disk = true;
        let c = MetaCommand::CreateCollection { name: "x".into(), config, shards: 1, replication_factor: 1 };
        assert_eq!(MetaCommand::decode(&c.encode()).unwrap(), c);
    }
}
