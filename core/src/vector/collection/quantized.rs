//! The collection's side of quantization: keeping the code rows in step with the index (inserts,
//! rebuilds, restores) and walking the graph on codes. The codes and their training live in
//! [`crate::vector::quantization`]; this file only decides *when* they change.

use super::*;
use crate::vector::index::Neighbor;
use crate::vector::quantization::{QuantizerParams, QueryScorer, TRAIN_AFTER_SLOTS};

/// Untrained code rows for `config`, `None` if it asks for no quantization.
pub(super) fn empty_codes(config: &CollectionConfig) -> Option<QuantizedVectors> {
    config
        .quantization
        .map(|q| QuantizedVectors::new(q, config.vector_size as usize, config.distance.metric()))
}

impl Collection {
    /// Encodes the vector just inserted under `slot` (training first when this insert reaches
    /// the training threshold).
    pub(super) fn quantize_insert(&mut self, slot: Slot, vector: &[f32]) {
        if let Some(q) = &mut self.quantized {
            q.insert(slot, vector, &*self.index);
        }
    }

    /// Drops the codes and, if the index holds enough slots, trains anew on them (after a
    /// rebuild renumbered every slot).
    pub(super) fn retrain_quantizer(&mut self) {
        self.quantized = empty_codes(&self.config);
        let slots = self.slot_owner.len();
        if let Some(q) = &mut self.quantized
            && slots >= TRAIN_AFTER_SLOTS
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
