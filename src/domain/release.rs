//! The release state machine: pure functions over a release held in memory.
//!
//! The engine loads a [`Release`], calls one of the transition methods here
//! with the current time, and persists the returned [`Change`]s, each with
//! its event, in one transaction. Nothing here does I/O or runs workflows:
//! [`Release::advance`] only says which steps should start.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::flow::{Action, FlowSpec};
use super::status::{EnvironmentStatus, ReleaseStatus, StepKind, StepStatus};

pub type Time = DateTime<Utc>;

/// One step of an environment run (or a release-level hook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRun {
    pub kind: StepKind,
    /// Workflow name; empty for the promotion action.
    pub workflow: String,
    pub status: StepStatus,
    pub message: String,
    pub attempt: i32,
    /// When a wait ends or an approval times out; kept across restarts.
    pub deadline: Option<Time>,
    pub start_time: Option<Time>,
    pub finish_time: Option<Time>,
}

impl StepRun {
    fn new(kind: StepKind, workflow: impl Into<String>) -> Self {
        Self {
            kind,
            workflow: workflow.into(),
            status: StepStatus::Pending,
            message: String::new(),
            // 0 until it first starts (see `begin_step`).
            attempt: 0,
            deadline: None,
            start_time: None,
            finish_time: None,
        }
    }

    /// Hooks run after the main steps and do not decide the outcome.
    pub fn is_outcome_hook(&self) -> bool {
        matches!(self.kind, StepKind::OnSuccess | StepKind::OnFail)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvRun {
    pub environment: String,
    pub depends_on: Vec<String>,
    pub status: EnvironmentStatus,
    pub blocked_on: Vec<String>,
    pub attempt: i32,
    pub application: String,
    /// The promotion action of this environment (`None` for the trigger).
    pub action: Action,
    pub message: String,
    pub start_time: Option<Time>,
    pub finish_time: Option<Time>,
    pub steps: Vec<StepRun>,
}

/// Where a step lives: an environment run's index, or `None` for the
/// release-level hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StepRef {
    pub env: Option<usize>,
    pub idx: usize,
}

/// What changed in one transition; each becomes one event.
///
/// Variants are ordered cause before effect (steps, then environments, then
/// the release): sorted changes give events in that order, so the event that
/// makes a release final is always the last of its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    Step(StepRef),
    Env(usize),
    Release,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub total: i32,
    pub succeeded: i32,
    pub running: i32,
    pub failed: i32,
    pub pending: i32,
    pub skipped: i32,
    pub terminated: i32,
    pub suspended: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub product: String,
    pub flow: String,
    pub flow_version: i64,
    pub version: String,
    pub status: ReleaseStatus,
    pub initiator: String,
    pub trigger_message: String,
    pub message: String,
    pub request_id: Option<String>,
    /// Accumulated workflow outputs, passed to later workflows.
    pub context: serde_json::Map<String, serde_json::Value>,
    pub last_seq: i64,
    pub terminate_reason: Option<String>,
    pub promotion_timeout_secs: Option<u64>,
    pub deadline: Option<Time>,
    pub create_time: Time,
    pub start_time: Option<Time>,
    pub finish_time: Option<Time>,
    pub hooks: Vec<StepRun>,
    pub envs: Vec<EnvRun>,
}

/// The outcome of running one step.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        message: String,
        outputs: serde_json::Map<String, serde_json::Value>,
    },
    Failed {
        message: String,
    },
}

