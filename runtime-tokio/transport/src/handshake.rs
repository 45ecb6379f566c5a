//! Mutual challenge–response authentication run on every connection before any envelope.
//!
//! ```text
//! dialer   -> acceptor  Hello     { versions, from: d, to: a, nonce_d }
//! acceptor -> dialer    Challenge { version, from: a, nonce_a, proof_a }
//! dialer   -> acceptor  Proof     { proof_d }
//! acceptor -> dialer    Welcome
//! proof_x = blake3::keyed_hash(key, role_x | version | d | a | nonce_d | nonce_a)
//! key     = blake3::derive_key(CONTEXT, cluster secret)
//! ```
//!
//! Why this shape: each side proves knowledge of the key over a nonce the *other* side chose
//! fresh from the OS RNG, so a recorded handshake cannot be replayed; the role label stops a
//! proof from being reflected back; binding both node ids and the agreed version stops a
//! man-in-the-middle from splicing two handshakes or downgrading the version. The secret itself
//! never crosses the wire. `blake3::Hash` compares in constant time. The final `Welcome` tells
//! the dialer it was accepted before it sends data, so envelopes are not written into a
//! connection that is about to be closed. This authenticates peers; it does not encrypt traffic
//! (run node-to-node traffic on a private network or under TLS/WireGuard).

use super::{FramedConn, NodeId, TransportError};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use vecraft_core::wire;

/// Transport protocol version spoken by this build. Raised whenever what travels inside the
/// envelopes changes incompatibly, so that nodes of builds that cannot decode each other's
/// messages are refused at the handshake with a clear error instead of dropping every frame.
/// 2: Raft append answers carry the follower's applied index.
/// 3: shard queries and answers for a collection's vector settings (`PATCH` quantization and
///    `on_disk`), and the shard commands that change them.
/// 4: shard queries for a shard's changes after a sequence number (point-in-time exports).
pub const PROTOCOL_VERSION: u16 = 4;
/// Oldest transport protocol version this build accepts.
pub const MIN_PROTOCOL_VERSION: u16 = 4;
/// blake3 `derive_key` context; changing it changes every derived key.
const CONTEXT: &str = "vecraft 2026-12 node transport handshake v1";

/// The handshake key derived from a cluster secret.
#[derive(Clone)]
pub struct HandshakeKey([u8; 32]);

impl HandshakeKey {
    /// Derives the key; the secret is not kept.
    pub fn derive(secret: &[u8]) -> Self {
        Self(blake3::derive_key(CONTEXT, secret))
    }
}

impl std::fmt::Debug for HandshakeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandshakeKey(..)")
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Hs {
    Hello {
        min_version: u16,
        max_version: u16,
        from: NodeId,
        to: NodeId,
        nonce: [u8; 32],
    },
    Challenge {
        version: u16,
        from: NodeId,
        nonce: [u8; 32],
        proof: [u8; 32],
    },
    Proof {
        proof: [u8; 32],
    },
    Welcome,
}

fn nonce() -> Result<[u8; 32], TransportError> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).map_err(|e| TransportError::Rng(e.to_string()))?;
    Ok(n)
}

fn proof(
    key: &HandshakeKey,
    role: &[u8],
    v: u16,
    d: NodeId,
    a: NodeId,
    nd: &[u8; 32],
    na: &[u8; 32],
) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(&key.0);
    h.update(role)
        .update(&v.to_le_bytes())
        .update(&d.to_le_bytes())
        .update(&a.to_le_bytes());
    h.update(nd).update(na);
    h.finalize()
}

async fn send(conn: &mut FramedConn, msg: &Hs) -> Result<(), TransportError> {
    let bytes = wire::encode(msg).map_err(|e| TransportError::Handshake(e.to_string()))?;
    conn.send(Bytes::from(bytes))
        .await
        .map_err(TransportError::Io)
}

