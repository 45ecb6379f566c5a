//! Writes the seed corpora of the byte-level fuzz targets into `fuzz/seeds/<target>/`.
//!
//! Random bytes rarely decode as a valid message, command or CRDT state, so libFuzzer would spend
//! its first minutes rediscovering the encodings. These seeds are real encodings of every variant,
//! produced by the same encoders the system uses, so mutation starts from valid shapes.
//! Structured targets (`arbitrary` input) need no generator: their seeds are a minimized corpus
//! of a short fuzzing run (`.ci/fuzz.sh` documents how). Run:
//! `cargo run --example seeds` from `fuzz/`.
use std::fs;
use std::path::Path;
use vecraft_core::causality::VectorClock;
use vecraft_core::crdt::{GCounter, OrSet, PnCounter};
use vecraft_core::quorum::{JointQuorum, MajorityQuorum};
use vecraft_core::raft::{
    ClientError, ClientResponse, ClientSessions, ConfChange, ConfChangeStep, ConfEntry, ConfTransition, Entry,
    EntryPayload, HardState, Membership, Message, MessageBody, PersistRecord, RejectHint, SessionCommand,
    SessionConfig, SessionRequest, SnapshotMeta, SnapshotRecord,
};
use vecraft_core::vector::collection::{CollectionConfig, Distance, PointSelector, PointsOp};
use vecraft_core::vector::engine::Command;
use vecraft_core::vector::payload::{Payload, PayloadValue};
use vecraft_core::vector::point::{PointId, PointStruct};
use vecraft_core::wire;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    fs::create_dir_all(&dir).expect("create seed dir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn messages() -> Vec<Message> {
    let entry = |i, t, p: &[u8]| Entry { index: i, term: t, payload: EntryPayload::Command(p.to_vec().into()) };
    let bodies = vec![
        MessageBody::PreVote { last_index: 3, last_term: 2 },
        MessageBody::PreVoteResponse { granted: true },
        MessageBody::Vote { last_index: 3, last_term: 2, transfer: true },
        MessageBody::VoteResponse { granted: false },
        MessageBody::Append {
            prev_index: 1,
            prev_term: 1,
            entries: vec![Entry { index: 2, term: 2, payload: EntryPayload::Noop }, entry(3, 2, b"cmd")],
            commit: 2,
            round: 7,
        },
        MessageBody::AppendResponse {
            success: false,
            match_index: 0,
            reject: Some((5, RejectHint { conflict_term: Some(2), conflict_index: 3 })),
            round: 7,
            reset: true,
        },
        MessageBody::TimeoutNow,
        MessageBody::InstallSnapshot {
            meta: snapshot_meta(),
            offset: 8,
            data: b"chunk-two".to_vec().into(),
            last: false,
            commit: 9,
        },
        MessageBody::InstallSnapshotResponse { index: 12, next_offset: 17, done: false, restart: true },
        MessageBody::Append { prev_index: 12, prev_term: 3, entries: vec![conf_entry_at(13)], commit: 12, round: 8 },
    ];
    bodies.into_iter().map(|body| Message { group: 1, from: 2, to: 1, term: 3, body }).collect()
}

/// A joint membership (voters 1, 2, 4 replacing 1, 2, 3, node 3 staying as a learner): every
/// field of `Membership` non-empty.
fn joint_membership() -> Membership {
    Membership {
        voters: JointQuorum { incoming: MajorityQuorum::new([1, 2, 4]), outgoing: MajorityQuorum::new([1, 2, 3]) },
        learners: [5].into_iter().collect(),
        learners_next: [3].into_iter().collect(),
        auto_leave: true,
    }
}

fn snapshot_meta() -> SnapshotMeta {
    SnapshotMeta::for_bytes(12, 3, joint_membership(), b"snapshot bytes of index 12")
}

fn conf_change() -> ConfChange {
    ConfChange {
        steps: vec![ConfChangeStep::AddVoter(4), ConfChangeStep::AddLearner(3), ConfChangeStep::Remove(6)],
        transition: ConfTransition::JointAutoLeave,
    }
}

