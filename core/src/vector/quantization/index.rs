//! [`QuantizedHnsw`]: our HNSW plus quantized codes behind the plain [`AnnIndex`] trait, for
//! callers that hold an index rather than a collection (the ANN benchmark harness). A search walks
//! the graph on the codes, fetches `k · oversampling` candidates and rescores them on the f32
//! vectors, exactly as a quantized collection's search does.

use super::{QuantizationConfig, QuantizationSearchParams, QuantizedVectors, QueryScorer};
use crate::vector::hnsw::HnswIndex;
use crate::vector::index::{AnnIndex, IndexSpec, Metric, Neighbor, RankedNeighbor, Slot};
use crate::vector::vector_store::{InMemoryVectors, VectorStoreProvider};

/// HNSW over f32 vectors, searched through quantized codes with rescoring.
pub struct QuantizedHnsw {
    graph: HnswIndex,
    codes: QuantizedVectors,
    metric: Metric,
    params: QuantizationSearchParams,
}

impl QuantizedHnsw {
    /// An empty index; `params` applies to every search (they must be valid).
    pub fn new(
        spec: &IndexSpec,
        config: QuantizationConfig,
        params: QuantizationSearchParams,
    ) -> Self {
        Self::new_in(spec, config, params, &InMemoryVectors)
    }

    /// [`Self::new`] with the f32 vectors in a store made by `provider` (the codes stay on the
    /// heap): with codes walked and `rescore` on, a search reads `k · oversampling` rows of it.
    pub fn new_in(
        spec: &IndexSpec,
        config: QuantizationConfig,
        params: QuantizationSearchParams,
        provider: &dyn VectorStoreProvider,
    ) -> Self {
        debug_assert!(params.validate().is_ok());
        QuantizedHnsw {
            graph: HnswIndex::new_in(spec, provider),
            codes: QuantizedVectors::new(config, spec.dim, spec.metric),
            metric: spec.metric,
            params,
        }
    }

    /// Trains on every slot inserted so far and re-encodes them (what a collection's rebuild
    /// does; the training on insert only saw the first `TRAIN_AFTER_SLOTS`).
    pub fn retrain(&mut self) {
        let slots = self.graph.slot_positions();
        self.codes.train_from(&self.graph, slots);
    }

    /// Changes the search parameters (they must be valid).
    pub fn set_params(&mut self, params: QuantizationSearchParams) {
        debug_assert!(params.validate().is_ok());
        self.params = params;
    }

    /// The graph underneath.
    pub fn graph(&self) -> &HnswIndex {
        &self.graph
    }

    /// Heap bytes of the codes alone.
    pub fn code_bytes(&self) -> usize {
        self.codes.heap_bytes()
    }
}

impl AnnIndex for QuantizedHnsw {
    fn insert(&mut self, slot: Slot, vector: &[f32]) {
        self.graph.insert(slot, vector);
        self.codes
            .insert(slot, vector, &self.graph, super::TRAIN_AFTER_SLOTS);
    }

    /// Walks the codes (f32 while untrained or with `ignore`), then rescores on the f32 vectors
    /// when `rescore` is on; ties by slot throughout. Empty for a query of the wrong dimension or
    /// with non-finite values.
    fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        accept: &(dyn Fn(Slot) -> bool + Sync),
    ) -> Vec<Neighbor> {
        if self.params.ignore
            || query.len() != self.graph.vector_dim()
            || !query.iter().all(|x| x.is_finite())
        {
            return self.graph.search(query, k, ef, accept);
        }
        let Some(scorer) = self.codes.scorer(query) else {
            return self.graph.search(query, k, ef, accept);
        };
        let candidates = self.params.candidates(k).max(k);
        let mut hits = match scorer {
            QueryScorer::Scalar(s) => self.graph.search_by(&s, candidates, ef, accept),
            QueryScorer::Binary(s) => self.graph.search_by(&s, candidates, ef, accept),
        };
        if self.params.rescore {
            for h in &mut hits {
                if let Some(v) = self.graph.vector(h.slot) {
                    h.distance = self.metric.distance(query, v);
                }
            }
            hits.sort_unstable_by_key(|h| RankedNeighbor(*h));
        }
        hits.truncate(k);
        hits
    }

    fn len(&self) -> usize {
        self.graph.len()
    }

    fn is_exact(&self) -> bool {
        false
    }

    fn vector(&self, slot: Slot) -> Option<&[f32]> {
        self.graph.vector(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::index::{FlatIndex, IndexKind};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn rescored_int8_matches_exact_search_on_a_small_set() {
        let dim = 16;
        let spec = IndexSpec {
            dim,
            metric: Metric::L2Squared,
            m: 12,
            ef_construct: 64,
            capacity_hint: 0,
            seed: 3,
            kind: IndexKind::Hnsw,
        };
        let params = QuantizationSearchParams {
            ignore: false,
            rescore: true,
            oversampling: 3.0,
        };
        let mut q = QuantizedHnsw::new(
            &spec,
            QuantizationConfig::Scalar {
                quantile: None,
                always_ram: None,
            },
            params,
        );
        let mut flat = FlatIndex::new(dim, Metric::L2Squared);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for slot in 0..2_000 {
            let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            q.insert(slot, &v);
            flat.insert(slot, &v);
        }
        q.retrain();
        assert!(q.code_bytes() >= 2_000 * dim);
        let mut agree = 0;
        for _ in 0..50 {
            let query: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            let got: Vec<Slot> = q
                .search(&query, 10, 64, &|s| s % 3 != 0)
                .iter()
                .map(|h| h.slot)
                .collect();
            assert!(
                got.iter().all(|s| s % 3 != 0),
                "rejected slots never returned"
            );
            let truth: Vec<Slot> = flat
                .search(&query, 10, 0, &|s| s % 3 != 0)
                .iter()
                .map(|h| h.slot)
                .collect();
            agree += got.iter().filter(|s| truth.contains(s)).count();
        }
        assert!(
            agree as f64 / 500.0 >= 0.97,
            "recall {}",
            agree as f64 / 500.0
        );
    }
}
