//! The transport's async glue on madsim's simulated network and clock: reconnects after a peer
//! is killed and restarted, handshake time-outs in both directions, the bounded queues, the
//! inbound connection limit, partitions and late DNS. Each test is one seeded, deterministic run
//! in virtual time, so the bounds below are exact properties of the code, not of a busy machine.
//!
//! Run (own target directory: `--cfg madsim` rebuilds every crate):
//! `RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim cargo test -p vecraft-transport --test madsim_transport`
//! (`MADSIM_TEST_NUM=K` runs each test with K seeds, `MADSIM_TEST_SEED=N` replays one).
//!
//! What madsim cannot model: socket buffers (a simulated write never blocks), so TCP flow
//! control between a slow reader and a writer is not exercised here; `transport_tcp.rs` does
//! that on real sockets. Disks are not simulated either (the WAL is tested on real files).
#![cfg(madsim)]

use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::time::{Instant, sleep};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::Receiver;
use vecraft_transport::{NodeId, PeerAddr, Transport, TransportConfig, TransportStats};

const SECRET: &str = "madsim-cluster-secret";
const PORT: u16 = 7000;

fn ip(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

fn addr(n: u8) -> SocketAddr {
    SocketAddr::new(ip(n), PORT)
}

/// Short, explicit timings so that each bound below is a few lines of arithmetic.
fn cfg(id: NodeId) -> TransportConfig {
    let mut c = TransportConfig::new(id, SocketAddr::from(([0, 0, 0, 0], PORT)), SECRET);
    c.handshake_timeout = Duration::from_millis(500);
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_secs(1);
    c
}

/// One delivery seen by a receiving node: which incarnation of it, the message, and when.
#[derive(Clone, Copy, Debug)]
struct Delivery {
    incarnation: u32,
    seq: u64,
    at: Instant,
}

type Log<T> = Arc<Mutex<Vec<T>>>;

fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

fn read<T: Clone>(l: &Log<T>) -> Vec<T> {
    l.lock().unwrap().clone()
}

/// A receiving node: binds a transport and records every message it is handed, tagged with
/// its incarnation (counted up on every start, so a restart is visible in the log).
fn receiver_node(
    n: u8,
    id: NodeId,
    deliveries: Log<Delivery>,
    starts: Arc<Mutex<u32>>,
) -> madsim::runtime::NodeHandle {
    Handle::current()
        .create_node()
        .name(format!("receiver-{n}"))
        .ip(ip(n))
        .init(move || {
            let deliveries = deliveries.clone();
            let starts = starts.clone();
            async move {
                let incarnation = {
                    let mut s = starts.lock().unwrap();
                    *s += 1;
                    *s
                };
                let (_t, mut rx) = Transport::<u64>::bind(cfg(id)).await.expect("bind");
                while let Some((_from, seq)) = rx.recv().await {
                    deliveries.lock().unwrap().push(Delivery {
                        incarnation,
                        seq,
                        at: Instant::now(),
                    });
                }
            }
        })
        .build()
}

/// A sending node: one message every `every` for `count` messages, each send's time recorded
/// (index = seq). The transport is published so the test can read its counters.
fn sender_node(
    n: u8,
    id: NodeId,
    peer: (NodeId, PeerAddr),
    every: Duration,
    count: u64,
    sent_at: Log<Instant>,
    handle_out: Arc<Mutex<Option<Transport<u64>>>>,
) -> madsim::runtime::NodeHandle {
    let node = Handle::current()
        .create_node()
        .name(format!("sender-{n}"))
        .ip(ip(n))
        .build();
    node.spawn(async move {
        let (t, _rx) = Transport::<u64>::bind(cfg(id)).await.expect("bind");
        t.add_peer(peer.0, peer.1);
        *handle_out.lock().unwrap() = Some(t.clone());
        for seq in 0..count {
            sent_at.lock().unwrap().push(Instant::now());
            t.send(peer.0, seq);
            sleep(every).await;
        }
        // Keep the transport (and its writer) alive after the last send.
        sleep(Duration::from_secs(3600)).await;
    });
    node
}

/// The machine of node 1, the sender of most tests.
fn sender_machine() -> madsim::runtime::NodeHandle {
    Handle::current()
        .create_node()
        .name("sender")
        .ip(ip(1))
        .build()
}

/// Binds node 1's transport on `machine` (with `tweak` applied to its config) and registers
/// node 2 as its peer; what node 1 receives is dropped.
async fn bind_sender(
    machine: &madsim::runtime::NodeHandle,
    tweak: fn(&mut TransportConfig),
) -> Transport<u64> {
    machine
        .spawn(async move {
            let mut c = cfg(1);
            tweak(&mut c);
            let (t, rx) = Transport::<u64>::bind(c).await.unwrap();
            std::mem::forget(rx);
            t.add_peer(2, addr(2));
            t
        })
        .await
        .unwrap()
}

fn stats(h: &Arc<Mutex<Option<Transport<u64>>>>) -> TransportStats {
    h.lock().unwrap().as_ref().expect("sender started").stats()
}

/// Every message handed over is either delivered or counted as dropped, except those written
/// to a connection that died before the peer read them (what TCP loses with a process).
fn assert_accounted(s: &TransportStats, sent: u64, delivered: u64, lost_in_flight_max: u64) {
    let counted = delivered
        + s.dropped_queue_full
        + s.dropped_stale
        + s.dropped_send_failed
        + s.dropped_oversize
        + s.dropped_unknown_peer;
    assert!(
        counted <= sent,
        "more accounted than sent: {counted} > {sent}; {s:?}"
    );
    assert!(
        sent - counted <= lost_in_flight_max,
        "{} messages vanished uncounted (at most {lost_in_flight_max} may be in flight at a kill); {s:?}",
        sent - counted
    );
}

#[madsim::test]
async fn a_killed_peer_is_redialed_with_bounded_backoff_and_its_next_incarnation_gets_only_fresh_messages()
 {
    a_killed_peer_is_redialed_with_bounded_backoff_and_its_next_incarnation_gets_only_fresh_messages_body().await
}

async fn a_killed_peer_is_redialed_with_bounded_backoff_and_its_next_incarnation_gets_only_fresh_messages_body()
 {
    let deliveries = log();
    let starts = Arc::new(Mutex::new(0));
    let sent_at = log();
    let sender = Arc::new(Mutex::new(None));
    let b = receiver_node(2, 2, deliveries.clone(), starts.clone());
    let every = Duration::from_millis(10);
    let count = 2_000; // 20 s of sending
    sender_node(
        1,
        1,
        (2, addr(2).into()),
        every,
        count,
        sent_at.clone(),
        sender.clone(),
    );

    sleep(Duration::from_secs(2)).await;
    let first_life = read(&deliveries).len();
    assert!(
        first_life >= 150,
        "only {first_life} messages reached the peer in its first 2 s"
    );
    assert_eq!(stats(&sender).connects, 1);

    let handle = Handle::current();
    handle.kill(b.id());
    let killed = Instant::now();
    sleep(Duration::from_secs(8)).await;
    let failures_down = stats(&sender).connect_failures;
    handle.restart(b.id());
    let restarted = Instant::now();
    sleep(Duration::from_secs(13)).await; // sending ends at 20 s; everything has arrived by 23 s

    let s = stats(&sender);
    let got = read(&deliveries);
    let sent = read(&sent_at);
    assert_eq!(sent.len() as u64, count);
    assert_eq!(*starts.lock().unwrap(), 2);

    // Backoff: 20 ms doubling to the 1 s cap, each wait uniform in [d/2, d]. Over 8 s down
    // that is at least 6 + (8 - 1.26) / 1 = 12 and at most 6 + (8 - 0.63) / 0.5 = 20 failed
    // dials (+1 for one in progress at either end): no hot loop, no giving up.
    assert!(
        (11..=21).contains(&failures_down),
        "{failures_down} failed dials in 8 s of outage, want 11..=21"
    );
    // Exactly one connection per incarnation: no needless reconnects while the peer was up.
    assert_eq!(s.connects, 2, "{s:?}");

    let life = |i: u32| {
        got.iter()
            .filter(|d| d.incarnation == i)
            .map(|d| d.seq)
            .collect::<Vec<_>>()
    };
    let (one, two) = (life(1), life(2));
    // Each incarnation sees an in-order run without duplicates or gaps.
    for (name, l) in [("first", &one), ("second", &two)] {
        assert!(
            l.windows(2).all(|w| w[1] == w[0] + 1),
            "{name} incarnation's messages are not one gapless run: {l:?}"
        );
    }
    assert_eq!(one[0], 0);
    // Nothing queued for the dead incarnation (or during the outage) reaches the new one.
    let first_two = two[0] as usize;
    assert!(
        sent[first_two] >= restarted,
        "message {first_two}, sent {:?} before the restart, reached the new incarnation",
        restarted - sent[first_two]
    );
    // The new incarnation is reached within one capped backoff (+ the handshake) of its restart.
    let reached = got.iter().find(|d| d.incarnation == 2).unwrap().at;
    assert!(
        reached - restarted <= Duration::from_millis(1_100),
        "reconnected {:?} after the restart",
        reached - restarted
    );
    // ... and from then on gets every message to the last.
    assert_eq!(*two.last().unwrap(), count - 1);
    // The messages lost with the first incarnation are the ones sent after it died (minus at
    // most the few in flight at the kill).
    let first_after_kill = sent.iter().position(|&t| t >= killed).unwrap() as u64;
    assert!(
        *one.last().unwrap() + 3 >= first_after_kill,
        "first life ended at {} but the kill came at message {first_after_kill}",
        one.last().unwrap()
    );
    assert!(s.dropped_stale > 0, "{s:?}");
    assert_accounted(&s, count, got.len() as u64, 3);
}

/// A node that accepts TCP connections and never says a word: each connection is read until
/// the dialer closes it, and (accepted at, closed at) is logged.
fn silent_acceptor(n: u8, conns: Log<(Instant, Option<Instant>)>) -> madsim::runtime::NodeHandle {
    let node = Handle::current()
        .create_node()
        .name(format!("silent-{n}"))
        .ip(ip(n))
        .build();
    node.spawn(async move {
        let l = madsim::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], PORT)))
            .await
            .unwrap();
        loop {
            let (mut stream, _) = l.accept().await.unwrap();
            let i = {
                let mut c = conns.lock().unwrap();
                c.push((Instant::now(), None));
                c.len() - 1
            };
            let conns = conns.clone();
            madsim::task::spawn(async move {
                let mut buf = [0u8; 256];
                while stream.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
                conns.lock().unwrap()[i].1 = Some(Instant::now());
            });
        }
    });
    node
}

