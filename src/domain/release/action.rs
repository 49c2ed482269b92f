//! Promotion actions: what the `ACTION` step of an environment does, and
//! what its success means for the product.

use super::Outcome;
use super::model::{Release, StepRef};
use crate::domain::flow::Action;
use crate::domain::status::{StepKind, StepStatus};

/// The outcome of an action that needs no outside work. `NONE` records the
/// version on the target application (the store does it in the same
/// transaction as the step's success); `COMMIT` and `PULL_REQUEST` write to
/// the application's Git source, which promoflow cannot do yet, so they fail
/// with a message saying what to use instead.
pub fn outcome(action: Action, version: &str, environment: &str) -> Outcome {
    match action {
        Action::None => Outcome::Succeeded {
            message: format!("recorded version {version} in {environment}"),
            outputs: Default::default(),
        },
        Action::Commit | Action::PullRequest => Outcome::Failed {
            message: format!(
                "the {} action is not available yet: promoflow cannot write to an application's Git source; use action NONE",
                action.as_str()
            ),
        },
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
