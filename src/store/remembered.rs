//! Values kept in memory for reads, forgotten by the writes that change
//! them.
//!
//! A write made through this process forgets what it changed right after
//! its commit, before its caller hears of it. Writes of other processes
//! (other replicas on PostgreSQL) are forgotten when their commit is
//! announced ([`super::changes`]); while this process cannot hear those
//! announcements nothing is remembered ([`Remembered::set_live`]). And a
//! value is served for at most `max_age` after it was read: the bound on
//! how stale it can be should an announcement never arrive (a stalled
//! connection, or another process writing the same SQLite file).
//!
//! A read that loaded a value from the store remembers it only if no
//! write was forgotten meanwhile ([`Remembered::remember`]): otherwise it
//! might have loaded the state just before a write committed and put it
//! back after the writer forgot it.

use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Remembered<K: Eq + Hash, V: Clone> {
    cache: quick_cache::sync::Cache<K, (V, Instant)>,
    max_age: Duration,
    /// Counts writes forgotten, and whether values may be remembered; held
    /// while remembering, so a read and a write's forgetting are ordered.
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    forgotten: u64,
    live: bool,
}

impl<K: Eq + Hash + Clone, V: Clone> Remembered<K, V> {
    /// Keeps up to `capacity` values, each for up to `max_age` (zero: none
    /// at all); `live` tells whether remembering starts at once or waits
    /// for [`Remembered::set_live`].
    pub(crate) fn new(capacity: usize, max_age: Duration, live: bool) -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(capacity.max(1)),
            max_age,
            state: Mutex::new(State {
                forgotten: 0,
                live: live && !max_age.is_zero(),
            }),
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized,
    {
        let (v, at) = self.cache.get(key)?;
        if at.elapsed() < self.max_age {
            return Some(v);
        }
        self.cache.remove(key);
        None
    }

    /// The value of `key`: the one remembered, else the one `load` reads
    /// from the store, then remembered.
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
        self.state.lock().map(|s| s.forgotten).unwrap_or(u64::MAX)
    }

    /// Remembers `value`, read after [`Remembered::mark`] returned `mark`,
    /// if nothing was forgotten since and remembering is on.
    pub(crate) fn remember(&self, mark: u64, key: K, value: V) {
        let Ok(s) = self.state.lock() else {
            return;
        };
        if s.live && s.forgotten == mark {
            // The age counts from now rather than from the read's start:
            // they differ by the read's own duration.
            self.cache.insert(key, (value, Instant::now()));
        }
    }

    /// Forgets what a committed write changed (called before anyone hears
    /// of the write).
    pub(crate) fn forget<'a, Q>(&self, keys: impl IntoIterator<Item = &'a Q>)
    where
        Q: Hash + quick_cache::Equivalent<K> + ?Sized + 'a,
    {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        for k in keys {
            self.cache.remove(k);
        }
        s.forgotten = s.forgotten.wrapping_add(1);
    }

    /// Forgets everything, and remembers again only if `live`: called when
    /// announcements of other writers stop (`false`: some may be missed)
    /// and when they resume (`true`). A read that started before either
    /// keeps nothing.
    pub(crate) fn set_live(&self, live: bool) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        self.cache.clear();
        s.forgotten = s.forgotten.wrapping_add(1);
        s.live = live && !self.max_age.is_zero();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remembered(max_age: Duration, live: bool) -> Remembered<String, u32> {
        Remembered::new(8, max_age, live)
    }

    #[test]
    fn a_read_across_a_forget_keeps_nothing() {
        let r = remembered(Duration::from_secs(60), true);
        let mark = r.mark();
        r.forget(["a"]);
        r.remember(mark, "a".into(), 1);
        assert_eq!(r.get("a"), None);
        let mark = r.mark();
        r.remember(mark, "a".into(), 2);
        assert_eq!(r.get("a"), Some(2));
        r.forget(["a"]);
        assert_eq!(r.get("a"), None);
    }

    #[test]
    fn nothing_is_remembered_while_not_live_nor_across_a_change_of_it() {
        let r = remembered(Duration::from_secs(60), false);
        r.remember(r.mark(), "a".into(), 1);
        assert_eq!(r.get("a"), None, "not live yet");
        let mark = r.mark();
        r.set_live(true);
        r.remember(mark, "a".into(), 1);
        assert_eq!(r.get("a"), None, "read began before live");
        r.remember(r.mark(), "a".into(), 2);
        assert_eq!(r.get("a"), Some(2));
        r.set_live(false);
        assert_eq!(r.get("a"), None, "a loss forgets everything");
        r.remember(r.mark(), "a".into(), 3);
        assert_eq!(r.get("a"), None);
    }

    #[test]
    fn a_value_is_served_for_at_most_max_age() {
        let r = remembered(Duration::from_millis(30), true);
        r.remember(r.mark(), "a".into(), 1);
        assert_eq!(r.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(r.get("a"), None);
        let off = remembered(Duration::ZERO, true);
        off.remember(off.mark(), "a".into(), 1);
        assert_eq!(off.get("a"), None, "zero turns remembering off");
    }
}
