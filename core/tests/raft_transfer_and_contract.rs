//! Scripted scenarios for the second-stage Raft contract: leadership transfer, the two stale-read
//! holes (a heartbeat echoed from an older term, a vote at the voter's own term inside a lease),
//! damaged disks, back-pressure, byte-bounded batches and `next_deadline`.

mod raft_harness;

use raft_harness::*;
use std::time::Duration;
use vecraft_core::contract::Time;
use vecraft_core::raft::{
    ClientError, ClientResponse, DurableState, HardState, Message, MessageBody, RaftInput, ReadMode, Role,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn propose(id: u64, cmd: &str) -> RaftInput {
    RaftInput::Propose { id, command: cmd.as_bytes().to_vec().into() }
}

fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message { group: GROUP, from, to, term, body }
}

fn err(id: u64, e: ClientError) -> ClientResponse {
    ClientResponse { id, result: Err(e) }
}

// ---------------------------------------------------------------------------------------------
// Stale reads
// ---------------------------------------------------------------------------------------------

#[test]
fn a_heartbeat_from_a_previous_incarnation_confirms_no_read_of_the_next_leadership() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    // Several rounds, so the old incarnation's round numbers run ahead of the next one's.
    for _ in 0..4 {
        c.tick(1, ms(20));
        c.stabilize();
    }
    c.tick(1, ms(20));
    let old = c.take(link(1, 2));
    assert_eq!(old.len(), 1, "one old heartbeat held back in the network");
    let MessageBody::Append { round: old_round, .. } = old[0].body else { panic!("a heartbeat") };
    assert!(old_round >= 3);
    c.drop_msgs(|_| true);

    // Node 1 crashes, restarts and leads again in a later term; its rounds restart from zero.
    c.crash(1);
    c.restart(1);
    c.advance_all(ms(200));
    c.elect(1);
    assert_eq!(c.node(1).term(), 2);
    // A read arrives; all of the new leadership's heartbeats are lost.
    let out = c.step(1, RaftInput::Read { id: 50, mode: ReadMode::ReadIndex });
    assert!(responses(&out).is_empty());
    c.drop_msgs(|_| true);

    // The long-delayed heartbeat of term 1 reaches node 2 (now in term 2): it answers with its
    // term but without the round, and the answer confirms nothing.
    let out = c.deliver_one(old[0].clone());
    assert_eq!(sends(&out), vec!["2->1 AppResp t2 stale round=0"]);
    c.deliver_all();
    assert!(c.take_responses(1).is_empty(), "a read confirmed by a heartbeat of an older term");
}

#[test]
fn a_vote_at_the_voters_own_term_is_refused_inside_the_lease() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.tick(1, ms(20));
    c.stabilize();
    // Some message of term 2 moves node 2 to term 2 without a leader (here: a refused pre-vote
    // answer; anything that carries a higher term does it).
    c.deliver_one(msg(3, 2, 2, MessageBody::PreVoteResponse { granted: false }));
    assert_eq!((c.node(2).term(), c.node(2).leader()), (2, None));
    c.drop_msgs(|_| true);
    // Node 3 asks for node 2's vote in term 2: node 2 still honours node 1's lease.
    c.advance(2, ms(50));
    let out = c.deliver_one(msg(3, 2, 2, MessageBody::Vote { last_index: 1, last_term: 1, transfer: false }));
    assert_eq!(sends(&out), vec!["2->3 VoteResp t2 rejected"]);
    assert_eq!(c.node(2).vote(), None);
    // After the lease window, the same request is granted.
    c.advance(2, ms(60));
    c.deliver_one(msg(3, 2, 2, MessageBody::Vote { last_index: 1, last_term: 1, transfer: false }));
    assert_eq!(sends(&c.ack(2)), vec!["2->3 VoteResp t2 granted"]);
}

// ---------------------------------------------------------------------------------------------
// Leadership transfer
// ---------------------------------------------------------------------------------------------

