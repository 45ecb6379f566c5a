//! Quantized copies of a collection's vectors — scalar int8 ([`scalar`]) or binary ([`binary`]) —
//! that the HNSW walk ranks by, before the top candidates are rescored on the f32 vectors.
//!
//! A collection created with a [`QuantizationConfig`] keeps a [`QuantizedVectors`] beside its
//! index: one code row per index slot (tombstoned slots included, because the walk still passes
//! through them). The codes are a cache derived from the f32 arena, like the graph; they are not
//! part of the digest.
//!
//! **Training is deterministic.** A quantizer needs data to learn its range (scalar) or
//! thresholds (binary), so it is trained once the index holds [`TRAIN_AFTER_SLOTS`] slots (a
//! replica-local knob, [`crate::vector::collection::QuantizerPolicy`], lowers it for tests and
//! the simulator), on a fixed stride sample of slots `0..n` in slot order, and every later insert
//! is encoded with those parameters. Replicas applying the same log with the same threshold
//! therefore train on the same vectors at the same insert. A rebuild (compaction) retrains on the compacted slots. Snapshots store the
//! trained parameters (not the codes): a restore re-encodes every point with them, so a restored
//! replica ranks exactly like its source. Until trained, searches walk the f32 vectors.
//!
//! Search ([`QuantizationSearchParams`], Qdrant's names): the walk ranks by code distance and
//! returns `ceil(limit · oversampling)` candidates when `rescore` is on (the default), which the
//! collection then scores on the original vectors (it scores every hit that way) and cuts to
//! `limit`; with `rescore` off it returns only `limit` candidates in code order. `ignore` walks
//! the f32 vectors as without quantization.

pub mod binary;
mod index;
pub mod kernels;
pub mod scalar;

use serde::{Deserialize, Serialize};

use crate::vector::hnsw::{Scorer, prefetch_bytes};
use crate::vector::index::{AnnIndex, Metric, Slot};
use crate::vector::aligned::AlignedVec;
use binary::BinaryParams;
use scalar::{MIN_QUANTILE, ScalarParams};

pub use index::QuantizedHnsw;

/// Slots the index must hold before the quantizer is trained (smaller collections walk f32).
pub const TRAIN_AFTER_SLOTS: usize = 1_024;
/// Most components sampled for training (a stride sample of whole vectors).
pub const TRAIN_SAMPLE_VALUES: usize = 1 << 20;
/// Largest accepted `oversampling`.
pub const MAX_OVERSAMPLING: f32 = 100.0;

/// How a collection quantizes its vectors (Qdrant's `quantization_config`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum QuantizationConfig {
    /// One byte per component (Qdrant `scalar: {type: int8, quantile, always_ram}`).
    Scalar {
        /// Central fraction of the training values the 256 codes span (0.5..=1); `None` spans
        /// all values (Qdrant's default).
        quantile: Option<f32>,
        /// Accepted for compatibility: codes are always in memory here (the f32 originals are
        /// on disk only with the collection's `on_disk`).
        always_ram: Option<bool>,
    },
    /// One bit per component (Qdrant `binary: {always_ram}`).
    Binary {
        /// Accepted for compatibility: codes are always in memory here (the f32 originals are
        /// on disk only with the collection's `on_disk`).
        always_ram: Option<bool>,
    },
}

/// `validate` rejects NaN quantiles, so equality is reflexive on every accepted config.
impl Eq for QuantizationConfig {}

impl QuantizationConfig {
    /// Why the config is invalid, if it is (the message names the field).
    pub fn validate(&self) -> Result<(), String> {
        if let QuantizationConfig::Scalar {
            quantile: Some(q), ..
        } = self
            && !(MIN_QUANTILE..=1.0).contains(q)
        {
            return Err(format!(
                "quantization_config.scalar.quantile {q} not in {MIN_QUANTILE}..=1"
            ));
        }
        Ok(())
    }
}

/// Per-search quantization options (Qdrant's `params.quantization`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantizationSearchParams {
    /// Walk the f32 vectors, as if the collection were not quantized.
    pub ignore: bool,
    /// Rescore the top `limit · oversampling` candidates on the f32 vectors (default on).
    pub rescore: bool,
    /// Candidates per requested hit fetched for rescoring (1..=100, default 1).
    pub oversampling: f32,
}

impl Default for QuantizationSearchParams {
    fn default() -> Self {
        QuantizationSearchParams {
            ignore: false,
            rescore: true,
            oversampling: 1.0,
        }
    }
}

impl QuantizationSearchParams {
    /// Why the params are invalid, if they are (the message names the field).
    pub fn validate(&self) -> Result<(), String> {
        if !(1.0..=MAX_OVERSAMPLING).contains(&self.oversampling) {
            return Err(format!(
                "params.quantization.oversampling {} not in 1..={MAX_OVERSAMPLING}",
                self.oversampling
            ));
        }
        Ok(())
    }

    /// How many candidates the walk returns for `wanted` hits.
    pub fn candidates(&self, wanted: usize) -> usize {
        if self.rescore {
            (wanted as f64 * self.oversampling as f64).ceil() as usize
        } else {
            wanted
        }
    }
}

