//! The release engine: one worker task per active release, which advances
//! the release's state machine, runs its steps, and writes every transition
//! with its event before anyone hears of it.
//!
//! - Scheduling: a worker starts every environment whose dependencies all
//!   succeeded; parallel branches run as concurrent step tasks, bounded
//!   globally by a semaphore (`--max-parallel-environments`).
//! - Durability: a step is marked `RUNNING` (with its start time) before its
//!   task starts, and its outcome is written when it ends. After a crash the
//!   worker finds it still `RUNNING` and runs it again with the same
//!   idempotency key; waits resume from their recorded start.
//! - Commands (terminate, approve, retry) are state changes written by the
//!   API through the same conditional persistence; the worker is poked and
//!   reloads.

pub mod hub;
mod replica;
pub mod workflows;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::domain::catalog::{Application, Commit, WorkflowKind};
use crate::domain::flow::Action;
use crate::domain::release::{Outcome, Release, StepRef};
use crate::domain::status::{ReleaseStatus, StepKind};
use crate::error::{Error, Result};
use crate::store::releases::{Created, SideEffect, StoredEvent, idempotency_key};
use crate::store::{Store, now};
use hub::{Hub, Pokes};
use workflows::{StepContext, StepResult};

/// How often a write that lost a race is retried before giving up.
const MAX_CONFLICT_RETRIES: usize = 20;

/// How a command on a release is written.
#[derive(Clone, Copy)]
enum Persist {
    Plain,
    /// Only if no other release of the product is active (checked in the
    /// write's own transaction).
    SoleActive,
}

/// A request to start a release, already validated by the API.
#[derive(Debug, Clone)]
pub struct TriggerRequest {
    pub flow: String,
    pub product: String,
    pub version: String,
    pub request_id: String,
    pub initiator: String,
    pub message: String,
}

/// Handle to the engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    hub: Hub,
    pokes: Pokes,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
    allow_commands: bool,
    /// This replica's id: the owner written into the leases it takes.
    replica_id: String,
    lease_ttl: chrono::Duration,
    catch_up: Duration,
    shutdown: CancellationToken,
    workers: tokio_util::task::TaskTracker,
}

