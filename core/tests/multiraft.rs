//! The multi-Raft host in a deterministic in-test cluster: 3 hosts × 50 groups, seeded envelope
//! loss and reordering. Election safety (one leader per term per group) and the host's output
//! shape (one persist batch, one envelope per destination per step) are checked after every
//! step by the harness.

mod multiraft_harness;

use bytes::Bytes;
use multiraft_harness::Cluster;
use std::time::Duration;
use vecraft_core::contract::Time;
use vecraft_core::multiraft::MultiRaftInput;
use vecraft_core::raft::{ClientError, GroupId, MessageBody, ReadMode, Role};

const NODES: [u64; 3] = [1, 2, 3];
const GROUPS: u64 = 50;

fn cmd(tag: &str) -> impl Fn(GroupId) -> Bytes + '_ {
    move |g| Bytes::from(format!("{tag}-{g}"))
}

/// A quiet cluster: every group elected, one command committed everywhere, then idle until
/// every group is quiesced.
fn quiesced_cluster(seed: u64) -> Cluster {
    let mut c = Cluster::new(&NODES, GROUPS, true, seed);
    c.await_leaders(Duration::from_secs(10));
    let groups = c.group_ids();
    c.commit_everywhere(&groups, cmd("first"), 5);
    c.run_for(Duration::from_secs(2));
    assert!(c.all_quiesced(), "an idle cluster without loss quiesces within 2s");
    c
}

#[test]
fn every_group_elects_and_commits_under_loss_and_reordering() {
    for seed in [1, 2, 3] {
        let mut c = Cluster::new(&NODES, GROUPS, true, seed);
        c.loss = 0.05;
        c.min_delay = Duration::from_millis(1);
        c.max_delay = Duration::from_millis(30); // reorders envelopes sent within 30ms
        c.await_leaders(Duration::from_secs(20));
        let groups = c.group_ids();
        assert_eq!(groups.len(), GROUPS as usize);
        c.commit_everywhere(&groups, cmd("a"), 10);
        c.commit_everywhere(&groups, cmd("b"), 10);
        for &g in &groups {
            for n in NODES {
                let cmds = c.commands(n, g);
                let a = cmds.iter().position(|x| *x == cmd("a")(g)).expect("a applied");
                let b = cmds.iter().position(|x| *x == cmd("b")(g)).expect("b applied");
                assert!(a < b, "group {g} on {n}: commands applied out of order");
            }
        }
        c.assert_applied_prefixes_agree();
        // Idle under loss: a lost quiesce mark or acknowledgement is repeated, so everything
        // still falls silent.
        c.run_for(Duration::from_secs(10));
        assert!(c.all_quiesced(), "seed {seed}: lossy idle cluster did not quiesce in 10s");
        assert!(c.leaders.len() >= GROUPS as usize);
    }
}

#[test]
fn idle_groups_send_nothing_for_many_seconds() {
    let mut c = quiesced_cluster(7);
    let before = (c.traffic.envelopes, c.traffic.steps);
    let terms: Vec<_> = c.group_ids().iter().map(|&g| (g, c.raft(1, g).term())).collect();
    c.run_for(Duration::from_secs(60));
    assert_eq!(c.traffic.envelopes, before.0, "a quiesced cluster sent envelopes");
    assert_eq!(c.traffic.steps, before.1, "a quiesced cluster was stepped (no deadline, no traffic)");
    for (g, t) in terms {
        assert_eq!(c.raft(1, g).term(), t, "group {g} held an election while idle");
    }
    for n in NODES {
        assert_eq!(c.host(n).awake_groups(), 0);
        assert_eq!(c.host(n).next_deadline(), None);
    }
}

#[test]
fn a_proposal_wakes_only_its_group_and_commits() {
    let mut c = quiesced_cluster(11);
    let g = 17;
    let leader = c.leader(g).expect("leader");
    c.traffic = Default::default();
    c.input(leader, MultiRaftInput::Propose { group: g, id: 1, command: Bytes::from_static(b"wake") });
    assert!(!c.raft(leader, g).is_quiesced(), "the proposal woke the leader");
    assert!(c.host(leader).next_deadline().is_some());
    c.run_for(Duration::from_secs(1));
    for n in NODES {
        assert!(c.commands(n, g).contains(&Bytes::from_static(b"wake")), "not applied on {n}");
    }
    assert_eq!(c.traffic.groups_seen.iter().copied().collect::<Vec<_>>(), vec![g], "only the woken group talked");
    c.run_for(Duration::from_secs(2));
    assert!(c.all_quiesced(), "the group quiesces again once idle");
}

