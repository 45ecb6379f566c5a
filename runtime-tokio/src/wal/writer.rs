//! The synchronous WAL core: append batches with one write and one `fdatasync`, roll segments,
//! delete a prefix. Plain `std::fs`, so it is easy to test and to drive from a dedicated thread.
//!
//! Durability rules:
//! - A segment is created as `<name>.tmp` (header written, space preallocated, file fsynced),
//!   renamed, then the directory is fsynced, so a segment name never points at a file without a
//!   durable header.
//! - A batch is acknowledged only after its `fdatasync` returned. If a write or sync fails the
//!   WAL refuses everything afterwards: after a failed fsync the kernel may have dropped the dirty
//!   pages and a retry can "succeed" without the data (PostgreSQL's fsyncgate), so the only safe
//!   move is to stop and let the process restart into recovery.
//! - The writer never appends to a segment that existed at open: recovery may have cut a torn
//!   tail, and starting a fresh segment keeps "where does valid data end" trivially true.

use super::format::{
    RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SegmentHeader, encode_record, segment_file_name,
    segment_seed,
};
use super::recovery::{Recovery, SegmentInfo, recover};
use super::{WalError, WalOptions, fsync_dir, io_err};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The segment currently appended to.
#[derive(Debug)]
struct Active {
    info: SegmentInfo,
    file: File,
    seed: u32,
    /// Logical end of the written data (the file itself is preallocated further).
    offset: u64,
}

