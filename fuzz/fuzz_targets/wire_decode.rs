//! Untrusted bytes from the network must decode to a message or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vecraft_core::raft::{Message, PersistRecord};
use vecraft_core::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = wire::decode::<Message>(data) {
        // Whatever decodes must re-encode to something that decodes to the same message.
        let again = wire::encode(&msg).expect("decoded messages encode");
        assert_eq!(wire::decode::<Message>(&again).expect("round trip"), msg);
    }
    let _ = wire::decode::<PersistRecord>(data);
});