fn conf_entry_at(index: u64) -> Entry {
    let conf = ConfEntry { change: conf_change(), membership: joint_membership() };
    Entry { index, term: 3, payload: EntryPayload::ConfChange(Box::new(conf)) }
}

fn session_requests() -> Vec<SessionRequest<u64>> {
    let cmd = |session, seq, lowest_unacked, command| {
        SessionRequest::Command(SessionCommand { session, seq, lowest_unacked, command })
    };
    // Register (session 1), apply, retry (a duplicate), pipeline, acknowledge, a late copy,
    // a second session, a command of an unknown session.
    vec![
        SessionRequest::Register,
        cmd(1, 1, 1, 10),
        cmd(1, 1, 1, 10),
        cmd(1, 2, 1, 20),
        cmd(1, 3, 3, 30),
        cmd(1, 1, 1, 10),
        SessionRequest::Register,
        cmd(7, 1, 1, 70),
        cmd(9, 1, 1, 90),
    ]
}

fn commands() -> Vec<Command> {
    let point = |id, v: Vec<f32>| {
        let mut payload = Payload::new();
        payload.insert("color".into(), PayloadValue::Str("red".into()));
        payload.insert("n".into(), PayloadValue::Int(id as i64));
        PointStruct { id: PointId::Num(id), vector: v, payload }
    };
    let mut keys = Payload::new();
    keys.insert("n".into(), PayloadValue::Float(1.5));
    vec![
        Command::CreateCollection { name: "c".into(), config: CollectionConfig::new(2, Distance::Euclid) },
        Command::Points { collection: "a".into(), op: PointsOp::Upsert(vec![point(1, vec![1.0, 2.0]), point(2, vec![0.5, -1.0])]) },
        Command::Points { collection: "b".into(), op: PointsOp::Upsert(vec![point(3, vec![1.0, 0.0, 1.0])]) },
        Command::Points { collection: "a".into(), op: PointsOp::SetPayload { selector: PointSelector::Ids(vec![PointId::Num(1)]), payload: keys.clone() } },
        Command::Points { collection: "a".into(), op: PointsOp::OverwritePayload { selector: PointSelector::Ids(vec![PointId::Num(2)]), payload: keys } },
        Command::Points { collection: "a".into(), op: PointsOp::DeletePayloadKeys { selector: PointSelector::Ids(vec![PointId::Num(1)]), keys: vec!["color".into()] } },
        Command::Points { collection: "a".into(), op: PointsOp::Delete(PointSelector::Ids(vec![PointId::Num(2), PointId::Uuid(7)])) },
        Command::DeleteCollection { name: "b".into() },
    ]
}

