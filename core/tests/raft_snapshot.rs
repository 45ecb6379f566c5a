//! Scripted snapshot scenarios: compaction by policy, chunked `InstallSnapshot` (window, resume
//! from the acknowledged offset, heartbeats alongside, concurrency limit), verification, repair of
//! a damaged node, restart from snapshot + WAL, and membership carried by the snapshot.

mod raft_harness;

use raft_harness::*;
use std::time::Duration;
use vecraft_core::contract::{StateMachine, Time};
use vecraft_core::raft::{
    DurableState, LocalReplica, Membership, Message, MessageBody, RaftConfig, RaftInput, ReplicatedStateMachine,
    SnapshotMeta,
};

const HB: Duration = Duration::from_millis(20);

fn propose(id: u64, cmd: &str) -> RaftInput {
    RaftInput::Propose { id, command: cmd.as_bytes().to_vec().into() }
}

/// Snapshot every `entries` applied entries, keeping `keep` behind, `chunk`-byte chunks, a window
/// of `window` chunks and at most `sends` transfers at once.
fn snap_cfg(entries: u64, keep: u64, chunk: usize, window: usize, sends: usize) -> impl Fn(&mut RaftConfig) {
    move |c: &mut RaftConfig| {
        c.snapshot_entries = entries;
        c.snapshot_keep_entries = keep;
        c.snapshot_chunk_bytes = chunk;
        c.snapshot_window = window;
        c.max_snapshot_sends = sends;
    }
}

fn is_snap(m: &Message) -> bool {
    matches!(m.body, MessageBody::InstallSnapshot { .. })
}

fn snap_to(to: u64) -> impl Fn(&Message) -> bool {
    move |m| m.to == to && is_snap(m)
}

fn snap_offsets(msgs: &[Message]) -> Vec<u64> {
    msgs.iter()
        .filter_map(|m| match &m.body {
            MessageBody::InstallSnapshot { offset, .. } => Some(*offset),
            _ => None,
        })
        .collect()
}

/// Proposes `n` commands at leader 1, one at a time, each committed everywhere reachable.
fn propose_n(c: &mut Cluster, from: u64, n: u64) {
    for i in from..from + n {
        c.step(1, propose(i, &format!("c{i}")));
        c.stabilize();
    }
}

/// Acknowledges disks and delivers everything except messages matching `hold`, until only held
/// messages remain.
fn settle_except(c: &mut Cluster, hold: impl Fn(&Message) -> bool) {
    for _ in 0..1_000 {
        let ids: Vec<u64> = c.slots.keys().copied().collect();
        let mut busy = false;
        for id in ids {
            if c.slots[&id].raft.is_some() && !c.slots[&id].unacked.is_empty() {
                busy = true;
                c.ack(id);
            }
        }
        let out = c.deliver(|m| !hold(m));
        if !busy && out.is_empty() && c.net.iter().all(&hold) {
            return;
        }
    }
    panic!("cluster did not settle");
}

/// Heartbeat rounds of leader 1 (everything delivered) until `done` or 20 rounds.
fn rounds_until(c: &mut Cluster, done: impl Fn(&Cluster) -> bool) {
    for _ in 0..20 {
        if done(c) {
            return;
        }
        c.tick(1, HB);
        c.stabilize();
    }
    assert!(done(c), "condition not reached in 20 heartbeat rounds");
}

/// Three nodes, 1 leads; node 3 is cut off while `n` commands commit and the leader compacts.
/// Node 3 is reconnected and the leader's rounds run (holding snapshot chunks) until a transfer
/// to node 3 has started.
fn lagging_follower(tweak: impl Fn(&mut RaftConfig), n: u64) -> Cluster {
    let mut c = Cluster::new(&[1, 2, 3], tweak);
    c.elect(1);
    c.isolated.insert(3);
    propose_n(&mut c, 100, n);
    c.isolated.remove(&3);
    assert!(c.node(1).log().base_index() > c.node(3).log().last_index(), "node 3 fell behind the compacted log");
    for _ in 0..5 {
        c.tick(1, HB);
        settle_except(&mut c, snap_to(3));
        if c.net.iter().any(snap_to(3)) {
            return c;
        }
    }
    panic!("no snapshot transfer started");
}

