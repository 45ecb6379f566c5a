//! The collection's side of quantization: keeping the code rows in step with the index (inserts,
//! rebuilds, restores) and walking the graph on codes. The codes and their training live in
//! [`crate::vector::quantization`]; this file only decides *when* they change.

use super::*;
use crate::vector::index::Neighbor;
use crate::vector::quantization::{QuantizerParams, QueryScorer, TRAIN_AFTER_SLOTS};

/// When this replica trains its quantizer (a local knob, like [`IndexingPolicy`]: never
/// replicated, never in a snapshot or the digest).
///
/// Codes are trained once, from the slots the index holds when it reaches `train_after`, so
/// **every replica of a shard must use the same value**: replicas with different thresholds
/// train on different vectors and may rank candidates differently (exact answers, digests and
/// rescored scores never differ). The runtime keeps the default; the simulator lowers it on
/// every replica of a seed alike, since its shards hold a few dozen points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantizerPolicy {
    /// Slots the index must hold before the quantizer trains (at least 1).
    pub train_after: usize,
    /// Bug switch for the simulator: searches on codes return the code-order candidates with
    /// their approximate code scores instead of rescoring them on the f32 vectors. Forced off in
    /// builds without the `bug-injection` feature.
    pub bug_skip_rescore: bool,
}

impl Default for QuantizerPolicy {
    fn default() -> Self {
        QuantizerPolicy {
            train_after: TRAIN_AFTER_SLOTS,
            bug_skip_rescore: false,
        }
    }
}

impl QuantizerPolicy {
    /// Trains at `train_after` slots.
    pub fn train_after(train_after: usize) -> QuantizerPolicy {
        QuantizerPolicy {
            train_after,
            ..QuantizerPolicy::default()
        }
    }

    pub(super) fn skips_rescore(&self) -> bool {
        cfg!(feature = "bug-injection") && self.bug_skip_rescore
    }
}

/// Untrained code rows for `config`, `None` if it asks for no quantization.
pub(super) fn empty_codes(config: &CollectionConfig) -> Option<QuantizedVectors> {
    config
        .quantization
        .map(|q| QuantizedVectors::new(q, config.vector_size as usize, config.distance.metric()))
}

impl Collection {
    /// Sets this replica's quantizer policy (a `train_after` of 0 counts as 1). Lowering the
    /// threshold to or below the slots an untrained collection holds trains at once, as the
    /// insert reaching it would have; a trained quantizer is never retrained by this.
    pub fn set_quantizer_policy(&mut self, policy: QuantizerPolicy) {
        self.quantizer = QuantizerPolicy {
            train_after: policy.train_after.max(1),
            ..policy
        };
        if self.quantized.as_ref().is_some_and(|q| !q.is_trained()) {
            self.retrain_quantizer();
        }
    }

    /// This replica's quantizer policy.
    pub fn quantizer_policy(&self) -> QuantizerPolicy {
        self.quantizer
    }

    /// Replaces the quantization config; true if it changed. The old codes are dropped and new
    /// ones trained at once when the index already holds `train_after` slots (else the insert
    /// that reaches it trains them, as for a collection created quantized). On error (an invalid
    /// config) nothing changed.
    pub fn set_quantization(&mut self, quantization: Option<QuantizationConfig>) -> Result<bool, EngineError> {
        if let Some(q) = &quantization {
            q.validate().map_err(EngineError::InvalidConfig)?;
        }
        if self.config.quantization == quantization {
            return Ok(false);
        }
        self.config.quantization = quantization;
        self.retrain_quantizer();
        Ok(true)
    }

    /// Encodes the vector just inserted under `slot` (training first when this insert reaches
    /// the training threshold).
    pub(super) fn quantize_insert(&mut self, slot: Slot, vector: &[f32]) {
        if let Some(q) = &mut self.quantized {
            q.insert(slot, vector, &*self.index, self.quantizer.train_after);
        }
    }

    /// Drops the codes and, if the index holds enough slots, trains anew on them (after a
    /// rebuild renumbered every slot).
    pub(super) fn retrain_quantizer(&mut self) {
        self.quantized = empty_codes(&self.config);
        let slots = self.slot_owner.len();
        if let Some(q) = &mut self.quantized
            && slots >= self.quantizer.train_after
        {
            q.train_from(&*self.index, slots);
        }
    }

