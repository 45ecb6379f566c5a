//! The TCP transport on 127.0.0.1: exchange, authentication, reconnect, hostile input, bounds.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;
use vecraft_runtime::transport::handshake::{self, HandshakeKey};
use vecraft_runtime::transport::{Envelope, NodeId, Transport, TransportConfig, framed};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Msg {
    group: u32,
    n: u64,
    body: Vec<u8>,
}

fn msg(group: u32, n: u64) -> Msg {
    Msg {
        group,
        n,
        body: vec![group as u8; 8],
    }
}

fn cfg(id: NodeId, secret: &str) -> TransportConfig {
    let mut c = TransportConfig::new(id, "127.0.0.1:0".parse().unwrap(), secret);
    c.handshake_timeout = Duration::from_secs(2);
    c.backoff_min = Duration::from_millis(10);
    c.backoff_max = Duration::from_millis(200);
    c.max_frame_len = 64 << 10;
    c
}

async fn node(id: NodeId, secret: &str) -> (Transport<Msg>, Receiver<(NodeId, Msg)>) {
    Transport::bind(cfg(id, secret)).await.unwrap()
}

async fn recv_n(rx: &mut Receiver<(NodeId, Msg)>, n: usize) -> Vec<(NodeId, Msg)> {
    let mut got = Vec::new();
    while got.len() < n {
        match timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(m)) => got.push(m),
            other => panic!("after {} of {n} messages: {other:?}", got.len()),
        }
    }
    got
}

