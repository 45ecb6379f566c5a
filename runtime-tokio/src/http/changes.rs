//! `GET /collections/{c}/changes`: the change stream of the collection's shard replicas on this
//! node, as server-sent events (vecraft's addition; see `node_loop::change_feed` for what it
//! promises and what it does not).
//!
//! Events (each `change`, and `subscribed`, carries the subscriber's cursor as its SSE `id`,
//! e.g. `7/0:17,1:40`; an `EventSource` sends it back as `Last-Event-ID` when it reconnects,
//! and any client may pass it as `?after=`):
//! - `subscribed` first: `{"collection":"c","local_shards":[0,2],"shard_count":3,
//!   "resumed_after":"7/0:17"|null}` — the shards whose changes this node streams (connect to a
//!   node that hosts every shard for the whole collection);
//! - `change`: `{"shard":0,"index":17,"op":"upsert","ids":[1,2]}`; by-filter commands carry
//!   `"affected"` instead of ids; `"op":"snapshot_installed"` means the replica was replaced by
//!   its leader's snapshot at `index` (re-read it). A resumed subscriber first gets the changes
//!   after its cursor that the node still holds, then the live ones, each once;
//! - `gap`: `{"shard":0,"after":17,"complete_after":90}` — this node no longer holds the shard's
//!   changes in `(after, complete_after]` (history budget, or applied before it restarted):
//!   re-read the shard, the stream goes on after `complete_after`;
//! - `reset`: `{"reason":...}` — the cursor names an earlier collection of this name (dropped
//!   and created again): start over from the current state.

use super::State;
use super::envelope::{ApiError, ApiPath, ApiQuery};
use crate::backend::{BackendError, ReadAnswer, ReadOptions, ReadQuery};
use crate::node_loop::change_feed::{ChangeEvent, ChangeFeed, ChangeKind, Subscription};
use crate::node_loop::change_history::{Cursor, Gap};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::{Receiver, error::RecvError};
use vecraft_core::node::metadata::group_shard;
use vecraft_core::vector::error::EngineError;
use vecraft_core::vector::point::PointId;

/// The event's JSON body.
pub fn change_json(e: &ChangeEvent) -> Value {
    let ids = |ids: &[PointId]| Value::Array(ids.iter().map(PointId::to_json).collect());
    match &e.kind {
        ChangeKind::Upsert { ids: list } => {
            json!({"shard": e.shard, "index": e.index, "op": "upsert", "ids": ids(list)})
        }
        ChangeKind::ByIds { op, ids: list } => {
            json!({"shard": e.shard, "index": e.index, "op": op, "ids": ids(list)})
        }
        ChangeKind::ByFilter { op, affected } => {
            json!({"shard": e.shard, "index": e.index, "op": op, "affected": affected})
        }
        ChangeKind::Other { op } => json!({"shard": e.shard, "index": e.index, "op": op}),
        ChangeKind::SnapshotInstalled => {
            json!({"shard": e.shard, "index": e.index, "op": "snapshot_installed"})
        }
    }
}

/// One subscriber's stream: what is queued to send, the live channel, and its cursor.
struct Subscriber {
    feed: ChangeFeed,
    collection: String,
    rx: Receiver<Arc<ChangeEvent>>,
    pending: VecDeque<Event>,
    cursor: Cursor,
    /// Resumed: shards not yet checked for a gap (see `Subscription::known`).
    unchecked: Option<std::collections::BTreeSet<u32>>,
}

impl Subscriber {
    /// A subscriber on `sub`: queues what it brings.
    fn new(feed: ChangeFeed, collection: String, sub: Subscription, resumed: bool) -> Subscriber {
        let Subscription { rx, replay, gaps, recreated, known, position } = sub;
        // Checked at their first change: the cursor's shards the history did not know yet.
        let unchecked = (resumed && !recreated).then(|| position.shards.keys().filter(|s| !known.contains(s)).copied().collect());
        let mut s = Subscriber { feed, collection, rx, pending: VecDeque::new(), cursor: position, unchecked };
        s.queue(replay, gaps, recreated);
        s
    }

    /// Queues what a (re)subscription brings: a reset, the gaps, then the replayed changes.
    fn queue(&mut self, replay: Vec<Arc<ChangeEvent>>, gaps: Vec<Gap>, recreated: bool) {
        if recreated {
            let data = json!({"reason": "the collection was dropped and created again since this cursor; re-read it"});
            self.pending.push_back(Event::default().event("reset").data(data.to_string()));
        }
        for Gap { shard, after, complete_after } in gaps {
            let data = json!({"shard": shard, "after": after, "complete_after": complete_after});
            self.pending.push_back(Event::default().event("gap").data(data.to_string()));
            // Past the gap: the changes after it follow.
            let at = self.cursor.shards.entry(shard).or_default();
            *at = (*at).max(complete_after);
        }
        for e in replay {
            self.change(&e);
        }
    }

    /// Queues one change (if new to this subscriber) with the cursor after it as its id.
    fn change(&mut self, e: &ChangeEvent) {
        let number = group_shard(e.group).0;
        if self.cursor.collection.is_some_and(|n| n != number) {
            let data = json!({"reason": "the collection was dropped and created again; re-read it"});
            self.pending.push_back(Event::default().event("reset").data(data.to_string()));
            self.cursor = Cursor::default();
        }
        if let Some(unchecked) = &mut self.unchecked
            && unchecked.remove(&e.shard)
        {
            let seen = self.cursor.shards.get(&e.shard).copied().unwrap_or(0);
            if let Some(after) = self.feed.complete_after(e.group)
                && after > seen
            {
                let data = json!({"shard": e.shard, "after": seen, "complete_after": after});
                self.pending.push_back(Event::default().event("gap").data(data.to_string()));
                self.cursor.shards.insert(e.shard, after);
            }
        }
        if self.cursor.shards.get(&e.shard).is_some_and(|&seen| e.index <= seen) {
            return;
        }
        self.cursor.saw(e.group, e.index);
        let event = Event::default()
            .event("change")
            .id(self.cursor.encode())
            .data(change_json(e).to_string());
        self.pending.push_back(event);
    }

