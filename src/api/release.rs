//! `ReleaseService`: triggers, reads, commands and the two status streams.

use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{Ctx, check, enum_in, timestamp};
use crate::domain::Violations;
use crate::domain::release::{Counters, EnvRun, EventBody, Release, StepRun};
use crate::domain::status::ReleaseStatus;
use crate::engine::TriggerRequest;
use crate::engine::stream::{FeedItem, ReleaseItem};
use crate::error::{Error, Result};
use crate::proto::v1 as pb;
use crate::proto::v1::release_event::Change as PbChange;
use crate::proto::v1::release_service_server::ReleaseService;
use crate::store::PageRequest;
use crate::store::releases::StoredEvent;

pub struct ReleaseApi {
    ctx: Ctx,
}

impl ReleaseApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

fn step_out(s: StepRun) -> pb::StepRun {
    pb::StepRun {
        kind: pb::StepKind::from_str_name(&format!("STEP_KIND_{}", s.kind.as_str()))
            .unwrap_or_default() as i32,
        workflow: s.workflow,
        status: pb::StepStatus::from_str_name(&format!("STEP_STATUS_{}", s.status.as_str()))
            .unwrap_or_default() as i32,
        message: s.message,
        start_time: timestamp(s.start_time),
        finish_time: timestamp(s.finish_time),
        attempt: s.attempt,
    }
}

fn env_out(e: EnvRun) -> pb::EnvironmentRun {
    pb::EnvironmentRun {
        environment: e.environment,
        depends_on: e.depends_on,
        status: pb::EnvironmentStatus::from_str_name(&format!(
            "ENVIRONMENT_STATUS_{}",
            e.status.as_str()
        ))
        .unwrap_or_default() as i32,
        blocked_on: e.blocked_on,
        attempt: e.attempt,
        steps: e.steps.into_iter().map(step_out).collect(),
        start_time: timestamp(e.start_time),
        finish_time: timestamp(e.finish_time),
        message: e.message,
        application: e.application,
    }
}

fn counters_out(c: Counters) -> pb::ReleaseCounters {
    pb::ReleaseCounters {
        total: c.total,
        succeeded: c.succeeded,
        running: c.running,
        failed: c.failed,
        pending: c.pending,
        skipped: c.skipped,
        terminated: c.terminated,
        suspended: c.suspended,
    }
}

fn status_out(s: ReleaseStatus) -> i32 {
    pb::ReleaseStatus::from_str_name(&format!("RELEASE_STATUS_{}", s.as_str())).unwrap_or_default()
        as i32
}

