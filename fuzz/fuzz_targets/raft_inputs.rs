//! One Raft node (id 1 of voters 1, 2, 3) driven by an arbitrary sequence of inputs, with its
//! safety invariants checked after every step.
//!
//! Why structured: a node fed random bytes never becomes leader (2.8M runs, zero leaderships),
//! so replication, append responses and reads went unfuzzed. Here an optional first phase elects
//! the node honestly (tick past the election timeout, grant its pre-vote and vote, acknowledge its
//! writes); then the fuzzer picks messages whose terms are mostly relative to the node's own term
//! and answers that echo what the node actually sent, so they are accepted and move state.
//! The driver half (persist acks, applied reports) is kept honest: the node's contract is only
//! promised for drivers that acknowledge what was written and apply what was handed out.
//!
//! Snapshots, membership changes: the node is configured to ask for a snapshot every few applied
//! entries and to stream snapshots in small chunks, so compaction, `InstallSnapshot` in both
//! directions and log bases above zero happen within a short input. The driver half answers
//! `TakeSnapshot`, `ReadSnapshotChunk` and `InstallSnapshot` honestly (the bytes it stored, their
//! real checksum) or with the failures a driver may report (snapshot gone, install rejected); the
//! peers' half sends chunks whose offsets and `last` flags are chosen relative to what the node
//! acknowledged, sometimes wrong, for snapshots whose index sits relative to the node's commit.
//! Configuration changes are proposed from valid presets and from arbitrary steps (mostly
//! invalid). Checked besides `NodeWatch`: the node stages chunks strictly in order and asks to
//! install only a fully staged snapshot, reads only snapshots the driver stored, asks for
//! snapshots of applied state only, and its membership always validates.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vecraft_fuzz::raft_check::NodeWatch;
use vecraft_fuzz::stats::Counter;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::quorum::{JointQuorum, MajorityQuorum};
use vecraft_core::raft::{
    ConfChange, ConfChangeStep, ConfTransition, DurableState, Entry, EntryPayload, Membership, Message, MessageBody,
    RaftConfig, RaftInput, RaftNode, RaftOutput, ReadMode, RejectHint, Role, SnapshotMeta,
};

static LEADER: Counter = Counter::new("raft_inputs", "inputs where node 1 was leader");
static COMMITTED: Counter = Counter::new("raft_inputs", "inputs that committed past index 1");
static COMPACTED: Counter = Counter::new("raft_inputs", "inputs where node 1 compacted its log");
static INSTALLED: Counter = Counter::new("raft_inputs", "inputs where node 1 installed a snapshot");
static SENT_CHUNK: Counter = Counter::new("raft_inputs", "inputs where node 1 sent a snapshot chunk");
static RECONFIGURED: Counter = Counter::new("raft_inputs", "inputs where node 1 applied a configuration change");

/// Bytes of snapshot per `InstallSnapshot` chunk: small, so a snapshot of a few dozen bytes
/// takes several chunks and offsets matter.
const CHUNK: u64 = 8;

/// The bytes of the snapshot at (`index`, `term`) of `size` bytes: a pure function, so the driver
/// and the fuzzer's leader agree without storing anything but the header.
fn snapshot_bytes(index: u64, term: u64, size: u64) -> Bytes {
    (0..size).map(|k| (index.wrapping_mul(31) ^ term.wrapping_mul(7)).wrapping_add(k) as u8).collect::<Vec<u8>>().into()
}

