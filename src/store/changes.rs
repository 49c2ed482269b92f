//! Keeping remembered reads current when other replicas write.
//!
//! Each process remembers API tokens, flows' latest versions and final
//! releases ([`super::remembered`]) and forgets what it writes itself. On
//! PostgreSQL other replicas write too, so every write that changes one of
//! them announces it inside its own transaction (delivered only if it
//! commits): releases with their events on [`NOTIFY_CHANNEL`], tokens and
//! flows with a [`Change`] on [`CHANGES_CHANNEL`]. [`watch`] hears every
//! replica's announcements and forgets what they name.
//!
//! So a token revoked or a flow saved on one replica is seen by the others
//! as soon as the commit's notification reaches them (a round trip through
//! the database server). While the listening connection is down nothing is
//! remembered at all, and after it comes back everything is read again;
//! should notifications stop without the connection failing, the
//! remembered values' `max_age` (`--remember-for`) bounds how stale a read
//! can be. On SQLite there is nothing to hear: one process owns the file,
//! and for several processes on one file only `max_age` applies.

use futures::StreamExt;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::notify::{Heard, NOTIFY_CHANNEL, Notice, listen, parse};
use super::{Finished, flows, tokens};
use crate::error::Result;

/// The PostgreSQL channel on which writes of tokens and flows are announced.
pub(crate) const CHANGES_CHANNEL: &str = "promoflow_changes";

/// A write that other replicas must forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change<'a> {
    /// The API token with this public id was created, revoked or used.
    Token(&'a str),
    /// The flow of this name was created, saved or deleted.
    Flow(&'a str),
}

impl Change<'_> {
    fn payload(&self) -> String {
        match self {
            Change::Token(id) => format!("token {id}"),
            Change::Flow(name) => format!("flow {name}"),
        }
    }
}

/// Announces `change` to every replica: on PostgreSQL a notification sent
/// in `db`'s transaction, if it is one (delivered when it commits); nothing
/// on SQLite.
pub(crate) async fn announce<C: ConnectionTrait>(db: &C, change: Change<'_>) -> Result<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANGES_CHANNEL.into(), change.payload().into()],
        ))
        .await?;
    }
    Ok(())
}

/// What [`watch`] forgets in.
pub(crate) struct Remembering {
    pub finished: std::sync::Arc<Finished>,
    pub latest_flows: std::sync::Arc<super::remembered::Remembered<String, flows::Latest>>,
    pub tokens: std::sync::Arc<tokens::TokenCache>,
}

impl Remembering {
    fn set_live(&self, live: bool) {
        self.finished.set_live(live);
        self.latest_flows.set_live(live);
        self.tokens.set_live(live);
    }

    fn heard(&self, channel: &str, payload: &str) {
        if channel == NOTIFY_CHANNEL {
            if let Some(Notice::Commit { release_id, .. }) = parse(payload) {
                self.finished.forget([release_id.as_str()]);
            }
            return;
        }
        match payload.split_once(' ') {
            Some(("token", id)) => self.tokens.forget([id]),
            Some(("flow", name)) => self.latest_flows.forget([name]),
            _ => tracing::warn!(payload, "ignoring a malformed change notification"),
        }
    }
}

/// Listens to every replica's announcements on PostgreSQL and forgets what
/// they change, until the returned handle is dropped. Remembering is on
/// only while listening.
pub(crate) fn watch(
    pool: sea_orm::sqlx::PgPool,
    remembering: Remembering,
) -> tokio_util::task::AbortOnDropHandle<()> {
    let heard = listen(pool, &[NOTIFY_CHANNEL, CHANGES_CHANNEL]);
    tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let mut heard = std::pin::pin!(heard);
        while let Some(h) = heard.next().await {
            match h {
                Heard::Listening => remembering.set_live(true),
                Heard::Lost => remembering.set_live(false),
                Heard::Notification { channel, payload } => remembering.heard(&channel, &payload),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn what_is_heard_is_forgotten_and_nothing_else() {
        let day = Duration::from_secs(86_400);
        let r = Remembering {
            finished: Arc::new(Finished::new(8, day, true)),
            latest_flows: Arc::new(super::super::remembered::Remembered::new(8, day, true)),
            tokens: Arc::new(tokens::TokenCache::new(8, day, true)),
        };
        let t = chrono::Utc::now();
        r.latest_flows
            .remember(r.latest_flows.mark(), "web".into(), (3, t));
        r.latest_flows
            .remember(r.latest_flows.mark(), "api".into(), (1, t));
        r.heard(CHANGES_CHANNEL, &Change::Flow("web").payload());
        assert_eq!(r.latest_flows.get("web"), None);
        assert_eq!(r.latest_flows.get("api"), Some((1, t)));
        r.heard(CHANGES_CHANNEL, "garbage");
        r.heard(NOTIFY_CHANNEL, "garbage");
        assert_eq!(r.latest_flows.get("api"), Some((1, t)));
    }
}
