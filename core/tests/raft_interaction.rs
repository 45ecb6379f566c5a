//! Scripted Raft scenarios: each test drives a few `RaftNode`s by hand (messages, disk
//! acknowledgements, clocks) and asserts the exact effects that matter: who sends what to whom,
//! roles, terms, commit indexes and client responses.

mod raft_harness;

use raft_harness::*;
use std::time::Duration;
use vecraft_core::raft::{ClientError, ClientResponse, HardState, RaftInput, ReadMode, Role};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn propose(id: u64, cmd: &str) -> RaftInput {
    RaftInput::Propose { id, command: cmd.as_bytes().to_vec().into() }
}

fn read(id: u64, mode: ReadMode) -> RaftInput {
    RaftInput::Read { id, mode }
}

fn ok(id: u64, body: &str) -> ClientResponse {
    ClientResponse { id, result: Ok(body.as_bytes().to_vec()) }
}

fn err(id: u64, e: ClientError) -> ClientResponse {
    ClientResponse { id, result: Err(e) }
}

// ---------------------------------------------------------------------------------------------
// 1. Single node
// ---------------------------------------------------------------------------------------------

#[test]
fn single_node_elects_itself_only_after_its_vote_is_durable_and_commits_after_ack() {
    let mut c = Cluster::new(&[1], |_| {});
    let out = c.campaign(1);
    // Pre-vote is trivially won; the real campaign writes term 1 + vote for itself.
    assert_eq!(persists(&out), vec!["1: hs=1/1 ents=[]"]);
    assert!(sends(&out).is_empty());
    assert_eq!(c.node(1).role(), Role::Candidate);
    assert_eq!(c.node(1).term(), 1);

    // Time passing does not make it leader: only the acknowledgement of its vote does.
    c.advance(1, ms(10));
    assert_eq!(c.node(1).role(), Role::Candidate);
    let out = c.ack(1);
    assert_eq!(c.node(1).role(), Role::Leader);
    assert_eq!(persists(&out), vec!["2: hs=- ents=[1/1 noop]"]);
    assert_eq!(c.node(1).commit_index(), 0, "the noop is not durable yet");

    let out = c.ack(1);
    assert_eq!(applied(&out), vec![(1, 1)]);
    assert_eq!(c.node(1).commit_index(), 1);

    // A proposal commits and applies only after its write is acknowledged.
    let out = c.step(1, propose(10, "x"));
    assert_eq!(persists(&out), vec!["3: hs=- ents=[1/2 x]"]);
    assert!(responses(&out).is_empty());
    assert_eq!(c.node(1).commit_index(), 1);
    assert!(c.node(1).state_machine().applied.is_empty());

    let out = c.ack(1);
    assert_eq!(applied(&out), vec![(2, 1)]);
    assert_eq!(responses(&out), vec![ok(10, "applied@2")]);
    assert_eq!(c.node(1).state_machine().applied, vec![(2, b"x".to_vec())]);
}

// ---------------------------------------------------------------------------------------------
// 2. Three-node election with pre-vote
// ---------------------------------------------------------------------------------------------

#[test]
fn three_node_election_pre_vote_then_vote_granted_only_after_voter_persists() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    let out = c.campaign(1);
    // Pre-vote asks for term 1 but writes nothing and changes no term.
    assert_eq!(sends(&out), vec!["1->2 PreVote t1 last=0/0", "1->3 PreVote t1 last=0/0"]);
    assert!(persists(&out).is_empty());
    assert_eq!((c.node(1).role(), c.node(1).term()), (Role::PreCandidate, 0));

    let out = c.deliver(link(1, 2));
    assert_eq!(sends(&out), vec!["2->1 PreVoteResp t1 granted"]);
    assert!(persists(&out).is_empty(), "a pre-vote is not a vote: nothing is written");
    assert_eq!((c.node(2).term(), c.node(2).vote()), (0, None));

    // The pre-vote quorum (1 and 2) starts the real election at term 1.
    let out = c.deliver(link(2, 1));
    assert_eq!(sends(&out), vec!["1->2 Vote t1 last=0/0", "1->3 Vote t1 last=0/0"]);
    assert_eq!(persists(&out), vec!["1: hs=1/1 ents=[]"]);
    assert_eq!((c.node(1).role(), c.node(1).term()), (Role::Candidate, 1));

    // The late pre-vote to 3 is still answered (and still changes nothing there).
    let out = c.deliver(|m| m.to == 3 && matches!(m.body, vecraft_core::raft::MessageBody::PreVote { .. }));
    assert_eq!(sends(&out), vec!["3->1 PreVoteResp t1 granted"]);
    assert_eq!(c.node(3).term(), 0);
    assert!(c.deliver(link(3, 1)).is_empty(), "a pre-vote answer for a finished pre-campaign is ignored");

    // Voter 2 adopts term 1 and votes, but says so only once that is durable.
    let out = c.deliver(link(1, 2));
    assert!(sends(&out).is_empty(), "no VoteResponse before the vote is durable");
    assert_eq!(persists(&out), vec!["1: hs=1/1 ents=[]"]);
    assert_eq!((c.node(2).term(), c.node(2).vote()), (1, Some(1)));
    let out = c.ack(2);
    assert_eq!(sends(&out), vec!["2->1 VoteResp t1 granted"]);

    // The candidate's own vote is durable, and 2's grant arrives: it wins.
    c.ack(1);
    assert_eq!(c.node(1).role(), Role::Candidate, "one durable vote (its own) is not a quorum");
    let out = c.deliver(link(2, 1));
    assert_eq!(c.node(1).role(), Role::Leader);
    assert_eq!(
        sends(&out),
        vec!["1->2 App t1 prev=0/0 [1/1 noop] commit=0 round=1", "1->3 App t1 prev=0/0 [1/1 noop] commit=0 round=1"]
    );
    assert_eq!(persists(&out), vec!["2: hs=- ents=[1/1 noop]"]);

    c.stabilize();
    assert_eq!(c.node(1).commit_index(), 1);
    // Followers learn the commit index from the next heartbeat.
    assert_eq!((c.node(2).commit_index(), c.node(3).commit_index()), (0, 0));
    let out = c.tick(1, ms(20));
    assert_eq!(
        sends(&out),
        vec!["1->2 App t1 prev=1/1 [] commit=1 round=2", "1->3 App t1 prev=1/1 [] commit=1 round=2"]
    );
    c.stabilize();
    for id in [1, 2, 3] {
        assert_eq!(c.node(id).term(), 1);
        assert_eq!(c.node(id).leader(), Some(1));
        assert_eq!(c.node(id).commit_index(), 1, "node {id}");
    }
}