#[madsim::test]
async fn a_peer_that_accepts_but_never_answers_is_dropped_at_the_handshake_timeout_and_the_queue_stays_bounded()
 {
    let conns = log();
    silent_acceptor(2, conns.clone());
    let t = bind_sender(&sender_machine(), |c| c.peer_queue = 8).await;
    // The queue holds exactly `peer_queue` messages; the 9th and later are refused.
    let accepted: Vec<bool> = (0..20).map(|seq| t.send(2, seq)).collect();
    assert_eq!(accepted, (0..20).map(|i| i < 8).collect::<Vec<_>>());
    assert_eq!(t.queue_len(2), Some(8));

    sleep(Duration::from_secs(6)).await;
    let s = t.stats();
    assert_eq!((s.queued, s.dropped_queue_full), (8, 12), "{s:?}");
    assert_eq!(s.connects, 0, "{s:?}");
    assert_eq!(
        t.queue_len(2),
        Some(8),
        "nothing is sent before a handshake succeeds"
    );
    let c = read(&conns);
    // Each attempt waits the 500 ms handshake timeout, then 10..1000 ms of backoff: in 6 s
    // between 6 / 1.5 = 4 and 6 / 0.51 = 11 attempts, each one connection, none left open.
    assert!(
        (4..=12).contains(&c.len()),
        "{} connections in 6 s",
        c.len()
    );
    assert_eq!(
        s.connect_failures as usize,
        c.len() - usize::from(c.last().unwrap().1.is_none())
    );
    for (i, (opened, closed)) in c.iter().enumerate() {
        let Some(closed) = closed else {
            assert_eq!(
                i,
                c.len() - 1,
                "only the attempt in progress may still be open"
            );
            continue;
        };
        let held = *closed - *opened;
        // The dialer's clock starts before the connection is accepted; it never gives up early
        // and never holds a dead handshake open past its timeout (+ the simulated link delay).
        assert!(
            held <= Duration::from_millis(500) && held >= Duration::from_millis(450),
            "attempt {i} held the silent connection {held:?}, want about the 500 ms handshake timeout"
        );
    }
}

