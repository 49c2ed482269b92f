//! Persistence: SeaORM entities, migrations and repository functions.
//!
//! The store speaks domain types in and out; nothing above it writes SQL.
//! Both SQLite (the single-node default) and PostgreSQL (several replicas)
//! run the same code; the few backend differences are confined here.

pub mod audit;
pub mod catalog;
mod changes;
pub(crate) mod entity;
pub mod flows;
mod group;
pub mod leases;
pub(crate) mod migration;
pub mod notify;
mod page;
pub mod releases;
mod remembered;
pub mod templates;
pub mod tokens;
mod versioned;
pub mod watches;

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr};

use crate::error::{Error, Result};

pub use page::{Page, PageRequest};

/// Final releases remembered for reads (see [`Store::get_release`]).
pub(crate) type Finished =
    remembered::Remembered<String, std::sync::Arc<crate::domain::release::Release>>;

/// Most final releases remembered (a few KB each).
const FINISHED: usize = 4096;

/// How long a remembered value is served before it is read again, unless
/// told otherwise (`--remember-for`; see [`changes`]).
pub const REMEMBER_FOR: Duration = Duration::from_secs(5);

/// Handle to the database. Cheap to clone (the pools are shared).
#[derive(Clone, Debug)]
pub struct Store {
    /// Reads, and everything on PostgreSQL.
    db: DatabaseConnection,
    /// Writes. On SQLite a pool of exactly one connection: SQLite admits
    /// one writer at a time, and writers that race for its lock back off
    /// in sleeps of 1 to 100 ms (its busy handler), which under load cost
    /// far more than the writes themselves (see BENCHMARKS.md). Queueing
    /// for this pool's single connection is FIFO and wakes the next writer
    /// as soon as the previous one commits. On PostgreSQL, the same pool
    /// as `db`: row locks let writers proceed side by side.
    writer: DatabaseConnection,
    /// Final releases by id, as last read (see [`remembered`]).
    finished: std::sync::Arc<Finished>,
    /// Flows' latest versions (and creation times) by name.
    latest_flows: std::sync::Arc<remembered::Remembered<String, flows::Latest>>,
    /// Flow versions as parsed, by name, the flow's creation and version:
    /// a version never changes, and a flow deleted and created again has a
    /// new creation time.
    flow_versions: std::sync::Arc<
        quick_cache::sync::Cache<flows::VersionKey, std::sync::Arc<flows::StoredFlow>>,
    >,
    /// API tokens as last read (see [`Store::token_by_id`]).
    tokens: std::sync::Arc<tokens::TokenCache>,
    /// On PostgreSQL, the task that forgets what other replicas change
    /// (see [`changes`]); it ends with the last clone of the store.
    _watch: Option<std::sync::Arc<tokio_util::task::AbortOnDropHandle<()>>>,
    /// The writer task that commits release writes in groups (see
    /// [`group`]).
    group: group::Group,
}

impl Store {
    /// Connects to `url` and applies pending migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        Self::open_remembering(url, max_connections, REMEMBER_FOR).await
    }

    /// [`Store::open`], serving remembered reads for up to `remember_for`
    /// (zero: every read goes to the database).
    pub async fn open_remembering(
        url: &str,
        max_connections: u32,
        remember_for: Duration,
    ) -> Result<Self> {
        let store = Self::connect_remembering(url, max_connections, remember_for).await?;
        migration::run(&store.db, url).await?;
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        Self::connect_remembering(url, max_connections, REMEMBER_FOR).await
    }

    async fn connect_remembering(
        url: &str,
        max_connections: u32,
        remember_for: Duration,
    ) -> Result<Self> {
        use std::sync::Arc;
        let db = Database::connect(Self::options(url, max_connections)).await?;
        let postgres = db.get_database_backend() == DbBackend::Postgres;
        let writer = if postgres {
            db.clone()
        } else {
            Database::connect(Self::options(url, 1)).await?
        };
        // On PostgreSQL remembering waits until this replica hears the
        // others' announcements.
        let live = !postgres;
        let finished = Arc::new(Finished::new(FINISHED, remember_for, live));
        let latest_flows = Arc::new(remembered::Remembered::new(1024, remember_for, live));
        let tokens = Arc::new(tokens::TokenCache::new(1024, remember_for, live));
        let watch = postgres.then(|| {
            Arc::new(changes::watch(
                db.get_postgres_connection_pool().clone(),
                changes::Remembering {
                    finished: Arc::clone(&finished),
                    latest_flows: Arc::clone(&latest_flows),
                    tokens: Arc::clone(&tokens),
                },
            ))
        });
        Ok(Self {
            group: group::Group::start(writer.clone(), Arc::clone(&finished)),
            tokens,
            db,
            writer,
            finished,
            latest_flows,
            flow_versions: Arc::new(quick_cache::sync::Cache::new(1024)),
            _watch: watch,
        })
    }

    fn options(url: &str, max_connections: u32) -> ConnectOptions {
        let mut opts = ConnectOptions::new(url.to_string());
        opts.max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .sqlx_logging(false)
            // WAL lets readers (streams, gets) proceed while the engine
            // writes; the busy timeout turns writer contention into waiting
            // instead of `SQLITE_BUSY` errors; foreign keys are off by
            // default in SQLite and the schema relies on them.
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
                    .foreign_keys(true)
            })
            .map_sqlx_sqlite_pool_opts(|o| o.after_connect(|conn, _| Box::pin(stable_plans(conn))));
        opts
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The connection pool for statements and transactions that write.
    /// Never wait for it while holding a transaction from it (a second
    /// writer on SQLite would wait for the first forever).
    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    pub async fn close(self) {
        if self.db.get_database_backend() == DbBackend::Sqlite {
            let _ = self.writer.close().await;
        }
        let _ = self.db.close().await;
    }
}

