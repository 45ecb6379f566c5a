//! A simulated disk holding one node's write-ahead log.
//!
//! Writes land in a volatile buffer and become durable when the simulator completes them (after a
//! random latency, in order). A crash loses the buffer; with some probability the first buffered
//! write is *torn*: a prefix of its bytes reached the platter. Recovery goes through the same frame
//! decoder the production WAL uses, so torn tails are detected by checksum, not by magic.

use vecraft_core::raft::{DurableState, PersistRecord, RecoveryError, WalTail, decode_wal, encode_wal_frame};

/// One node's disk.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    synced: Vec<u8>,
    /// (seq, framed bytes) written but not yet durable.
    unsynced: Vec<(u64, Vec<u8>)>,
}

/// What recovery found on a disk.
#[derive(Debug)]
pub struct Recovered {
    /// The state the node restarts from.
    pub state: DurableState,
    /// Bytes of torn tail that were discarded.
    pub discarded_tail: usize,
}

impl SimDisk {
    /// Buffers a write.
    pub fn write(&mut self, seq: u64, record: &PersistRecord) {
        self.unsynced.push((seq, encode_wal_frame(record)));
    }

    /// Makes every buffered write up to `seq` durable.
    pub fn sync_through(&mut self, seq: u64) {
        let n = self.unsynced.iter().take_while(|(s, _)| *s <= seq).count();
        for (_, bytes) in self.unsynced.drain(..n) {
            self.synced.extend_from_slice(&bytes);
        }
    }

    /// Loses volatile writes. `torn_fraction`, if given, is how much of the first buffered write
    /// reached the disk (a torn write).
    pub fn crash(&mut self, torn_fraction: Option<f64>) -> bool {
        let mut torn = false;
        if let (Some(f), Some((_, first))) = (torn_fraction, self.unsynced.first()) {
            let keep = ((first.len() as f64) * f) as usize;
            if keep > 0 && keep < first.len() {
                self.synced.extend_from_slice(&first[..keep]);
                torn = true;
            }
        }
        self.unsynced.clear();
        torn
    }

    /// Reads the log back, discarding (and truncating away) any torn tail.
    pub fn recover(&mut self) -> Result<Recovered, RecoveryError> {
        let replay = decode_wal(&self.synced);
        if let WalTail::Corrupt { .. } = replay.tail {
            // Acknowledged data was destroyed: keep the bytes (the damage stays visible to the next
            // recovery too) and come back damaged.
            let state = DurableState::replay_damaged(&replay.records);
            return Ok(Recovered { state, discarded_tail: 0 });
        }
        self.synced.truncate(replay.valid_len);
        let state = DurableState::replay(&replay.records)?;
        Ok(Recovered { state, discarded_tail: replay.discarded_tail })
    }

    /// The durable state as it would be recovered now (without modifying the disk).
    pub fn durable_state(&self) -> Result<DurableState, RecoveryError> {
        DurableState::replay(&decode_wal(&self.synced).records)
    }

    /// Bytes durably written.
    pub fn synced_len(&self) -> usize {
        self.synced.len()
    }
}
