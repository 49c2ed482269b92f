//! The two release streams as typed streams of domain values: what
//! `WatchRelease` and `WatchReleases` send, before encoding.
//!
//! Both follow one rule: the store is the truth, the hub's doorbells only
//! say when to look. A stream subscribes to its doorbell before its first
//! read, so nothing committed after that read is missed; it then takes
//! events from the doorbell's tail when the tail holds them all (no query),
//! else from the store, at its own pace. It holds no database connection
//! while it waits, so a slow or idle client costs the engine nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Engine;
use super::hub::{Shared, Tail};
use crate::domain::release::Release;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::releases::StoredEvent;

/// Events read from the store per query while a stream catches up.
const CATCH_UP_BATCH: u64 = 500;

/// One message of a release's stream.
#[derive(Debug, Clone)]
pub enum ReleaseItem {
    /// The whole release, as of its `last_seq` (the first message when the
    /// stream starts from 0).
    Snapshot(Box<Release>),
    /// One committed event, in `seq` order, without gap or repeat (shared
    /// with the release's other streams when it came from the doorbell).
    Event(Arc<Shared>),
    /// Nothing happened for a heartbeat interval; the latest `seq` sent.
    Heartbeat(i64),
}

/// One message of the stream of every release's events.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// A committed event; its `position` is where to resume after it.
    Event(Box<StoredEvent>),
    /// Nothing matched for a heartbeat interval; resume from `position`.
    Heartbeat { position: i64 },
}

/// The error a stream ends with when the server shuts down.
fn shutting_down() -> Error {
    Error::Unavailable(
        "the server is shutting down; resume from the last seq or cursor you received".into(),
    )
}

/// What a stream waits for between reads.
enum Wake {
    Changed,
    Heartbeat,
    Shutdown,
}

/// Waits for the doorbell, the heartbeat interval or shutdown.
async fn wait<T>(
    rx: &mut watch::Receiver<T>,
    interval: Duration,
    shutdown: &CancellationToken,
) -> Wake {
    tokio::select! {
        r = rx.changed() => match r {
            Ok(()) => Wake::Changed,
            Err(_) => Wake::Shutdown,
        },
        _ = tokio::time::sleep(interval) => Wake::Heartbeat,
        _ = shutdown.cancelled() => Wake::Shutdown,
    }
}

struct ReleaseWatch {
    store: Store,
    rx: watch::Receiver<Tail>,
    shutdown: CancellationToken,
    interval: Duration,
    id: String,
    /// The latest `seq` sent (or covered by the snapshot).
    cursor: i64,
    buffer: VecDeque<ReleaseItem>,
    /// Read the store before trusting the doorbell's tail: at the start
    /// (what committed between the first read and subscribing) and after a
    /// hole in the tail.
    from_store: bool,
    /// The event that made the release final is buffered: end after it.
    done: bool,
    finished: bool,
}

impl Engine {
    /// The stream of release `id` after `after_seq` (0: a snapshot first).
    /// `OUT_OF_RANGE` when `after_seq` is beyond the release's last event.
    /// The stream ends after the event that makes the release final.
    pub async fn watch_release(
        &self,
        id: &str,
        after_seq: i64,
        heartbeat: Duration,
    ) -> Result<impl Stream<Item = Result<ReleaseItem>> + Send + 'static> {
        let store = self.inner.store.clone();
        // Subscribed before reading, so no commit after the read is missed.
        let rx = self.inner.hub.watch_release(id);
        let mut buffer = VecDeque::new();
        let (cursor, done) = if after_seq == 0 {
            let snap = store.release_snapshot(id).await?;
            let seq = snap.last_seq;
            let done = snap.status.is_final();
            buffer.push_back(ReleaseItem::Snapshot(Box::new(snap)));
            (seq, done)
        } else {
            let r = store.get_release(id).await?;
            if after_seq > r.last_seq {
                return Err(Error::OutOfRange(format!(
                    "after_seq {after_seq} is beyond the last event of release {id} ({}); resume from at most {}",
                    r.last_seq, r.last_seq
                )));
            }
            // A final release with nothing after `after_seq` ends the
            // stream at once instead of idling on heartbeats forever.
            (after_seq, r.status.is_final() && after_seq == r.last_seq)
        };
        let state = ReleaseWatch {
            store,
            rx,
            shutdown: self.inner.shutdown.clone(),
            interval: heartbeat,
            id: id.to_string(),
            cursor,
            buffer,
            from_store: true,
            done,
            finished: false,
        };
        Ok(futures::stream::unfold(state, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        }))
    }

    /// The stream of every event of the releases matching `product` and
    /// `flow` (empty: any), from global position `after` (`None`: from now).
    /// `OUT_OF_RANGE` when `after` is beyond the last event.
    pub async fn watch_releases(
        &self,
        product: String,
        flow: String,
        after: Option<i64>,
        heartbeat: Duration,
    ) -> Result<impl Stream<Item = Result<FeedItem>> + Send + 'static> {
        let store = self.inner.store.clone();
        let rx = self.inner.hub.watch_all();
        let latest = store.latest_position().await?;
        let cursor = match after {
            None => latest,
            Some(c) if c > latest => {
                return Err(Error::OutOfRange(format!(
                    "the cursor is beyond the last event ({latest}); resume from a cursor this server returned"
                )));
            }
            Some(c) => c,
        };
        let state = FeedWatch {
            store,
            rx,
            shutdown: self.inner.shutdown.clone(),
            interval: heartbeat,
            product,
            flow,
            cursor,
            buffer: VecDeque::new(),
            finished: false,
        };
        Ok(futures::stream::unfold(state, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        }))
    }
}

