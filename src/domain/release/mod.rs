//! The release state machine: pure functions over a release held in memory.
//!
//! The engine loads a [`Release`], calls one of the transition methods here
//! with the current time, and persists the returned [`Change`]s, each with
//! its event, in one transaction. Nothing here does I/O or runs workflows:
//! [`Release::advance`] only says which steps should start, and the engine
//! reports each step's [`Outcome`] back.
//!
//! - [`model`]: the data (release, environment runs, step runs, counters,
//!   event bodies) and read-only questions about it.
//! - `advance`: progress without outside input — start
//!   environments whose dependencies succeeded, skip those below a failure,
//!   walk each environment's steps, time out approvals and the release, run
//!   release-level hooks, finish the release.
//! - `commands`: transitions from outside — a step's outcome, an approval,
//!   terminate, retry, starting a queued release.
//! - [`admission`]: what a new release does to the product's other releases
//!   (queue, supersede, drop the oldest queued one).
//! - [`action`]: the outcome of a promotion action that needs no I/O.
//!
//! `docs/architecture.md` follows one release through these functions.

pub mod action;
pub mod admission;
mod advance;
mod commands;
pub mod model;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

pub use commands::ApprovalRefused;
pub use model::{
    Approval, ApprovalRule, Artifact, Change, Counters, Decision, EnvRun, EventBody, Outcome,
    Release, StepRef, StepRun,
};

pub type Time = DateTime<Utc>;

/// Sorts changes cause before effect and removes repeats: the order events
/// are written in (see [`Change`]). The one place this is done.
pub fn normalize(changes: &mut Vec<Change>) {
    changes.sort_unstable();
    changes.dedup();
}
