//! Payload field indexes in the node world's vector workload, and the `field-indexes` checker.
//!
//! In seeds with `NodeWorldConfig::field_indexes`, client 0 (one request at a time, so its index
//! commands are totally ordered by invocation) now and then declares or drops one of two indexes
//! on a collection — `g` as a keyword, `v` as an integer; each field always with the same schema,
//! so a command's effect does not depend on the state it meets — at `quorum`, while the other
//! clients write (upserts then carry a keyword `g` beside `v`) and read under the seed's faults.
//!
//! What the indexes must not change is checked by the scatter-gather probe: filtered exact
//! searches, counts and scrolls through the nodes (whose shards hold indexes) equal an engine
//! holding the union of the shards and no index at all. What they must be is checked here: each
//! shard of a collection ends declaring field `f` or not as the history allows — the effect of
//! the last command on `f` acknowledged at `quorum`, or of any command on `f` left in doubt (a
//! delayed message may still be proposed after later commands). Refused commands did nothing.
//! `convergence` checks that the replicas of a shard declare the same indexes.

use super::workload::Outcome;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use vecraft_core::node::field_index::FieldIndexInfo;
use vecraft_core::raft::GroupId;
use vecraft_core::vector::collection::{Collection, PointsOp};
use vecraft_core::vector::filter::{Condition, Filter, MatchValue, NumericRange};
use vecraft_core::vector::payload::PayloadValue;
use vecraft_core::vector::payload_index::FieldSchema;

/// The indexed fields and their one schema each.
pub(super) const FIELDS: [(&str, FieldSchema); 2] =
    [("g", FieldSchema::Keyword), ("v", FieldSchema::Integer)];

/// Keyword values of `g`.
const KEYWORDS: [&str; 3] = ["red", "green", "blue"];

/// Chance that client 0, when free, sends an index command instead of its next operation (after
/// its first, a create). Low on purpose: every re-declaration also re-declares on a replica that
/// wrongly lost its index, hiding the loss; at 0.06 the `restore-drops-field-indexes` bug was
/// caught in 2 of 300 seeds, at 0.015 (with the early create) in 9 of 300, while creates and
/// drops still run in about 280 and 140 of 1,000 seeds.
const INDEX_OP_CHANCE: f64 = 0.015;

/// One index command of the history.
#[derive(Clone, Debug)]
pub(super) struct IndexRec {
    /// Index of the collection in `Workload::collections`.
    pub(super) collection: usize,
    pub(super) field: &'static str,
    pub(super) create: bool,
    pub(super) outcome: Outcome,
}

/// The `g` value written with `version` (derived, so no draw shifts the seed's other choices).
pub(super) fn keyword_of(version: u64) -> PayloadValue {
    PayloadValue::Str(KEYWORDS[(version % KEYWORDS.len() as u64) as usize].to_string())
}

/// Whether client 0 sends an index command now, and which: (collection, field, create, op).
/// The `first` is always a create, sent at once: users declare indexes when they set a
/// collection up, so most of the run (its snapshots, restarts and installs) carries one.
pub(super) fn next_index_op(
    rng: &mut ChaCha8Rng,
    collections: usize,
    first: bool,
) -> Option<(usize, &'static str, bool, PointsOp)> {
    if !first && !rng.random_bool(INDEX_OP_CHANCE) {
        return None;
    }
    let collection = rng.random_range(0..collections);
    let (field, schema) = FIELDS[rng.random_range(0..FIELDS.len())];
    // Creates outnumber drops, so indexes exist for much of the run.
    let create = first || rng.random_bool(0.7);
    let op = if create {
        PointsOp::CreateFieldIndex {
            field: field.into(),
            schema,
        }
    } else {
        PointsOp::DeleteFieldIndex {
            field: field.into(),
        }
    };
    Some((collection, field, create, op))
}

/// The filters the final probe runs through the node and against the union engine: a keyword
/// match, an integer range, and both (each narrows by an index when one is declared).
pub(super) fn probe_filters(rng: &mut ChaCha8Rng) -> Vec<Filter> {
    let keyword = KEYWORDS[rng.random_range(0..KEYWORDS.len())];
    let lo = rng.random_range(0..4) as f64;
    let by_keyword = Condition::matches_value("g", MatchValue::Keyword(keyword.to_string()));
    let by_range = Condition::range(
        "v",
        NumericRange {
            gte: Some(lo),
            lte: Some(lo + 3.0),
            ..Default::default()
        },
    );
    vec![
        Filter::must(vec![by_keyword.clone()]),
        Filter::must(vec![by_range.clone()]),
        Filter::must(vec![by_keyword, by_range]),
    ]
}

