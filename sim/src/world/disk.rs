//! A simulated disk holding one node's write-ahead log, and the ways real disks betray it.
//!
//! Writes land in a volatile buffer and become durable when the simulator completes them (after a
//! random latency, in order). A crash loses the buffer; with some probability the first buffered
//! write is *torn*: a prefix of its bytes reached the platter. Recovery goes through the same frame
//! decoder the production WAL uses, so damage is detected by checksum, not by magic.
//!
//! A disk marked `faulty` (a seeded minority of nodes) may also lose or corrupt data it already
//! acknowledged, as studied in "Protocol-Aware Recovery for Consensus-Based Storage" (FAST '18):
//! bits rot in synced records, a lying fsync acknowledges a write that is lost at the next crash,
//! and a misdirected write lands a record at the wrong offset. The disk remembers (`damaged`) that
//! it lost acknowledged data, so the durability checker can tell "the disk lost it" from "the
//! protocol lost it".

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use vecraft_core::raft::{
    DurableState, PersistRecord, RecoveryError, SnapshotMeta, WAL_FRAME_HEADER, WalTail, decode_wal, encode_wal_frame,
};

/// How a sync misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncFault {
    /// An honest sync: the writes are durable (and a lying drive's cache is flushed with them).
    None,
    /// The drive acknowledges but keeps the writes only in its volatile cache.
    Lie,
    /// The first record of the sync lands at an earlier record's offset; its own place stays zero.
    Misdirect,
}

/// One node's disk.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    synced: Vec<u8>,
    /// (seq, framed bytes) written but not yet durable.
    unsynced: Vec<(u64, Vec<u8>)>,
    /// Where each synced record starts (the simulator's ground truth; recovery never reads it).
    frames: Vec<usize>,
    /// Synced bytes from this offset on are only in a lying drive's cache: lost at a crash.
    cached_from: Option<usize>,
    /// This disk may suffer the data-losing faults (chosen per seed, on a minority of nodes).
    pub faulty: bool,
    /// A fault lost or corrupted data this disk had acknowledged (sticky for the run).
    pub damaged: bool,
    /// Damage injected since the last recovery (recovery will meet it).
    undetected: bool,
    /// The newest snapshot the node took or installed. A snapshot is written whole and synced
    /// before Raft is told (a temporary file renamed into place), so it survives every crash;
    /// the storage faults above hit the WAL only. Staging copies live in the process and die
    /// with it.
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

/// What recovery found on a disk.
#[derive(Debug)]
pub struct Recovered {
    /// The state the node restarts from.
    pub state: DurableState,
    /// Bytes after the last good record that were discarded (torn tail or damage).
    pub discarded_tail: usize,
    /// The discarded bytes include injected damage to acknowledged data, not only a torn tail.
    pub corruption: bool,
    /// The snapshot to restore the state machine from (the WAL continues after it).
    pub snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

/// What recovery of a many-group stream found (see [`SimDisk::recover_stream`]).
#[derive(Debug)]
pub struct StreamRecovery {
    /// Every record that decodes, in write order.
    pub records: Vec<PersistRecord>,
    /// Corruption before valid records: acknowledged data was destroyed.
    pub corrupt: bool,
    /// Bytes cut after the last good record (torn tail).
    pub discarded_tail: usize,
    /// Damage was injected since the last recovery.
    pub injected: bool,
}

/// What a crash did to the disk.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CrashLoss {
    /// A write in progress was torn.
    pub torn: bool,
    /// A lying drive's cache held acknowledged writes, now lost.
    pub lied: bool,
}

/// The longest prefix of `bytes` that decodes and replays: (state, its length in bytes). With
/// `lenient` off a record that does not fit the state before it is an error, as it can only come
/// from a buggy driver; with it on (a damaged disk, where a misdirected record can be a valid
/// frame in the wrong place) recovery keeps the prefix before it.
fn replay_prefix(bytes: &[u8], lenient: bool) -> Result<(DurableState, usize), RecoveryError> {
    let replay = decode_wal(bytes);
    let mut state = DurableState::default();
    let mut len = 0;
    for (i, r) in replay.records.iter().enumerate() {
        if let Err(e) = state.apply(i, r) {
            if lenient {
                return Ok((state, len));
            }
            return Err(e);
        }
        len += WAL_FRAME_HEADER + vecraft_core::wire::encode(r).expect("records encode").len();
    }
    Ok((state, replay.valid_len))
}

