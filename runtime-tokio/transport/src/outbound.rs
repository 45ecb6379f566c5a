//! One writer task per peer: dial, handshake, then drain the peer's bounded queue into envelopes.
//!
//! Why this shape:
//! - The queue is bounded and `send` never waits: a full queue (slow or dead peer) drops the
//!   message and counts it. Raft and the other protocols retransmit, so dropping is safe, while
//!   an unbounded queue to a dead peer would eat the node's memory.
//! - Each wake-up takes everything queued (up to `max_batch`) into **one** envelope, so the
//!   heartbeats of many groups to one peer share a frame and a syscall.
//! - Reconnects back off exponentially with jitter so that a restarted node is not hit by every
//!   peer in lockstep.
//! - The peer's address is a `host:port` name ([`PeerAddr`]) resolved on every dial, so a
//!   peer whose name does not resolve yet (a container not started) or now resolves elsewhere
//!   (a rescheduled pod) is handled by the same backoff as a refused connection.
//! - The task also watches the read half: the acceptor never sends after `Welcome`, so EOF there
//!   means the peer went away, and the task reconnects before the next message instead of
//!   losing it to a half-dead socket.

use super::handshake::{self, HandshakeKey};
use super::peer_addr::PeerAddr;
use super::{Counters, EnvelopeRef, FramedConn, NodeId, TransportError, framed};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vecraft_core::wire;

/// Everything a peer writer needs (cloned per peer).
#[derive(Clone, Debug)]
pub(crate) struct PeerCtx {
    pub local: NodeId,
    pub peer: NodeId,
    pub addr: PeerAddr,
    pub key: HandshakeKey,
    pub max_frame_len: usize,
    pub max_batch: usize,
    pub handshake_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub counters: Arc<Counters>,
    pub cancel: CancellationToken,
}

/// Exponential backoff with "equal jitter": the wait is uniform in [d/2, d].
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    fn reset(&mut self) {
        self.next = self.min;
    }

    fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        let mut r = [0u8; 8];
        let frac = match getrandom::fill(&mut r) {
            Ok(()) => (u64::from_le_bytes(r) % 1000) as f64 / 1000.0,
            Err(_) => 0.5,
        };
        d / 2 + d.mul_f64(0.5 * frac)
    }
}

/// Resolves the peer's name, dials its addresses in the resolver's order until one accepts,
/// and handshakes, all within the handshake timeout (a resolver that hangs counts as a failed
/// attempt and backs off like any other). Returns the connection and the address it reached.
async fn connect(ctx: &PeerCtx) -> Result<(FramedConn, SocketAddr), TransportError> {
    let attempt = async {
        let addrs = ctx
            .addr
            .resolve()
            .await
            .map_err(|source| TransportError::Resolve {
                addr: ctx.addr.to_string(),
                source,
            })?;
        let (stream, reached) = dial_first(&addrs).await?;
        stream.set_nodelay(true)?;
        let mut conn = framed(stream, ctx.max_frame_len);
        handshake::dial(&mut conn, &ctx.key, ctx.local, ctx.peer).await?;
        Ok((conn, reached))
    };
    tokio::time::timeout(ctx.handshake_timeout, attempt)
        .await
        .map_err(|_| TransportError::Timeout)?
}

/// Connects to the first of `addrs` that accepts; the last error if none does.
async fn dial_first(addrs: &[SocketAddr]) -> std::io::Result<(TcpStream, SocketAddr)> {
    let mut last = None;
    for &addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok((stream, addr)),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address to dial")))
}

