//! In-process doorbells rung after every commit, carrying the latest events.
//!
//! The store is the source of truth: a doorbell says "something new was
//! committed, up to here", and for a watched release it also carries the
//! last [`RECENT`] events themselves, exactly as committed. A stream that is
//! up to date takes what it missed from that tail without a query; one that
//! fell further behind, or whose tail has a hole (events committed by
//! another replica arrive through `LISTEN/NOTIFY` as a number only), reads
//! from the store. Holding no database connection while waiting, and a
//! `watch` channel keeping only the latest value, a slow stream can never
//! make a writer wait or grow a buffer.
//!
//! Why a tail at all: with N watchers of one release, reading each event
//! from the store costs N queries per commit. At 10,000 watchers that was
//! the whole cost of fan-out (see BENCHMARKS.md).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::store::releases::StoredEvent;

/// How many of a watched release's latest events its doorbell carries: a
/// release's events come a few per commit, so a stream more than this
/// behind is rare and simply reads the store.
pub const RECENT: usize = 64;

/// A committed event as the streams of its release share it: one copy, and
/// its wire encoding, made by the first stream that sends it and reused by
/// every other (with N watchers, one encoding per event instead of N).
#[derive(Debug)]
pub struct Shared {
    event: StoredEvent,
    wire: std::sync::OnceLock<bytes::Bytes>,
}

impl Shared {
    pub fn new(event: StoredEvent) -> Self {
        Self {
            event,
            wire: std::sync::OnceLock::new(),
        }
    }

    /// The event's encoding, made by `encode` the first time it is asked.
    pub fn wire(&self, encode: impl FnOnce(&StoredEvent) -> bytes::Bytes) -> bytes::Bytes {
        self.wire.get_or_init(|| encode(&self.event)).clone()
    }
}

/// Equal when the events are (the encoding follows from the event).
impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
    }
}

impl std::ops::Deref for Shared {
    type Target = StoredEvent;

    fn deref(&self) -> &StoredEvent {
        &self.event
    }
}

/// What a release's doorbell holds.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    /// The latest `seq` known to be committed.
    pub latest: i64,
    /// The latest committed events, consecutive in `seq`, at most [`RECENT`]
    /// (possibly ending before `latest`).
    recent: Arc<VecDeque<Arc<Shared>>>,
}

impl Tail {
    /// The events after `cursor` this tail holds, when it holds every one
    /// of them from `cursor + 1` on; `None` when the store must be read.
    /// May end before `latest`.
    pub fn after(&self, cursor: i64) -> Option<Vec<Arc<Shared>>> {
        let first = self.recent.front()?.seq;
        if first > cursor + 1 {
            return None;
        }
        let skip = usize::try_from(cursor + 1 - first).ok()?;
        Some(self.recent.iter().skip(skip).cloned().collect())
    }

    /// Adds a committed event; true when the doorbell should ring.
    fn push(&mut self, e: &StoredEvent) -> bool {
        let last = self.recent.back().map(|x| x.seq);
        let recent = Arc::make_mut(&mut self.recent);
        match last {
            Some(l) if e.seq <= l => {} // already here
            Some(l) if e.seq == l + 1 => recent.push_back(Arc::new(Shared::new(e.clone()))),
            // A hole (or nothing yet): start over from this event; streams
            // behind it read the store.
            _ => {
                recent.clear();
                recent.push_back(Arc::new(Shared::new(e.clone())));
            }
        }
        while recent.len() > RECENT {
            recent.pop_front();
        }
        self.bump(e.seq)
    }