/// A term chosen relative to the node's current term, so most messages are neither stale nor
/// from a far future that merely resets the node.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum TermSel {
    Current,
    Previous,
    Next,
    Absolute(u8),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Tick(u16),
    /// Acknowledge the writes up to `back` before the newest one.
    Persisted { back: u8 },
    /// Report applied up to `back` before the newest apply handed out.
    Applied { back: u8 },
    Propose(u8),
    Read { lease: bool },
    Transfer { to: u8 },
    /// Answer the newest append the node sent to `peer` as that peer would.
    EchoAppend { peer: u8, success: bool, reset: bool },
    PreVote { from: u8, term: TermSel, last_index: u8, last_term: TermSel },
    Vote { from: u8, term: TermSel, last_index: u8, last_term: TermSel, transfer: bool },
    VoteResponse { from: u8, term: TermSel, granted: bool },
    PreVoteResponse { from: u8, term: TermSel, granted: bool },
    Append { from: u8, term: TermSel, prev_index: u8, prev_term: TermSel, entries: Vec<(TermSel, u8)>, commit: u8, round: u8 },
    AppendResponse { from: u8, term: TermSel, success: bool, match_back: u8, reject: Option<(u8, Option<TermSel>, u8)>, round: u8, reset: bool, applied_back: u8 },
    TimeoutNow { from: u8, term: TermSel },
    /// A message for another group: must be ignored.
    WrongGroup { term: TermSel },
    /// Answer the outstanding `TakeSnapshot` (if any).
    TakeSnapshot { answer: TakeAnswer, size: u8 },
    /// Answer one outstanding `ReadSnapshotChunk` (if any).
    ServeChunk { pick: u8, answer: ChunkAnswer },
    /// Answer the newest `InstallSnapshot` chunk the node (as leader) sent to a peer.
    SnapshotAck { peer: u8, term: TermSel, ack: SnapshotAck },
    /// A peer (as leader) sends node 1 a chunk of a snapshot; `fresh` starts a new transfer.
    Chunk {
        from: u8,
        term: TermSel,
        fresh: Option<SnapSpec>,
        offset: OffsetSel,
        /// Chunk length; `None` is a whole chunk.
        len: Option<u8>,
        flip_last: bool,
        corrupt: bool,
        commit: u8,
    },
    /// Answer the outstanding `InstallSnapshot` (if any).
    Install(InstallAnswer),
    /// A configuration change from a list of usual changes (mostly valid in some state).
    ConfPreset(u8),
    /// A configuration change of arbitrary steps (mostly invalid).
    ConfArbitrary { steps: Vec<(StepKind, u8)>, transition: u8 },
    /// One healthy round trip: every write acknowledged, every peer's newest append answered with
    /// success, everything handed out applied. Commits (and so compaction) are rare without it:
    /// the pieces must otherwise line up by chance.
    Settle,
    /// A peer answers node 1's newest append saying it lost its log (a damaged disk): its next
    /// entry may be compacted away, which is what makes a leader stream a snapshot.
    Lagging { peer: u8 },
    /// A peer (as leader) streams a whole snapshot: fresh transfer, every chunk at the offset
    /// node 1 acknowledged, until it stops making progress (the install answer is a separate step).
    SendSnapshot { from: u8, term: TermSel, spec: SnapSpec, commit: u8 },
}

/// How the driver answers `TakeSnapshot`.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum TakeAnswer {
    /// A snapshot of the applied state, with the applied membership.
    Honest,
    /// A header whose term does not match the log (must be ignored).
    WrongTerm,
    /// A header beyond the applied index (must be ignored: the state machine cannot hold it).
    BeyondApplied,
    /// Never answer (the request stays outstanding).
    Ignore,
}

/// How the driver answers `ReadSnapshotChunk`.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum ChunkAnswer {
    Honest,
    /// The driver no longer holds the snapshot.
    Gone,
    /// A chunk of the wrong length (a broken driver: the transfer must stop, not send it).
    Short,
    /// A chunk for a snapshot index the transfer is not about.
    OtherIndex,
}

/// How a peer answers a snapshot chunk it got from node 1.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum SnapshotAck {
    /// Staged: expects the next offset.
    Next,
    /// Installed (or already held): holds the log up to the snapshot.
    Done,
    /// Lost its staging: restart from this offset (clamped by the node).
    Restart(u8),
    /// A duplicate answer for the chunk's own offset.
    Stale,
}

/// Which snapshot a fresh inbound transfer carries.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct SnapSpec {
    index: IndexSel,
    term: TermSel,
    membership: u8,
    size: u8,
}

/// A snapshot index relative to the node's commit index.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum IndexSel {
    Ahead(u8),
    /// At or below the commit index: stale, acknowledged without install.
    Behind(u8),
    /// The node's last log index (the keep-the-suffix path when terms agree).
    LastIndex,
    Absolute(u8),
}

