//! The [`Transport`] handle: bind, register peers, send, read counters, shut down.

use super::handshake::HandshakeKey;
use super::inbound::{InboundCtx, accept_loop};
use super::outbound::{PeerCtx, run_peer};
use super::peer_addr::PeerAddr;
use super::{Counters, NodeId, TransportError, TransportStats};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Settings of a transport. Defaults suit a LAN cluster.
#[derive(Clone)]
pub struct TransportConfig {
    /// This node's id (proven in every handshake).
    pub node_id: NodeId,
    /// Address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// The cluster secret; only a key derived from it is used, it never leaves the process.
    pub secret: Vec<u8>,
    /// Largest frame read or written; bigger envelopes are split, bigger messages dropped.
    pub max_frame_len: usize,
    /// Capacity of each peer's outbound queue (messages).
    pub peer_queue: usize,
    /// Capacity of the inbound channel to the node loop (messages).
    pub inbound_queue: usize,
    /// Most messages coalesced into one envelope.
    pub max_batch: usize,
    /// Connect + handshake deadline, both directions.
    pub handshake_timeout: Duration,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Reconnect delay cap.
    pub backoff_max: Duration,
    /// Most inbound connections open at once (handshaking or authenticated); more are refused.
    pub max_inbound_connections: usize,
}

impl TransportConfig {
    /// A config with default limits.
    pub fn new(node_id: NodeId, listen: SocketAddr, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            node_id,
            listen,
            secret: secret.into(),
            max_frame_len: 16 << 20,
            peer_queue: 4096,
            inbound_queue: 16384,
            max_batch: 1024,
            handshake_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(5),
            max_inbound_connections: 1024,
        }
    }
}

impl std::fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportConfig")
            .field("node_id", &self.node_id)
            .field("listen", &self.listen)
            .field("secret", &"<redacted>")
            .field("max_frame_len", &self.max_frame_len)
            .field("peer_queue", &self.peer_queue)
            .finish_non_exhaustive()
    }
}

struct Inner<T> {
    cfg: TransportConfig,
    key: HandshakeKey,
    local_addr: SocketAddr,
    peers: Mutex<HashMap<NodeId, mpsc::Sender<T>>>,
    counters: Arc<Counters>,
    cancel: CancellationToken,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A running transport. Cheap to clone; the last clone dropped stops every task.
pub struct Transport<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Transport<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> std::fmt::Debug for Transport<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("node_id", &self.inner.cfg.node_id)
            .field("addr", &self.inner.local_addr)
            .finish()
    }
}

fn lock<V>(m: &Mutex<V>) -> MutexGuard<'_, V> {
    // The maps stay consistent under a panic elsewhere; never propagate poisoning.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Transport<T> {
    /// Binds the listener and starts accepting. Returns the handle and the inbound channel of
    /// `(from, message)` for the node loop.
    pub async fn bind(
        cfg: TransportConfig,
    ) -> Result<(Self, mpsc::Receiver<(NodeId, T)>), TransportError> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let local_addr = listener.local_addr()?;
        let key = HandshakeKey::derive(&cfg.secret);
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let (tx, rx) = mpsc::channel(cfg.inbound_queue.max(1));
        let ictx = InboundCtx {
            local: cfg.node_id,
            key: key.clone(),
            max_frame_len: cfg.max_frame_len,
            handshake_timeout: cfg.handshake_timeout,
            counters: Arc::clone(&counters),
            cancel: cancel.clone(),
            slots: Arc::new(Semaphore::new(cfg.max_inbound_connections.max(1))),
        };
        let accept_task = tokio::spawn(accept_loop(ictx, listener, tx));
        tracing::info!(node = cfg.node_id, addr = %local_addr, "transport: listening");
        let inner = Inner {
            cfg,
            key,
            local_addr,
            peers: Mutex::new(HashMap::new()),
            counters,
            cancel,
            accept_task: Mutex::new(Some(accept_task)),
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            rx,
        ))
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.cfg.node_id
    }

    /// Registers (or re-addresses) peer `id`, starting its writer task. Re-adding replaces the
    /// old writer; what was queued for the old one is dropped. `addr` is a `SocketAddr` or a
    /// [`PeerAddr`] (`host:port`); a name is resolved on every dial, never here, so a peer
    /// whose name does not resolve yet is retried with backoff instead of failing start-up.
    pub fn add_peer(&self, id: NodeId, addr: impl Into<PeerAddr>) {
        let addr = addr.into();
        let cfg = &self.inner.cfg;
        let (tx, rx) = mpsc::channel(cfg.peer_queue.max(1));
        let ctx = PeerCtx {
            local: cfg.node_id,
            peer: id,
            addr,
            key: self.inner.key.clone(),
            max_frame_len: cfg.max_frame_len,
            max_batch: cfg.max_batch.max(1),
            handshake_timeout: cfg.handshake_timeout,
            backoff_min: cfg.backoff_min,
            backoff_max: cfg.backoff_max,
            counters: Arc::clone(&self.inner.counters),
            cancel: self.inner.cancel.child_token(),
        };
        tokio::spawn(run_peer(ctx, rx));
        lock(&self.inner.peers).insert(id, tx);
    }

    /// Forgets peer `id`; its writer stops once its queue is drained or it is cancelled.
    pub fn remove_peer(&self, id: NodeId) {
        lock(&self.inner.peers).remove(&id);
    }

    /// Queues `msg` for `to` without waiting. Returns false if it was dropped (unknown peer or
    /// full queue); the drop is counted. Never blocks, never grows memory without bound.
    pub fn send(&self, to: NodeId, msg: T) -> bool {
        let peers = lock(&self.inner.peers);
        let c = &self.inner.counters;
        let Some(tx) = peers.get(&to) else {
            Counters::add(&c.dropped_unknown_peer, 1);
            return false;
        };
        match tx.try_send(msg) {
            Ok(()) => {
                Counters::add(&c.queued, 1);
                true
            }
            Err(_) => {
                Counters::add(&c.dropped_queue_full, 1);
                false
            }
        }
    }

    /// Messages currently queued for `to` (`None` for an unknown peer).
    pub fn queue_len(&self, to: NodeId) -> Option<usize> {
        lock(&self.inner.peers)
            .get(&to)
            .map(|tx| tx.max_capacity() - tx.capacity())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TransportStats {
        self.inner.counters.snapshot()
    }

    /// Stops every task and closes the listener (awaited, so the port can be bound again).
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let task = lock(&self.inner.accept_task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