impl Release {
    /// A new release of `spec` in `QUEUED` state, with one environment run
    /// per node (trigger first, then the steps in flow order) and its steps.
    pub fn new(
        id: String,
        spec: &FlowSpec,
        flow_version: i64,
        product: &str,
        version: &str,
        application: &dyn Fn(&str) -> String,
        now: Time,
    ) -> Self {
        let hook_steps = |h: &super::flow::Hooks, steps: &mut Vec<StepRun>, phase: &[StepKind]| {
            for kind in phase {
                let w = match kind {
                    StepKind::OnStart => h.on_start.as_deref(),
                    StepKind::OnSuccess => h.on_success.as_deref(),
                    StepKind::OnFail => h.on_fail.as_deref(),
                    _ => None,
                };
                if let Some(w) = w {
                    steps.push(StepRun::new(*kind, w));
                }
            }
        };
        let mut hooks = Vec::new();
        hook_steps(
            &spec.hooks,
            &mut hooks,
            &[StepKind::OnStart, StepKind::OnSuccess, StepKind::OnFail],
        );
        let mut envs = Vec::with_capacity(spec.steps.len() + 1);
        let mut trigger_steps = Vec::new();
        if let Some(w) = &spec.trigger_workflow {
            trigger_steps.push(StepRun::new(StepKind::TriggerWorkflow, w.as_str()));
        }
        envs.push(EnvRun {
            environment: spec.trigger_environment.clone(),
            depends_on: Vec::new(),
            status: EnvironmentStatus::Pending,
            blocked_on: Vec::new(),
            attempt: 0,
            application: application(&spec.trigger_environment),
            action: Action::None,
            message: String::new(),
            start_time: None,
            finish_time: None,
            steps: trigger_steps,
        });
        for step in &spec.steps {
            let mut steps = Vec::new();
            hook_steps(&step.hooks, &mut steps, &[StepKind::OnStart]);
            if let Some(w) = &step.policy.pre_action {
                steps.push(StepRun::new(StepKind::PreAction, w.as_str()));
            }
            steps.push(StepRun::new(StepKind::Action, ""));
            if let Some(w) = &step.policy.post_action {
                steps.push(StepRun::new(StepKind::PostAction, w.as_str()));
            }
            hook_steps(
                &step.hooks,
                &mut steps,
                &[StepKind::OnSuccess, StepKind::OnFail],
            );
            envs.push(EnvRun {
                environment: step.environment.clone(),
                depends_on: step.depends_on.clone(),
                status: EnvironmentStatus::Pending,
                blocked_on: step.depends_on.clone(),
                attempt: 0,
                application: application(&step.environment),
                action: step.policy.action,
                message: String::new(),
                start_time: None,
                finish_time: None,
                steps,
            });
        }
        Self {
            id,
            product: product.to_string(),
            flow: spec.name.clone(),
            flow_version,
            version: version.to_string(),
            status: ReleaseStatus::Queued,
            initiator: String::new(),
            trigger_message: String::new(),
            message: String::new(),
            request_id: None,
            context: serde_json::Map::new(),
            last_seq: 0,
            terminate_reason: None,
            promotion_timeout_secs: spec.promotion_timeout_secs,
            deadline: None,
            create_time: now,
            start_time: None,
            finish_time: None,
            hooks,
            envs,
        }
    }

    /// Adds a release-level change to `changes` when the counters are no
    /// longer `before` (read before the transition): the API promises that an
    /// environment status change is followed by a `ReleaseChange` with the new
    /// counters, and only a change of the release's own status produced one.
    pub fn announce_counters(&self, before: Counters, changes: &mut Vec<Change>) {
        if self.counters() != before && !changes.contains(&Change::Release) {
            changes.push(Change::Release);
        }
    }

    pub fn counters(&self) -> Counters {
        let mut c = Counters {
            total: self.envs.len() as i32,
            ..Counters::default()
        };
        for e in &self.envs {
            match e.status {
                EnvironmentStatus::Pending => c.pending += 1,
                EnvironmentStatus::Running => c.running += 1,
                EnvironmentStatus::Suspended => c.suspended += 1,
                EnvironmentStatus::Succeeded => c.succeeded += 1,
                EnvironmentStatus::Failed => c.failed += 1,
                EnvironmentStatus::Skipped => c.skipped += 1,
                EnvironmentStatus::Terminated => c.terminated += 1,
            }
        }
        c
    }

