//! A collection whose f32 vectors live in a store supplied from outside (here an in-memory test
//! store standing in for a file) behaves exactly like the default: same search results (on codes
//! and on f32, exact and filtered), same digest, byte-identical snapshots, and restores, copies
//! and rebuilds keep using the supplied store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::vector::collection::{Collection, QuantizerPolicy, SearchRequest};
use crate::vector::filter::{Condition, Filter, MatchValue};
use crate::vector::quantization::{QuantizationConfig, QuantizationSearchParams};
use crate::vector::snapshot::{
    SnapshotOptions, restore_full, restore_incremental, write_full_snapshot, write_incremental_snapshot,
};
use crate::vector::vector_store::{VectorStore, VectorStoreProvider};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 8;

/// Rows in fixed-size pages that never move, as a file mapping grown in chunks would be; kept
/// contiguous by copying into one buffer on growth. Counts its stores and whether it may copy
/// itself.
#[derive(Debug)]
struct PagedRows {
    values: Vec<f32>,
    len: usize,
    can_clone: bool,
}

/// Values per growth step of [`PagedRows`] (deliberately not a multiple of the row size).
const PAGE_VALUES: usize = 100;

impl VectorStore for PagedRows {
    fn values(&self) -> &[f32] {
        &self.values[..self.len]
    }

    fn values_mut(&mut self) -> &mut [f32] {
        &mut self.values[..self.len]
    }

    fn grow_to(&mut self, len: usize) {
        if len > self.values.len() {
            self.values.resize(len.div_ceil(PAGE_VALUES) * PAGE_VALUES, 0.0);
        }
        self.len = self.len.max(len);
    }

    fn reserve(&mut self, _additional: usize) {}

    fn heap_bytes(&self) -> usize {
        0
    }

    fn try_clone(&self) -> Option<Box<dyn VectorStore>> {
        self.can_clone.then(|| {
            Box::new(PagedRows { values: self.values.clone(), len: self.len, can_clone: true }) as Box<dyn VectorStore>
        })
    }
}

#[derive(Debug)]
struct PagedProvider {
    created: AtomicUsize,
    can_clone: bool,
}

impl PagedProvider {
    fn new(can_clone: bool) -> Arc<PagedProvider> {
        Arc::new(PagedProvider { created: AtomicUsize::new(0), can_clone })
    }

    fn created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }
}

impl VectorStoreProvider for PagedProvider {
    fn create(&self, _dim: usize, _capacity_rows: usize) -> Box<dyn VectorStore> {
        self.created.fetch_add(1, Ordering::Relaxed);
        Box::new(PagedRows { values: Vec::new(), len: 0, can_clone: self.can_clone })
    }

    fn is_external(&self) -> bool {
        true
    }
}

fn int8_config() -> CollectionConfig {
    let mut cfg = config(DIM as u32, Distance::Cosine);
    cfg.quantization = Some(QuantizationConfig::Scalar { quantile: None, always_ram: Some(true) });
    cfg
}

fn new_collection(store: Option<Arc<PagedProvider>>) -> Collection {
    let mut c = Collection::new("c", int8_config()).unwrap();
    c.set_quantizer_policy(QuantizerPolicy::train_after(64));
    if let Some(store) = store {
        c.set_vector_store(store);
    }
    c
}

fn random_vector(rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Upserts (with replacements), deletes, a payload change: the same history for every collection.
fn apply_history(c: &mut Collection, seed: u64, points: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for chunk in (0..points).collect::<Vec<_>>().chunks(37) {
        let batch = chunk
            .iter()
            .map(|&i| point(i, &random_vector(&mut rng), serde_json::json!({"g": i % 7})))
            .collect();
        c.apply(PointsOp::Upsert(batch)).unwrap();
    }
    let replaced = (0..points).step_by(11).map(|i| point(i, &random_vector(&mut rng), serde_json::json!({"g": 1}))).collect();
    c.apply(PointsOp::Upsert(replaced)).unwrap();
    let deleted = (0..points).step_by(13).map(PointId::Num).collect();
    c.apply(PointsOp::Delete(PointSelector::Ids(deleted))).unwrap();
}

/// Every kind of search on 20 queries: codes with rescoring (x1, x3), codes without rescoring,
/// the f32 walk, exact, and filtered (brute force over the matches, at this size).
fn all_results(c: &Collection) -> Vec<Vec<(PointId, u32)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut out = Vec::new();
    for _ in 0..20 {
        let q = random_vector(&mut rng);
        let on_codes = |oversampling, rescore| QuantizationSearchParams { ignore: false, rescore, oversampling };
        let variants = [
            SearchRequest { quantization: Some(on_codes(1.0, true)), ..SearchRequest::new(q.clone(), 10) },
            SearchRequest { quantization: Some(on_codes(3.0, true)), ..SearchRequest::new(q.clone(), 10) },
            SearchRequest { quantization: Some(on_codes(1.0, false)), ..SearchRequest::new(q.clone(), 10) },
            SearchRequest {
                quantization: Some(QuantizationSearchParams { ignore: true, ..Default::default() }),
                ..SearchRequest::new(q.clone(), 10)
            },
            SearchRequest { exact: true, ..SearchRequest::new(q.clone(), 10) },
            SearchRequest {
                filter: Some(Filter::must(vec![Condition::matches_value("g", MatchValue::Integer(3))])),
                ..SearchRequest::new(q.clone(), 5)
            },
        ];
        for request in variants {
            let hits = c.search(&request).unwrap();
            out.push(hits.iter().map(|h| (h.id, h.score.to_bits())).collect());
        }
    }
    out
}