pub fn release_out(r: Release) -> pb::Release {
    let counters = counters_out(r.counters());
    pb::Release {
        id: r.id,
        product: r.product,
        flow: r.flow,
        flow_version: r.flow_version,
        version: r.version,
        status: status_out(r.status),
        initiator: r.initiator,
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
        } => PbChange::Release(pb::ReleaseChange {
            status: status_out(status),
            message,
            counters: Some(counters_out(counters)),
            start_time: timestamp(start_time),
            finish_time: timestamp(finish_time),
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

fn heartbeat(release_id: &str, latest: i64) -> pb::ReleaseEvent {
    pb::ReleaseEvent {
        release_id: release_id.to_string(),
        seq: latest,
        time: timestamp(Some(chrono::Utc::now())),
        change: Some(PbChange::Heartbeat(pb::Heartbeat { latest_seq: latest })),
    }
}

fn encode_cursor(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("p:{position}"))
}

fn decode_cursor(cursor: &str) -> Result<i64> {
    let bad = || Error::invalid_field("after_cursor", "is not a cursor returned by this server");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("p:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(bad)
}

/// Requires a release id (an empty one is the caller's mistake, not a
/// release that does not exist).
fn require_release_id(id: &str) -> Result<()> {
    if id.is_empty() {
        Err(Error::invalid_field("release_id", "is required"))
    } else {
        Ok(())
    }
}

/// Bounds a free-text field of a request.
fn check_text(field: &str, value: &str) -> Result<()> {
    if value.len() > crate::domain::catalog::MAX_TEXT {
        Err(Error::invalid_field(
            field,
            format!("is longer than {} bytes", crate::domain::catalog::MAX_TEXT),
        ))
    } else {
        Ok(())
    }
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ReleaseService for ReleaseApi {
    async fn trigger_release(
        &self,
        request: Request<pb::TriggerReleaseRequest>,
    ) -> Result<Response<pb::TriggerReleaseResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        crate::domain::check_name(&mut v, "flow", &req.flow);
        crate::domain::check_name(&mut v, "product", &req.product);
        for (field, value) in [
            ("version", &req.version),
            ("request_id", &req.request_id),
            ("initiator", &req.initiator),
            ("message", &req.message),
        ] {
            if value.len() > crate::domain::catalog::MAX_TEXT {
                v.push(field, "is longer than 4096 bytes");
            }
        }
        check(v)?;
        let r = self
            .ctx
            .engine
            .trigger(TriggerRequest {
                flow: req.flow,
                product: req.product,
                version: req.version,
                request_id: req.request_id,
                initiator: req.initiator,
                message: req.message,
            })
            .await?;
        Ok(Response::new(pb::TriggerReleaseResponse {
            release: Some(release_out(r)),
        }))
    }

    async fn get_release(
        &self,
        request: Request<pb::GetReleaseRequest>,
    ) -> Result<Response<pb::GetReleaseResponse>, Status> {
        let id = request.into_inner().release_id;
        require_release_id(&id)?;
        let r = self.ctx.store.get_release(&id).await?;
        Ok(Response::new(pb::GetReleaseResponse {
            release: Some(release_out(r)),
        }))
    }

    async fn list_releases(
        &self,
        request: Request<pb::ListReleasesRequest>,
    ) -> Result<Response<pb::ListReleasesResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let status = match enum_in::<pb::ReleaseStatus>(&mut v, "status", req.status) {
            Some(pb::ReleaseStatus::Unspecified) | None => None,
            Some(s) => s
                .as_str_name()
                .strip_prefix("RELEASE_STATUS_")
                .and_then(|s| s.parse::<ReleaseStatus>().ok()),
        };
        check(v)?;
        let page = PageRequest::parse("releases", req.page_size, &req.page_token)?;
        let page = self
            .ctx
            .store
            .list_releases(&req.product, &req.flow, status, &page)
            .await?;
        Ok(Response::new(pb::ListReleasesResponse {
            releases: page.items.into_iter().map(release_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn terminate_release(
        &self,
        request: Request<pb::TerminateReleaseRequest>,
    ) -> Result<Response<pb::TerminateReleaseResponse>, Status> {
        let req = request.into_inner();
        require_release_id(&req.release_id)?;
        check_text("reason", &req.reason)?;
        let r = self
            .ctx
            .engine
            .terminate(&req.release_id, &req.reason)
            .await?;
        Ok(Response::new(pb::TerminateReleaseResponse {
            release: Some(release_out(r)),
        }))
    }

    async fn retry_release(
        &self,
        request: Request<pb::RetryReleaseRequest>,
    ) -> Result<Response<pb::RetryReleaseResponse>, Status> {
        let id = request.into_inner().release_id;
        require_release_id(&id)?;
        let r = self.ctx.engine.retry(&id).await?;
        Ok(Response::new(pb::RetryReleaseResponse {
            release: Some(release_out(r)),
        }))
    }

    async fn approve_environment(
        &self,
        request: Request<pb::ApproveEnvironmentRequest>,
    ) -> Result<Response<pb::ApproveEnvironmentResponse>, Status> {
        let req = request.into_inner();
        require_release_id(&req.release_id)?;
        check_text("comment", &req.comment)?;
        let r = self
            .ctx
            .engine
            .approve(&req.release_id, &req.environment, req.approve, &req.comment)
            .await?;
        Ok(Response::new(pb::ApproveEnvironmentResponse {
            release: Some(release_out(r)),
        }))
    }

    type WatchReleaseStream = EventStream<pb::WatchReleaseResponse>;

    async fn watch_release(
        &self,
        request: Request<pb::WatchReleaseRequest>,
    ) -> Result<Response<Self::WatchReleaseStream>, Status> {
        let req = request.into_inner();
        require_release_id(&req.release_id)?;
        if req.after_seq < 0 {
            return Err(Error::invalid_field("after_seq", "must not be negative").into());
        }
        let id = req.release_id;
        let items = self
            .ctx
            .engine
            .watch_release(&id, req.after_seq, self.ctx.config.heartbeat_interval)
            .await?;
        let stream = items.map(move |item| {
            let event = match item? {
                ReleaseItem::Snapshot(r) => pb::ReleaseEvent {
                    release_id: r.id.clone(),
                    seq: r.last_seq,
                    time: timestamp(Some(chrono::Utc::now())),
                    change: Some(PbChange::Snapshot(release_out(*r))),
                },
                ReleaseItem::Event(e) => event_out(Arc::unwrap_or_clone(e)),
                ReleaseItem::Heartbeat(seq) => heartbeat(&id, seq),
            };
            Ok(pb::WatchReleaseResponse { event: Some(event) })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type WatchReleasesStream = EventStream<pb::WatchReleasesResponse>;

    async fn watch_releases(
        &self,
        request: Request<pb::WatchReleasesRequest>,
    ) -> Result<Response<Self::WatchReleasesStream>, Status> {
        let req = request.into_inner();
        let after = if req.after_cursor.is_empty() {
            None
        } else {
            Some(decode_cursor(&req.after_cursor)?)
        };
        let items = self
            .ctx
            .engine
            .watch_releases(
                req.product,
                req.flow,
                after,
                self.ctx.config.heartbeat_interval,
            )
            .await?;
        let stream = items.map(|item| {
            Ok(match item? {
                FeedItem::Event(e) => pb::WatchReleasesResponse {
                    cursor: encode_cursor(e.position),
                    event: Some(event_out(*e)),
                },
                FeedItem::Heartbeat { position } => {
                    let mut hb = heartbeat("", 0);
                    hb.seq = 0;
                    pb::WatchReleasesResponse {
                        event: Some(hb),
                        cursor: encode_cursor(position),
                    }
                }
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
