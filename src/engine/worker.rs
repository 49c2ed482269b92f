//! The worker of one release: the loop that drives it to a final state.
//!
//! One pass of [`Worker::run`]'s loop:
//!
//! 1. **load** the release (kept from the last write when nobody else can
//!    have changed it);
//! 2. **apply step results** that arrived from step tasks (outcomes and
//!    approvals suspending), ignoring results of an attempt a retry replaced;
//! 3. **transition**: [`Release::advance`] (or, while terminating,
//!    [`Release::finish_terminate`] after cancelling every task);
//! 4. **persist** the changes with their events in one transaction, fenced by
//!    the lease (a lost lease ends the worker at once);
//! 5. **start tasks** for steps now `RUNNING` and cancel those whose step
//!    moved on;
//! 6. **wait** for a step result, a poke (an API command changed the
//!    release), the next deadline, a lease renewal or shutdown.
//!
//! A PULL_REQUEST action's task outlives its first report: it reports the
//! pull request it opened (the step is then suspended awaiting review, see
//! [`Release::await_review`]) and keeps polling it until it is merged or
//! closed; steps awaiting review count as live ([`Release::live_steps`]), so
//! a restarted worker starts their polling again.
//!
//! Store errors are retried with the same bounded backoff whether loading or
//! persisting ([`Backoff`]); a write that lost a race reloads and re-applies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::workflows::{StepContext, StepResult};
use super::{Engine, promote};
use std::collections::BTreeMap;

use crate::domain::catalog::Application;
use crate::domain::flow::Action;
use crate::domain::gitops::Promotion;
use crate::domain::release::{Change, Outcome, Release, StepRef, action};
use crate::domain::status::{ReleaseStatus, StepKind};
use crate::error::{Error, Result};
use crate::store::leases::Fence;
use crate::store::now;
use crate::store::releases::{SideEffect, idempotency_key};

/// A step task's report: which step, which attempt of it, what happened.
type StepReport = (StepRef, i32, StepResult);

/// How many consecutive store failures a worker tolerates before it stops
/// (the release keeps its state; the catch-up scan starts a new worker).
const MAX_STORE_FAILURES: u32 = 100;

/// Bounded, growing waits between attempts at a store operation that failed
/// for a passing reason (the database restarting, a pool timeout). The one
/// retry rule of the engine for store errors.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records a failure and waits before the next attempt; false when the
    /// operation should be given up.
    pub(crate) async fn wait(&mut self) -> bool {
        self.failures += 1;
        if self.failures > MAX_STORE_FAILURES {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(
            200 * u64::from(self.failures.min(25)),
        ))
        .await;
        true
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// How a worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// The release is final: the product's next queued release may start.
    Final,
    /// Queued again, shutting down, or the store kept failing: the release
    /// is left as it is and resumed by whoever claims it next.
    Stopped,
    /// Another replica holds the lease now: touch nothing more.
    LeaseLost,
}

/// What one persist attempt led to.
enum Persisted {
    Done,
    /// Someone else wrote first (an API command): reload and re-apply.
    Conflict,
    LeaseLost,
    /// The store failed; retried after a backoff.
    Failed,
    GaveUp,
}

pub(super) struct Worker {
    engine: Engine,
    /// The release this worker drives.
    id: String,
    /// Rung when something outside the worker changed the release.
    poke: Arc<Notify>,
    /// The lease this worker holds; every write is fenced by it.
    fence: Fence,
    /// Live step tasks, with the attempt each runs.
    tasks: HashMap<StepRef, (i32, JoinHandle<()>)>,
    /// Where step tasks report (the worker keeps the sender for new tasks).
    reports_tx: mpsc::UnboundedSender<StepReport>,
    reports: mpsc::UnboundedReceiver<StepReport>,
    /// Reports received but not yet written.
    pending: Vec<StepReport>,
    /// The release as this worker last wrote it: after a successful write
    /// the store holds exactly this, so it is reloaded only when someone
    /// else may have changed it (a poke, a conflict, an error). Reloading on
    /// every transition was a third of a release's queries.
    cached: Option<Release>,
    backoff: Backoff,
    /// Lease renewals, every third of the lease's duration.
    renew: tokio::time::Interval,
    /// The release's product, for starting its next queued release.
    product: String,
    /// Pull requests (step, attempt) already told the release stopped
    /// waiting for them.
    commented: std::collections::HashSet<(StepRef, i32)>,
    /// The last commit status this worker set on the trigger commit.
    status_sent: Option<super::forge::StatusState>,
    /// The commit status being set: the next one waits for it, so a forge
    /// sees them in order.
    status_task: Option<JoinHandle<()>>,
}

