//! Untrusted bytes from the network or disk must decode to a value or an error, never a panic,
//! and whatever decodes must re-encode to bytes that decode to the same value (otherwise a
//! forwarded message could change meaning on the way).
//!
//! Covered: Raft messages (snapshot chunks and their answers included), persist records (with
//! snapshot records), client responses, snapshot headers, configuration changes, and the session
//! types a state machine decodes from log entries (`SessionRequest`) and snapshots
//! (`ClientSessions`). A decoded snapshot header or configuration entry is also checked the way
//! the receiver checks it: `Membership::validate` must answer, not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vecraft_core::raft::{
    ClientResponse, ClientSessions, ConfChange, ConfEntry, Message, MessageBody, PersistRecord, SessionRequest,
    SnapshotMeta,
};
use vecraft_core::wire;

fn round_trip<T>(data: &[u8]) -> Option<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value = wire::decode::<T>(data).ok()?;
    let again = wire::encode(&value).expect("decoded values encode");
    assert_eq!(wire::decode::<T>(&again).expect("round trip"), value);
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    if let Some(m) = round_trip::<Message>(data)
        && let MessageBody::InstallSnapshot { meta, .. } = &m.body
    {
        let _ = meta.membership.validate();
    }
    if let Some(r) = round_trip::<PersistRecord>(data)
        && let Some(s) = &r.snapshot
    {
        let _ = s.meta.membership.validate();
    }
    round_trip::<ClientResponse>(data);
    if let Some(meta) = round_trip::<SnapshotMeta>(data) {
        let _ = meta.membership.validate();
        let _ = meta.verify(data);
    }
    round_trip::<ConfChange>(data);
    if let Some(entry) = round_trip::<ConfEntry>(data) {
        let _ = entry.membership.validate();
    }
    round_trip::<SessionRequest<Vec<u8>>>(data);
    round_trip::<ClientSessions<Vec<u8>>>(data);
});
