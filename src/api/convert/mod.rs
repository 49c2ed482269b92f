//! The one place proto ⇄ domain conversions and request validation live.
//!
//! Handlers decode a request with the `*_in` functions (collecting every
//! field violation), call the store or the engine, and encode the answer
//! with the `*_out` functions or the `From` impls between domain and proto
//! enums. This file holds what every area shares (timestamps, durations,
//! enums, versions); one file per area holds the rest, and [`text`] the one
//! check of request names and free text.

pub mod catalog;
pub mod flow;
pub mod release;
pub mod template;
pub mod text;

pub use text::*;

use std::time::Duration;

use prost_types::Timestamp;

use crate::domain::{Violation, Violations};
use crate::error::{Error, Result};

pub fn timestamp(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<Timestamp> {
    t.map(|t| Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

pub fn duration_out(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn duration_ms_out(ms: u64) -> prost_types::Duration {
    duration_out(Duration::from_millis(ms))
}

/// Converts a protobuf duration to milliseconds, recording a violation at
/// `field` when it is negative or malformed. `None` stays `None`.
pub fn duration_ms_in(
    v: &mut Violations,
    field: &str,
    d: Option<&prost_types::Duration>,
) -> Option<u64> {
    let d = d?;
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        v.push(field, "must be a positive duration");
        return Some(0);
    }
    Some((d.seconds as u64).saturating_mul(1000) + (d.nanos as u64) / 1_000_000)
}

/// Reads a protobuf enum field, recording a violation for unknown numbers.
pub fn enum_in<E: TryFrom<i32>>(v: &mut Violations, field: &str, value: i32) -> Option<E> {
    match E::try_from(value) {
        Ok(e) => Some(e),
        Err(_) => {
            v.push(field, format!("unknown value {value}"));
            None
        }
    }
}

/// Requires a nested message; records `field is required` otherwise.
pub fn required<'a, T>(field: &str, value: Option<&'a T>) -> Result<&'a T> {
    value.ok_or_else(|| Error::invalid_field(field, "is required"))
}

/// Fails with every violation collected so far.
pub fn check(v: Violations) -> Result<()> {
    v.finish().map_err(Error::invalid)
}

/// Requires a positive `expected_version` (updates must say which version
/// they change, so a stale client can never overwrite newer data); the
/// violation joins the request's others.
pub fn expected_version(v: &mut Violations, value: i64) -> i64 {
    if value <= 0 {
        v.push(
            "expected_version",
            "is required: pass the version you read (updates are refused when it is stale)",
        );
    }
    value
}

/// Like [`expected_version`] but 0 means "any version" (deletes).
pub fn optional_expected_version(value: i64) -> Result<i64> {
    if value < 0 {
        Err(Error::invalid_field(
            "expected_version",
            "must not be negative",
        ))
    } else {
        Ok(value)
    }
}

/// Requires a non-negative version to read; 0 means the latest.
pub fn optional_version(version: i64) -> Result<i64> {
    if version < 0 {
        Err(Error::invalid_field(
            "version",
            "must not be negative (0 means the latest)",
        ))
    } else {
        Ok(version)
    }
}

/// The contract of every Import RPC (flows, products, templates): each
/// problem of the document is on field `yaml`, the description naming its
/// path inside the document.
pub fn yaml_violations(violations: Vec<Violation>) -> Error {
    Error::invalid(
        violations
            .into_iter()
            .map(|x| {
                if x.field == "yaml" {
                    Violation::new("yaml", x.description)
                } else {
                    Violation::new("yaml", format!("{}: {}", x.field, x.description))
                }
            })
            .collect(),
    )
}
