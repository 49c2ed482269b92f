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
            Error::Database(e) => {
                // The details stay in the server log; clients get a stable message.
                tracing::error!(error = %e, "database error");
                tonic::Status::unavailable("the database is unavailable or failed; retry later")
            }
            Error::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                tonic::Status::internal(m)
            }
        }
    }
}