#[test]
fn transfer_catches_the_target_up_then_hands_over_and_ends_the_lease() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    // Node 3 misses two entries.
    c.step(1, propose(10, "a"));
    c.step(1, propose(11, "b"));
    c.ack(1);
    c.drop_msgs(to(3));
    c.stabilize();
    c.tick(1, ms(20));
    c.drop_msgs(to(3));
    c.stabilize();
    assert!(c.node(1).lease_valid(c.slots[&1].clock));
    c.take_responses(1);

    let out = c.step(1, RaftInput::TransferLeadership { to: 3 });
    assert_eq!(c.node(1).transfer_target(), Some(3));
    assert_eq!(sends(&out), vec!["1->3 App t1 prev=1/1 [1/2 a, 1/3 b] commit=3 round=2"], "first the target is caught up");
    // No proposals while the transfer is pending.
    let out = c.step(1, propose(12, "c"));
    assert_eq!(responses(&out), vec![err(12, ClientError::Transferring { to: 3 })]);

    // Deliver until the TimeoutNow leaves; the old leader gives its lease up at that moment.
    let mut timeout_now = None;
    for _ in 0..20 {
        c.ack(3);
        if let Some(m) = c.take(|m| matches!(m.body, MessageBody::TimeoutNow)).pop() {
            timeout_now = Some(m);
            break;
        }
        c.deliver_all();
    }
    let timeout_now = timeout_now.unwrap_or_else(|| panic!("no TimeoutNow: {:?} {:?}", c.in_flight(), c.node(3).log().last_index()));
    assert!(!c.node(1).lease_valid(c.slots[&1].clock), "no lease once TimeoutNow left");
    let out = c.step(1, RaftInput::Read { id: 60, mode: ReadMode::Lease });
    assert!(responses(&out).is_empty(), "a lease read now needs a round");
    c.drop_msgs(|m| m.from == 1);

    // The target campaigns at once; node 2 grants although it honours node 1's lease.
    let out = c.deliver_one(timeout_now);
    assert_eq!(sends(&out), vec!["3->1 Vote t2 last=1/3 transfer", "3->2 Vote t2 last=1/3 transfer"]);
    c.stabilize();
    assert_eq!(c.node(3).role(), Role::Leader);
    assert_eq!(c.node(1).role(), Role::Follower);
    // The refused proposal, then the read the deposed leader could not confirm (it learned of
    // the new term from a vote request, before knowing who won).
    assert_eq!(c.take_responses(1), vec![
        err(12, ClientError::Transferring { to: 3 }),
        err(60, ClientError::NotLeader { leader: None })
    ]);
}

#[test]
fn an_unreachable_transfer_target_is_abandoned_after_an_election_timeout() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.isolated.insert(3);
    c.step(1, RaftInput::TransferLeadership { to: 3 });
    c.stabilize();
    // Abandoned at exactly the election timeout max (200ms) after it started, not before.
    c.tick(1, ms(199));
    c.stabilize();
    assert_eq!(c.node(1).transfer_target(), Some(3));
    let out = c.tick(1, ms(1));
    assert_eq!(c.node(1).transfer_target(), None);
    assert!(responses(&out).is_empty());
    let out = c.step(1, propose(20, "x"));
    assert!(responses(&out).is_empty(), "proposals are accepted again");
    c.stabilize();
    assert_eq!(c.node(1).role(), Role::Leader);
}

#[test]
fn timeout_now_from_anyone_but_the_leader_is_ignored() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    let out = c.deliver_one(msg(3, 2, 1, MessageBody::TimeoutNow));
    assert!(sends(&out).is_empty());
    assert_eq!((c.node(2).term(), c.node(2).role()), (1, Role::Follower));
}

// ---------------------------------------------------------------------------------------------
// Damaged disks
// ---------------------------------------------------------------------------------------------

#[test]
fn a_damaged_node_neither_votes_nor_campaigns_until_a_later_leader_repairs_it() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.step(1, propose(10, "a"));
    c.stabilize();
    // Node 3 comes back from a damaged disk that kept only entry 1 (term 1).
    let damaged = DurableState { hard_state: HardState { term: 1, vote: Some(1) }, entries: log_of_terms(&[1]), damaged: true, ..DurableState::default() };
    c.install(3, damaged);
    assert!(c.node(3).is_damaged());
    // The leader of term 1 still believes node 3 holds entry 2: the reset rejection corrects
    // that and node 3 is caught up, but a leader of term 1 cannot repair it (node 3 may have
    // lost a vote of term 1).
    c.tick(1, ms(20));
    let trace = c.stabilize();
    assert!(trace.iter().any(|m| m.starts_with("3->1 AppResp t1 reject") && m.ends_with("reset")), "{trace:?}");
    assert_eq!(c.node(3).log().last_index(), 2);
    assert!(c.node(3).is_damaged());
    // It does not campaign when its election timer fires ...
    let out = c.tick(3, ms(500));
    assert!(sends(&out).is_empty() && persists(&out).is_empty());
    // ... and refuses votes, even outside any lease.
    let out = c.deliver_one(msg(2, 3, 2, MessageBody::Vote { last_index: 2, last_term: 1, transfer: false }));
    assert_eq!(sends(&out), vec!["3->2 VoteResp t2 rejected"]);
    c.drop_msgs(|_| true);

    // Node 1 steps down (cut off, check-quorum); node 2 wins term 3 with node 1's vote alone.
    c.isolated.insert(1);
    c.tick(1, ms(100));
    c.tick(1, ms(100));
    assert_eq!(c.node(1).role(), Role::Follower);
    c.isolated.clear();
    c.drop_msgs(|_| true);
    c.advance_all(ms(300));
    c.elect(2);
    assert!(c.node(2).term() > 1);
    // The leader of a later term brings it up to that leader's commit index: repaired.
    c.tick(2, ms(20));
    c.stabilize();
    assert!(!c.node(3).is_damaged(), "repaired by a leader of term {}", c.node(2).term());
    assert_eq!(c.node(3).log().last_index(), c.node(2).log().last_index());
}

