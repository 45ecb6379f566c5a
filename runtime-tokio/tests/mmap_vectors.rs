//! The file-backed vector store: rows survive growth across chunk boundaries (remaps), copies
//! are independent files, a bad directory is a clear error at construction, a quantized
//! collection on it answers exactly like one on the heap, and the file never has a name.

use std::sync::Arc;

use vecraft_core::vector::collection::{Collection, CollectionConfig, Distance, PointsOp, QuantizerPolicy, SearchRequest};
use vecraft_core::vector::point::{PointId, PointStruct};
use vecraft_core::vector::quantization::{QuantizationConfig, QuantizationSearchParams};
use vecraft_core::vector::vector_store::{VectorStore, VectorStoreProvider};
use vecraft_runtime::mmap_vectors::{MmapVectorError, MmapVectorProvider, MmapVectorStore};

const PAGE: usize = 4096;

fn row(slot: usize, dim: usize) -> Vec<f32> {
    (0..dim).map(|i| (slot * 1000 + i) as f32 + 0.5).collect()
}

#[test]
fn rows_survive_growth_across_chunk_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    // 24-d rows are 96 bytes: 4096-byte chunks end in the middle of a row.
    let dim = 24;
    let mut store = MmapVectorStore::create(dir.path(), dim, 3, PAGE).unwrap();
    assert_eq!(store.file_bytes(), PAGE, "the hint rounds up to one chunk");
    for slot in 0..500 {
        store.push_row(&row(slot, dim));
        if slot % 97 == 0 {
            // Earlier rows are intact after every remap.
            for earlier in [0, slot / 2, slot] {
                assert_eq!(&store.values()[earlier * dim..(earlier + 1) * dim], &row(earlier, dim)[..]);
            }
        }
    }
    assert!(store.is_mapped());
    assert_eq!(store.values().len(), 500 * dim);
    assert_eq!(store.file_bytes(), (500 * dim * 4).div_ceil(PAGE) * PAGE, "grown in whole chunks");
    assert_eq!(store.heap_bytes(), 0, "the rows are not on the heap");
    // Growing past the end zero-fills; a sparse write lands where it should.
    store.grow_to(700 * dim);
    assert!(store.values()[500 * dim..].iter().all(|&x| x == 0.0));
    store.values_mut()[650 * dim..651 * dim].copy_from_slice(&row(650, dim));
    store.reserve(10_000 * dim);
    assert_eq!(store.values().len(), 700 * dim, "reserve grows the file, not the rows");
    assert!(store.file_bytes() >= 10_700 * dim * 4);
    for slot in (0..500).chain([650]) {
        assert_eq!(&store.values()[slot * dim..(slot + 1) * dim], &row(slot, dim)[..], "slot {slot}");
    }
    // Dropping the resident pages changes no value.
    store.release_resident();
    assert_eq!(&store.values()[499 * dim..500 * dim], &row(499, dim)[..]);
    // A copy is an independent file.
    let mut copy = store.try_clone().expect("copies itself");
    copy.values_mut()[0] = -1.0;
    assert_eq!(store.values()[0], row(0, dim)[0]);
    assert_eq!(copy.values()[dim..], store.values()[dim..]);
}

