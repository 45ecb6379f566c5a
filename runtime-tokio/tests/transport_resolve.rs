//! Peers given by host name: resolved on every dial, so a name that does not resolve (yet) or a
//! peer that starts later is retried with backoff, never a start-up failure, and never holds up
//! the other peers' writers.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, sleep, timeout};
use vecraft_runtime::transport::{NodeId, PeerAddr, Transport, TransportConfig};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Msg(u64);

fn cfg(id: NodeId, listen: &str) -> TransportConfig {
    let mut c = TransportConfig::new(id, listen.parse().unwrap(), "s3cret");
    c.handshake_timeout = Duration::from_secs(2);
    c.backoff_min = Duration::from_millis(10);
    c.backoff_max = Duration::from_millis(100);
    c
}

async fn node(id: NodeId) -> (Transport<Msg>, Receiver<(NodeId, Msg)>) {
    Transport::bind(cfg(id, "127.0.0.1:0")).await.unwrap()
}

fn localhost(port: u16) -> PeerAddr {
    PeerAddr::parse(&format!("localhost:{port}")).unwrap()
}

/// Sends `Msg(n)` every 20 ms until `rx` yields a message from `from` (messages sent before the
/// connection is up may be dropped as stale, which the protocols above tolerate).
async fn send_until_received(
    t: &Transport<Msg>,
    to: NodeId,
    rx: &mut Receiver<(NodeId, Msg)>,
    within: Duration,
) -> Msg {
    let deadline = Instant::now() + within;
    let mut n = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "nothing from {} reached {to} within {within:?}",
            t.node_id()
        );
        t.send(to, Msg(n));
        n += 1;
        if let Ok(Some((from, m))) = timeout(Duration::from_millis(20), rx.recv()).await {
            assert_eq!(from, t.node_id());
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_given_as_localhost_port_connects() {
    let (a, _arx) = node(1).await;
    let (b, mut brx) = node(2).await;
    a.add_peer(2, localhost(b.local_addr().port()));
    send_until_received(&a, 2, &mut brx, Duration::from_secs(10)).await;
    let stats = a.stats();
    assert!(stats.connects >= 1, "{stats:?}");
    assert_eq!(stats.resolve_failures, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_peer_is_retried_without_blocking_the_others() {
    let (a, _arx) = node(1).await;
    let (c, mut crx) = node(3).await;
    // `.invalid` never resolves (RFC 6761).
    a.add_peer(2, PeerAddr::parse("no-such-peer.invalid:7333").unwrap());
    a.add_peer(3, localhost(c.local_addr().port()));
    for i in 0..10 {
        assert!(a.send(2, Msg(i)), "queued for the unresolvable peer");
    }
    send_until_received(&a, 3, &mut crx, Duration::from_secs(10)).await;
    // The unresolvable peer keeps being retried (with backoff), and is counted as such.
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.stats().resolve_failures < 3 {
        assert!(Instant::now() < deadline, "no retries: {:?}", a.stats());
        sleep(Duration::from_millis(20)).await;
    }
    let stats = a.stats();
    assert!(
        stats.connect_failures >= stats.resolve_failures,
        "{stats:?}"
    );
    assert_eq!(
        a.queue_len(2),
        Some(10),
        "nothing for the unreachable peer was sent or lost"
    );
    // Still serving the reachable peer after all those failures.
    send_until_received(&a, 3, &mut crx, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_starts_later_is_reached_once_it_listens() {
    // Find a free port, then leave it closed: the peer "has not started yet".
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (a, _arx) = node(1).await;
    a.add_peer(2, localhost(port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.stats().connect_failures < 2 {
        assert!(
            Instant::now() < deadline,
            "no dial attempts: {:?}",
            a.stats()
        );
        a.send(2, Msg(0));
        sleep(Duration::from_millis(10)).await;
    }
    let (b, mut brx) = Transport::<Msg>::bind(cfg(2, &format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    send_until_received(&a, 2, &mut brx, Duration::from_secs(10)).await;
    assert_eq!(a.stats().resolve_failures, 0, "localhost always resolves");
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_addressing_an_unresolvable_peer_stops_its_old_writer() {
    let (a, _arx) = node(1).await;
    let (b, mut brx) = node(2).await;
    a.add_peer(2, PeerAddr::parse("no-such-peer.invalid:7333").unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.stats().resolve_failures < 1 {
        assert!(
            Instant::now() < deadline,
            "no dial attempt: {:?}",
            a.stats()
        );
        sleep(Duration::from_millis(10)).await;
    }
    // The peer "moved": the operator (or a later config) gives its real address.
    a.add_peer(2, localhost(b.local_addr().port()));
    send_until_received(&a, 2, &mut brx, Duration::from_secs(10)).await;
    // The old writer saw its queue closed and stopped dialing the dead name.
    sleep(Duration::from_millis(300)).await;
    let before = a.stats().resolve_failures;
    sleep(Duration::from_millis(500)).await;
    assert_eq!(
        a.stats().resolve_failures,
        before,
        "the replaced writer still dials"
    );
}