#[test]
fn candidate_with_a_peer_quorum_waits_for_its_own_vote_to_be_durable() {
    // Without pre-vote, if a candidate led on its peers' grants alone before its own
    // (term, vote) write was durable, a crash would bring it back at the old term; it would
    // campaign for the *same* term again, get the same grants (they voted for it) and lead that
    // term a second time with a different log: two different entries with the same index and
    // term, i.e. divergent committed entries.
    let mut c = Cluster::new(&[1, 2, 3], |cfg| cfg.pre_vote = false);
    let out = c.campaign(1);
    assert_eq!(persists(&out), vec!["1: hs=1/1 ents=[]"]);
    assert_eq!(sends(&out), vec!["1->2 Vote t1 last=0/0", "1->3 Vote t1 last=0/0"]);
    c.deliver_all();
    c.ack(2);
    c.ack(3);
    let out = c.deliver(to(1));
    assert_eq!(c.node(1).role(), Role::Candidate, "two peer grants, but its own vote is not durable yet");
    assert!(sends(&out).is_empty());

    // Crash before the write lands: it restarts at term 0 and has never led anything.
    c.crash(1);
    c.restart(1);
    assert_eq!((c.node(1).term(), c.node(1).vote()), (0, None));
    c.advance(1, ms(200)); // past the post-restart stickiness
    // Campaigning for term 1 again is safe precisely because term 1 had no leader.
    c.campaign(1);
    c.deliver_all();
    c.ack(2);
    c.ack(3);
    c.deliver(to(1));
    assert_eq!(c.node(1).role(), Role::Candidate);
    let out = c.ack(1);
    assert_eq!(c.node(1).role(), Role::Leader);
    assert_eq!((c.node(1).term(), c.node(1).vote()), (1, Some(1)));
    assert_eq!(persists(&out), vec!["2: hs=- ents=[1/1 noop]"]);
}

// ---------------------------------------------------------------------------------------------
// 3. One vote per term, also across restarts
// ---------------------------------------------------------------------------------------------

#[test]
fn a_node_never_grants_two_votes_in_one_term_even_after_restart() {
    let mut c = Cluster::new(&[1, 2, 3], |cfg| cfg.pre_vote = false);
    c.campaign(1);
    c.campaign(2);
    let vote_from_2 = c.take(link(2, 3)).remove(0);

    let out = c.deliver(link(1, 3));
    assert!(sends(&out).is_empty());
    assert_eq!(persists(&out), vec!["1: hs=1/1 ents=[]"]);
    // A competing candidate in the same term is refused at once (nothing to persist).
    let out = c.deliver_one(vote_from_2.clone());
    assert_eq!(sends(&out), vec!["3->2 VoteResp t1 rejected"]);
    assert!(persists(&out).is_empty());
    let out = c.ack(3);
    assert_eq!(sends(&out), vec!["3->1 VoteResp t1 granted"]);
    // The two candidates refuse each other too.
    assert_eq!(sends(&c.deliver(link(1, 2))), vec!["2->1 VoteResp t1 rejected"]);
    assert_eq!(sends(&c.deliver(link(2, 1))), vec!["1->2 VoteResp t1 rejected"]);

    // After a restart the durable vote still binds.
    c.crash(3);
    c.restart(3);
    assert_eq!((c.node(3).term(), c.node(3).vote()), (1, Some(1)));
    let out = c.deliver_one(vote_from_2.clone());
    assert_eq!(sends(&out), vec!["3->2 VoteResp t1 rejected"]);
    assert_eq!(c.node(3).vote(), Some(1));
    // Re-asking by the candidate it voted for is answered again (idempotent, nothing written).
    let again = vecraft_core::raft::Message {
        group: GROUP,
        from: 1,
        to: 3,
        term: 1,
        body: vecraft_core::raft::MessageBody::Vote { last_index: 0, last_term: 0, transfer: false },
    };
    let out = c.deliver_one(again);
    assert_eq!(sends(&out), vec!["3->1 VoteResp t1 granted"]);
    assert!(persists(&out).is_empty());
}

#[test]
fn a_vote_lost_in_a_crash_was_never_revealed_so_the_node_may_vote_again() {
    let mut c = Cluster::new(&[1, 2, 3], |cfg| cfg.pre_vote = false);
    c.campaign(1);
    c.campaign(2);
    let vote_from_2 = c.take(link(2, 3)).remove(0);
    c.deliver(link(1, 3));
    assert_eq!(c.unacked_seqs(3), vec![1]);
    c.crash(3); // the vote for 1 never became durable, and no grant left the node
    assert!(!c.in_flight().iter().any(|m| m.starts_with("3->")), "{:?}", c.in_flight());
    c.restart(3);
    assert_eq!((c.node(3).term(), c.node(3).vote()), (0, None));

    // Right after a restart it ignores vote requests (it may have promised a lease before).
    assert!(c.deliver_one(vote_from_2.clone()).is_empty());
    assert_eq!(c.node(3).term(), 0);
    c.advance(3, ms(100));
    let out = c.deliver_one(vote_from_2);
    assert!(sends(&out).is_empty());
    assert_eq!(persists(&out), vec!["1: hs=1/2 ents=[]"]);
    assert_eq!(sends(&c.ack(3)), vec!["3->2 VoteResp t1 granted"]);
}

// ---------------------------------------------------------------------------------------------
// 4. Replication and commit by durable quorum; Figure 8
// ---------------------------------------------------------------------------------------------

#[test]
fn leader_commits_only_when_a_quorum_of_durable_acknowledgements_covers_the_entry() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    assert_eq!(c.node(1).commit_index(), 1);

    let out = c.step(1, propose(10, "x"));
    assert_eq!(
        sends(&out),
        vec!["1->2 App t1 prev=1/1 [1/2 x] commit=1 round=1", "1->3 App t1 prev=1/1 [1/2 x] commit=1 round=1"]
    );
    assert_eq!(persists(&out), vec!["3: hs=- ents=[1/2 x]"]);

    // Followers write the entry but acknowledge it only once it is durable; at once they
    // acknowledge only what already was durable (index 1), so the leader keeps hearing from
    // them while the write is slow.
    for id in [2, 3] {
        let out = c.deliver(to(id));
        assert_eq!(sends(&out), vec![format!("{id}->1 AppResp t1 ok match=1 round=1")]);
        // (seq 1 was its vote, seq 2 the noop)
        assert_eq!(persists(&out), vec!["3: hs=- ents=[1/2 x]"]);
    }
    c.ack(1);
    assert_eq!(c.node(1).durable_index(), 2);
    assert_eq!(c.node(1).commit_index(), 1, "one durable copy out of three");

    let out = c.ack(2);
    assert_eq!(sends(&out), vec!["2->1 AppResp t1 ok match=2 round=1"]);
    let out = c.deliver(to(1));
    assert_eq!(c.node(1).commit_index(), 2);
    assert_eq!(applied(&out), vec![(2, 1)]);
    assert_eq!(responses(&out), vec![ok(10, "applied@2")]);

    // Node 3 has not acknowledged: the heartbeat commit it sees is capped at what it is known
    // to hold, node 2 learns the full commit index.
    let out = c.tick(1, ms(20));
    assert_eq!(
        sends(&out),
        vec!["1->2 App t1 prev=1/2 [] commit=2 round=2", "1->3 App t1 prev=1/1 [] commit=2 round=2"]
    );
    c.deliver_all();
    assert_eq!((c.node(2).commit_index(), c.node(3).commit_index()), (2, 1));
    assert_eq!(c.node(2).state_machine().applied, vec![(2, b"x".to_vec())]);
}