async fn recv(conn: &mut FramedConn) -> Result<Hs, TransportError> {
    match conn.next().await {
        Some(Ok(frame)) => wire::decode(&frame)
            .map_err(|e| TransportError::Handshake(format!("bad handshake message: {e}"))),
        Some(Err(e)) => Err(TransportError::Io(e)),
        None => Err(TransportError::Handshake(
            "connection closed during handshake".into(),
        )),
    }
}

/// Dialer side: authenticates `expected` and proves itself. Returns the agreed version.
pub async fn dial(
    conn: &mut FramedConn,
    key: &HandshakeKey,
    local: NodeId,
    expected: NodeId,
) -> Result<u16, TransportError> {
    let nd = nonce()?;
    let hello = Hs::Hello {
        min_version: MIN_PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        from: local,
        to: expected,
        nonce: nd,
    };
    send(conn, &hello).await?;
    let Hs::Challenge {
        version,
        from,
        nonce: na,
        proof: pa,
    } = recv(conn).await?
    else {
        return Err(TransportError::Handshake("expected challenge".into()));
    };
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
        return Err(TransportError::Version {
            theirs: version,
            ours: PROTOCOL_VERSION,
        });
    }
    if from != expected {
        return Err(TransportError::Handshake(format!(
            "dialed node {expected}, node {from} answered"
        )));
    }
    if proof(key, b"acceptor", version, local, from, &nd, &na) != blake3::Hash::from(pa) {
        return Err(TransportError::AuthFailed { peer: Some(from) });
    }
    let pd = proof(key, b"dialer", version, local, from, &nd, &na);
    send(
        conn,
        &Hs::Proof {
            proof: *pd.as_bytes(),
        },
    )
    .await?;
    match recv(conn).await? {
        Hs::Welcome => Ok(version),
        other => Err(TransportError::Handshake(format!(
            "expected welcome, got {other:?}"
        ))),
    }
}

