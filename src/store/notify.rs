//! Commits of other replicas, learnt through PostgreSQL `LISTEN/NOTIFY`.
//!
//! Every transaction that writes events sends, inside itself, one
//! notification per release on [`NOTIFY_CHANNEL`] (delivered only if it
//! commits). [`Store::commits`] is the other end: a stream of those commits
//! for the engine, which rings its doorbells and pokes its workers. The
//! payload format lives here and nowhere else.

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

fn parse(payload: &str) -> Option<Notice> {
    let mut parts = payload.split(' ');
    let (id, seq, pos) = (parts.next()?, parts.next()?, parts.next()?);
    Some(Notice::Commit {
        release_id: id.to_string(),
        seq: seq.parse().ok()?,
        position: pos.parse().ok()?,
    })
}

struct Listening {
    pool: PgPool,
    listener: Option<PgListener>,
}

impl Store {
    /// The commits announced by every replica (this one included), for as
    /// long as the stream is kept; `None` on SQLite, where there is only one
    /// replica. A lost connection yields [`Notice::Lost`] and is re-made.
    pub fn commits(&self) -> Option<impl Stream<Item = Notice> + Send + 'static> {
        if self.backend() != DbBackend::Postgres {
            return None;
        }
        let state = Listening {
            pool: self.db().get_postgres_connection_pool().clone(),
            listener: None,
        };
        Some(futures::stream::unfold(state, |mut s| async move {
            loop {
                let Some(listener) = s.listener.as_mut() else {
                    match connect(&s.pool).await {
                        Some(l) => s.listener = Some(l),
                        None => tokio::time::sleep(Duration::from_secs(1)).await,
                    }
                    continue;
                };
                match listener.recv().await {
                    Ok(n) => {
                        if let Some(notice) = parse(n.payload()) {
                            return Some((notice, s));
                        }
                        tracing::warn!(payload = n.payload(), "ignoring a malformed notification");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        s.listener = None;
                        return Some((Notice::Lost, s));
                    }
                }
            }
        }))
    }
}

async fn connect(pool: &PgPool) -> Option<PgListener> {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "LISTEN connection failed; retrying");
            return None;
        }
    };
    match listener.listen(NOTIFY_CHANNEL).await {
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
