//! Flows: specs, policies, hooks, plans, edits and their violation paths.

use super::{check, duration_ms_in, duration_out, enum_in, timestamp};
use crate::domain::edit::{self, Edit, RemoveMode};
use crate::domain::flow::{Action, FlowSpec, Hooks, Plan, Policy, Step};
use crate::domain::{Violation, Violations};
use crate::error::{Error, Result};
use crate::proto::v1 as pb;
use crate::proto::v1::flow_edit::Edit as PbEdit;
use crate::proto::v1::flow_edit::remove_environment::Mode;
use crate::store::flows::StoredFlow;

impl From<Action> for pb::PromotionAction {
    fn from(a: Action) -> Self {
        match a {
            Action::None => Self::None,
            Action::Commit => Self::Commit,
            Action::PullRequest => Self::PullRequest,
        }
    }
}

/// `UNSPECIFIED` is the documented default, no action.
impl From<pb::PromotionAction> for Action {
    fn from(a: pb::PromotionAction) -> Self {
        match a {
            pb::PromotionAction::Commit => Self::Commit,
            pb::PromotionAction::PullRequest => Self::PullRequest,
            pb::PromotionAction::None | pb::PromotionAction::Unspecified => Self::None,
        }
    }
}

/// An optional name: proto3 spells "unset" as the empty string.
fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn hooks_in(h: Option<&pb::Hooks>) -> Hooks {
    h.map(|h| Hooks {
        on_start: opt(&h.on_start),
        on_success: opt(&h.on_success),
        on_fail: opt(&h.on_fail),
    })
    .unwrap_or_default()
}

fn hooks_out(h: &Hooks) -> Option<pb::Hooks> {
    (!h.is_empty()).then(|| pb::Hooks {
        on_start: h.on_start.clone().unwrap_or_default(),
        on_success: h.on_success.clone().unwrap_or_default(),
        on_fail: h.on_fail.clone().unwrap_or_default(),
    })
}

fn policy_in(v: &mut Violations, field: &str, p: Option<&pb::Policy>) -> Policy {
    p.map(|p| Policy {
        pre_action: opt(&p.pre_action),
        action: enum_in::<pb::PromotionAction>(v, &format!("{field}.action"), p.action)
            .filter(|a| *a != pb::PromotionAction::Unspecified)
            .map(Action::from),
        post_action: opt(&p.post_action),
    })
    .unwrap_or_default()
}

fn policy_out(p: &Policy) -> pb::Policy {
    pb::Policy {
        pre_action: p.pre_action.clone().unwrap_or_default(),
        action: p
            .action
            .map_or(pb::PromotionAction::Unspecified, pb::PromotionAction::from)
            as i32,
        post_action: p.post_action.clone().unwrap_or_default(),
    }
}

/// Whole seconds of a duration; `Some(0)` for zero or sub-second values so
/// validation reports "must be positive", and a violation when negative.
fn seconds_in(v: &mut Violations, field: &str, d: Option<&prost_types::Duration>) -> Option<u64> {
    duration_ms_in(v, field, d).map(|ms| ms / 1000)
}

