//! `ReleaseService`: triggers, reads, commands and the two status streams.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::access::require;
use super::convert::release::{
    decode_cursor, encode_cursor, event_out, heartbeat, release_out, status_filter_in,
};
use super::principal_of;
use super::{
    Ctx, check, check_optional_name, check_release_id, check_text_field, enum_in, timestamp,
};
use crate::domain::Violations;
use crate::domain::access::{Permission, Principal, Scope};
use crate::domain::release::Release;
use crate::engine::TriggerRequest;
use crate::engine::stream::{FeedItem, ReleaseItem};
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::release_event::Change as PbChange;
use crate::proto::v1::release_service_server::ReleaseService;
use crate::store::PageRequest;
use crate::store::audit;

pub struct ReleaseApi {
    ctx: Ctx,
}

impl ReleaseApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

/// The check of `p` on a release, run by the engine on the release it
/// loads for the change: on `environment` when one is named (an approval),
/// else on every environment the release promotes into (its release-level
/// hooks, a retry, a termination, which stop or restart promotions to all
/// of them). The audit row names the release.
fn on_release<'a>(
    principal: &'a Principal,
    p: Permission,
    environment: &'a str,
) -> impl Fn(&Release) -> Result<(), Error> + Sync + 'a {
    move |r| {
        audit::describe(format!("release/{}", r.id), &r.flow, environment);
        let scope = if environment.is_empty() {
            // envs[0] is the trigger environment (`Release::new`).
            Scope::environments(
                &r.flow,
                r.envs.iter().skip(1).map(|e| e.environment.as_str()),
            )
        } else {
            Scope::environments(&r.flow, [environment])
        };
        require(principal, p, &scope)
    }
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ReleaseService for ReleaseApi {
    async fn trigger_release(
        &self,
        request: Request<pb::TriggerReleaseRequest>,
    ) -> Result<Response<pb::TriggerReleaseResponse>, Status> {
        let principal = principal_of(&request);
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
            crate::domain::check_text(&mut v, field, value);
        }
        crate::domain::gitops::check_commit_id(&mut v, "source_commit", &req.source_commit);
        check(v)?;
        // Triggering needs the permission on the flow and on every
        // environment the release promotes into (not the trigger
        // environment, where the version already runs).
        audit::describe(format!("flow/{}", req.flow), &req.flow, "");
        let flow = self.ctx.store.get_flow(&req.flow, 0).await?;
        let into = flow.spec.steps.iter().map(|s| s.environment.as_str());
        require(
            &principal,
            Permission::ReleasesTrigger,
            &Scope::environments(&req.flow, into),
        )?;
        let r = self
            .ctx
            .engine
            .trigger(
                TriggerRequest {
                    flow: req.flow,
                    product: req.product,
                    version: req.version,
                    request_id: req.request_id,
                    initiator: req.initiator,
                    message: req.message,
                    source_commit: req.source_commit,
                    observed: false,
                    actor: principal.id.clone(),
                },
                &flow,
            )
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
        check_release_id("release_id", &id)?;
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
        let status =
            enum_in::<pb::ReleaseStatus>(&mut v, "status", req.status).and_then(status_filter_in);
        check_optional_name(&mut v, "product", &req.product);
        check_optional_name(&mut v, "flow", &req.flow);
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
        let principal = principal_of(&request);
        let req = request.into_inner();
        check_release_id("release_id", &req.release_id)?;
        check_text_field("reason", &req.reason)?;
        let authorize = on_release(&principal, Permission::ReleasesTerminate, "");
        let r = self
            .ctx
            .engine
            .terminate(&req.release_id, &req.reason, &principal.id, authorize)
            .await?;
        Ok(Response::new(pb::TerminateReleaseResponse {
            release: Some(release_out(r)),
        }))
    }

    async fn retry_release(
        &self,
        request: Request<pb::RetryReleaseRequest>,
    ) -> Result<Response<pb::RetryReleaseResponse>, Status> {
        let principal = principal_of(&request);
        let id = request.into_inner().release_id;
        check_release_id("release_id", &id)?;
        let authorize = on_release(&principal, Permission::ReleasesRetry, "");
        let r = self.ctx.engine.retry(&id, authorize).await?;
        // A retry keeps the pinned flow version: say so when it is not the
        // latest, so nobody expects a flow edit to apply. A failed lookup
        // only loses the note; the retry itself happened.
        let note = match self.ctx.store.latest_flow_version(&r.flow).await {
            Ok(Some(latest)) if latest > r.flow_version => format!(
                "re-runs flow version {}; version {latest} exists: trigger a new release to use it",
                r.flow_version
            ),
            Ok(None) => format!(
                "re-runs flow version {} of {}, which was deleted since",
                r.flow_version, r.flow
            ),
            _ => String::new(),
        };
        Ok(Response::new(pb::RetryReleaseResponse {
            release: Some(release_out(r)),
            note,
        }))
    }

    async fn approve_environment(
        &self,
        request: Request<pb::ApproveEnvironmentRequest>,
    ) -> Result<Response<pb::ApproveEnvironmentResponse>, Status> {
        let principal = principal_of(&request);
        let req = request.into_inner();
        check_release_id("release_id", &req.release_id)?;
        let mut v = Violations::new();
        // Empty decides a release-level hook; otherwise an environment name.
        check_optional_name(&mut v, "environment", &req.environment);
        crate::domain::check_text(&mut v, "comment", &req.comment);
        check(v)?;
        let authorize = on_release(&principal, Permission::ReleasesApprove, &req.environment);
        let r = self
            .ctx
            .engine
            .approve(
                &req.release_id,
                &req.environment,
                req.approve,
                &req.comment,
                &principal.id,
                authorize,
            )
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
        check_release_id("release_id", &req.release_id)?;
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
            Ok(match item? {
                ReleaseItem::Snapshot(r) => pb::WatchReleaseResponse::new(pb::ReleaseEvent {
                    release_id: r.id.clone(),
                    seq: r.last_seq,
                    time: timestamp(Some(chrono::Utc::now())),
                    change: Some(PbChange::Snapshot(release_out(*r))),
                }),
                // Converted and encoded by the first stream that sends it;
                // the release's other streams send the same bytes.
                ReleaseItem::Event(e) => pb::WatchReleaseResponse::encoded(e.wire(|stored| {
                    pb::WatchReleaseResponse::encode_event(&event_out(stored.clone()))
                })),
                ReleaseItem::Heartbeat(seq) => pb::WatchReleaseResponse::new(heartbeat(&id, seq)),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type WatchReleasesStream = EventStream<pb::WatchReleasesResponse>;

    async fn watch_releases(
        &self,
        request: Request<pb::WatchReleasesRequest>,
    ) -> Result<Response<Self::WatchReleasesStream>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        check_optional_name(&mut v, "product", &req.product);
        check_optional_name(&mut v, "flow", &req.flow);
        check(v)?;
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
