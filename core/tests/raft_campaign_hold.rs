//! The unapplied-campaign hold: a voter whose state machine still has committed entries to
//! apply waits longer before campaigning, in proportion to that backlog and capped, so that
//! after a leader's death the survivor that can answer writes at once wins. A leader
//! acknowledges a write only once it applied it, so a node still replaying its log after a
//! restart stalls every write while it leads (measured on real processes: `benches/README.md`,
//! failover).

mod raft_harness;

use raft_harness::test_config;
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::raft::{
    DurableState, Entry, EntryPayload, Message, MessageBody, RaftConfig, RaftInput, RaftNode, RaftOutput,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn pre_votes(out: &[RaftOutput]) -> usize {
    out.iter().filter(|o| matches!(o, RaftOutput::Send(Message { body: MessageBody::PreVote { .. }, .. }))).count()
}

/// Node `id` of group {1, 2, 3}, following leader 1 at term 1, holding `committed` committed
/// entries of which its state machine applied all but `unapplied`. Returns it with its clock.
fn follower(id: NodeId, committed: u64, unapplied: u64, tweak: impl Fn(&mut RaftConfig)) -> (RaftNode, Time) {
    let mut cfg = test_config(id, &[1, 2, 3]);
    cfg.unapplied_campaign_hold = Duration::from_micros(100);
    cfg.max_unapplied_campaign_hold = ms(600);
    tweak(&mut cfg);
    let mut node = RaftNode::new(cfg, DurableState::default(), 0, Time::ZERO);
    let entries: Vec<Entry> = (1..=committed).map(|index| Entry { term: 1, index, payload: EntryPayload::Noop }).collect();
    let append = Message {
        group: raft_harness::GROUP,
        from: 1,
        to: id,
        term: 1,
        body: MessageBody::Append { prev_index: 0, prev_term: 0, entries, commit: committed, round: 1 },
    };
    let now = Time::ZERO + ms(10);
    let mut out = Vec::new();
    node.step(now, RaftInput::Message(append), &mut out);
    // The entries are applied once durable here: acknowledge the write they went into.
    let seq = out.iter().rev().find_map(|o| if let RaftOutput::Persist { seq, .. } = o { Some(*seq) } else { None });
    node.step(now, RaftInput::Persisted { seq: seq.expect("the append was written") }, &mut out);
    if committed > unapplied {
        node.step(now, RaftInput::Applied { index: committed - unapplied }, &mut out);
    }
    assert_eq!((node.commit_index(), node.applied_index()), (committed, committed - unapplied));
    (node, now)
}

/// Ticks `node` at `at`; returns the pre-votes it sent.
fn tick_at(node: &mut RaftNode, at: Time) -> usize {
    let mut out = Vec::new();
    node.step(at, RaftInput::Tick, &mut out);
    pre_votes(&out)
}

#[test]
fn a_caught_up_voter_campaigns_at_its_election_timeout() {
    let (mut node, _) = follower(2, 3_000, 0, |_| {});
    let due = node.next_deadline().expect("a follower has an election timer");
    assert_eq!(tick_at(&mut node, due), 2, "no backlog, no hold");
}

#[test]
fn a_voter_behind_in_applying_holds_its_campaign_in_proportion_to_the_backlog() {
    // 3,000 unapplied entries at 100 us each: exactly 300 ms more.
    let (mut node, _) = follower(2, 3_001, 3_000, |_| {});
    let due = node.next_deadline().expect("a follower has an election timer");
    assert_eq!(tick_at(&mut node, due), 0, "held");
    assert_eq!(node.next_deadline(), Some(due + ms(300)));
    assert_eq!(tick_at(&mut node, Time((due + ms(300)).0 - 1)), 0);
    // Held once per timeout: at the end of the hold it campaigns, backlog or not.
    assert_eq!(tick_at(&mut node, due + ms(300)), 2);
}

#[test]
fn the_hold_is_capped_so_a_voter_far_behind_still_campaigns() {
    // 10,000 entries would be 1 s; the cap is 600 ms, and 6,000 entries reach it exactly.
    for (unapplied, hold) in [(5_999, ms(600) - Duration::from_micros(100)), (6_000, ms(600)), (10_000, ms(600))] {
        let (mut node, _) = follower(2, 10_001, unapplied, |_| {});
        let due = node.next_deadline().expect("a follower has an election timer");
        assert_eq!(tick_at(&mut node, due), 0);
        assert_eq!(node.next_deadline(), Some(due + hold), "{unapplied} unapplied");
        assert_eq!(tick_at(&mut node, due + hold), 2);
    }
}

#[test]
fn a_zero_hold_disables_it() {
    let (mut node, _) = follower(2, 3_001, 3_000, |cfg| cfg.unapplied_campaign_hold = Duration::ZERO);
    let due = node.next_deadline().expect("a follower has an election timer");
    assert_eq!(tick_at(&mut node, due), 2);
}

/// Both survivors of leader 1's death learn it at once (`leader_down`): node 3 goes first in
/// the survivors' turn order for this group. Returns when each sends its first pre-vote, in ms
/// after the death, as (node 3, node 2), with node 3 `unapplied` entries behind and node 2
/// caught up.
fn first_pre_votes_after_the_leader_dies(unapplied: u64, tweak: impl Fn(&mut RaftConfig) + Copy) -> (u64, u64) {
    let (mut three, now) = follower(3, 3_001, unapplied, tweak);
    let (mut two, _) = follower(2, 3_001, 0, tweak);
    three.leader_down(now, 1);
    two.leader_down(now, 1);
    let mut first = [None, None];
    for step in 1..=2_000u64 {
        let at = now + ms(step);
        for (k, node) in [&mut three, &mut two].into_iter().enumerate() {
            if first[k].is_none() && node.next_deadline().is_some_and(|d| d <= at) && tick_at(node, at) > 0 {
                first[k] = Some(step);
            }
        }
    }
    (first[0].expect("node 3 campaigns"), first[1].expect("node 2 campaigns"))
}

#[test]
fn after_the_leader_dies_the_caught_up_survivor_campaigns_first() {
    // Caught up, node 3 goes first as its turn says.
    let (three, two) = first_pre_votes_after_the_leader_dies(0, |_| {});
    assert!(three < two, "turn order: node 3 at {three} ms, node 2 at {two} ms");
    // 3,000 entries behind (300 ms of hold), node 3 lets node 2 go first.
    let (three, two) = first_pre_votes_after_the_leader_dies(3_000, |_| {});
    assert!(two < three, "node 2 at {two} ms, node 3 (behind) at {three} ms");
}

/// The bug switch: without the hold, the survivor still replaying goes first.
#[cfg(feature = "bug-injection")]
#[test]
fn bug_campaign_ignores_unapplied_lets_the_survivor_behind_go_first() {
    let (three, two) = first_pre_votes_after_the_leader_dies(3_000, |cfg| cfg.bugs.campaign_ignores_unapplied = true);
    assert!(three < two, "node 3 (behind) at {three} ms, node 2 at {two} ms");
}
