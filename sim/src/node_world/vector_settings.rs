//! Vector settings switched while the node world runs (`PATCH /collections/{c}` with
//! `quantization_config` or `vectors.on_disk`), and the `vector-settings` checker.
//!
//! In seeds with `NodeWorldConfig::settings_switches` (quantized seeds only) client 0, one
//! request at a time, now and then switches a collection's quantization — off, back to the
//! seed's config, or to the other kind — or its `on_disk`, at `quorum`, while the other clients
//! write and read under the seed's faults. Each switch is a `PointsOp::SetQuantization` /
//! `SetVectorsOnDisk` in every shard's log.
//!
//! What the switches must be is checked on the final engines: every replica of a collection uses
//! a quantization and an `on_disk` the history allows — the seed's, or the last switch
//! acknowledged at `quorum`, or any switch left in doubt (a delayed message may still be proposed
//! after later ones); refused ones did nothing — and the replicas of a shard agree. A replica
//! that uses codes and holds at least the training threshold's slots has trained them (a switch
//! retrains at once). The final probe asks the node for the collection's settings and gets the
//! lowest shard's, flagged when another shard differs. Where the vectors then live is judged by
//! `vector-files`; what the switches must not change (exact answers, rescored scores) by the
//! `quantized-search` and scatter-gather checkers.

use super::workload::Outcome;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use vecraft_core::node::vector_settings::VectorSettings;
use vecraft_core::raft::GroupId;
use vecraft_core::vector::collection::{Collection, PointsOp};
use vecraft_core::vector::quantization::QuantizationConfig;

/// Chance that client 0, when free, sends a switch instead of its next operation (after its
/// first, sent at once). Low, as for field indexes: every switch also re-sets a replica that
/// wrongly lost the previous one, hiding the loss.
const CHANGE_CHANCE: f64 = 0.005;

/// What one switch sets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Change {
    Quantization(Option<QuantizationConfig>),
    OnDisk(bool),
}

/// One switch of the history.
#[derive(Clone, Debug)]
pub(super) struct ChangeRec {
    /// Index of the collection in `Workload::collections`.
    pub(super) collection: usize,
    pub(super) change: Change,
    pub(super) outcome: Outcome,
}

/// Whether client 0 switches now, and what: (collection, change, op). The `first` is sent at
/// once and always moves the quantization away from the seed's, so most of the run (its
/// snapshots, restarts and installs) carries a config the collection was not created with.
pub(super) fn next_change(
    rng: &mut ChaCha8Rng,
    collections: usize,
    seed_config: QuantizationConfig,
    first: bool,
) -> Option<(usize, Change, PointsOp)> {
    if !first && !rng.random_bool(CHANGE_CHANCE) {
        return None;
    }
    let collection = rng.random_range(0..collections);
    if !first && rng.random_bool(1.0 / 3.0) {
        let on_disk = rng.random_bool(0.5);
        return Some((collection, Change::OnDisk(on_disk), PointsOp::SetVectorsOnDisk { on_disk }));
    }
    let other = match seed_config {
        QuantizationConfig::Scalar { .. } => QuantizationConfig::Binary { always_ram: None },
        QuantizationConfig::Binary { .. } => QuantizationConfig::Scalar { quantile: Some(0.9), always_ram: None },
    };
    let config = if first {
        [None, Some(other)][rng.random_range(0..2)]
    } else {
        [None, Some(seed_config), Some(other)][rng.random_range(0..3)]
    };
    Some((collection, Change::Quantization(config), PointsOp::SetQuantization { quantization: config }))
}

/// A setting as an ordered key (a quantile is an `f32`; its bits order it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Quantization(Option<(u8, Option<u32>)>),
    OnDisk(bool),
}

impl Key {
    fn of(c: Change) -> Key {
        match c {
            Change::Quantization(q) => Key::Quantization(q.map(|q| match q {
                QuantizationConfig::Scalar { quantile, .. } => (0, quantile.map(f32::to_bits)),
                QuantizationConfig::Binary { .. } => (1, None),
            })),
            Change::OnDisk(b) => Key::OnDisk(b),
        }
    }
}

