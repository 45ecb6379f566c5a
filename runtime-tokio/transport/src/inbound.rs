//! The accept loop and the per-connection readers.
//!
//! Every accepted connection must finish the handshake within the timeout; then each frame must
//! decode as an [`Envelope`] from the authenticated peer to this node. Anything else (an
//! oversized frame, undecodable bytes, a wrong wire version, a spoofed sender) closes **that**
//! connection with a logged error and leaves every other connection alone: one bad or hostile
//! peer cannot stop the node from hearing the others. Messages go to one bounded channel; when
//! the node loop falls behind, readers wait, which pushes back through TCP flow control to the
//! senders, whose bounded queues then drop.

use super::handshake::{self, HandshakeKey};
use super::{Counters, Envelope, NodeId, TransportError, framed};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use vecraft_core::wire;

/// What the accept loop and its readers share.
#[derive(Clone, Debug)]
pub(crate) struct InboundCtx {
    pub local: NodeId,
    pub key: HandshakeKey,
    pub max_frame_len: usize,
    pub handshake_timeout: Duration,
    pub counters: Arc<Counters>,
    pub cancel: CancellationToken,
    /// One permit per open inbound connection (handshaking or authenticated).
    pub slots: Arc<Semaphore>,
}

/// Accepts connections until cancelled, one reader task each.
pub(crate) async fn accept_loop<T>(
    ctx: InboundCtx,
    listener: TcpListener,
    tx: mpsc::Sender<(NodeId, T)>,
) where
    T: DeserializeOwned + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, addr)) => match Arc::clone(&ctx.slots).try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(read_connection(
                        ctx.clone(),
                        stream,
                        addr,
                        tx.clone(),
                        permit,
                    ));
                }
                Err(_) => {
                    // A connection flood must not turn into unbounded tasks and buffers.
                    Counters::add(&ctx.counters.inbound_refused_limit, 1);
                    tracing::warn!(%addr, "transport: too many inbound connections, refusing");
                    drop(stream);
                }
            },
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "transport: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Handshakes one inbound connection, then forwards its messages until it closes or misbehaves.
async fn read_connection<T>(
    ctx: InboundCtx,
    stream: TcpStream,
    addr: SocketAddr,
    tx: mpsc::Sender<(NodeId, T)>,
    _slot: OwnedSemaphorePermit,
) where
    T: DeserializeOwned + Send + 'static,
{
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%addr, error = %e, "transport: set_nodelay failed");
    }
    let mut conn = framed(stream, ctx.max_frame_len);
    let hs = tokio::select! {
        _ = ctx.cancel.cancelled() => return,
        r = tokio::time::timeout(ctx.handshake_timeout, handshake::accept(&mut conn, &ctx.key, ctx.local)) => {
            r.unwrap_or(Err(TransportError::Timeout))
        }
    };
    let peer = match hs {
        Ok((peer, _version)) => peer,
        Err(e) => {
            Counters::add(&ctx.counters.handshake_failures_in, 1);
            tracing::warn!(%addr, error = %e, "transport: refused inbound connection");
            return;
        }
    };
    tracing::debug!(%addr, peer, "transport: inbound connection authenticated");
    loop {
        let frame = tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            f = conn.next() => f,
        };
        let bytes = match frame {
            None => return,
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                Counters::add(&ctx.counters.bad_frames, 1);
                tracing::error!(%addr, peer, error = %e, "transport: bad frame, closing connection");
                return;
            }
        };
        let env = match decode_envelope::<T>(&bytes, peer, ctx.local) {
            Ok(env) => env,
            Err(e) => {
                Counters::add(&ctx.counters.bad_frames, 1);
                tracing::error!(%addr, peer, error = %e, "transport: bad envelope, closing connection");
                return;
            }
        };
        Counters::add(&ctx.counters.envelopes_received, 1);
        Counters::add(&ctx.counters.msgs_received, env.msgs.len() as u64);
        for msg in env.msgs {
            let sent = tokio::select! {
                _ = ctx.cancel.cancelled() => return,
                r = tx.send((peer, msg)) => r,
            };
            if sent.is_err() {
                return; // the node dropped its receiver: shutting down
            }
        }
    }
}

/// Decodes an envelope and checks it is from the authenticated peer and addressed to us.
pub fn decode_envelope<T: DeserializeOwned>(
    bytes: &[u8],
    peer: NodeId,
    local: NodeId,
) -> Result<Envelope<T>, TransportError> {
    let env: Envelope<T> =
        wire::decode(bytes).map_err(|e| TransportError::BadEnvelope(e.to_string()))?;
    if env.from != peer || env.to != local {
        return Err(TransportError::BadEnvelope(format!(
            "envelope {} -> {} on the connection from {peer} to {local}",
            env.from, env.to
        )));
    }
    Ok(env)
}