impl SimDisk {
    /// Buffers a write.
    /// Writes issued and not yet synced (what a crash now would lose).
    pub fn unsynced_writes(&self) -> usize {
        self.unsynced.len()
    }

    pub fn write(&mut self, seq: u64, record: &PersistRecord) {
        self.unsynced.push((seq, encode_wal_frame(record)));
    }

    /// Makes every buffered write up to `seq` durable, or pretends to (`fault`). Returns whether a
    /// record was misdirected.
    pub fn sync_through(&mut self, seq: u64, fault: SyncFault, rng: &mut ChaCha8Rng) -> bool {
        let n = self.unsynced.iter().take_while(|(s, _)| *s <= seq).count();
        if n == 0 {
            return false;
        }
        match fault {
            SyncFault::None => self.cached_from = None,
            SyncFault::Lie => {
                self.cached_from.get_or_insert(self.synced.len());
            }
            SyncFault::Misdirect => {}
        }
        let mut misdirected = false;
        for (i, (_, bytes)) in self.unsynced.drain(..n).enumerate() {
            let start = self.synced.len();
            if i == 0 && fault == SyncFault::Misdirect && !self.frames.is_empty() {
                let at = self.frames[rng.random_range(0..self.frames.len())];
                self.synced.resize(start + bytes.len(), 0);
                let end = (at + bytes.len()).min(self.synced.len());
                self.synced[at..end].copy_from_slice(&bytes[..end - at]);
                self.damaged = true;
                self.undetected = true;
                misdirected = true;
            } else {
                self.synced.extend_from_slice(&bytes);
            }
            self.frames.push(start);
        }
        misdirected
    }

    /// Loses volatile writes (and a lying drive's cache). `torn_fraction`, if given, is how much of
    /// the first buffered write reached the disk (a torn write).
    pub fn crash(&mut self, torn_fraction: Option<f64>) -> CrashLoss {
        let mut loss = CrashLoss::default();
        if let Some(from) = self.cached_from.take()
            && from < self.synced.len()
        {
            self.synced.truncate(from);
            self.frames.retain(|&f| f < from);
            self.damaged = true;
            loss.lied = true;
        }
        if let (Some(f), Some((_, first))) = (torn_fraction, self.unsynced.first()) {
            let keep = ((first.len() as f64) * f) as usize;
            if keep > 0 && keep < first.len() {
                self.synced.extend_from_slice(&first[..keep]);
                loss.torn = true;
            }
        }
        self.unsynced.clear();
        loss
    }

    /// Flips one random bit of the synced log (bit rot of acknowledged data); false if the log is
    /// empty.
    pub fn flip_bit(&mut self, rng: &mut ChaCha8Rng) -> bool {
        if self.synced.is_empty() {
            return false;
        }
        let pos = rng.random_range(0..self.synced.len());
        self.synced[pos] ^= 1 << rng.random_range(0..8u32);
        self.damaged = true;
        self.undetected = true;
        true
    }

    /// Flips one random bit of a synced record that has another record after it: damage that
    /// recovery can always tell from a torn tail (a flip in the very last record cannot be told
    /// apart locally, see the README of the simulator). False if fewer than two records.
    pub fn flip_bit_before_last(&mut self, rng: &mut ChaCha8Rng) -> bool {
        let Some(&last) = self.frames.last() else { return false };
        if self.frames.len() < 2 || last == 0 || last > self.synced.len() {
            return false;
        }
        let pos = rng.random_range(0..last);
        self.synced[pos] ^= 1 << rng.random_range(0..8u32);
        self.damaged = true;
        self.undetected = true;
        true
    }

    /// Reads the log back as a stream of many groups' records (the node's WAL): a torn tail is
    /// cut; corruption followed by valid records is reported and its bytes stay (the damage stays
    /// visible to later recoveries), the records around it are returned for per-group replay.
    pub fn recover_stream(&mut self) -> StreamRecovery {
        let replay = decode_wal(&self.synced);
        let corrupt = matches!(replay.tail, WalTail::Corrupt { .. });
        let mut discarded_tail = 0;
        if !corrupt {
            discarded_tail = self.synced.len() - replay.valid_len;
            self.synced.truncate(replay.valid_len);
            let valid_len = replay.valid_len;
            self.frames.retain(|&f| f < valid_len);
        }
        let injected = std::mem::take(&mut self.undetected);
        StreamRecovery { records: replay.records, corrupt, discarded_tail, injected }
    }

