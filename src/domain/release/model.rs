//! The data of a release: its environment runs, step runs, counters and
//! event bodies, and the read-only questions the engine asks of it.

use serde::{Deserialize, Serialize};

use super::Time;
use crate::domain::flow::{Action, FlowSpec};
use crate::domain::status::{EnvironmentStatus, ReleaseStatus, StepKind, StepStatus};

/// One step of an environment run (or a release-level hook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRun {
    pub kind: StepKind,
    /// Workflow name; empty for the promotion action and the sync wait.
    pub workflow: String,
    pub status: StepStatus,
    pub message: String,
    pub attempt: i32,
    /// When a wait ends or an approval times out; kept across restarts.
    pub deadline: Option<Time>,
    pub start_time: Option<Time>,
    pub finish_time: Option<Time>,
    /// ACTION steps with a Git action: the commit pushed or adopted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit_sha: String,
    /// ACTION steps: a link to the commit or pull request.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// PULL_REQUEST actions: the number of the pull request opened or
    /// adopted (0: none yet). Recorded before the step waits, so a restart
    /// polls this one instead of opening another.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pull_request: i64,
    /// Approval steps, once suspended: the rule they wait under and the
    /// decisions recorded so far (cleared when the step runs again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// How many distinct people must approve, and whether the release's own
/// actor may be one of them (`ApprovalWorkflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRule {
    pub min_approvals: u32,
    pub forbid_self_approval: bool,
}

impl Default for ApprovalRule {
    fn default() -> Self {
        Self {
            min_approvals: 1,
            forbid_self_approval: false,
        }
    }
}

/// An approval step's rule and its decisions, in the order they came.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub rule: ApprovalRule,
    pub decisions: Vec<Decision>,
}

/// One person's decision on an approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The server-computed principal (`token:alice`, `oidc:…`).
    pub principal: String,
    pub approve: bool,
    pub comment: String,
    pub time: Time,
}

impl Approval {
    /// Distinct principals that approved (a principal decides once).
    pub fn approvals(&self) -> usize {
        self.decisions.iter().filter(|d| d.approve).count()
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl StepRun {
    pub(super) fn new(kind: StepKind, workflow: impl Into<String>) -> Self {
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
            commit_sha: String::new(),
            url: String::new(),
            pull_request: 0,
            approval: None,
        }
    }

    /// A PULL_REQUEST action suspended until its pull request is merged or
    /// closed (as opposed to an approval awaiting ApproveEnvironment).
    pub fn awaits_review(&self) -> bool {
        self.kind == StepKind::Action
            && self.status == StepStatus::Suspended
            && self.pull_request > 0
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
    /// Every suspended environment: awaiting approval or review.
    pub suspended: i32,
    /// The suspended environments whose PULL_REQUEST action awaits the
    /// merge of its pull request (a subset of `suspended`).
    #[serde(default)]
    pub awaiting_review: i32,
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
    /// Who triggered it, as the server authenticated them (`token:ci`,
    /// `system:git-poller`, `anonymous` under `--auth none`); empty for
    /// releases stored before actors were recorded.
    pub actor: String,
    /// Who terminated it (a principal, or `system:<what>` when the server
    /// did, as when a newer release supersedes it); empty otherwise.
    #[serde(default)]
    pub terminated_by: String,
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
    /// The trigger application's commit the release promotes; empty when
    /// that application is not Git-backed.
    #[serde(default)]
    pub source_commit: String,
    /// What the release promotes, read from `source_commit` at trigger.
    /// Stored in its own column, not in events (it may hold whole files);
    /// shared, because every copy of the release (the worker's cache, the
    /// snapshot event, each step task of a Git environment) would otherwise
    /// copy those files.
    #[serde(skip)]
    pub promotion: Option<std::sync::Arc<crate::domain::gitops::Promotion>>,
    pub hooks: Vec<StepRun>,
    pub envs: Vec<EnvRun>,
}

/// What a Git action made: the commit, and a link to it when known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Artifact {
    pub commit_sha: String,
    pub url: String,
}

/// The outcome of running one step.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        message: String,
        outputs: serde_json::Map<String, serde_json::Value>,
        /// What a Git action made (recorded on the step).
        artifact: Option<Artifact>,
    },
    Failed {
        message: String,
    },
}

impl Release {
    /// A new release of `spec` in `QUEUED` state, with one environment run
    /// per node (trigger first, then the steps in flow order) and its steps.
    /// `application` names each environment's application; `synced` says
    /// whether it is deployed by an Argo CD application, which gives the
    /// environment a SYNC step after its action (whatever the action: with
    /// NONE it waits for Synced and Healthy at any revision, as Codefresh's
    /// environment succeeds only once its application is synced and
    /// healthy).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        spec: &FlowSpec,
        flow_version: i64,
        product: &str,
        version: &str,
        application: &dyn Fn(&str) -> String,
        synced: &dyn Fn(&str) -> bool,
        now: Time,
    ) -> Self {
        let hook_steps =
            |h: &crate::domain::flow::Hooks, steps: &mut Vec<StepRun>, phase: &[StepKind]| {
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
            if synced(&step.environment) {
                steps.push(StepRun::new(StepKind::Sync, ""));
            }
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
                action: step.policy.effective_action(),
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
            actor: String::new(),
            terminated_by: String::new(),
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
            source_commit: String::new(),
            promotion: None,
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
                EnvironmentStatus::Suspended => {
                    c.suspended += 1;
                    if e.steps.iter().any(StepRun::awaits_review) {
                        c.awaiting_review += 1;
                    }
                }
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

    pub(super) fn step_mut(&mut self, at: StepRef) -> Option<&mut StepRun> {
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

    /// Steps that should have a live task: those `RUNNING`, and PULL_REQUEST
    /// actions awaiting review (their task polls the pull request).
    pub fn live_steps(&self) -> Vec<StepRef> {
        let mut out = self.running_steps();
        for (e, env) in self.envs.iter().enumerate() {
            for (i, s) in env.steps.iter().enumerate() {
                if s.awaits_review() {
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
            .chain(self.hooks.iter())
            .filter(|s| s.status == StepStatus::Suspended)
            .filter_map(|s| s.deadline);
        let release = if self.status.is_final() {
            None
        } else {
            self.deadline
        };
        approvals.chain(release).min()
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
        #[serde(default)]
        terminated_by: String,
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
                terminated_by: self.terminated_by.clone(),
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
