//! f32 vectors in a memory-mapped file: the [`VectorStore`] a quantized collection uses when its
//! originals live on disk (Qdrant's `vectors.on_disk: true` with `always_ram` codes).
//!
//! Layout: one file per index of fixed-size rows (`dim` f32 values, no header, no padding), row
//! `slot` at byte `slot * dim * 4`. The mapping starts on a page boundary, so every row is
//! 4-byte aligned, and 64-byte (cache-line) aligned when `dim` is a multiple of 16. The core
//! walk borrows the mapping as one `&[f32]`, exactly like the heap arena, so nothing on the
//! search path changes; with codes walked, a search reads only the rows it rescores.
//!
//! Growth: the file grows in whole chunks ([`DEFAULT_CHUNK_BYTES`]), each allocated on disk with
//! `posix_fallocate` and then remapped. Allocating up front matters: writing into a sparse page
//! of a full disk would raise SIGBUS at the store instruction, while a failed `fallocate` is an
//! ordinary error. On any such error the store moves its rows to the heap and keeps working (the
//! replicated state machine cannot refuse an insert on one replica), and the provider counts the
//! fallback and keeps the message for operators ([`MmapVectorProvider::status`]).
//!
//! **The file is a cache of the collection's points, not data.** The WAL and snapshots stay the
//! source of truth: after a restart the collection is rebuilt from them and writes a new file;
//! an old file is never read back, so it has no header, checksum or recovery. To make that
//! literal the file is unlinked as soon as it is created (`O_TMPFILE` where the file system has
//! it): it never has a name, `du` on the directory does not show it (`df` does), and a crash
//! leaves nothing behind.
//!
//! **SIGBUS caveat.** A mapped file that shrinks under the mapping (another process truncating
//! it, through `/proc/<pid>/fd` since it has no name) makes the next read of a row past the new
//! end raise SIGBUS and kill the process; no Rust code can catch that. Nothing in vecraft
//! truncates these files, and disk-full cannot cause it (see growth above), but an operator
//! must not point the directory at a file system that can revoke pages (a network file system
//! that may lose its server, say).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapMut, MmapOptions};
use vecraft_core::vector::vector_store::{AlignedVec, VectorStore, VectorStoreProvider};

/// Default growth step of a vector file: 64 MiB (64k rows of 256-d vectors). Large steps keep
/// remaps rare; the unused tail costs disk blocks, not memory.
pub const DEFAULT_CHUNK_BYTES: usize = 64 << 20;

/// Why a vector file could not be made or grown.
#[derive(Debug, thiserror::Error)]
pub enum MmapVectorError {
    /// The directory for vector files is unusable (missing, not a directory, not writable).
    #[error("vector file directory {dir}: {source}")]
    Directory {
        /// The directory given.
        dir: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
    /// Creating, allocating or mapping a vector file failed.
    #[error("vector file in {dir} ({bytes} bytes): {what}: {source}")]
    File {
        /// The directory of the file.
        dir: PathBuf,
        /// The size it was being grown to.
        bytes: u64,
        /// The step that failed.
        what: &'static str,
        /// What the file system said.
        source: io::Error,
    },
    /// A size that does not fit the address space.
    #[error("vector file of {rows} rows of dimension {dim} is too large")]
    TooLarge {
        /// Rows asked for.
        rows: usize,
        /// Values per row.
        dim: usize,
    },
}

/// Shared between a provider and the stores it made: how often a store fell back to the heap,
/// and the bytes of every live store's file.
#[derive(Debug, Default)]
struct FileStats {
    fallbacks: AtomicU64,
    last_error: Mutex<Option<String>>,
    file_bytes: AtomicU64,
}

impl FileStats {
    fn record(&self, error: &MmapVectorError) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, "vector file unavailable, keeping these vectors on the heap");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }
}

