//! Commits of other replicas, learnt through PostgreSQL `LISTEN/NOTIFY`.
//!
//! Every transaction that writes events sends, inside itself, one
//! notification per release on [`NOTIFY_CHANNEL`] (delivered only if it
//! commits). [`Store::commits`] is the other end: a stream of those commits
//! for the engine, which rings its doorbells and pokes its workers. The
//! payload format lives here and nowhere else. [`listen`] is the one way to
//! listen, shared with the invalidation of remembered reads (`changes.rs`).

use std::time::Duration;

use futures::Stream;
use sea_orm::DbBackend;
use sea_orm::sqlx::postgres::{PgListener, PgPool};

use super::Store;

/// The PostgreSQL channel on which commits of events are announced.
pub const NOTIFY_CHANNEL: &str = "promoflow_events";

/// A commit of events, as announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Release `release_id` has events up to `seq`; the global position is
    /// at least `position`.
    Commit {
        release_id: String,
        seq: i64,
        position: i64,
    },
    /// The listening connection was lost (and is being re-made):
    /// notifications may have been missed, so read the store to catch up.
    Lost,
}

/// The payload announcing that `release_id` committed events up to `seq`,
/// the last at global `position`.
pub(crate) fn payload(release_id: &str, seq: i64, position: i64) -> String {
    format!("{release_id} {seq} {position}")
}

pub(crate) fn parse(payload: &str) -> Option<Notice> {
    let mut parts = payload.split(' ');
    let (id, seq, pos) = (parts.next()?, parts.next()?, parts.next()?);
    Some(Notice::Commit {
        release_id: id.to_string(),
        seq: seq.parse().ok()?,
        position: pos.parse().ok()?,
    })
}

/// What a listening connection hears.
#[derive(Debug)]
pub(crate) enum Heard {
    /// `LISTEN` is in place (at first, and again after [`Heard::Lost`]):
    /// every commit from now on will be heard.
    Listening,
    /// A notification on one of the channels.
    Notification { channel: String, payload: String },
    /// The connection was lost: what was sent since may never be heard.
    Lost,
}

struct Listening {
    pool: PgPool,
    channels: &'static [&'static str],
    listener: Option<PgListener>,
}

/// Everything announced on `channels`, for as long as the stream is kept:
/// [`Heard::Listening`] whenever `LISTEN` is (re)established, then the
/// notifications, and [`Heard::Lost`] when the connection drops (it is made
/// again, once a second until it succeeds). One loop for every listener of
/// the store, so that none misses a loss: `PgListener::recv` would
/// reconnect silently, so `try_recv` is used, which reports it.
pub(crate) fn listen(
    pool: PgPool,
    channels: &'static [&'static str],
) -> impl Stream<Item = Heard> + Send + 'static {
    // A pool of its own, of the one connection it listens on: a listener
    // holds its connection for good, which must not take a slot of the
    // store's pool (a one-connection store would wait for itself).
    let own = sea_orm::sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with((*pool.connect_options()).clone());
    let state = Listening {
        pool: own,
        channels,
        listener: None,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            let Some(listener) = s.listener.as_mut() else {
                match connect(&s.pool, s.channels).await {
                    Some(l) => {
                        s.listener = Some(l);
                        return Some((Heard::Listening, s));
                    }
                    None => tokio::time::sleep(Duration::from_secs(1)).await,
                }
                continue;
            };
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    let heard = Heard::Notification {
                        channel: n.channel().to_string(),
                        payload: n.payload().to_string(),
                    };
                    return Some((heard, s));
                }
                Ok(None) => {
                    tracing::warn!("LISTEN connection lost; reconnecting");
                    s.listener = None;
                    return Some((Heard::Lost, s));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                    s.listener = None;
                    return Some((Heard::Lost, s));
                }
            }
        }
    })
}

impl Store {
    /// The commits announced by every replica (this one included), for as
    /// long as the stream is kept; `None` on SQLite, where there is only one
    /// replica. A lost connection yields [`Notice::Lost`], and so does each
    /// new `LISTEN` (what was committed before it was not heard).
    pub fn commits(&self) -> Option<impl Stream<Item = Notice> + Send + 'static> {
        use futures::StreamExt;
        if self.backend() != DbBackend::Postgres {
            return None;
        }
        let pool = self.db().get_postgres_connection_pool().clone();
        Some(
            listen(pool, &[NOTIFY_CHANNEL]).filter_map(|heard| async move {
                match heard {
                    Heard::Notification { payload, .. } => {
                        let notice = parse(&payload);
                        if notice.is_none() {
                            tracing::warn!(payload, "ignoring a malformed notification");
                        }
                        notice
                    }
                    Heard::Listening | Heard::Lost => Some(Notice::Lost),
                }
            }),
        )
    }
}

async fn connect(pool: &PgPool, channels: &[&str]) -> Option<PgListener> {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "LISTEN connection failed; retrying");
            return None;
        }
    };
    // A loss is handled here (a new connection, and a catch-up by the
    // caller), not by reconnecting inside `try_recv`.
    listener.eager_reconnect(false);
    match listener.listen_all(channels.iter().copied()).await {
        Ok(()) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_garbage_is_ignored() {
        let p = payload("0190-abc", 7, 1234);
        assert_eq!(
            parse(&p),
            Some(Notice::Commit {
                release_id: "0190-abc".into(),
                seq: 7,
                position: 1234
            })
        );
        for bad in ["", "id", "id 1", "id x 2", "id 1 y"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