    pub fn step(&self, at: StepRef) -> Option<&StepRun> {
        match at.env {
            None => self.hooks.get(at.idx),
            Some(e) => self.envs.get(e)?.steps.get(at.idx),
        }
    }

    fn step_mut(&mut self, at: StepRef) -> Option<&mut StepRun> {
        match at.env {
            None => self.hooks.get_mut(at.idx),
            Some(e) => self.envs.get_mut(e)?.steps.get_mut(at.idx),
        }
    }

    pub fn env_index(&self, name: &str) -> Option<usize> {
        self.envs.iter().position(|e| e.environment == name)
    }

    /// Steps currently `RUNNING`: what should have a live task.
    pub fn running_steps(&self) -> Vec<StepRef> {
        let mut out = Vec::new();
        for (i, s) in self.hooks.iter().enumerate() {
            if s.status == StepStatus::Running {
                out.push(StepRef { env: None, idx: i });
            }
        }
        for (e, env) in self.envs.iter().enumerate() {
            for (i, s) in env.steps.iter().enumerate() {
                if s.status == StepStatus::Running {
                    out.push(StepRef {
                        env: Some(e),
                        idx: i,
                    });
                }
            }
        }
        out
    }

    /// The earliest deadline the engine must wake up for: the release's
    /// promotion timeout or a suspended approval's timeout.
    pub fn next_deadline(&self) -> Option<Time> {
        let approvals = self
            .envs
            .iter()
            .flat_map(|e| e.steps.iter())
            .filter(|s| s.status == StepStatus::Suspended)
            .filter_map(|s| s.deadline);
        let release = if self.status.is_final() {
            None
        } else {
            self.deadline
        };
        approvals.chain(release).min()
    }

    /// Moves a queued release to `RUNNING`.
    pub fn start(&mut self, now: Time) -> Vec<Change> {
        if self.status != ReleaseStatus::Queued {
            return Vec::new();
        }
        self.status = ReleaseStatus::Running;
        self.start_time = Some(now);
        self.deadline = self
            .promotion_timeout_secs
            .map(|s| now + chrono::Duration::seconds(s.min(i64::MAX as u64 / 2) as i64));
        vec![Change::Release]
    }

    /// Everything that can happen without running a workflow: start
    /// environments whose dependencies succeeded, skip those blocked by a
    /// failure, move steps along, time out approvals and the release, and
    /// finish the release. Returns the changes and the steps to start (they
    /// are already marked `RUNNING`).
    pub fn advance(&mut self, now: Time) -> (Vec<Change>, Vec<StepRef>) {
        let mut changes = Vec::new();
        let mut start = Vec::new();
        if !matches!(
            self.status,
            ReleaseStatus::Running | ReleaseStatus::Suspended
        ) {
            return (changes, start);
        }
        if let Some(deadline) = self.deadline
            && now >= deadline
        {
            changes.extend(self.request_terminate("timeout"));
            return (changes, start);
        }
        // Release-level on_start runs before anything else.
        if let Some(i) = self
            .hooks
            .iter()
            .position(|h| h.kind == StepKind::OnStart && !h.status.is_final())
        {
            if self.hooks[i].status == StepStatus::Pending {
                self.begin_step(StepRef { env: None, idx: i }, now);
                changes.push(Change::Step(StepRef { env: None, idx: i }));
                start.push(StepRef { env: None, idx: i });
            }
            return (changes, start);
        }
        if self
            .hooks
            .iter()
            .any(|h| h.kind == StepKind::OnStart && h.status == StepStatus::Failed)
        {
            // A failing release on_start fails the release before any environment runs.
            for e in 0..self.envs.len() {
                if self.envs[e].status == EnvironmentStatus::Pending {
                    self.envs[e].status = EnvironmentStatus::Skipped;
                    self.envs[e].blocked_on = Vec::new();
                    self.envs[e].message = "the release's on_start hook failed".into();
                    changes.push(Change::Env(e));
                }
            }
        }
        loop {
            let mut progressed = false;
            for e in 0..self.envs.len() {
                match self.envs[e].status {
                    EnvironmentStatus::Pending => {
                        if let Some(c) = self.try_start_env(e, now) {
                            changes.extend(c);
                            progressed = true;
                        }
                    }
                    EnvironmentStatus::Running | EnvironmentStatus::Suspended => {
                        let (c, s, p) = self.step_env(e, now);
                        changes.extend(c);
                        start.extend(s);
                        progressed |= p;
                    }
                    _ => {}
                }
            }
            if !progressed {
                break;
            }
        }
        changes.extend(self.settle_release(now, &mut start));
        changes.sort();
        changes.dedup();
        (changes, start)
    }