fn main() {
    for (k, m) in messages().iter().enumerate() {
        write("wire_decode", &format!("message-{k}"), &wire::encode(m).expect("encodes"));
    }
    let record = PersistRecord {
        group: 1,
        hard_state: Some(HardState { term: 2, vote: Some(1) }),
        entries: vec![Entry { index: 1, term: 2, payload: EntryPayload::Command(b"x".to_vec().into()) }],
        snapshot: None,
    };
    write("wire_decode", "persist-record", &wire::encode(&record).expect("encodes"));
    let snapshot_record = PersistRecord {
        group: 1,
        hard_state: Some(HardState { term: 3, vote: None }),
        entries: vec![conf_entry_at(13)],
        snapshot: Some(SnapshotRecord { meta: snapshot_meta(), log_base: 11, log_base_term: 3, reset: false }),
    };
    write("wire_decode", "persist-record-snapshot", &wire::encode(&snapshot_record).expect("encodes"));
    write("wire_decode", "snapshot-meta", &wire::encode(&snapshot_meta()).expect("encodes"));
    write("wire_decode", "conf-change", &wire::encode(&conf_change()).expect("encodes"));
    write("wire_decode", "conf-entry", &wire::encode(&ConfEntry { change: conf_change(), membership: joint_membership() }).expect("encodes"));
    let requests: Vec<SessionRequest<Vec<u8>>> = session_requests()
        .into_iter()
        .map(|r| match r {
            SessionRequest::Register => SessionRequest::Register,
            SessionRequest::Command(c) => SessionRequest::Command(SessionCommand {
                session: c.session,
                seq: c.seq,
                lowest_unacked: c.lowest_unacked,
                command: c.command.to_le_bytes().to_vec(),
            }),
        })
        .collect();
    write("wire_decode", "session-request", &wire::encode(&requests[1]).expect("encodes"));
    let mut sessions = ClientSessions::<Vec<u8>>::new(SessionConfig { capacity: 2, max_responses_per_session: 3 });
    for (k, r) in requests.iter().enumerate() {
        sessions.apply(k as u64 + 1, r, |c| c.clone());
    }
    write("wire_decode", "client-sessions", &wire::encode(&sessions).expect("encodes"));

    // session_apply input: capacity, window, then (length u8, wire-encoded request) frames.
    let mut frames = vec![2u8, 3];
    for r in session_requests() {
        let bytes = wire::encode(&r).expect("encodes");
        frames.push(bytes.len() as u8);
        frames.extend_from_slice(&bytes);
    }
    write("session_apply", "register-retry-ack", &frames);
    let response = ClientResponse { id: 9, result: Err(ClientError::NotLeader { leader: Some(2) }) };
    write("wire_decode", "client-response", &wire::encode(&response).expect("encodes"));

    // engine_command input: a sequence of (length u8, wire-encoded command).
    let mut all = Vec::new();
    for (k, c) in commands().iter().enumerate() {
        let bytes = wire::encode(c).expect("encodes");
        assert!(bytes.len() < 256, "seed commands fit a one-byte length");
        let framed = [&[bytes.len() as u8][..], &bytes].concat();
        write("engine_command", &format!("command-{k}"), &framed);
        all.extend_from_slice(&framed);
    }
    write("engine_command", "all-commands", &all);

    // crdt_decode input: a type selector byte (see the target), then a postcard state.
    let clock: VectorClock = [(1, 3), (2, 9)].into_iter().collect();
    write("crdt_decode", "vector-clock", &[&[0u8][..], &postcard::to_stdvec(&clock).expect("encodes")].concat());
    let mut g = GCounter::default();
    g.increment(1, 5);
    g.increment(2, 7);
    write("crdt_decode", "gcounter", &[&[3u8][..], &postcard::to_stdvec(&g).expect("encodes")].concat());
    let mut p = PnCounter::default();
    p.add(1, -3);
    write("crdt_decode", "pncounter", &[&[4u8][..], &postcard::to_stdvec(&p).expect("encodes")].concat());
    let mut s = OrSet::<u8>::default();
    s.add(1, 4);
    s.add(2, 5);
    s.remove(&4);
    let set = postcard::to_stdvec(&s).expect("encodes");
    write("crdt_decode", "orset", &[&[6u8][..], &set].concat());
    write("crdt_decode", "orset-pair", &[&[12u8][..], &set, &set].concat());

    // history_parse input: JSON-lines histories (the module documentation's example and edges).
    let history = concat!(
        r#"{"client":3,"kind":"invoke","op":"write","key":7,"value":42,"time":1234567}"#, "\n",
        r#"{"client":1,"kind":"invoke","op":"read","key":7,"value":null,"time":1234600}"#, "\n",
        r#"{"client":3,"kind":"ok","op":"write","key":7,"value":42,"time":1300000}"#, "\n",
        r#"{"client":1,"kind":"ok","op":"read","key":7,"value":42,"time":1300010}"#, "\n",
        r#"{"client":2,"kind":"invoke","op":"cas","key":7,"value":[42,43],"time":1400000}"#, "\n",
        r#"{"client":2,"kind":"fail","op":"cas","key":7,"value":[42,43],"time":1500000}"#, "\n",
        r#"{"client":4,"kind":"invoke","op":"cas","key":1,"value":[null,1],"time":1500001}"#, "\n",
        r#"{"client":4,"kind":"info","op":"cas","key":1,"value":[null,1],"time":1600000}"#, "\n",
    );
    write("history_parse", "example", history.as_bytes());
}