#[madsim::test]
async fn silent_inbound_connections_time_out_and_the_connection_limit_refuses_the_one_over_it() {
    let deliveries = log();
    // The receiver allows 2 inbound connections at once.
    let receiver_log = deliveries.clone();
    let receiver = Handle::current()
        .create_node()
        .name("receiver")
        .ip(ip(2))
        .build();
    let receiver_t = receiver
        .spawn(async move {
            let mut c = cfg(2);
            c.max_inbound_connections = 2;
            let (t, mut rx) = Transport::<u64>::bind(c).await.unwrap();
            madsim::task::spawn(async move {
                while let Some((_, seq)) = rx.recv().await {
                    receiver_log.lock().unwrap().push(Delivery {
                        incarnation: 1,
                        seq,
                        at: Instant::now(),
                    });
                }
            });
            t
        })
        .await
        .unwrap();

    // A node opens 3 connections and stays silent on them.
    let closed_at: Log<(usize, Instant)> = log();
    let closed = closed_at.clone();
    let squatter = Handle::current()
        .create_node()
        .name("squatter")
        .ip(ip(3))
        .build();
    squatter.spawn(async move {
        for i in 0..3 {
            let mut s = madsim::net::TcpStream::connect(addr(2)).await.unwrap();
            let closed = closed.clone();
            madsim::task::spawn(async move {
                let mut buf = [0u8; 64];
                while s.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
                closed.lock().unwrap().push((i, Instant::now()));
            });
            sleep(Duration::from_millis(10)).await;
        }
    });
    let start = Instant::now();
    sleep(Duration::from_millis(200)).await;
    // The third is refused at once; the first two are still held (handshaking).
    let early = read(&closed_at);
    assert_eq!(
        early.iter().map(|c| c.0).collect::<Vec<_>>(),
        vec![2],
        "{early:?}"
    );
    assert_eq!(receiver_t.stats().inbound_refused_limit, 1);

    // A real peer dials now: refused while the squatters hold both slots, then admitted once
    // the receiver closes them at its 500 ms handshake timeout.
    let sent_at = log();
    let sender = Arc::new(Mutex::new(None));
    sender_node(
        1,
        1,
        (2, addr(2).into()),
        Duration::from_millis(10),
        300,
        sent_at,
        sender.clone(),
    );
    sleep(Duration::from_secs(4)).await;

    let c = read(&closed_at);
    assert_eq!(c.len(), 3, "{c:?}");
    for &(i, at) in c.iter().filter(|c| c.0 < 2) {
        let held = at - start;
        assert!(
            held >= Duration::from_millis(500) && held <= Duration::from_millis(600),
            "silent connection {i} closed after {held:?}, want the 500 ms handshake timeout"
        );
    }
    let r = receiver_t.stats();
    assert_eq!(r.handshake_failures_in, 2, "{r:?}");
    let s = stats(&sender);
    assert!(
        s.connect_failures >= 1,
        "the peer's first dial should have met the full slots: {s:?}"
    );
    assert_eq!(s.connects, 1, "{s:?}");
    // Admitted within one backoff (the sender's waits are at most 640 ms this early) of the
    // slots freeing at 500 ms; queued messages from before its first connection still arrive.
    let got = read(&deliveries);
    assert_eq!(got.first().map(|d| d.seq), Some(0));
    assert!(
        got.first().unwrap().at - start <= Duration::from_millis(1_300),
        "first delivery {:?}",
        got.first().unwrap().at - start
    );
    assert_eq!(
        got.iter().map(|d| d.seq).collect::<Vec<_>>(),
        (0..300).collect::<Vec<_>>()
    );
}