    /// Starts, skips or re-blocks a pending environment.
    fn try_start_env(&mut self, e: usize, now: Time) -> Option<Vec<Change>> {
        let deps: Vec<(String, EnvironmentStatus)> = self.envs[e]
            .depends_on
            .iter()
            .filter_map(|d| self.env_index(d).map(|i| (d.clone(), self.envs[i].status)))
            .collect();
        let failed: Vec<String> = deps
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    EnvironmentStatus::Failed
                        | EnvironmentStatus::Skipped
                        | EnvironmentStatus::Terminated
                )
            })
            .map(|(d, _)| d.clone())
            .collect();
        let env = &mut self.envs[e];
        if !failed.is_empty() {
            // Name the environment that actually failed, not an intermediate skip.
            let mut roots = Vec::new();
            for d in &failed {
                let i = self.envs.iter().position(|x| &x.environment == d)?;
                let dep = &self.envs[i];
                if dep.status == EnvironmentStatus::Skipped && !dep.blocked_on.is_empty() {
                    roots.extend(dep.blocked_on.clone());
                } else {
                    roots.push(d.clone());
                }
            }
            roots.sort();
            roots.dedup();
            let env = &mut self.envs[e];
            env.status = EnvironmentStatus::Skipped;
            env.message = format!("skipped: {} did not succeed", roots.join(", "));
            env.blocked_on = roots;
            env.finish_time = Some(now);
            for s in &mut env.steps {
                if !s.status.is_final() {
                    s.status = StepStatus::Skipped;
                }
            }
            return Some(vec![Change::Env(e)]);
        }
        let unfinished: Vec<String> = deps
            .iter()
            .filter(|(_, s)| *s != EnvironmentStatus::Succeeded)
            .map(|(d, _)| d.clone())
            .collect();
        if !unfinished.is_empty() {
            if env.blocked_on != unfinished {
                env.blocked_on = unfinished;
                return Some(vec![Change::Env(e)]);
            }
            return None;
        }
        env.status = EnvironmentStatus::Running;
        env.blocked_on.clear();
        env.message.clear();
        // 0 while never started, 1 on the first run (retries count on).
        env.attempt = env.attempt.max(1);
        if env.start_time.is_none() || env.attempt > 1 {
            env.start_time = Some(now);
        }
        env.finish_time = None;
        Some(vec![Change::Env(e)])
    }

    /// Moves a running environment along its steps. Returns changes, steps
    /// to start, and whether anything progressed.
    fn step_env(&mut self, e: usize, now: Time) -> (Vec<Change>, Vec<StepRef>, bool) {
        let mut changes = Vec::new();
        let mut start = Vec::new();
        let failed = self.envs[e].steps.iter().any(|s| {
            !s.is_outcome_hook() && matches!(s.status, StepStatus::Failed | StepStatus::Terminated)
        });
        // Approvals past their timeout fail.
        for i in 0..self.envs[e].steps.len() {
            let s = &mut self.envs[e].steps[i];
            if s.status == StepStatus::Suspended && s.deadline.is_some_and(|d| now >= d) {
                s.status = StepStatus::Failed;
                s.message = "approval timed out".into();
                s.finish_time = Some(now);
                changes.push(Change::Step(StepRef {
                    env: Some(e),
                    idx: i,
                }));
                return (changes, start, true);
            }
        }
        let env = &self.envs[e];
        // The next step to run: main steps until one fails, then the matching
        // outcome hook.
        let mut next = None;
        for (i, s) in env.steps.iter().enumerate() {
            if s.status.is_final() {
                continue;
            }
            if matches!(s.status, StepStatus::Running | StepStatus::Suspended) {
                // Busy: wait for it. Keep the environment's status in step.
                let want = if s.status == StepStatus::Suspended {
                    EnvironmentStatus::Suspended
                } else {
                    EnvironmentStatus::Running
                };
                if env.status != want {
                    self.envs[e].status = want;
                    changes.push(Change::Env(e));
                    return (changes, start, true);
                }
                return (changes, start, false);
            }
            let skip = match s.kind {
                StepKind::OnSuccess => failed,
                StepKind::OnFail => !failed,
                _ => failed,
            };
            if skip {
                next = Some((i, true));
            } else {
                next = Some((i, false));
            }
            break;
        }
        match next {
            Some((i, true)) => {
                let s = &mut self.envs[e].steps[i];
                s.status = StepStatus::Skipped;
                changes.push(Change::Step(StepRef {
                    env: Some(e),
                    idx: i,
                }));
                (changes, start, true)
            }
            Some((i, false)) => {
                let at = StepRef {
                    env: Some(e),
                    idx: i,
                };
                self.begin_step(at, now);
                if self.envs[e].status != EnvironmentStatus::Running {
                    self.envs[e].status = EnvironmentStatus::Running;
                    changes.push(Change::Env(e));
                }
                changes.push(Change::Step(at));
                start.push(at);
                (changes, start, true)
            }
            None => {
                // Every step is final: the environment's outcome.
                let env = &mut self.envs[e];
                env.finish_time = Some(now);
                if failed {
                    env.status = EnvironmentStatus::Failed;
                    let cause = env
                        .steps
                        .iter()
                        .find(|s| !s.is_outcome_hook() && s.status == StepStatus::Failed)
                        .map(|s| {
                            format!("{} failed: {}", s.kind.as_str().to_lowercase(), s.message)
                        })
                        .unwrap_or_else(|| "failed".into());
                    env.message = cause;
                } else {
                    env.status = EnvironmentStatus::Succeeded;
                    env.message.clear();
                }
                changes.push(Change::Env(e));
                if failed {
                    changes.extend(self.skip_descendants(e, now));
                }
                (changes, start, true)
            }
        }
    }

    /// Marks every environment that depends on `e`, directly or not, skipped.
    fn skip_descendants(&mut self, e: usize, now: Time) -> Vec<Change> {
        let failed = self.envs[e].environment.clone();
        let mut changes = Vec::new();
        let mut frontier = vec![failed.clone()];
        while let Some(name) = frontier.pop() {
            for i in 0..self.envs.len() {
                let env = &mut self.envs[i];
                if env.status == EnvironmentStatus::Pending && env.depends_on.contains(&name) {
                    env.status = EnvironmentStatus::Skipped;
                    env.blocked_on = vec![failed.clone()];
                    env.message = format!("skipped: {failed} did not succeed");
                    env.finish_time = Some(now);
                    for s in &mut env.steps {
                        if !s.status.is_final() {
                            s.status = StepStatus::Skipped;
                        }
                    }
                    changes.push(Change::Env(i));
                    frontier.push(env.environment.clone());
                }
            }
        }
        changes
    }

    /// Updates the release status from its environments; runs the release
    /// outcome hooks and finishes it when nothing is left.
    fn settle_release(&mut self, now: Time, start: &mut Vec<StepRef>) -> Vec<Change> {
        let mut changes = Vec::new();
        let active = self.envs.iter().any(|e| {
            matches!(
                e.status,
                EnvironmentStatus::Pending | EnvironmentStatus::Running
            )
        });
        let suspended = self
            .envs
            .iter()
            .any(|e| e.status == EnvironmentStatus::Suspended);
        let hook_busy = self
            .hooks
            .iter()
            .any(|h| matches!(h.status, StepStatus::Running));
        if active || suspended || hook_busy || !start.is_empty() {
            let want = if !active && suspended && start.is_empty() && !hook_busy {
                ReleaseStatus::Suspended
            } else {
                ReleaseStatus::Running
            };
            if self.status != want {
                self.status = want;
                changes.push(Change::Release);
            }
            return changes;
        }
        let all_ok = self
            .envs
            .iter()
            .all(|e| e.status == EnvironmentStatus::Succeeded)
            && !self
                .hooks
                .iter()
                .any(|h| h.kind == StepKind::OnStart && h.status == StepStatus::Failed);
        // Outcome hooks, once.
        for i in 0..self.hooks.len() {
            let h = &self.hooks[i];
            if h.status != StepStatus::Pending {
                continue;
            }
            let wanted = match h.kind {
                StepKind::OnSuccess => all_ok,
                StepKind::OnFail => !all_ok,
                _ => continue,
            };
            let at = StepRef { env: None, idx: i };
            if wanted {
                self.begin_step(at, now);
                start.push(at);
            } else {
                self.hooks[i].status = StepStatus::Skipped;
            }
            changes.push(Change::Step(at));
            if wanted {
                if self.status != ReleaseStatus::Running {
                    self.status = ReleaseStatus::Running;
                    changes.push(Change::Release);
                }
                return changes;
            }
        }
        self.status = if all_ok {
            ReleaseStatus::Succeeded
        } else {
            ReleaseStatus::Failed
        };
        if !all_ok {
            let failed: Vec<&str> = self
                .envs
                .iter()
                .filter(|e| e.status == EnvironmentStatus::Failed)
                .map(|e| e.environment.as_str())
                .collect();
            self.message = if failed.is_empty() {
                "the release's on_start hook failed".into()
            } else {
                format!("failed in {}", failed.join(", "))
            };
        } else {
            self.message.clear();
        }
        self.finish_time = Some(now);
        changes.push(Change::Release);
        changes
    }

    fn begin_step(&mut self, at: StepRef, now: Time) {
        if let Some(s) = self.step_mut(at) {
            s.status = StepStatus::Running;
            s.attempt = s.attempt.max(1);
            s.start_time = Some(now);
            s.finish_time = None;
            s.message.clear();
        }
    }

    /// Records the outcome of a running step. A step that is no longer
    /// running (terminated meanwhile) ignores it.
    pub fn complete_step(&mut self, at: StepRef, outcome: Outcome, now: Time) -> Vec<Change> {
        let Some(s) = self.step_mut(at) else {
            return Vec::new();
        };
        if s.status != StepStatus::Running {
            return Vec::new();
        }
        s.finish_time = Some(now);
        match outcome {
            Outcome::Succeeded { message, outputs } => {
                s.status = StepStatus::Succeeded;
                s.message = message;
                self.context.extend(outputs);
            }
            Outcome::Failed { message } => {
                s.status = StepStatus::Failed;
                s.message = message;
            }
        }
        vec![Change::Step(at)]
    }

    /// Puts a running step on hold until a person decides (approvals).
    pub fn suspend_step(&mut self, at: StepRef, deadline: Option<Time>) -> Vec<Change> {
        let mut changes = Vec::new();
        if let Some(s) = self.step_mut(at)
            && s.status == StepStatus::Running
        {
            s.status = StepStatus::Suspended;
            s.deadline = deadline;
            changes.push(Change::Step(at));
        }
        if let Some(e) = at.env
            && self.envs[e].status != EnvironmentStatus::Suspended
        {
            self.envs[e].status = EnvironmentStatus::Suspended;
            changes.push(Change::Env(e));
        }
        changes
    }

    /// Approves or rejects the approval step an environment waits on.
    pub fn decide_approval(
        &mut self,
        env: usize,
        approve: bool,
        comment: &str,
        now: Time,
    ) -> Option<Vec<Change>> {
        let i = self.envs[env]
            .steps
            .iter()
            .position(|s| s.status == StepStatus::Suspended)?;
        let s = &mut self.envs[env].steps[i];
        s.finish_time = Some(now);
        if approve {
            s.status = StepStatus::Succeeded;
            s.message = if comment.is_empty() {
                "approved".into()
            } else {
                format!("approved: {comment}")
            };
        } else {
            s.status = StepStatus::Failed;
            s.message = if comment.is_empty() {
                "rejected".into()
            } else {
                format!("rejected: {comment}")
            };
        }
        self.envs[env].status = EnvironmentStatus::Running;
        let mut changes = vec![
            Change::Step(StepRef {
                env: Some(env),
                idx: i,
            }),
            Change::Env(env),
        ];
        // An environment runs again, so the release is no longer waiting
        // (its worker would say so at its next transition; its events must
        // not show a suspended release with a running environment meanwhile).
        if self.status == ReleaseStatus::Suspended {
            self.status = ReleaseStatus::Running;
            changes.push(Change::Release);
        }
        Some(changes)
    }

    /// Asks for termination: the release becomes `TERMINATING` (or, when it
    /// never started, is terminated at once by [`Release::finish_terminate`]).
    pub fn request_terminate(&mut self, reason: &str) -> Vec<Change> {
        if self.status.is_final() || self.status == ReleaseStatus::Terminating {
            return Vec::new();
        }
        self.status = ReleaseStatus::Terminating;
        self.terminate_reason = Some(reason.to_string());
        self.message = format!("terminating: {reason}");
        vec![Change::Release]
    }

    /// Completes a termination once running work has been cancelled:
    /// unfinished steps and environments become `TERMINATED`, then the release.
    pub fn finish_terminate(&mut self, now: Time) -> Vec<Change> {
        if self.status != ReleaseStatus::Terminating {
            return Vec::new();
        }
        let mut changes = Vec::new();
        for i in 0..self.hooks.len() {
            if !self.hooks[i].status.is_final() {
                self.hooks[i].status = if self.hooks[i].status == StepStatus::Pending {
                    StepStatus::Skipped
                } else {
                    StepStatus::Terminated
                };
                self.hooks[i].finish_time = Some(now);
                changes.push(Change::Step(StepRef { env: None, idx: i }));
            }
        }
        for e in 0..self.envs.len() {
            let env = &mut self.envs[e];
            if env.status.is_final() {
                continue;
            }
            for (i, s) in env.steps.iter_mut().enumerate() {
                if !s.status.is_final() {
                    // Cancelled while running or suspended; a step that
                    // never started was skipped (see StepStatus).
                    s.status = if s.status == StepStatus::Pending {
                        StepStatus::Skipped
                    } else {
                        StepStatus::Terminated
                    };
                    if s.start_time.is_some() {
                        s.finish_time = Some(now);
                    }
                    changes.push(Change::Step(StepRef {
                        env: Some(e),
                        idx: i,
                    }));
                }
            }
            env.status = EnvironmentStatus::Terminated;
            env.finish_time = Some(now);
            env.message = "terminated".into();
            changes.push(Change::Env(e));
        }
        self.status = ReleaseStatus::Terminated;
        self.finish_time = Some(now);
        // The reason itself is the message ("timeout", "superseded by
        // release <id>", or the caller's reason), as the API documents.
        self.message = self.terminate_reason.clone().unwrap_or_default();
        changes.push(Change::Release);
        changes
    }

    /// Re-runs a failed or terminated release in place: failed and
    /// terminated environments resume from the step that did not succeed
    /// (with their attempt increased), skipped ones wait again.
    pub fn retry(&mut self, now: Time) -> Option<Vec<Change>> {
        if !matches!(
            self.status,
            ReleaseStatus::Failed | ReleaseStatus::Terminated
        ) {
            return None;
        }
        let mut changes = Vec::new();
        for e in 0..self.envs.len() {
            let env = &mut self.envs[e];
            match env.status {
                EnvironmentStatus::Failed | EnvironmentStatus::Terminated => {
                    // Terminated before it started: its first run is still
                    // attempt 1.
                    if env.start_time.is_some() {
                        env.attempt += 1;
                    }
                    for (i, s) in env.steps.iter_mut().enumerate() {
                        if s.status != StepStatus::Succeeded || s.is_outcome_hook() {
                            // A step that ran runs again as a new attempt
                            // (new idempotency key; late results of the old
                            // one are ignored); one that never started
                            // stays at 0 until it does.
                            if s.start_time.is_some() {
                                s.attempt += 1;
                            }
                            if s.status != StepStatus::Pending {
                                changes.push(Change::Step(StepRef {
                                    env: Some(e),
                                    idx: i,
                                }));
                            }
                            s.status = StepStatus::Pending;
                            s.message.clear();
                            s.deadline = None;
                            s.start_time = None;
                            s.finish_time = None;
                        }
                    }
                    env.status = EnvironmentStatus::Pending;
                    env.blocked_on = env.depends_on.clone();
                    env.message.clear();
                    env.finish_time = None;
                    changes.push(Change::Env(e));
                }
                EnvironmentStatus::Skipped => {
                    for s in env.steps.iter_mut() {
                        s.status = StepStatus::Pending;
                    }
                    env.status = EnvironmentStatus::Pending;
                    env.blocked_on = env.depends_on.clone();
                    env.message.clear();
                    env.finish_time = None;
                    changes.push(Change::Env(e));
                }
                _ => {}
            }
        }
        for (i, h) in self.hooks.iter_mut().enumerate() {
            if h.kind != StepKind::OnStart || h.status != StepStatus::Succeeded {
                if h.start_time.is_some() {
                    h.attempt += 1;
                }
                h.status = StepStatus::Pending;
                h.message.clear();
                h.start_time = None;
                h.finish_time = None;
                changes.push(Change::Step(StepRef { env: None, idx: i }));
            }
        }
        self.status = ReleaseStatus::Running;
        self.message.clear();
        self.terminate_reason = None;
        self.finish_time = None;
        self.deadline = self
            .promotion_timeout_secs
            .map(|s| now + chrono::Duration::seconds(s.min(i64::MAX as u64 / 2) as i64));
        changes.push(Change::Release);
        Some(changes)
    }
}

