//! Scripted membership changes: learners, promotion through joint consensus, removing followers
//! and the leader, the refusals that keep changes one at a time, the campaign guard for
//! committed-but-unapplied configuration entries, and the membership a restarted node uses.

mod raft_harness;

use raft_harness::*;
use std::collections::BTreeSet;
use std::time::Duration;
use vecraft_core::contract::{NodeId, StateMachine, Time};
use vecraft_core::quorum::{JointQuorum, MajorityQuorum};
use vecraft_core::raft::{
    ClientError, ConfChange, ConfChangeError, ConfChangeRefusal, ConfChangeStep, ConfEntry, ConfTransition, DurableState,
    Entry, EntryPayload, HardState, Membership, Message, MessageBody, RaftInput, RaftNode, RaftOutput, Role,
    next_membership,
};

use ConfChangeStep::{AddLearner, AddVoter, Remove};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn propose(id: u64, cmd: &str) -> RaftInput {
    RaftInput::Propose { id, command: cmd.as_bytes().to_vec().into() }
}

fn conf(id: u64, steps: Vec<ConfChangeStep>, transition: ConfTransition) -> RaftInput {
    RaftInput::ProposeConfChange { id, change: ConfChange { steps, transition } }
}

fn leave(id: u64) -> RaftInput {
    RaftInput::ProposeConfChange { id, change: ConfChange::leave_joint() }
}

/// A cluster of nodes `1..=n` whose group starts as the voters `initial` (the others are outside
/// it, waiting to be added), with 1 elected and its first entry committed everywhere.
fn cluster(n: u64, initial: &[NodeId]) -> Cluster {
    let ids: Vec<NodeId> = (1..=n).collect();
    let voters = initial.to_vec();
    let mut c = Cluster::new(&ids, move |cfg| cfg.voters = voters.clone());
    c.elect(1);
    c.stabilize();
    c
}

fn voters(c: &Cluster, id: NodeId) -> (Vec<NodeId>, Vec<NodeId>) {
    let m = c.node(id).membership();
    (m.voters.incoming.voters().iter().copied().collect(), m.voters.outgoing.voters().iter().copied().collect())
}

fn refused(c: &mut Cluster, leader: NodeId, id: u64) -> ClientError {
    let r = c.take_responses(leader);
    let found = r.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("no answer to {id}: {r:?}"));
    found.result.clone().expect_err("the change should have been refused")
}

/// Steps until the cluster is quiet, then lets a few heartbeat intervals pass on the leader (a
/// follower that missed appends is probed again once its batch counts as stalled).
fn settle(c: &mut Cluster, leader: NodeId) {
    c.stabilize();
    for _ in 0..3 {
        c.tick(leader, ms(20));
        c.stabilize();
    }
}

#[test]
fn a_learner_gets_the_log_never_votes_and_is_promoted_through_a_joint_configuration() {
    let mut c = cluster(4, &[1, 2, 3]);
    c.step(1, propose(10, "a"));
    c.stabilize();
    // Node 4 is outside the group: nothing is sent to it.
    assert_eq!(c.node(4).log().last_index(), 0);
    c.step(1, conf(11, vec![AddLearner(4)], ConfTransition::Auto));
    settle(&mut c, 1);
    for id in 1..=4 {
        assert_eq!(c.node(id).membership().learners, BTreeSet::from([4]), "node {id}");
        assert_eq!(voters(&c, id), (vec![1, 2, 3], vec![]));
    }
    // It caught up with the whole log, including what was committed before it joined.
    assert_eq!(c.node(4).commit_index(), c.node(1).commit_index());
    assert_eq!(c.node(4).state_machine().applied.len(), 1);
    // A learner never campaigns, however long it waits.
    let out = c.tick(4, ms(1_000));
    assert!(sends(&out).is_empty(), "{:?}", sends(&out));
    assert_eq!(c.node(4).role(), Role::Follower);
    // It does not count in the commit quorum: with 2 and 3 cut off nothing commits.
    c.isolated = BTreeSet::from([2, 3]);
    let before = c.node(1).commit_index();
    c.step(1, propose(12, "b"));
    c.stabilize();
    assert_eq!(c.node(4).log().last_index(), before + 1, "the learner holds the entry");
    assert_eq!(c.node(1).commit_index(), before, "but a learner's copy does not commit it");
    c.isolated.clear();
    settle(&mut c, 1);
    assert_eq!(c.node(1).commit_index(), before + 1);

    // Promotion with an explicit joint phase: voters {1,2,3,4} & {1,2,3} until asked to leave.
    c.step(1, conf(13, vec![AddVoter(4)], ConfTransition::JointExplicit));
    settle(&mut c, 1);
    for id in 1..=4 {
        assert_eq!(voters(&c, id), (vec![1, 2, 3, 4], vec![1, 2, 3]), "node {id}");
        assert!(c.node(id).membership().learners.is_empty());
    }
    c.step(1, leave(14));
    settle(&mut c, 1);
    for id in 1..=4 {
        assert_eq!(voters(&c, id), (vec![1, 2, 3, 4], vec![]), "node {id}");
    }
    // The promoted node may now campaign (and win: its log is complete).
    c.advance_all(ms(500));
    c.elect(4);
}