impl Worker {
    /// Claims release `id`; `None` when another replica holds its lease or
    /// there is nothing to drive. `written`: the release as its creator
    /// just committed it (see `Engine::ensure_worker_of`).
    pub(super) async fn claim(
        engine: Engine,
        id: &str,
        poke: Arc<Notify>,
        written: Option<Release>,
    ) -> Option<Self> {
        let ttl = engine.inner.lease_ttl;
        let fence = match engine
            .inner
            .store
            .claim_release(id, &engine.inner.replica_id, ttl)
            .await
        {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(release = id, error = %e, "claiming release failed");
                return None;
            }
        };
        tracing::debug!(release = id, epoch = fence.epoch, "lease taken");
        let every =
            (ttl.to_std().unwrap_or(Duration::from_secs(15)) / 3).max(Duration::from_millis(50));
        let mut renew = tokio::time::interval(every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.reset();
        let (reports_tx, reports) = mpsc::unbounded_channel();
        Some(Self {
            engine,
            id: id.to_string(),
            poke,
            fence,
            tasks: HashMap::new(),
            reports_tx,
            reports,
            pending: Vec::new(),
            cached: written,
            backoff: Backoff::default(),
            renew,
            product: String::new(),
            commented: Default::default(),
            status_sent: None,
            status_task: None,
        })
    }

    /// Drives the release until it is final (or queued, or the server
    /// stops, or the lease is lost), then cleans up.
    pub(super) async fn run(mut self) {
        let exit = self.drive().await;
        self.cancel_tasks();
        let store = &self.engine.inner.store;
        if exit != Exit::LeaseLost
            && let Err(e) = store.release_lease(&self.id, &self.fence).await
        {
            tracing::warn!(release = %self.id, error = %e, "releasing lease failed; it expires by itself");
        }
        if exit == Exit::Final && !self.product.is_empty() {
            self.engine.promote(&self.product).await;
        }
    }

    async fn drive(&mut self) -> Exit {
        loop {
            if self.engine.inner.shutdown.is_cancelled() {
                return Exit::Stopped;
            }
            let Some(mut r) = self.load().await else {
                return Exit::Stopped;
            };
            self.product.clone_from(&r.product);
            if r.status.is_final() {
                return Exit::Final;
            }
            if r.status == ReleaseStatus::Queued {
                return Exit::Stopped;
            }
            if r.status == ReleaseStatus::Terminating {
                self.leave_pull_requests(&r).await;
            }
            let seq = r.last_seq;
            let (changes, effects) = self.transition(&mut r);
            match self.persist(&mut r, &changes, seq, &effects).await {
                Persisted::Done => self.commit_status(&r),
                Persisted::Conflict | Persisted::Failed => continue,
                Persisted::LeaseLost => return Exit::LeaseLost,
                Persisted::GaveUp => return Exit::Stopped,
            }
            if r.status.is_final() {
                return Exit::Final;
            }
            if r.status == ReleaseStatus::Terminating {
                self.cached = Some(r);
                continue;
            }
            self.start_tasks(&r);
            let deadline = r.next_deadline();
            self.cached = Some(r);
            if !self.wait(deadline).await {
                return Exit::LeaseLost;
            }
        }
    }