#[madsim::test]
async fn a_partition_neither_reconnects_nor_loses_nor_duplicates_and_a_never_reached_peer_gets_its_queue()
 {
    let deliveries = log();
    let starts = Arc::new(Mutex::new(0));
    let b = receiver_node(2, 2, deliveries.clone(), starts.clone());
    let net = NetSim::current();
    // Partitioned before the first connection: dials fail, the queue fills to its bound.
    let sender = sender_machine();
    net.clog_link(sender.id(), b.id());
    net.clog_link(b.id(), sender.id());
    let t = bind_sender(&sender, |c| c.peer_queue = 64).await;
    let t2 = t.clone();
    sender.spawn(async move {
        for seq in 0..1_000u64 {
            t2.send(2, seq);
            sleep(Duration::from_millis(10)).await;
        }
        sleep(Duration::from_secs(3600)).await;
    });
    sleep(Duration::from_secs(2)).await;
    let s = t.stats();
    assert_eq!((s.queued, s.connects), (64, 0), "{s:?}");
    // 200 sends in 2 s: the 65th and every later one met a full queue.
    assert_eq!(s.dropped_queue_full, 200 - 64, "{s:?}");

    // Heal: the first connection delivers the 64 queued messages (no earlier connection, so
    // no earlier incarnation could have seen them), then the live stream.
    net.unclog_link(sender.id(), b.id());
    net.unclog_link(b.id(), sender.id());
    sleep(Duration::from_secs(2)).await;
    assert_eq!(t.stats().connects, 1);
    // Partition the established connection for 3 s: TCP holds the bytes, nobody reconnects.
    net.clog_link(sender.id(), b.id());
    net.clog_link(b.id(), sender.id());
    let cut = Instant::now();
    sleep(Duration::from_secs(3)).await;
    let during = read(&deliveries)
        .iter()
        .filter(|d| d.at > cut + Duration::from_millis(50))
        .count();
    assert_eq!(during, 0, "deliveries crossed the partition");
    net.unclog_link(sender.id(), b.id());
    net.unclog_link(b.id(), sender.id());
    sleep(Duration::from_secs(15)).await;

    let s = t.stats();
    assert_eq!(
        s.connects, 1,
        "a partition of an established connection must not reconnect: {s:?}"
    );
    let got: Vec<u64> = read(&deliveries).iter().map(|d| d.seq).collect();
    let heal_first = got.iter().position(|&q| q >= 64).unwrap();
    assert_eq!(
        &got[..heal_first],
        &(0..64).collect::<Vec<_>>()[..],
        "the queued 64 first, in order"
    );
    let rest = &got[heal_first..];
    assert!(
        rest.windows(2).all(|w| w[1] == w[0] + 1),
        "after the heal: one gapless run, no duplicates"
    );
    assert_eq!(*rest.last().unwrap(), 999);
    assert_eq!(s.dropped_send_failed + s.dropped_stale, 0, "{s:?}");
    assert_accounted(&s, 1_000, got.len() as u64, 0);
}