#[test]
fn figure_8_an_old_term_entry_on_a_majority_is_not_committed_until_an_own_term_entry_is() {
    // Node 1 led term 2 and wrote 2/2 only locally; node 2 led term 3 and wrote 3/2 only
    // locally; node 3 holds just 1/1. Node 1 now wins term 4 with node 3's vote.
    let mut c = Cluster::new(&[1, 2, 3], |cfg| cfg.max_batch_entries = 1);
    let hs = |term| HardState { term, vote: None };
    c.install(1, vecraft_core::raft::DurableState { hard_state: hs(3), entries: log_of_terms(&[1, 2]), damaged: false, ..Default::default() });
    c.install(2, vecraft_core::raft::DurableState { hard_state: hs(3), entries: log_of_terms(&[1, 3]), damaged: false, ..Default::default() });
    c.install(3, vecraft_core::raft::DurableState { hard_state: hs(3), entries: log_of_terms(&[1]), damaged: false, ..Default::default() });
    c.isolated.insert(2);
    c.campaign(1);
    while c.node(1).role() != Role::Leader {
        c.deliver_all();
        c.ack(1);
        c.ack(3);
    }
    assert_eq!(c.node(1).term(), 4);
    assert_eq!(c.in_flight(), vec!["1->2 App t4 prev=2/2 [4/3 noop] commit=0 round=1", "1->3 App t4 prev=2/2 [4/3 noop] commit=0 round=1"]);
    c.ack(1);
    assert_eq!(sends(&c.deliver(to(3))), vec!["3->1 AppResp t4 reject prev=2 hint=None/2 round=1"]);
    assert_eq!(sends(&c.deliver(to(1))), vec!["1->3 App t4 prev=1/1 [2/2 c2t2] commit=0 round=1"]);
    c.deliver(to(3));
    assert_eq!(sends(&c.ack(3)), vec!["3->1 AppResp t4 ok match=2 round=1"]);
    let out = c.deliver(to(1));
    // 2/2 is now on nodes 1 and 3, a majority, yet it is of term 2: not committed by counting.
    // (Node 2, whose last entry is 3/2, could still win an election with node 3's vote and
    // overwrite it.)
    assert_eq!(c.node(1).commit_index(), 0);
    assert!(applied(&out).is_empty());
    assert_eq!(sends(&out), vec!["1->3 App t4 prev=2/2 [4/3 noop] commit=0 round=1"]);
    assert!(c.node(3).log().is_up_to_date(2, 3), "node 2's log would still win node 3's vote");

    // Once the term-4 entry is durable on the same majority, everything up to it commits.
    c.deliver(to(3));
    c.ack(3);
    let out = c.deliver(to(1));
    assert_eq!(c.node(1).commit_index(), 3);
    assert_eq!(applied(&out), vec![(1, 1), (2, 2), (3, 4)]);
    assert!(!c.node(3).log().is_up_to_date(2, 3), "now node 2 can no longer win node 3's vote");
}

// ---------------------------------------------------------------------------------------------
// 5. Follower log conflicts, fast backtracking
// ---------------------------------------------------------------------------------------------

#[test]
fn divergent_follower_is_repaired_with_one_rejection_per_conflicting_term() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    let state = |term, terms: &[u64]| vecraft_core::raft::DurableState {
        hard_state: HardState { term, vote: None },
        entries: log_of_terms(terms),
        damaged: false,
        ..Default::default()
    };
    c.install(1, state(5, &[1, 1, 1, 4, 4, 4]));
    // Five divergent uncommitted entries in two terms (2 and 3), longer than the leader's log.
    c.install(2, state(3, &[1, 1, 1, 2, 2, 3, 3, 3]));
    c.install(3, state(5, &[1, 1, 1, 4, 4, 4]));
    c.campaign(1);
    let traffic = c.stabilize();
    assert_eq!(c.node(1).role(), Role::Leader);
    assert_eq!(c.node(1).term(), 6);
    let conversation: Vec<&String> = traffic.iter().filter(|m| m.contains("1->2 App") || m.contains("2->1 App")).collect();
    assert_eq!(
        conversation,
        vec![
            "1->2 App t6 prev=4/6 [6/7 noop] commit=0 round=1",
            "2->1 AppResp t6 reject prev=6 hint=Some(3)/6 round=1",
            "1->2 App t6 prev=4/5 [4/6 c6t4, 6/7 noop] commit=0 round=1",
            "2->1 AppResp t6 reject prev=5 hint=Some(2)/4 round=1",
            // (node 3 has acknowledged meanwhile, so 6/7 is committed by now)
            "1->2 App t6 prev=1/3 [4/4 c4t4, 4/5 c5t4, 4/6 c6t4, 6/7 noop] commit=7 round=1",
            // At once: the durable prefix that survived the truncation; then the rest once written.
            "2->1 AppResp t6 ok match=3 round=1",
            "2->1 AppResp t6 ok match=7 round=1",
        ]
    );
    let rejections = traffic.iter().filter(|m| m.starts_with("2->1 AppResp") && m.contains("reject")).count();
    assert_eq!(rejections, 2, "one round trip per conflicting term (2 and 3), not per entry (5)");
    assert_eq!(log_terms(c.node(2)), vec![1, 1, 1, 4, 4, 4, 6]);
    assert_eq!(c.node(2).log(), c.node(1).log());
    // The follower's disk agrees: the truncation was written, not just done in memory.
    let replayed = vecraft_core::raft::DurableState::replay(&c.slots[&2].disk).unwrap();
    assert_eq!(replayed.entries, c.node(1).log().entries().to_vec());

    c.tick(1, ms(20));
    c.stabilize();
    for id in [1, 2, 3] {
        assert_eq!(c.node(id).commit_index(), 7, "node {id}");
    }
}

