//! Quantization in the node world, and the `quantized-search` checker.
//!
//! In seeds with `NodeWorldConfig::quantization` the collections are created with scalar int8
//! codes (quantile `None`, 0.9 or 0.99) or binary codes. The engine trains codes once an index
//! holds `TRAIN_AFTER_SLOTS` (1,024) slots, which a simulated shard of a few dozen points never
//! reaches, so every replica of such a seed — created, restored at boot, or installed from a
//! snapshot — gets the seed's small training threshold through its (local) `QuantizerPolicy`:
//! the same value on every replica, as the policy requires.
//!
//! The final probe adds searches on the codes (seeded `oversampling` 1, 2 or 4, rescoring on;
//! some `ignore` the codes), merged across shards by the node. What quantization must not change
//! is checked against an engine holding the union of the shards (exactly, no recall threshold):
//! every hit is a stored point; with rescoring every score is the point's f32 score for the query
//! (bitwise); hits are sorted by score, ties by id, and there are `min(limit, points)` of them;
//! and when the candidate pool (`limit · oversampling`) covers the largest shard — or the codes
//! are ignored, so the f32 walk explores the whole tiny shard — the score sequence equals an
//! exact search's (ties may pick different ids, so only scores are compared). The `skip-rescore`
//! bug switch returns the code-order candidates with their approximate code scores.

use super::workload::{COLLECTION, Workload};
use rand::RngExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use vecraft_core::node::request::Request;
use vecraft_core::vector::collection::{Collection, QuantizerPolicy, SearchRequest};
use vecraft_core::vector::point::{PointId, ScoredPoint};
use vecraft_core::vector::quantization::{QuantizationConfig, QuantizationSearchParams};

/// How the collections of a seed are quantized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimQuantization {
    /// The collections' quantization config.
    pub config: QuantizationConfig,
    /// Slots an index holds before its quantizer trains (every replica alike).
    pub train_after: usize,
    /// The `skip-rescore` bug switch.
    pub skip_rescore: bool,
}

impl SimQuantization {
    /// Drawn on a stream of its own (other choices of the seed do not shift); about a third of
    /// the seeds quantize, and every seed with `force` (a bug switch that needs codes).
    pub fn from_seed(seed: u64, force: bool, skip_rescore: bool) -> Option<SimQuantization> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0A47_C0DE_5CA1_0007);
        if !rng.random_bool(1.0 / 3.0) && !force {
            return None;
        }
        let config = if rng.random_bool(0.5) {
            QuantizationConfig::Scalar {
                quantile: [None, Some(0.9), Some(0.99)][rng.random_range(0..3)],
                always_ram: None,
            }
        } else {
            QuantizationConfig::Binary { always_ram: None }
        };
        Some(SimQuantization { config, train_after: rng.random_range(2..=16), skip_rescore })
    }

    /// The engine policy every replica gets.
    pub fn policy(&self) -> QuantizerPolicy {
        QuantizerPolicy { train_after: self.train_after, bug_skip_rescore: self.skip_rescore }
    }
}

/// Searches on the codes for the final probe.
pub(super) fn probe_searches(rng: &mut ChaCha8Rng, dim: usize) -> Vec<SearchRequest> {
    (0..4)
        .map(|_| {
            let vector = (0..dim).map(|_| rng.random_range(0..3) as f32).collect();
            let mut s = SearchRequest::new(vector, rng.random_range(1..=6));
            s.quantization = Some(QuantizationSearchParams {
                ignore: rng.random_bool(0.2),
                rescore: true,
                oversampling: [1.0, 2.0, 4.0][rng.random_range(0..3)],
            });
            s
        })
        .collect()
}

/// Whether `request`'s answer must be an exact search's: its codes are ignored, or its
/// candidate pool holds every point of a shard of at most `largest_shard` points.
pub(super) fn must_be_exact(request: &SearchRequest, largest_shard: usize) -> bool {
    let params = request.quantization.unwrap_or_default();
    params.ignore || params.candidates(request.limit + request.offset) >= largest_shard
}

/// The probe's searches on codes, and how many of them had to be exact, given the final
/// `replicas` (of every collection; the probe reads the first).
pub(super) fn probe_coverage(workload: &Workload, replicas: &[&Collection]) -> (u64, u64) {
    let largest_shard = replicas.iter().filter(|c| c.name() == COLLECTION).map(|c| c.len()).max().unwrap_or(0);
    let searches = workload.quantized_probes.clone().filter_map(|i| match workload.probe_requests.get(i) {
        Some(Request::Search { request, .. }) => Some(request),
        _ => None,
    });
    searches.fold((0, 0), |(n, exact), r| (n + 1, exact + must_be_exact(r, largest_shard) as u64))
}

/// Scores that are the same number (the sign of a zero aside, as the engine's order has it).
fn same_score(a: f32, b: f32) -> bool {
    (a + 0.0).to_bits() == (b + 0.0).to_bits()
}

/// The `quantized-search` check of one probe answer against the union engine; `largest_shard`
/// is the most points any shard of the probed collection holds.
pub(super) fn check(
    i: usize,
    request: &SearchRequest,
    hits: &[ScoredPoint],
    union: &Collection,
    largest_shard: usize,
) -> Option<String> {
    let exact = |limit: usize| {
        let r = SearchRequest { exact: true, limit, offset: 0, quantization: None, ..request.clone() };
        union.search(&r).expect("union search")
    };
    let f32_scores: BTreeMap<PointId, f32> = exact(union.len()).into_iter().map(|h| (h.id, h.score)).collect();
    let fail = |what: String| {
        Some(format!("quantized-search: probe {i} ({:?}, limit {}) {what}", request.quantization, request.limit))
    };
    for h in hits {
        match f32_scores.get(&h.id) {
            None => return fail(format!("returned point {:?}, which no shard holds", h.id)),
            Some(&s) if !same_score(s, h.score) => {
                return fail(format!("scored point {:?} {}, its f32 score is {s}", h.id, h.score));
            }
            Some(_) => {}
        }
    }
    let distance = union.config().distance;
    if let Some(w) =
        hits.windows(2).find(|w| distance.compare_scores(w[0].score, w[1].score).then(w[0].id.cmp(&w[1].id)).is_ge())
    {
        return fail(format!("is out of order: {:?} ({}) before {:?} ({})", w[0].id, w[0].score, w[1].id, w[1].score));
    }
    let want_len = request.limit.min(union.len());
    if hits.len() != want_len {
        return fail(format!("returned {} hits, the shards hold {} points", hits.len(), union.len()));
    }
    if must_be_exact(request, largest_shard) {
        let want: Vec<f32> = exact(request.limit).iter().map(|h| h.score).collect();
        let got: Vec<f32> = hits.iter().map(|h| h.score).collect();
        if got.len() != want.len() || got.iter().zip(&want).any(|(a, b)| !same_score(*a, *b)) {
            return fail(format!(
                "covers every shard (largest {largest_shard}) but scored {got:?}, an exact search {want:?}"
            ));
        }
    }
    None
}