    fn bump(&mut self, seq: i64) -> bool {
        if seq > self.latest {
            self.latest = seq;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
pub struct Hub {
    releases: Mutex<HashMap<String, watch::Sender<Tail>>>,
    global: watch::Sender<i64>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            releases: Mutex::new(HashMap::new()),
            global: watch::Sender::new(0),
        }
    }

    /// Announces events committed here: watched releases get the events
    /// themselves, and the global position moves.
    pub fn publish(&self, events: &[StoredEvent]) {
        {
            let mut map = self.releases.lock().unwrap_or_else(|p| p.into_inner());
            for e in events {
                if let Some(tx) = map.get(&e.release_id) {
                    tx.send_if_modified(|t| t.push(e));
                }
            }
            // Forget releases nobody watches any more.
            map.retain(|_, tx| tx.receiver_count() > 0);
        }
        if let Some(p) = events.iter().map(|e| e.position).max() {
            self.announce_position(p);
        }
    }

    /// Announces that release `release_id` has events up to `seq` (a commit
    /// of another replica, learnt through `LISTEN/NOTIFY`, or the periodic
    /// catch-up); streams behind it read the store.
    pub fn announce(&self, release_id: &str, seq: i64) {
        let map = self.releases.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(release_id) {
            tx.send_if_modified(|t| t.bump(seq));
        }
    }

    /// Announces that the store has events up to global `position`.
    pub fn announce_position(&self, position: i64) {
        self.global.send_if_modified(|v| {
            if position > *v {
                *v = position;
                true
            } else {
                false
            }
        });
    }

    /// The releases someone watches here, for the periodic catch-up.
    pub fn watched(&self) -> Vec<String> {
        let map = self.releases.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, tx)| tx.receiver_count() > 0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A doorbell for one release.
    pub fn watch_release(&self, release_id: &str) -> watch::Receiver<Tail> {
        let mut map = self.releases.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(release_id.to_string())
            .or_insert_with(|| watch::Sender::new(Tail::default()))
            .subscribe()
    }

    /// A doorbell for every release, holding the latest global position.
    pub fn watch_all(&self) -> watch::Receiver<i64> {
        self.global.subscribe()
    }
}

/// Wake-ups for release workers: rung when something outside the worker
/// (an API call) changed its release.
#[derive(Debug, Default)]
pub struct Pokes {
    map: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
}

impl Pokes {
    pub fn register(&self, id: &str) -> Option<Arc<tokio::sync::Notify>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(id) {
            return None;
        }
        let n = Arc::new(tokio::sync::Notify::new());
        map.insert(id.to_string(), n.clone());
        Some(n)
    }

    pub fn unregister(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// How many workers run here.
    pub fn count(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Wakes the worker of `id`; false when no worker runs it here.
    pub fn poke(&self, id: &str) -> bool {
        match self.map.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::release::{Counters, EventBody};
    use crate::domain::status::ReleaseStatus;

    fn event(id: &str, seq: i64) -> StoredEvent {
        StoredEvent {
            release_id: id.into(),
            seq,
            position: seq,
            product: "p".into(),
            flow: "f".into(),
            time: chrono::Utc::now(),
            body: EventBody::Release {
                status: ReleaseStatus::Running,
                message: String::new(),
                counters: Counters::default(),
                start_time: None,
                finish_time: None,
                terminated_by: String::new(),
            },
        }
    }

    fn seqs(events: Option<Vec<Arc<Shared>>>) -> Option<Vec<i64>> {
        events.map(|v| v.iter().map(|e| e.seq).collect())
    }

    #[test]
    fn a_watched_release_carries_its_latest_events() {
        let hub = Hub::new();
        let mut rx = hub.watch_release("r");
        hub.publish(&[event("r", 1), event("r", 2), event("other", 7)]);
        hub.publish(&[event("r", 3)]);
        assert!(rx.has_changed().unwrap());
        let tail = rx.borrow_and_update().clone();
        assert_eq!(tail.latest, 3);
        assert_eq!(seqs(tail.after(0)), Some(vec![1, 2, 3]));
        assert_eq!(seqs(tail.after(2)), Some(vec![3]));
        assert_eq!(seqs(tail.after(3)), Some(vec![]));
        // Published again (a retried publish): no ring, nothing doubled.
        hub.publish(&[event("r", 3)]);
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn a_hole_or_an_old_cursor_sends_streams_to_the_store() {
        let hub = Hub::new();
        let rx = hub.watch_release("r");
        hub.publish(&[event("r", 1), event("r", 2)]);
        // Seq 3 committed elsewhere and only announced; 4 arrives here.
        hub.announce("r", 3);
        assert_eq!(rx.borrow().latest, 3);
        assert_eq!(seqs(rx.borrow().after(2)), Some(vec![]));
        hub.publish(&[event("r", 4)]);
        let tail = rx.borrow().clone();
        assert_eq!(tail.latest, 4);
        assert_eq!(seqs(tail.after(3)), Some(vec![4]));
        assert_eq!(tail.after(2), None, "3 is not in the tail: read the store");
    }

    #[test]
    fn the_tail_keeps_only_the_most_recent_events() {
        let hub = Hub::new();
        let rx = hub.watch_release("r");
        let n = RECENT as i64 + 10;
        let all: Vec<StoredEvent> = (1..=n).map(|s| event("r", s)).collect();
        hub.publish(&all);
        let tail = rx.borrow().clone();
        assert_eq!(tail.latest, n);
        assert_eq!(tail.after(0), None);
        assert_eq!(tail.after(9), None);
        assert_eq!(seqs(tail.after(10)).map(|v| v.len()), Some(RECENT));
        assert_eq!(seqs(tail.after(n - 1)), Some(vec![n]));
    }

    #[test]
    fn releases_nobody_watches_are_forgotten() {
        let hub = Hub::new();
        let rx = hub.watch_release("r");
        assert_eq!(hub.watched(), vec!["r".to_string()]);
        drop(rx);
        hub.publish(&[event("r", 1)]);
        assert!(hub.watched().is_empty());
    }
}