/// A follower whose disk is slow (a long WAL write in flight) still answers its leader's
/// heartbeat at once with the match it holds durably; the full acknowledgement follows the
/// write. Returns what node 2 sent on the heartbeat, and on the disk's acknowledgement.
fn heartbeat_during_a_slow_write(tweak: impl Fn(&mut vecraft_core::raft::RaftConfig)) -> (Vec<String>, Vec<String>) {
    let mut c = Cluster::new(&[1, 2, 3], tweak);
    c.elect(1);
    c.tick(1, ms(20));
    c.stabilize();
    let base = c.node(1).log().last_index();
    c.step(1, propose(5, "x"));
    c.ack(1);
    // Node 2 takes the entry; its write does not come back from the disk.
    c.deliver(to(2));
    assert_eq!(c.unacked_seqs(2).len(), 1, "the entry's write is in flight");
    c.drop_msgs(from(2));
    // Node 3 acknowledges, so the entry commits without node 2.
    c.deliver(to(3));
    c.ack(3);
    c.deliver(to(1));
    assert_eq!(c.node(1).commit_index(), base + 1);
    c.drop_msgs(|_| true);
    // The next heartbeat round reaches node 2 while its write is still in flight.
    c.tick(1, ms(20));
    let on_heartbeat = sends(&c.deliver(to(2)));
    let on_disk = sends(&c.ack(2));
    (on_heartbeat, on_disk)
}

#[test]
fn a_heartbeat_is_answered_at_once_while_an_earlier_write_is_on_its_way_to_the_disk() {
    let (on_heartbeat, on_disk) = heartbeat_during_a_slow_write(|_| {});
    // The heartbeat carries the durable match (1: the leader's no-op) and is answered with it
    // at once, echoing its round; the append's acknowledgement comes with the disk, and the
    // heartbeat's is not repeated then (it would be the same answer).
    assert_eq!(on_heartbeat, vec!["2->1 AppResp t1 ok match=1 round=3"]);
    assert_eq!(on_disk, vec!["2->1 AppResp t1 ok match=2 round=2"]);
}

/// The bug switch: with the answer held back for the disk, node 2 is silent on the heartbeat.
#[cfg(feature = "bug-injection")]
#[test]
fn bug_heartbeat_ack_waits_for_disk_silences_the_follower() {
    let (on_heartbeat, on_disk) = heartbeat_during_a_slow_write(|cfg| cfg.bugs.heartbeat_ack_waits_for_disk = true);
    assert_eq!(on_heartbeat, Vec::<String>::new());
    assert_eq!(on_disk.len(), 2, "{on_disk:?}");
}

#[test]
fn follower_with_a_short_log_is_caught_up_after_one_rejection() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    let state = |terms: &[u64]| vecraft_core::raft::DurableState {
        hard_state: HardState { term: 2, vote: None },
        entries: log_of_terms(terms),
        damaged: false,
        ..Default::default()
    };
    c.install(1, state(&[1, 1, 2, 2, 2, 2]));
    c.install(2, state(&[1]));
    c.install(3, state(&[1, 1, 2, 2, 2, 2]));
    c.campaign(1);
    let traffic = c.stabilize();
    let rejections: Vec<&String> = traffic.iter().filter(|m| m.contains("reject")).collect();
    assert_eq!(rejections, vec!["2->1 AppResp t3 reject prev=6 hint=None/2 round=1"]);
    assert_eq!(log_terms(c.node(2)), vec![1, 1, 2, 2, 2, 2, 3]);
}

// ---------------------------------------------------------------------------------------------
// 6. Client errors: NotLeader, Indeterminate
// ---------------------------------------------------------------------------------------------

#[test]
fn proposals_to_followers_are_refused_and_in_flight_ones_become_indeterminate_on_step_down() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.tick(1, ms(20));
    c.stabilize();

    let out = c.step(2, propose(5, "nope"));
    assert_eq!(responses(&out), vec![err(5, ClientError::NotLeader { leader: Some(1) })]);
    assert!(sends(&out).is_empty() && persists(&out).is_empty());
    let out = c.step(3, read(6, ReadMode::ReadIndex));
    assert_eq!(responses(&out), vec![err(6, ClientError::NotLeader { leader: Some(1) })]);

    // Leader 1 is cut off with a proposal and a read in flight; 2 and 3 elect 2.
    c.isolated.insert(1);
    let out = c.step(1, propose(20, "x"));
    assert!(responses(&out).is_empty());
    let out = c.step(1, read(21, ReadMode::ReadIndex));
    assert!(responses(&out).is_empty());
    c.advance(3, ms(100));
    c.elect(2);
    assert_eq!(c.node(2).term(), 2);

    // Healed: 2's heartbeat deposes 1, which answers both clients.
    c.isolated.clear();
    c.drop_msgs(from(1));
    c.tick(2, ms(20));
    let out = c.deliver(to(1));
    assert_eq!(c.node(1).role(), Role::Follower);
    assert_eq!(
        responses(&out),
        vec![err(20, ClientError::Indeterminate), err(21, ClientError::NotLeader { leader: Some(2) })]
    );
    c.stabilize();
    // Here the proposal was in fact lost: 1's entry 1/2 was replaced by 2's noop.
    assert_eq!(log_terms(c.node(1)), vec![1, 2]);
    assert!(c.node(1).state_machine().applied.is_empty());
}

// ---------------------------------------------------------------------------------------------
// 7. Check-quorum, vote stickiness, pre-vote against disruption
// ---------------------------------------------------------------------------------------------

#[test]
fn isolated_leader_steps_down_but_a_connected_one_does_not() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    // Connected: heartbeats are answered, it stays leader through many check-quorum periods.
    for _ in 0..50 {
        c.tick(1, ms(20));
        c.stabilize();
    }
    assert_eq!(c.node(1).role(), Role::Leader);

    c.isolated.insert(1);
    let mut stepped_down_after = None;
    for i in 1..=20u64 {
        c.tick(1, ms(20));
        c.deliver_all();
        if c.node(1).role() != Role::Leader {
            stepped_down_after = Some(i * 20);
            break;
        }
    }
    // It last heard from the quorum just before the cut; the check runs every election
    // timeout (100ms), so it notices within two of them.
    let after = stepped_down_after.expect("an isolated leader must step down");
    assert!((100..=200).contains(&after), "stepped down after {after}ms");
    assert_eq!((c.node(1).role(), c.node(1).term(), c.node(1).leader()), (Role::Follower, 1, None));
}

#[test]
fn followers_in_lease_ignore_a_higher_term_vote_request() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.tick(1, ms(20));
    c.stabilize();
    let disruptive = |to| vecraft_core::raft::Message {
        group: GROUP,
        from: 3,
        to,
        term: 9,
        body: vecraft_core::raft::MessageBody::Vote { last_index: 1, last_term: 1, transfer: false },
    };
    // Node 2 heard from the leader less than an election timeout ago; the leader leads.
    c.advance(2, ms(99));
    assert!(c.deliver_one(disruptive(2)).is_empty());
    assert!(c.deliver_one(disruptive(1)).is_empty());
    assert_eq!((c.node(2).term(), c.node(2).vote()), (1, Some(1)));
    assert_eq!((c.node(1).term(), c.node(1).role()), (1, Role::Leader));

    // Once the lease window has passed without news from the leader, node 2 does listen.
    c.advance(2, ms(1));
    let out = c.deliver_one(disruptive(2));
    assert_eq!(persists(&out), vec!["3: hs=9/3 ents=[]"]);
    assert_eq!(sends(&c.ack(2)), vec!["2->3 VoteResp t9 granted"]);
}

