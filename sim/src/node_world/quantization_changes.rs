//! Quantization changed while the node world runs (`PATCH quantization_config`), and the
//! `quantization-changes` checker.
//!
//! In seeds with `NodeWorldConfig::quantization_changes` (quantized seeds only) client 0, one
//! request at a time, now and then switches a collection's quantization — off, back to the
//! seed's config, or to the other kind — at `quorum`, while the other clients write and read
//! under the seed's faults. Each switch is a `PointsOp::SetQuantization` in every shard's log.
//!
//! What the switches must be is checked on the final engines: every replica of a collection uses
//! a config the history allows — the seed's, or the last switch acknowledged at `quorum`, or any
//! switch left in doubt (a delayed message may still be proposed after later ones); refused ones
//! did nothing — and the replicas of a shard agree. A replica that uses codes and holds at least
//! the training threshold's slots has trained them (a switch retrains at once). The final probe
//! asks the node for the collection's quantization and gets the lowest shard's config, flagged
//! when another shard differs. What the switches must not change (exact answers, rescored
//! scores) stays with the `quantized-search` and scatter-gather checkers.

use super::workload::Outcome;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use vecraft_core::raft::GroupId;
use vecraft_core::vector::collection::{Collection, PointsOp};
use vecraft_core::vector::quantization::QuantizationConfig;

/// Chance that client 0, when free, sends a switch instead of its next operation (after its
/// first, sent at once). Low, as for field indexes: every switch also re-sets a replica that
/// wrongly lost the previous one, hiding the loss.
const CHANGE_CHANCE: f64 = 0.005;

/// One switch of the history.
#[derive(Clone, Debug)]
pub(super) struct ChangeRec {
    /// Index of the collection in `Workload::collections`.
    pub(super) collection: usize,
    pub(super) config: Option<QuantizationConfig>,
    pub(super) outcome: Outcome,
}

/// Whether client 0 switches now, and to what: (collection, config, op). The `first` is sent at
/// once and always away from the seed's config, so most of the run (its snapshots, restarts and
/// installs) carries a config the collection was not created with.
pub(super) fn next_change(
    rng: &mut ChaCha8Rng,
    collections: usize,
    seed_config: QuantizationConfig,
    first: bool,
) -> Option<(usize, Option<QuantizationConfig>, PointsOp)> {
    if !first && !rng.random_bool(CHANGE_CHANCE) {
        return None;
    }
    let collection = rng.random_range(0..collections);
    let other = match seed_config {
        QuantizationConfig::Scalar { .. } => QuantizationConfig::Binary { always_ram: None },
        QuantizationConfig::Binary { .. } => QuantizationConfig::Scalar { quantile: Some(0.9), always_ram: None },
    };
    let config = if first {
        [None, Some(other)][rng.random_range(0..2)]
    } else {
        [None, Some(seed_config), Some(other)][rng.random_range(0..3)]
    };
    Some((collection, config, PointsOp::SetQuantization { quantization: config }))
}

/// The configs the history allows each replica of `collection` to end with.
fn allowed(
    history: &[ChangeRec],
    collection: usize,
    seed_config: QuantizationConfig,
) -> BTreeSet<Option<Key>> {
    let ops: Vec<&ChangeRec> = history.iter().filter(|r| r.collection == collection).collect();
    let mut allowed: BTreeSet<Option<Key>> =
        ops.iter().filter(|r| r.outcome == Outcome::InDoubt).map(|r| r.config.map(Key::of)).collect();
    let last = ops.iter().rev().find(|r| r.outcome == Outcome::Ok).map_or(Some(seed_config), |r| r.config);
    allowed.insert(last.map(Key::of));
    allowed
}

/// A config as an ordered key (the config holds an `f32`; its bits order it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key(u8, Option<u32>);

impl Key {
    fn of(c: QuantizationConfig) -> Key {
        match c {
            QuantizationConfig::Scalar { quantile, .. } => Key(0, quantile.map(f32::to_bits)),
            QuantizationConfig::Binary { .. } => Key(1, None),
        }
    }
}

/// The `quantization-changes` checker on the final engines.
pub(super) fn check_configs(
    history: &[ChangeRec],
    collections: &[(&'static str, u32, u32)],
    engines: &[(u64, &BTreeMap<GroupId, Collection>)],
    seed_config: QuantizationConfig,
    train_after: usize,
) -> Vec<String> {
    let mut v = Vec::new();
    let mut by_group: BTreeMap<GroupId, Vec<(u64, Option<QuantizationConfig>)>> = BTreeMap::new();
    for (node, es) in engines {
        for (g, c) in es.iter() {
            let Some(k) = collections.iter().position(|(name, _, _)| *name == c.name()) else {
                continue;
            };
            let config = c.config().quantization;
            by_group.entry(*g).or_default().push((*node, config));
            let ok = allowed(history, k, seed_config);
            if !ok.contains(&config.map(Key::of)) {
                v.push(format!(
                    "quantization-changes: node {node} group {g:#x} ({}) uses {config:?}; the history allows {ok:?}",
                    c.name()
                ));
            }
            let slots = c.len() + c.tombstone_count();
            if config.is_some() && slots >= train_after && !c.quantization_active() {
                v.push(format!(
                    "quantization-changes: node {node} group {g:#x} uses {config:?} over {slots} slots (threshold {train_after}) but never trained"
                ));
            }
        }
    }
    for (g, configs) in by_group {
        if configs.iter().any(|(_, c)| *c != configs[0].1) {
            v.push(format!("quantization-changes: replicas of group {g:#x} use different configs: {configs:?}"));
        }
    }
    v.truncate(4);
    v
}

/// What the final `Quantization` probe must answer, from one replica per shard in shard order:
/// the lowest shard's config and whether another shard differs.
pub(super) fn expected_report(shards: &[&Collection]) -> (Option<QuantizationConfig>, bool) {
    let first = shards.first().and_then(|c| c.config().quantization);
    (first, shards.iter().any(|c| c.config().quantization != first))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INT8: QuantizationConfig = QuantizationConfig::Scalar { quantile: None, always_ram: None };
    const BINARY: QuantizationConfig = QuantizationConfig::Binary { always_ram: None };

    fn rec(config: Option<QuantizationConfig>, outcome: Outcome) -> ChangeRec {
        ChangeRec { collection: 0, config, outcome }
    }

    #[test]
    fn the_seed_config_then_the_last_acknowledged_switch_or_any_in_doubt_one_decides() {
        let keys = |cs: &[Option<QuantizationConfig>]| cs.iter().map(|c| c.map(Key::of)).collect::<BTreeSet<_>>();
        assert_eq!(allowed(&[], 0, INT8), keys(&[Some(INT8)]));
        let h = [rec(None, Outcome::Ok), rec(Some(BINARY), Outcome::Failed)];
        assert_eq!(allowed(&h, 0, INT8), keys(&[None]));
        let h = [rec(Some(BINARY), Outcome::InDoubt), rec(None, Outcome::Ok)];
        assert_eq!(allowed(&h, 0, INT8), keys(&[None, Some(BINARY)]));
        assert_eq!(allowed(&h, 1, INT8), keys(&[Some(INT8)]), "another collection's switches do not count");
        let q9 = QuantizationConfig::Scalar { quantile: Some(0.9), always_ram: None };
        assert_ne!(Key::of(q9), Key::of(INT8), "the quantile tells scalar configs apart");
    }
}