/// An open write-ahead log. See the module docs for the durability rules.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    sealed: Vec<SegmentInfo>,
    active: Active,
    next_seq: u64,
    buf: Vec<u8>,
    failed: bool,
    /// Bytes of the sealed segments on disk (for the `vecraft_wal_bytes` gauge).
    sealed_bytes: u64,
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`, recovering what is there. The returned
    /// [`Recovery`] lists every valid record and any damage; the node must act on corruption.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<(Self, Recovery), WalError> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err("create wal directory"))?;
        let (recovery, sealed) = recover(&dir)?;
        let next_id = sealed.last().map_or(1, |s| s.id + 1);
        let active = create_segment(&dir, next_id, recovery.next_seq, &opts)?;
        let sealed_bytes = sealed.iter().map(file_len).sum();
        let wal = Self {
            dir,
            opts,
            sealed,
            active,
            next_seq: recovery.next_seq,
            buf: Vec::new(),
            failed: false,
            sealed_bytes,
        };
        wal.report_bytes();
        Ok((wal, recovery))
    }

    /// The seq the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Highest seq known durable (0 if none was ever written).
    pub fn durable_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The options this WAL was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.opts
    }

    /// `(segment id, first seq)` of every live segment, oldest first (the last one is active).
    pub fn segments(&self) -> Vec<(u64, u64)> {
        self.sealed
            .iter()
            .chain(std::iter::once(&self.active.info))
            .map(|s| (s.id, s.first_seq))
            .collect()
    }

    /// Appends `payloads` as consecutive records with **one write and one `fdatasync`** (group
    /// commit), returning the seq of the last one, now durable (`None` for an empty batch). Every
    /// payload is checked against `max_record_len` before anything is written.
    pub fn append_batch<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
    ) -> Result<Option<u64>, WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        if payloads.is_empty() {
            return Ok(None);
        }
        let mut bytes = 0u64;
        for p in payloads {
            let len = p.as_ref().len();
            if len > self.opts.max_record_len {
                return Err(WalError::RecordTooLarge {
                    len,
                    max: self.opts.max_record_len,
                });
            }
            bytes += (RECORD_HEADER_LEN + len) as u64;
        }
        // Roll before a batch that would overflow a non-empty segment; a single batch larger than
        // a segment simply grows that segment beyond its preallocation.
        if self.active.offset > SEGMENT_HEADER_LEN as u64
            && self.active.offset + bytes > self.opts.segment_size
        {
            self.roll()?;
        }
        self.buf.clear();
        self.buf.reserve(bytes as usize);
        for (i, p) in payloads.iter().enumerate() {
            encode_record(
                &mut self.buf,
                self.active.seed,
                self.next_seq + i as u64,
                p.as_ref(),
            );
        }
        let res = self
            .active
            .file
            .write_all_at(&self.buf, self.active.offset)
            .map_err(io_err("write wal batch"))
            .and_then(|()| {
                let started = std::time::Instant::now();
                let synced = self
                    .active
                    .file
                    .sync_data()
                    .map_err(io_err("fdatasync wal batch"));
                metrics::histogram!(crate::http::metrics::WAL_FSYNC_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                synced
            });
        if let Err(e) = res {
            self.failed = true;
            return Err(e);
        }
        self.active.offset += bytes;
        self.next_seq += payloads.len() as u64;
        self.report_bytes();
        Ok(Some(self.next_seq - 1))
    }

    /// Deletes every whole segment whose records all have seqs below `seq` (the caller has a
    /// snapshot covering them). The active segment is never deleted. Returns how many went.
    pub fn truncate_prefix(&mut self, seq: u64) -> Result<usize, WalError> {
        if self.sealed.is_empty() {
            return Ok(0);
        }
        let mut firsts: Vec<u64> = self.sealed.iter().skip(1).map(|s| s.first_seq).collect();
        firsts.push(self.active.info.first_seq);
        // Segment i holds seqs below the first seq of segment i + 1.
        let removable = firsts
            .iter()
            .take_while(|&&next_first| next_first <= seq)
            .count();
        for seg in self.sealed.drain(..removable) {
            self.sealed_bytes = self.sealed_bytes.saturating_sub(file_len(&seg));
            fs::remove_file(&seg.path).map_err(io_err("delete wal segment"))?;
            tracing::debug!(segment = seg.id, "wal: deleted segment below seq {seq}");
        }
        if removable > 0 {
            fsync_dir(&self.dir)?;
            self.report_bytes();
        }
        Ok(removable)
    }

    /// Seals the active segment (already durable up to its offset) and starts a new one.
    fn roll(&mut self) -> Result<(), WalError> {
        let next = create_segment(
            &self.dir,
            self.active.info.id + 1,
            self.next_seq,
            &self.opts,
        )
        .inspect_err(|_| {
            self.failed = true;
        })?;
        let old = std::mem::replace(&mut self.active, next);
        self.sealed_bytes += file_len(&old.info);
        self.sealed.push(old.info);
        Ok(())
    }

    /// Sets `vecraft_wal_bytes`: the sealed segments plus what the active one holds.
    fn report_bytes(&self) {
        metrics::gauge!(crate::http::metrics::WAL_BYTES).set((self.sealed_bytes + self.active.offset) as f64);
    }
}

/// A segment's size on disk (0 if it cannot be read: the gauge is informational).
fn file_len(seg: &SegmentInfo) -> u64 {
    fs::metadata(&seg.path).map_or(0, |m| m.len())
}

/// Creates segment `id` durably: temp file with header and preallocation, fsync, rename, fsync
/// the directory.
fn create_segment(
    dir: &Path,
    id: u64,
    first_seq: u64,
    opts: &WalOptions,
) -> Result<Active, WalError> {
    let name = segment_file_name(id, first_seq);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}{}", super::format::TMP_SUFFIX));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("create segment"))?;
    file.write_all(&SegmentHeader { id, first_seq }.encode())
        .map_err(io_err("write segment header"))?;
    if opts.preallocate {
        preallocate(&file, opts.segment_size.max(SEGMENT_HEADER_LEN as u64))?;
    }
    file.sync_all().map_err(io_err("sync new segment"))?;
    fs::rename(&tmp, &path).map_err(io_err("rename new segment"))?;
    fsync_dir(dir)?;
    let info = SegmentInfo {
        id,
        first_seq,
        path,
    };
    Ok(Active {
        info,
        file,
        seed: segment_seed(id),
        offset: SEGMENT_HEADER_LEN as u64,
    })
}

/// Reserves `len` bytes of disk for the file, so that appends do not allocate blocks (and
/// `fdatasync` has less metadata to flush). Falls back to `set_len` (sparse) where the
/// filesystem has no `fallocate`.
fn preallocate(file: &File, len: u64) -> Result<(), WalError> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len_off = libc::off_t::try_from(len).unwrap_or(libc::off_t::MAX);
        // SAFETY: the fd is owned by `file` and open for writing for the duration of the call.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_off) };
        if rc == 0 {
            return Ok(());
        }
    }
    file.set_len(len).map_err(io_err("preallocate segment"))
}