#[test]
fn pre_vote_keeps_a_rejoining_partitioned_node_from_bumping_terms() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.isolated.insert(3);
    for _ in 0..10 {
        // The leader keeps the others in lease; node 3 keeps timing out alone.
        c.tick(1, ms(100));
        c.stabilize();
        let out = c.tick(3, ms(200));
        assert_eq!(sends(&out), vec!["3->1 PreVote t2 last=1/1", "3->2 PreVote t2 last=1/1"]);
        assert!(persists(&out).is_empty());
        assert_eq!((c.node(3).role(), c.node(3).term()), (Role::PreCandidate, 1));
    }
    c.drop_msgs(|_| true);
    c.isolated.clear();

    // Rejoined: its pre-votes are refused, no term anywhere moves.
    let out = c.tick(3, ms(200));
    assert_eq!(sends(&out), vec!["3->1 PreVote t2 last=1/1", "3->2 PreVote t2 last=1/1"]);
    let out = c.deliver(from(3));
    assert_eq!(sends(&out), vec!["1->3 PreVoteResp t1 rejected", "2->3 PreVoteResp t1 rejected"]);
    c.deliver(to(3));
    for id in [1, 2, 3] {
        assert_eq!(c.node(id).term(), 1, "node {id}");
    }
    assert_eq!(c.node(1).role(), Role::Leader);
    c.tick(1, ms(20));
    c.stabilize();
    assert_eq!((c.node(3).role(), c.node(3).leader()), (Role::Follower, Some(1)));
}

// ---------------------------------------------------------------------------------------------
// 8. ReadIndex
// ---------------------------------------------------------------------------------------------

#[test]
fn new_leader_answers_reads_only_after_an_entry_of_its_own_term_commits() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    let out = c.step(1, propose(10, "x"));
    assert_eq!(sends(&out).len(), 2);
    c.stabilize();
    assert_eq!(c.take_responses(1), vec![ok(10, "applied@2")]);
    // x is committed and acknowledged, but the followers have not heard the new commit index.
    assert_eq!((c.node(2).commit_index(), c.node(3).commit_index()), (1, 1));

    c.crash(1);
    c.advance_all(ms(200));
    c.campaign(2);
    while c.node(2).role() != Role::Leader {
        c.deliver_all();
        c.ack(2);
        c.ack(3);
    }
    assert_eq!(c.node(2).commit_index(), 1);
    // Serving now would return a state without x: a stale read. It must wait.
    let out = c.step(2, read(30, ReadMode::ReadIndex));
    assert!(responses(&out).is_empty());
    assert!(sends(&out).is_empty(), "no heartbeat round before the own-term commit");
    let out = c.step(2, read(31, ReadMode::Lease));
    assert!(responses(&out).is_empty());

    c.stabilize();
    assert_eq!(c.node(2).commit_index(), 3);
    assert_eq!(c.take_responses(2), vec![ok(30, "x"), ok(31, "x")]);
}

#[test]
fn read_index_waits_for_a_quorum_to_acknowledge_a_round_sent_after_the_read() {
    let mut c = Cluster::new(&[1, 2, 3], |cfg| cfg.lease_reads = false);
    c.elect(1);
    c.step(1, propose(10, "x"));
    c.stabilize();
    let out = c.tick(1, ms(20));
    assert_eq!(
        sends(&out),
        vec!["1->2 App t1 prev=1/2 [] commit=2 round=2", "1->3 App t1 prev=1/2 [] commit=2 round=2"]
    );
    c.deliver(to(2));
    c.deliver(to(3));
    assert_eq!(c.in_flight(), vec!["2->1 AppResp t1 ok match=2 round=2", "3->1 AppResp t1 ok match=2 round=2"]);

    // The read arrives while acknowledgements of the *previous* round are on their way.
    let out = c.step(1, read(40, ReadMode::ReadIndex));
    assert_eq!(
        sends(&out),
        vec!["1->2 App t1 prev=1/2 [] commit=2 round=3", "1->3 App t1 prev=1/2 [] commit=2 round=3"]
    );
    assert!(responses(&out).is_empty());
    let out = c.deliver(|m| m.to == 1);
    assert!(responses(&out).is_empty(), "round 2 was sent before the read: it proves nothing about it");

    // One follower acknowledging round 3 makes a quorum with the leader.
    c.deliver(to(2));
    let out = c.deliver(to(1));
    assert_eq!(responses(&out), vec![ok(40, "x")]);
}

#[test]
fn a_deposed_partitioned_leader_never_answers_a_read() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.tick(1, ms(20));
    c.stabilize();
    c.isolated.insert(1);
    c.advance_all(ms(200));
    c.elect(2);
    c.step(2, propose(11, "y"));
    c.stabilize();
    assert_eq!(c.take_responses(2), vec![ok(11, "applied@3")]);

    // Node 1 still believes it leads term 1 (its check-quorum has not run yet).
    assert_eq!(c.node(1).role(), Role::Leader);
    c.step(1, read(50, ReadMode::ReadIndex));
    c.step(1, read(51, ReadMode::Lease));
    for _ in 0..3 {
        c.tick(1, ms(20));
        c.deliver_all();
    }
    assert!(c.take_responses(1).is_empty(), "no quorum can confirm node 1 any more");

    // Healed: its next heartbeat is answered by a higher term; it steps down and refuses.
    c.isolated.clear();
    c.drop_msgs(|_| true);
    let out = c.tick(1, ms(20));
    assert!(sends(&out).iter().all(|m| m.contains("App t1")));
    c.deliver(from(1));
    let out = c.deliver(to(1));
    assert_eq!(c.node(1).role(), Role::Follower);
    let rs = responses(&out);
    assert_eq!(rs.len(), 2);
    assert!(rs.iter().all(|r| matches!(r.result, Err(ClientError::NotLeader { .. }))), "{rs:?}");
}

// ---------------------------------------------------------------------------------------------
// 9. Lease reads
// ---------------------------------------------------------------------------------------------