    /// The release to work on: the cached one, else a fresh read (retried
    /// with backoff). `None` when the store kept failing.
    async fn load(&mut self) -> Option<Release> {
        if let Some(r) = self.cached.take() {
            return Some(r);
        }
        loop {
            match self.engine.inner.store.get_release(&self.id).await {
                Ok(r) => return Some(r),
                Err(e) => {
                    tracing::warn!(release = %self.id, error = %e, "loading release failed");
                    if !self.backoff.wait().await {
                        return None;
                    }
                }
            }
        }
    }

    /// Applies the pending step reports, then everything that follows from
    /// them. Returns the changes and the writes that go with them.
    fn transition(&mut self, r: &mut Release) -> (Vec<Change>, Vec<SideEffect>) {
        let before = r.counters();
        let t = now();
        let mut changes = Vec::new();
        let mut effects = Vec::new();
        for (at, attempt, result) in &self.pending {
            if r.step(*at).map(|s| s.attempt) != Some(*attempt) {
                continue; // a result from before a retry
            }
            match result {
                StepResult::Done(outcome) => {
                    let ch = r.complete_step(*at, outcome.clone(), t);
                    if !ch.is_empty()
                        && let Some(environment) = r.promoted_environment(*at)
                    {
                        effects.push(SideEffect::RecordVersion {
                            environment: environment.to_string(),
                        });
                    }
                    changes.extend(ch);
                }
                StepResult::Suspend(deadline, rule) => {
                    changes.extend(r.suspend_step(*at, *deadline, *rule))
                }
                StepResult::AwaitReview {
                    number,
                    url,
                    head_sha,
                } => changes.extend(r.await_review(*at, *number, url, head_sha)),
                StepResult::Progress(message) => changes.extend(r.step_progress(*at, message)),
            }
        }
        if r.status == ReleaseStatus::Terminating {
            self.cancel_tasks();
            changes.extend(r.finish_terminate(t));
        } else {
            changes.extend(r.advance(t).0);
        }
        r.announce_counters(before, &mut changes);
        crate::domain::release::normalize(&mut changes);
        (changes, effects)
    }

    async fn persist(
        &mut self,
        r: &mut Release,
        changes: &[Change],
        seq: i64,
        effects: &[SideEffect],
    ) -> Persisted {
        let store = &self.engine.inner.store;
        match store
            .persist(r, changes, seq, effects, Some(&self.fence))
            .await
        {
            Ok(events) => {
                self.pending.clear();
                self.engine.publish(&events);
                self.backoff.reset();
                Persisted::Done
            }
            // Someone else wrote (reload), or the lease is gone: a replica
            // that lost it must not touch the release again.
            Err(Error::Aborted(_)) => {
                if self.renew_lease().await {
                    Persisted::Conflict
                } else {
                    Persisted::LeaseLost
                }
            }
            Err(e) => {
                tracing::warn!(release = %self.id, error = %e, "persisting release failed");
                if self.backoff.wait().await {
                    Persisted::Failed
                } else {
                    Persisted::GaveUp
                }
            }
        }
    }

    /// Renews the lease; false (and a warning) when another replica has it.
    async fn renew_lease(&self) -> bool {
        let store = &self.engine.inner.store;
        let held = matches!(
            store
                .renew_lease(&self.id, &self.fence, self.engine.inner.lease_ttl)
                .await,
            Ok(true)
        );
        if !held {
            tracing::warn!(release = %self.id, "lease lost; another replica drives the release");
        }
        held
    }

    /// A task for every running step (and pull request awaiting review)
    /// without one; tasks whose step moved on (finished, terminated,
    /// replaced by a retry) are cancelled.
    fn start_tasks(&mut self, r: &Release) {
        let running = r.live_steps();
        self.tasks.retain(|at, (attempt, h)| {
            let keep = running.contains(at) && r.step(*at).map(|s| s.attempt) == Some(*attempt);
            if !keep {
                h.abort();
            }
            keep
        });
        for at in running {
            if self.tasks.contains_key(&at) {
                continue;
            }
            let attempt = r.step(at).map(|s| s.attempt).unwrap_or(1);
            let handle = self.spawn_step(r, at);
            self.tasks.insert(at, (attempt, handle));
        }
    }