/// What a provider reports to operators.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MmapVectorStatus {
    /// Stores that moved (or started) on the heap because a file could not be made or grown.
    pub fallbacks: u64,
    /// The last such error.
    pub last_error: Option<String>,
    /// Bytes of the files of the stores alive now (whole chunks; disk, and page cache when
    /// read, never heap).
    pub file_bytes: u64,
}

/// Makes a file-backed [`VectorStore`] in one directory for every index a collection builds.
#[derive(Debug)]
pub struct MmapVectorProvider {
    dir: PathBuf,
    chunk_bytes: usize,
    stats: Arc<FileStats>,
}

impl MmapVectorProvider {
    /// A provider writing its files in `dir`, which must exist and be writable (checked now by
    /// creating and mapping a probe file, so a bad directory fails here, not at the first insert).
    pub fn new(dir: impl Into<PathBuf>) -> Result<MmapVectorProvider, MmapVectorError> {
        Self::with_chunk_bytes(dir, DEFAULT_CHUNK_BYTES)
    }

    /// [`Self::new`] growing files by `chunk_bytes` (at least one page) at a time.
    pub fn with_chunk_bytes(dir: impl Into<PathBuf>, chunk_bytes: usize) -> Result<MmapVectorProvider, MmapVectorError> {
        let dir = dir.into();
        let as_dir_error = |source| MmapVectorError::Directory { dir: dir.clone(), source };
        if !std::fs::metadata(&dir).map_err(as_dir_error)?.is_dir() {
            return Err(as_dir_error(io::Error::new(io::ErrorKind::NotADirectory, "not a directory")));
        }
        MmapVectorStore::create(&dir, 1, 1, page_size()).map_err(|e| match e {
            MmapVectorError::File { source, .. } => as_dir_error(source),
            other => other,
        })?;
        Ok(MmapVectorProvider { dir, chunk_bytes: chunk_bytes.max(page_size()), stats: Arc::default() })
    }

    /// The directory files are made in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fallbacks to the heap so far, and the bytes of the live files.
    pub fn status(&self) -> MmapVectorStatus {
        MmapVectorStatus {
            fallbacks: self.stats.fallbacks.load(Ordering::Relaxed),
            last_error: self.stats.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            file_bytes: self.stats.file_bytes.load(Ordering::Relaxed),
        }
    }
}

impl VectorStoreProvider for MmapVectorProvider {
    /// A mapped file with room for `capacity_rows` rows, or heap rows if the file fails (counted
    /// in [`Self::status`]).
    fn create(&self, dim: usize, capacity_rows: usize) -> Box<dyn VectorStore> {
        match MmapVectorStore::create(&self.dir, dim, capacity_rows, self.chunk_bytes) {
            Ok(mut store) => {
                store.report_to(&self.stats);
                Box::new(store)
            }
            Err(error) => {
                self.stats.record(&error);
                Box::new(AlignedVec::<f32>::new())
            }
        }
    }

    fn is_external(&self) -> bool {
        true
    }
}

/// Where a store's rows are.
enum Backing {
    /// In the mapped file; `capacity` values fit before the next growth.
    Mapped { file: File, map: MmapMut, capacity: usize },
    /// On the heap, after the file could not grow.
    Heap(Vec<f32>),
}

/// Slot-indexed f32 rows in a memory-mapped, unlinked file (see the module docs).
pub struct MmapVectorStore {
    dir: PathBuf,
    dim: usize,
    chunk_bytes: usize,
    /// Values in use (rows `0..len / dim`).
    len: usize,
    backing: Backing,
    stats: Arc<FileStats>,
}

impl std::fmt::Debug for MmapVectorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapVectorStore")
            .field("dir", &self.dir)
            .field("dim", &self.dim)
            .field("len", &self.len)
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