#[test]
fn lease_reads_skip_the_round_trip_only_while_the_lease_holds() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.step(1, propose(10, "x"));
    c.stabilize();
    c.take_responses(1);
    c.tick(1, ms(20)); // round 2, sent at this instant on node 1's clock
    c.stabilize();
    let sent = c.slots[&1].clock;
    assert!(c.node(1).lease_valid(sent));

    let out = c.step(1, read(60, ReadMode::Lease));
    assert!(sends(&out).is_empty(), "served from the lease, no round trip");
    assert_eq!(responses(&out), vec![ok(60, "x")]);
    // A ReadIndex read on the same leader still pays its round.
    let out = c.step(1, read(61, ReadMode::ReadIndex));
    assert_eq!(sends(&out).len(), 2);
    assert!(responses(&out).is_empty());
    c.drop_msgs(|_| true);
    assert_eq!(c.take_responses(1), vec![ok(60, "x")]);

    // The lease is the election timeout (100ms) shrunk for 5% drift both ways: ~90.5ms.
    c.advance(1, ms(90));
    assert!(c.node(1).lease_valid(c.slots[&1].clock));
    c.advance(1, ms(1));
    assert!(!c.node(1).lease_valid(c.slots[&1].clock));
    let out = c.step(1, read(62, ReadMode::Lease));
    assert!(responses(&out).is_empty(), "expired lease: falls back to a heartbeat round");
    assert_eq!(
        sends(&out),
        vec!["1->2 App t1 prev=1/2 [] commit=2 round=4", "1->3 App t1 prev=1/2 [] commit=2 round=4"]
    );
    c.stabilize();
    // Round 4 was sent after read 61 arrived too, so it confirms both.
    assert_eq!(c.take_responses(1), vec![ok(61, "x"), ok(62, "x")]);
    assert!(c.node(1).lease_valid(c.slots[&1].clock), "the confirmed round renewed the lease");
}

#[test]
fn no_lease_reads_without_check_quorum() {
    let mut c = Cluster::new(&[1, 2, 3], |cfg| {
        cfg.check_quorum = false;
        cfg.lease_reads = true;
    });
    c.elect(1);
    c.tick(1, ms(20));
    c.stabilize();
    assert!(!c.node(1).lease_valid(c.slots[&1].clock));
    let out = c.step(1, read(70, ReadMode::Lease));
    assert!(responses(&out).is_empty());
    assert_eq!(sends(&out).len(), 2, "a heartbeat round instead");
    c.stabilize();
    assert_eq!(c.take_responses(1), vec![ok(70, "")]);
}

// ---------------------------------------------------------------------------------------------
// 10. Lost messages
// ---------------------------------------------------------------------------------------------

#[test]
fn replication_recovers_from_dropped_appends_and_responses_via_heartbeats() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.step(1, propose(10, "x"));
    assert_eq!(c.drop_msgs(|_| true).len(), 2, "both appends lost");
    c.stabilize();
    assert_eq!(c.node(1).commit_index(), 1);

    // First heartbeat: a batch is in flight and not yet overdue, so just a heartbeat.
    let out = c.tick(1, ms(20));
    assert_eq!(
        sends(&out),
        vec!["1->2 App t1 prev=1/1 [] commit=1 round=2", "1->3 App t1 prev=1/1 [] commit=1 round=2"]
    );
    c.stabilize();
    assert_eq!(c.node(1).commit_index(), 1);
    // Two heartbeat intervals without progress: the leader re-sends from what they hold.
    let out = c.tick(1, ms(20));
    assert_eq!(
        sends(&out),
        vec!["1->2 App t1 prev=1/1 [1/2 x] commit=1 round=3", "1->3 App t1 prev=1/1 [1/2 x] commit=1 round=3"]
    );
    c.deliver_all();
    c.ack(2);
    c.ack(3);
    // This time the acknowledgement from 2 is lost, 3's arrives.
    c.drop_msgs(from(2));
    let out = c.deliver(to(1));
    assert_eq!(responses(&out), vec![ok(10, "applied@2")]);

    // Node 2's lost acknowledgement is recovered too: the next probe re-sends and it re-acks.
    for _ in 0..3 {
        c.tick(1, ms(20));
        c.stabilize();
    }
    for id in [1, 2, 3] {
        assert_eq!(c.node(id).commit_index(), 2, "node {id}");
        assert_eq!(c.node(id).state_machine().applied, vec![(2, b"x".to_vec())], "node {id}");
    }
}

// ---------------------------------------------------------------------------------------------
// 11. Crash and restart
// ---------------------------------------------------------------------------------------------

#[test]
fn restart_recovers_exactly_the_acknowledged_writes() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.step(1, propose(10, "x"));
    c.deliver_all();
    c.ack(2); // node 2's copy of x is durable, node 3's is not
    c.crash(3);
    c.crash(2);
    c.restart(2);
    c.restart(3);
    assert_eq!((c.node(2).term(), c.node(2).vote(), log_terms(c.node(2))), (1, Some(1), vec![1, 1]));
    assert_eq!((c.node(3).term(), c.node(3).vote(), log_terms(c.node(3))), (1, Some(1), vec![1]));
    assert_eq!(c.node(2).durable_index(), 2);
    assert_eq!(c.node(3).durable_index(), 1);
    // Node 2's acknowledgement left before its crash and is still in the network. With it the
    // leader has one durable follower copy, but its own is not durable yet: no commit ...
    let out = c.deliver(to(1));
    assert_eq!(responses(&out), vec![]);
    assert_eq!(c.node(1).commit_index(), 1);
    // ... until its own write lands (1 + 2 is a quorum).
    c.ack(1);
    assert_eq!(c.take_responses(1), vec![ok(10, "applied@2")]);
    c.tick(1, ms(20));
    c.stabilize();
    c.tick(1, ms(20));
    c.stabilize();
    for id in [1, 2, 3] {
        assert_eq!(c.node(id).commit_index(), 2, "node {id}");
    }
}

#[test]
fn leader_does_not_count_its_own_unacknowledged_entries() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.step(1, propose(10, "x"));
    c.drop_msgs(to(3));
    c.deliver(to(2));
    c.ack(2);
    c.deliver(to(1));
    // x is durable on node 2 only; the leader's own copy is merely in memory.
    assert_eq!(c.node(1).durable_index(), 1);
    assert_eq!(c.node(1).commit_index(), 1);
    assert!(c.take_responses(1).is_empty());

    // Had it crashed now, x would be gone from its disk:
    let disk_has_x = c.slots[&1].disk.iter().any(|r| r.entries.iter().any(|e| e.index == 2));
    assert!(!disk_has_x);

    let out = c.ack(1);
    assert_eq!(c.node(1).commit_index(), 2);
    assert_eq!(responses(&out), vec![ok(10, "applied@2")]);
}

#[test]
fn restarted_leader_rejoins_as_follower_and_keeps_its_durable_log() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.step(1, propose(10, "x"));
    c.stabilize();
    c.step(1, propose(11, "lost"));
    c.drop_msgs(|_| true);
    c.crash(1);
    c.restart(1);
    assert_eq!((c.node(1).role(), c.node(1).term(), c.node(1).vote()), (Role::Follower, 1, Some(1)));
    assert_eq!(log_terms(c.node(1)), vec![1, 1], "the unacknowledged proposal is gone");
    assert_eq!(c.node(1).commit_index(), 0, "commit is volatile; relearned from the next leader");
    assert_eq!(c.take_responses(1), vec![ok(10, "applied@2")]);

    c.advance_all(ms(200));
    c.elect(2);
    c.tick(2, ms(20));
    c.stabilize();
    assert_eq!(c.node(1).commit_index(), 3);
    assert_eq!(c.node(1).state_machine().applied, vec![(2, b"x".to_vec())]);
}

