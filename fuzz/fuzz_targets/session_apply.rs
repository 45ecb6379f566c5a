//! Client sessions (exactly-once application of retried proposals) fed with untrusted log
//! entries: each entry's bytes decode as a `SessionRequest` through `vecraft_core::wire`, as a
//! state machine decodes its applied commands, and go through `ClientSessions::apply` at
//! increasing log indexes.
//!
//! Checked against a model of what was applied: a `(session, seq)` is applied at most once (the
//! point of sessions), a duplicate is answered with the response of the original apply, a
//! registration's id is its index, and the table stays within its capacity and per-session window.
//! Every few entries the table goes through a snapshot round trip (encode, decode, go on with the
//! decoded copy), as a replica restored from a snapshot would, and must be unchanged by it.
//!
//! Input: two bytes (capacity, window), then frames of a length byte and that many bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use vecraft_core::raft::{ClientSessions, SessionConfig, SessionOutcome, SessionRequest};
use vecraft_core::wire;

fuzz_target!(|data: &[u8]| {
    let [capacity, window, rest @ ..] = data else { return };
    let config = SessionConfig { capacity: *capacity as usize % 8, max_responses_per_session: *window as usize % 8 };
    let mut table: ClientSessions<u64> =
        ClientSessions::new(config).with_injected_bugs(vecraft_fuzz::inject::injected_bugs());
    let (cap, win) = (table.config().capacity, table.config().max_responses_per_session);
    // (session, seq) -> the response its one apply produced.
    let mut applied: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut index = 0u64;
    let mut rest = rest;
    while let [len, tail @ ..] = rest {
        let len = (*len as usize).min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        let Ok(request) = wire::decode::<SessionRequest<u64>>(frame) else { continue };
        index += 1;
        // The response names the entry that produced it, so a re-apply cannot answer the same.
        let outcome = table.apply(index, &request, |c| index.wrapping_mul(1 << 20) ^ c);
        match (&request, outcome) {
            (SessionRequest::Register, SessionOutcome::Registered(id)) => assert_eq!(id, index, "session id is its index"),
            (SessionRequest::Command(c), SessionOutcome::Applied(r)) => {
                let first = applied.insert((c.session, c.seq), r);
                assert!(first.is_none(), "session {} seq {} applied twice (at {index})", c.session, c.seq);
                assert!(table.contains(c.session), "applied for a session that is not live");
            }
            (SessionRequest::Command(c), SessionOutcome::Duplicate(r)) => {
                assert_eq!(applied.get(&(c.session, c.seq)), Some(&r), "duplicate answered with another response");
            }
            (SessionRequest::Command(c), SessionOutcome::Expired) => {
                assert!(!table.contains(c.session), "live session {} reported expired", c.session);
            }
            (SessionRequest::Command(_), SessionOutcome::AlreadyAcknowledged | SessionOutcome::WindowFull) => {}
            (request, outcome) => panic!("outcome {outcome:?} for {request:?}"),
        }
        assert!(table.len() <= cap, "{} sessions above capacity {cap}", table.len());
        if let SessionRequest::Command(c) = &request {
            assert!(table.responses_kept(c.session) <= win, "session window above {win}");
        }
        if index % 4 == 0 {
            let bytes = wire::encode(&table).expect("a session table encodes");
            let restored: ClientSessions<u64> = wire::decode(&bytes).expect("an encoded session table decodes");
            assert_eq!(restored.counters(), table.counters());
            assert_eq!(restored.len(), table.len());
            assert_eq!(wire::encode(&restored).expect("encodes"), bytes, "a restored table re-encodes differently");
            // The injected bug is process configuration, not state: keep it across the restore.
            table = restored.with_injected_bugs(vecraft_fuzz::inject::injected_bugs());
        }
    }
});
