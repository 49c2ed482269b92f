//! When an Argo CD application counts as deployed at a promoted commit.
//!
//! A promotion is only done when the deployed application runs what was
//! promoted: Argo CD reports it `Synced` at the promoted commit (or a later
//! commit containing it) with no operation in flight, and `Healthy`, held
//! steady for a moment (a rollout can look healthy for an instant before it
//! is not). The rules follow `argocd app wait`
//! (`checkAppWaitConditions`) and the health checks Kargo and GitOps
//! Promoter run; see `docs/architecture.md`.
//!
//! This module only judges a status; `engine::argocd` reads it from the
//! Argo CD API and decides whether the reported revision contains the
//! promoted commit (that needs Git).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// What Argo CD reports about one application, reduced to what the
/// judgement needs (`GET /api/v1/applications/{name}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppStatus {
    /// `status.sync.status`: `Synced`, `OutOfSync`, `Unknown` (empty when
    /// absent).
    pub sync: String,
    /// `status.sync.revision`: the commit the comparison was made at.
    pub revision: String,
    /// `status.health.status`: `Healthy`, `Progressing`, `Degraded`,
    /// `Suspended`, `Missing`, `Unknown`.
    pub health: String,
    /// `status.health.message`, when Argo CD gives one.
    pub health_message: String,
    /// `status.health.lastTransitionTime`.
    pub health_since: Option<DateTime<Utc>>,
    /// `operation` is set: an operation was requested and not yet started.
    pub operation_requested: bool,
    /// `status.operationState.phase` (empty when there is no operation
    /// state): `Running`, `Terminating`, `Failed`, `Error`, `Succeeded`.
    pub operation_phase: String,
    /// `status.operationState.message`.
    pub operation_message: String,
    /// `status.operationState.finishedAt`.
    pub operation_finished: Option<DateTime<Utc>>,
    /// `status.reconciledAt`.
    pub reconciled: Option<DateTime<Utc>>,
    /// `status.conditions[]` as (type, message).
    pub conditions: Vec<(String, String)>,
}

/// Conditions that mean Argo CD cannot deploy the application at all:
/// waiting would only run into the timeout.
const FATAL_CONDITIONS: [&str; 2] = ["ComparisonError", "InvalidSpecError"];

/// The verdict on one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not there yet; the text says what is awaited (shown in the step
    /// message, for example "waiting for Argo CD: OutOfSync").
    Waiting(String),
    /// Synced at the promoted commit and healthy, held steady.
    Ready,
    /// Argo CD reports the deployment cannot succeed.
    Failed(String),
}

/// Judges `s` for a promotion of `commit`. `contains` says whether
/// `s.revision` is `commit` or a descendant of it; `hold` is how long
/// `Healthy` must have lasted at `now`.
pub fn judge(
    s: &AppStatus,
    commit: &str,
    contains: bool,
    hold: Duration,
    now: DateTime<Utc>,
) -> Verdict {
    if let Some((kind, message)) = s
        .conditions
        .iter()
        .find(|(kind, _)| FATAL_CONDITIONS.contains(&kind.as_str()))
    {
        return Verdict::Failed(format!("Argo CD reports {kind}: {message}"));
    }
    if let Some(what) = operation_in_flight(s) {
        return Verdict::Waiting(format!("waiting for Argo CD: {what}"));
    }
    if s.sync != "Synced" {
        let sync = if s.sync.is_empty() {
            "Unknown"
        } else {
            &s.sync
        };
        return Verdict::Waiting(format!("waiting for Argo CD: {sync}"));
    }
    if !contains {
        return Verdict::Waiting(format!(
            "waiting for Argo CD: Synced at {}, not yet at {}",
            short(&s.revision),
            short(commit)
        ));
    }
    // At the promoted commit, a failed sync operation or a degraded
    // application is the promotion's failure, not something to wait out.
    if matches!(s.operation_phase.as_str(), "Failed" | "Error") {
        return Verdict::Failed(format!(
            "Argo CD's sync {}: {}",
            s.operation_phase.to_lowercase(),
            s.operation_message
        ));
    }
    match s.health.as_str() {
        "Healthy" => {}
        "Degraded" => {
            return Verdict::Failed(if s.health_message.is_empty() {
                "Argo CD reports the application Degraded".to_string()
            } else {
                format!(
                    "Argo CD reports the application Degraded: {}",
                    s.health_message
                )
            });
        }
        "" => return Verdict::Waiting("waiting for Argo CD: health Unknown".into()),
        other => return Verdict::Waiting(format!("waiting for Argo CD: {other}")),
    }
    let hold = chrono::Duration::from_std(hold).unwrap_or(chrono::Duration::MAX);
    match s.health_since {
        Some(since) if now.signed_duration_since(since) < hold => {
            Verdict::Waiting("waiting for Argo CD: Healthy, holding steady".into())
        }
        _ => Verdict::Ready,
    }
}