// ---------------------------------------------------------------------------------------------
// 12. Garbage in
// ---------------------------------------------------------------------------------------------

use vecraft_core::raft::{Entry, EntryPayload, Message, MessageBody, RejectHint};

fn msg(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message { group: GROUP, from, to, term, body }
}

fn app(prev_index: u64, prev_term: u64, entries: Vec<Entry>, commit: u64) -> MessageBody {
    MessageBody::Append { prev_index, prev_term, entries, commit, round: 1 }
}

fn noop(term: u64, index: u64) -> Entry {
    Entry { term, index, payload: EntryPayload::Noop }
}

/// What must not change when garbage is ignored.
fn fingerprint(c: &Cluster, id: u64) -> (Role, u64, Option<u64>, Option<u64>, u64, Vec<u64>) {
    let n = c.node(id);
    (n.role(), n.term(), n.vote(), n.leader(), n.commit_index(), log_terms(n))
}

#[test]
fn garbage_messages_and_acks_are_ignored_without_panic() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.elect(1);
    c.step(1, propose(10, "x"));
    c.stabilize();
    c.tick(1, ms(20));
    c.stabilize();
    let (f0, l0) = (fingerprint(&c, 2), fingerprint(&c, 1));

    let ignored_by_follower = vec![
        // From a node outside the group, for another group, for another node, from itself.
        msg(9, 2, 1, app(2, 1, vec![], 2)),
        Message { group: GROUP + 1, ..msg(1, 2, 1, app(2, 1, vec![], 2)) },
        msg(1, 3, 1, app(2, 1, vec![], 2)),
        msg(2, 2, 1, app(2, 1, vec![], 2)),
        // Stale-term vote and vote answers, answers to questions never asked.
        msg(3, 2, 0, MessageBody::Vote { last_index: 9, last_term: 9, transfer: false }),
        msg(3, 2, 1, MessageBody::VoteResponse { granted: true }),
        msg(3, 2, 1, MessageBody::PreVoteResponse { granted: true }),
        msg(1, 2, 1, MessageBody::AppendResponse { success: true, match_index: 2, reject: None, round: 1, reset: false, applied: 0 }),
        // Malformed appends from the real leader: gaps, out of order, terms above the leader's,
        // indexes that overflow.
        msg(1, 2, 1, app(2, 1, vec![noop(1, 4)], 2)),
        msg(1, 2, 1, app(2, 1, vec![noop(1, 3), noop(1, 5)], 2)),
        msg(1, 2, 1, app(2, 1, vec![noop(1, 3), noop(1, 3)], 2)),
        msg(1, 2, 1, app(2, 1, vec![noop(5, 3)], 2)),
        msg(1, 2, 1, app(u64::MAX, 1, vec![noop(1, 0)], 2)),
        msg(1, 2, 1, app(u64::MAX - 1, 1, vec![noop(1, u64::MAX), noop(1, 0)], 2)),
        // A term no election can ever follow.
        msg(3, 2, u64::MAX, MessageBody::Vote { last_index: 9, last_term: 9, transfer: false }),
        msg(3, 2, u64::MAX, MessageBody::AppendResponse { success: false, match_index: 0, reject: None, round: 0, reset: false, applied: 0 }),
    ];
    for m in ignored_by_follower {
        let shown = fmt_msg(&m);
        let out = c.step(2, RaftInput::Message(m));
        assert!(out.is_empty(), "{shown} -> {out:?}");
        assert_eq!(fingerprint(&c, 2), f0, "{shown}");
    }

    // Answered, but harmlessly: a stale append gets our term back, a stale pre-vote a refusal,
    // an append past our log a rejection hint, a huge commit is capped at what we hold. The
    // stale append's round is not echoed: it belongs to another leadership.
    let answered = vec![
        (msg(3, 2, 0, app(0, 0, vec![], 9)), "2->3 AppResp t1 stale round=0"),
        (msg(3, 2, 0, MessageBody::PreVote { last_index: 9, last_term: 9 }), "2->3 PreVoteResp t1 rejected"),
        (msg(1, 2, 1, app(u64::MAX - 1, 1, vec![noop(1, u64::MAX)], 9)), "2->1 AppResp t1 reject prev=18446744073709551614 hint=None/3 round=1"),
        (msg(1, 2, 1, app(2, 1, vec![], u64::MAX)), "2->1 AppResp t1 ok match=2 round=1"),
    ];
    for (m, expect) in answered {
        let out = c.step(2, RaftInput::Message(m));
        assert_eq!(sends(&out), vec![expect]);
        assert_eq!(fingerprint(&c, 2), f0);
    }
    c.drop_msgs(|_| true);

    // The leader: responses claiming entries it never sent, rejections of appends it never
    // sent, answers from strangers.
    let ignored_by_leader = vec![
        msg(2, 1, 1, MessageBody::AppendResponse { success: true, match_index: 99, reject: None, round: 1, reset: false, applied: 0 }),
        msg(
            2,
            1,
            1,
            MessageBody::AppendResponse {
                success: false,
                match_index: 0,
                reject: Some((u64::MAX, RejectHint { conflict_term: Some(7), conflict_index: u64::MAX })),
                round: 1,
                reset: false,
                applied: 0,
            },
        ),
        msg(9, 1, 1, MessageBody::AppendResponse { success: true, match_index: 2, reject: None, round: 1, reset: false, applied: 0 }),
        msg(3, 1, 1, MessageBody::VoteResponse { granted: true }),
        msg(3, 1, 1, MessageBody::Vote { last_index: 99, last_term: 1, transfer: false }),
    ];
    for m in ignored_by_leader {
        let shown = fmt_msg(&m);
        let out = c.step(1, RaftInput::Message(m));
        assert!(sends(&out).iter().all(|s| !s.starts_with("1->9")), "{shown}");
        assert!(responses(&out).is_empty(), "{shown}");
        assert_eq!(fingerprint(&c, 1), l0, "{shown}");
    }
    c.drop_msgs(|_| true);

    // Acknowledgements of writes never issued, or already acknowledged, change nothing.
    for seq in [0, 1, 99, u64::MAX] {
        assert!(c.step(1, RaftInput::Persisted { seq }).is_empty());
        assert!(c.step(2, RaftInput::Persisted { seq }).is_empty());
    }
    assert_eq!((fingerprint(&c, 1), fingerprint(&c, 2)), (l0, f0));

    // And the cluster still works: the garbage-rejection above did not wedge replication to 2.
    c.step(1, propose(11, "y"));
    c.stabilize();
    c.tick(1, ms(20));
    c.stabilize();
    for id in [1, 2, 3] {
        assert_eq!(c.node(id).commit_index(), 3, "node {id}");
    }
}