// ---------------------------------------------------------------------------------------------
// Back-pressure, batches, deadlines
// ---------------------------------------------------------------------------------------------

#[test]
fn proposals_beyond_the_uncommitted_byte_bound_are_refused_until_commits_drain_it() {
    // Each 10-byte command costs 34 bytes; the noop 24. Bound: noop + 2 commands exactly.
    let mut c = Cluster::new(&[1, 2, 3], |cfg| cfg.max_uncommitted_bytes = 24 + 2 * 34);
    c.elect(1);
    c.drop_msgs(|_| true);
    assert_eq!(c.node(1).uncommitted_bytes(), 0, "the noop committed");
    c.isolated.insert(2);
    c.isolated.insert(3);
    let mut refused = Vec::new();
    for id in 0..4 {
        refused.extend(responses(&c.step(1, propose(id, "0123456789"))));
    }
    // 3 × 34 = 102 > 92: the third is refused at the bound, the fourth too.
    assert_eq!(refused, vec![err(2, ClientError::Overloaded), err(3, ClientError::Overloaded)]);
    assert_eq!(c.node(1).uncommitted_bytes(), 68);
    c.isolated.clear();
    c.drop_msgs(|_| true);
    for _ in 0..3 {
        c.tick(1, ms(20));
        c.stabilize();
    }
    assert_eq!(c.node(1).uncommitted_bytes(), 0);
    assert!(responses(&c.step(1, propose(4, "0123456789"))).is_empty(), "accepted again");
}

#[test]
fn one_proposal_larger_than_the_bound_is_still_accepted_into_an_empty_pipeline() {
    let mut c = Cluster::new(&[1], |cfg| cfg.max_uncommitted_bytes = 10);
    c.elect(1);
    assert!(responses(&c.step(1, propose(1, "a command longer than ten bytes"))).is_empty());
    assert_eq!(responses(&c.step(1, propose(2, "x"))), vec![err(2, ClientError::Overloaded)]);
}

#[test]
fn append_batches_are_bounded_by_bytes_but_always_carry_one_entry() {
    // 24 + 10 = 34 bytes per entry; 100 bytes fit two entries, never three. With one append in
    // flight at a time, the follower catches up in byte-bounded batches.
    let mut c = Cluster::new(&[1, 2], |cfg| {
        cfg.max_batch_bytes = 100;
        cfg.max_inflight = 1;
    });
    c.elect(1);
    c.isolated.insert(2);
    for id in 0..5 {
        c.step(1, propose(id, "0123456789"));
    }
    c.ack(1);
    c.isolated.clear();
    c.drop_msgs(|_| true);
    c.tick(1, ms(20));
    c.tick(1, ms(20));
    let trace = c.stabilize();
    let batches: Vec<usize> = trace
        .iter()
        .filter(|m| m.starts_with("1->2 App") && !m.contains("[]"))
        .map(|m| m.matches("0123456789").count())
        .collect();
    assert_eq!(batches, vec![2, 2, 1], "{trace:?}");
    // A single entry larger than the bound still goes, alone.
    let mut c = Cluster::new(&[1, 2], |cfg| cfg.max_batch_bytes = 1);
    c.elect(1);
    let out = c.step(1, propose(1, "0123456789"));
    assert_eq!(sends(&out), vec!["1->2 App t1 prev=1/1 [1/2 0123456789] commit=1 round=1"]);
}

#[test]
fn next_deadline_is_the_instant_the_next_tick_matters() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    let at = c.node(1).next_deadline().expect("a leader has a heartbeat deadline");
    let now = c.slots[&1].clock;
    assert_eq!(at, now + ms(20), "heartbeat interval after the last round");
    // One nanosecond early: nothing to do. At the deadline: a heartbeat round.
    let early = Duration::from_nanos(at.as_nanos() - now.as_nanos() - 1);
    assert!(sends(&c.tick(1, early)).is_empty());
    assert_eq!(sends(&c.tick(1, Duration::from_nanos(1))).len(), 2);

    // A follower's deadline is its election deadline: ticking before it never campaigns.
    let f = c.node(2).next_deadline().expect("followers have an election deadline");
    let now2 = c.slots[&2].clock;
    assert!(f > now2 && f <= now2 + ms(200));
    let early = Duration::from_nanos(f.as_nanos() - now2.as_nanos() - 1);
    assert!(sends(&c.tick(2, early)).is_empty());
    assert!(!sends(&c.tick(2, Duration::from_nanos(1))).is_empty(), "pre-vote at the deadline");
    let _ = Time::ZERO;
}
