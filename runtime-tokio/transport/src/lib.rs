//! Node-to-node TCP transport of the vecraft runtime: authenticated connections carrying
//! batched, versioned envelopes.
//!
//! - [`handshake`]: mutual keyed-blake3 challenge–response before any data.
//! - [`outbound`]: one writer task per peer: bounded queue, reconnect with backoff and jitter,
//!   one envelope per drain of the queue.
//! - [`inbound`]: the accept loop and per-connection readers feeding one bounded channel.
//! - [`net`]: the [`Transport`] handle tying them together.
//!
//! Frames are `LengthDelimitedCodec` frames with an explicit maximum size; each frame is one
//! `vecraft_core::wire` message (version byte + postcard). Each direction of a node pair uses
//! the connection its *sender* dialed, so there is no simultaneous-open race to resolve.
//! The transport moves bytes and makes no protocol decision: a message that cannot be delivered
//! now is dropped and counted, and the protocols above retry.

pub mod handshake;
pub mod inbound;
pub mod net;
pub mod outbound;
pub mod peer_addr;

pub use handshake::HandshakeKey;
pub use net::{Transport, TransportConfig};
pub use peer_addr::{PeerAddr, PeerAddrError};

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

pub use vecraft_core::contract::NodeId;

/// A framed, handshaken (or handshaking) TCP connection.
pub type FramedConn = Framed<TcpStream, LengthDelimitedCodec>;

/// Frames a TCP stream, refusing frames larger than `max_frame_len` in both directions.
pub fn framed(stream: TcpStream, max_frame_len: usize) -> FramedConn {
    Framed::new(
        stream,
        LengthDelimitedCodec::builder()
            .max_frame_length(max_frame_len)
            .new_codec(),
    )
}

/// What travels in one frame after the handshake: every message queued for one peer at a flush.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Sender (must equal the authenticated peer id; checked by the receiver).
    pub from: NodeId,
    /// Recipient (must equal the receiving node).
    pub to: NodeId,
    /// The batched messages, in queue order.
    pub msgs: Vec<T>,
}

/// Borrowing twin of [`Envelope`] for encoding a slice without cloning; same postcard layout.
#[derive(Serialize)]
pub(crate) struct EnvelopeRef<'a, T> {
    pub from: NodeId,
    pub to: NodeId,
    pub msgs: &'a [T],
}

/// Why a transport operation or connection failed.
#[derive(Debug, Error)]
pub enum TransportError {
    /// Socket error (including frames over the maximum size).
    #[error("transport i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer did not follow the handshake.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The peer could not prove it holds the cluster secret.
    #[error("peer {peer:?} failed authentication (wrong or missing cluster secret)")]
    AuthFailed {
        /// The node id the peer claimed, if it got that far.
        peer: Option<NodeId>,
    },
    /// No common protocol version.
    #[error("no common protocol version (peer {theirs}, ours {ours})")]
    Version {
        /// Peer's version.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    Timeout,
    /// An envelope did not decode or broke the envelope rules.
    #[error("bad envelope: {0}")]
    BadEnvelope(String),
    /// The OS random generator failed.
    #[error("os rng: {0}")]
    Rng(String),
    /// The peer's host name did not resolve (not yet published, or gone); retried with backoff.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The `host:port` as configured.
        addr: String,
        /// The resolver's error.
        source: std::io::Error,
    },
}

/// Counters of a transport; read with [`Transport::stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub queued: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_unknown_peer: AtomicU64,
    pub dropped_send_failed: AtomicU64,
    pub dropped_oversize: AtomicU64,
    pub envelopes_sent: AtomicU64,
    pub msgs_sent: AtomicU64,
    pub envelopes_received: AtomicU64,
    pub msgs_received: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub handshake_failures_in: AtomicU64,
    pub bad_frames: AtomicU64,
    pub inbound_refused_limit: AtomicU64,
    pub dropped_stale: AtomicU64,
    pub resolve_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> TransportStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            queued: g(&self.queued),
            dropped_queue_full: g(&self.dropped_queue_full),
            dropped_unknown_peer: g(&self.dropped_unknown_peer),
            dropped_send_failed: g(&self.dropped_send_failed),
            dropped_oversize: g(&self.dropped_oversize),
            envelopes_sent: g(&self.envelopes_sent),
            msgs_sent: g(&self.msgs_sent),
            envelopes_received: g(&self.envelopes_received),
            msgs_received: g(&self.msgs_received),
            connects: g(&self.connects),
            connect_failures: g(&self.connect_failures),
            handshake_failures_in: g(&self.handshake_failures_in),
            bad_frames: g(&self.bad_frames),
            inbound_refused_limit: g(&self.inbound_refused_limit),
            dropped_stale: g(&self.dropped_stale),
            resolve_failures: g(&self.resolve_failures),
        }
    }
}

/// A snapshot of the transport's counters (for metrics and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Messages accepted into a peer queue.
    pub queued: u64,
    /// Messages dropped because the peer's queue was full.
    pub dropped_queue_full: u64,
    /// Messages for a node with no known address.
    pub dropped_unknown_peer: u64,
    /// Messages taken from a queue whose envelope could not be written (connection lost).
    pub dropped_send_failed: u64,
    /// Messages that alone exceed the maximum frame size.
    pub dropped_oversize: u64,
    /// Envelopes written.
    pub envelopes_sent: u64,
    /// Messages written.
    pub msgs_sent: u64,
    /// Envelopes read.
    pub envelopes_received: u64,
    /// Messages read from authenticated peers (then handed to the node's channel).
    pub msgs_received: u64,
    /// Outbound connections that completed the handshake.
    pub connects: u64,
    /// Outbound connection or handshake attempts that failed.
    pub connect_failures: u64,
    /// Inbound connections refused during the handshake.
    pub handshake_failures_in: u64,
    /// Inbound connections closed for an oversized, undecodable or misaddressed frame.
    pub bad_frames: u64,
    /// Inbound connections refused because `max_inbound_connections` were open.
    pub inbound_refused_limit: u64,
    /// Messages queued before a (re)connection, dropped rather than delivered to a peer
    /// process that may have restarted since (see `outbound::drop_stale`).
    pub dropped_stale: u64,
    /// Dial attempts whose peer host name did not resolve (each also counts in
    /// `connect_failures`).
    pub resolve_failures: u64,
}