impl MmapVectorStore {
    /// A new file in `dir` with room for `capacity_rows` rows of `dim` values (rounded up to whole
    /// chunks of `chunk_bytes`), allocated on disk and mapped.
    pub fn create(dir: &Path, dim: usize, capacity_rows: usize, chunk_bytes: usize) -> Result<MmapVectorStore, MmapVectorError> {
        let chunk_bytes = chunk_bytes.max(page_size());
        let file = tempfile::tempfile_in(dir).map_err(|source| MmapVectorError::File {
            dir: dir.to_path_buf(),
            bytes: 0,
            what: "create",
            source,
        })?;
        let mut store = MmapVectorStore {
            dir: dir.to_path_buf(),
            dim: dim.max(1),
            chunk_bytes,
            len: 0,
            backing: Backing::Heap(Vec::new()),
            stats: Arc::default(),
        };
        let values = capacity_rows.max(1).checked_mul(store.dim).ok_or(MmapVectorError::TooLarge { rows: capacity_rows, dim })?;
        let (map, capacity) = map_at_least(&file, dir, store.dim, chunk_bytes, values)?;
        store.backing = Backing::Mapped { file, map, capacity };
        store.stats.file_bytes.fetch_add(store.file_bytes() as u64, Ordering::Relaxed);
        Ok(store)
    }

    /// Counts this store's fallbacks and file bytes in `shared` (a provider's) from now on.
    fn report_to(&mut self, shared: &Arc<FileStats>) {
        let bytes = self.file_bytes() as u64;
        self.stats.file_bytes.fetch_sub(bytes, Ordering::Relaxed);
        shared.file_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.stats = Arc::clone(shared);
    }

    /// Whether the rows are still in the file (false after a fallback to the heap).
    pub fn is_mapped(&self) -> bool {
        matches!(self.backing, Backing::Mapped { .. })
    }

    /// Bytes of the file (whole chunks), 0 after a fallback.
    pub fn file_bytes(&self) -> usize {
        match &self.backing {
            Backing::Mapped { capacity, .. } => capacity * 4,
            Backing::Heap(_) => 0,
        }
    }

    /// Makes room for `values` values: grows and remaps the file when they do not fit, moving
    /// the rows to the heap if that fails.
    fn ensure_capacity(&mut self, values: usize) {
        let failed = match &mut self.backing {
            Backing::Mapped { file, map, capacity } if values > *capacity => {
                match map_at_least(file, &self.dir, self.dim, self.chunk_bytes, values) {
                    Ok((grown, grown_capacity)) => {
                        let added = (grown_capacity - *capacity) as u64 * 4;
                        self.stats.file_bytes.fetch_add(added, Ordering::Relaxed);
                        *map = grown;
                        *capacity = grown_capacity;
                        None
                    }
                    Err(error) => Some(error),
                }
            }
            _ => None,
        };
        if let Some(error) = failed {
            self.fall_back(error);
        }
    }

    /// Moves the rows to the heap after `error` (recorded for operators).
    fn fall_back(&mut self, error: MmapVectorError) {
        self.stats.record(&error);
        let rows = self.values().to_vec();
        self.stats.file_bytes.fetch_sub(self.file_bytes() as u64, Ordering::Relaxed);
        self.backing = Backing::Heap(rows);
    }
}

impl Drop for MmapVectorStore {
    fn drop(&mut self) {
        self.stats.file_bytes.fetch_sub(self.file_bytes() as u64, Ordering::Relaxed);
    }
}

