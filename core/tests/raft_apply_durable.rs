//! A node hands a committed entry to its state machine only once its own copy is durable. An
//! entry applied before that can be lost from the log by a crash while the state machine (or a
//! snapshot of it) keeps it; the restarted node then applies it a second time over a state that
//! already holds it (a filtered delete re-run there removes points a later command wrote, and
//! the engine's sequence numbers shift, which point-in-time exports rely on).

mod raft_harness;

use raft_harness::{applied, test_config};
use std::time::Duration;
use vecraft_core::contract::{StateMachine, Time};
use vecraft_core::raft::{DurableState, Entry, EntryPayload, Message, MessageBody, RaftConfig, RaftInput, RaftNode, RaftOutput};

fn append(prev: u64, last: u64, commit: u64) -> RaftInput {
    let entries: Vec<Entry> = (prev + 1..=last).map(|index| Entry { term: 1, index, payload: EntryPayload::Noop }).collect();
    RaftInput::Message(Message {
        group: raft_harness::GROUP,
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Append { prev_index: prev, prev_term: if prev == 0 { 0 } else { 1 }, entries, commit, round: 1 },
    })
}

fn persist_seq(out: &[RaftOutput]) -> u64 {
    out.iter().rev().find_map(|o| if let RaftOutput::Persist { seq, .. } = o { Some(*seq) } else { None }).expect("a write")
}

/// Follower 2 takes entries 1..=3 (commit 3), then 4..=5 (commit 5), the disk acknowledging
/// neither yet; then the first write, then the second. Returns what it applied at each step.
fn follower_with_a_slow_disk(tweak: impl Fn(&mut RaftConfig)) -> Vec<Vec<(u64, u64)>> {
    let mut cfg = test_config(2, &[1, 2, 3]);
    tweak(&mut cfg);
    let mut node = RaftNode::new(cfg, DurableState::default(), 0, Time::ZERO);
    let now = Time::ZERO + Duration::from_millis(10);
    let mut steps = Vec::new();
    let mut out = Vec::new();
    node.step(now, append(0, 3, 3), &mut out);
    let first = persist_seq(&out);
    steps.push(applied(&out));
    out.clear();
    node.step(now, append(3, 5, 5), &mut out);
    let second = persist_seq(&out);
    assert_eq!(node.commit_index(), 5);
    steps.push(applied(&out));
    out.clear();
    node.step(now, RaftInput::Persisted { seq: first }, &mut out);
    steps.push(applied(&out));
    out.clear();
    node.step(now, RaftInput::Persisted { seq: second }, &mut out);
    steps.push(applied(&out));
    steps
}

#[test]
fn committed_entries_are_applied_as_their_copies_here_become_durable() {
    let steps = follower_with_a_slow_disk(|_| {});
    assert_eq!(steps[0], vec![], "committed, not durable here");
    assert_eq!(steps[1], vec![]);
    assert_eq!(steps[2], vec![(1, 1), (2, 1), (3, 1)], "durable through 3: applied through 3, not 4 and 5 (committed)");
    assert_eq!(steps[3], vec![(4, 1), (5, 1)]);
}

/// The bug switch: applied on commit, before the disk has them.
#[cfg(feature = "bug-injection")]
#[test]
fn bug_apply_before_durable_applies_entries_the_disk_may_still_lose() {
    let steps = follower_with_a_slow_disk(|cfg| cfg.bugs.apply_before_durable = true);
    assert_eq!(steps[0], vec![(1, 1), (2, 1), (3, 1)]);
    assert_eq!(steps[1], vec![(4, 1), (5, 1)]);
    assert_eq!(steps[2], vec![]);
}

/// A node restarted with its state machine ahead of the log that survived (entries 4 and 5
/// rotted after they were applied): entries 4 and 5 come back from the leader and are appended,
/// never applied again; the configuration change among them still takes effect; entry 6 is
/// applied once durable.
#[test]
fn a_state_machine_ahead_of_its_log_is_not_applied_twice_and_keeps_configuration_changes() {
    use vecraft_core::raft::{ConfChange, ConfChangeStep, ConfEntry, HardState, Membership, next_membership};
    let noop = |index| Entry { term: 1, index, payload: EntryPayload::Noop };
    let durable = DurableState {
        hard_state: HardState { term: 1, vote: Some(1) },
        entries: (1..=3).map(noop).collect(),
        damaged: false,
        ..DurableState::default()
    };
    let mut node = RaftNode::new(test_config(2, &[1, 2, 3]), durable, 5, Time::ZERO);
    assert_eq!((node.applied_index(), node.commit_index()), (5, 5), "what the state machine holds stays applied");
    let change = ConfChange::auto([ConfChangeStep::AddLearner(4)]);
    let membership = next_membership(&Membership::simple([1, 2, 3]), &change, false).unwrap();
    let entries = vec![
        noop(4),
        Entry { term: 1, index: 5, payload: EntryPayload::ConfChange(Box::new(ConfEntry { change, membership })) },
        noop(6),
    ];
    let append = Message {
        group: raft_harness::GROUP,
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Append { prev_index: 3, prev_term: 1, entries, commit: 6, round: 1 },
    };
    let now = Time::ZERO + Duration::from_millis(10);
    let mut out = Vec::new();
    node.step(now, RaftInput::Message(append), &mut out);
    let seq = persist_seq(&out);
    out.clear();
    node.step(now, RaftInput::Persisted { seq }, &mut out);
    assert_eq!(applied(&out), vec![(6, 1)], "4 and 5 are not handed out again");
    assert!(node.membership().learners.contains(&4), "the change at 5 took effect: {:?}", node.membership());
}
