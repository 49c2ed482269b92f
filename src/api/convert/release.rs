//! Releases: their runs, events, statuses and the cursor of WatchReleases.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::timestamp;
use crate::domain::release::{Counters, EnvRun, EventBody, Release, StepRun};
use crate::domain::status::{EnvironmentStatus, ReleaseStatus, StepKind, StepStatus};
use crate::error::{Error, Result};
use crate::proto::v1 as pb;
use crate::proto::v1::release_event::Change as PbChange;
use crate::store::releases::StoredEvent;

impl From<ReleaseStatus> for pb::ReleaseStatus {
    fn from(s: ReleaseStatus) -> Self {
        match s {
            ReleaseStatus::Queued => Self::Queued,
            ReleaseStatus::Running => Self::Running,
            ReleaseStatus::Suspended => Self::Suspended,
            ReleaseStatus::Terminating => Self::Terminating,
            ReleaseStatus::Succeeded => Self::Succeeded,
            ReleaseStatus::Failed => Self::Failed,
            ReleaseStatus::Terminated => Self::Terminated,
        }
    }
}

/// `UNSPECIFIED` is no status (a filter left unset), hence `Err(())`.
impl TryFrom<pb::ReleaseStatus> for ReleaseStatus {
    type Error = ();

    fn try_from(s: pb::ReleaseStatus) -> std::result::Result<Self, ()> {
        Ok(match s {
            pb::ReleaseStatus::Unspecified => return Err(()),
            pb::ReleaseStatus::Queued => Self::Queued,
            pb::ReleaseStatus::Running => Self::Running,
            pb::ReleaseStatus::Suspended => Self::Suspended,
            pb::ReleaseStatus::Terminating => Self::Terminating,
            pb::ReleaseStatus::Succeeded => Self::Succeeded,
            pb::ReleaseStatus::Failed => Self::Failed,
            pb::ReleaseStatus::Terminated => Self::Terminated,
        })
    }
}

impl From<EnvironmentStatus> for pb::EnvironmentStatus {
    fn from(s: EnvironmentStatus) -> Self {
        match s {
            EnvironmentStatus::Pending => Self::Pending,
            EnvironmentStatus::Running => Self::Running,
            EnvironmentStatus::Suspended => Self::Suspended,
            EnvironmentStatus::Succeeded => Self::Succeeded,
            EnvironmentStatus::Failed => Self::Failed,
            EnvironmentStatus::Skipped => Self::Skipped,
            EnvironmentStatus::Terminated => Self::Terminated,
        }
    }
}

impl From<StepStatus> for pb::StepStatus {
    fn from(s: StepStatus) -> Self {
        match s {
            StepStatus::Pending => Self::Pending,
            StepStatus::Running => Self::Running,
            StepStatus::Suspended => Self::Suspended,
            StepStatus::Succeeded => Self::Succeeded,
            StepStatus::Failed => Self::Failed,
            StepStatus::Skipped => Self::Skipped,
            StepStatus::Terminated => Self::Terminated,
        }
    }
}

impl From<StepKind> for pb::StepKind {
    fn from(k: StepKind) -> Self {
        match k {
            StepKind::TriggerWorkflow => Self::TriggerWorkflow,
            StepKind::OnStart => Self::OnStart,
            StepKind::PreAction => Self::PreAction,
            StepKind::Action => Self::Action,
            StepKind::Sync => Self::Sync,
            StepKind::PostAction => Self::PostAction,
            StepKind::OnSuccess => Self::OnSuccess,
            StepKind::OnFail => Self::OnFail,
        }
    }
}

/// The `status` filter of ListReleases: `UNSPECIFIED` is any status.
pub fn status_filter_in(status: pb::ReleaseStatus) -> Option<ReleaseStatus> {
    ReleaseStatus::try_from(status).ok()
}