/// Turns on SQLite's query planner stability guarantee (QPSG) for one
/// connection.
///
/// Without it SQLite lets bound values steer the plan, and marks a prepared
/// statement as stale whenever a value it looked at is bound again: every
/// statement with a `LIMIT ?` (SeaORM binds the limit of `.one()` and
/// `.limit(n)`) or a `LIKE ?` was compiled anew on every execution, which
/// cost more than running it (see BENCHMARKS.md). The plans here do not
/// depend on the values, so one plan per statement, cached, is right.
async fn stable_plans(
    conn: &mut sea_orm::sqlx::SqliteConnection,
) -> std::result::Result<(), sea_orm::sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is the open connection the locked handle guards for the
    // duration of the call; SQLITE_DBCONFIG_ENABLE_QPSG takes an int and an
    // optional int pointer for the previous setting.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db,
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as std::ffi::c_int,
            std::ptr::null_mut::<std::ffi::c_int>(),
        )
    };
    if rc == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(sea_orm::sqlx::Error::Configuration(
            format!("enabling SQLite's query planner stability guarantee failed ({rc})").into(),
        ))
    }
}

/// Most values in one `IN (…)` list, and rows in one multi-row insert. A
/// flow may have up to 100,000 steps (`--max-flow-steps`): far more bind
/// parameters than one statement may carry on SQLite (32,766) or PostgreSQL
/// (65,535), so statements about every environment of a flow go in batches.
pub(crate) const BATCH: usize = 1000;

/// Writes `rows` over the existing rows with the same primary key (every
/// other column is replaced), in statements of at most [`BATCH`] rows: one
/// statement for all the environment or step runs a transition changed,
/// instead of one per row (see BENCHMARKS.md).
pub(crate) async fn overwrite_batched<A, C>(db: &C, rows: Vec<A>) -> Result<()>
where
    A: sea_orm::ActiveModelTrait,
    C: sea_orm::ConnectionTrait,
{
    use sea_orm::sea_query::OnConflict;
    use sea_orm::{EntityTrait, Iterable, PrimaryKeyToColumn};
    let keys: Vec<_> = <A::Entity as EntityTrait>::PrimaryKey::iter()
        .map(|k| k.into_column())
        .collect();
    let others: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
        .filter(|c| {
            !keys
                .iter()
                .any(|k| sea_orm::IdenStatic::as_str(k) == sea_orm::IdenStatic::as_str(c))
        })
        .collect();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        A::Entity::insert_many(rows.by_ref().take(BATCH))
            .on_conflict(
                OnConflict::columns(keys.clone())
                    .update_columns(others.clone())
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Inserts `rows` in statements of at most [`BATCH`] rows each (all in `db`'s
/// transaction, if it is one).
pub(crate) async fn insert_batched<A, C>(db: &C, rows: Vec<A>) -> Result<()>
where
    A: sea_orm::ActiveModelTrait,
    C: sea_orm::ConnectionTrait,
{
    use sea_orm::EntityTrait;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        A::Entity::insert_many(rows.by_ref().take(BATCH))
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Maps a unique-constraint violation to `ALREADY_EXISTS` with `message`;
/// anything else stays a database error.
pub(crate) fn map_unique(err: DbErr, message: impl FnOnce() -> String) -> Error {
    match err.sql_err() {
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => Error::AlreadyExists(message()),
        _ => Error::Database(err),
    }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("encoding JSON: {e}")))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Internal(format!("decoding stored JSON: {e}")))
}

/// Current time, truncated to microseconds so what is written equals what
/// is read back on both backends.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let t = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
