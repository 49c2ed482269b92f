//! In-process doorbells rung after every commit.
//!
//! The store is the source of truth: a doorbell only says "something new was
//! committed, up to here". Streams wake, read what they miss from the store
//! and go back to waiting, holding no database connection meanwhile. A
//! `watch` channel keeps only the latest value, so a slow stream can never
//! make a writer wait or grow a buffer; it simply reads more from the store
//! the next time it looks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::store::releases::StoredEvent;

#[derive(Debug)]
pub struct Hub {
    releases: Mutex<HashMap<String, watch::Sender<i64>>>,
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

    /// Announces committed events: each release's latest `seq` and the
    /// latest global position.
    pub fn publish(&self, events: &[StoredEvent]) {
        for e in events {
            self.announce(&e.release_id, e.seq, e.position);
        }
    }

    /// Announces that release `release_id` has events up to `seq`, and the
    /// store up to global `position` (also for commits of other replicas,
    /// learnt through `LISTEN/NOTIFY`).
    pub fn announce(&self, release_id: &str, seq: i64, position: i64) {
        {
            let mut map = self.releases.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(tx) = map.get(release_id) {
                tx.send_if_modified(|v| {
                    if seq > *v {
                        *v = seq;
                        true
                    } else {
                        false
                    }
                });
            }
            // Forget releases nobody watches any more.
            map.retain(|_, tx| tx.receiver_count() > 0);
        }
        self.global.send_if_modified(|v| {
            if position > *v {
                *v = position;
                true
            } else {
                false
            }
        });
    }

    /// Wakes every stream so each checks the store: the periodic catch-up
    /// that covers notifications lost while a listening connection was down.
    pub fn ring_all(&self) {
        let map = self.releases.lock().unwrap_or_else(|p| p.into_inner());
        for tx in map.values() {
            tx.send_modify(|_| {});
        }
        self.global.send_modify(|_| {});
    }

    /// A doorbell for one release, holding its latest announced `seq`.
    pub fn watch_release(&self, release_id: &str) -> watch::Receiver<i64> {
        let mut map = self.releases.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(release_id.to_string())
            .or_insert_with(|| watch::Sender::new(0))
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
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