fn journal(c: &Cluster, id: u64) -> Vec<u64> {
    c.node(id).state_machine().applied.iter().map(|(i, _)| *i).collect()
}

#[test]
fn compaction_triggers_at_exactly_the_entry_threshold() {
    let mut c = Cluster::new(&[1, 2, 3], snap_cfg(5, 2, 64, 4, 2));
    c.elect(1); // the no-op is index 1
    propose_n(&mut c, 100, 3);
    assert_eq!(c.node(1).applied_index(), 4);
    assert_eq!(c.node(1).snapshot_meta(), None, "threshold - 1 entries applied: no snapshot");
    propose_n(&mut c, 200, 1);
    let meta = c.node(1).snapshot_meta().cloned().expect("5 entries applied: snapshot");
    assert_eq!((meta.index, meta.term), (5, 1));
    assert_eq!(meta.membership, Membership::simple([1, 2, 3]));
    let log = c.node(1).log();
    assert_eq!(log.base_index(), 3, "two entries kept behind the snapshot");
    assert_eq!(log.get(3), None);
    assert_eq!(log.term_at(3), Some(1), "the base's term still answers");
    assert!(log.get(4).is_some());
    // The compaction is recorded so recovery knows where the log starts.
    let disk = &c.slots[&1].disk;
    let rec = disk.iter().find_map(|r| r.snapshot.clone()).expect("a snapshot record was written");
    assert_eq!((rec.log_base, rec.meta.index, rec.reset), (3, 5, false));
    let recovered = DurableState::replay(disk).unwrap();
    assert_eq!((recovered.base_index, recovered.base_term), (3, 1));
    assert_eq!(recovered.entries.first().map(|e| e.index), Some(4));
    assert_eq!(recovered.snapshot, Some(meta));
}

#[test]
fn compaction_triggers_at_exactly_the_byte_threshold() {
    // No-op = 24 bytes, each 2-byte command = 26: after the no-op and two commands, 76 bytes.
    let mut c = Cluster::new(&[1], |cfg| {
        cfg.snapshot_entries = u64::MAX;
        cfg.snapshot_bytes = 76;
    });
    c.elect(1);
    c.step(1, propose(1, "c1"));
    c.stabilize();
    assert_eq!(c.node(1).snapshot_meta(), None, "50 bytes: below the threshold");
    c.step(1, propose(2, "c2"));
    c.stabilize();
    assert_eq!(c.node(1).snapshot_meta().map(|m| m.index), Some(3), "76 bytes: at the threshold");
}

#[test]
fn a_lagging_follower_receives_a_multi_chunk_snapshot() {
    let mut c = lagging_follower(snap_cfg(5, 0, 8, 2, 1), 12);
    let meta = c.node(1).snapshot_meta().cloned().unwrap();
    assert_eq!(meta.index, 10);
    assert!(meta.size > 8 * 3, "the snapshot spans several chunks ({} bytes)", meta.size);
    let (sent, resent) = (c.node(1).snapshot_stats().chunks_sent, c.node(1).snapshot_stats().chunks_resent);
    let in_flight = c.net.iter().filter(|m| snap_to(3)(m)).count() as u64;
    for _ in 0..100 {
        settle_except(&mut c, |_| false);
        if c.node(3).snapshot_stats().installed == 1 {
            break;
        }
    }
    assert_eq!(c.node(3).snapshot_stats().installed, 1);
    let stats = c.node(1).snapshot_stats();
    assert_eq!(stats.chunks_sent - sent + in_flight, meta.size.div_ceil(8), "each chunk sent once");
    assert_eq!(stats.chunks_resent, resent);
    assert_eq!(c.node(3).snapshot_meta(), Some(&meta));
    assert_eq!(c.node(3).log().base_index(), 10);
    rounds_until(&mut c, |c| c.node(3).applied_index() == 13);
    assert_eq!(journal(&c, 3), journal(&c, 1), "same state as the leader");
    assert_eq!(c.node(1).snapshot_stats().sends_started, 1);
}

