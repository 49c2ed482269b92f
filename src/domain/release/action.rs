//! Promotion actions: what the `ACTION` step of an environment does, and
//! what its success means for the product.

use super::Outcome;
use super::model::{Release, StepRef};
use crate::domain::flow::Action;
use crate::domain::status::{StepKind, StepStatus};

/// What an action step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Decided without outside work.
    Done(Outcome),
    /// Write the release's promoted values into the target application's
    /// Git source as one commit (the engine's `promote::commit`).
    Commit,
    /// Push the same edit to a branch of its own, open or adopt a pull
    /// request, and wait (suspended) until it is merged or closed (the
    /// engine's `promote::open_pull_request` and `forge::wait_for_merge`).
    PullRequest,
}

/// The plan of an action. `NONE` records the version on the target
/// application (the store does it in the same transaction as the step's
/// success); `COMMIT` writes to Git; `PULL_REQUEST` goes through a pull
/// request.
pub fn plan(action: Action, version: &str, environment: &str) -> Plan {
    match action {
        Action::None => Plan::Done(Outcome::Succeeded {
            message: format!("recorded version {version} in {environment}"),
            outputs: Default::default(),
            artifact: None,
        }),
        Action::Commit => Plan::Commit,
        Action::PullRequest => Plan::PullRequest,
    }
}

impl Release {
    /// The environment whose application now runs the release's version,
    /// when the step at `at` is a promotion action that has succeeded: its
    /// recorded version advances then, even if a later step fails.
    pub fn promoted_environment(&self, at: StepRef) -> Option<&str> {
        let env = self.envs.get(at.env?)?;
        let step = env.steps.get(at.idx)?;
        (step.kind == StepKind::Action && step.status == StepStatus::Succeeded)
            .then_some(env.environment.as_str())
    }
}