/// Where an inbound chunk starts.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum OffsetSel {
    /// Where the node said it expects the next chunk.
    Acked,
    Zero,
    /// Behind the acknowledged offset (a duplicate).
    AckedMinus(u8),
    Absolute(u8),
}

/// How the driver answers `InstallSnapshot`.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum InstallAnswer {
    /// Verify the staged bytes against the header; install if they verify, reject otherwise.
    Honest,
    /// Reject whatever was staged (decoding failed).
    Reject,
    /// Report an install of a header the node did not ask for (must be ignored).
    Confused,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum StepKind {
    AddVoter,
    AddLearner,
    Remove,
}

#[derive(Arbitrary, Debug)]
struct Input {
    elect: bool,
    steps: Vec<Step>,
}

/// The peers node 1 may replicate to: the initial voters 2 and 3, and 4 and 5, which
/// configuration changes may add.
const PEERS: [NodeId; 4] = [2, 3, 4, 5];

/// Node 1 plus the honest half of its driver: pending writes, the newest append and snapshot chunk
/// per peer, and the snapshot store, staging area and requests of the driver.
struct Harness {
    node: RaftNode,
    now: Time,
    watch: NodeWatch,
    last_seq: u64,
    last_append: [Option<Message>; 4],
    last_chunk: [Option<Message>; 4],
    next_id: u64,
    /// Headers of the snapshots the driver stored (taken or installed); bytes follow from them.
    stored: BTreeMap<u64, SnapshotMeta>,
    /// The index of an outstanding `TakeSnapshot`.
    take_asked: Option<u64>,
    /// Outstanding `ReadSnapshotChunk`s: follower, header, offset, length.
    chunk_reads: Vec<(NodeId, SnapshotMeta, u64, u64)>,
    /// The staging copy: header and the bytes staged so far.
    staged: Option<(SnapshotMeta, Vec<u8>)>,
    /// An outstanding `InstallSnapshot`.
    install_asked: Option<SnapshotMeta>,
    /// The snapshot the fuzzer's leader is sending node 1, and the offset node 1 last asked for.
    inbound: Option<SnapshotMeta>,
    inbound_acked: u64,
    /// Configuration entries node 1 applied (seen as `Apply` of a `ConfChange` payload).
    conf_applied: u64,
}

impl Harness {
    fn step(&mut self, input: RaftInput) {
        let mut out = Vec::new();
        self.node.step(self.now, input, &mut out);
        self.watch.observe(&self.node, &out);
        self.take_outputs(&out);
    }

    /// Records what the node asked of its driver and sent to its peers, and checks the parts of
    /// the snapshot contract only the driver can see.
    fn take_outputs(&mut self, out: &[RaftOutput]) {
        for o in out {
            match o {
                RaftOutput::Persist { seq, .. } => self.last_seq = *seq,
                RaftOutput::Send(m) => {
                    let Some(k) = PEERS.iter().position(|&p| p == m.to) else { continue };
                    match &m.body {
                        MessageBody::Append { .. } => self.last_append[k] = Some(m.clone()),
                        MessageBody::InstallSnapshot { .. } => self.last_chunk[k] = Some(m.clone()),
                        MessageBody::InstallSnapshotResponse { index, next_offset, .. } => {
                            if self.inbound.as_ref().is_some_and(|s| s.index == *index) {
                                self.inbound_acked = *next_offset;
                            }
                        }
                        _ => {}
                    }
                }
                RaftOutput::Apply { entry, .. } => {
                    if matches!(entry.payload, EntryPayload::ConfChange(_)) {
                        self.conf_applied += 1;
                    }
                }
                RaftOutput::TakeSnapshot { index } => {
                    assert!(*index <= self.node.applied_index(), "snapshot asked at {index} beyond applied {}", self.node.applied_index());
                    self.take_asked = Some(*index);
                }
                RaftOutput::ReadSnapshotChunk { to, meta, offset, len } => {
                    assert_eq!(self.stored.get(&meta.index), Some(meta), "asked to read a snapshot the driver never stored");
                    assert!(offset.checked_add(*len).is_some_and(|e| e <= meta.size), "chunk {offset}+{len} beyond size {}", meta.size);
                    self.chunk_reads.push((*to, meta.clone(), *offset, *len));
                }
                RaftOutput::StageSnapshotChunk { meta, offset, data } => {
                    if *offset == 0 {
                        self.staged = Some((meta.clone(), data.to_vec()));
                    } else {
                        let staged = self.staged.as_mut().filter(|(m, b)| m == meta && b.len() as u64 == *offset);
                        let Some((_, bytes)) = staged else {
                            panic!("chunk at {offset} staged out of order (staging holds {:?})", self.staged.as_ref().map(|(m, b)| (m.index, b.len())));
                        };
                        bytes.extend_from_slice(data);
                    }
                }
                RaftOutput::InstallSnapshot { meta } => {
                    let full = self.staged.as_ref().is_some_and(|(m, b)| m == meta && b.len() as u64 == meta.size);
                    assert!(full, "install of snapshot {} asked before all of it was staged", meta.index);
                    self.install_asked = Some(meta.clone());
                }
                _ => {}
            }
        }
    }