#[test]
fn the_window_bounds_chunks_in_flight() {
    let mut c = lagging_follower(snap_cfg(5, 0, 4, 3, 1), 12);
    assert_eq!(snap_offsets(&c.take(snap_to(3))), vec![0, 4, 8], "three chunks (the window), no more");
    // Nothing more leaves until the follower acknowledges.
    c.tick(1, HB);
    settle_except(&mut c, snap_to(3));
    assert!(!c.net.iter().any(snap_to(3)));
}

#[test]
fn a_dropped_middle_chunk_is_resent_from_the_acknowledged_offset_only() {
    let mut c = lagging_follower(snap_cfg(5, 0, 4, 3, 1), 12);
    let resent = c.node(1).snapshot_stats().chunks_resent;
    let mut first = c.take(snap_to(3));
    assert_eq!(snap_offsets(&first), vec![0, 4, 8]);
    first.remove(1); // the chunk at offset 4 is lost
    for m in first {
        c.deliver_one(m);
    }
    // Node 3 acknowledged offset 4 twice (after chunk 0, and again for the out-of-order 8): the
    // leader moves its window to [4, 16) and asks only for the new chunk at 12.
    settle_except(&mut c, snap_to(3));
    assert_eq!(snap_offsets(&c.take(snap_to(3))), vec![12]);
    assert_eq!(c.node(1).snapshot_stats().chunks_resent, resent);
    // Two heartbeat intervals without progress: resend from offset 4, never from 0.
    c.tick(1, HB * 2);
    settle_except(&mut c, snap_to(3));
    assert_eq!(snap_offsets(&c.net.iter().filter(|m| snap_to(3)(m)).cloned().collect::<Vec<_>>()), vec![4, 8, 12]);
    assert_eq!(c.node(1).snapshot_stats().chunks_resent, resent + 3);
    rounds_until(&mut c, |c| c.node(3).snapshot_stats().installed == 1);
    rounds_until(&mut c, |c| journal(c, 3) == journal(c, 1));
}

#[test]
fn heartbeats_keep_flowing_during_a_transfer() {
    let mut c = lagging_follower(snap_cfg(5, 0, 4, 2, 1), 12);
    let round_msgs = c.tick(1, HB);
    let appends: Vec<String> = sends(&round_msgs).into_iter().filter(|s| s.contains(" App ")).collect();
    assert!(appends.iter().any(|s| s.starts_with("1->2 App")), "{appends:?}");
    assert!(appends.iter().any(|s| s.starts_with("1->3 App")), "the follower being sent a snapshot still hears heartbeats: {appends:?}");
    // The heartbeat keeps node 3 a follower of 1 although no chunk is delivered.
    for _ in 0..10 {
        c.tick(1, HB);
        settle_except(&mut c, snap_to(3));
        c.tick(3, HB);
    }
    assert_eq!(c.node(3).leader(), Some(1));
    assert_eq!(c.node(1).term(), c.node(3).term(), "node 3 never campaigned");
}

#[test]
fn at_most_max_snapshot_sends_transfers_run_at_once() {
    let mut c = Cluster::new(&[1, 2, 3, 4, 5], snap_cfg(5, 0, 8, 2, 1));
    c.elect(1);
    c.isolated.extend([4, 5]);
    propose_n(&mut c, 100, 12);
    c.isolated.clear();
    let snap_any = |m: &Message| is_snap(m);
    for _ in 0..5 {
        c.tick(1, HB);
        settle_except(&mut c, snap_any);
    }
    let targets: std::collections::BTreeSet<u64> = c.net.iter().filter(|m| is_snap(m)).map(|m| m.to).collect();
    assert_eq!(targets.len(), 1, "one transfer at a time: {targets:?}");
    assert_eq!(c.node(1).snapshot_stats().sends_started, 1);
    assert_eq!(c.node(1).snapshot_stats().sends_deferred, 1);
    rounds_until(&mut c, |c| c.node(4).snapshot_stats().installed == 1 && c.node(5).snapshot_stats().installed == 1);
    assert_eq!(c.node(1).snapshot_stats().sends_started, 2);
    rounds_until(&mut c, |c| journal(c, 4) == journal(c, 1) && journal(c, 5) == journal(c, 1));
}

