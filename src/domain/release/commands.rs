//! Transitions caused from outside the release's own progress: a step's
//! outcome, an approval decision, terminate and retry, and the start of a
//! queued release.

use super::model::{Approval, ApprovalRule, Change, Decision, Release, StepRef};
use super::{Outcome, Time};
use crate::domain::status::{EnvironmentStatus, ReleaseStatus, StepKind, StepStatus};

impl Release {
    /// Moves a queued release to `RUNNING`.
    pub fn start(&mut self, now: Time) -> Vec<Change> {
        if self.status != ReleaseStatus::Queued {
            return Vec::new();
        }
        self.status = ReleaseStatus::Running;
        self.start_time = Some(now);
        // The queue's "queued behind …" no longer applies.
        self.message.clear();
        self.deadline = self
            .promotion_timeout_secs
            .map(|s| now + chrono::Duration::seconds(s.min(i64::MAX as u64 / 2) as i64));
        vec![Change::Release]
    }

    /// Starts a queued release and takes its first steps at once (the
    /// trigger environment's, the first wave of promotions), as its worker's
    /// first pass would: they are written with the start, in one
    /// transaction instead of two. Returns the changes, normalized.
    pub fn start_and_advance(&mut self, now: Time) -> Vec<Change> {
        let before = self.counters();
        let mut changes = self.start(now);
        if changes.is_empty() {
            return changes;
        }
        changes.extend(self.advance(now).0);
        self.announce_counters(before, &mut changes);
        super::normalize(&mut changes);
        changes
    }

    /// Records the outcome of a running step. A step that is no longer
    /// running (terminated meanwhile) ignores it.
    pub fn complete_step(&mut self, at: StepRef, outcome: Outcome, now: Time) -> Vec<Change> {
        let Some(s) = self.step_mut(at) else {
            return Vec::new();
        };
        // A pull request's merge or close ends a suspended PULL_REQUEST
        // action; nothing else ends a step that is not running.
        let reviewed = s.awaits_review();
        if s.status != StepStatus::Running && !reviewed {
            return Vec::new();
        }
        s.finish_time = Some(now);
        match outcome {
            Outcome::Succeeded {
                message,
                outputs,
                artifact,
            } => {
                s.status = StepStatus::Succeeded;
                s.message = message;
                let a = artifact.unwrap_or_default();
                s.commit_sha = a.commit_sha;
                s.url = a.url;
                self.context.extend(outputs);
            }
            Outcome::Failed { message } => {
                s.status = StepStatus::Failed;
                s.message = message;
            }
        }
        let mut changes = vec![Change::Step(at)];
        if reviewed {
            self.resume_env(at.env, &mut changes);
        }
        changes
    }

    /// Records that the PULL_REQUEST action at `at` opened or adopted pull
    /// request `number` (`url`, head commit `head_sha`) and now waits for
    /// it: the step and its environment are `SUSPENDED` with the message
    /// `awaiting pull request #<n> <url>`. Recorded before anything waits,
    /// so a restart polls this pull request instead of opening another.
    pub fn await_review(
        &mut self,
        at: StepRef,
        number: i64,
        url: &str,
        head_sha: &str,
    ) -> Vec<Change> {
        let message = format!("awaiting pull request #{number} {url}");
        let mut changes = Vec::new();
        let Some(s) = self.step_mut(at) else {
            return changes;
        };
        if s.status != StepStatus::Running || s.kind != StepKind::Action || number <= 0 {
            return changes;
        }
        s.status = StepStatus::Suspended;
        s.deadline = None;
        s.pull_request = number;
        s.url = url.to_string();
        s.commit_sha = head_sha.to_string();
        s.message.clone_from(&message);
        changes.push(Change::Step(at));
        if let Some(e) = at.env {
            let env = &mut self.envs[e];
            env.status = EnvironmentStatus::Suspended;
            env.message = message;
            changes.push(Change::Env(e));
        }
        changes
    }

    /// Records what a running step is doing now (a SYNC step's "waiting for
    /// Argo CD: OutOfSync"): its message, and an event, only when the
    /// message changed. A step that is not running ignores it.
    pub fn step_progress(&mut self, at: StepRef, message: &str) -> Vec<Change> {
        match self.step_mut(at) {
            Some(s) if s.status == StepStatus::Running && s.message != message => {
                s.message = message.to_string();
                vec![Change::Step(at)]
            }
            _ => Vec::new(),
        }
    }

    /// A suspended environment whose wait ended runs again (and the
    /// release with it), its "awaiting" message gone.
    fn resume_env(&mut self, env: Option<usize>, changes: &mut Vec<Change>) {
        if let Some(e) = env {
            let env = &mut self.envs[e];
            if env.status == EnvironmentStatus::Suspended {
                env.status = EnvironmentStatus::Running;
                env.message.clear();
                changes.push(Change::Env(e));
            }
        }
        if self.status == ReleaseStatus::Suspended {
            self.set_status(ReleaseStatus::Running, changes);
        }
    }

