//! Untrusted bytes from the network or disk must decode to a value or an error, never a panic,
//! and whatever decodes must re-encode to bytes that decode to the same value (otherwise a
//! forwarded message could change meaning on the way).
//!
//! Covered: Raft messages (snapshot chunks and their answers included), persist records (with
//! snapshot records), client responses, snapshot headers, configuration changes, and the session
//! types a state machine decodes from log entries (`SessionRequest`) and snapshots
//! (`ClientSessions`). A decoded snapshot header or configuration entry is also checked the way
//! the receiver checks it: `Membership::validate` must answer, not panic. The node layer too:
//! the envelopes nodes exchange (shard queries such as a changes page, their answers, writes),
//! metadata commands (aliases included) and shard commands as they come out of the log; those
//! carry floats (a NaN equals nothing), so they are held to byte-identical re-encoding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vecraft_core::raft::{
    ClientResponse, ClientSessions, ConfChange, ConfEntry, Message, MessageBody, PersistRecord, SessionRequest,
    SnapshotMeta,
};
use vecraft_core::node::message::NodeEnvelope;
use vecraft_core::node::metadata::MetaCommand;
use vecraft_core::node::shard::{decode_command, encode_command};
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

/// For types with floats: decoded values re-encode to bytes that decode and re-encode the same.
fn round_trip_bytes<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let Ok(value) = wire::decode::<T>(data) else { return };
    let once = wire::encode(&value).expect("decoded values encode");
    let again = wire::encode(&wire::decode::<T>(&once).expect("round trip")).expect("encodes");
    assert_eq!(once, again);
}

fuzz_target!(|data: &[u8]| {
    round_trip_bytes::<NodeEnvelope>(data);
    if let Ok(c) = MetaCommand::decode(data) {
        let once = c.encode();
        assert_eq!(MetaCommand::decode(&once).expect("round trip").encode(), once);
    }
    if let Ok(op) = decode_command(data) {
        let once = encode_command(&op);
        assert_eq!(encode_command(&decode_command(&once).expect("round trip")), once);
    }
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
