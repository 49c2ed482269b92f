//! [`Release::advance`]: everything that follows from the current state
//! without running a workflow.

use super::Time;
use super::model::{Change, Release, StepRef};
use crate::domain::status::{EnvironmentStatus, ReleaseStatus, StepKind, StepStatus};

impl Release {
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
            changes.extend(self.request_terminate("timeout", "system:promotion-timeout"));
            return (changes, start);
        }
        // A release-level hook awaiting approval past its timeout fails,
        // like an environment's approval does.
        changes.extend(self.time_out_hook_approvals(now));
        // Release-level on_start runs before anything else; while it runs
        // the release is RUNNING, while it awaits approval SUSPENDED.
        if let Some(i) = self
            .hooks
            .iter()
            .position(|h| h.kind == StepKind::OnStart && !h.status.is_final())
        {
            let at = StepRef { env: None, idx: i };
            if self.hooks[i].status == StepStatus::Pending {
                self.begin_step(at, now);
                changes.push(Change::Step(at));
                start.push(at);
            }
            let want = if self.hooks[i].status == StepStatus::Suspended {
                ReleaseStatus::Suspended
            } else {
                ReleaseStatus::Running
            };
            self.set_status(want, &mut changes);
            super::normalize(&mut changes);
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
        super::normalize(&mut changes);
        (changes, start)
    }

    /// Sets the release's status, recording a release change when it is one.
    pub(super) fn set_status(&mut self, want: ReleaseStatus, changes: &mut Vec<Change>) {
        if self.status != want {
            self.status = want;
            changes.push(Change::Release);
        }
    }

    /// Fails every release-level hook whose approval timed out.
    fn time_out_hook_approvals(&mut self, now: Time) -> Vec<Change> {
        let mut changes = Vec::new();
        for (i, h) in self.hooks.iter_mut().enumerate() {
            if h.status == StepStatus::Suspended && h.deadline.is_some_and(|d| now >= d) {
                h.status = StepStatus::Failed;
                h.message = "approval timed out".into();
                h.finish_time = Some(now);
                changes.push(Change::Step(StepRef { env: None, idx: i }));
            }
        }
        changes
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
        let hook_running = self.hooks.iter().any(|h| h.status == StepStatus::Running);
        // A release-level outcome hook awaiting approval holds the release
        // (SUSPENDED) like an environment's approval does.
        let hook_suspended = self.hooks.iter().any(|h| h.status == StepStatus::Suspended);
        if active || suspended || hook_running || hook_suspended || !start.is_empty() {
            let want =
                if !active && (suspended || hook_suspended) && start.is_empty() && !hook_running {
                    ReleaseStatus::Suspended
                } else {
                    ReleaseStatus::Running
                };
            self.set_status(want, &mut changes);
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
                self.set_status(ReleaseStatus::Running, &mut changes);
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

    pub(super) fn begin_step(&mut self, at: StepRef, now: Time) {
        if let Some(s) = self.step_mut(at) {
            s.status = StepStatus::Running;
            s.attempt = s.attempt.max(1);
            s.start_time = Some(now);
            s.finish_time = None;
            s.message.clear();
            // A re-run opens or adopts its pull request anew.
            s.pull_request = 0;
            // A re-run asks for every approval again.
            s.approval = None;
        }
    }
}
