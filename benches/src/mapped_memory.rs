//! Resident memory of file mappings, read from `/proc/self/smaps` (Linux).
//!
//! A heap-counting allocator does not see memory-mapped files: vectors kept in a mapped file
//! (`vecraft_runtime::mmap_vectors`) cost page-cache pages once read, and those pages are memory
//! too, just evictable. The harness reports them beside the heap figure: `Rss` is what this
//! process has mapped of the files now, `Size` how large the mappings are.

use std::path::Path;

/// Mapped size and resident bytes of this process's mappings of files under a directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MappedBytes {
    /// Bytes mapped (the mappings' `Size`).
    pub size: u64,
    /// Bytes resident now (the mappings' `Rss`).
    pub rss: u64,
}

/// The mappings of files under `dir` in this process (zero when there are none, or off Linux).
pub fn mapped_under(dir: &Path) -> std::io::Result<MappedBytes> {
    let dir = dir.canonicalize()?;
    match std::fs::read_to_string("/proc/self/smaps") {
        Ok(smaps) => Ok(sum_mappings(&smaps, &dir.to_string_lossy())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(MappedBytes::default()),
        Err(e) => Err(e),
    }
}

/// Sums `Size` and `Rss` of the smaps entries whose path starts with `prefix/` (unlinked files
/// show as `prefix/#123 (deleted)` and still count).
pub fn sum_mappings(smaps: &str, prefix: &str) -> MappedBytes {
    let prefix = format!("{}/", prefix.trim_end_matches('/'));
    let mut total = MappedBytes::default();
    let mut inside = false;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: "start-end perms offset dev inode [path]".
            inside = fields.nth(4).is_some_and(|path| path.starts_with(&prefix));
            continue;
        }
        if !inside {
            continue;
        }
        let kib = |f: &mut std::str::SplitWhitespace| f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024;
        match first {
            "Size:" => total.size += kib(&mut fields),
            "Rss:" => total.rss += kib(&mut fields),
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_only_the_mappings_under_the_directory() {
        let smaps = "\
5581f000-55820000 r--p 00000000 08:01 123 /usr/bin/ann_harness
Size:                  4 kB
Rss:                   4 kB
7f0000000000-7f0004000000 rw-s 00000000 08:01 99 /data/vecs/#99 (deleted)
Size:              65536 kB
KernelPageSize:        4 kB
Rss:                1200 kB
Pss:                1200 kB
7f1000000000-7f1000001000 rw-s 00000000 08:01 98 /data/vecs/.tmpAbc (deleted)
Size:                  4 kB
Rss:                   4 kB
7f2000000000-7f2000001000 rw-s 00000000 08:01 97 /data/vecs-other/x
Size:                  8 kB
Rss:                   8 kB
7ffd000000-7ffd001000 rw-p 00000000 00:00 0 [stack]
Size:                132 kB
Rss:                  12 kB
";
        let got = sum_mappings(smaps, "/data/vecs");
        assert_eq!(got, MappedBytes { size: (65536 + 4) * 1024, rss: (1200 + 4) * 1024 });
        assert_eq!(sum_mappings(smaps, "/nowhere"), MappedBytes::default());
    }
}
