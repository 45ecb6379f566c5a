//! A replicated collection's quantization after `PATCH /collections/{c}`.
//!
//! The metadata group keeps the config a collection was created with; a change is a
//! `PointsOp::SetQuantization` in the log of every shard (split by `shard::split_command`), so
//! every replica of a shard drops its codes and trains new ones at the same log position, and a
//! replay or a snapshot install (the snapshot's config carries it) ends where its peers do. A
//! shard replica created later starts from the metadata config and meets the change in its log.
//!
//! Shards have separate logs, so a change is not atomic across them: until every shard applied
//! it (or for ever, if it timed out in doubt on some shard) shards may use different configs.
//! That never changes an exact answer, a digest or a rescored score, only which candidates an
//! approximate search rescores. [`gather_quantization`] reports the lowest shard's config and
//! says whether another shard disagrees, instead of hiding it.

use super::scatter::{GatherError, Gathered, ShardFailure};
use super::sharding::ShardId;
use crate::vector::quantization::QuantizationConfig;

/// Merges the shards' configs into (lowest shard's config, whether any shard differs). A failed
/// shard fails the answer (naming the lowest) unless `allow_partial` lists it as missing.
pub fn gather_quantization(
    answers: Vec<(ShardId, Result<Option<QuantizationConfig>, ShardFailure>)>,
    allow_partial: bool,
) -> Result<Gathered<(Option<QuantizationConfig>, bool)>, GatherError> {
    let mut answers = answers;
    // Answers arrive in any order: the lowest shard's config is reported, always.
    answers.sort_by_key(|(shard, _)| *shard);
    let mut first: Option<Option<QuantizationConfig>> = None;
    let mut conflicting = false;
    let mut missing = Vec::new();
    for (shard, answer) in answers {
        match answer {
            Ok(config) => match &first {
                None => first = Some(config),
                Some(f) => conflicting |= *f != config,
            },
            Err(_) if allow_partial => missing.push(shard),
            Err(failure) => return Err(GatherError { shard, failure }),
        }
    }
    Ok(Gathered { value: (first.flatten(), conflicting), missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INT8: Option<QuantizationConfig> = Some(QuantizationConfig::Scalar { quantile: None, always_ram: None });
    const BINARY: Option<QuantizationConfig> = Some(QuantizationConfig::Binary { always_ram: None });

    #[test]
    fn the_lowest_shard_is_reported_and_any_difference_flagged() {
        let g = gather_quantization(vec![(1, Ok(BINARY)), (0, Ok(INT8)), (2, Ok(INT8))], false).unwrap();
        assert_eq!(g.value, (INT8, true));
        assert!(g.missing.is_empty());
        let g = gather_quantization(vec![(1, Ok(None)), (0, Ok(None))], false).unwrap();
        assert_eq!(g.value, (None, false));
        let g = gather_quantization(vec![(0, Ok(None)), (1, Ok(INT8))], false).unwrap();
        assert_eq!(g.value, (None, true), "no quantization on shard 0 is an answer, not an absence");
    }

    #[test]
    fn a_failed_shard_fails_the_answer_unless_partial_answers_are_allowed() {
        let answers = || vec![(2, Err(ShardFailure::Timeout)), (0, Ok(INT8)), (1, Err(ShardFailure::Timeout))];
        let e = gather_quantization(answers(), false).unwrap_err();
        assert_eq!((e.shard, e.failure), (1, ShardFailure::Timeout));
        let g = gather_quantization(answers(), true).unwrap();
        assert_eq!((g.value, g.missing), ((INT8, false), vec![1, 2]));
        let g = gather_quantization(vec![(0, Err(ShardFailure::Timeout))], true).unwrap();
        assert_eq!((g.value, g.missing), ((None, false), vec![0]));
    }
}