    /// With --commit-status, sets the trigger commit's status when the
    /// release starts (pending) and when it is final; in the background,
    /// in order, best effort.
    fn commit_status(&mut self, r: &Release) {
        use super::forge::StatusState;
        if !self.engine.inner.commit_status || r.source_commit.is_empty() {
            return;
        }
        let state = match r.status {
            ReleaseStatus::Succeeded => StatusState::Success,
            ReleaseStatus::Failed => StatusState::Failure,
            ReleaseStatus::Terminated => StatusState::Error,
            ReleaseStatus::Queued => return,
            _ => StatusState::Pending,
        };
        if self.status_sent == Some(state) {
            return;
        }
        self.status_sent = Some(state);
        let description = match state {
            StatusState::Pending => format!("promoting {} {}", r.product, r.version),
            StatusState::Success => format!("promoted {} {}", r.product, r.version),
            StatusState::Failure if r.message.is_empty() => "the release failed".to_string(),
            StatusState::Failure => format!("failed: {}", r.message),
            StatusState::Error => "the release was terminated".to_string(),
        };
        let target_url = self
            .engine
            .inner
            .release_url_template
            .replace("{id}", &r.id);
        let (engine, product, sha) = (
            self.engine.clone(),
            r.product.clone(),
            r.source_commit.clone(),
        );
        let trigger = r
            .envs
            .first()
            .map(|e| e.environment.clone())
            .unwrap_or_default();
        let (release, context) = (r.id.clone(), format!("promoflow/{}", r.flow));
        let before = self.status_task.take();
        self.status_task = Some(tokio::spawn(async move {
            if let Some(b) = before {
                let _ = b.await;
            }
            let status = super::forge::CommitStatus {
                state,
                target_url: &target_url,
                description: &description,
                context: &context,
            };
            if let Err(e) = set_commit_status(&engine, &product, &trigger, &sha, &status).await {
                tracing::warn!(release = %release, state = state.github(), error = %e, "setting the commit status failed");
            }
        }));
    }

    fn cancel_tasks(&mut self) {
        for (_, (_, h)) in self.tasks.drain() {
            h.abort();
        }
    }

    /// Waits for the next reason to transition. False when the lease was
    /// lost while waiting.
    async fn wait(&mut self, deadline: Option<crate::domain::release::Time>) -> bool {
        let sleep = async {
            match deadline {
                Some(d) => {
                    let left = (d - now()).to_std().unwrap_or(Duration::ZERO);
                    tokio::time::sleep(left + Duration::from_millis(5)).await
                }
                None => std::future::pending().await,
            }
        };
        let shutdown = self.engine.inner.shutdown.clone();
        tokio::select! {
            Some(report) = self.reports.recv() => {
                self.take_report(report);
                // Take every other result that is ready: one transaction.
                while let Ok(report) = self.reports.try_recv() {
                    self.take_report(report);
                }
            }
            // An API command changed the release: reload it.
            _ = self.poke.notified() => self.cached = None,
            _ = sleep => {}
            _ = self.renew.tick() => return self.renew_lease().await,
            _ = shutdown.cancelled() => {}
        }
        true
    }