#[test]
fn a_read_on_a_quiesced_leader_reconfirms_leadership_before_serving_even_in_lease_mode() {
    let mut c = quiesced_cluster(13);
    let g = 3;
    let leader = c.leader(g).expect("leader");
    assert!(!c.raft(leader, g).lease_valid(c.now), "a quiesced leader holds no lease");
    c.input(leader, MultiRaftInput::Read { group: g, id: 42, mode: ReadMode::Lease });
    // Not served in the waking step: it waits for a quorum round sent now.
    assert!(c.hosts[&leader].reads.is_empty(), "lease read served on a lease not renewed");
    let sent_round = c
        .last_outputs
        .iter()
        .filter_map(|o| match o {
            vecraft_core::multiraft::MultiRaftOutput::Send(env) => Some(env.heartbeats.len() + env.messages.len()),
            _ => None,
        })
        .sum::<usize>();
    assert_eq!(sent_round, 2, "the waking read sends one heartbeat to each follower");
    c.run_for(Duration::from_millis(20));
    assert_eq!(c.hosts[&leader].reads.len(), 1, "served after the round was acknowledged");
    assert_eq!(c.hosts[&leader].reads[0].1, 42);
    // Awake again with a fresh lease: the next lease read is served at once.
    c.input(leader, MultiRaftInput::Read { group: g, id: 43, mode: ReadMode::Lease });
    assert_eq!(c.hosts[&leader].reads.len(), 2, "a renewed lease serves without a round");
}

#[test]
fn crashing_a_leader_node_reelects_the_groups_it_led_within_a_bound() {
    for seed in 17..29 {
        crash_and_reelect(seed);
    }
}

fn crash_and_reelect(seed: u64) {
    let mut c = quiesced_cluster(seed);
    let groups = c.group_ids();
    let led = |c: &Cluster, n| groups.iter().filter(|&&g| c.leader(g) == Some(n)).count();
    let victim = NODES.into_iter().max_by_key(|&n| led(&c, n)).expect("nodes");
    let victim_groups: Vec<GroupId> = groups.iter().copied().filter(|&g| c.leader(g) == Some(victim)).collect();
    assert!(!victim_groups.is_empty());
    let others: Vec<(GroupId, u64, u64)> = groups
        .iter()
        .copied()
        .filter(|g| !victim_groups.contains(g))
        .map(|g| (g, c.leader(g).expect("led"), c.raft(c.leader(g).expect("led"), g).term()))
        .collect();
    c.crash(victim);
    // Without the failure detector nothing moves: the followers are asleep.
    c.run_for(Duration::from_secs(5));
    assert!(victim_groups.iter().all(|&g| c.leader(g).is_none()), "quiesced followers stay asleep");
    c.report_down(victim);
    // Woken followers campaign in turns within the first half of their slot of the election-timeout
    // jitter (two survivors: [0, 75ms) and [150ms, 225ms)); the first in line wins unless its
    // log is behind, so every group has a leader within 75ms plus pre-vote and vote round trips.
    let took = c.await_leaders(Duration::from_secs(5));
    assert!(took <= Duration::from_millis(100), "seed {seed}: re-election took {took:?}");
    for &g in &victim_groups {
        assert_ne!(c.leader(g), Some(victim));
    }
    // The turn order rotates with the group id: the failed node's leaderships spread over both
    // survivors (when it led groups of both parities).
    let new_leaders: std::collections::BTreeSet<_> = victim_groups.iter().map(|&g| c.leader(g)).collect();
    if victim_groups.iter().any(|g| g % 2 == 0) && victim_groups.iter().any(|g| g % 2 == 1) {
        assert_eq!(new_leaders.len(), 2, "seed {seed}: leaderships piled onto one survivor");
    }
    // Groups the victim did not lead keep their leader and term.
    for (g, l, t) in others {
        assert_eq!(c.leader(g), Some(l), "group {g} changed leader");
        assert_eq!(c.raft(l, g).term(), t, "group {g} changed term");
    }
    c.commit_everywhere(&victim_groups, cmd("after-crash"), 5);
    c.assert_applied_prefixes_agree();
    // A group missing a voter may not quiesce (its returning member would campaign against a
    // sleeping leader): the re-elected groups stay awake; the others, already asleep, stay asleep.
    c.run_for(Duration::from_secs(2));
    for n in c.live() {
        for (g, r) in c.host(n).groups() {
            assert_eq!(r.is_quiesced(), !victim_groups.contains(&g), "group {g} on host {n}");
        }
    }
}

