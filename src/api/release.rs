//! `ReleaseService`: triggers, reads, commands and the two status streams.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::convert::release::{
    decode_cursor, encode_cursor, event_out, heartbeat, release_out, status_filter_in,
};
use super::{
    Ctx, check, check_optional_name, check_release_id, check_text_field, enum_in, timestamp,
};
use crate::domain::Violations;
use crate::engine::TriggerRequest;
use crate::engine::hub::Tail;
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::release_event::Change as PbChange;
use crate::proto::v1::release_service_server::ReleaseService;
use crate::store::PageRequest;

/// Events read from the store per query while a stream catches up.
const CATCH_UP_BATCH: u64 = 500;

pub struct ReleaseApi {
    ctx: Ctx,
}

impl ReleaseApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// What a stream waits for between reads.
enum Wake {
    Changed,
    Heartbeat,
    Shutdown,
}

/// Waits for the doorbell, the heartbeat interval or shutdown.
async fn wait<T>(
    rx: &mut tokio::sync::watch::Receiver<T>,
    interval: Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Wake {
    tokio::select! {
        r = rx.changed() => match r {
            Ok(()) => Wake::Changed,
            Err(_) => Wake::Shutdown,
        },
        _ = tokio::time::sleep(interval) => Wake::Heartbeat,
        _ = shutdown.cancelled() => Wake::Shutdown,
    }
}

fn shutting_down() -> Status {
    Status::unavailable(
        "the server is shutting down; resume from the last seq or cursor you received",
    )
}

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
            crate::domain::check_text(&mut v, field, value);
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
        let req = request.into_inner();
        check_release_id("release_id", &req.release_id)?;
        check_text_field("reason", &req.reason)?;
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
        check_release_id("release_id", &id)?;
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
        check_release_id("release_id", &req.release_id)?;
        let mut v = Violations::new();
        // Empty decides a release-level hook; otherwise an environment name.
        check_optional_name(&mut v, "environment", &req.environment);
        crate::domain::check_text(&mut v, "comment", &req.comment);
        check(v)?;
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
        check_release_id("release_id", &req.release_id)?;
        if req.after_seq < 0 {
            return Err(Error::invalid_field("after_seq", "must not be negative").into());
        }
        let store = self.ctx.store.clone();
        let hub_rx = self.ctx.engine.hub().watch_release(&req.release_id);
        let shutdown = self.ctx.engine.shutdown_token();
        let interval = self.ctx.config.heartbeat_interval;
        let id = req.release_id.clone();
        // Subscribed before reading, so no commit after the read is missed.
        let mut first = Vec::new();
        let (cursor, done) = if req.after_seq == 0 {
            let snap = store.release_snapshot(&id).await?;
            let seq = snap.last_seq;
            let done = snap.status.is_final();
            first.push(pb::ReleaseEvent {
                release_id: id.clone(),
                seq,
                time: timestamp(Some(chrono::Utc::now())),
                change: Some(PbChange::Snapshot(release_out(snap))),
            });
            (seq, done)
        } else {
            let r = store.get_release(&id).await?;
            if req.after_seq > r.last_seq {
                return Err(Error::OutOfRange(format!(
                    "after_seq {} is beyond the last event of release {id} ({}); resume from at most {}",
                    req.after_seq, r.last_seq, r.last_seq
                ))
                .into());
            }
            // A final release with nothing after `after_seq` ends the
            // stream at once instead of idling on heartbeats forever.
            (
                req.after_seq,
                r.status.is_final() && req.after_seq == r.last_seq,
            )
        };
        struct State {
            store: crate::store::Store,
            rx: tokio::sync::watch::Receiver<Tail>,
            shutdown: tokio_util::sync::CancellationToken,
            interval: Duration,
            id: String,
            cursor: i64,
            buffer: std::collections::VecDeque<pb::ReleaseEvent>,
            /// Read the store before trusting the doorbell's tail: at the
            /// start (what committed between the snapshot and subscribing)
            /// and after a hole in the tail.
            from_store: bool,
            done: bool,
            finished: bool,
        }
        let state = State {
            store,
            rx: hub_rx,
            shutdown,
            interval,
            id,
            cursor,
            buffer: first.into(),
            from_store: true,
            done,
            finished: false,
        };
        let stream = futures::stream::unfold(state, |mut s| async move {
            loop {
                if s.finished {
                    return None;
                }
                if let Some(e) = s.buffer.pop_front() {
                    if s.buffer.is_empty() && s.done {
                        s.finished = true;
                    }
                    return Some((Ok(pb::WatchReleaseResponse { event: Some(e) }), s));
                }
                if s.done {
                    return None;
                }
                let tail = s.rx.borrow_and_update().clone();
                if s.from_store || tail.latest > s.cursor {
                    // The committed events themselves, from the doorbell when
                    // it holds them all, else from the store (the truth).
                    let events = match tail.after(s.cursor).filter(|_| !s.from_store) {
                        Some(events) if !events.is_empty() => events,
                        _ => match s.store.events_after(&s.id, s.cursor, CATCH_UP_BATCH).await {
                            Ok(events) => events.into_iter().map(Arc::new).collect(),
                            Err(e) => {
                                s.finished = true;
                                return Some((Err(Status::from(e)), s));
                            }
                        },
                    };
                    s.from_store = false;
                    if !events.is_empty() {
                        for e in events {
                            s.cursor = e.seq;
                            let last = e.body.is_final();
                            s.buffer.push_back(event_out(Arc::unwrap_or_clone(e)));
                            if last {
                                s.done = true;
                                break;
                            }
                        }
                        continue;
                    }
                }
                match wait(&mut s.rx, s.interval, &s.shutdown).await {
                    Wake::Changed => {}
                    Wake::Heartbeat => {
                        let hb = heartbeat(&s.id, s.cursor);
                        return Some((Ok(pb::WatchReleaseResponse { event: Some(hb) }), s));
                    }
                    Wake::Shutdown => {
                        s.finished = true;
                        return Some((Err(shutting_down()), s));
                    }
                }
            }
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
        let store = self.ctx.store.clone();
        let rx = self.ctx.engine.hub().watch_all();
        let latest = store.latest_position().await?;
        let cursor = if req.after_cursor.is_empty() {
            latest
        } else {
            let c = decode_cursor(&req.after_cursor)?;
            if c > latest {
                return Err(Error::OutOfRange(format!(
                    "the cursor is beyond the last event ({latest}); resume from a cursor this server returned"
                ))
                .into());
            }
            c
        };
        struct State {
            store: crate::store::Store,
            rx: tokio::sync::watch::Receiver<i64>,
            shutdown: tokio_util::sync::CancellationToken,
            interval: Duration,
            product: String,
            flow: String,
            cursor: i64,
            buffer: std::collections::VecDeque<pb::WatchReleasesResponse>,
            finished: bool,
        }
        let state = State {
            store,
            rx,
            shutdown: self.ctx.engine.shutdown_token(),
            interval: self.ctx.config.heartbeat_interval,
            product: req.product,
            flow: req.flow,
            cursor,
            buffer: Default::default(),
            finished: false,
        };
        let stream = futures::stream::unfold(state, |mut s| async move {
            loop {
                if s.finished {
                    return None;
                }
                if let Some(e) = s.buffer.pop_front() {
                    return Some((Ok(e), s));
                }
                // Everything up to the clock's committed position is visible
                // (positions are handed out under a lock held to commit), so
                // the cursor may move to it even past filtered-out events.
                let upto = match s.store.latest_position().await {
                    Ok(p) => p,
                    Err(e) => {
                        s.finished = true;
                        return Some((Err(Status::from(e)), s));
                    }
                };
                if upto > s.cursor {
                    match s
                        .store
                        .events_between(s.cursor, upto, &s.product, &s.flow, CATCH_UP_BATCH)
                        .await
                    {
                        Err(e) => {
                            s.finished = true;
                            return Some((Err(Status::from(e)), s));
                        }
                        Ok(events) => {
                            let full = events.len() as u64 == CATCH_UP_BATCH;
                            for e in events {
                                s.cursor = e.position;
                                let cursor = encode_cursor(e.position);
                                s.buffer.push_back(pb::WatchReleasesResponse {
                                    event: Some(event_out(e)),
                                    cursor,
                                });
                            }
                            if !full {
                                s.cursor = upto;
                            }
                            continue;
                        }
                    }
                }
                match wait(&mut s.rx, s.interval, &s.shutdown).await {
                    Wake::Changed => {}
                    Wake::Heartbeat => {
                        let mut hb = heartbeat("", 0);
                        hb.seq = 0;
                        return Some((
                            Ok(pb::WatchReleasesResponse {
                                event: Some(hb),
                                cursor: encode_cursor(s.cursor),
                            }),
                            s,
                        ));
                    }
                    Wake::Shutdown => {
                        s.finished = true;
                        return Some((Err(shutting_down()), s));
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