#[test]
fn a_corrupted_snapshot_is_rejected_and_the_transfer_restarts() {
    let mut c = lagging_follower(snap_cfg(5, 0, 8, 2, 1), 12);
    let mut corrupted = false;
    for _ in 0..100 {
        for mut m in c.take(snap_to(3)) {
            if let MessageBody::InstallSnapshot { data, offset: 8, .. } = &mut m.body
                && !corrupted
            {
                let mut bytes = data.to_vec();
                bytes[0] ^= 0x40;
                *data = bytes.into();
                corrupted = true;
            }
            c.deliver_one(m);
        }
        settle_except(&mut c, snap_to(3));
        if c.node(3).snapshot_stats().installed == 1 {
            break;
        }
    }
    assert!(corrupted);
    assert_eq!(c.node(3).snapshot_stats().rejected, 1, "the checksum caught the flipped bit");
    assert_eq!(c.node(3).snapshot_stats().installed, 1, "the restarted transfer installed");
    assert_eq!(c.node(1).snapshot_stats().sends_started, 1, "restarted within the same transfer");
    rounds_until(&mut c, |c| journal(c, 3) == journal(c, 1));
}

#[test]
fn a_stale_snapshot_is_acknowledged_without_install() {
    let mut c = lagging_follower(snap_cfg(5, 0, 64, 2, 1), 12);
    let first = c.net.iter().find(|m| snap_to(3)(m)).cloned().unwrap();
    rounds_until(&mut c, |c| c.node(3).snapshot_stats().installed == 1);
    rounds_until(&mut c, |c| c.node(3).commit_index() == 13);
    let out = c.deliver_one(first);
    assert_eq!(sends(&out), vec!["3->1 SnapResp t1 idx=10 next=".to_string() + &c.node(1).snapshot_meta().unwrap().size.to_string() + " done"]);
    assert_eq!(c.node(3).snapshot_stats().installed, 1);
    assert_eq!(c.node(3).commit_index(), 13, "never backwards");
}

#[test]
fn a_damaged_node_is_repaired_by_a_snapshot() {
    let mut c = Cluster::new(&[1, 2, 3], snap_cfg(5, 0, 8, 2, 1));
    c.elect(1);
    propose_n(&mut c, 100, 9); // commit 10 = the snapshot index
    rounds_until(&mut c, |c| c.node(3).commit_index() == 10);
    // Node 3 restarts with a disk whose records were destroyed.
    c.install(3, DurableState { damaged: true, ..DurableState::default() });
    assert!(c.node(3).is_damaged());
    rounds_until(&mut c, |c| c.node(3).snapshot_stats().installed == 1);
    assert!(!c.node(3).is_damaged(), "the install from a leader of a later term repaired it");
    assert_eq!(journal(&c, 3), journal(&c, 1));
}

#[test]
fn a_restart_from_snapshot_and_wal_never_reapplies_anything() {
    let mut c = Cluster::new(&[1, 2, 3], snap_cfg(5, 0, 8, 2, 1));
    c.elect(1);
    propose_n(&mut c, 100, 11);
    rounds_until(&mut c, |c| c.node(2).applied_index() == 12);
    assert_eq!(c.node(2).snapshot_meta().map(|m| m.index), Some(10));
    c.crash(2);
    c.restart(2);
    assert_eq!(c.node(2).applied_index(), 10, "the state machine starts from the snapshot");
    assert_eq!(c.node(2).log().base_index(), 10);
    assert_eq!(c.node(2).log().last_index(), 12, "the WAL holds the entries after it");
    rounds_until(&mut c, |c| c.node(2).applied_index() == 12);
    let reapplied: Vec<u64> = c.slots[&2].applied.iter().map(|a| a.0).collect();
    assert_eq!(reapplied, vec![11, 12], "only what the snapshot did not hold is applied");
    assert_eq!(journal(&c, 2), journal(&c, 1));
}

