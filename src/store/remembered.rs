//! Values kept in memory for reads, forgotten by the writes that change
//! them.
//!
//! Used where every change goes through this process: on SQLite this
//! process is the only writer (final releases and the latest version of
//! each flow are served without a query); on PostgreSQL another replica may
//! write, so a reader there checks a remembered value against the store
//! (see [`super::Store::get_release`]).
//!
//! A read that loaded a value from the store remembers it only if no
//! write was forgotten meanwhile ([`Remembered::remember`]): otherwise it
//! might have loaded the state just before a write committed and put it
//! back after the writer forgot it.

use std::hash::Hash;
use std::sync::Mutex;

#[derive(Debug)]
pub(crate) struct Remembered<K: Eq + Hash, V: Clone> {
    cache: quick_cache::sync::Cache<K, V>,
    /// Counts writes forgotten; held while remembering, so a read and a
    /// write's forgetting are ordered.
    forgotten: Mutex<u64>,
}

impl<K: Eq + Hash + Clone, V: Clone> Remembered<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(capacity),
            forgotten: Mutex::new(0),
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        self.cache.get(key)
    }

    /// The value of `key`: the one remembered, else the one `load` reads
    /// from the store, then remembered. For values that only this process
    /// changes ([`super::Store::sole_writer`]), so that the remembered one is
    /// the current one.
    pub(crate) async fn get_or_load<Q, Fut>(
        &self,
        key: &Q,
        load: impl FnOnce() -> Fut,
    ) -> crate::error::Result<Option<V>>
    where
        Q: Hash + quick_cache::Equivalent<K> + ToOwned<Owned = K> + ?Sized,
        Fut: std::future::Future<Output = crate::error::Result<Option<V>>>,
    {
        if let Some(v) = self.get(key) {
            return Ok(Some(v));
        }
        let mark = self.mark();
        let found = load().await?;
        if let Some(v) = &found {
            self.remember(mark, key.to_owned(), v.clone());
        }
        Ok(found)
    }

    /// Where the count of forgotten writes stands: taken before a read of
    /// the store, handed to [`Remembered::remember`] after it.
    pub(crate) fn mark(&self) -> u64 {
        self.forgotten.lock().map(|n| *n).unwrap_or(u64::MAX)
    }

    /// Remembers `value`, read after [`Remembered::mark`] returned `mark`,
    /// if nothing was forgotten since.
    pub(crate) fn remember(&self, mark: u64, key: K, value: V) {
        let Ok(n) = self.forgotten.lock() else {
            return;
        };
        if *n == mark {
            self.cache.insert(key, value);
        }
    }

    /// Forgets what a committed write changed (called before anyone hears
    /// of the write).
    pub(crate) fn forget<'a, Q>(&self, keys: impl IntoIterator<Item = &'a Q>)
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized + 'a,
    {
        let Ok(mut n) = self.forgotten.lock() else {
            return;
        };
        for k in keys {
            self.cache.remove(k);
        }
        *n = n.wrapping_add(1);
    }

    /// Forgets one value seen to be stale or gone.
    pub(crate) fn drop_stale<Q>(&self, key: &Q)
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        self.cache.remove(key);
    }
}