pub fn step_out(s: StepRun) -> pb::StepRun {
    pb::StepRun {
        kind: pb::StepKind::from(s.kind) as i32,
        workflow: s.workflow,
        status: pb::StepStatus::from(s.status) as i32,
        message: s.message,
        start_time: timestamp(s.start_time),
        finish_time: timestamp(s.finish_time),
        attempt: s.attempt,
        commit_sha: s.commit_sha,
        url: s.url,
        pull_request_number: s.pull_request,
        required_approvals: s
            .approval
            .as_ref()
            .map_or(0, |a| a.rule.min_approvals as i32),
        approvals: s
            .approval
            .map(|a| {
                a.decisions
                    .into_iter()
                    .map(|d| pb::ApprovalDecision {
                        principal: d.principal,
                        approve: d.approve,
                        comment: d.comment,
                        time: timestamp(Some(d.time)),
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

pub fn env_out(e: EnvRun) -> pb::EnvironmentRun {
    pb::EnvironmentRun {
        environment: e.environment,
        depends_on: e.depends_on,
        status: pb::EnvironmentStatus::from(e.status) as i32,
        blocked_on: e.blocked_on,
        attempt: e.attempt,
        steps: e.steps.into_iter().map(step_out).collect(),
        start_time: timestamp(e.start_time),
        finish_time: timestamp(e.finish_time),
        message: e.message,
        application: e.application,
    }
}

pub fn counters_out(c: Counters) -> pb::ReleaseCounters {
    pb::ReleaseCounters {
        total: c.total,
        succeeded: c.succeeded,
        running: c.running,
        failed: c.failed,
        pending: c.pending,
        skipped: c.skipped,
        terminated: c.terminated,
        suspended: c.suspended,
        awaiting_review: c.awaiting_review,
    }
}

pub fn release_out(r: Release) -> pb::Release {
    let counters = counters_out(r.counters());
    pb::Release {
        id: r.id,
        product: r.product,
        flow: r.flow,
        flow_version: r.flow_version,
        version: r.version,
        status: pb::ReleaseStatus::from(r.status) as i32,
        initiator: r.initiator,
        actor: r.actor,
        terminated_by: r.terminated_by,
        environments: r.envs.into_iter().map(env_out).collect(),
        counters: Some(counters),
        create_time: timestamp(Some(r.create_time)),
        start_time: timestamp(r.start_time),
        finish_time: timestamp(r.finish_time),
        message: r.message,
        last_seq: r.last_seq,
        trigger_message: r.trigger_message,
        hooks: r.hooks.into_iter().map(step_out).collect(),
        request_id: r.request_id.unwrap_or_default(),
        source_commit: r.source_commit,
    }
}

pub fn event_out(e: StoredEvent) -> pb::ReleaseEvent {
    let change = match e.body {
        EventBody::Snapshot(r) => PbChange::Snapshot(release_out(*r)),
        EventBody::Release {
            status,
            message,
            counters,
            start_time,
            finish_time,
            terminated_by,
        } => PbChange::Release(pb::ReleaseChange {
            status: pb::ReleaseStatus::from(status) as i32,
            message,
            counters: Some(counters_out(counters)),
            start_time: timestamp(start_time),
            finish_time: timestamp(finish_time),
            terminated_by,
        }),
        EventBody::Environment(env) => PbChange::Environment(pb::EnvironmentChange {
            environment: Some(env_out(*env)),
        }),
        EventBody::Step {
            environment,
            index,
            step,
        } => PbChange::Step(pb::StepChange {
            environment,
            index: index as i32,
            step: Some(step_out(step)),
        }),
    };
    pb::ReleaseEvent {
        release_id: e.release_id,
        seq: e.seq,
        time: timestamp(Some(e.time)),
        change: Some(change),
    }
}

/// A heartbeat of a stream at event `latest`.
pub fn heartbeat(release_id: &str, latest: i64) -> pb::ReleaseEvent {
    pb::ReleaseEvent {
        release_id: release_id.to_string(),
        seq: latest,
        time: timestamp(Some(chrono::Utc::now())),
        change: Some(PbChange::Heartbeat(pb::Heartbeat { latest_seq: latest })),
    }
}

/// The opaque WatchReleases cursor of a position in the event log.
pub fn encode_cursor(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("p:{position}"))
}

/// Reads a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<i64> {
    let bad = || Error::invalid_field("after_cursor", "is not a cursor returned by this server");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("p:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proto enums spell each domain value the same way: a variant added
    /// on one side only, or mapped to the wrong value, fails here.
    #[test]
    fn enums_match_by_name() {
        for &s in ReleaseStatus::ALL {
            let p = pb::ReleaseStatus::from(s);
            assert_eq!(p.as_str_name(), format!("RELEASE_STATUS_{s}"));
            assert_eq!(ReleaseStatus::try_from(p), Ok(s));
        }
        assert_eq!(
            ReleaseStatus::try_from(pb::ReleaseStatus::Unspecified),
            Err(())
        );
        for &s in EnvironmentStatus::ALL {
            let p = pb::EnvironmentStatus::from(s).as_str_name();
            assert_eq!(p, format!("ENVIRONMENT_STATUS_{s}"));
        }
        for &s in StepStatus::ALL {
            assert_eq!(
                pb::StepStatus::from(s).as_str_name(),
                format!("STEP_STATUS_{s}")
            );
        }
        for &k in StepKind::ALL {
            assert_eq!(
                pb::StepKind::from(k).as_str_name(),
                format!("STEP_KIND_{k}")
            );
        }
    }

    #[test]
    fn cursors_round_trip() {
        for p in [0, 1, i64::MAX] {
            assert_eq!(decode_cursor(&encode_cursor(p)).ok(), Some(p));
        }
        for bad in ["", "!", "cDotMQ", &URL_SAFE_NO_PAD.encode("x:1")] {
            assert!(decode_cursor(bad).is_err(), "{bad:?}");
        }
    }
}