/// Acceptor side: proves itself and authenticates the dialer. Returns `(dialer id, version)`.
pub async fn accept(
    conn: &mut FramedConn,
    key: &HandshakeKey,
    local: NodeId,
) -> Result<(NodeId, u16), TransportError> {
    let Hs::Hello {
        min_version,
        max_version,
        from,
        to,
        nonce: nd,
    } = recv(conn).await?
    else {
        return Err(TransportError::Handshake("expected hello".into()));
    };
    let version = max_version.min(PROTOCOL_VERSION);
    if version < min_version || version < MIN_PROTOCOL_VERSION {
        return Err(TransportError::Version {
            theirs: max_version,
            ours: PROTOCOL_VERSION,
        });
    }
    if to != local || from == local {
        return Err(TransportError::Handshake(format!(
            "misdirected hello: from {from} to {to}, this is node {local}"
        )));
    }
    let na = nonce()?;
    let pa = proof(key, b"acceptor", version, from, local, &nd, &na);
    send(
        conn,
        &Hs::Challenge {
            version,
            from: local,
            nonce: na,
            proof: *pa.as_bytes(),
        },
    )
    .await?;
    let Hs::Proof { proof: pd } = recv(conn).await? else {
        return Err(TransportError::Handshake("expected proof".into()));
    };
    if proof(key, b"dialer", version, from, local, &nd, &na) != blake3::Hash::from(pd) {
        return Err(TransportError::AuthFailed { peer: Some(from) });
    }
    send(conn, &Hs::Welcome).await?;
    Ok((from, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::codec::{Framed, LengthDelimitedCodec};

    async fn tcp_pair() -> (FramedConn, FramedConn) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        let codec = || {
            LengthDelimitedCodec::builder()
                .max_frame_length(4096)
                .new_codec()
        };
        (
            Framed::new(c.unwrap(), codec()),
            Framed::new(s.unwrap().0, codec()),
        )
    }

    #[tokio::test]
    async fn same_secret_agrees_both_ways() {
        let (mut c, mut s) = tcp_pair().await;
        let k = HandshakeKey::derive(b"cluster-a");
        let (d, a) = tokio::join!(dial(&mut c, &k, 1, 2), accept(&mut s, &k, 2));
        assert_eq!(d.unwrap(), PROTOCOL_VERSION);
        assert_eq!(a.unwrap(), (1, PROTOCOL_VERSION));
    }

    #[tokio::test]
    async fn acceptor_refuses_a_dialer_that_cannot_prove_the_secret() {
        let (mut c, mut s) = tcp_pair().await;
        let good = HandshakeKey::derive(b"cluster-a");
        let bad = HandshakeKey::derive(b"cluster-b");
        // A forging dialer: it skips checking the acceptor and answers with its own key.
        let forger = async {
            let nd = [7u8; 32];
            send(
                &mut c,
                &Hs::Hello {
                    min_version: PROTOCOL_VERSION,
                    max_version: PROTOCOL_VERSION,
                    from: 1,
                    to: 2,
                    nonce: nd,
                },
            )
            .await
            .unwrap();
            let Hs::Challenge {
                version, nonce: na, ..
            } = recv(&mut c).await.unwrap()
            else {
                panic!("no challenge")
            };
            let pd = proof(&bad, b"dialer", version, 1, 2, &nd, &na);
            send(
                &mut c,
                &Hs::Proof {
                    proof: *pd.as_bytes(),
                },
            )
            .await
            .unwrap();
            recv(&mut c).await
        };
        // The acceptor drops its end when it refuses, which ends the forger's wait.
        let acceptor = async move { accept(&mut s, &good, 2).await };
        let (f, a) = tokio::join!(forger, acceptor);
        assert!(
            matches!(a, Err(TransportError::AuthFailed { peer: Some(1) })),
            "{a:?}"
        );
        assert!(f.is_err(), "forger must not be welcomed");
    }

    #[tokio::test]
    async fn dialer_refuses_an_acceptor_with_another_secret_and_wrong_ids() {
        let (mut c, mut s) = tcp_pair().await;
        let (kx, ky) = (HandshakeKey::derive(b"x"), HandshakeKey::derive(b"y"));
        // Each side owns (and on failure drops) its end, which ends the other side's wait.
        let (d, a) = tokio::join!(async move { dial(&mut c, &kx, 1, 2).await }, async move {
            accept(&mut s, &ky, 2).await
        });
        assert!(
            matches!(d, Err(TransportError::AuthFailed { peer: Some(2) })),
            "{d:?}"
        );
        assert!(a.is_err());
        let (mut c, mut s) = tcp_pair().await;
        let k = HandshakeKey::derive(b"x");
        let k2 = k.clone();
        // The acceptor drops its end when it refuses, which ends the dialer's wait.
        let (d, a) = tokio::join!(async move { dial(&mut c, &k, 1, 3).await }, async move {
            accept(&mut s, &k2, 2).await
        });
        assert!(
            a.is_err() && d.is_err(),
            "misdirected dial must fail: {a:?} {d:?}"
        );
    }

    #[tokio::test]
    async fn a_node_of_the_previous_protocol_is_refused_by_version() {
        // Version 3 nodes cannot decode version 4's changes queries: refused before any data.
        let (mut c, mut s) = tcp_pair().await;
        let k = HandshakeKey::derive(b"x");
        let old = async {
            send(
                &mut c,
                &Hs::Hello {
                    min_version: 3,
                    max_version: 3,
                    from: 1,
                    to: 2,
                    nonce: [3u8; 32],
                },
            )
            .await
            .unwrap();
            recv(&mut c).await
        };
        let acceptor = async move { accept(&mut s, &k, 2).await };
        let (o, a) = tokio::join!(old, acceptor);
        assert!(
            matches!(a, Err(TransportError::Version { theirs: 3, ours: 4 })),
            "{a:?}"
        );
        assert!(o.is_err(), "the old node is not challenged");
    }
}