impl Engine {
    pub fn new(store: Store, config: &ServerConfig) -> Self {
        let backend = store.backend();
        Self {
            inner: Arc::new(Inner {
                store,
                hub: Hub::new(),
                pokes: Pokes::default(),
                http: reqwest::Client::builder()
                    .user_agent(concat!("promoflow/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .unwrap_or_default(),
                permits: Arc::new(Semaphore::new(config.max_parallel_environments.max(1))),
                allow_commands: config.allow_command_workflows,
                // SQLite has one replica: a fixed id lets a restarted
                // server take its releases back at once. PostgreSQL
                // replicas get a fresh id each start unless one is given.
                replica_id: config.replica_id.clone().unwrap_or_else(|| {
                    if backend == sea_orm::DbBackend::Sqlite {
                        "local".to_string()
                    } else {
                        uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
                    }
                }),
                lease_ttl: chrono::Duration::from_std(config.lease_duration)
                    .unwrap_or_else(|_| chrono::Duration::seconds(15)),
                catch_up: config.catch_up_interval,
                shutdown: CancellationToken::new(),
                workers: tokio_util::task::TaskTracker::new(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// This replica's id (in leases and logs).
    pub fn replica_id(&self) -> &str {
        &self.inner.replica_id
    }

    /// How many releases this replica drives now (a worker runs only while
    /// it holds its release's lease).
    pub fn leases_held(&self) -> usize {
        self.inner.pokes.len()
    }

    /// Cancelled when the server shuts down: streams end with `UNAVAILABLE`.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    /// Resumes every release left unfinished (after a restart or crash) and
    /// starts queued releases whose turn has come.
    pub async fn recover(&self) -> Result<()> {
        tracing::info!(replica = %self.inner.replica_id, "engine starting");
        replica::spawn(self.clone());
        let ids = self.inner.store.orphaned_releases(10_000).await?;
        if !ids.is_empty() {
            tracing::info!(count = ids.len(), "resuming unfinished releases");
        }
        for id in ids {
            self.ensure_worker(&id);
        }
        for product in self.inner.store.products_with_queue().await? {
            self.promote(&product).await;
        }
        Ok(())
    }

    /// Stops workers (their steps are cancelled and will be re-run by the
    /// next start, as after a crash) and ends streams.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.workers.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.workers.wait()).await;
    }

    fn publish(&self, events: &[StoredEvent]) {
        self.inner.hub.publish(events);
    }

    /// Starts a worker for `id` unless one runs already.
    fn ensure_worker(&self, id: &str) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        if let Some(notify) = self.inner.pokes.register(id) {
            let engine = self.clone();
            let id = id.to_string();
            self.inner.workers.spawn(async move {
                engine.work(&id, notify).await;
                engine.inner.pokes.unregister(&id);
            });
        } else {
            self.inner.pokes.poke(id);
        }
    }

    /// Starts the next queued release of `product`, if its turn has come.
    async fn promote(&self, product: &str) {
        match self.inner.store.promote_queued(product).await {
            Ok(Some((r, events))) => {
                self.publish(&events);
                self.ensure_worker(&r.id);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(product, error = %e, "promoting a queued release failed"),
        }
    }

    /// Records a deployment and, when one of the product's promotion flows
    /// starts in that environment and its selectors match the commit,
    /// triggers a release of it (the first match wins). A repeated
    /// `request_id` returns the first answer and changes nothing.
    pub async fn report_deployment(
        &self,
        product: &str,
        environment: &str,
        version: &str,
        commit: Option<&Commit>,
        request_id: &str,
    ) -> Result<(Application, Option<Release>)> {
        let store = &self.inner.store;
        if request_id.is_empty() {
            return self
                .report_once(product, environment, version, commit)
                .await;
        }
        let hash = serde_json::json!([product, environment, version, commit]).to_string();
        if let Some((app, release_id)) = store.claim_report(request_id, &hash).await? {
            let app: Application = serde_json::from_str(&app)
                .map_err(|e| Error::Internal(format!("stored report answer: {e}")))?;
            let release = match release_id {
                Some(id) => Some(store.get_release(&id).await?),
                None => None,
            };
            return Ok((app, release));
        }
        match self
            .report_once(product, environment, version, commit)
            .await
        {
            Ok((app, release)) => {
                let answer = serde_json::to_string(&app)
                    .map_err(|e| Error::Internal(format!("encoding report answer: {e}")))?;
                store
                    .finish_report(request_id, &answer, release.as_ref().map(|r| r.id.as_str()))
                    .await?;
                Ok((app, release))
            }
            Err(e) => {
                store.release_report_claim(request_id).await?;
                Err(e)
            }
        }
    }

    async fn report_once(
        &self,
        product: &str,
        environment: &str,
        version: &str,
        commit: Option<&Commit>,
    ) -> Result<(Application, Option<Release>)> {
        let store = &self.inner.store;
        let p = store.get_product(product).await?;
        let previous = p
            .application(environment)
            .map(|a| a.version.clone())
            .unwrap_or_default();
        let empty = Commit::default();
        let c = commit.unwrap_or(&empty);
        let mut chosen = None;
        if previous != version {
            for pf in &p.promotion_flows {
                let Ok(flow) = store.get_flow(&pf.flow, 0).await else {
                    continue;
                };
                if flow.spec.trigger_environment == environment && pf.matches(c) {
                    chosen = Some(pf.flow.clone());
                    break;
                }
            }
        }
        // Records (or explains why it cannot: unknown environment, no
        // application there).
        let app = store
            .record_deployment(product, environment, version, commit)
            .await?;
        let Some(flow) = chosen else {
            return Ok((app, None));
        };
        let release = self
            .trigger(TriggerRequest {
                flow,
                product: product.to_string(),
                version: version.to_string(),
                request_id: String::new(),
                initiator: "report-deployment".into(),
                message: c.message.clone(),
            })
            .await?;
        Ok((app, Some(release)))
    }

    /// Creates a release of `flow` for `product` (see `TriggerRelease`).
    pub async fn trigger(&self, req: TriggerRequest) -> Result<Release> {
        let store = &self.inner.store;
        let flow = store.get_flow(&req.flow, 0).await.map_err(|e| match e {
            Error::NotFound(m) => Error::FailedPrecondition(m),
            e => e,
        })?;
        let product = store.get_product(&req.product).await.map_err(|e| match e {
            Error::NotFound(m) => Error::FailedPrecondition(m),
            e => e,
        })?;
        let missing: Vec<&str> = flow
            .spec
            .nodes()
            .filter(|env| product.application(env).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "product {:?} has no application in environment{} {} of flow {:?}: add them to the product first",
                product.name,
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                flow.spec.name
            )));
        }
        let version = if req.version.is_empty() {
            let app = product
                .application(&flow.spec.trigger_environment)
                .map(|a| a.version.clone())
                .unwrap_or_default();
            if app.is_empty() {
                return Err(Error::FailedPrecondition(format!(
                    "no version given and none is recorded for {:?} in the trigger environment {:?}: pass a version or report a deployment first",
                    product.name, flow.spec.trigger_environment
                )));
            }
            app
        } else {
            req.version.clone()
        };
        let id = uuid::Uuid::now_v7().to_string();
        let app_name = |env: &str| {
            product
                .application(env)
                .map(|a| a.name.clone())
                .unwrap_or_default()
        };
        let mut r = Release::new(
            id,
            &flow.spec,
            flow.version,
            &product.name,
            &version,
            &app_name,
            now(),
        );
        r.initiator = req.initiator.clone();
        r.trigger_message = req.message.clone();
        r.request_id = (!req.request_id.is_empty()).then(|| req.request_id.clone());
        // The idempotency hash covers what the caller asked for, not what
        // was derived from it. JSON keeps the fields apart without NUL
        // separators, which PostgreSQL text cannot store.
        let hash = serde_json::json!([
            req.flow,
            req.product,
            req.version,
            req.initiator,
            req.message
        ])
        .to_string();
        let request = r.request_id.clone().map(|key| (key, hash));
        // Superseding or dropping from the queue writes other releases,
        // whose workers may commit in between (ABORTED): the transaction
        // rolled back entirely, so try again.
        let mut conflicts = 0;
        let created = loop {
            match store
                .create_release(
                    r.clone(),
                    request.as_ref().map(|(k, h)| (k.as_str(), h.as_str())),
                    product.concurrency,
                )
                .await
            {
                Err(Error::Aborted(_)) if conflicts < MAX_CONFLICT_RETRIES => conflicts += 1,
                other => break other?,
            }
        };
        match created {
            Created::Existing(id) => store.get_release(&id).await,
            Created::New {
                release,
                events,
                terminating,
            } => {
                self.publish(&events);
                for id in &terminating {
                    self.ensure_worker(id);
                }
                if release.status == ReleaseStatus::Running {
                    self.ensure_worker(&release.id);
                }
                Ok(*release)
            }
        }
    }

    /// Applies `change` to the freshly loaded release and persists it,
    /// retrying when another writer got there first. `change` returns
    /// `Ok(None)` when there is nothing to do.
    async fn command<F>(&self, id: &str, change: F) -> Result<Release>
    where
        F: FnMut(&mut Release) -> Result<Option<Vec<crate::domain::release::Change>>>,
    {
        self.command_in(id, Persist::Plain, change).await
    }

    async fn command_in<F>(&self, id: &str, how: Persist, mut change: F) -> Result<Release>
    where
        F: FnMut(&mut Release) -> Result<Option<Vec<crate::domain::release::Change>>>,
    {
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut r = self.inner.store.get_release(id).await?;
            let seq = r.last_seq;
            let before = r.counters();
            let Some(mut changes) = change(&mut r)? else {
                return Ok(r);
            };
            r.announce_counters(before, &mut changes);
            let store = &self.inner.store;
            let persisted = match how {
                Persist::Plain => store.persist(&mut r, &changes, seq, &[], None).await,
                Persist::SoleActive => store.persist_sole_active(&mut r, &changes, seq).await,
            };
            match persisted {
                Ok(events) => {
                    self.publish(&events);
                    return Ok(r);
                }
                Err(Error::Aborted(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable(format!(
            "release {id} is changing too fast to apply the request; retry"
        )))
    }

    pub async fn terminate(&self, id: &str, reason: &str) -> Result<Release> {
        let reason = if reason.is_empty() {
            "terminated on request"
        } else {
            reason
        };
        let r = self
            .command(id, |r| {
                if r.status.is_final() {
                    return Err(Error::FailedPrecondition(format!(
                        "release {} is already {}; nothing to terminate",
                        r.id,
                        r.status.as_str()
                    )));
                }
                if r.status == ReleaseStatus::Terminating {
                    return Ok(None);
                }
                let mut ch = r.request_terminate(reason);
                if r.start_time.is_none() {
                    // Queued: nothing runs, terminate at once.
                    ch.extend(r.finish_terminate(now()));
                }
                Ok(Some(ch))
            })
            .await?;
        if r.status == ReleaseStatus::Terminating {
            self.ensure_worker(id);
        } else if r.status.is_final() {
            self.promote(&r.product).await;
        }
        Ok(r)
    }

    pub async fn retry(&self, id: &str) -> Result<Release> {
        // Another release of the product that is not final would race this
        // one for the same applications (and, under QUEUE, run out of turn):
        // the store refuses the retry then, in the transaction that writes it.
        let r = self
            .command_in(id, Persist::SoleActive, |r| match r.retry(now()) {
                Some(ch) => Ok(Some(ch)),
                None => Err(Error::FailedPrecondition(format!(
                    "release {} is {}; only FAILED or TERMINATED releases can be retried",
                    r.id,
                    r.status.as_str()
                ))),
            })
            .await?;
        self.ensure_worker(id);
        Ok(r)
    }

    pub async fn approve(
        &self,
        id: &str,
        environment: &str,
        approve: bool,
        comment: &str,
    ) -> Result<Release> {
        let r = self
            .command(id, |r| {
                let e = r.env_index(environment).ok_or_else(|| {
                    Error::NotFound(format!(
                        "release {} has no environment {environment:?}",
                        r.id
                    ))
                })?;
                r.decide_approval(e, approve, comment, now())
                    .map(Some)
                    .ok_or_else(|| {
                        Error::FailedPrecondition(format!(
                            "environment {environment:?} of release {} is {} and not waiting for approval",
                            r.id,
                            r.envs[e].status.as_str()
                        ))
                    })
            })
            .await?;
        self.ensure_worker(id);
        Ok(r)
    }

    /// The worker of one release: advance, persist, run steps, wait, repeat
    /// until the release is final (or queued, or the server stops).
    async fn work(&self, id: &str, notify: Arc<tokio::sync::Notify>) {
        let store = &self.inner.store;
        let ttl = self.inner.lease_ttl;
        let fence = match store.claim_release(id, &self.inner.replica_id, ttl).await {
            Ok(Some(f)) => f,
            Ok(None) => return, // another replica drives it, or nothing to do
            Err(e) => {
                tracing::warn!(release = id, error = %e, "claiming release failed");
                return;
            }
        };
        tracing::debug!(release = id, epoch = fence.epoch, "lease taken");
        let mut lost = false;
        let renew_every =
            (ttl.to_std().unwrap_or(Duration::from_secs(15)) / 3).max(Duration::from_millis(50));
        let mut renew = tokio::time::interval(renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(StepRef, i32, StepResult)>();
        let mut tasks: HashMap<StepRef, (i32, JoinHandle<()>)> = HashMap::new();
        let mut pending: Vec<(StepRef, i32, StepResult)> = Vec::new();
        let mut failures = 0u32;
        let mut product = String::new();
        let mut cached: Option<Release> = None;
        let finished = loop {
            if self.inner.shutdown.is_cancelled() {
                break false;
            }
            // The release as this worker last wrote it: after a successful
            // write the store holds exactly `r`, so it is reloaded only when
            // someone else may have changed it (a poke from an API command,
            // a conflict, an error). Reloading on every transition was a
            // third of a release's queries.
            let mut r = match cached.take() {
                Some(r) => r,
                None => match store.get_release(id).await {
                    Ok(r) => r,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(release = id, error = %e, "loading release failed");
                        if failures > 100 {
                            break false;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                },
            };
            product = r.product.clone();
            if r.status.is_final() || r.status == ReleaseStatus::Queued {
                break r.status.is_final();
            }
            // One transition: outcomes that arrived, then everything that
            // follows from them, in one transaction.
            let seq = r.last_seq;
            let before = r.counters();
            let t = now();
            let mut changes = Vec::new();
            let mut effects = Vec::new();
            for (at, attempt, result) in &pending {
                if r.step(*at).map(|s| s.attempt) != Some(*attempt) {
                    continue; // a result from before a retry
                }
                match result {
                    StepResult::Done(outcome) => {
                        let ch = r.complete_step(*at, outcome.clone(), t);
                        if !ch.is_empty()
                            && matches!(outcome, Outcome::Succeeded { .. })
                            && r.step(*at).map(|s| s.kind) == Some(StepKind::Action)
                            && let Some(e) = at.env
                        {
                            effects.push(SideEffect::RecordVersion {
                                environment: r.envs[e].environment.clone(),
                            });
                        }
                        changes.extend(ch);
                    }
                    StepResult::Suspend(deadline) => changes.extend(r.suspend_step(*at, *deadline)),
                }
            }
            if r.status == ReleaseStatus::Terminating {
                for (_, (_, h)) in tasks.drain() {
                    h.abort();
                }
                changes.extend(r.finish_terminate(t));
            } else {
                changes.extend(r.advance(t).0);
            }
            r.announce_counters(before, &mut changes);
            changes.sort();
            changes.dedup();
            match store
                .persist(&mut r, &changes, seq, &effects, Some(&fence))
                .await
            {
                Ok(events) => {
                    pending.clear();
                    self.publish(&events);
                    failures = 0;
                }
                Err(Error::Aborted(_)) => {
                    // Someone else wrote (reload), or the lease is gone: a
                    // replica that lost it must not touch the release again.
                    if !matches!(store.renew_lease(id, &fence, ttl).await, Ok(true)) {
                        tracing::warn!(
                            release = id,
                            "lease lost; another replica drives the release"
                        );
                        lost = true;
                        break false;
                    }
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(release = id, error = %e, "persisting release failed");
                    tokio::time::sleep(Duration::from_millis(200 * failures.min(25) as u64)).await;
                    continue;
                }
            }
            if r.status.is_final() {
                break true;
            }
            if r.status == ReleaseStatus::Terminating {
                cached = Some(r);
                continue;
            }
            // Tasks for running steps; cancel tasks whose step moved on.
            let running = r.running_steps();
            tasks.retain(|at, (attempt, h)| {
                let keep = running.contains(at) && r.step(*at).map(|s| s.attempt) == Some(*attempt);
                if !keep {
                    h.abort();
                }
                keep
            });
            for at in running {
                if tasks.contains_key(&at) {
                    continue;
                }
                let attempt = r.step(at).map(|s| s.attempt).unwrap_or(1);
                let handle = self.spawn_step(&r, at, done_tx.clone());
                tasks.insert(at, (attempt, handle));
            }
            let deadline = r.next_deadline();
            cached = Some(r);
            let sleep = async {
                match deadline {
                    Some(d) => {
                        let left = (d - now()).to_std().unwrap_or(Duration::ZERO);
                        tokio::time::sleep(left + Duration::from_millis(5)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some((at, attempt, result)) = done_rx.recv() => {
                    tasks.remove(&at);
                    pending.push((at, attempt, result));
                    // Take every other result that is ready: one transaction.
                    while let Ok((at, attempt, result)) = done_rx.try_recv() {
                        tasks.remove(&at);
                        pending.push((at, attempt, result));
                    }
                }
                // An API command changed the release: reload it.
                _ = notify.notified() => cached = None,
                _ = sleep => {}
                _ = renew.tick() => {
                    if !matches!(store.renew_lease(id, &fence, ttl).await, Ok(true)) {
                        tracing::warn!(release = id, "lease lost; another replica drives the release");
                        lost = true;
                        break false;
                    }
                }
                _ = self.inner.shutdown.cancelled() => {}
            }
        };
        for (_, (_, h)) in tasks.drain() {
            h.abort();
        }
        if !lost && let Err(e) = store.release_lease(id, &fence).await {
            tracing::warn!(release = id, error = %e, "releasing lease failed; it expires by itself");
        }
        if finished && !product.is_empty() {
            self.promote(&product).await;
        }
    }

    /// Runs one step in its own task; the result comes back on `done`.
    fn spawn_step(
        &self,
        r: &Release,
        at: StepRef,
        done: mpsc::UnboundedSender<(StepRef, i32, StepResult)>,
    ) -> JoinHandle<()> {
        let Some(step) = r.step(at).cloned() else {
            return tokio::spawn(async {});
        };
        let env = at.env.and_then(|e| r.envs.get(e));
        let ctx = StepContext {
            release_id: r.id.clone(),
            product: r.product.clone(),
            flow: r.flow.clone(),
            flow_version: r.flow_version,
            version: r.version.clone(),
            environment: env.map(|e| e.environment.clone()).unwrap_or_default(),
            step: step.kind.as_str().to_string(),
            attempt: step.attempt,
            idempotency_key: idempotency_key(r, at),
            context: r.context.clone(),
            start_time: step.start_time.unwrap_or_else(now),
        };
        let action = env.map(|e| e.action).unwrap_or(Action::None);
        let engine = self.clone();
        tokio::spawn(async move {
            let _permit = engine.inner.permits.clone().acquire_owned().await;
            let result = engine
                .run_step(&step.kind, &step.workflow, action, &ctx)
                .await;
            let _ = done.send((at, step.attempt, result));
        })
    }

    async fn run_step(
        &self,
        kind: &StepKind,
        workflow: &str,
        action: Action,
        ctx: &StepContext,
    ) -> StepResult {
        if *kind == StepKind::Action {
            return StepResult::Done(match action {
                Action::None => Outcome::Succeeded {
                    message: format!("recorded version {} in {}", ctx.version, ctx.environment),
                    outputs: Default::default(),
                },
                Action::Commit | Action::PullRequest => Outcome::Failed {
                    message: format!(
                        "the {} action is not available yet: promoflow cannot write to an application's Git source; use action NONE",
                        action.as_str()
                    ),
                },
            });
        }
        let wf = match self.inner.store.get_workflow(workflow).await {
            Ok(w) => w,
            Err(Error::NotFound(_)) => {
                return StepResult::Done(Outcome::Failed {
                    message: format!("workflow {workflow:?} no longer exists"),
                });
            }
            Err(e) => {
                return StepResult::Done(Outcome::Failed {
                    message: format!("loading workflow {workflow:?}: {e}"),
                });
            }
        };
        let kind: &WorkflowKind = &wf.kind;
        workflows::run(
            &self.inner.http,
            self.inner.allow_commands,
            workflow,
            kind,
            ctx,
        )
        .await
    }
}
