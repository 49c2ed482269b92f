//! The one error type of promoflow, and its one mapping to a gRPC status.
//!
//! Every layer below the API returns [`Error`]; the handlers convert it with
//! `?` through the single `From<Error> for tonic::Status` below, so a user's
//! mistake can never leak out as `INTERNAL` by accident and every validation
//! failure carries `google.rpc.BadRequest` field violations.

use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::Violation;

/// Most field violations sent in one error.
pub const MAX_VIOLATIONS: usize = 100;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a client reads for every `INTERNAL` error: the detail is a bug or a
/// corrupt row, useful in the server log and meaningless (or revealing) to
/// a client.
pub const INTERNAL_MESSAGE: &str = "internal error; the server log has the details";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; `violations` lists every offending field.
    #[error("{message}")]
    InvalidArgument {
        message: String,
        violations: Vec<Violation>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// Optimistic-concurrency conflict: the caller's `expected_version` is stale.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Cancelled(String),
    /// No credential, or one that is unknown, expired or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid principal lacks the permission (the message names it and
    /// the scope), or a rule such as "no self-approval" refuses it.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// A validation failure with its field violations. At most
    /// [`MAX_VIOLATIONS`] are kept: details travel in response trailers,
    /// whose size is limited, and a hundred problems are plenty to act on.
    pub fn invalid(mut violations: Vec<Violation>) -> Self {
        if violations.len() > MAX_VIOLATIONS {
            let more = violations.len() - MAX_VIOLATIONS + 1;
            violations.truncate(MAX_VIOLATIONS - 1);
            violations.push(Violation::new(
                "",
                format!("{more} more violations are not listed; fix these first"),
            ));
        }
        let message = match violations.as_slice() {
            [] => "invalid request".to_string(),
            [one] => format!("invalid request: {one}"),
            [first, rest @ ..] => format!(
                "invalid request: {first} (and {} more violation{})",
                rest.len(),
                if rest.len() == 1 { "" } else { "s" }
            ),
        };
        Self::InvalidArgument {
            message,
            violations,
        }
    }

    /// A single-field validation failure.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::invalid(vec![Violation::new(field, description)])
    }

    pub fn not_found(kind: &str, name: &str) -> Self {
        Self::NotFound(format!("{kind} {name:?} not found"))
    }

    pub fn stale(kind: &str, name: &str, expected: i64, current: i64) -> Self {
        Self::Aborted(format!(
            "{kind} {name:?} was changed concurrently: expected version {expected}, current version is {current}; read it again and retry"
        ))
    }
}

impl Error {
    /// True when the same request may succeed if retried unchanged: the
    /// database or a dependency was unreachable, busy or timed out.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unavailable(_) => true,
            Error::Database(e) => classify(e) == DbClass::Unavailable,
            _ => false,
        }
    }
}

/// How a database error reaches a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbClass {
    /// Connection, pool, I/O, timeouts, lock contention: retrying may work.
    Unavailable,
    /// A unique constraint: the request creates something that exists.
    AlreadyExists,
    /// A foreign key: the request names a missing row or removes a used one.
    FailedPrecondition,
    /// Anything else is a bug (a query the schema refuses, a value the
    /// validation should have refused): no retry helps.
    Internal,
}

/// Classifies a database error by what the caller can do about it.
///
/// Constraint violations use sea-orm's portable [`sea_orm::DbErr::sql_err`];
/// the rest looks at the sqlx error under it. SQLSTATE classes and SQLite
/// result codes identify the transient database errors, since a failed
/// statement is reported the same way whether the cause is a lost connection
/// or a bad query.
fn classify(e: &sea_orm::DbErr) -> DbClass {
    use sea_orm::{DbErr, RuntimeErr, SqlErr};
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => return DbClass::AlreadyExists,
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => return DbClass::FailedPrecondition,
        _ => {}
    }
    match e {
        DbErr::ConnectionAcquire(_) => DbClass::Unavailable,
        DbErr::Conn(RuntimeErr::SqlxError(x))
        | DbErr::Exec(RuntimeErr::SqlxError(x))
        | DbErr::Query(RuntimeErr::SqlxError(x)) => classify_sqlx(x),
        // Failing to connect at all is transient whatever the cause.
        DbErr::Conn(_) => DbClass::Unavailable,
        _ => DbClass::Internal,
    }
}

