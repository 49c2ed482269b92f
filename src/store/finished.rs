//! Final releases kept in memory for reads.
//!
//! A final release changes only when a retry writes new events. Every such
//! write goes through this process's writer task ([`super::group`]), which
//! forgets the release right after committing; on SQLite, where this
//! process is the only writer, a remembered release is therefore current
//! and is served without a query. On PostgreSQL another replica may retry
//! it, so a read still compares its `last_seq` (one primary-key lookup).
//!
//! A read that loaded a release from the store remembers it only if no
//! write was forgotten meanwhile ([`Finished::remember`]): otherwise it
//! might have loaded the state just before a retry committed and put it
//! back after the writer forgot it.

use std::sync::{Arc, Mutex};

use crate::domain::release::Release;

/// Most final releases kept (a few KB each).
const CAPACITY: usize = 4096;

#[derive(Debug)]
pub(crate) struct Finished {
    cache: quick_cache::sync::Cache<String, Arc<Release>>,
    /// Counts writes forgotten; held while remembering, so a read and a
    /// write's forgetting are ordered.
    forgotten: Mutex<u64>,
}

impl Default for Finished {
    fn default() -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(CAPACITY),
            forgotten: Mutex::new(0),
        }
    }
}

impl Finished {
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Release>> {
        self.cache.get(id)
    }

    /// Where the count of forgotten writes stands: taken before a read of
    /// the store, handed to [`Finished::remember`] after it.
    pub(crate) fn mark(&self) -> u64 {
        self.forgotten.lock().map(|n| *n).unwrap_or(u64::MAX)
    }

    /// Remembers `r`, read after [`Finished::mark`] returned `mark`, if it
    /// is final and nothing was written to any release since the mark.
    pub(crate) fn remember(&self, mark: u64, r: &Release) {
        let Ok(n) = self.forgotten.lock() else {
            return;
        };
        if *n == mark && r.status.is_final() {
            self.cache.insert(r.id.clone(), Arc::new(r.clone()));
        }
    }

    /// Forgets releases just written (called by the writer after commit).
    pub(crate) fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let Ok(mut n) = self.forgotten.lock() else {
            return;
        };
        for id in ids {
            self.cache.remove(id);
        }
        *n = n.wrapping_add(1);
    }

    /// Forgets one release seen to be stale or gone.
    pub(crate) fn drop_stale(&self, id: &str) {
        self.cache.remove(id);
    }
}