    /// Reads the log back as the production WAL does: a torn tail is truncated; damage followed by
    /// valid records (or records that do not fit together on a damaged disk) yields a *damaged*
    /// state, which the node must repair from a leader before it votes again; the bytes stay, so
    /// the damage stays visible to later recoveries.
    pub fn recover(&mut self) -> Result<Recovered, RecoveryError> {
        let replay = decode_wal(&self.synced);
        let corrupt = matches!(replay.tail, WalTail::Corrupt { .. });
        let state = if corrupt {
            DurableState::replay_damaged(&replay.records)
        } else {
            match DurableState::replay(&replay.records) {
                Ok(state) => state,
                Err(_) if self.damaged => DurableState::replay_damaged(&replay.records),
                Err(e) => return Err(e),
            }
        };
        let mut discarded_tail = 0;
        if !state.damaged {
            discarded_tail = self.synced.len() - replay.valid_len;
            self.synced.truncate(replay.valid_len);
            let valid_len = replay.valid_len;
            self.frames.retain(|&f| f < valid_len);
        }
        let corruption = std::mem::take(&mut self.undetected) && (discarded_tail > 0 || state.damaged);
        Ok(Recovered { state, discarded_tail, corruption, snapshot: self.snapshot.clone() })
    }

    /// The durable state as it would be recovered now (without modifying the disk), the
    /// snapshot store included.
    pub fn durable_state(&self) -> Result<DurableState, RecoveryError> {
        let mut state = replay_prefix(&self.synced, self.damaged).map(|(s, _)| s)?;
        if let Some((meta, _)) = &self.snapshot {
            state.adopt_snapshot(meta.clone());
        }
        Ok(state)
    }

    /// Stores `meta`'s snapshot durably, replacing an older one (never a newer one).
    pub fn store_snapshot(&mut self, meta: &SnapshotMeta, bytes: &[u8]) -> bool {
        if self.snapshot.as_ref().is_some_and(|(m, _)| m.index >= meta.index) {
            return false;
        }
        self.snapshot = Some((meta.clone(), bytes.to_vec()));
        true
    }

    /// Bytes durably written.
    pub fn synced_len(&self) -> usize {
        self.synced.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use vecraft_core::raft::{Entry, EntryPayload, HardState};

    fn record(i: u64) -> PersistRecord {
        PersistRecord {
            group: 1,
            hard_state: Some(HardState { term: i, vote: None }),
            entries: vec![Entry { term: i, index: i, payload: EntryPayload::Command(vec![7; 20].into()) }],
            snapshot: None,
        }
    }

    fn disk_with(n: u64, rng: &mut ChaCha8Rng) -> SimDisk {
        let mut d = SimDisk { faulty: true, ..SimDisk::default() };
        for i in 1..=n {
            d.write(i, &record(i));
            d.sync_through(i, SyncFault::None, rng);
        }
        d
    }

    #[test]
    fn a_bit_flip_is_detected_and_the_log_cut_before_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut d = disk_with(5, &mut rng);
        assert!(d.flip_bit(&mut rng));
        let r = d.recover().unwrap();
        assert!(r.corruption && d.damaged);
        // Damage before valid records marks the node damaged; damage in the last record is
        // indistinguishable from a torn write and is cut.
        assert!(r.state.damaged || r.discarded_tail > 0);
        assert!(r.state.entries.len() < 5);
    }

    #[test]
    fn a_lying_sync_is_lost_at_the_next_crash_and_an_honest_one_flushes_it() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut d = disk_with(2, &mut rng);
        d.write(3, &record(3));
        d.sync_through(3, SyncFault::Lie, &mut rng);
        assert_eq!(d.durable_state().unwrap().entries.len(), 3, "the lie looks durable until a crash");
        assert_eq!(d.crash(None), CrashLoss { torn: false, lied: true });
        assert_eq!(d.recover().unwrap().state.entries.len(), 2);
        let mut d = disk_with(2, &mut rng);
        d.write(3, &record(3));
        d.sync_through(3, SyncFault::Lie, &mut rng);
        d.write(4, &record(4));
        d.sync_through(4, SyncFault::None, &mut rng);
        assert!(!d.crash(None).lied);
        assert!(!d.damaged);
    }

    #[test]
    fn a_misdirected_write_damages_an_earlier_record() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut d = disk_with(4, &mut rng);
        d.write(5, &record(5));
        assert!(d.sync_through(5, SyncFault::Misdirect, &mut rng));
        let r = d.recover().unwrap();
        assert!(r.state.entries.len() < 5 && d.damaged);
    }
}