/// Why an operation still counts as running, as `argocd app wait` sees it.
fn operation_in_flight(s: &AppStatus) -> Option<String> {
    if s.operation_requested {
        return Some("operation requested".into());
    }
    if s.operation_phase.is_empty() {
        return None;
    }
    let Some(finished) = s.operation_finished else {
        return Some(format!("operation {}", s.operation_phase));
    };
    // A status reconciled before the operation finished describes the
    // application as it was before the operation.
    match s.reconciled {
        Some(r) if r >= finished => None,
        _ => Some("refreshing after the operation".into()),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "0123456789abcdef0123456789abcdef01234567";
    const HOLD: Duration = Duration::from_secs(5);

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("time")
    }

    /// Synced at `C`, Healthy since t=0, an operation finished at t=0 and
    /// reconciled after it.
    fn ready() -> AppStatus {
        AppStatus {
            sync: "Synced".into(),
            revision: C.into(),
            health: "Healthy".into(),
            health_since: Some(at(0)),
            operation_phase: "Succeeded".into(),
            operation_finished: Some(at(0)),
            reconciled: Some(at(1)),
            ..Default::default()
        }
    }

    fn waiting(v: Verdict) -> String {
        match v {
            Verdict::Waiting(m) => m,
            other => panic!("expected waiting, got {other:?}"),
        }
    }

    fn failed(v: Verdict) -> String {
        match v {
            Verdict::Failed(m) => m,
            other => panic!("expected failed, got {other:?}"),
        }
    }

    #[test]
    fn synced_healthy_and_held_is_ready() {
        assert_eq!(judge(&ready(), C, true, HOLD, at(10)), Verdict::Ready);
        // No transition time known: nothing to hold against.
        let s = AppStatus {
            health_since: None,
            ..ready()
        };
        assert_eq!(judge(&s, C, true, HOLD, at(1)), Verdict::Ready);
    }

    #[test]
    fn healthy_for_an_instant_is_held() {
        let m = waiting(judge(&ready(), C, true, HOLD, at(2)));
        assert!(m.contains("holding steady"), "{m}");
    }

    #[test]
    fn out_of_sync_or_at_an_older_revision_waits() {
        let s = AppStatus {
            sync: "OutOfSync".into(),
            ..ready()
        };
        assert_eq!(
            waiting(judge(&s, C, true, HOLD, at(10))),
            "waiting for Argo CD: OutOfSync"
        );
        let m = waiting(judge(&ready(), "fedcba9876543210", false, HOLD, at(10)));
        assert!(
            m.contains("Synced at 0123456789ab, not yet at fedcba987654"),
            "{m}"
        );
    }

    #[test]
    fn an_operation_in_flight_or_a_stale_reconcile_waits() {
        for s in [
            AppStatus {
                operation_requested: true,
                ..ready()
            },
            AppStatus {
                operation_phase: "Running".into(),
                operation_finished: None,
                ..ready()
            },
            AppStatus {
                reconciled: Some(at(-1)),
                ..ready()
            },
            AppStatus {
                reconciled: None,
                ..ready()
            },
        ] {
            waiting(judge(&s, C, true, HOLD, at(10)));
        }
        // No operation ever: judged on sync and health alone.
        let s = AppStatus {
            operation_phase: String::new(),
            operation_finished: None,
            reconciled: None,
            ..ready()
        };
        assert_eq!(judge(&s, C, true, HOLD, at(10)), Verdict::Ready);
    }

    #[test]
    fn degraded_at_the_commit_fails_but_degraded_before_it_waits() {
        let s = AppStatus {
            health: "Degraded".into(),
            health_message: "Back-off pulling image".into(),
            ..ready()
        };
        let m = failed(judge(&s, C, true, HOLD, at(10)));
        assert!(m.contains("Degraded: Back-off pulling image"), "{m}");
        // Still at the previous revision: its health says nothing about
        // the promotion yet.
        waiting(judge(&s, C, false, HOLD, at(10)));
        let progressing = AppStatus {
            health: "Progressing".into(),
            ..ready()
        };
        assert_eq!(
            waiting(judge(&progressing, C, true, HOLD, at(10))),
            "waiting for Argo CD: Progressing"
        );
    }

    #[test]
    fn fatal_conditions_and_failed_syncs_fail_at_once() {
        let s = AppStatus {
            sync: "Unknown".into(),
            conditions: vec![(
                "ComparisonError".into(),
                "rpc error: repository not found".into(),
            )],
            ..ready()
        };
        let m = failed(judge(&s, C, false, HOLD, at(10)));
        assert!(m.contains("ComparisonError: rpc error"), "{m}");
        let s = AppStatus {
            operation_phase: "Failed".into(),
            operation_message: "one or more objects failed to apply".into(),
            ..ready()
        };
        let m = failed(judge(&s, C, true, HOLD, at(10)));
        assert!(m.contains("sync failed: one or more objects"), "{m}");
    }
}