fn full_snapshot(c: &Collection) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_full_snapshot(c, &mut bytes, &SnapshotOptions::default()).unwrap();
    bytes
}

#[test]
fn an_external_store_gives_identical_results_digests_and_snapshots() {
    let store = PagedProvider::new(true);
    let mut default = new_collection(None);
    let mut external = new_collection(Some(Arc::clone(&store)));
    apply_history(&mut default, 1, 900);
    apply_history(&mut external, 1, 900);
    assert!(default.quantization_active() && external.quantization_active());
    assert_eq!(all_results(&default), all_results(&external));
    assert_eq!(default.digest(), external.digest());
    assert_eq!(full_snapshot(&default), full_snapshot(&external), "snapshots are byte-identical");
    let vectors_on_heap = default.index_heap_bytes().unwrap() - external.index_heap_bytes().unwrap();
    assert!(vectors_on_heap >= 900 * DIM * 4, "the external store keeps the vectors off the heap");

    default.rebuild_index();
    external.rebuild_index();
    assert_eq!(all_results(&default), all_results(&external), "after a rebuild");
    assert_eq!(default.digest(), external.digest());
    assert_eq!(store.created(), 2, "one store at set_vector_store, one for the rebuild");
}

#[test]
fn moving_a_populated_collection_to_an_external_store_changes_no_result() {
    let mut c = new_collection(None);
    apply_history(&mut c, 2, 500);
    let (before, digest, snapshot) = (all_results(&c), c.digest(), full_snapshot(&c));
    let store = PagedProvider::new(true);
    c.set_vector_store(store.clone());
    assert_eq!(store.created(), 1);
    assert!(c.vector_store().is_external());
    assert_eq!(all_results(&c), before, "same slots, same graph, same vectors");
    assert_eq!(c.digest(), digest);
    assert_eq!(full_snapshot(&c), snapshot);
}

#[test]
fn restores_and_copies_keep_the_external_store() {
    let store = PagedProvider::new(true);
    let mut engine = VectorEngine::new();
    engine.apply(Command::CreateCollection { name: "c".into(), config: int8_config() }).unwrap();
    let c = engine.collection_mut("c").unwrap();
    c.set_quantizer_policy(QuantizerPolicy::train_after(64));
    c.set_vector_store(store.clone());
    apply_history(c, 3, 400);
    let mut source = new_collection(None);
    apply_history(&mut source, 3, 400);

    // A full snapshot (with its graph) restored over the engine's collection lands in the store.
    let bytes = full_snapshot(&source);
    let created = store.created();
    engine.restore_snapshot(&bytes[..], &mut |_| ()).unwrap();
    let restored = engine.collection("c").unwrap();
    assert!(store.created() > created, "the restore filled a store from the provider");
    assert!(restored.vector_store().is_external());
    let plain = restore_full(&bytes[..], &mut |_| ()).unwrap();
    assert!(!plain.vector_store().is_external(), "a standalone restore uses the heap");
    assert_eq!(restored.digest(), source.digest());
    assert_eq!(all_results(restored), all_results(&plain));

    // An incremental restore works on a copy; a store that cannot copy itself makes the copy
    // rebuild, from the same provider.
    for can_clone in [true, false] {
        let store = PagedProvider::new(can_clone);
        let mut base = new_collection(Some(store.clone()));
        apply_history(&mut base, 4, 300);
        let mut later = new_collection(None);
        apply_history(&mut later, 4, 300);
        let base_header = write_full_snapshot(&later, std::io::sink(), &SnapshotOptions::default()).unwrap().header;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        later.apply(PointsOp::Upsert(vec![point(7, &random_vector(&mut rng), serde_json::json!({}))])).unwrap();
        let mut delta = Vec::new();
        write_incremental_snapshot(&later, base_header.as_base(), &mut delta, &SnapshotOptions::default()).unwrap();
        let before = store.created();
        let applied = restore_incremental(&base, &delta[..], &mut |_| ()).unwrap();
        assert_eq!(applied.digest(), later.digest(), "can_clone={can_clone}");
        assert!(applied.vector_store().is_external());
        assert_eq!(store.created() - before, usize::from(!can_clone), "a rebuild takes a new store");
    }
}

#[test]
fn switching_on_disk_records_the_flag_and_switching_it_off_brings_the_vectors_home() {
    let mut c = new_collection(None);
    apply_history(&mut c, 3, 300);
    let (before, digest, seq) = (all_results(&c), c.digest(), c.seq());
    assert_eq!(c.apply(PointsOp::SetVectorsOnDisk { on_disk: true }).unwrap(), 1);
    assert!(c.config().on_disk);
    assert!(!c.vector_store().is_external(), "the host moves them: it owns the files");
    assert_eq!(c.apply(PointsOp::SetVectorsOnDisk { on_disk: true }).unwrap(), 0, "the same flag again is a no-op");
    let store = PagedProvider::new(true);
    c.set_vector_store(store.clone()); // what the host does next
    assert_eq!(all_results(&c), before);
    let restored = restore_full(&full_snapshot(&c)[..], &mut |_| ()).unwrap();
    assert!(restored.config().on_disk, "a snapshot carries the flag");
    assert_eq!(c.apply(PointsOp::SetVectorsOnDisk { on_disk: false }).unwrap(), 1);
    assert!(!c.config().on_disk);
    assert!(!c.vector_store().is_external(), "switching off brings the vectors back to the heap at once");
    assert_eq!(all_results(&c), before, "same slots, same graph, same vectors");
    assert_eq!((c.digest(), c.seq()), (digest, seq), "no point moved");
}
