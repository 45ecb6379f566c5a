//! Simulator history files (JSON lines) from untrusted bytes.
//!
//! Histories are read back from disk by the checker tools, possibly hand-edited or truncated;
//! `History::from_jsonl_str` must answer with a history or a typed error, never a panic. A
//! history that parses must write back to text that parses to the same history (the file
//! format is the interchange format, so it must round-trip).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vecraft_sim::history::History;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(history) = History::from_jsonl_str(text) else { return };
    let written = history.to_jsonl_string();
    let again = History::from_jsonl_str(&written).expect("a written history parses");
    assert_eq!(again, history, "history did not round-trip through its file format");
    assert_eq!(again.to_jsonl_string(), written);
});
