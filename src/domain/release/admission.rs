//! Admission: what a new release of a product does to the product's other
//! active releases, by the product's concurrency policy.
//!
//! - `QUEUE` (default): the new release starts when no other release of the
//!   product is active, else it waits `QUEUED`, its message naming the
//!   release right before it in the queue (which stays true while it waits:
//!   the queue is first in, first out). At most [`MAX_QUEUED`] wait:
//!   when the queue is full the oldest queued release is terminated to make
//!   room (it never started, so nothing is lost but its turn).
//! - `TERMINATE`: the new release starts at once and every other active
//!   release of the product is terminated ("superseded by release <id>").
//!
//! The store applies the decision in the transaction that inserts the new
//! release, under a lock on the product's row, so two triggers (or two
//! replicas) never decide on the same state.

use crate::domain::catalog::Concurrency;
use crate::domain::status::ReleaseStatus;

/// Most releases of one product that may wait in the queue.
pub const MAX_QUEUED: usize = 50;

/// What admitting a new release decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// The new release starts now (else it is `QUEUED`).
    pub start: bool,
    /// For a queued release: the release right before it in the queue (the
    /// newest active one), which must be final before it starts.
    pub behind: Option<String>,
    /// Other releases to terminate, each with its reason.
    pub terminate: Vec<(String, String)>,
}

/// Decides the admission of release `new_id` of `product`, given the
/// product's other active (not final) releases as `(id, status)`, oldest
/// first.
pub fn admit(
    concurrency: Concurrency,
    product: &str,
    new_id: &str,
    active: &[(String, ReleaseStatus)],
) -> Admission {
    match concurrency {
        Concurrency::Queue => {
            let start = active.is_empty();
            let queued: Vec<&String> = active
                .iter()
                .filter(|(_, s)| *s == ReleaseStatus::Queued)
                .map(|(id, _)| id)
                .collect();
            let terminate = match queued.first() {
                Some(oldest) if !start && queued.len() >= MAX_QUEUED => vec![(
                    oldest.to_string(),
                    format!(
                        "dropped from the queue: more than {MAX_QUEUED} releases of {product} were waiting"
                    ),
                )],
                _ => Vec::new(),
            };
            let behind = (!start)
                .then(|| active.last().map(|(id, _)| id.clone()))
                .flatten();
            Admission {
                start,
                terminate,
                behind,
            }
        }
        Concurrency::Terminate => Admission {
            start: true,
            behind: None,
            terminate: active
                .iter()
                .map(|(id, _)| (id.clone(), format!("superseded by release {new_id}")))
                .collect(),
        },
    }
}

/// The message of a release queued behind `ahead`.
pub fn queued_message(ahead: &str) -> String {
    format!("queued behind release {ahead}: starts when it and every release before it are final")
}
