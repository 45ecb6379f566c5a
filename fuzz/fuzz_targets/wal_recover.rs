//! Whatever is on disk, recovery returns a state or an error; the valid prefix re-reads identically.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vecraft_core::raft::{DurableState, decode_wal};

fuzz_target!(|data: &[u8]| {
    let replay = decode_wal(data);
    assert!(replay.valid_len + replay.discarded_tail == data.len());
    let again = decode_wal(&data[..replay.valid_len]);
    assert_eq!(again.records, replay.records);
    let _ = DurableState::replay(&replay.records);
});