/// The values the history allows each replica of `collection` to end with for the setting of
/// `initial`'s kind, starting from `initial`.
fn allowed(history: &[ChangeRec], collection: usize, initial: Change) -> BTreeSet<Key> {
    let kind = |c: Change| std::mem::discriminant(&c);
    let ops: Vec<&ChangeRec> =
        history.iter().filter(|r| r.collection == collection && kind(r.change) == kind(initial)).collect();
    let mut allowed: BTreeSet<Key> =
        ops.iter().filter(|r| r.outcome == Outcome::InDoubt).map(|r| Key::of(r.change)).collect();
    let last = ops.iter().rev().find(|r| r.outcome == Outcome::Ok).map_or(initial, |r| r.change);
    allowed.insert(Key::of(last));
    allowed
}

/// The `vector-settings` checker on the final engines; `seed` holds the create-time settings.
pub(super) fn check_settings(
    history: &[ChangeRec],
    collections: &[(&'static str, u32, u32)],
    engines: &[(u64, &BTreeMap<GroupId, Collection>)],
    seed: VectorSettings,
    train_after: usize,
) -> Vec<String> {
    let mut v = Vec::new();
    let mut by_group: BTreeMap<GroupId, Vec<(u64, VectorSettings)>> = BTreeMap::new();
    for (node, es) in engines {
        for (g, c) in es.iter() {
            let Some(k) = collections.iter().position(|(name, _, _)| *name == c.name()) else {
                continue;
            };
            let has = VectorSettings::of(c.config());
            by_group.entry(*g).or_default().push((*node, has));
            for (value, initial) in [
                (Change::Quantization(has.quantization), Change::Quantization(seed.quantization)),
                (Change::OnDisk(has.on_disk), Change::OnDisk(seed.on_disk)),
            ] {
                let ok = allowed(history, k, initial);
                if !ok.contains(&Key::of(value)) {
                    v.push(format!(
                        "vector-settings: node {node} group {g:#x} ({}) uses {value:?}; the history allows {ok:?}",
                        c.name()
                    ));
                }
            }
            let slots = c.len() + c.tombstone_count();
            if has.quantization.is_some() && slots >= train_after && !c.quantization_active() {
                v.push(format!(
                    "vector-settings: node {node} group {g:#x} uses {:?} over {slots} slots (threshold {train_after}) but never trained",
                    has.quantization
                ));
            }
        }
    }
    for (g, settings) in by_group {
        if settings.iter().any(|(_, s)| *s != settings[0].1) {
            v.push(format!("vector-settings: replicas of group {g:#x} differ: {settings:?}"));
        }
    }
    v.truncate(4);
    v
}

/// What the final `VectorSettings` probe must answer, from one replica per shard in shard order:
/// the lowest shard's settings and whether another shard differs.
pub(super) fn expected_report(shards: &[&Collection]) -> (VectorSettings, bool) {
    let first = shards.first().map(|c| VectorSettings::of(c.config())).unwrap_or_default();
    (first, shards.iter().any(|c| VectorSettings::of(c.config()) != first))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INT8: QuantizationConfig = QuantizationConfig::Scalar { quantile: None, always_ram: None };
    const BINARY: QuantizationConfig = QuantizationConfig::Binary { always_ram: None };

    fn rec(change: Change, outcome: Outcome) -> ChangeRec {
        ChangeRec { collection: 0, change, outcome }
    }

    fn keys(cs: &[Change]) -> BTreeSet<Key> {
        cs.iter().map(|c| Key::of(*c)).collect()
    }

    #[test]
    fn the_seed_setting_then_the_last_acknowledged_switch_or_any_in_doubt_one_decides() {
        let q = Change::Quantization;
        assert_eq!(allowed(&[], 0, q(Some(INT8))), keys(&[q(Some(INT8))]));
        let h = [rec(q(None), Outcome::Ok), rec(q(Some(BINARY)), Outcome::Failed)];
        assert_eq!(allowed(&h, 0, q(Some(INT8))), keys(&[q(None)]));
        let h = [rec(q(Some(BINARY)), Outcome::InDoubt), rec(q(None), Outcome::Ok), rec(Change::OnDisk(true), Outcome::Ok)];
        assert_eq!(allowed(&h, 0, q(Some(INT8))), keys(&[q(None), q(Some(BINARY))]));
        assert_eq!(allowed(&h, 1, q(Some(INT8))), keys(&[q(Some(INT8))]), "another collection's switches do not count");
        assert_eq!(allowed(&h, 0, Change::OnDisk(false)), keys(&[Change::OnDisk(true)]), "each setting on its own");
        let q9 = QuantizationConfig::Scalar { quantile: Some(0.9), always_ram: None };
        assert_ne!(Key::of(q(Some(q9))), Key::of(q(Some(INT8))), "the quantile tells scalar configs apart");
    }
}
