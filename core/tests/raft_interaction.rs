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
    RaftInput::Propose { id, command: cmd.as_bytes().to_vec() }
}

fn read(id: u64, mode: ReadMode) -> RaftInput {
    RaftInput::Read { id, query: b"q".to_vec(), mode }
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