/// What the history allows each shard of `collection` to end with for `field`.
fn allowed(history: &[IndexRec], collection: usize, field: &str) -> BTreeSet<bool> {
    let ops: Vec<&IndexRec> = history
        .iter()
        .filter(|r| r.collection == collection && r.field == field)
        .collect();
    let mut allowed: BTreeSet<bool> = ops
        .iter()
        .filter(|r| r.outcome == Outcome::InDoubt)
        .map(|r| r.create)
        .collect();
    allowed.insert(
        ops.iter()
            .rev()
            .find(|r| r.outcome == Outcome::Ok)
            .is_some_and(|r| r.create),
    );
    allowed
}

/// The `field-indexes` checker: every shard replica of every collection declares each field as
/// the history allows, with the field's one schema.
pub(super) fn check_declarations(
    history: &[IndexRec],
    collections: &[(&'static str, u32, u32)],
    engines: &[(u64, &BTreeMap<GroupId, Collection>)],
) -> Vec<String> {
    let mut v = Vec::new();
    for (node, es) in engines {
        for (g, c) in es.iter() {
            let Some(k) = collections
                .iter()
                .position(|(name, _, _)| *name == c.name())
            else {
                continue;
            };
            let declared = c.field_indexes();
            for (field, schema) in FIELDS {
                let has = declared.get(field).map(|(s, _)| *s);
                if has.is_some_and(|s| s != schema) {
                    v.push(format!(
                        "field-indexes: node {node} group {g:#x} declares `{field}` as {has:?}"
                    ));
                }
                let ok = allowed(history, k, field);
                if !ok.contains(&has.is_some()) {
                    v.push(format!(
                        "field-indexes: node {node} group {g:#x} ({}) {} `{field}`; the history allows {ok:?}",
                        c.name(),
                        if has.is_some() { "declares" } else { "lacks" }
                    ));
                }
            }
            if let Some(extra) = declared
                .keys()
                .find(|f| !FIELDS.iter().any(|(x, _)| x == f))
            {
                v.push(format!(
                    "field-indexes: node {node} group {g:#x} declares unknown field `{extra}`"
                ));
            }
        }
    }
    v.truncate(4);
    v
}

/// The final `FieldIndexes` probe against the shards themselves: per field, the number of
/// shards declaring it and the points they index (one replica per shard; they converged).
pub(super) fn expected_report(shards: &[&Collection]) -> BTreeMap<String, FieldIndexInfo> {
    let mut want: BTreeMap<String, FieldIndexInfo> = BTreeMap::new();
    for c in shards {
        for (field, (schema, points)) in c.field_indexes() {
            let e = want.entry(field).or_insert(FieldIndexInfo {
                schema,
                points: 0,
                shards: 0,
                conflicting: false,
            });
            e.points += points as u64;
            e.shards += 1;
            e.conflicting |= e.schema != schema;
        }
    }
    want
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(create: bool, outcome: Outcome) -> IndexRec {
        IndexRec {
            collection: 0,
            field: "g",
            create,
            outcome,
        }
    }

    #[test]
    fn the_last_acknowledged_command_or_any_in_doubt_one_decides() {
        assert_eq!(allowed(&[], 0, "g"), BTreeSet::from([false]));
        let h = [rec(true, Outcome::Ok), rec(false, Outcome::Failed)];
        assert_eq!(allowed(&h, 0, "g"), BTreeSet::from([true]));
        let h = [rec(true, Outcome::InDoubt), rec(false, Outcome::Ok)];
        assert_eq!(allowed(&h, 0, "g"), BTreeSet::from([false, true]));
        let h = [rec(true, Outcome::Ok), rec(false, Outcome::Ok)];
        assert_eq!(allowed(&h, 0, "g"), BTreeSet::from([false]));
        assert_eq!(allowed(&h, 0, "v"), BTreeSet::from([false]));
        assert_eq!(allowed(&h, 1, "g"), BTreeSet::from([false]));
    }
}