    /// Before a terminating release's tasks are cancelled: each pull
    /// request an environment awaits gets a comment saying why it is no
    /// longer awaited (once per step attempt and worker; best effort).
    async fn leave_pull_requests(&mut self, r: &Release) {
        let reason = r.terminate_reason.clone().unwrap_or_default();
        // Recorded, or opened and not yet written (the terminate came
        // first): both are awaited pull requests.
        let mut awaited = Vec::new();
        for (e, env) in r.envs.iter().enumerate() {
            for (i, s) in env.steps.iter().enumerate() {
                let at = StepRef {
                    env: Some(e),
                    idx: i,
                };
                if s.awaits_review() {
                    awaited.push((at, s.attempt, s.pull_request));
                }
            }
        }
        for (at, attempt, result) in &self.pending {
            if let StepResult::AwaitReview { number, .. } = result
                && r.step(*at).map(|s| s.attempt) == Some(*attempt)
            {
                awaited.push((*at, *attempt, *number));
            }
        }
        for (at, attempt, number) in awaited {
            let Some(env) = at.env.and_then(|e| r.envs.get(e)) else {
                continue;
            };
            if self.commented.insert((at, attempt)) {
                GitStep::of(r, env)
                    .leave_pull_request(&self.engine, number, &reason)
                    .await;
            }
        }
    }

    fn take_report(&mut self, report: StepReport) {
        // A pull request opened, or a wait that said how it goes: its task
        // goes on.
        if !matches!(
            report.2,
            StepResult::AwaitReview { .. } | StepResult::Progress(_)
        ) {
            self.tasks.remove(&report.0);
        }
        self.pending.push(report);
    }

    /// Runs one step in its own task; its report comes back to the worker.
    fn spawn_step(&self, r: &Release, at: StepRef) -> JoinHandle<()> {
        let Some(step) = r.step(at).cloned() else {
            return tokio::spawn(async {});
        };
        let env = at.env.and_then(|e| r.envs.get(e));
        let mut ctx = StepContext {
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
            application: env.map(|e| e.application.clone()).unwrap_or_default(),
            source_commit: r.source_commit.clone(),
            parameters: Default::default(),
        };
        let promotion_action = env.map(|e| e.action).unwrap_or_default();
        // The environment's Git action, for the action itself and for the
        // Codefresh parameters of the steps after it.
        let git = matches!(promotion_action, Action::Commit | Action::PullRequest)
            .then(|| env.map(|e| GitStep::of(r, e)))
            .flatten();
        // A SYNC step waits for what the environment's action promoted.
        let promoted = env
            .and_then(|e| e.steps.iter().find(|s| s.kind == StepKind::Action))
            .map(|s| s.commit_sha.clone())
            .unwrap_or_default();
        let engine = self.engine.clone();
        let done = self.reports_tx.clone();
        tokio::spawn(async move {
            let permit = engine.inner.permits.clone().acquire_owned().await;
            let result = if step.kind == StepKind::Sync {
                // Waiting for Argo CD holds no slot of
                // --max-parallel-environments.
                drop(permit);
                let progress = |m: &str| {
                    let _ = done.send((at, step.attempt, StepResult::Progress(m.to_string())));
                };
                let outcome = sync(
                    &engine,
                    &ctx.product,
                    &ctx.environment,
                    &promoted,
                    ctx.start_time,
                    progress,
                )
                .await;
                StepResult::Done(outcome)
            } else if step.kind == StepKind::Action {
                let no_env = || {
                    StepResult::Done(Outcome::Failed {
                        message: "no environment for the Git action".into(),
                    })
                };
                match action::plan(promotion_action, &ctx.version, &ctx.environment) {
                    action::Plan::Done(outcome) => StepResult::Done(outcome),
                    action::Plan::Commit => match &git {
                        Some(g) => StepResult::Done(g.commit(&engine).await),
                        None => no_env(),
                    },
                    action::Plan::PullRequest => match &git {
                        Some(g) => {
                            let report = |r: StepResult| {
                                let _ = done.send((at, step.attempt, r));
                            };
                            g.pull_request(&engine, &step, permit.ok(), report).await
                        }
                        None => no_env(),
                    },
                }
            } else {
                if let Some(g) = &git {
                    ctx.parameters = g.parameters(&engine).await;
                }
                run_workflow(&engine, &step.workflow, &ctx).await
            };
            let _ = done.send((at, step.attempt, result));
        })
    }
}

