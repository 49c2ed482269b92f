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
//! Store errors are retried with the same bounded backoff whether loading or
//! persisting ([`Backoff`]); a write that lost a race reloads and re-applies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use super::Engine;
use super::workflows::{StepContext, StepResult};
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
}

impl Worker {
    /// Claims release `id`; `None` when another replica holds its lease or
    /// there is nothing to drive.
    pub(super) async fn claim(engine: Engine, id: &str, poke: Arc<Notify>) -> Option<Self> {
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
            cached: None,
            backoff: Backoff::default(),
            renew,
            product: String::new(),
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
            let seq = r.last_seq;
            let (changes, effects) = self.transition(&mut r);
            match self.persist(&mut r, &changes, seq, &effects).await {
                Persisted::Done => {}
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
                StepResult::Suspend(deadline) => changes.extend(r.suspend_step(*at, *deadline)),
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

    /// A task for every running step without one; tasks whose step moved on
    /// (finished, terminated, replaced by a retry) are cancelled.
    fn start_tasks(&mut self, r: &Release) {
        let running = r.running_steps();
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

    fn take_report(&mut self, report: StepReport) {
        self.tasks.remove(&report.0);
        self.pending.push(report);
    }

    /// Runs one step in its own task; its report comes back to the worker.
    fn spawn_step(&self, r: &Release, at: StepRef) -> JoinHandle<()> {
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
        let promotion = env.map(|e| e.action).unwrap_or_default();
        let engine = self.engine.clone();
        let done = self.reports_tx.clone();
        tokio::spawn(async move {
            let _permit = engine.inner.permits.clone().acquire_owned().await;
            let result = if step.kind == StepKind::Action {
                StepResult::Done(action::outcome(promotion, &ctx.version, &ctx.environment))
            } else {
                run_workflow(&engine, &step.workflow, &ctx).await
            };
            let _ = done.send((at, step.attempt, result));
        })
    }
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