#[test]
fn one_persist_batch_per_step_covers_every_group_and_maps_back() {
    let mut c = Cluster::new(&NODES, GROUPS, false, 23);
    c.await_leaders(Duration::from_secs(10));
    c.move_leaders_to(1, Duration::from_secs(10));
    c.run_for(Duration::from_secs(1));
    // Every group appends one entry at host 1 (the appends to host 2 are held back).
    let mut held = Vec::new();
    for g in c.group_ids() {
        c.input(1, MultiRaftInput::Propose { group: g, id: g, command: Bytes::from(format!("p{g}")) });
    }
    c.events.retain(|_, e| match e {
        multiraft_harness::Event::Deliver(env) if env.to == 2 && !env.messages.is_empty() => {
            held.push(env.clone());
            false
        }
        _ => true,
    });
    assert_eq!(held.len(), GROUPS as usize, "one append envelope per proposal step");
    // Merge them into one envelope: host 2 takes one step for all 50 groups.
    let mut env = held[0].clone();
    for e in &held[1..] {
        env.messages.extend(e.messages.iter().cloned());
    }
    assert!(env.messages.iter().all(|m| matches!(&m.body, MessageBody::Append { entries, .. } if entries.len() == 1)));
    c.input(2, MultiRaftInput::Envelope(env));
    let persists: Vec<_> = c
        .last_outputs
        .iter()
        .filter_map(|o| match o {
            vecraft_core::multiraft::MultiRaftOutput::Persist { seq, records } => Some((*seq, records.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(persists.len(), 1, "exactly one persist batch");
    let (seq, records) = &persists[0];
    assert_eq!(records.len(), GROUPS as usize, "one record per group in the batch");
    let groups: std::collections::BTreeSet<_> = records.iter().map(|r| r.group).collect();
    assert_eq!(groups.len(), GROUPS as usize);
    // Before the batch is durable, each group acknowledges at once only what already was
    // durable (so its leader keeps hearing from it through a slow write), never the new entry.
    let new_index: std::collections::BTreeMap<_, _> = held
        .iter()
        .flat_map(|e| e.messages.iter())
        .filter_map(|m| match &m.body {
            MessageBody::Append { entries, .. } => Some((m.group, entries[0].index)),
            _ => None,
        })
        .collect();
    let acks_before: Vec<_> = c
        .last_outputs
        .iter()
        .filter_map(|o| match o {
            vecraft_core::multiraft::MultiRaftOutput::Send(e) => Some(e.acks.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(acks_before.len(), GROUPS as usize, "one early acknowledgement per group");
    for a in &acks_before {
        assert!(a.match_index < new_index[&a.group], "group {} acknowledged {} before it was durable", a.group, a.match_index);
    }
    // The driver's single acknowledgement of the node-level seq releases every group's ack, in
    // one envelope.
    c.events.retain(|_, e| !matches!(e, multiraft_harness::Event::Persisted(2, _)));
    c.input(2, MultiRaftInput::Persisted { seq: *seq });
    let envs: Vec<_> = c
        .last_outputs
        .iter()
        .filter_map(|o| match o {
            vecraft_core::multiraft::MultiRaftOutput::Send(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(envs.len(), 1);
    assert_eq!(envs[0].to, 1);
    assert_eq!(envs[0].acks.len(), GROUPS as usize, "every group acknowledged in one envelope");
    assert!(envs[0].messages.is_empty() && envs[0].heartbeats.is_empty());
    // An unknown or repeated seq changes nothing.
    c.input(2, MultiRaftInput::Persisted { seq: *seq });
    assert!(c.last_outputs.is_empty());
    c.input(2, MultiRaftInput::Persisted { seq: seq + 100 });
    assert!(c.last_outputs.is_empty());
    c.run_for(Duration::from_secs(1));
    for g in c.group_ids() {
        for n in NODES {
            assert!(c.commands(n, g).contains(&Bytes::from(format!("p{g}"))));
        }
    }
}

#[test]
fn heartbeats_of_all_groups_coalesce_into_one_envelope_per_node_pair() {
    let mut c = Cluster::new(&NODES, GROUPS, false, 29);
    c.await_leaders(Duration::from_secs(10));
    c.move_leaders_to(1, Duration::from_secs(10));
    c.run_for(Duration::from_secs(1));
    // Align to a tick at which host 1 heartbeats.
    let next = c.host(1).next_deadline().expect("awake leaders tick");
    c.now = next;
    c.input(1, MultiRaftInput::Tick);
    let envs: Vec<_> = c
        .last_outputs
        .iter()
        .filter_map(|o| match o {
            vecraft_core::multiraft::MultiRaftOutput::Send(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(envs.iter().map(|e| e.to).collect::<Vec<_>>(), vec![2, 3], "one envelope per peer");
    for e in &envs {
        assert_eq!(e.heartbeats.len(), GROUPS as usize, "all 50 heartbeats in one envelope");
        assert!(e.messages.is_empty() && e.acks.is_empty());
        for h in &e.heartbeats {
            let leader = c.raft(1, h.group);
            // Everything is committed and replicated: min(match, commit) is the commit index.
            assert_eq!(h.commit, leader.commit_index());
            assert_eq!(h.round, leader.heartbeat_round());
            assert!(!h.quiesce, "quiescence is off");
        }
    }
    // Host 2 answers all 50 with one envelope of acknowledgements.
    c.input(2, MultiRaftInput::Envelope(envs[0].clone()));
    let replies: Vec<_> = c
        .last_outputs
        .iter()
        .filter_map(|o| match o {
            vecraft_core::multiraft::MultiRaftOutput::Send(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].to, 1);
    assert_eq!(replies[0].acks.len(), GROUPS as usize);
    assert!(replies[0].messages.is_empty() && replies[0].heartbeats.is_empty());
    // Over one second: host 1 sends exactly one envelope per peer per heartbeat interval (50ms),
    // each followers answers with exactly one envelope per interval.
    c.events.clear();
    let start = c.host(1).next_deadline().expect("ticking");
    c.now = Time(start.0 - 1);
    c.traffic = Default::default();
    c.run_until(Time(start.0 + Duration::from_millis(999).as_nanos() as u64));
    assert_eq!(c.traffic.per_pair.get(&(1, 2)), Some(&20));
    assert_eq!(c.traffic.per_pair.get(&(1, 3)), Some(&20));
    assert_eq!(c.traffic.per_pair.get(&(2, 1)), Some(&20));
    assert_eq!(c.traffic.per_pair.get(&(3, 1)), Some(&20));
    assert_eq!(c.traffic.per_pair.get(&(2, 3)), None, "followers do not talk to each other");
    assert_eq!(c.traffic.envelopes, 80);
    assert_eq!(c.traffic.group_messages, 80 * GROUPS, "every envelope carries all 50 groups");
}

/// Every read of `g` served (ReadReady) on any host at an index below `fresh_index`, although it
/// was issued after the write at `fresh_index` had been acknowledged: stale reads.
fn stale_reads(c: &Cluster, g: GroupId, read_ids: &[u64], fresh_index: u64) -> Vec<(u64, u64, u64)> {
    c.hosts
        .iter()
        .flat_map(|(&n, h)| h.reads.iter().map(move |&(rg, id, index)| (n, rg, id, index)))
        .filter(|&(_, rg, id, index)| rg == g && read_ids.contains(&id) && index < fresh_index)
        .map(|(n, _, id, index)| (n, id, index))
        .collect()
}

/// A group's quiesced leader is cut off; the others, told it is down, elect a new leader and
/// commit a write; then a lease read arrives at the old leader. Returns the stale reads.
fn lease_read_on_a_deposed_sleeper(bugs: vecraft_core::raft::InjectedBugs) -> (Cluster, Vec<(u64, u64, u64)>) {
    let mut c = Cluster::with_bugs(&NODES, 10, true, 31, bugs);
    c.await_leaders(Duration::from_secs(10));
    c.run_for(Duration::from_secs(2));
    assert!(c.all_quiesced());
    let g = 4;
    let old = c.leader(g).expect("leader");
    c.isolate(old);
    for n in NODES.into_iter().filter(|&n| n != old) {
        c.input(n, MultiRaftInput::PeerDown { node: old });
    }
    c.run_for(Duration::from_millis(500));
    let new = c.leader(g).expect("the others elected a new leader");
    assert_ne!(new, old);
    c.commit_everywhere_on(&[g], new, Bytes::from_static(b"fresh"));
    let fresh_index = c.hosts[&new].applied[&g].iter().find(|(_, cmd)| cmd.as_ref() == b"fresh").expect("applied").0;
    // The write is acknowledged; now a client reads at the old leader, which still believes it
    // leads (it has not ticked since it quiesced).
    assert_eq!(c.raft(old, g).role(), Role::Leader);
    c.input(old, MultiRaftInput::Read { group: g, id: 99, mode: ReadMode::Lease });
    c.run_for(Duration::from_secs(1));
    let stale = stale_reads(&c, g, &[99], fresh_index);
    (c, stale)
}

#[test]
fn a_woken_leader_that_was_deposed_while_asleep_never_serves_a_stale_lease_read() {
    let (mut c, stale) = lease_read_on_a_deposed_sleeper(Default::default());
    assert!(stale.is_empty(), "stale reads: {stale:?}");
    assert!(c.hosts.values().all(|h| h.reads.iter().all(|r| r.1 != 99)), "nothing served while cut off");
    // Cut off, it cannot confirm: the read waits; after healing it learns the new term, steps
    // down and answers NotLeader.
    c.heal();
    c.run_for(Duration::from_secs(1));
    let answered: Vec<_> =
        c.hosts.values().flat_map(|h| h.responses.iter()).filter(|(g, r)| *g == 4 && r.id == 99).collect();
    assert_eq!(answered.len(), 1, "the read is answered once");
    assert!(matches!(answered[0].1.result, Err(ClientError::NotLeader { .. })), "{answered:?}");
}

#[cfg(feature = "bug-injection")]
#[test]
fn bug_switch_wake_renews_lease_is_caught_by_the_stale_read_check() {
    let bugs = vecraft_core::raft::InjectedBugs { wake_renews_lease: true, ..Default::default() };
    let (_, stale) = lease_read_on_a_deposed_sleeper(bugs);
    assert_eq!(stale.len(), 1, "the stale-read check must catch the woken leader's lease read");
}

#[test]
fn a_lagging_follower_keeps_its_leader_awake_until_it_catches_up() {
    let mut c = quiesced_cluster(37);
    let g = 9;
    let leader = c.leader(g).expect("leader");
    let lagging = NODES.into_iter().find(|&n| n != leader).expect("follower");
    c.cut.insert((leader, lagging));
    c.cut.insert((lagging, leader));
    let other = NODES.into_iter().find(|&n| n != leader && n != lagging).expect("third");
    c.input(leader, MultiRaftInput::Propose { group: g, id: 5, command: Bytes::from_static(b"lag") });
    c.run_for(Duration::from_secs(3));
    assert!(c.commands(other, g).contains(&Bytes::from_static(b"lag")), "committed by the majority");
    assert!(!c.commands(lagging, g).contains(&Bytes::from_static(b"lag")), "the cut-off follower has not got it");
    assert!(!c.raft(leader, g).is_quiesced(), "a leader with a lagging follower must not quiesce");
    assert!(!c.raft(leader, g).can_quiesce());
    assert!(c.raft(lagging, g).is_quiesced(), "the cut-off follower still sleeps (nothing reached it)");
    // Unrelated groups are not disturbed.
    assert!(c.group_ids().into_iter().filter(|&x| x != g).all(|x| NODES.iter().all(|&n| c.raft(n, x).is_quiesced())));
    c.heal();
    c.run_for(Duration::from_secs(2));
    assert!(c.commands(lagging, g).contains(&Bytes::from_static(b"lag")), "caught up after healing");
    assert!(c.all_quiesced(), "and then the group quiesces");
}

#[test]
fn groups_are_created_and_removed_at_run_time() {
    let mut c = Cluster::new(&NODES, 5, true, 41);
    c.await_leaders(Duration::from_secs(10));
    for n in NODES {
        c.input(n, MultiRaftInput::RemoveGroup { group: 3 });
        assert!(c.host(n).group(3).is_none());
    }
    c.input(1, MultiRaftInput::Propose { group: 3, id: 8, command: Bytes::from_static(b"x") });
    assert!(
        matches!(&c.hosts[&1].responses.last(), Some((3, r)) if r.id == 8 && matches!(r.result, Err(ClientError::Rejected(_))))
    );
    for n in NODES {
        c.input(
            n,
            MultiRaftInput::CreateGroup { group: 100, voters: NODES.to_vec(), durable: Default::default(), applied: 0 },
        );
        // A group this node is not (yet) a member of is hosted, as a replica waiting to be added
        // as a learner: it never campaigns.
        c.input(
            n,
            MultiRaftInput::CreateGroup { group: 101, voters: vec![7, 8, 9], durable: Default::default(), applied: 0 },
        );
        assert!(c.host(n).group(101).is_some());
    }
    c.run_for(Duration::from_secs(3));
    for n in NODES {
        assert_eq!(c.host(n).group(101).expect("hosted").role(), vecraft_core::raft::Role::Follower);
        c.input(n, MultiRaftInput::RemoveGroup { group: 101 });
    }
    c.await_leaders(Duration::from_secs(10));
    assert_eq!(c.group_ids(), vec![1, 2, 4, 5, 100]);
    c.commit_everywhere(&[100], cmd("new"), 5);
    c.run_for(Duration::from_secs(2));
    assert!(c.all_quiesced());
}

#[test]
fn a_lost_quiesce_mark_is_repeated_and_the_leader_sleeps_only_once_every_follower_echoed_it() {
    let mut c = Cluster::new(&NODES, 1, true, 43);
    c.await_leaders(Duration::from_secs(10));
    let leader = c.leader(1).expect("leader");
    let lossy = NODES.into_iter().find(|&n| n != leader).expect("follower");
    let mut marks = std::collections::BTreeSet::new();
    let mut dropped = None;
    for _ in 0..4000 {
        c.run_for(Duration::from_millis(1));
        let mut drop_key = None;
        for (k, e) in &c.events {
            if let multiraft_harness::Event::Deliver(env) = e {
                for h in env.heartbeats.iter().filter(|h| h.quiesce) {
                    marks.insert((env.to, h.round));
                    if dropped.is_none() && env.to == lossy {
                        drop_key = Some(*k);
                        dropped = Some(h.round);
                    }
                }
            }
        }
        if let Some(k) = drop_key {
            c.events.remove(&k);
        }
        if c.raft(leader, 1).is_quiesced() {
            break;
        }
    }
    let r = dropped.expect("a marked round went out");
    let other = NODES.into_iter().find(|&n| n != leader && n != lossy).expect("third");
    // The leader did not sleep on a round one follower never saw: it marked exactly one more.
    assert_eq!(marks.into_iter().collect::<Vec<_>>(), {
        let mut v = vec![(lossy, r), (lossy, r + 1), (other, r), (other, r + 1)];
        v.sort();
        v
    });
    assert!(c.all_quiesced(), "after the repeated mark everyone sleeps");
    let before = c.traffic.envelopes;
    c.run_for(Duration::from_secs(10));
    assert_eq!(c.traffic.envelopes, before);
}

/// A proposal that lands after the leader marked a quiesce round, but before it slept, wakes the
/// followers (they had already stopped their timers on the mark). Their acknowledgements of that
/// proposal's append carry the marked round's number, yet they are not acknowledgements of the
/// mark: the leader must mark a fresh round instead of sleeping on them, or it sleeps while its
/// followers' election timers run, and they depose it (seen on real processes: every collection
/// created right after boot cost the metadata group an election). Returns the cluster, the
/// term before the proposal, and the instants at which the leader slept over an awake follower
/// with nothing in flight to it.
fn proposal_after_the_mark(bugs: vecraft_core::raft::InjectedBugs) -> (Cluster, u64, u64, Vec<(Time, u64)>) {
    after_the_mark(bugs, MultiRaftInput::Propose { group: 1, id: 1, command: Bytes::from_static(b"late") })
}

/// As [`proposal_after_the_mark`], with a ReadIndex read instead: it adds no entry, so the
/// followers' answers to its heartbeat round say they applied everything (a proposal's do not
/// until the next round, and a leader does not quiesce on those: `raft_apply_report.rs`), and
/// only the rule about overtaken marks keeps the leader awake.
fn read_after_the_mark(bugs: vecraft_core::raft::InjectedBugs) -> (Cluster, u64, u64, Vec<(Time, u64)>) {
    after_the_mark(bugs, MultiRaftInput::Read { group: 1, id: 7, mode: ReadMode::ReadIndex })
}

fn after_the_mark(bugs: vecraft_core::raft::InjectedBugs, input: MultiRaftInput) -> (Cluster, u64, u64, Vec<(Time, u64)>) {
    let mut c = Cluster::with_bugs(&NODES, 1, true, 47, bugs);
    c.await_leaders(Duration::from_secs(10));
    let leader = c.leader(1).expect("leader");
    let followers: Vec<u64> = NODES.into_iter().filter(|&n| n != leader).collect();
    // Step until both followers slept on a mark while the leader is still awake.
    let mut caught = false;
    for _ in 0..4000 {
        c.run_for(Duration::from_millis(1));
        if followers.iter().all(|&f| c.raft(f, 1).is_quiesced()) && !c.raft(leader, 1).is_quiesced() {
            caught = true;
            break;
        }
    }
    assert!(caught, "followers quiesce on the mark one round before the leader does");
    let term = c.raft(leader, 1).term();
    c.input(leader, input);
    let mut violations = Vec::new();
    for _ in 0..5000 {
        c.run_for(Duration::from_millis(1));
        if c.raft(leader, 1).role() == Role::Leader && c.raft(leader, 1).is_quiesced() {
            for &f in &followers {
                let in_flight = c.events.values().any(|e| matches!(e, multiraft_harness::Event::Deliver(env) if env.to == f));
                if !c.raft(f, 1).is_quiesced() && !in_flight {
                    violations.push((c.now, f));
                }
            }
        }
    }
    (c, leader, term, violations)
}

#[test]
fn a_proposal_after_the_mark_makes_the_leader_mark_again_instead_of_sleeping_under_awake_followers() {
    let (c, leader, term, violations) = proposal_after_the_mark(Default::default());
    assert!(violations.is_empty(), "the leader slept over awake followers: {:?}", &violations[..violations.len().min(3)]);
    for n in NODES {
        assert!(c.commands(n, 1).contains(&Bytes::from_static(b"late")), "not applied on {n}");
        assert_eq!(c.raft(n, 1).term(), term, "an election on {n}: a follower timed out under a sleeping leader");
    }
    assert_eq!(c.leader(1), Some(leader));
    assert!(c.all_quiesced(), "and then everyone sleeps");
}

#[test]
fn a_read_after_the_mark_makes_the_leader_mark_again_instead_of_sleeping_under_awake_followers() {
    let (c, leader, term, violations) = read_after_the_mark(Default::default());
    assert!(violations.is_empty(), "the leader slept over awake followers: {:?}", &violations[..violations.len().min(3)]);
    for n in NODES {
        assert_eq!(c.raft(n, 1).term(), term, "an election on {n}: a follower timed out under a sleeping leader");
    }
    assert_eq!(c.leader(1), Some(leader));
    assert!(c.all_quiesced(), "and then everyone sleeps");
}

#[cfg(feature = "bug-injection")]
#[test]
fn bug_switch_sleep_on_overtaken_mark_is_caught_by_the_awake_follower_check() {
    let bugs = vecraft_core::raft::InjectedBugs { sleep_on_overtaken_mark: true, ..Default::default() };
    let (c, _, term, violations) = read_after_the_mark(bugs);
    assert!(!violations.is_empty(), "the check must see the leader sleep over awake followers");
    assert!(NODES.iter().any(|&n| c.raft(n, 1).term() > term), "and the followers then depose it");
}

/// Copies of old packets reach a sleeping follower (a network that duplicates, delays and
/// replays): an old heartbeat of its leader, a vote request of a long-past election, an answer
/// meant for a leader. None of them may restart its election timer while its leader sleeps, or
/// it deposes a live leader. Returns whether the follower stayed asleep after each copy,
/// whether it was then awake under its sleeping leader, and whether a term changed in the next
/// 5 s (a woken follower campaigns; whether it wins depends on whether the leader, woken by the
/// pre-vote, reaches it first).
fn stale_copies_reach_a_sleeper(bugs: vecraft_core::raft::InjectedBugs) -> (Vec<bool>, bool, bool) {
    use vecraft_core::multiraft::{Envelope, Heartbeat};
    use vecraft_core::raft::Message;
    let mut c = Cluster::with_bugs(&NODES, 3, true, 53, bugs);
    c.await_leaders(Duration::from_secs(10));
    c.commit_everywhere(&c.group_ids(), cmd("first"), 5);
    c.run_for(Duration::from_secs(2));
    assert!(c.all_quiesced());
    let g = 2;
    let leader = c.leader(g).expect("leader");
    let mut others = NODES.into_iter().filter(|&n| n != leader);
    let (f, other) = (others.next().expect("follower"), others.next().expect("third"));
    let term = c.raft(f, g).term();
    let commit = c.raft(f, g).commit_index();
    // An envelope carrying one message of `term` from `from` to the follower.
    let one = |from: u64, term: u64, body: MessageBody| Envelope {
        from,
        to: f,
        heartbeats: vec![],
        acks: vec![],
        messages: vec![Message { group: g, from, to: f, term, body }],
    };
    let stray_answer = MessageBody::AppendResponse { success: false, match_index: 0, reject: None, round: 0, reset: false, applied: 0 };
    let copies = vec![
        // The leader's heartbeat of round 1 (long before the mark it slept on).
        Envelope {
            from: leader,
            to: f,
            heartbeats: vec![Heartbeat { group: g, term, commit: 0, commit_term: 0, round: 1, quiesce: false }],
            acks: vec![],
            messages: vec![],
        },
        // A vote request of an election of an older term (in term 1: of this term, whose
        // leader the follower already follows, so the candidate cannot win it).
        one(other, term.saturating_sub(1).max(1), MessageBody::Vote { last_index: 0, last_term: 0, transfer: false }),
        // An answer meant for a leader, from the third node, of this term.
        one(other, term, stray_answer.clone()),
        // An answer of the leader itself (it once answered this node's append of an older term).
        one(leader, term, stray_answer),
    ];
    let mut asleep = Vec::new();
    let mut awake_under_sleeper = false;
    for env in copies {
        c.input(f, MultiRaftInput::Envelope(env));
        asleep.push(c.raft(f, g).is_quiesced());
        awake_under_sleeper |= !c.raft(f, g).is_quiesced() && c.raft(leader, g).is_quiesced();
        c.run_for(Duration::from_millis(5));
    }
    assert_eq!(c.raft(f, g).commit_index(), commit, "an old copy moved nothing");
    c.run_for(Duration::from_secs(5));
    let elected = NODES.iter().any(|&n| c.raft(n, g).term() != term);
    (asleep, awake_under_sleeper, elected)
}

#[test]
fn old_copies_of_packets_do_not_wake_a_sleeping_follower() {
    let (asleep, awake_under_sleeper, elected) = stale_copies_reach_a_sleeper(Default::default());
    assert_eq!(asleep, vec![true; 4], "each copy left the follower asleep");
    assert!(!awake_under_sleeper);
    assert!(!elected, "no election followed");
}

#[cfg(feature = "bug-injection")]
#[test]
fn bug_switch_wake_on_stale_copy_is_caught_by_the_awake_under_a_sleeper_check() {
    let bugs = vecraft_core::raft::InjectedBugs { wake_on_stale_copy: true, ..Default::default() };
    let (asleep, awake_under_sleeper, _) = stale_copies_reach_a_sleeper(bugs);
    assert!(!asleep[0], "the first copy woke the follower");
    assert!(awake_under_sleeper, "its election timer then ran under a sleeping leader");
}
