//! Payload field indexes of a replicated collection, as the node declares and reports them.
//!
//! A field index is declared by a command in the log of **every** shard of the collection
//! (`PointsOp::CreateFieldIndex` / `DeleteFieldIndex`, split to every shard by
//! `shard::split_command`), so every replica of a shard builds it at the same log position, and a
//! replica that restarts (WAL replay) or installs a snapshot (the snapshot header carries the
//! declarations) declares exactly what its peers do.
//!
//! Shards have separate logs, so a collection-wide declaration is not atomic across shards: until
//! every shard applied it (or for ever, if it timed out in doubt on some shard) the shards may
//! disagree, and two concurrent creates of one field with different schemas may be ordered
//! differently in two shards. That never changes an answer — an index only narrows the points a
//! filter is checked on, never decides a match — only the cost of a filtered read and what GET
//! collection reports. [`gather_field_indexes`] therefore reports, per field, how many shards
//! declare it and whether they disagree on the schema, instead of hiding either.

use super::scatter::{GatherError, Gathered, ShardFailure};
use super::sharding::ShardId;
use crate::vector::payload_index::FieldSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One declared payload field index of a collection, gathered from its shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldIndexInfo {
    /// The schema, as the lowest shard declaring the field has it.
    pub schema: FieldSchema,
    /// Points indexed under the field, summed over the shards that answered.
    pub points: u64,
    /// How many of the answering shards declare the field.
    pub shards: u32,
    /// Whether some shard declares the field with another schema (concurrent conflicting
    /// creates ordered differently in two shards' logs).
    pub conflicting: bool,
}

/// One shard's declarations: field → (schema, points indexed).
pub type ShardFieldIndexes = BTreeMap<String, (FieldSchema, u64)>;

/// Merges the shards' declarations. A shard that failed fails the whole answer (naming the
/// lowest such shard) unless `allow_partial`, when it is listed as missing instead.
pub fn gather_field_indexes(
    answers: Vec<(ShardId, Result<ShardFieldIndexes, ShardFailure>)>,
    allow_partial: bool,
) -> Result<Gathered<BTreeMap<String, FieldIndexInfo>>, GatherError> {
    let mut answers = answers;
    // Answers come from the network in any order: the lowest shard's schema wins, always.
    answers.sort_by_key(|(shard, _)| *shard);
    let mut fields: BTreeMap<String, FieldIndexInfo> = BTreeMap::new();
    let mut missing = Vec::new();
    for (shard, answer) in answers {
        let declared = match answer {
            Ok(d) => d,
            Err(_) if allow_partial => {
                missing.push(shard);
                continue;
            }
            Err(failure) => return Err(GatherError { shard, failure }),
        };
        for (field, (schema, points)) in declared {
            let info = fields.entry(field).or_insert(FieldIndexInfo {
                schema,
                points: 0,
                shards: 0,
                conflicting: false,
            });
            info.points = info.points.saturating_add(points);
            info.shards += 1;
            info.conflicting |= info.schema != schema;
        }
    }
    Ok(Gathered {
        value: fields,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(fields: &[(&str, FieldSchema, u64)]) -> BTreeMap<String, (FieldSchema, u64)> {
        fields
            .iter()
            .map(|(f, s, n)| (f.to_string(), (*s, *n)))
            .collect()
    }

    #[test]
    fn counts_are_summed_and_disagreements_reported() {
        let answers = vec![
            (1, Ok(shard(&[("g", FieldSchema::Integer, 2)]))),
            (
                0,
                Ok(shard(&[
                    ("g", FieldSchema::Keyword, 3),
                    ("v", FieldSchema::Integer, 1),
                ])),
            ),
            (2, Ok(shard(&[]))),
        ];
        let g = gather_field_indexes(answers, false).unwrap();
        assert!(g.missing.is_empty());
        let info = g.value["g"];
        assert_eq!(
            info,
            FieldIndexInfo {
                schema: FieldSchema::Keyword,
                points: 5,
                shards: 2,
                conflicting: true
            }
        );
        assert_eq!(
            g.value["v"],
            FieldIndexInfo {
                schema: FieldSchema::Integer,
                points: 1,
                shards: 1,
                conflicting: false
            }
        );
    }

    #[test]
    fn a_failed_shard_fails_the_answer_unless_partial() {
        let answers = || {
            vec![
                (0, Ok(shard(&[("g", FieldSchema::Keyword, 1)]))),
                (1, Err(ShardFailure::Timeout)),
            ]
        };
        let e = gather_field_indexes(answers(), false).unwrap_err();
        assert_eq!(
            e,
            GatherError {
                shard: 1,
                failure: ShardFailure::Timeout
            }
        );
        let g = gather_field_indexes(answers(), true).unwrap();
        assert_eq!(g.missing, vec![1]);
        assert_eq!(g.value["g"].shards, 1);
    }
}