/// The body of one event: what changed, with the full new state of that
/// thing, so a watcher never needs to fetch to stay current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventBody {
    /// The whole release (the first event of every release).
    Snapshot(Box<Release>),
    Release {
        status: ReleaseStatus,
        message: String,
        counters: Counters,
        start_time: Option<Time>,
        finish_time: Option<Time>,
    },
    Environment(Box<EnvRun>),
    Step {
        /// Empty for release-level hooks.
        environment: String,
        index: usize,
        step: StepRun,
    },
}

impl Release {
    /// The event body describing `change` in the current state.
    pub fn event_body(&self, change: Change) -> Option<EventBody> {
        Some(match change {
            Change::Release => EventBody::Release {
                status: self.status,
                message: self.message.clone(),
                counters: self.counters(),
                start_time: self.start_time,
                finish_time: self.finish_time,
            },
            Change::Env(e) => EventBody::Environment(Box::new(self.envs.get(e)?.clone())),
            Change::Step(at) => EventBody::Step {
                environment: at
                    .env
                    .and_then(|e| self.envs.get(e))
                    .map(|e| e.environment.clone())
                    .unwrap_or_default(),
                index: at.idx,
                step: self.step(at)?.clone(),
            },
        })
    }
}

impl EventBody {
    /// True when this event leaves the release in a final state: the last
    /// event a watcher of the release receives.
    pub fn is_final(&self) -> bool {
        match self {
            EventBody::Release { status, .. } => status.is_final(),
            EventBody::Snapshot(r) => r.status.is_final(),
            _ => false,
        }
    }
}