#[test]
fn garbage_rejection_while_probing_is_ignored() {
    let mut c = Cluster::new(&[1, 2, 3], |_| {});
    c.campaign(1);
    while c.node(1).role() != Role::Leader {
        c.deliver_all();
        for id in [1, 2, 3] {
            c.ack(id);
        }
    }
    // Right after the election every follower is probed, one append at a time.
    let l0 = fingerprint(&c, 1);
    let garbage = msg(
        2,
        1,
        1,
        MessageBody::AppendResponse {
            success: false,
            match_index: 0,
            reject: Some((u64::MAX, RejectHint { conflict_term: None, conflict_index: 0 })),
            round: 1,
            reset: false,
            applied: 0,
        },
    );
    let out = c.step(1, RaftInput::Message(garbage));
    assert!(sends(&out).is_empty());
    assert_eq!(fingerprint(&c, 1), l0);
    c.stabilize();
    assert_eq!(c.node(2).log(), c.node(1).log());
    assert_eq!(c.node(1).commit_index(), 1);
}

// ---------------------------------------------------------------------------------------------
// Property: random interleavings never break election safety or state-machine safety
// ---------------------------------------------------------------------------------------------

use proptest::prelude::*;
use std::collections::BTreeMap;
use vecraft_core::raft::{LogIndex, Term};

/// One thing that can happen in the random schedule. Indices into the in-flight list are taken
/// modulo its length; nodes are 1..=3.
#[derive(Clone, Debug)]
enum Action {
    Deliver(usize),
    /// Everything in flight, in random-free send order (lets schedules make progress).
    DeliverAll,
    Drop(usize),
    Duplicate(usize),
    AckOldest(u64),
    AckAll(u64),
    Tick(u64, u64),
    Propose(u64),
    /// Crash (losing unacknowledged writes) and restart from the acknowledged ones.
    CrashRestart(u64),
}

fn action() -> impl Strategy<Value = Action> {
    let node = 1u64..=3;
    prop_oneof![
        8 => any::<usize>().prop_map(Action::Deliver),
        2 => Just(Action::DeliverAll),
        1 => any::<usize>().prop_map(Action::Drop),
        1 => any::<usize>().prop_map(Action::Duplicate),
        2 => node.clone().prop_map(Action::AckOldest),
        4 => node.clone().prop_map(Action::AckAll),
        5 => (node.clone(), 0u64..120).prop_map(|(n, dt)| Action::Tick(n, dt)),
        3 => node.clone().prop_map(Action::Propose),
        1 => node.prop_map(Action::CrashRestart),
    ]
}

/// Invariants checked after every action.
#[derive(Default)]
struct Safety {
    /// Term -> the (node, incarnation) that led it.
    leaders: BTreeMap<Term, (u64, u32)>,
    /// Index -> the entry first seen committed there.
    committed: BTreeMap<LogIndex, Entry>,
}

impl Safety {
    fn check(&mut self, c: &Cluster) -> Result<(), TestCaseError> {
        for (&id, slot) in &c.slots {
            let Some(n) = slot.raft.as_ref() else { continue };
            if n.role() == Role::Leader {
                let me = (id, slot.incarnation);
                let first = *self.leaders.entry(n.term()).or_insert(me);
                prop_assert_eq!(first, me, "two leaders in term {}", n.term());
            }
            prop_assert!(n.applied_index() <= n.commit_index());
            prop_assert!(n.commit_index() <= n.log().last_index());
            for i in 1..=n.commit_index() {
                let e = n.log().get(i).expect("committed entries are held").clone();
                let first = self.committed.entry(i).or_insert_with(|| e.clone());
                prop_assert_eq!(&*first, &e, "node {} committed a different entry at {}", id, i);
            }
        }
        Ok(())
    }
}

fn run_schedule(actions: &[Action], pre_vote: bool, check_quorum: bool) -> Result<(), TestCaseError> {
    let mut c = Cluster::new(&[1, 2, 3], |cfg| {
        cfg.pre_vote = pre_vote;
        cfg.check_quorum = check_quorum;
        cfg.max_inflight = 2;
        cfg.max_batch_entries = 2;
    });
    let mut safety = Safety::default();
    let mut next_request = 1000;
    for a in actions {
        match *a {
            Action::Deliver(i) if !c.net.is_empty() => {
                let m = c.net.remove(i % c.net.len());
                c.deliver_one(m);
            }
            Action::DeliverAll => {
                c.deliver_all();
            }
            Action::Drop(i) if !c.net.is_empty() => {
                let len = c.net.len();
                c.net.remove(i % len);
            }
            Action::Duplicate(i) if !c.net.is_empty() => {
                let m = c.net[i % c.net.len()].clone();
                c.net.push(m);
            }
            Action::AckOldest(n) => {
                if let Some(&seq) = c.unacked_seqs(n).first() {
                    c.ack_upto(n, seq);
                }
            }
            Action::AckAll(n) => {
                c.ack(n);
            }
            Action::Tick(n, dt) => {
                c.tick(n, ms(dt));
            }
            Action::Propose(n) => {
                next_request += 1;
                c.step(n, propose(next_request, &format!("cmd{next_request}")));
            }
            Action::CrashRestart(n) => {
                c.crash(n);
                c.restart(n);
            }
            _ => {}
        }
        safety.check(&c)?;
    }

    // Heal: no more faults. The cluster must elect a leader and commit a new proposal.
    let mut committed_probe = false;
    for _ in 0..1000 {
        for id in [1, 2, 3] {
            c.tick(id, ms(10));
        }
        c.stabilize();
        safety.check(&c)?;
        let leader = [1, 2, 3].into_iter().find(|&id| c.node(id).role() == Role::Leader);
        if let Some(l) = leader {
            if !committed_probe {
                c.step(l, propose(1, "probe"));
                committed_probe = true;
                continue;
            }
            c.stabilize();
            let done = c.slots[&l].responses.iter().any(|r| r.id == 1 && r.result.is_ok());
            if done {
                return Ok(());
            }
            let failed = c.slots.values().any(|s| s.responses.iter().any(|r| r.id == 1 && r.result.is_err()));
            if failed {
                committed_probe = false; // lost leadership meanwhile; try again
                for s in c.slots.values_mut() {
                    s.responses.retain(|r| r.id != 1);
                }
            }
        }
    }
    prop_assert!(false, "no leader committed a proposal within 10s after healing");
    Ok(())
}

// Strength, measured while writing this: over 2000 schedules about half commit three or more
// entries before healing and there are two leaders (terms) per schedule on average; with the
// "candidate leads before its own vote is durable" bug re-introduced, the first run found a
// 17-step counterexample (same node leading term 1 in two incarnations, pre_vote off).
proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_schedules_keep_election_and_state_machine_safety(
        actions in proptest::collection::vec(action(), 50..500),
        pre_vote in any::<bool>(),
        check_quorum in any::<bool>(),
    ) {
        run_schedule(&actions, pre_vote, check_quorum)?;
    }
}