impl ReleaseWatch {
    /// The next message, or `None` once the stream has ended.
    async fn next(&mut self) -> Option<Result<ReleaseItem>> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(item) = self.buffer.pop_front() {
                if self.buffer.is_empty() && self.done {
                    self.finished = true;
                }
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            let tail = self.rx.borrow_and_update().clone();
            if self.from_store || tail.latest > self.cursor {
                // The committed events themselves, from the doorbell when it
                // holds them all, else from the store (the truth).
                let events = match tail.after(self.cursor).filter(|_| !self.from_store) {
                    Some(events) if !events.is_empty() => events,
                    _ => match self
                        .store
                        .events_after(&self.id, self.cursor, CATCH_UP_BATCH)
                        .await
                    {
                        Ok(events) => events
                            .into_iter()
                            .map(|e| Arc::new(Shared::new(e)))
                            .collect(),
                        Err(e) => {
                            self.finished = true;
                            return Some(Err(e));
                        }
                    },
                };
                self.from_store = false;
                if !events.is_empty() {
                    for e in events {
                        self.cursor = e.seq;
                        let last = e.body.is_final();
                        self.buffer.push_back(ReleaseItem::Event(e));
                        if last {
                            self.done = true;
                            break;
                        }
                    }
                    continue;
                }
            }
            match wait(&mut self.rx, self.interval, &self.shutdown).await {
                Wake::Changed => {}
                Wake::Heartbeat => return Some(Ok(ReleaseItem::Heartbeat(self.cursor))),
                Wake::Shutdown => {
                    self.finished = true;
                    return Some(Err(shutting_down()));
                }
            }
        }
    }
}

struct FeedWatch {
    store: Store,
    rx: watch::Receiver<i64>,
    shutdown: CancellationToken,
    interval: Duration,
    product: String,
    flow: String,
    /// Every event up to here was sent or filtered out.
    cursor: i64,
    buffer: VecDeque<StoredEvent>,
    finished: bool,
}

impl FeedWatch {
    async fn next(&mut self) -> Option<Result<FeedItem>> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(e) = self.buffer.pop_front() {
                return Some(Ok(FeedItem::Event(Box::new(e))));
            }
            // Everything up to the clock's committed position is visible
            // (positions are handed out under a lock held to commit), so the
            // cursor may move to it even past filtered-out events.
            let upto = match self.store.latest_position().await {
                Ok(p) => p,
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
            };
            if upto > self.cursor {
                match self
                    .store
                    .events_between(self.cursor, upto, &self.product, &self.flow, CATCH_UP_BATCH)
                    .await
                {
                    Err(e) => {
                        self.finished = true;
                        return Some(Err(e));
                    }
                    Ok(events) => {
                        let full = events.len() as u64 == CATCH_UP_BATCH;
                        if let Some(last) = events.last() {
                            self.cursor = last.position;
                        }
                        self.buffer.extend(events);
                        if !full {
                            self.cursor = upto;
                        }
                        continue;
                    }
                }
            }
            match wait(&mut self.rx, self.interval, &self.shutdown).await {
                Wake::Changed => {}
                Wake::Heartbeat => {
                    return Some(Ok(FeedItem::Heartbeat {
                        position: self.cursor,
                    }));
                }
                Wake::Shutdown => {
                    self.finished = true;
                    return Some(Err(shutting_down()));
                }
            }
        }
    }
}