#[test]
fn a_bad_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let err = MmapVectorProvider::new(&missing).unwrap_err();
    assert!(matches!(err, MmapVectorError::Directory { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("vector file directory") && message.contains("missing"), "{message}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = MmapVectorProvider::new(&file).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");

    let provider = MmapVectorProvider::new(dir.path()).unwrap();
    assert_eq!(provider.dir(), dir.path());
    assert_eq!(provider.status().fallbacks, 0);
    assert!(provider.is_external());
}

#[test]
fn files_are_unnamed_so_a_restart_rebuilds_instead_of_recovering() {
    let dir = tempfile::tempdir().unwrap();
    let provider = MmapVectorProvider::with_chunk_bytes(dir.path(), PAGE).unwrap();
    let mut store = provider.create(8, 1000);
    store.push_row(&row(0, 8));
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(names.is_empty(), "the vector file has no name: {names:?}");
    // 1000 rows of 32 bytes: eight 4 KiB chunks, counted while the store lives.
    assert_eq!(provider.status().file_bytes, 8 * PAGE as u64);
    store.grow_to(1025 * 8);
    assert_eq!(provider.status().file_bytes, 9 * PAGE as u64, "growth is counted");
    let copy = store.try_clone().unwrap();
    assert_eq!(provider.status().file_bytes, 18 * PAGE as u64, "a copy is a second file");
    drop(store);
    assert_eq!(provider.status().file_bytes, 9 * PAGE as u64);
    drop(copy);
    assert_eq!(provider.status(), Default::default(), "no fallback, no file left");
}

fn int8_config(dim: u32) -> CollectionConfig {
    let mut config = CollectionConfig::new(dim, Distance::Euclid);
    config.quantization = Some(QuantizationConfig::Scalar { quantile: None, always_ram: Some(true) });
    config
}

/// A quantized collection rebuilt on mapped files (small chunks, many remaps) answers exactly as
/// the heap one: same results, same digest.
#[test]
fn a_collection_on_mapped_files_matches_the_heap_one() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(MmapVectorProvider::with_chunk_bytes(dir.path(), PAGE).unwrap());
    let dim = 16;
    let mut heap = Collection::new("c", int8_config(dim)).unwrap();
    let mut mapped = Collection::new("c", int8_config(dim)).unwrap();
    mapped.set_vector_store(provider.clone());
    for c in [&mut heap, &mut mapped] {
        c.set_quantizer_policy(QuantizerPolicy::train_after(100));
        for batch in 0..6u64 {
            let points = (batch * 100..(batch + 1) * 100)
                .map(|i| PointStruct {
                    id: PointId::Num(i % 550),
                    vector: (0..dim).map(|d| ((i * 31 + d as u64 * 17) % 101) as f32 / 101.0).collect(),
                    payload: Default::default(),
                })
                .collect();
            c.apply(PointsOp::Upsert(points)).unwrap();
        }
    }
    mapped.rebuild_index();
    heap.rebuild_index();
    assert_eq!(heap.digest(), mapped.digest());
    for q in 0..20u64 {
        let vector: Vec<f32> = (0..dim).map(|d| ((q * 7 + d as u64 * 13) % 101) as f32 / 101.0).collect();
        let params = QuantizationSearchParams { oversampling: 2.0, ..Default::default() };
        let request = SearchRequest { quantization: Some(params), ..SearchRequest::new(vector, 10) };
        let ids = |c: &Collection| c.search(&request).unwrap().iter().map(|h| (h.id, h.score.to_bits())).collect::<Vec<_>>();
        assert_eq!(ids(&heap), ids(&mapped), "query {q}");
    }
    assert_eq!(provider.status().fallbacks, 0);
    assert!(heap.index_heap_bytes().unwrap() > mapped.index_heap_bytes().unwrap() + 550 * dim as usize * 4);
}

/// A directory that disappears after the provider checked it: new stores fall back to the
/// heap, keep working, and the provider reports why.
#[test]
fn a_store_that_cannot_make_its_file_falls_back_to_the_heap_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let provider = MmapVectorProvider::new(&gone).unwrap();
    std::fs::remove_dir(&gone).unwrap();
    let mut store = provider.create(4, 10);
    store.push_row(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(store.values(), &[1.0, 2.0, 3.0, 4.0]);
    assert!(store.heap_bytes() > 0, "the rows are on the heap");
    let status = provider.status();
    assert_eq!(status.fallbacks, 1);
    assert!(status.last_error.as_deref().is_some_and(|e| e.contains("gone") && e.contains("create")), "{status:?}");
}