/// The writer task of one peer. Ends when cancelled or when the queue's sender is dropped.
pub(crate) async fn run_peer<T: Serialize + Send + 'static>(
    ctx: PeerCtx,
    mut rx: mpsc::Receiver<T>,
) {
    let mut backoff = Backoff::new(ctx.backoff_min, ctx.backoff_max);
    let mut batch: Vec<T> = Vec::new();
    let mut connected_before = false;
    // Resolution failures are logged at `warn` once per streak (the first after a success or
    // at start), then at `debug`: a peer that is down for an hour must not flood the log,
    // but an operator must see why it is not reached.
    let mut resolve_warned = false;
    let mut last_reached: Option<SocketAddr> = None;
    loop {
        let conn = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = connect(&ctx) => r,
        };
        let mut conn = match conn {
            Ok((c, reached)) => {
                Counters::add(&ctx.counters.connects, 1);
                if last_reached.is_some_and(|prev| prev != reached) {
                    tracing::info!(peer = ctx.peer, addr = %ctx.addr, %reached,
                        "transport: peer now reached at another address");
                }
                tracing::debug!(peer = ctx.peer, addr = %ctx.addr, %reached, "transport: connected");
                last_reached = Some(reached);
                resolve_warned = false;
                backoff.reset();
                if connected_before {
                    let stale = drop_stale(&mut rx);
                    Counters::add(&ctx.counters.dropped_stale, stale);
                }
                connected_before = true;
                c
            }
            Err(e) => {
                Counters::add(&ctx.counters.connect_failures, 1);
                // An unreachable peer is routine (debug); a peer that answers but fails the
                // handshake (wrong secret, wrong node, no common version) is worth a warning.
                match &e {
                    TransportError::Resolve { .. } => {
                        Counters::add(&ctx.counters.resolve_failures, 1);
                        if resolve_warned {
                            tracing::debug!(peer = ctx.peer, addr = %ctx.addr, error = %e, "transport: cannot resolve peer, retrying")
                        } else {
                            tracing::warn!(peer = ctx.peer, addr = %ctx.addr, error = %e,
                                "transport: cannot resolve peer address; retrying with backoff (further failures logged at debug)");
                            resolve_warned = true;
                        }
                    }
                    TransportError::Io(_) | TransportError::Timeout => {
                        tracing::debug!(peer = ctx.peer, addr = %ctx.addr, error = %e, "transport: connect failed")
                    }
                    _ => {
                        tracing::warn!(peer = ctx.peer, addr = %ctx.addr, error = %e, "transport: handshake refused")
                    }
                }
                // Replaced or removed (`add_peer` again, `remove_peer`) while unreachable:
                // nobody can queue for this writer any more, so stop dialing.
                if rx.is_closed() && rx.is_empty() {
                    return;
                }
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_delay()) => continue,
                }
            }
        };
        loop {
            tokio::select! {
                _ = ctx.cancel.cancelled() => return,
                m = rx.recv() => match m {
                    Some(m) => batch.push(m),
                    None => return,
                },
                _ = conn.next() => {
                    tracing::debug!(peer = ctx.peer, "transport: peer closed the connection");
                    break;
                }
            }
            while batch.len() < ctx.max_batch {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            // Encode before writing: no borrow of `batch` is held across an await, so `T` need
            // not be `Sync`.
            let frames = encode_frames(&ctx, &batch);
            batch.clear();
            let count: u64 = frames.iter().map(|f| f.1).sum();
            let written = tokio::select! {
                _ = ctx.cancel.cancelled() => return,
                r = write_frames(&ctx, &mut conn, frames) => r,
            };
            if let Err(e) = written {
                Counters::add(&ctx.counters.dropped_send_failed, count);
                tracing::debug!(peer = ctx.peer, error = %e, "transport: write failed, reconnecting");
                break;
            }
        }
    }
}

/// Drops everything queued before a *re*connection. A message queued for a connection that
/// died, or while the peer was unreachable after it, was addressed to a process that may since
/// have restarted: delivering it to the new incarnation would break the rule the node relies on
/// (a message sent to one incarnation is never delivered to the next; the simulator models the
/// same). Connections die with the process, so after a reconnect only what was queued while
/// the new connection was up is sent. The protocols above retransmit what matters.
/// Limit: messages queued before the *first* connection are still delivered (the peer may have
/// restarted before we ever reached it); none of them can have been delivered before, so no
/// message reaches two incarnations.
fn drop_stale<T>(rx: &mut mpsc::Receiver<T>) -> u64 {
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    n
}

/// Writes the encoded envelopes and flushes once.
async fn write_frames(
    ctx: &PeerCtx,
    conn: &mut FramedConn,
    frames: Vec<(Bytes, u64)>,
) -> Result<(), TransportError> {
    let n = frames.len() as u64;
    for (bytes, count) in frames {
        conn.feed(bytes).await?;
        Counters::add(&ctx.counters.msgs_sent, count);
    }
    SinkExt::<Bytes>::flush(conn).await?;
    Counters::add(&ctx.counters.envelopes_sent, n);
    Ok(())
}

/// Encodes `msgs` into envelopes of at most `max_frame_len` bytes, halving a batch until each
/// part fits; a single message that alone is too big is dropped and counted. Returns each frame
/// with the number of messages in it.
fn encode_frames<T: Serialize>(ctx: &PeerCtx, msgs: &[T]) -> Vec<(Bytes, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![(0, msgs.len())];
    while let Some((lo, hi)) = stack.pop() {
        let env = EnvelopeRef {
            from: ctx.local,
            to: ctx.peer,
            msgs: &msgs[lo..hi],
        };
        let bytes = match wire::encode(&env) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(peer = ctx.peer, error = %e, "transport: cannot encode envelope, dropping");
                Counters::add(&ctx.counters.dropped_oversize, (hi - lo) as u64);
                continue;
            }
        };
        if bytes.len() <= ctx.max_frame_len {
            out.push((Bytes::from(bytes), (hi - lo) as u64));
        } else if hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            stack.push((mid, hi));
            stack.push((lo, mid));
        } else {
            tracing::warn!(
                peer = ctx.peer,
                len = bytes.len(),
                max = ctx.max_frame_len,
                "transport: message over max frame size dropped"
            );
            Counters::add(&ctx.counters.dropped_oversize, 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let (min, max) = (Duration::from_millis(10), Duration::from_millis(100));
        let mut b = Backoff::new(min, max);
        let mut nominal = min;
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(
                d >= nominal / 2 && d <= nominal,
                "{d:?} outside [{:?}, {nominal:?}]",
                nominal / 2
            );
            nominal = (nominal * 2).min(max);
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }
}