#[test]
fn membership_comes_back_from_the_snapshot_meta() {
    // The configuration says {1, 2}; the snapshot says the group is {1, 2, 3}.
    let mut cfg = test_config(1, &[1, 2]);
    cfg.check_quorum = false;
    let mut sm = Journal::default();
    sm.apply(4, b"x");
    let bytes = sm.snapshot();
    let meta = SnapshotMeta::for_bytes(4, 2, Membership::simple([1, 2, 3]), &bytes);
    let mut r = LocalReplica::from_snapshot(cfg, Journal::default(), DurableState::default(), Some((meta.clone(), bytes.into())), Time::ZERO)
        .expect("restores");
    assert_eq!(r.membership(), &meta.membership);
    assert_eq!(r.applied_index(), 4);
    assert_eq!(r.state_machine(), &sm);
    let mut out = Vec::new();
    r.step(Time::ZERO + Duration::from_secs(1), RaftInput::Tick, &mut out);
    let mut to: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            vecraft_core::raft::RaftOutput::Send(m) => Some(m.to),
            _ => None,
        })
        .collect();
    to.sort();
    assert_eq!(to, vec![2, 3], "campaigns among the snapshot's voters");
    // A snapshot whose bytes do not match its header is refused.
    let mut bad = meta.clone();
    bad.checksum[0] ^= 1;
    let refused =
        LocalReplica::from_snapshot(test_config(1, &[1, 2]), Journal::default(), DurableState::default(), Some((bad, sm.snapshot().into())), Time::ZERO);
    assert!(refused.is_err());
}

/// A transfer to a node that is removed from the group frees its send slot at once: with one
/// slot, the other lagging node would otherwise never get its snapshot (found by the simulator
/// when snapshots met membership changes: swarm seeds 338, 652, 901).
#[test]
fn removing_the_target_of_a_transfer_frees_its_send_slot() {
    use vecraft_core::raft::{ConfChange, ConfChangeStep};
    let mut c = Cluster::new(&[1, 2, 3, 4, 5], snap_cfg(5, 0, 8, 2, 1));
    c.elect(1);
    c.isolated.extend([4, 5]);
    propose_n(&mut c, 100, 12);
    c.isolated.clear();
    for _ in 0..5 {
        c.tick(1, HB);
        settle_except(&mut c, is_snap);
    }
    let targets: std::collections::BTreeSet<u64> = c.net.iter().filter(|m| is_snap(m)).map(|m| m.to).collect();
    assert_eq!(targets.len(), 1, "one transfer at a time: {targets:?}");
    let removed = *targets.first().expect("one target");
    let other = if removed == 4 { 5 } else { 4 };
    c.step(1, RaftInput::ProposeConfChange { id: 900, change: ConfChange::auto([ConfChangeStep::Remove(removed)]) });
    // Everything but the chunks to the removed node flows: the change commits among 1, 2, 3.
    settle_except(&mut c, snap_to(removed));
    assert!(!c.node(1).membership().is_voter(removed), "the removal was applied");
    rounds_until(&mut c, |c| c.node(other).snapshot_stats().installed == 1);
    assert_eq!(c.node(1).snapshot_stats().sends_started, 2, "the freed slot went to node {other}");
    rounds_until(&mut c, |c| journal(c, other) == journal(c, 1));
}

/// A follower that stops answering is probed with one chunk after 2, then 4, then 8 heartbeat
/// intervals (the cap), instead of being sent the whole window every other round; once it
/// answers again the window reopens and the transfer completes.
#[test]
fn a_silent_follower_is_probed_with_one_chunk_and_backed_off() {
    let mut c = lagging_follower(snap_cfg(5, 0, 4, 3, 1), 12);
    assert_eq!(snap_offsets(&c.take(snap_to(3))), vec![0, 4, 8], "the first window is lost");
    c.isolated.insert(3);
    let mut probes = Vec::new();
    for round in 1..=16u32 {
        let before = c.node(1).snapshot_stats().chunks_resent;
        c.tick(1, HB);
        settle_except(&mut c, |_| false);
        let resent = c.node(1).snapshot_stats().chunks_resent - before;
        if resent > 0 {
            probes.push((round, resent));
        }
    }
    assert_eq!(probes, vec![(2, 1), (6, 1), (14, 1)], "one chunk after waits of 2, 4 and 8 heartbeat intervals");
    c.isolated.remove(&3);
    rounds_until(&mut c, |c| c.node(3).snapshot_stats().installed == 1);
    rounds_until(&mut c, |c| journal(c, 3) == journal(c, 1));
}