    fn term(&self, sel: TermSel) -> u64 {
        let t = self.node.term();
        match sel {
            TermSel::Current => t,
            TermSel::Previous => t.saturating_sub(1),
            TermSel::Next => t + 1,
            TermSel::Absolute(a) => a as u64,
        }
    }

    fn msg(&self, from: u8, term: TermSel, body: MessageBody) -> RaftInput {
        // Mostly the real peers; sometimes itself or a stranger (both must be harmless).
        let from = [2, 3, 2, 3, 4, 5, 1, 6][from as usize % 8];
        RaftInput::Message(Message { group: 1, from, to: 1, term: self.term(term), body })
    }

    fn ack_all(&mut self) {
        if self.last_seq > 0 {
            self.step(RaftInput::Persisted { seq: self.last_seq });
        }
    }

    /// The answer peer `PEERS[k]` would give to the newest append node 1 sent it.
    fn echo_append(&self, k: usize, success: bool, reset: bool) -> Option<RaftInput> {
        let sent = self.last_append[k].clone()?;
        let MessageBody::Append { prev_index, entries, round, .. } = sent.body else { return None };
        let last = prev_index + entries.len() as u64;
        let body = if success {
            MessageBody::AppendResponse { success: true, match_index: last, reject: None, round, reset: false, applied: last }
        } else {
            let hint = RejectHint { conflict_term: None, conflict_index: prev_index.saturating_sub(1) + 1 };
            MessageBody::AppendResponse { success: false, match_index: 0, reject: Some((prev_index, hint)), round, reset, applied: 0 }
        };
        Some(RaftInput::Message(Message { group: 1, from: sent.to, to: 1, term: sent.term, body }))
    }

    /// Elects node 1 the way a healthy cluster would; returns whether it became leader.
    fn elect(&mut self) -> bool {
        for _ in 0..4 {
            self.now = self.now + Duration::from_millis(700);
            let mut out = Vec::new();
            self.node.step(self.now, RaftInput::Tick, &mut out);
            self.watch.observe(&self.node, &out);
            self.take_outputs(&out);
            let mut pending = out;
            for _ in 0..8 {
                let mut replies = Vec::new();
                for o in pending.drain(..) {
                    match o {
                        RaftOutput::Persist { seq, .. } => self.last_seq = seq,
                        RaftOutput::Send(m) => match m.body {
                            MessageBody::PreVote { .. } if m.to == 2 => replies
                                .push(Message { group: 1, from: 2, to: 1, term: m.term, body: MessageBody::PreVoteResponse { granted: true } }),
                            MessageBody::Vote { .. } if m.to == 2 => replies
                                .push(Message { group: 1, from: 2, to: 1, term: m.term, body: MessageBody::VoteResponse { granted: true } }),
                            _ => {}
                        },
                        _ => {}
                    }
                }
                if self.last_seq > 0 {
                    self.node.step(self.now, RaftInput::Persisted { seq: self.last_seq }, &mut pending);
                    self.watch.observe(&self.node, &pending);
                    self.take_outputs(&pending);
                }
                for r in replies {
                    let mut out = Vec::new();
                    self.node.step(self.now, RaftInput::Message(r), &mut out);
                    self.watch.observe(&self.node, &out);
                    self.take_outputs(&out);
                    pending.extend(out);
                }
                if pending.is_empty() {
                    break;
                }
            }
            if self.node.role() == Role::Leader {
                self.ack_all();
                return true;
            }
        }
        false
    }