/// What a step of an environment with a COMMIT action needs to know.
struct GitStep {
    release_id: String,
    product: String,
    version: String,
    trigger_environment: String,
    environment: String,
    promotion: Option<Arc<Promotion>>,
    /// The action's commit (empty until it pushed, and for "no changes").
    commit_sha: String,
    commit_time: Option<crate::domain::release::Time>,
}

impl GitStep {
    fn of(r: &Release, e: &crate::domain::release::EnvRun) -> Self {
        let action = e.steps.iter().find(|s| s.kind == StepKind::Action);
        Self {
            release_id: r.id.clone(),
            product: r.product.clone(),
            version: r.version.clone(),
            trigger_environment: r
                .envs
                .first()
                .map(|t| t.environment.clone())
                .unwrap_or_default(),
            environment: e.environment.clone(),
            promotion: r.promotion.clone(),
            commit_sha: action.map(|s| s.commit_sha.clone()).unwrap_or_default(),
            commit_time: action.and_then(|s| s.finish_time),
        }
    }

    /// The target application as the product defines it now (its Git
    /// source may have changed since the release started).
    async fn target(&self, engine: &Engine) -> Result<Application> {
        let product = engine.inner.store.get_product(&self.product).await?;
        product
            .application(&self.environment)
            .cloned()
            .ok_or_else(|| {
                Error::FailedPrecondition(format!(
                    "product {:?} has no application in {} any more",
                    self.product, self.environment
                ))
            })
    }

    async fn commit(&self, engine: &Engine) -> Outcome {
        let target = match self.target(engine).await {
            Ok(t) => t,
            Err(e) => {
                return Outcome::Failed {
                    message: e.to_string(),
                };
            }
        };
        let Some(promotion) = &self.promotion else {
            return Outcome::Failed {
                message: format!(
                    "the trigger application in {} has no Git source: a COMMIT action has nothing to promote",
                    self.trigger_environment
                ),
            };
        };
        promote::commit(
            &engine.inner.git,
            promote::CommitRequest {
                release_id: &self.release_id,
                product: &self.product,
                version: &self.version,
                trigger_environment: &self.trigger_environment,
                environment: &self.environment,
                target: &target,
                promotion,
            },
        )
        .await
    }

    /// The PULL_REQUEST action: open or adopt the pull request, report it
    /// (the worker records it and suspends the step, before anything
    /// waits), give the step's permit back, then wait for the merge or
    /// close. A step already awaiting review (after a restart) only waits.
    async fn pull_request(
        &self,
        engine: &Engine,
        step: &crate::domain::release::StepRun,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        report: impl Fn(StepResult),
    ) -> StepResult {
        let failed = |message: String| StepResult::Done(Outcome::Failed { message });
        let target = match self.target(engine).await {
            Ok(t) => t,
            Err(e) => return failed(e.to_string()),
        };
        let Some(source) = &target.source else {
            return failed(format!(
                "application {:?} in {} has no Git source: the PULL_REQUEST action needs one (set Application.source, or use action NONE)",
                target.name, self.environment
            ));
        };
        let forge =
            match super::forge::connect(&engine.inner.git, &engine.inner.http, &source.repo_url) {
                Ok(f) => f,
                Err(m) => return failed(m),
            };
        let number = if step.awaits_review() {
            step.pull_request
        } else {
            let Some(promotion) = &self.promotion else {
                return failed(format!(
                    "the trigger application in {} has no Git source: a PULL_REQUEST action has nothing to promote",
                    self.trigger_environment
                ));
            };
            let opened = promote::open_pull_request(
                &engine.inner.git,
                forge.as_ref(),
                promote::CommitRequest {
                    release_id: &self.release_id,
                    product: &self.product,
                    version: &self.version,
                    trigger_environment: &self.trigger_environment,
                    environment: &self.environment,
                    target: &target,
                    promotion,
                },
            )
            .await;
            match opened {
                Err(m) => return failed(m),
                Ok(promote::Opened::NoChanges(outcome)) => return StepResult::Done(outcome),
                Ok(promote::Opened::Merged(pr)) => return merged(&pr),
                Ok(promote::Opened::Open(pr)) => {
                    report(StepResult::AwaitReview {
                        number: pr.number,
                        url: pr.url.clone(),
                        head_sha: pr.head_sha.clone(),
                    });
                    pr.number
                }
            }
        };
        // Waiting for a person holds no slot of --max-parallel-environments.
        drop(permit);
        let wake = engine.inner.reviews.register(&source.repo_url, number);
        match super::forge::wait_for_merge(forge.as_ref(), number, engine.inner.pr_poll, &wake)
            .await
        {
            Ok(pr) => merged(&pr),
            Err(m) => failed(m),
        }
    }