#[madsim::test]
async fn a_peer_whose_name_resolves_late_is_reached_within_one_backoff_of_its_record() {
    let deliveries = log();
    let starts = Arc::new(Mutex::new(0));
    receiver_node(2, 2, deliveries.clone(), starts);
    let sent_at = log();
    let sender = Arc::new(Mutex::new(None));
    let name: PeerAddr = format!("node-2.vecraft.internal:{PORT}").parse().unwrap();
    sender_node(
        1,
        1,
        (2, name),
        Duration::from_millis(10),
        500,
        sent_at,
        sender.clone(),
    );
    sleep(Duration::from_secs(3)).await;
    let s = stats(&sender);
    assert_eq!(s.connects, 0);
    assert!(
        s.resolve_failures >= 5 && s.resolve_failures == s.connect_failures,
        "{s:?}"
    );
    NetSim::current().add_dns_record("node-2.vecraft.internal", ip(2));
    let published = Instant::now();
    sleep(Duration::from_secs(5)).await;
    let s = stats(&sender);
    assert_eq!(s.connects, 1, "{s:?}");
    let got = read(&deliveries);
    let first = got.first().expect("reached after the record was published");
    assert!(
        first.at - published <= Duration::from_millis(1_050),
        "reached {:?} after the record",
        first.at - published
    );
    // Never connected before, so the queue (the first 4,096 at most) is delivered from message 0.
    assert_eq!(first.seq, 0);
    assert_eq!(
        got.iter().map(|d| d.seq).collect::<Vec<_>>(),
        (0..500).collect::<Vec<_>>()
    );
}