    fn run(&mut self, step: Step) {
        let input = match step {
            Step::Tick(ms) => {
                self.now = self.now + Duration::from_millis(ms as u64);
                RaftInput::Tick
            }
            Step::Persisted { back } => {
                if self.last_seq == 0 {
                    return;
                }
                RaftInput::Persisted { seq: self.last_seq.saturating_sub(back as u64 % 4).max(1) }
            }
            Step::Applied { back } => {
                let lo = self.node.applied_index();
                let hi = self.node.apply_sent_index();
                RaftInput::Applied { index: hi.saturating_sub(back as u64 % 4).max(lo) }
            }
            Step::Propose(b) => {
                self.next_id += 1;
                RaftInput::Propose { id: self.next_id, command: vec![b; b as usize % 5].into() }
            }
            Step::Read { lease } => {
                self.next_id += 1;
                RaftInput::Read { id: self.next_id, mode: if lease { ReadMode::Lease } else { ReadMode::ReadIndex } }
            }
            Step::Transfer { to } => RaftInput::TransferLeadership { to: to as u64 % 5 },
            Step::EchoAppend { peer, success, reset } => {
                let Some(input) = self.echo_append(peer as usize % PEERS.len(), success, reset) else { return };
                input
            }
            Step::Lagging { peer } => {
                let Some(sent) = self.last_append[peer as usize % PEERS.len()].clone() else { return };
                let MessageBody::Append { prev_index, round, .. } = sent.body else { return };
                // `reset`: the peer lost its disk, so even a match index it acknowledged is gone
                // (otherwise the leader never moves its next index below the match).
                let hint = RejectHint { conflict_term: None, conflict_index: 1 };
                let body = MessageBody::AppendResponse { success: false, match_index: 0, reject: Some((prev_index, hint)), round, reset: true, applied: 0 };
                RaftInput::Message(Message { group: 1, from: sent.to, to: 1, term: sent.term, body })
            }
            Step::SendSnapshot { from, term, spec, commit } => {
                let mut first = Some(spec);
                for _ in 0..8 {
                    // A fresh transfer starts from offset 0 whatever the previous one reached.
                    let before = if first.is_some() { 0 } else { self.inbound_acked };
                    let chunk = Step::Chunk {
                        from,
                        term,
                        fresh: first.take(),
                        offset: OffsetSel::Acked,
                        len: None,
                        flip_last: false,
                        corrupt: false,
                        commit,
                    };
                    self.run(chunk);
                    if self.inbound_acked <= before || self.install_asked.is_some() {
                        break;
                    }
                }
                return;
            }
            Step::Settle => {
                self.ack_all();
                for k in 0..PEERS.len() {
                    if let Some(input) = self.echo_append(k, true, false) {
                        self.step(input);
                    }
                }
                self.ack_all();
                RaftInput::Applied { index: self.node.apply_sent_index() }
            }
            Step::PreVote { from, term, last_index, last_term } => {
                let body = MessageBody::PreVote { last_index: last_index as u64, last_term: self.term(last_term) };
                self.msg(from, term, body)
            }
            Step::Vote { from, term, last_index, last_term, transfer } => {
                let body = MessageBody::Vote { last_index: last_index as u64, last_term: self.term(last_term), transfer };
                self.msg(from, term, body)
            }
            Step::VoteResponse { from, term, granted } => self.msg(from, term, MessageBody::VoteResponse { granted }),
            Step::PreVoteResponse { from, term, granted } => self.msg(from, term, MessageBody::PreVoteResponse { granted }),
            Step::Append { from, term, prev_index, prev_term, entries, commit, round } => {
                let first = prev_index as u64 + 1;
                let entries = entries
                    .into_iter()
                    .take(8)
                    .enumerate()
                    .map(|(k, (t, b))| Entry {
                        index: first + k as u64,
                        term: self.term(t),
                        payload: if b == 0 { EntryPayload::Noop } else { EntryPayload::Command(vec![b].into()) },
                    })
                    .collect();
                let body = MessageBody::Append {
                    prev_index: prev_index as u64,
                    prev_term: self.term(prev_term),
                    entries,
                    commit: commit as u64,
                    round: round as u64,
                };
                self.msg(from, term, body)
            }
            Step::AppendResponse { from, term, success, match_back, reject, round, reset, applied_back } => {
                let reject = reject.map(|(p, t, i)| {
                    let hint = RejectHint { conflict_term: t.map(|t| self.term(t)), conflict_index: i as u64 };
                    (p as u64, hint)
                });
                let match_index = self.node.log().last_index().saturating_sub(match_back as u64);
                let applied = match_index.saturating_sub(applied_back as u64);
                let body = MessageBody::AppendResponse { success, match_index, reject, round: round as u64, reset, applied };
                self.msg(from, term, body)
            }
            Step::TimeoutNow { from, term } => self.msg(from, term, MessageBody::TimeoutNow),
            Step::WrongGroup { term } => {
                let body = MessageBody::Append { prev_index: 0, prev_term: 0, entries: vec![], commit: 200, round: 1 };
                RaftInput::Message(Message { group: 2, from: 2, to: 1, term: self.term(term), body })
            }
            Step::TakeSnapshot { answer, size } => {
                let Some(asked) = self.take_asked else { return };
                let applied = self.node.applied_index();
                let (index, term) = match answer {
                    TakeAnswer::Honest => (applied, self.node.log().term_at(applied)),
                    TakeAnswer::WrongTerm => (applied, self.node.log().term_at(applied).map(|t| t + 1)),
                    TakeAnswer::BeyondApplied => (applied + 1, self.node.log().term_at(applied + 1)),
                    TakeAnswer::Ignore => return,
                };
                self.take_asked = None;
                let Some(term) = term else { return };
                debug_assert!(asked <= applied);
                let size = size as u64 % 40;
                let meta = SnapshotMeta::for_bytes(index, term, self.node.applied_membership(), &snapshot_bytes(index, term, size));
                if matches!(answer, TakeAnswer::Honest) {
                    self.stored.insert(index, meta.clone());
                }
                RaftInput::SnapshotTaken { meta }
            }
            Step::ServeChunk { pick, answer } => {
                if self.chunk_reads.is_empty() {
                    return;
                }
                let (to, meta, offset, len) = self.chunk_reads.remove(pick as usize % self.chunk_reads.len());
                let bytes = snapshot_bytes(meta.index, meta.term, meta.size);
                let chunk = bytes.slice(offset as usize..(offset + len) as usize);
                let (index, data) = match answer {
                    ChunkAnswer::Honest => (meta.index, Some(chunk)),
                    ChunkAnswer::Gone => (meta.index, None),
                    ChunkAnswer::Short => (meta.index, Some(chunk.slice(..chunk.len().saturating_sub(1)))),
                    ChunkAnswer::OtherIndex => (meta.index + 1, Some(chunk)),
                };
                RaftInput::SnapshotChunk { to, index, offset, data }
            }
            Step::SnapshotAck { peer, term, ack } => {
                let Some(sent) = self.last_chunk[peer as usize % PEERS.len()].clone() else { return };
                let MessageBody::InstallSnapshot { meta, offset, data, .. } = sent.body else { return };
                let end = offset + data.len() as u64;
                let (next_offset, done, restart) = match ack {
                    SnapshotAck::Next => (end, false, false),
                    SnapshotAck::Done => (meta.size, true, false),
                    SnapshotAck::Restart(o) => (o as u64, false, true),
                    SnapshotAck::Stale => (offset, false, false),
                };
                let body = MessageBody::InstallSnapshotResponse { index: meta.index, next_offset, done, restart };
                let term = match term {
                    TermSel::Current => sent.term,
                    other => self.term(other),
                };
                RaftInput::Message(Message { group: 1, from: sent.to, to: 1, term, body })
            }
            Step::Chunk { from, term, fresh, offset, len, flip_last, corrupt, commit } => {
                if fresh.is_some() || self.inbound.is_none() {
                    let spec = fresh.unwrap_or(SnapSpec { index: IndexSel::Ahead(0), term: TermSel::Current, membership: 0, size: 20 });
                    let c = self.node.commit_index();
                    let index = match spec.index {
                        IndexSel::Ahead(k) => c + 1 + k as u64 % 8,
                        IndexSel::Behind(k) => c.saturating_sub(k as u64 % 4),
                        IndexSel::LastIndex => self.node.log().last_index(),
                        IndexSel::Absolute(a) => a as u64,
                    };
                    let term = match spec.index {
                        // Agreeing with the log at that index exercises the keep-the-suffix path.
                        IndexSel::LastIndex => self.node.log().last_term(),
                        _ => self.term(spec.term),
                    };
                    let size = spec.size as u64 % 48;
                    let meta = SnapshotMeta::for_bytes(index, term, membership(spec.membership), &snapshot_bytes(index, term, size));
                    self.inbound = Some(meta);
                    self.inbound_acked = 0;
                }
                let Some(meta) = self.inbound.clone() else { return };
                let offset = match offset {
                    OffsetSel::Acked => self.inbound_acked,
                    OffsetSel::Zero => 0,
                    OffsetSel::AckedMinus(k) => self.inbound_acked.saturating_sub(k as u64 % 12),
                    OffsetSel::Absolute(a) => a as u64,
                };
                let bytes = snapshot_bytes(meta.index, meta.term, meta.size);
                let start = offset.min(meta.size);
                let end = (start + len.map_or(CHUNK, |l| l as u64 % (CHUNK + 1))).min(meta.size);
                let mut data = bytes[start as usize..end as usize].to_vec();
                if corrupt && let Some(b) = data.first_mut() {
                    *b ^= 0x5a;
                }
                // The honest flag says whether the chunk ends the snapshot; an offset beyond the
                // snapshot still claims its own start, which the node must refuse.
                let last = (offset + data.len() as u64 == meta.size) != flip_last;
                let body = MessageBody::InstallSnapshot { meta, offset, data: data.into(), last, commit: commit as u64 };
                self.msg(from, term, body)
            }
            Step::Install(answer) => {
                let Some(meta) = self.install_asked.clone() else { return };
                match answer {
                    InstallAnswer::Honest => {
                        self.install_asked = None;
                        let staged = self.staged.take().filter(|(m, _)| *m == meta);
                        let ok = staged.is_some_and(|(_, b)| meta.verify(&b).is_ok());
                        if ok {
                            self.stored.insert(meta.index, meta.clone());
                            let installed = self.node.snapshot_stats().installed;
                            self.step(RaftInput::SnapshotInstalled { meta: meta.clone() });
                            if self.node.snapshot_stats().installed > installed {
                                // Raft's state follows the install: the log starts right after the
                                // snapshot and commit and applied cover it.
                                let n = &self.node;
                                assert_eq!(n.log().base_index(), meta.index, "log base after install");
                                assert_eq!(n.log().base_term(), meta.term, "log base term after install");
                                assert!(n.commit_index() >= meta.index && n.applied_index() >= meta.index, "install below commit/applied");
                                assert_eq!(n.snapshot_meta(), Some(&meta), "installed snapshot not recorded");
                            }
                            return;
                        } else {
                            RaftInput::SnapshotRejected { meta }
                        }
                    }
                    InstallAnswer::Reject => {
                        self.install_asked = None;
                        self.staged = None;
                        RaftInput::SnapshotRejected { meta }
                    }
                    InstallAnswer::Confused => {
                        let mut other = meta;
                        other.index += 1;
                        RaftInput::SnapshotInstalled { meta: other }
                    }
                }
            }
            Step::ConfPreset(k) => {
                use ConfChangeStep::*;
                let change = match k % 8 {
                    0 => ConfChange::auto([AddLearner(4)]),
                    1 => ConfChange::auto([AddVoter(4)]),
                    2 => ConfChange::auto([Remove(3)]),
                    3 => ConfChange::auto([AddVoter(4), Remove(3)]),
                    4 => ConfChange::leave_joint(),
                    5 => ConfChange { steps: vec![AddLearner(5), AddLearner(3)], transition: ConfTransition::JointExplicit },
                    6 => ConfChange::auto([Remove(1)]),
                    _ => ConfChange { steps: vec![AddLearner(4), AddVoter(4)], transition: ConfTransition::JointAutoLeave },
                };
                self.next_id += 1;
                RaftInput::ProposeConfChange { id: self.next_id, change }
            }
            Step::ConfArbitrary { steps, transition } => {
                let steps = steps
                    .into_iter()
                    .take(6)
                    .map(|(kind, n)| {
                        let id = n as u64 % 7;
                        match kind {
                            StepKind::AddVoter => ConfChangeStep::AddVoter(id),
                            StepKind::AddLearner => ConfChangeStep::AddLearner(id),
                            StepKind::Remove => ConfChangeStep::Remove(id),
                        }
                    })
                    .collect();
                let transition = [ConfTransition::Auto, ConfTransition::JointAutoLeave, ConfTransition::JointExplicit][transition as usize % 3];
                self.next_id += 1;
                RaftInput::ProposeConfChange { id: self.next_id, change: ConfChange { steps, transition } }
            }
        };
        self.step(input);
    }
}