    /// Puts a running step on hold until people decide (approvals), under
    /// `rule`.
    pub fn suspend_step(
        &mut self,
        at: StepRef,
        deadline: Option<Time>,
        rule: ApprovalRule,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        if let Some(s) = self.step_mut(at)
            && s.status == StepStatus::Running
        {
            s.status = StepStatus::Suspended;
            s.deadline = deadline;
            s.approval = Some(Approval {
                rule,
                decisions: Vec::new(),
            });
            s.message = awaiting(rule, 0);
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

    /// Records `principal`'s decision on the approval an environment waits
    /// on, or, with `env` `None`, a release-level hook awaiting approval.
    /// One rejection fails the step; it succeeds once its rule's number of
    /// distinct principals approved. Each principal decides once, and under
    /// `forbid_self_approval` the release's actor may not approve.
    pub fn decide_approval(
        &mut self,
        env: Option<usize>,
        decision: Decision,
    ) -> Result<Vec<Change>, ApprovalRefused> {
        let actor = self.actor.clone();
        let steps = match env {
            Some(e) => {
                &mut self
                    .envs
                    .get_mut(e)
                    .ok_or(ApprovalRefused::NothingAwaits)?
                    .steps
            }
            None => &mut self.hooks,
        };
        // A pull request awaiting review is decided on the forge, not here.
        let idx = steps
            .iter()
            .position(|s| s.status == StepStatus::Suspended && !s.awaits_review())
            .ok_or(ApprovalRefused::NothingAwaits)?;
        let s = &mut steps[idx];
        // Approvals suspended before rules existed wait for one approval.
        let approval = s.approval.get_or_insert_with(Approval::default);
        if let Some(d) = approval
            .decisions
            .iter()
            .find(|d| d.principal == decision.principal)
        {
            return Err(ApprovalRefused::AlreadyDecided(format!(
                "{} already {} this approval; a second decision by the same principal does not count",
                d.principal,
                if d.approve { "approved" } else { "rejected" }
            )));
        }
        if decision.approve
            && approval.rule.forbid_self_approval
            && !actor.is_empty()
            && decision.principal == actor
        {
            return Err(ApprovalRefused::SelfApproval(format!(
                "{actor} triggered this release and its approval forbids self-approval; another principal with releases.approve must approve"
            )));
        }
        let now = decision.time;
        let comment = decision.comment.clone();
        let by = decision.principal.clone();
        let approve = decision.approve;
        approval.decisions.push(decision);
        let at = StepRef { env, idx };
        let approvals = approval.approvals();
        let rule = approval.rule;
        let suffix = if comment.is_empty() {
            String::new()
        } else {
            format!(": {comment}")
        };
        if approve && (approvals as u32) < rule.min_approvals {
            // Still waiting: only the step changes (its decisions and message).
            s.message = format!("approved by {by}{suffix}; {}", awaiting(rule, approvals));
            return Ok(vec![Change::Step(at)]);
        }
        s.finish_time = Some(now);
        if approve {
            s.status = StepStatus::Succeeded;
            let who: Vec<&str> = approval
                .decisions
                .iter()
                .map(|d| d.principal.as_str())
                .collect();
            s.message = format!("approved by {}{suffix}", who.join(", "));
        } else {
            s.status = StepStatus::Failed;
            s.message = format!("rejected by {by}{suffix}");
        }
        let mut changes = vec![Change::Step(at)];
        if let Some(e) = env {
            self.envs[e].status = EnvironmentStatus::Running;
            changes.push(Change::Env(e));
        }
        // Something runs again, so the release is no longer waiting (its
        // worker would say so at its next transition; its events must not
        // show a suspended release with a running environment meanwhile).
        if self.status == ReleaseStatus::Suspended {
            self.set_status(ReleaseStatus::Running, &mut changes);
        }
        Ok(changes)
    }

    /// Terminates the release for `reason`: at once when it never started
    /// (nothing runs that must be cancelled first), else it becomes
    /// `TERMINATING` and its worker finishes the job.
    pub fn terminate(&mut self, reason: &str, by: &str, now: Time) -> Vec<Change> {
        let mut changes = self.request_terminate(reason, by);
        if self.start_time.is_none() {
            changes.extend(self.finish_terminate(now));
        }
        changes
    }

    /// Asks for termination: the release becomes `TERMINATING` (or, when it
    /// never started, is terminated at once by [`Release::finish_terminate`]).
    pub fn request_terminate(&mut self, reason: &str, by: &str) -> Vec<Change> {
        if self.status.is_final() || self.status == ReleaseStatus::Terminating {
            return Vec::new();
        }
        self.status = ReleaseStatus::Terminating;
        self.terminated_by = by.to_string();
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

/// The message of an approval still waiting for decisions.
fn awaiting(rule: ApprovalRule, approvals: usize) -> String {
    let min = rule.min_approvals.max(1) as usize;
    let mut m = if min == 1 {
        "awaiting approval".to_string()
    } else {
        format!("awaiting approval ({approvals} of {min})")
    };
    if rule.forbid_self_approval {
        m.push_str("; the release's actor may not approve");
    }
    m
}

/// Why a decision on an approval was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRefused {
    /// Nothing there awaits a decision.
    NothingAwaits,
    /// This principal decided already.
    AlreadyDecided(String),
    /// The release's actor may not approve it.
    SelfApproval(String),
}