/// Decodes a flow; violations are collected in `v` with paths relative to
/// the flow (`steps[0].policy.action`). `max_steps` is the server's limit.
pub fn spec_in(v: &mut Violations, f: &pb::Flow, max_steps: usize) -> FlowSpec {
    if f.steps.len() > max_steps {
        // Don't decode a huge request: validation reports the limit.
        v.push(
            "steps",
            format!("at most {max_steps} steps, got {}", f.steps.len()),
        );
    }
    FlowSpec {
        name: f.name.clone(),
        description: f.description.clone(),
        trigger_environment: f.trigger_environment.clone(),
        trigger_workflow: opt(&f.trigger_workflow),
        promotion_timeout_secs: seconds_in(v, "promotion_timeout", f.promotion_timeout.as_ref()),
        hooks: hooks_in(f.hooks.as_ref()),
        steps: f
            .steps
            .iter()
            .take(max_steps.saturating_add(1))
            .enumerate()
            .map(|(i, s)| Step {
                environment: s.environment.clone(),
                depends_on: s.depends_on.clone(),
                policy: policy_in(v, &format!("steps[{i}].policy"), s.policy.as_ref()),
                hooks: hooks_in(s.hooks.as_ref()),
            })
            .collect(),
        annotations: f
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// A flow spec as a proto flow without stored metadata (version 0, no
/// times): what a client sends to ValidateFlow or CreateFlow.
impl From<FlowSpec> for pb::Flow {
    fn from(spec: FlowSpec) -> Self {
        pb::Flow {
            steps: spec
                .steps
                .iter()
                .map(|st| pb::FlowStep {
                    environment: st.environment.clone(),
                    depends_on: st.depends_on.clone(),
                    policy: Some(policy_out(&st.policy)),
                    hooks: hooks_out(&st.hooks),
                })
                .collect(),
            hooks: hooks_out(&spec.hooks),
            name: spec.name,
            description: spec.description,
            trigger_environment: spec.trigger_environment,
            trigger_workflow: spec.trigger_workflow.unwrap_or_default(),
            promotion_timeout: spec
                .promotion_timeout_secs
                .map(|secs| duration_out(std::time::Duration::from_secs(secs))),
            annotations: spec.annotations.into_iter().collect(),
            version: 0,
            create_time: None,
            update_time: None,
        }
    }
}

pub fn flow_out(s: StoredFlow) -> pb::Flow {
    pb::Flow {
        version: s.version,
        create_time: timestamp(Some(s.create_time)),
        update_time: timestamp(Some(s.update_time)),
        ..pb::Flow::from(s.spec)
    }
}

pub fn plan_out(p: Plan) -> pb::Plan {
    pb::Plan {
        waves: p
            .waves
            .into_iter()
            .map(|environments| pb::Wave { environments })
            .collect(),
    }
}

/// Prefixes flow-relative violation paths with `flow.`, as request paths.
pub fn under_flow(violations: Vec<Violation>) -> Vec<Violation> {
    violations
        .into_iter()
        .map(|x| Violation::new(format!("flow.{}", x.field), x.description))
        .collect()
}

/// The violations of decoding a flow followed by those of validating it,
/// each field reported once (decoding and validation may both flag one).
pub fn merge_violations(decoded: Violations, mut validated: Vec<Violation>) -> Vec<Violation> {
    let mut all = decoded.0;
    validated.retain(|m| !all.iter().any(|a| a.field == m.field));
    all.extend(validated);
    all
}

/// Decodes the edits of an `EditFlow` request; `current` is needed to
/// resolve a removal without a mode.
pub fn edits_in(current: &FlowSpec, edits: &[pb::FlowEdit]) -> Result<Vec<Edit>> {
    let mut v = Violations::new();
    if edits.len() > edit::MAX_EDITS {
        v.push(
            "edits",
            format!("at most {} edits at once", edit::MAX_EDITS),
        );
        return Err(Error::invalid(v.0));
    }
    let mut out = Vec::with_capacity(edits.len());
    for (i, e) in edits.iter().enumerate() {
        let f = format!("edits[{i}]");
        let decoded = match &e.edit {
            None => {
                v.push(&f, "set one of add_environments, remove_environment, set_dependencies, set_policy, set_hooks or set_settings");
                continue;
            }
            Some(PbEdit::AddEnvironments(a)) => Edit::AddEnvironments {
                after: a.after.clone(),
                environments: a.environments.clone(),
                policy: policy_in(
                    &mut v,
                    &format!("{f}.add_environments.policy"),
                    a.policy.as_ref(),
                ),
            },
            Some(PbEdit::RemoveEnvironment(r)) => {
                let mode = match &r.mode {
                    Some(Mode::ReconnectTo(to)) => RemoveMode::Reconnect { to: to.clone() },
                    Some(Mode::RemoveDownstream(true)) => RemoveMode::RemoveDownstream,
                    Some(Mode::RemoveDownstream(false)) => {
                        v.push(
                            format!("{f}.remove_environment.remove_downstream"),
                            "must be true when set; to keep dependents, use reconnect_to",
                        );
                        continue;
                    }
                    None => match edit::remove_mode_unset(current, &r.environment) {
                        Ok(mode) => mode,
                        Err(problem) => {
                            v.push(format!("{f}.remove_environment"), problem);
                            continue;
                        }
                    },
                };
                Edit::RemoveEnvironment {
                    environment: r.environment.clone(),
                    mode,
                }
            }
            Some(PbEdit::SetDependencies(d)) => Edit::SetDependencies {
                environment: d.environment.clone(),
                depends_on: d.depends_on.clone(),
            },
            Some(PbEdit::SetPolicy(p)) => Edit::SetPolicy {
                environment: p.environment.clone(),
                policy: policy_in(&mut v, &format!("{f}.set_policy.policy"), p.policy.as_ref()),
            },
            Some(PbEdit::SetHooks(h)) => Edit::SetHooks {
                environment: opt(&h.environment),
                hooks: hooks_in(h.hooks.as_ref()),
            },
            Some(PbEdit::SetSettings(s)) => {
                Edit::SetSettings {
                    description: s.description.clone(),
                    trigger_environment: s.trigger_environment.clone(),
                    promotion_timeout_secs: s.promotion_timeout.as_ref().map(|d| match seconds_in(
                        &mut v,
                        &format!("{f}.set_settings.promotion_timeout"),
                        Some(d),
                    ) {
                        Some(0) | None => None,
                        Some(secs) => Some(secs),
                    }),
                    trigger_workflow: s.trigger_workflow.as_deref().map(opt),
                }
            }
        };
        out.push(decoded);
    }
    check(v)?;
    Ok(out)
}

/// Paths from `apply_edits`: edit errors stay `edits[i]…`, problems of the
/// resulting flow become `flow.…`.
pub fn edit_violations(violations: Vec<Violation>) -> Error {
    Error::invalid(
        violations
            .into_iter()
            .map(|x| {
                if x.field.starts_with("edits") {
                    x
                } else {
                    Violation::new(format!("flow.{}", x.field), x.description)
                }
            })
            .collect(),
    )
}

pub fn flow_violation_out(x: Violation) -> pb::FlowViolation {
    pb::FlowViolation {
        field: x.field,
        description: x.description,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip() {
        for &a in Action::ALL {
            assert_eq!(Action::from(pb::PromotionAction::from(a)), a);
            assert_eq!(
                pb::PromotionAction::from(a).as_str_name(),
                format!("PROMOTION_ACTION_{a}")
            );
        }
        assert_eq!(Action::from(pb::PromotionAction::Unspecified), Action::None);
    }

    /// A spec survives the trip to proto and back unchanged.
    #[test]
    fn specs_round_trip() {
        let f = pb::Flow {
            name: "f".into(),
            description: "d".into(),
            trigger_environment: "dev".into(),
            trigger_workflow: "build".into(),
            promotion_timeout: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            hooks: Some(pb::Hooks {
                on_start: "gate".into(),
                ..Default::default()
            }),
            steps: vec![pb::FlowStep {
                environment: "qa".into(),
                depends_on: vec!["dev".into()],
                policy: Some(pb::Policy {
                    pre_action: "smoke".into(),
                    action: pb::PromotionAction::Commit as i32,
                    post_action: String::new(),
                }),
                hooks: None,
            }],
            annotations: [("team".to_string(), "a".to_string())].into(),
            ..Default::default()
        };
        let mut v = Violations::new();
        let spec = spec_in(&mut v, &f, 10);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(pb::Flow::from(spec), f);
    }
}