/// Memberships an inbound snapshot may carry: the initial one, grown, shrunk, joint, without
/// node 1, and two invalid ones (the node must refuse the chunk, never adopt them).
fn membership(k: u8) -> Membership {
    let set = |ids: &[NodeId]| ids.iter().copied().collect::<BTreeSet<NodeId>>();
    match k % 7 {
        0 => Membership::simple([1, 2, 3]),
        1 => Membership { learners: set(&[4]), ..Membership::simple([1, 2, 3]) },
        2 => Membership::simple([1, 2]),
        3 => Membership {
            voters: JointQuorum { incoming: MajorityQuorum::new([1, 2, 4]), outgoing: MajorityQuorum::new([1, 2, 3]) },
            learners: BTreeSet::new(),
            learners_next: set(&[3]),
            auto_leave: true,
        },
        4 => Membership::simple([2, 3, 4]),
        5 => Membership { learners: set(&[2]), ..Membership::simple([1, 2, 3]) },
        _ => Membership::default(),
    }
}

fuzz_target!(|input: Input| {
    let mut cfg = RaftConfig::new(1, 1, vec![1, 2, 3], 9);
    cfg.bugs = vecraft_fuzz::inject::injected_bugs();
    // Snapshot often and in small pieces, so short inputs compact, stream and install.
    cfg.snapshot_entries = 3;
    cfg.snapshot_keep_entries = 1;
    cfg.snapshot_chunk_bytes = CHUNK as usize;
    cfg.snapshot_window = 2;
    cfg.max_snapshot_sends = 1;
    let node = RaftNode::new(cfg, DurableState::default(), 0, Time::ZERO);
    let watch = NodeWatch::new(&node);
    let mut h = Harness {
        node,
        now: Time::ZERO,
        watch,
        last_seq: 0,
        last_append: Default::default(),
        last_chunk: Default::default(),
        next_id: 0,
        stored: BTreeMap::new(),
        take_asked: None,
        chunk_reads: Vec::new(),
        staged: None,
        install_asked: None,
        inbound: None,
        inbound_acked: 0,
        conf_applied: 0,
    };
    let mut led = false;
    if input.elect {
        led = h.elect();
        assert!(led, "an honest election of a healthy node must succeed");
    }
    for step in input.steps.into_iter().take(256) {
        h.run(step);
        led |= h.node.role() == Role::Leader;
    }
    if led {
        LEADER.hit();
    }
    if h.node.commit_index() > 1 {
        COMMITTED.hit();
    }
    let stats = h.node.snapshot_stats();
    if stats.taken > 0 {
        COMPACTED.hit();
    }
    if stats.installed > 0 {
        INSTALLED.hit();
    }
    if stats.chunks_sent > 0 {
        SENT_CHUNK.hit();
    }
    if h.conf_applied > 0 {
        RECONFIGURED.hit();
    }
    vecraft_fuzz::stats::input_done(&[&LEADER, &COMMITTED, &COMPACTED, &INSTALLED, &SENT_CHUNK, &RECONFIGURED]);
});