/// Trained quantizer parameters: what a snapshot stores so a restore re-encodes identically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum QuantizerParams {
    /// Scalar range.
    Scalar(ScalarParams),
    /// Binary thresholds.
    Binary(BinaryParams),
}

/// Parameters are only accepted when finite ([`QuantizedVectors::set_params`]), so equality is
/// reflexive on every value in use (snapshot headers compare them).
impl Eq for QuantizerParams {}

/// The code rows of one collection.
#[derive(Clone, Debug)]
enum Codes {
    Scalar {
        params: ScalarParams,
        /// Rows of `dim` bytes, the first on a cache line (so are the rows when `dim` is a
        /// multiple of 64).
        codes: AlignedVec<u8>,
        corrections: Vec<f32>,
    },
    Binary {
        params: BinaryParams,
        words: AlignedVec<u64>,
    },
}

/// The quantized vectors of one collection, slot-indexed like the index arena.
#[derive(Clone, Debug)]
pub struct QuantizedVectors {
    config: QuantizationConfig,
    dim: usize,
    metric: Metric,
    /// `None` until trained.
    codes: Option<Codes>,
    /// Slots encoded (rows `0..encoded`).
    encoded: usize,
}

impl QuantizedVectors {
    /// Empty, untrained codes.
    pub fn new(config: QuantizationConfig, dim: usize, metric: Metric) -> Self {
        QuantizedVectors {
            config,
            dim,
            metric,
            codes: None,
            encoded: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> QuantizationConfig {
        self.config
    }

    /// Whether the quantizer is trained (searches then walk the codes).
    pub fn is_trained(&self) -> bool {
        self.codes.is_some()
    }

    /// The trained parameters, `None` while untrained.
    pub fn params(&self) -> Option<QuantizerParams> {
        match self.codes.as_ref()? {
            Codes::Scalar { params, .. } => Some(QuantizerParams::Scalar(*params)),
            Codes::Binary { params, .. } => Some(QuantizerParams::Binary(params.clone())),
        }
    }

    /// Heap bytes of the codes.
    pub fn heap_bytes(&self) -> usize {
        match &self.codes {
            None => 0,
            Some(Codes::Scalar {
                codes, corrections, ..
            }) => codes.heap_bytes() + corrections.capacity() * 4,
            Some(Codes::Binary { params, words }) => {
                words.heap_bytes() + params.thresholds.capacity() * 4
            }
        }
    }

    /// Registers the vector inserted under `slot` (slots arrive densely, in order). Before
    /// training this only counts; the insert that brings the index to `train_after` slots
    /// ([`TRAIN_AFTER_SLOTS`] unless a collection's [`QuantizerPolicy`] says otherwise) trains
    /// on the index's vectors and encodes all of them.
    ///
    /// [`QuantizerPolicy`]: crate::vector::collection::QuantizerPolicy
    pub fn insert(&mut self, slot: Slot, vector: &[f32], index: &dyn AnnIndex, train_after: usize) {
        if self.codes.is_none() {
            if slot + 1 >= train_after {
                self.train_from(index, slot + 1);
            }
            return;
        }
        debug_assert_eq!(slot, self.encoded, "slots are encoded densely, in order");
        self.encode_at(slot, vector);
    }

    /// Trains on slots `0..slots` of `index` (if there are any) and encodes them all.
    pub fn train_from(&mut self, index: &dyn AnnIndex, slots: usize) {
        let params = match self.config {
            QuantizationConfig::Scalar { quantile, .. } => {
                let stride = sample_stride(slots, self.dim);
                let mut sample: Vec<f32> = (0..slots)
                    .step_by(stride)
                    .filter_map(|s| index.vector(s))
                    .flatten()
                    .copied()
                    .collect();
                QuantizerParams::Scalar(ScalarParams::train(&mut sample, quantile.unwrap_or(1.0)))
            }
            QuantizationConfig::Binary { .. } => {
                let stride = sample_stride(slots, self.dim);
                let sample: Vec<f32> = (0..slots)
                    .step_by(stride)
                    .filter_map(|s| index.vector(s))
                    .flatten()
                    .copied()
                    .collect();
                QuantizerParams::Binary(BinaryParams::train(&sample, self.dim))
            }
        };
        self.set_params(params);
        self.encode_all(index, slots);
    }

    /// Installs parameters read from a snapshot (or trained); every code row is dropped (call
    /// [`Self::encode_all`] next). False if they do not fit this config and dimension.
    pub fn set_params(&mut self, params: QuantizerParams) -> bool {
        self.codes = match (self.config, params) {
            (QuantizationConfig::Scalar { .. }, QuantizerParams::Scalar(p)) if p.is_valid() => {
                Some(Codes::Scalar {
                    params: p,
                    codes: AlignedVec::new(),
                    corrections: Vec::new(),
                })
            }
            (QuantizationConfig::Binary { .. }, QuantizerParams::Binary(p))
                if p.is_valid(self.dim) =>
            {
                Some(Codes::Binary {
                    params: p,
                    words: AlignedVec::new(),
                })
            }
            _ => return false,
        };
        self.encoded = 0;
        true
    }

    /// Encodes slots `0..slots` of `index` (slots it never held get zero rows).
    pub fn encode_all(&mut self, index: &dyn AnnIndex, slots: usize) {
        self.encoded = 0;
        let zero = vec![0f32; self.dim];
        for slot in 0..slots {
            let vector = index.vector(slot).unwrap_or(&zero);
            self.encode_at(slot, vector);
        }
    }

    fn encode_at(&mut self, slot: Slot, vector: &[f32]) {
        let dim = self.dim;
        match &mut self.codes {
            None => return,
            Some(Codes::Scalar {
                params,
                codes,
                corrections,
            }) => {
                if codes.len() < (slot + 1) * dim {
                    codes.resize_gently((slot + 1) * dim, 0);
                }
                crate::vector::growth::resize_gently(corrections, slot + 1, 0.0);
                corrections[slot] = params.encode(
                    self.metric,
                    vector,
                    &mut codes[slot * dim..(slot + 1) * dim],
                );
            }
            Some(Codes::Binary { params, words }) => {
                let w = BinaryParams::words(dim);
                if words.len() < (slot + 1) * w {
                    words.resize_gently((slot + 1) * w, 0);
                }
                params.encode(vector, &mut words[slot * w..(slot + 1) * w]);
            }
        }
        self.encoded = slot + 1;
    }

    /// Slots encoded so far.
    pub fn encoded(&self) -> usize {
        self.encoded
    }

    /// A scorer of `query` (prepared: right dimension, normalised for Cosine) against the codes,
    /// `None` while untrained.
    pub fn scorer(&self, query: &[f32]) -> Option<QueryScorer<'_>> {
        debug_assert_eq!(query.len(), self.dim);
        match self.codes.as_ref()? {
            Codes::Scalar {
                params,
                codes,
                corrections,
            } => {
                let mut q = vec![0u8; self.dim];
                let q_corr = params.encode(self.metric, query, &mut q);
                Some(QueryScorer::Scalar(ScalarScorer {
                    params: *params,
                    metric: self.metric,
                    dim: self.dim,
                    query: q,
                    query_correction: q_corr,
                    codes,
                    corrections,
                }))
            }
            Codes::Binary { params, words } => {
                let w = BinaryParams::words(self.dim);
                let mut q = vec![0u64; w];
                params.encode(query, &mut q);
                Some(QueryScorer::Binary(BinaryScorer {
                    words_per_row: w,
                    query: q,
                    words,
                }))
            }
        }
    }
}

/// Whole vectors sampled every `stride` slots so at most [`TRAIN_SAMPLE_VALUES`] components are
/// read (deterministic: depends only on the slot count and dimension).
fn sample_stride(slots: usize, dim: usize) -> usize {
    let max_rows = (TRAIN_SAMPLE_VALUES / dim.max(1)).max(1);
    slots.div_ceil(max_rows).max(1)
}

/// A query encoded for one kind of codes.
pub enum QueryScorer<'a> {
    /// Against int8 codes.
    Scalar(ScalarScorer<'a>),
    /// Against binary codes.
    Binary(BinaryScorer<'a>),
}

/// An int8-encoded query against the scalar code rows.
pub struct ScalarScorer<'a> {
    params: ScalarParams,
    metric: Metric,
    dim: usize,
    query: Vec<u8>,
    query_correction: f32,
    codes: &'a [u8],
    corrections: &'a [f32],
}

impl Scorer for ScalarScorer<'_> {
    /// A slot without a code row (an invariant breach: every graph slot is encoded) is
    /// infinitely far rather than a panic.
    #[inline]
    fn distance(&self, slot: u32) -> f32 {
        let start = slot as usize * self.dim;
        match (
            self.codes.get(start..start + self.dim),
            self.corrections.get(slot as usize),
        ) {
            (Some(row), Some(&corr)) => {
                self.params
                    .distance(self.metric, &self.query, self.query_correction, row, corr)
            }
            _ => {
                debug_assert!(false, "slot {slot} has no code row");
                f32::INFINITY
            }
        }
    }

    #[inline]
    fn prefetch(&self, slot: u32) {
        let start = (slot as usize * self.dim).min(self.codes.len());
        prefetch_bytes(self.codes[start..].as_ptr(), self.dim);
    }
}

/// A binary-encoded query against the binary code rows.
pub struct BinaryScorer<'a> {
    words_per_row: usize,
    query: Vec<u64>,
    words: &'a [u64],
}

impl Scorer for BinaryScorer<'_> {
    #[inline]
    fn distance(&self, slot: u32) -> f32 {
        let start = slot as usize * self.words_per_row;
        match self.words.get(start..start + self.words_per_row) {
            Some(row) => BinaryParams::distance(&self.query, row),
            None => {
                debug_assert!(false, "slot {slot} has no code row");
                f32::INFINITY
            }
        }
    }

    #[inline]
    fn prefetch(&self, slot: u32) {
        let start = (slot as usize * self.words_per_row).min(self.words.len());
        prefetch_bytes(self.words[start..].as_ptr().cast(), self.words_per_row * 8);
    }
}