fn classify_sqlx(e: &sea_orm::sqlx::Error) -> DbClass {
    use sea_orm::sqlx::Error as X;
    use sea_orm::sqlx::error::ErrorKind;
    match e {
        X::Io(_)
        | X::Tls(_)
        | X::Protocol(_)
        | X::PoolTimedOut
        | X::PoolClosed
        | X::WorkerCrashed
        | X::BeginFailed => DbClass::Unavailable,
        X::Database(d) => match d.kind() {
            ErrorKind::UniqueViolation => DbClass::AlreadyExists,
            ErrorKind::ForeignKeyViolation => DbClass::FailedPrecondition,
            _ => {
                let code = d.code();
                let code = code.as_deref().unwrap_or_default();
                let sqlite = d
                    .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
                    .is_some();
                if (sqlite && sqlite_busy(code)) || (!sqlite && sqlstate_transient(code)) {
                    DbClass::Unavailable
                } else {
                    DbClass::Internal
                }
            }
        },
        _ => DbClass::Internal,
    }
}

/// True for the SQLSTATEs of a PostgreSQL that is busy, shutting down or
/// lost the connection: classes 08 (connection exception), 53 (insufficient
/// resources) and 57P (operator intervention, e.g. a shutdown), and the
/// serialization failures and deadlocks a retry resolves (40001, 40P01).
fn sqlstate_transient(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || code == "40001"
        || code == "40P01"
}