    /// Re-encodes every slot with the parameters already trained (after the index was rebuilt
    /// under new slot numbers by a copy), or trains as [`Self::retrain_quantizer`] if untrained.
    pub(super) fn reencode_quantized(&mut self) {
        let slots = self.slot_owner.len();
        match &mut self.quantized {
            Some(q) if q.is_trained() => q.encode_all(&*self.index, slots),
            Some(_) => self.retrain_quantizer(),
            None => {}
        }
    }

    /// The trained quantizer parameters (what a snapshot stores), `None` when the collection is
    /// not quantized or not trained yet.
    pub fn quantizer_params(&self) -> Option<QuantizerParams> {
        self.quantized.as_ref()?.params()
    }

    /// Whether searches currently walk quantized codes (configured and trained).
    pub fn quantization_active(&self) -> bool {
        self.quantized.as_ref().is_some_and(|q| q.is_trained())
    }

    /// Heap bytes of the quantized codes (0 without quantization).
    pub fn quantized_heap_bytes(&self) -> usize {
        self.quantized.as_ref().map_or(0, |q| q.heap_bytes())
    }

    /// Heap bytes of the index (vectors and links) when it is our HNSW.
    pub fn index_heap_bytes(&self) -> Option<usize> {
        self.index.as_hnsw().map(|h| h.heap_bytes())
    }

    /// Ends a restore: installs the snapshot's quantizer parameters (re-encoding every slot with
    /// them, so the restored collection ranks exactly like its source) or, without any, makes
    /// sure every slot is encoded under the usual training rule. Errors when the parameters do
    /// not fit the collection's config (a forged or corrupt header).
    pub(crate) fn restore_quantizer(
        &mut self,
        params: Option<QuantizerParams>,
    ) -> Result<(), String> {
        let slots = self.slot_owner.len();
        let Some(q) = &mut self.quantized else {
            return match params {
                Some(_) => Err("quantizer parameters for a collection without quantization".into()),
                None => Ok(()),
            };
        };
        match params {
            Some(p) => {
                if q.params().as_ref() != Some(&p) || q.encoded() != slots {
                    if !q.set_params(p) {
                        return Err("quantizer parameters do not fit the collection config".into());
                    }
                    q.encode_all(&*self.index, slots);
                }
                Ok(())
            }
            None => {
                if !(q.is_trained() && q.encoded() == slots) {
                    self.retrain_quantizer();
                }
                Ok(())
            }
        }
    }

    /// What the `bug_skip_rescore` switch reports for a candidate: its code distance read as
    /// a score of the collection's distance (a Hamming count, for binary codes, is read the same
    /// way), where a correct search scores the f32 vector.
    pub(super) fn code_score(&self, code_distance: f32) -> f32 {
        match self.config.distance {
            Distance::Euclid => code_distance.max(0.0).sqrt(),
            Distance::Cosine => 1.0 - code_distance,
            Distance::Dot => -code_distance,
        }
    }

    /// The HNSW walk on quantized codes: up to `params.candidates(k)` accepted slots in code
    /// order. `None` (the caller walks the f32 vectors) when the params say `ignore`, the
    /// collection is unquantized or untrained, or the index is not our HNSW.
    pub(super) fn quantized_search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        params: &QuantizationSearchParams,
        accept: &(dyn Fn(Slot) -> bool + Sync),
    ) -> Option<Vec<Neighbor>> {
        if params.ignore {
            return None;
        }
        let codes = self.quantized.as_ref()?;
        let graph = self.index.as_hnsw()?;
        debug_assert!(
            !codes.is_trained() || codes.encoded() >= graph.slot_positions(),
            "every graph slot has a code row"
        );
        let candidates = params.candidates(k).min(self.slot_owner.len()).max(k);
        let hits = match codes.scorer(query)? {
            QueryScorer::Scalar(s) => graph.search_by(&s, candidates, ef, accept),
            QueryScorer::Binary(s) => graph.search_by(&s, candidates, ef, accept),
        };
        Some(hits)
    }
}