impl VectorStore for MmapVectorStore {
    fn values(&self) -> &[f32] {
        match &self.backing {
            Backing::Mapped { map, .. } => {
                // SAFETY: the mapping is page-aligned (so f32-aligned), at least `len * 4` bytes
                // long, and any bit pattern is a valid f32; `&self` keeps it from being remapped.
                unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<f32>(), self.len) }
            }
            Backing::Heap(rows) => &rows[..self.len],
        }
    }

    fn values_mut(&mut self) -> &mut [f32] {
        match &mut self.backing {
            Backing::Mapped { map, .. } => {
                // SAFETY: as in `values`, and `&mut self` makes this the only view.
                unsafe { std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<f32>(), self.len) }
            }
            Backing::Heap(rows) => &mut rows[..self.len],
        }
    }

    /// Within the mapped capacity this only moves the end (the file's new rows are zero);
    /// beyond it the file grows by whole chunks and is remapped, or the rows move to the heap.
    fn grow_to(&mut self, len: usize) {
        if len <= self.len {
            return;
        }
        self.ensure_capacity(len);
        if let Backing::Heap(rows) = &mut self.backing {
            rows.resize(len, 0.0);
        }
        self.len = len;
    }

    /// Grows the file ahead of time (the end of the rows stays where it is).
    fn reserve(&mut self, additional: usize) {
        let want = self.len.saturating_add(additional);
        self.ensure_capacity(want);
        if let Backing::Heap(rows) = &mut self.backing {
            rows.reserve(want.saturating_sub(rows.len()));
        }
    }

    /// Heap bytes only: the mapped rows are page cache (see [`Self::file_bytes`]).
    fn heap_bytes(&self) -> usize {
        match &self.backing {
            Backing::Mapped { .. } => 0,
            Backing::Heap(rows) => rows.capacity() * 4,
        }
    }

    /// A new file in the same directory with the same rows (heap rows if that fails).
    fn try_clone(&self) -> Option<Box<dyn VectorStore>> {
        let rows = self.len / self.dim;
        let mut copy: Box<dyn VectorStore> = match MmapVectorStore::create(&self.dir, self.dim, rows, self.chunk_bytes) {
            Ok(mut store) => {
                store.report_to(&self.stats);
                Box::new(store)
            }
            Err(error) => {
                self.stats.record(&error);
                Box::new(AlignedVec::<f32>::with_capacity(self.len))
            }
        };
        copy.grow_to(self.len);
        copy.values_mut().copy_from_slice(self.values());
        Some(copy)
    }

    /// Writes dirty rows back, unmaps every resident page and asks the kernel to drop the file's
    /// pages from the page cache: the next read of a row faults it in from disk.
    fn release_resident(&self) {
        if let Backing::Mapped { file, map, .. } = &self.backing {
            let _ = map.flush();
            // SAFETY: MADV_DONTNEED on a shared file mapping only drops page-table entries;
            // the data stays in the file (just flushed), and later reads fault it back in.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
            // SAFETY: advisory syscall on our own descriptor.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

/// Grows `file` to hold at least `values` values (whole chunks), allocates its blocks and maps
/// all of it; returns the mapping and the values it holds.
fn map_at_least(file: &File, dir: &Path, dim: usize, chunk_bytes: usize, values: usize) -> Result<(MmapMut, usize), MmapVectorError> {
    let too_large = || MmapVectorError::TooLarge { rows: values / dim, dim };
    let bytes = values.checked_mul(4).ok_or_else(too_large)?.div_ceil(chunk_bytes).checked_mul(chunk_bytes).ok_or_else(too_large)?;
    let error = |what, source| MmapVectorError::File { dir: dir.to_path_buf(), bytes: bytes as u64, what, source };
    let len = libc::off_t::try_from(bytes).map_err(|_| too_large())?;
    // SAFETY: a plain syscall on a descriptor we own; it returns an error number.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    if rc != 0 {
        return Err(error("posix_fallocate", io::Error::from_raw_os_error(rc)));
    }
    // SAFETY: the file is ours alone (unlinked at creation) and only ever grows, so the mapping
    // stays backed for its whole life; see the module docs for the SIGBUS caveat.
    let map = unsafe { MmapOptions::new().len(bytes).map_mut(file) }.map_err(|e| error("mmap", e))?;
    // Rescoring reads scattered rows: no readahead around a fault.
    let _ = map.advise(memmap2::Advice::Random);
    Ok((map, bytes / 4))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}