/// True for SQLite's BUSY and LOCKED result codes (5, 6) and their extended
/// codes, whose low byte is the primary code: another connection held the
/// lock for longer than the busy timeout.
fn sqlite_busy(code: &str) -> bool {
    code.parse::<u32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        use tonic::Code;
        match err {
            Error::InvalidArgument {
                message,
                violations,
            } => {
                let mut details = ErrorDetails::new();
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                tonic::Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::NotFound(m) => tonic::Status::not_found(m),
            Error::AlreadyExists(m) => tonic::Status::already_exists(m),
            Error::FailedPrecondition(m) => tonic::Status::failed_precondition(m),
            Error::Aborted(m) => tonic::Status::aborted(m),
            Error::OutOfRange(m) => tonic::Status::out_of_range(m),
            Error::Unavailable(m) => tonic::Status::unavailable(m),
            Error::Cancelled(m) => tonic::Status::cancelled(m),
            Error::Unauthenticated(m) => tonic::Status::unauthenticated(m),
            Error::PermissionDenied(m) => tonic::Status::permission_denied(m),
            // The details stay in the server log; clients get a stable
            // message that names no table, constraint or query.
            Error::Database(e) => match classify(&e) {
                DbClass::Unavailable => {
                    tracing::warn!(error = %e, "database unavailable");
                    tonic::Status::unavailable("the database is unavailable; retry")
                }
                DbClass::AlreadyExists => {
                    tracing::info!(error = %e, "unique constraint violated");
                    tonic::Status::already_exists(
                        "a resource with the same identity already exists",
                    )
                }
                DbClass::FailedPrecondition => {
                    tracing::info!(error = %e, "foreign key constraint violated");
                    tonic::Status::failed_precondition(
                        "the request refers to a resource that does not exist, or removes one still in use",
                    )
                }
                DbClass::Internal => {
                    tracing::error!(error = %e, "database error");
                    tonic::Status::internal(INTERNAL_MESSAGE)
                }
            },
            Error::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                tonic::Status::internal(INTERNAL_MESSAGE)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use sea_orm::sqlx::error::{DatabaseError, ErrorKind};
    use sea_orm::{ConnAcquireErr, ConnectionTrait, DbErr, RuntimeErr};
    use tonic::Code;

    use super::*;

    /// A driver error with a chosen SQLSTATE, as PostgreSQL reports it.
    #[derive(Debug)]
    struct PgLike(&'static str);

    impl std::fmt::Display for PgLike {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "secret detail of table t (SQLSTATE {})", self.0)
        }
    }

    impl std::error::Error for PgLike {}

    impl DatabaseError for PgLike {
        fn message(&self) -> &str {
            "secret detail of table t"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            match self.0 {
                "23505" => ErrorKind::UniqueViolation,
                "23503" => ErrorKind::ForeignKeyViolation,
                _ => ErrorKind::Other,
            }
        }
    }

    fn from_sqlx(e: sea_orm::sqlx::Error) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
    }

    fn pg(code: &'static str) -> DbErr {
        from_sqlx(sea_orm::sqlx::Error::Database(Box::new(PgLike(code))))
    }

    fn status(e: DbErr) -> tonic::Status {
        Error::Database(e).into()
    }

    #[test]
    fn unreachable_databases_are_unavailable() {
        let cases = [
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
            DbErr::Conn(RuntimeErr::Internal("connection refused".into())),
            from_sqlx(sea_orm::sqlx::Error::PoolTimedOut),
            from_sqlx(sea_orm::sqlx::Error::PoolClosed),
            from_sqlx(sea_orm::sqlx::Error::Io(std::io::Error::other("reset"))),
            pg("08006"),
            pg("57P01"),
            pg("53300"),
            pg("40001"),
            pg("40P01"),
        ];
        for e in cases {
            let text = e.to_string();
            assert!(Error::Database(e.clone()).is_transient(), "{text}");
            let s = status(e);
            assert_eq!(s.code(), Code::Unavailable, "{text}");
            assert_eq!(s.message(), "the database is unavailable; retry");
        }
    }

    #[test]
    fn constraint_violations_get_their_code() {
        for (e, code) in [
            (pg("23505"), Code::AlreadyExists),
            (pg("23503"), Code::FailedPrecondition),
        ] {
            assert!(!Error::Database(e.clone()).is_transient());
            let s = status(e);
            assert_eq!(s.code(), code);
            assert!(!s.message().contains("secret"), "{s:?}");
        }
    }

    #[test]
    fn other_database_errors_are_internal_without_details() {
        let cases = [
            pg("22021"), // a NUL byte PostgreSQL text cannot store
            pg("42601"), // a syntax error
            pg("23514"), // a check constraint no request should reach
            DbErr::Custom("secret detail".into()),
            DbErr::RecordNotFound("secret detail".into()),
            DbErr::Json("secret detail".into()),
            from_sqlx(sea_orm::sqlx::Error::ColumnNotFound("secret".into())),
        ];
        for e in cases {
            let text = e.to_string();
            assert!(!Error::Database(e.clone()).is_transient(), "{text}");
            let s = status(e);
            assert_eq!(s.code(), Code::Internal, "{text}");
            assert_eq!(s.message(), INTERNAL_MESSAGE);
        }
    }

    #[test]
    fn internal_errors_keep_their_text_out_of_the_status() {
        let s = tonic::Status::from(Error::Internal("stored JSON of row 7: bad".into()));
        assert_eq!(s.code(), Code::Internal);
        assert_eq!(s.message(), INTERNAL_MESSAGE);
    }

    #[test]
    fn sqlite_codes() {
        assert!(sqlite_busy("5") && sqlite_busy("517") && sqlite_busy("6") && sqlite_busy("262"));
        assert!(!sqlite_busy("2067") && !sqlite_busy("787") && !sqlite_busy("1"));
        assert!(!sqlite_busy("08006"));
    }

    /// The errors a real SQLite reports, not constructed ones: sea-orm and
    /// sqlx must keep recognising them across upgrades.
    #[tokio::test]
    async fn real_sqlite_errors() {
        let db = sea_orm::Database::connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite");
        db.execute_unprepared(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE p (name TEXT PRIMARY KEY);
             CREATE TABLE c (p TEXT NOT NULL REFERENCES p(name));
             INSERT INTO p VALUES ('a');",
        )
        .await
        .expect("schema");
        let fails = |sql: &'static str| {
            let db = &db;
            async move {
                db.execute_unprepared(sql)
                    .await
                    .expect_err("statement should fail")
            }
        };
        assert_eq!(
            status(fails("INSERT INTO p VALUES ('a')").await).code(),
            Code::AlreadyExists
        );
        assert_eq!(
            status(fails("INSERT INTO c VALUES ('b')").await).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            status(fails("SELECT nope FROM p").await).code(),
            Code::Internal
        );
    }
}
