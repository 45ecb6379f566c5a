//! A replicated collection's vector settings that `PATCH /collections/{c}` changes: its
//! quantization and whether its f32 vectors live on disk.
//!
//! The metadata group keeps the config a collection was created with; a change is a
//! `PointsOp::SetQuantization` / `SetVectorsOnDisk` in the log of every shard (split by
//! `shard::split_command`), so every replica of a shard changes at the same log position (new
//! codes trained from the same slots; vectors moved to or from its file), and a replay or a
//! snapshot install (the snapshot's config carries both) ends where its peers do. A shard
//! replica created later starts from the metadata config and meets the change in its log.
//!
//! Shards have separate logs, so a change is not atomic across them: until every shard applied
//! it (or for ever, if it timed out in doubt on some shard) shards may differ. That never changes
//! an exact answer, a digest or a rescored score, only which candidates an approximate search
//! rescores and where vectors are kept. [`gather_vector_settings`] reports the lowest shard's
//! settings and says whether another shard differs, instead of hiding it.

use super::scatter::{GatherError, Gathered, ShardFailure};
use super::sharding::ShardId;
use crate::vector::collection::CollectionConfig;
use crate::vector::quantization::QuantizationConfig;
use serde::{Deserialize, Serialize};

/// The settings of one shard replica.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorSettings {
    /// Its quantization.
    pub quantization: Option<QuantizationConfig>,
    /// Whether its f32 vectors live in a mapped file (Qdrant's `vectors.on_disk`).
    pub on_disk: bool,
}

impl VectorSettings {
    /// The settings a collection config holds.
    pub fn of(config: &CollectionConfig) -> VectorSettings {
        VectorSettings { quantization: config.quantization, on_disk: config.on_disk }
    }
}

/// Merges the shards' settings into (lowest shard's settings, whether any shard differs). A
/// failed shard fails the answer (naming the lowest) unless `allow_partial` lists it as missing.
pub fn gather_vector_settings(
    answers: Vec<(ShardId, Result<VectorSettings, ShardFailure>)>,
    allow_partial: bool,
) -> Result<Gathered<(VectorSettings, bool)>, GatherError> {
    let mut answers = answers;
    // Answers arrive in any order: the lowest shard's settings are reported, always.
    answers.sort_by_key(|(shard, _)| *shard);
    let mut first: Option<VectorSettings> = None;
    let mut conflicting = false;
    let mut missing = Vec::new();
    for (shard, answer) in answers {
        match answer {
            Ok(settings) => match &first {
                None => first = Some(settings),
                Some(f) => conflicting |= *f != settings,
            },
            Err(_) if allow_partial => missing.push(shard),
            Err(failure) => return Err(GatherError { shard, failure }),
        }
    }
    Ok(Gathered { value: (first.unwrap_or_default(), conflicting), missing })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INT8: VectorSettings = VectorSettings {
        quantization: Some(QuantizationConfig::Scalar { quantile: None, always_ram: None }),
        on_disk: false,
    };
    const BINARY: VectorSettings =
        VectorSettings { quantization: Some(QuantizationConfig::Binary { always_ram: None }), on_disk: false };
    const PLAIN: VectorSettings = VectorSettings { quantization: None, on_disk: false };
    const ON_DISK: VectorSettings = VectorSettings { quantization: None, on_disk: true };

    #[test]
    fn the_lowest_shard_is_reported_and_any_difference_flagged() {
        let g = gather_vector_settings(vec![(1, Ok(BINARY)), (0, Ok(INT8)), (2, Ok(INT8))], false).unwrap();
        assert_eq!(g.value, (INT8, true));
        assert!(g.missing.is_empty());
        let g = gather_vector_settings(vec![(1, Ok(PLAIN)), (0, Ok(PLAIN))], false).unwrap();
        assert_eq!(g.value, (PLAIN, false));
        let g = gather_vector_settings(vec![(0, Ok(PLAIN)), (1, Ok(ON_DISK))], false).unwrap();
        assert_eq!(g.value, (PLAIN, true), "on_disk differences count too");
    }

    #[test]
    fn a_failed_shard_fails_the_answer_unless_partial_answers_are_allowed() {
        let answers = || vec![(2, Err(ShardFailure::Timeout)), (0, Ok(INT8)), (1, Err(ShardFailure::Timeout))];
        let e = gather_vector_settings(answers(), false).unwrap_err();
        assert_eq!((e.shard, e.failure), (1, ShardFailure::Timeout));
        let g = gather_vector_settings(answers(), true).unwrap();
        assert_eq!((g.value, g.missing), ((INT8, false), vec![1, 2]));
        let g = gather_vector_settings(vec![(0, Err(ShardFailure::Timeout))], true).unwrap();
        assert_eq!((g.value, g.missing), ((PLAIN, false), vec![0]));
    }
}