#[test]
fn three_to_five_voters_through_joint_with_auto_leave() {
    let mut c = cluster(5, &[1, 2, 3]);
    // Two learners in one simple change: no voter moves.
    c.step(1, conf(10, vec![AddLearner(4), AddLearner(5)], ConfTransition::Auto));
    settle(&mut c, 1);
    assert!(!c.node(1).membership().is_joint());
    // One voter moving is simple; two go through a joint configuration, left automatically.
    c.step(1, conf(11, vec![AddVoter(4), AddVoter(5)], ConfTransition::Auto));
    settle(&mut c, 1);
    for id in 1..=5 {
        assert_eq!(voters(&c, id), (vec![1, 2, 3, 4, 5], vec![]), "node {id}");
        assert!(!c.node(id).membership().auto_leave);
    }
    // The log shows both steps: entering joint (with auto-leave), then the empty leave entry.
    let confs: Vec<(u64, Membership)> = c
        .node(1)
        .log()
        .entries()
        .iter()
        .filter_map(|e| match &e.payload {
            EntryPayload::ConfChange(ce) => Some((e.index, ce.membership.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(confs.len(), 3, "{confs:?}");
    assert!(confs[1].1.is_joint() && confs[1].1.auto_leave);
    assert_eq!(confs[2].0, confs[1].0 + 1, "the leader leaves as soon as the joint entry applies");
    assert!(!confs[2].1.is_joint());
    // The leader answered the request when its entry applied.
    let r = c.take_responses(1);
    assert!(r.iter().any(|r| r.id == 11 && r.result.is_ok()), "{r:?}");
}

#[test]
fn in_a_joint_configuration_commit_needs_both_majorities() {
    let mut c = cluster(5, &[1, 2, 3]);
    c.step(1, conf(10, vec![AddLearner(4), AddLearner(5)], ConfTransition::Auto));
    settle(&mut c, 1);
    // {1,2,3} -> {1,4,5}, held joint.
    c.step(1, conf(11, vec![AddVoter(4), AddVoter(5), Remove(2), Remove(3)], ConfTransition::JointExplicit));
    settle(&mut c, 1);
    assert_eq!(voters(&c, 1), (vec![1, 4, 5], vec![1, 2, 3]));
    let before = c.node(1).commit_index();
    // Only the new configuration hears the entry: {1,4,5} is a majority of it, not of the old.
    c.isolated = BTreeSet::from([2, 3]);
    c.step(1, propose(12, "x"));
    c.stabilize();
    assert_eq!(c.node(4).log().last_index(), before + 1);
    assert_eq!(c.node(5).log().last_index(), before + 1);
    assert_eq!(c.node(1).commit_index(), before, "a majority of the new voters alone does not commit");
    // One old voter more makes a majority of {1,2,3} too.
    c.isolated = BTreeSet::from([3]);
    settle(&mut c, 1);
    assert_eq!(c.node(1).commit_index(), before + 1);
    // And the reverse: the old majority {1,2} without the new one does not commit either.
    c.isolated = BTreeSet::from([4, 5]);
    c.step(1, propose(13, "y"));
    settle(&mut c, 1);
    assert_eq!(c.node(1).commit_index(), before + 1, "a majority of the old voters alone does not commit");
    c.isolated = BTreeSet::from([5]);
    settle(&mut c, 1);
    assert_eq!(c.node(1).commit_index(), before + 2);
}

#[test]
fn a_removed_follower_is_no_longer_replicated_to_and_never_campaigns() {
    let mut c = cluster(3, &[1, 2, 3]);
    c.step(1, conf(10, vec![Remove(3)], ConfTransition::Auto));
    settle(&mut c, 1);
    for id in 1..=2 {
        assert_eq!(voters(&c, id), (vec![1, 2], vec![]), "node {id}");
    }
    // The leader stopped replicating to 3 when it applied the change, before 3 heard that the
    // change committed (as in etcd): 3 still believes in the old configuration.
    assert_eq!(voters(&c, 3), (vec![1, 2, 3], vec![]));
    assert!(!c.node(1).replicates_to(3));
    let out = c.step(1, propose(11, "after"));
    assert!(sends(&out).iter().all(|s| !s.contains("->3")), "{:?}", sends(&out));
    settle(&mut c, 1);
    assert_eq!(c.node(1).commit_index(), c.node(2).commit_index());
    let out = c.tick(3, ms(1_000));
    let sent = sends(&out);
    assert!(sent.len() == 2 && sent[0].starts_with("3->1 PreVote") && sent[1].starts_with("3->2 PreVote"), "{sent:?}");
    // Its (pre-)vote requests come from a configuration the members have left: ignored, and
    // a real vote request at a higher term does not bump their term either.
    c.deliver_all();
    assert!(c.net.is_empty(), "{:?}", c.in_flight());
    let term = c.node(2).term();
    let vote = Message {
        group: GROUP,
        from: 3,
        to: 2,
        term: term + 5,
        body: MessageBody::Vote { last_index: 99, last_term: 99, transfer: false },
    };
    let out = c.step(2, RaftInput::Message(vote));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(c.node(2).term(), term);
    // Once it learns the change committed (here: from a message of the leader carrying the
    // commit index, as a leader that kept it as a learner would send), it stops campaigning.
    let commit = c.node(1).commit_index();
    let prev_index = c.node(3).log().last_index();
    let prev_term = c.node(3).log().last_term();
    let hb = Message {
        group: GROUP,
        from: 1,
        to: 3,
        term: c.node(1).term(),
        body: MessageBody::Append { prev_index, prev_term, entries: vec![], commit, round: 99 },
    };
    c.step(3, RaftInput::Message(hb));
    assert_eq!(voters(&c, 3), (vec![1, 2], vec![]));
    let out = c.tick(3, ms(1_000));
    assert!(sends(&out).is_empty(), "a node that knows it was removed does not campaign: {:?}", sends(&out));
}

#[test]
fn removing_the_leader_hands_over_to_the_most_up_to_date_remaining_voter() {
    let mut c = cluster(3, &[1, 2, 3]);
    for i in 0..3 {
        c.step(1, propose(20 + i, &format!("v{i}")));
    }
    c.stabilize();
    c.step(1, conf(10, vec![Remove(1)], ConfTransition::Auto));
    c.step(1, propose(30, "late"));
    // 3 falls behind: the appends of both entries to it are lost.
    c.drop_msgs(to(3));
    // The leader still leads while the change commits (it is needed for that), then applies
    // it, sends TimeoutNow to 2 (3 is behind) and steps down.
    let log = c.stabilize();
    assert!(log.iter().any(|m| m.starts_with("1->2 TimeoutNow")), "{log:?}");
    assert!(!log.iter().any(|m| m.starts_with("1->3 TimeoutNow")), "{log:?}");
    assert_ne!(c.node(1).role(), Role::Leader);
    assert_eq!(c.node(2).role(), Role::Leader);
    settle(&mut c, 2);
    assert_eq!(voters(&c, 2), (vec![2, 3], vec![]));
    assert_eq!(voters(&c, 3), (vec![2, 3], vec![]));
    // No proposal was lost: every command the old leader accepted was applied by the remaining
    // voters. The last one could not commit before the handover (the new configuration {2,3}
    // needs 3, which lagged), so the old leader answered it as indeterminate; 2 committed it.
    let answers: Vec<(u64, bool)> = c.take_responses(1).into_iter().map(|r| (r.id, r.result.is_ok())).collect();
    assert_eq!(answers, vec![(20, true), (21, true), (22, true), (10, true), (30, false)]);
    for id in [2, 3] {
        let applied: Vec<Vec<u8>> = c.node(id).state_machine().applied.iter().map(|(_, cmd)| cmd.clone()).collect();
        assert_eq!(applied, vec![b"v0".to_vec(), b"v1".to_vec(), b"v2".to_vec(), b"late".to_vec()], "node {id}");
    }
    // The old leader is out: it redirects, and never campaigns again.
    c.step(1, propose(40, "x"));
    assert!(matches!(refused(&mut c, 1, 40), ClientError::NotLeader { .. }));
    let out = c.tick(1, ms(1_000));
    assert!(sends(&out).is_empty(), "{:?}", sends(&out));
}

#[test]
fn changes_are_refused_before_an_own_term_commit_while_pending_and_when_invalid() {
    let mut c = cluster(4, &[1, 2, 3]);
    // A follower refuses with the leader's id.
    c.step(2, conf(1, vec![AddLearner(4)], ConfTransition::Auto));
    assert_eq!(refused(&mut c, 2, 1), ClientError::NotLeader { leader: Some(1) });
    // A new leader (2) before its first entry commits.
    c.advance_all(ms(500));
    c.campaign(2);
    while c.node(2).role() != Role::Leader {
        c.deliver_all();
        for id in 1..=4 {
            c.ack(id);
        }
    }
    assert!(c.node(2).commit_index() < c.node(2).log().last_index());
    c.step(2, conf(2, vec![AddLearner(4)], ConfTransition::Auto));
    assert_eq!(refused(&mut c, 2, 2), ClientError::ConfChangeRefused(ConfChangeRefusal::NoOwnTermCommit));
    c.stabilize();
    // Invalid changes, with their reasons.
    c.step(2, conf(3, vec![Remove(9)], ConfTransition::Auto));
    assert_eq!(
        refused(&mut c, 2, 3),
        ClientError::ConfChangeRefused(ConfChangeRefusal::Invalid(ConfChangeError::UnknownNode(9)))
    );
    c.step(2, conf(4, vec![AddVoter(4)], ConfTransition::Auto));
    assert_eq!(
        refused(&mut c, 2, 4),
        ClientError::ConfChangeRefused(ConfChangeRefusal::Invalid(ConfChangeError::UnknownLearner(4)))
    );
    c.step(2, leave(5));
    assert_eq!(refused(&mut c, 2, 5), ClientError::ConfChangeRefused(ConfChangeRefusal::Invalid(ConfChangeError::NotJoint)));
    // One change at a time: the second is refused until the first is applied on the leader.
    c.step(2, conf(6, vec![AddLearner(4)], ConfTransition::Auto));
    let index = c.node(2).log().last_index();
    c.step(2, conf(7, vec![Remove(3)], ConfTransition::Auto));
    assert_eq!(refused(&mut c, 2, 7), ClientError::ConfChangeRefused(ConfChangeRefusal::Pending { index }));
    c.stabilize();
    assert_eq!(c.node(2).applied_index(), index);
    c.step(2, conf(8, vec![Remove(3)], ConfTransition::Auto));
    settle(&mut c, 2);
    let r = c.take_responses(2);
    assert!(r.iter().any(|r| r.id == 6 && r.result.is_ok()) && r.iter().any(|r| r.id == 8 && r.result.is_ok()), "{r:?}");
    assert_eq!(voters(&c, 2), (vec![1, 2], vec![]));
}

fn conf_entry(term: u64, index: u64, from: &Membership, change: ConfChange) -> Entry {
    let membership = next_membership(from, &change, false).expect("valid");
    Entry { term, index, payload: EntryPayload::ConfChange(Box::new(ConfEntry { change, membership })) }
}

fn noop(term: u64, index: u64) -> Entry {
    Entry { term, index, payload: EntryPayload::Noop }
}

fn pre_votes(out: &[RaftOutput]) -> usize {
    out.iter().filter(|o| matches!(o, RaftOutput::Send(Message { body: MessageBody::PreVote { .. }, .. }))).count()
}

#[test]
fn a_node_with_a_committed_unapplied_configuration_entry_does_not_campaign() {
    let mut cfg = test_config(2, &[1, 2, 3]);
    // The guard alone: the unapplied-campaign hold (`raft_campaign_hold.rs`) would postpone
    // the first due timeout once for the entry still unapplied at the end.
    cfg.unapplied_campaign_hold = Duration::ZERO;
    let mut node = RaftNode::new(cfg, DurableState::default(), 0, Time::ZERO);
    let base = Membership::simple([1, 2, 3]);
    let entries = vec![noop(1, 1), conf_entry(1, 2, &base, ConfChange::auto([AddLearner(4)])), noop(1, 3)];
    let append = Message {
        group: GROUP,
        from: 1,
        to: 2,
        term: 1,
        body: MessageBody::Append { prev_index: 0, prev_term: 0, entries, commit: 3, round: 1 },
    };
    let mut now = Time::ZERO + ms(10);
    let mut out = Vec::new();
    node.step(now, RaftInput::Message(append), &mut out);
    assert_eq!(node.commit_index(), 3);
    // Entries are applied once durable here.
    let seq = out.iter().rev().find_map(|o| if let RaftOutput::Persist { seq, .. } = o { Some(*seq) } else { None });
    node.step(now, RaftInput::Persisted { seq: seq.expect("the append was written") }, &mut out);
    let mut tick_late = |node: &mut RaftNode, applied: Option<u64>| {
        let mut out = Vec::new();
        if let Some(index) = applied {
            node.step(now, RaftInput::Applied { index }, &mut out);
        }
        now = now + ms(1_000);
        out.clear();
        node.step(now, RaftInput::Tick, &mut out);
        out
    };
    // Committed through 3, applied through 1: entry 2 (a configuration change) is unapplied.
    assert_eq!(pre_votes(&tick_late(&mut node, Some(1))), 0);
    assert_eq!(node.role(), Role::Follower);
    assert_eq!(node.membership(), &base, "not active before it is applied");
    // Applied through 2 (the bound): it takes effect and the node may campaign again.
    assert_eq!(pre_votes(&tick_late(&mut node, Some(2))), 2);
    assert_eq!(node.membership().learners, BTreeSet::from([4]));
    assert_eq!(node.membership_index(), 2);
}

#[test]
fn an_uncommitted_configuration_entry_does_not_block_a_campaign() {
    // Entries not known committed may be replaced by a new leader; waiting for them to apply
    // could silence a group whose leader crashed right after appending a change.
    let cfg = test_config(2, &[1, 2, 3]);
    let base = Membership::simple([1, 2, 3]);
    let durable = DurableState {
        hard_state: HardState { term: 1, vote: Some(1) },
        entries: vec![noop(1, 1), conf_entry(1, 2, &base, ConfChange::auto([AddLearner(4)]))],
        damaged: false,
        ..DurableState::default()
    };
    let mut node = RaftNode::new(cfg, durable, 0, Time::ZERO);
    let mut out = Vec::new();
    node.step(Time::ZERO + ms(1_000), RaftInput::Tick, &mut out);
    assert_eq!(pre_votes(&out), 2);
}

#[test]
fn restart_uses_the_newest_configuration_entry_of_the_log_and_falls_back_if_it_is_cut() {
    let mut c = cluster(4, &[1, 2, 3]);
    c.step(1, conf(10, vec![AddLearner(4)], ConfTransition::Auto));
    settle(&mut c, 1);
    c.step(1, conf(11, vec![AddVoter(4)], ConfTransition::Auto));
    settle(&mut c, 1);
    let expected = c.node(2).membership().clone();
    assert_eq!(voters(&c, 2), (vec![1, 2, 3, 4], vec![]));
    c.crash(2);
    c.restart(2);
    // Nothing is applied yet after the restart, and the node cannot tell whether its newest
    // configuration entry committed: until it is applied, quorums of both it and the one before.
    assert_eq!(c.node(2).applied_index(), 0);
    assert!(c.node(2).membership_is_provisional());
    assert_eq!(voters(&c, 2), (vec![1, 2, 3, 4], vec![1, 2, 3]));
    assert_eq!(c.node(2).membership().learners, BTreeSet::new());
    settle(&mut c, 1);
    assert_eq!(c.node(2).membership(), &expected);
    assert!(!c.node(2).membership_is_provisional());

    // An uncommitted change adopted at restart is dropped when a new leader cuts it.
    let base = Membership::simple([1, 2, 3]);
    let cfg = test_config(3, &[1, 2, 3]);
    let durable = DurableState {
        hard_state: HardState { term: 1, vote: Some(1) },
        entries: vec![noop(1, 1), conf_entry(1, 2, &base, ConfChange::auto([Remove(2)]))],
        damaged: false,
        ..DurableState::default()
    };
    let mut node = RaftNode::new(cfg, durable, 0, Time::ZERO);
    let provisional = JointQuorum { incoming: MajorityQuorum::new([1, 3]), outgoing: MajorityQuorum::new([1, 2, 3]) };
    assert_eq!(node.membership().voters, provisional);
    assert_eq!(node.membership_index(), 0);
    let append = Message {
        group: GROUP,
        from: 2,
        to: 3,
        term: 2,
        body: MessageBody::Append { prev_index: 1, prev_term: 1, entries: vec![noop(2, 2)], commit: 0, round: 1 },
    };
    let mut out = Vec::new();
    node.step(Time::ZERO + ms(10), RaftInput::Message(append), &mut out);
    assert_eq!(node.membership(), &base);
    assert_eq!(node.membership_index(), 0);
    assert!(out.iter().any(|o| matches!(o, RaftOutput::MembershipChanged { index: 0, membership } if *membership == base)));

    // A snapshot's configuration is the base when the log holds no configuration entry.
    let snap = Membership {
        voters: JointQuorum { incoming: MajorityQuorum::new([1, 2]), outgoing: MajorityQuorum::default() },
        learners: BTreeSet::from([3]),
        ..Membership::default()
    };
    let node = RaftNode::restore(test_config(3, &[1, 2, 3]), DurableState::default(), 0, Some(snap.clone()), Time::ZERO);
    assert_eq!(node.membership(), &snap);
}

#[test]
fn in_a_joint_configuration_a_read_index_read_needs_both_majorities() {
    let mut c = cluster(5, &[1, 2, 3]);
    c.step(1, conf(10, vec![AddLearner(4), AddLearner(5)], ConfTransition::Auto));
    settle(&mut c, 1);
    c.step(1, conf(11, vec![AddVoter(4), AddVoter(5), Remove(2), Remove(3)], ConfTransition::JointExplicit));
    settle(&mut c, 1);
    assert_eq!(voters(&c, 1), (vec![1, 4, 5], vec![1, 2, 3]));
    c.take_responses(1);
    // Only the new voters answer the heartbeat round: not confirmed.
    c.isolated = BTreeSet::from([2, 3]);
    c.step(1, RaftInput::Read { id: 50, mode: vecraft_core::raft::ReadMode::ReadIndex });
    c.stabilize();
    c.tick(1, ms(20));
    c.stabilize();
    assert!(c.take_responses(1).is_empty(), "a majority of the new voters alone confirmed a read");
    // One old voter more: both majorities acknowledge the next round.
    c.isolated = BTreeSet::from([3]);
    c.tick(1, ms(20));
    c.stabilize();
    let r = c.take_responses(1);
    assert!(r.iter().any(|r| r.id == 50 && r.result.is_ok()), "{r:?}");
}