    /// Leaves a comment on the pull request this environment waited on,
    /// saying why promoflow no longer waits (it stays open).
    async fn leave_pull_request(&self, engine: &Engine, number: i64, reason: &str) {
        let Ok(target) = self.target(engine).await else {
            return;
        };
        let Some(source) = &target.source else {
            return;
        };
        let forge = match super::forge::connect(
            &engine.inner.git,
            &engine.inner.http,
            &source.repo_url,
        ) {
            Ok(f) => f,
            Err(m) => {
                tracing::warn!(release = %self.release_id, environment = %self.environment, error = %m, "cannot comment on the pull request");
                return;
            }
        };
        let why = if reason == "timeout" {
            "reached its promotion timeout".to_string()
        } else {
            format!("was terminated: {reason}")
        };
        let body = format!(
            "promoflow release `{}` {why}. It no longer waits for this pull request to promote {} {} to {}; the pull request is left open, and merging it now does not continue the release.",
            self.release_id, self.product, self.version, self.environment
        );
        let call = forge.comment(number, &body);
        match tokio::time::timeout(Duration::from_secs(30), call).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(release = %self.release_id, pull_request = number, error = %e, "commenting on the pull request failed")
            }
            Err(_) => {
                tracing::warn!(release = %self.release_id, pull_request = number, "commenting on the pull request timed out")
            }
        }
    }

    /// Codefresh's promotion parameters for the steps after the action.
    async fn parameters(&self, engine: &Engine) -> BTreeMap<String, String> {
        let mut p = BTreeMap::new();
        let Ok(target) = self.target(engine).await else {
            return p;
        };
        p.insert("APP_NAME".into(), target.name.clone());
        if let Some(s) = &target.source {
            p.insert("REPO_URL".into(), s.repo_url.clone());
            p.insert("BRANCH".into(), s.branch.clone());
            p.insert("PATH".into(), s.path.clone());
        }
        if !self.commit_sha.is_empty() {
            p.insert("COMMIT_SHA".into(), self.commit_sha.clone());
            p.insert("COMMIT_AUTHOR".into(), engine.inner.git.author());
            p.insert(
                "COMMIT_MESSAGE".into(),
                promote::subject(
                    &self.product,
                    &self.version,
                    &self.trigger_environment,
                    &self.environment,
                ),
            );
            if let Some(t) = self.commit_time {
                p.insert("COMMIT_DATE".into(), t.to_rfc3339());
            }
        }
        p
    }
}