#[madsim::test]
async fn a_receiver_that_stops_reading_holds_at_most_its_channel_and_one_envelope() {
    // The receiver's node loop is "busy": nobody reads its inbound channel for 3 s.
    let (tx, rx_out) = std::sync::mpsc::channel::<(Transport<u64>, Receiver<(NodeId, u64)>)>();
    let receiver = Handle::current()
        .create_node()
        .name("receiver")
        .ip(ip(2))
        .build();
    receiver
        .spawn(async move {
            let mut c = cfg(2);
            c.inbound_queue = 16;
            let (t, rx) = Transport::<u64>::bind(c).await.unwrap();
            tx.send((t, rx)).unwrap();
        })
        .await
        .unwrap();
    let (rt, mut rx) = rx_out.recv().unwrap();
    let sender = sender_machine();
    let st = bind_sender(&sender, |c| c.max_batch = 32).await;
    let t = st.clone();
    sender
        .spawn(async move {
            for seq in 0..1_000u64 {
                assert!(t.send(2, seq));
                if seq % 50 == 0 {
                    sleep(Duration::from_millis(10)).await;
                }
            }
        })
        .await
        .unwrap();
    sleep(Duration::from_secs(3)).await;
    let r = rt.stats();
    // The reader decoded one envelope (at most `max_batch` = 32 messages), handed 16 to the
    // full channel, and waits: everything else stays in the connection.
    assert!(r.msgs_received <= 16 + 32, "{r:?}");
    assert!(r.msgs_received >= 16, "{r:?}");
    // Now the loop catches up: every message arrives, in order, none dropped.
    let mut got = Vec::new();
    while got.len() < 1_000 {
        let (from, seq) = madsim::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, 1);
        got.push(seq);
    }
    assert_eq!(got, (0..1_000).collect::<Vec<_>>());
    let s = st.stats();
    assert_eq!(
        s.dropped_queue_full + s.dropped_send_failed + s.dropped_stale,
        0,
        "{s:?}"
    );
}

/// The same seed gives the same run: madsim replays the scenario and compares every random
/// draw (connection timing; backoff jitter and handshake nonces come from `getrandom`, which
/// madsim answers from the seed).
#[test]
fn a_seed_replays_the_kill_and_restart_scenario_exactly() {
    let seed = std::env::var("MADSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    madsim::runtime::Runtime::check_determinism(seed, madsim::Config::default(), || async {
        a_killed_peer_is_redialed_with_bounded_backoff_and_its_next_incarnation_gets_only_fresh_messages_body().await
    });
}
