//! Writes snapshot files in the documented format (`core/src/vector/snapshot.rs`, version 1) for
//! whatever header, entries and counts a caller chooses, with every checksum valid.
//!
//! Core's own writer is private and honest; a fuzzer mutating its output breaks a blake3 hash on
//! almost every mutation and never reaches entry validation or the digest check. Forging files
//! whose checksums pass is the only way to test that a restore refuses a lying (or buggy) writer.

use vecraft_core::vector::snapshot::{SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC, SnapshotEntry, SnapshotHeader};

/// Lies a forged file may tell besides its header and entries.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lies {
    /// Added (wrapping) to every chunk's entry count.
    pub entry_count_delta: u32,
    /// Added (wrapping) to every chunk's raw length.
    pub raw_len_delta: u32,
    /// Added (wrapping) to the end record's chunk, upsert and deletion counts.
    pub end_delta: [u64; 3],
}

/// A checksum-valid snapshot file holding `chunks` (each a list of entries) under `header`.
pub fn forge(header: &SnapshotHeader, chunks: &[Vec<SnapshotEntry>], lies: Lies) -> Vec<u8> {
    let mut out = Vec::new();
    let header_bytes = postcard::to_stdvec(header).expect("headers encode");
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(header_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&header_bytes);
    let preamble = blake3::hash(&out);
    out.extend_from_slice(preamble.as_bytes());
    let (mut upserts, mut deletions) = (0u64, 0u64);
    for chunk in chunks {
        let mut raw = Vec::new();
        for e in chunk {
            match e {
                SnapshotEntry::Point { .. } => upserts += 1,
                SnapshotEntry::Deleted { .. } => deletions += 1,
            }
            raw = postcard::to_extend(e, raw).expect("entries encode");
        }
        let body = zstd::bulk::compress(&raw, 1).expect("zstd compresses");
        let mut frame = [0u8; 17];
        frame[0] = 0xC1;
        frame[1..5].copy_from_slice(&(chunk.len() as u32).wrapping_add(lies.entry_count_delta).to_le_bytes());
        frame[5..9].copy_from_slice(&(raw.len() as u32).wrapping_add(lies.raw_len_delta).to_le_bytes());
        frame[9..13].copy_from_slice(&(body.len() as u32).to_le_bytes());
        let check = blake3::hash(&frame[..13]);
        frame[13..].copy_from_slice(&check.as_bytes()[..4]);
        let mut h = blake3::Hasher::new();
        h.update(&frame);
        h.update(&body);
        out.extend_from_slice(&frame);
        out.extend_from_slice(h.finalize().as_bytes());
        out.extend_from_slice(&body);
    }
    out.push(0xE0);
    let counts = [chunks.len() as u64, upserts, deletions];
    for (c, d) in counts.iter().zip(lies.end_delta) {
        out.extend_from_slice(&c.wrapping_add(d).to_le_bytes());
    }
    let file = blake3::hash(&out);
    out.extend_from_slice(file.as_bytes());
    out
}