    /// The next event to send; `None` once the node stops.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            match self.rx.recv().await {
                Ok(e) if e.collection == self.collection => self.change(&e),
                Ok(_) => {}
                // Fell behind the channel: catch up from the history (gaps where it fell
                // further behind than the history holds).
                Err(RecvError::Lagged(_)) => {
                    let sub = self.feed.subscribe(&self.collection, Some(&self.cursor.clone()));
                    let Subscription { rx, replay, gaps, recreated, position, .. } = sub;
                    self.rx = rx;
                    if recreated {
                        self.cursor = position;
                    }
                    self.queue(replay, gaps, recreated);
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn events(mut subscriber: Subscriber, first: Event) -> impl Stream<Item = Result<Event, Infallible>> {
    subscriber.pending.push_front(first);
    stream::unfold(subscriber, |mut s| async move { s.next().await.map(|e| (Ok(e), s)) })
}

/// Query parameters of the change stream.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesParams {
    /// A cursor (an event's id) to resume after; `Last-Event-ID` does the same.
    after: Option<String>,
}

/// The handler.
pub async fn changes(
    state: axum::extract::State<State>,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<ChangesParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let resume = match params.after.as_deref() {
        Some(after) => Some(after.to_string()),
        None => match headers.get("last-event-id") {
            Some(v) => Some(v.to_str().map_err(|_| ApiError::bad_request("Last-Event-ID is not text"))?.to_string()),
            None => None,
        },
    };
    let cursor = resume
        .as_deref()
        .map(Cursor::parse)
        .transpose()
        .map_err(ApiError::bad_request)?
        .filter(|c| c.collection.is_some());
    let Some(feed) = state.backend.changes() else {
        return Err(ApiError::bad_request(
            "the change stream is served by the replicated node (`vecraft serve`)",
        ));
    };
    let ReadAnswer::Collections(names) = state
        .backend
        .read(ReadQuery::ListCollections, ReadOptions::default())
        .await?
    else {
        return Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected answer",
        ));
    };
    if !names.contains(&collection) {
        return Err(BackendError::Engine(EngineError::UnknownCollection(collection)).into());
    }
    let node = state.backend.cluster_info().await.node_id;
    let replicas = state
        .backend
        .collection_replicas(collection.clone())
        .await?;
    let mut local: Vec<u32> = replicas
        .iter()
        .filter(|r| r.peer_id == node)
        .map(|r| r.shard_id)
        .collect();
    local.sort_unstable();
    local.dedup();
    let mut all: Vec<u32> = replicas.iter().map(|r| r.shard_id).collect();
    all.sort_unstable();
    all.dedup();
    let sub = feed.subscribe(&collection, cursor.as_ref());
    let start = sub.position.encode();
    let subscriber = Subscriber::new(feed, collection.clone(), sub, cursor.is_some());
    let mut first = Event::default().event("subscribed").data(
        json!({
            "collection": collection,
            "local_shards": local,
            "shard_count": all.len(),
            "resumed_after": cursor.as_ref().map(Cursor::encode),
        })
        .to_string(),
    );
    // A subscriber that disconnects before any change resumes from where it started.
    if !start.is_empty() {
        first = first.id(start);
    }
    Ok(Sse::new(events(subscriber, first))
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecraft_core::node::metadata::shard_group;
    use vecraft_core::node::shard::encode_command;
    use vecraft_core::vector::collection::{PointSelector, PointsOp};

    fn delete(id: u64) -> bytes::Bytes {
        encode_command(&PointsOp::Delete(PointSelector::Ids(vec![PointId::from(id)])))
    }

    /// A subscriber that falls further behind than the channel holds is made whole from the
    /// history: every change once, in order, no gap.
    #[tokio::test]
    async fn a_lagging_subscriber_catches_up_from_the_history_without_a_loss() {
        let feed = ChangeFeed::new(16 << 20);
        let group = shard_group(1, 0);
        feed.applied("t", group, 1, &delete(1), 1);
        let sub = feed.subscribe("t", None);
        let mut s = Subscriber::new(feed.clone(), "t".into(), sub, false);
        let n = crate::node_loop::change_feed::FEED_CAPACITY as u64 * 2;
        for i in 2..=n + 1 {
            feed.applied("t", group, i, &delete(i), 1);
        }
        let mut names = Vec::new();
        for _ in 0..n {
            let e = s.next().await.unwrap();
            names.push(format!("{e:?}"));
        }
        assert!(names.iter().all(|e| e.contains("change")), "no lagged or gap event");
        assert_eq!(s.cursor.encode(), format!("1/0:{}", n + 1), "every change up to the last");
        assert!(s.pending.is_empty());
        // With no history, the same lag is a gap, and the stream goes on after it.
        let feed = ChangeFeed::new(0);
        feed.applied("t", group, 1, &delete(1), 1);
        let sub = feed.subscribe("t", None);
        let mut s = Subscriber::new(feed.clone(), "t".into(), sub, false);
        for i in 2..=n + 1 {
            feed.applied("t", group, i, &delete(i), 1);
        }
        let e = format!("{:?}", s.next().await.unwrap());
        assert!(e.contains("gap"), "{e}");
        assert_eq!(s.cursor.shards[&0], n + 1);
    }
}
