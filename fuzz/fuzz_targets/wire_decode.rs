//! Untrusted bytes from the network or disk must decode to a value or an error, never a panic,
//! and whatever decodes must re-encode to bytes that decode to the same value (otherwise a
//! forwarded message could change meaning on the way).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vecraft_core::raft::{ClientResponse, Message, PersistRecord};
use vecraft_core::wire;

fn round_trip<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(value) = wire::decode::<T>(data) {
        let again = wire::encode(&value).expect("decoded values encode");
        assert_eq!(wire::decode::<T>(&again).expect("round trip"), value);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Message>(data);
    round_trip::<PersistRecord>(data);
    round_trip::<ClientResponse>(data);
});