/// A SYNC step: waits until the Argo CD application of `product`'s
/// application in `environment` (as the product defines it now) is Synced
/// at `commit` (or a later commit containing it; empty: any revision) and
/// Healthy, at most `--sync-timeout` from the step's `started` (a restart
/// only waits for the time left).
async fn sync(
    engine: &Engine,
    product: &str,
    environment: &str,
    commit: &str,
    started: crate::domain::release::Time,
    progress: impl Fn(&str),
) -> Outcome {
    let failed = |message: String| Outcome::Failed { message };
    let app = match engine.inner.store.get_product(product).await {
        Ok(p) => p.application(environment).cloned(),
        Err(e) => return failed(format!("loading product {product:?} failed: {e}")),
    };
    let Some(app) = app else {
        return failed(format!(
            "product {product:?} has no application in {environment} any more"
        ));
    };
    let Some(argo) = &app.argocd else {
        // Removed from the application since the release started.
        return Outcome::Succeeded {
            message: format!(
                "application {:?} no longer names an Argo CD application: nothing to wait for",
                app.name
            ),
            outputs: Default::default(),
            artifact: None,
        };
    };
    let git = &engine.inner.git;
    // The token of the credentials entry covering the server, as for a
    // forge's API; none: an anonymous read.
    let token = match git.credential_for_api(&argo.server) {
        Some(c) => match c.token() {
            Ok(t) => Some(t),
            Err(e) => return failed(e.to_string()),
        },
        None => None,
    };
    let settings = engine.inner.sync;
    let spent = (now() - started).to_std().unwrap_or(Duration::ZERO);
    super::argocd::wait_for_sync(
        super::argocd::SyncWait {
            http: &engine.inner.http,
            git,
            server: &argo.server,
            name: &argo.name,
            token: token.as_deref(),
            repo_url: app.source.as_ref().map(|s| s.repo_url.as_str()),
            commit,
            settings,
            left: settings.timeout.saturating_sub(spent),
        },
        progress,
    )
    .await
}

/// The outcome of a merged pull request: the merge commit, and the pull
/// request's page.
fn merged(pr: &super::forge::PullRequest) -> StepResult {
    StepResult::Done(Outcome::Succeeded {
        message: format!(
            "pull request #{} merged as {}",
            pr.number,
            pr.merge_sha.get(..12).unwrap_or(&pr.merge_sha)
        ),
        outputs: Default::default(),
        artifact: Some(crate::domain::release::Artifact {
            commit_sha: pr.merge_sha.clone(),
            url: pr.url.clone(),
        }),
    })
}

/// Runs workflow `name` as it is defined now. A passing store error while
/// loading the definition is retried like every store error; a workflow
/// that no longer exists fails the step.
async fn run_workflow(engine: &Engine, name: &str, ctx: &StepContext) -> StepResult {
    let mut backoff = Backoff::default();
    let wf: Result<_> = loop {
        match engine.inner.store.get_workflow(name).await {
            Err(e) if e.is_transient() => {
                tracing::warn!(workflow = name, error = %e, "loading workflow failed; retrying");
                if !backoff.wait().await {
                    break Err(e);
                }
            }
            other => break other,
        }
    };
    match wf {
        Ok(wf) => {
            super::workflows::run(
                &engine.inner.http,
                engine.inner.allow_commands,
                name,
                &wf.kind,
                ctx,
            )
            .await
        }
        Err(Error::NotFound(_)) => StepResult::Done(Outcome::Failed {
            message: format!("workflow {name:?} no longer exists"),
        }),
        Err(e) => StepResult::Done(Outcome::Failed {
            message: format!("loading workflow {name:?} failed: {e}"),
        }),
    }
}

/// Sets `status` on commit `sha` of the repository of `product`'s
/// application in `trigger`, through the forge of its credentials entry;
/// nothing when no entry for it names a forge.
async fn set_commit_status(
    engine: &Engine,
    product: &str,
    trigger: &str,
    sha: &str,
    status: &super::forge::CommitStatus<'_>,
) -> std::result::Result<(), String> {
    let product = engine
        .inner
        .store
        .get_product(product)
        .await
        .map_err(|e| e.to_string())?;
    let Some(source) = product.application(trigger).and_then(|a| a.source.as_ref()) else {
        return Ok(());
    };
    let git = &engine.inner.git;
    match git.credential_for(&source.repo_url) {
        Ok(Some(c)) if c.forge.is_some() => {}
        _ => return Ok(()),
    }
    let forge = super::forge::connect(git, &engine.inner.http, &source.repo_url)?;
    forge
        .commit_status(sha, status)
        .await
        .map_err(|e| e.to_string())
}