/// True if the server closed `stream` (EOF or reset) within a few seconds.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_exchange_batched_messages_in_order() {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(node(id, "s3cret").await);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|(t, _)| t.local_addr()).collect();
    for (t, _) in &nodes {
        for (j, addr) in addrs.iter().enumerate() {
            let id = j as NodeId + 1;
            if id != t.node_id() {
                t.add_peer(id, *addr);
            }
        }
    }
    for (t, _) in &nodes {
        for to in 1..=3 {
            if to != t.node_id() {
                for n in 0..200 {
                    assert!(t.send(to, msg(t.node_id() as u32, n)));
                }
            }
        }
    }
    for (t, rx) in &mut nodes {
        let got = recv_n(rx, 400).await;
        for from in (1..=3).filter(|&f| f != t.node_id()) {
            let ns: Vec<u64> = got
                .iter()
                .filter(|(f, _)| *f == from)
                .map(|(_, m)| m.n)
                .collect();
            assert_eq!(
                ns,
                (0..200).collect::<Vec<_>>(),
                "node {} from {from}",
                t.node_id()
            );
            assert!(
                got.iter()
                    .filter(|(f, _)| *f == from)
                    .all(|(_, m)| m.group == from as u32)
            );
        }
    }
    for (t, _) in &nodes {
        let s = t.stats();
        assert_eq!(s.msgs_sent, 400, "{s:?}");
        // Messages queued while connecting travel together: fewer envelopes than messages.
        assert!(s.envelopes_sent < s.msgs_sent, "{s:?}");
        assert_eq!(
            s.dropped_queue_full + s.dropped_send_failed + s.bad_frames,
            0,
            "{s:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused_on_both_sides() {
    let (a, mut arx) = node(1, "cluster-one").await;
    let (b, mut brx) = node(2, "cluster-two").await;
    a.add_peer(2, b.local_addr());
    b.add_peer(1, a.local_addr());
    for n in 0..5 {
        a.send(2, msg(1, n));
        b.send(1, msg(2, n));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        brx.try_recv().is_err(),
        "b accepted a message from another cluster"
    );
    assert!(
        arx.try_recv().is_err(),
        "a accepted a message from another cluster"
    );
    for t in [&a, &b] {
        let s = t.stats();
        assert!(s.connect_failures > 0 && s.connects == 0, "{s:?}");
        assert!(s.handshake_failures_in > 0, "{s:?}");
        assert_eq!(s.msgs_sent, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_reconnects_after_the_peer_restarts() {
    let (a, _arx) = node(1, "s").await;
    let (b, mut brx) = node(2, "s").await;
    let b_addr = b.local_addr();
    a.add_peer(2, b_addr);
    a.send(2, msg(1, 1));
    assert_eq!(recv_n(&mut brx, 1).await[0].1, msg(1, 1));
    b.shutdown().await;
    drop((b, brx));
    // While b is down, messages queue (bounded) or are dropped; neither blocks the sender.
    a.send(2, msg(1, 2));
    let mut c = cfg(2, "s");
    c.listen = b_addr;
    let (b2, mut b2rx) = Transport::<Msg>::bind(c).await.unwrap();
    // Keep sending until the restarted peer hears from a: the writer must reconnect by itself.
    let mut n = 3;
    let got = loop {
        a.send(2, msg(1, n));
        n += 1;
        if let Ok(Some(m)) = timeout(Duration::from_millis(100), b2rx.recv()).await {
            break m;
        }
        assert!(n < 100, "no delivery after restart: {:?}", a.stats());
    };
    assert_eq!(got.0, 1);
    // What was queued for the old process never reaches the new one.
    assert_ne!(got.1, msg(1, 2), "a message queued for the old incarnation was delivered");
    assert!(a.stats().connects >= 2, "{:?}", a.stats());
    b2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_are_closed_and_others_still_served() {
    let (b, mut brx) = node(2, "s").await;
    let (a, _arx) = node(1, "s").await;
    a.add_peer(2, b.local_addr());
    let key = HandshakeKey::derive(b"s");
    let max = 64 << 10;

    // 1. Garbage instead of a handshake.
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    raw.write_all(&[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x01])
        .await
        .unwrap();
    assert!(
        closed_by_server(&mut raw).await,
        "garbage handshake not closed"
    );

    // An authenticated peer (id 3) that then misbehaves in three ways.
    async fn authenticated(addr: SocketAddr, key: &HandshakeKey, max: usize) -> TcpStream {
        let mut conn = framed(TcpStream::connect(addr).await.unwrap(), max);
        handshake::dial(&mut conn, key, 3, 2).await.unwrap();
        conn.into_inner()
    }
    // 2. A frame announced larger than the maximum.
    let mut s = authenticated(b.local_addr(), &key, max).await;
    s.write_all(&((max as u32) + 1).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&[1u8; 1024]).await.unwrap();
    assert!(closed_by_server(&mut s).await, "oversized frame not closed");
    // 3. A frame with an unknown wire version.
    let mut s = authenticated(b.local_addr(), &key, max).await;
    s.write_all(&[0, 0, 0, 3, 99, 1, 2]).await.unwrap();
    assert!(closed_by_server(&mut s).await, "wrong version not closed");
    // 4. A well-formed envelope claiming to come from another node.
    let mut s = authenticated(b.local_addr(), &key, max).await;
    let spoof = vecraft_core::wire::encode(&Envelope {
        from: 1,
        to: 2,
        msgs: vec![msg(9, 9)],
    })
    .unwrap();
    s.write_all(&(spoof.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&spoof).await.unwrap();
    assert!(
        closed_by_server(&mut s).await,
        "spoofed envelope not closed"
    );

    // The honest peer is still served, and nothing from the hostile ones got through.
    a.send(2, msg(1, 42));
    let got = recv_n(&mut brx, 1).await;
    assert_eq!(got, vec![(1, msg(1, 42))]);
    let s = b.stats();
    assert!(s.handshake_failures_in >= 1, "{s:?}");
    assert_eq!(s.bad_frames, 3, "{s:?}");
    assert_eq!(s.msgs_received, 1, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_stays_bounded_under_a_stalled_peer() {
    // A peer that completes the handshake, then never reads.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stalled = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = framed(stream, 64 << 10);
        handshake::accept(&mut conn, &HandshakeKey::derive(b"s"), 2)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(conn);
    });
    let mut c = cfg(1, "s");
    c.peer_queue = 16;
    c.max_batch = 8;
    let (a, _arx) = Transport::<Msg>::bind(c).await.unwrap();
    a.add_peer(2, addr);
    let total = 20_000u64;
    let mut max_seen = 0;
    for n in 0..total {
        a.send(
            2,
            Msg {
                group: 1,
                n,
                body: vec![7u8; 2048],
            },
        );
        max_seen = max_seen.max(a.queue_len(2).unwrap());
        if n % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let s = a.stats();
    assert!(max_seen <= 16, "queue grew to {max_seen}");
    assert_eq!(s.queued + s.dropped_queue_full, total, "{s:?}");
    // ~40 MB were offered; the kernel buffers hold a few MB at most, so most must be dropped.
    assert!(s.dropped_queue_full > total / 2, "{s:?}");
    stalled.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_are_split_to_fit_frames_and_oversized_messages_dropped() {
    let small = |id| {
        let mut c = cfg(id, "s");
        c.max_frame_len = 4096;
        c
    };
    let (a, _arx) = Transport::<Msg>::bind(small(1)).await.unwrap();
    let (b, mut brx) = Transport::<Msg>::bind(small(2)).await.unwrap();
    a.add_peer(2, b.local_addr());
    for n in 0..50 {
        assert!(a.send(
            2,
            Msg {
                group: 1,
                n,
                body: vec![1; 1000]
            }
        ));
    }
    assert!(a.send(
        2,
        Msg {
            group: 1,
            n: 999,
            body: vec![1; 10_000]
        }
    ));
    let got = recv_n(&mut brx, 50).await;
    assert_eq!(
        got.iter().map(|(_, m)| m.n).collect::<Vec<_>>(),
        (0..50).collect::<Vec<_>>()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        brx.try_recv().is_err(),
        "the oversized message must not arrive"
    );
    let s = a.stats();
    assert_eq!(s.dropped_oversize, 1, "{s:?}");
    assert!(
        s.envelopes_sent >= 13,
        "50 KB cannot fit in fewer 4 KB frames: {s:?}"
    );
    assert_eq!(b.stats().bad_frames, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed_at_the_handshake_timeout() {
    let mut c = cfg(2, "s");
    c.handshake_timeout = Duration::from_millis(300);
    let (b, _brx) = Transport::<Msg>::bind(c).await.unwrap();
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    let start = std::time::Instant::now();
    assert!(closed_by_server(&mut raw).await);
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
    assert_eq!(b.stats().handshake_failures_in, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_connections_are_capped() {
    let mut c = cfg(2, "s");
    c.max_inbound_connections = 2;
    c.handshake_timeout = Duration::from_secs(5);
    let (b, _brx) = Transport::<Msg>::bind(c).await.unwrap();
    let _first = TcpStream::connect(b.local_addr()).await.unwrap();
    let _second = TcpStream::connect(b.local_addr()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(b.local_addr()).await.unwrap();
    let start = std::time::Instant::now();
    assert!(closed_by_server(&mut third).await);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "third connection should be refused at once"
    );
    assert_eq!(b.stats().inbound_refused_limit, 1);
}
