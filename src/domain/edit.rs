//! Edits: small changes to a flow, applied all together or not at all
//! (the README, "Editing flows"; `proto/promoflow/v1/flow.proto`, `EditFlow`).
//!
//! An edit only fails on its own when it cannot be carried out: it names an
//! environment that is not in the flow, removes the trigger environment, or
//! reconnects to an environment that would close a cycle. Everything else
//! (names, existence in the catalog, dependencies, cycles) is left to
//! validation of the edited flow, so the rules live in one place. Edit
//! errors carry paths such as `edits[2].add_environments.after`; validation
//! errors carry paths into the edited flow such as `steps[4].environment`.
//!
//! Edits apply in order, each to the result of the previous ones; after a
//! failed edit the following edits are still checked (against the flow
//! without the failed one), so a caller sees every problem at once.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::flow::{Catalog, FlowSpec, Hooks, Limits, Plan, Policy, Step, validate_with_limits};
use super::{Violation, Violations};

/// Most edits in one request.
pub const MAX_EDITS: usize = 100;

/// One change to a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edit {
    /// New steps that each depend on `after` (the trigger environment or a
    /// step). Several environments become parallel siblings, which is how
    /// `qa -> {prod, prod-eu, prod-asia}` is built. All get `policy`.
    AddEnvironments {
        after: String,
        environments: Vec<String>,
        policy: Policy,
    },
    /// Removes a step; see [`RemoveMode`] for what happens to its dependents.
    RemoveEnvironment {
        environment: String,
        mode: RemoveMode,
    },
    /// Replaces a step's dependencies.
    SetDependencies {
        environment: String,
        depends_on: Vec<String>,
    },
    /// Replaces a step's policy.
    SetPolicy { environment: String, policy: Policy },
    /// Replaces a step's hooks, or the release-level hooks when `environment`
    /// is `None`.
    SetHooks {
        environment: Option<String>,
        hooks: Hooks,
    },
    /// Changes the flow's settings; `None` leaves a setting as it is, and
    /// `Some(None)` clears an optional one.
    SetSettings {
        description: Option<String>,
        trigger_environment: Option<String>,
        promotion_timeout_secs: Option<Option<u64>>,
        trigger_workflow: Option<Option<String>>,
    },
}

/// What happens to the environments that depend on a removed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveMode {
    /// Its direct dependents depend on `to` instead (a dependency listed
    /// twice as a result is kept once). `to` may be any environment of the
    /// flow except the removed one and those that depend on it.
    Reconnect { to: String },
    /// It goes, and so does every environment that depends on it, directly or not.
    RemoveDownstream,
}

/// Applies `edits` in order to a copy of `spec` and validates the result
/// with the default API limits ([`Limits::API`]). Returns the edited flow and
/// its plan, or every violation; `spec` itself is never changed.
pub fn apply_edits(
    spec: &FlowSpec,
    edits: &[Edit],
    catalog: &dyn Catalog,
) -> Result<(FlowSpec, Plan), Vec<Violation>> {
    apply_edits_with_limits(spec, edits, catalog, Limits::API)
}

/// [`apply_edits`] with explicit size limits (a server's configured ones):
/// edits may not grow the flow beyond `limits.max_steps`, and the result is
/// validated with [`validate_with_limits`].
pub fn apply_edits_with_limits(
    spec: &FlowSpec,
    edits: &[Edit],
    catalog: &dyn Catalog,
    limits: Limits,
) -> Result<(FlowSpec, Plan), Vec<Violation>> {
    let edited = apply_all(spec, edits, limits)?;
    let plan = validate_with_limits(&edited, catalog, limits)?;
    Ok((edited, plan))
}

/// The edits without the final validation: the flow they produce, or the
/// errors of the edits themselves.
fn apply_all(spec: &FlowSpec, edits: &[Edit], limits: Limits) -> Result<FlowSpec, Vec<Violation>> {
    let mut v = Violations::new();
    if edits.is_empty() {
        v.push("edits", "at least one edit is needed");
    } else if edits.len() > MAX_EDITS {
        v.push(
            "edits",
            format!("at most {MAX_EDITS} edits at once, got {}", edits.len()),
        );
    }
    if !v.is_empty() {
        return Err(v.0);
    }

    let mut edited = spec.clone();
    for (i, edit) in edits.iter().enumerate() {
        if let Err(errors) = apply(&mut edited, edit, limits, &format!("edits[{i}]")) {
            v.extend(errors);
        }
    }
    v.finish().map(|()| edited)
}

/// Applies one edit, or changes nothing and says why. `at` is the edit's
/// field path, e.g. `edits[2]`.
fn apply(spec: &mut FlowSpec, edit: &Edit, limits: Limits, at: &str) -> Result<(), Violations> {
    match edit {
        Edit::AddEnvironments {
            after,
            environments,
            policy,
        } => add_environments(
            spec,
            after,
            environments,
            policy,
            limits.max_steps,
            &format!("{at}.add_environments"),
        ),
        Edit::RemoveEnvironment { environment, mode } => {
            remove_environment(spec, environment, mode, &format!("{at}.remove_environment"))
        }
        Edit::SetDependencies {
            environment,
            depends_on,
        } => {
            let step = step_mut(
                spec,
                environment,
                &format!("{at}.set_dependencies.environment"),
                "has no dependencies",
            )?;
            step.depends_on.clone_from(depends_on);
            Ok(())
        }
        Edit::SetPolicy {
            environment,
            policy,
        } => {
            let step = step_mut(
                spec,
                environment,
                &format!("{at}.set_policy.environment"),
                "takes no promotion action (its workflow is the trigger workflow in set_settings)",
            )?;
            step.policy.clone_from(policy);
            Ok(())
        }
        Edit::SetHooks { environment, hooks } => {
            let target = match environment {
                None => &mut spec.hooks,
                Some(env) => {
                    &mut step_mut(
                        spec,
                        env,
                        &format!("{at}.set_hooks.environment"),
                        "has no hooks of its own (leave the environment empty for the release-level hooks)",
                    )?
                    .hooks
                }
            };
            target.clone_from(hooks);
            Ok(())
        }
        Edit::SetSettings {
            description,
            trigger_environment,
            promotion_timeout_secs,
            trigger_workflow,
        } => {
            // Nothing to refuse here: a trigger environment that is also a
            // step, or that leaves steps depending on the old trigger, is
            // reported by validation of the result.
            if let Some(description) = description {
                spec.description.clone_from(description);
            }
            if let Some(trigger) = trigger_environment {
                spec.trigger_environment.clone_from(trigger);
            }
            if let Some(timeout) = promotion_timeout_secs {
                spec.promotion_timeout_secs = *timeout;
            }
            if let Some(workflow) = trigger_workflow {
                spec.trigger_workflow.clone_from(workflow);
            }
            Ok(())
        }
    }
}

fn not_in_flow(env: &str) -> String {
    format!("environment {env} is not in the flow")
}

/// The step of `env`, or a violation at `field` explaining why there is none.
/// `trigger_reason` completes "the trigger environment ..." for the case
/// where `env` is the trigger environment, which has no step.
fn step_mut<'s>(
    spec: &'s mut FlowSpec,
    env: &str,
    field: &str,
    trigger_reason: &str,
) -> Result<&'s mut Step, Violations> {
    let mut v = Violations::new();
    if env == spec.trigger_environment {
        v.push(
            field,
            format!("{env} is the trigger environment, which {trigger_reason}"),
        );
        return Err(v);
    }
    match spec.steps.iter_mut().find(|step| step.environment == env) {
        Some(step) => Ok(step),
        None => {
            v.push(field, not_in_flow(env));
            Err(v)
        }
    }
}

fn add_environments(
    spec: &mut FlowSpec,
    after: &str,
    environments: &[String],
    policy: &Policy,
    max_steps: usize,
    at: &str,
) -> Result<(), Violations> {
    let mut v = Violations::new();
    let nodes: HashSet<&str> = spec.nodes().collect();
    if !nodes.contains(after) {
        v.push(format!("{at}.after"), not_in_flow(after));
    }
    if environments.is_empty() {
        v.push(
            format!("{at}.environments"),
            "at least one environment to add is needed",
        );
    } else if spec.steps.len() + environments.len() > max_steps {
        // Checked before looking at each name so an oversized edit costs
        // nothing more than its length.
        v.push(
            format!("{at}.environments"),
            format!("the flow would have more than {max_steps} steps"),
        );
        return Err(v);
    }
    let mut added = HashSet::with_capacity(environments.len());
    for (k, env) in environments.iter().enumerate() {
        if nodes.contains(env.as_str()) {
            v.push(
                format!("{at}.environments[{k}]"),
                format!("environment {env} is already in the flow"),
            );
        } else if !added.insert(env.as_str()) {
            v.push(
                format!("{at}.environments[{k}]"),
                format!("{env} is listed twice"),
            );
        }
    }
    if !v.is_empty() {
        return Err(v);
    }
    spec.steps.extend(environments.iter().map(|env| Step {
        environment: env.clone(),
        depends_on: vec![after.to_owned()],
        policy: policy.clone(),
        hooks: Hooks::default(),
    }));
    Ok(())
}

fn remove_environment(
    spec: &mut FlowSpec,
    env: &str,
    mode: &RemoveMode,
    at: &str,
) -> Result<(), Violations> {
    let mut v = Violations::new();
    let env_field = format!("{at}.environment");
    if env == spec.trigger_environment {
        v.push(
            env_field,
            format!(
                "{env} is the trigger environment and cannot be removed: choose another trigger environment first"
            ),
        );
        return Err(v);
    }
    if spec.step(env).is_none() {
        v.push(env_field, not_in_flow(env));
        return Err(v);
    }
    let descendants = spec.descendants(env);

    match mode {
        RemoveMode::Reconnect { to } => {
            let to_field = format!("{at}.reconnect_to");
            if to == env {
                v.push(
                    to_field,
                    format!("cannot reconnect to {env}, the environment being removed"),
                );
            } else if !spec.has_node(to) {
                v.push(to_field, not_in_flow(to));
            } else if descendants.binary_search(to).is_ok() {
                v.push(
                    to_field,
                    format!("{to} depends on {env}: reconnecting to it would create a cycle"),
                );
            }
            if !v.is_empty() {
                return Err(v);
            }
            spec.steps.retain(|step| step.environment != env);
            for step in &mut spec.steps {
                if step.depends_on.iter().any(|dep| dep == env) {
                    let mut seen = HashSet::with_capacity(step.depends_on.len());
                    step.depends_on = std::mem::take(&mut step.depends_on)
                        .into_iter()
                        .map(|dep| if dep == env { to.clone() } else { dep })
                        .filter(|dep| seen.insert(dep.clone()))
                        .collect();
                }
            }
        }
        RemoveMode::RemoveDownstream => {
            let doomed: HashSet<&str> = descendants
                .iter()
                .map(String::as_str)
                .chain(std::iter::once(env))
                .collect();
            spec.steps
                .retain(|step| !doomed.contains(step.environment.as_str()));
        }
    }
    Ok(())
}

/// The mode of a removal that names none. Without dependents both modes
/// mean the same, so the removal goes ahead; with dependents the caller has
/// to choose, and the error (for the request's field) names them.
pub fn remove_mode_unset(spec: &FlowSpec, environment: &str) -> Result<RemoveMode, String> {
    let children = spec.children(environment);
    if children.is_empty() {
        Ok(RemoveMode::RemoveDownstream)
    } else {
        Err(format!(
            "{environment} has dependents ({}): choose reconnect_to or remove_downstream",
            children.join(", ")
        ))
    }
}

/// Every environment and workflow name that `spec` or `edits` mention,
/// sorted and without duplicates: what must be looked up in the catalog to
/// validate the edited flow in one pass.
pub fn mentioned_names(spec: &FlowSpec, edits: &[Edit]) -> (Vec<String>, Vec<String>) {
    let mut envs: Vec<String> = spec.nodes().map(str::to_string).collect();
    let mut wfs: Vec<String> = spec.workflow_names().map(str::to_string).collect();
    let policy_wfs = |p: &Policy, wfs: &mut Vec<String>| {
        wfs.extend(p.pre_action.iter().chain(p.post_action.iter()).cloned());
    };
    for e in edits {
        match e {
            Edit::AddEnvironments {
                after,
                environments,
                policy,
            } => {
                envs.push(after.clone());
                envs.extend(environments.iter().cloned());
                policy_wfs(policy, &mut wfs);
            }
            Edit::RemoveEnvironment { environment, mode } => {
                envs.push(environment.clone());
                if let RemoveMode::Reconnect { to } = mode {
                    envs.push(to.clone());
                }
            }
            Edit::SetDependencies {
                environment,
                depends_on,
            } => {
                envs.push(environment.clone());
                envs.extend(depends_on.iter().cloned());
            }
            Edit::SetPolicy {
                environment,
                policy,
            } => {
                envs.push(environment.clone());
                policy_wfs(policy, &mut wfs);
            }
            Edit::SetHooks { environment, hooks } => {
                envs.extend(environment.iter().cloned());
                wfs.extend(hooks.names().map(str::to_string));
            }
            Edit::SetSettings {
                trigger_environment,
                trigger_workflow,
                ..
            } => {
                envs.extend(trigger_environment.iter().cloned());
                wfs.extend(trigger_workflow.iter().flatten().cloned());
            }
        }
    }
    for list in [&mut envs, &mut wfs] {
        list.sort_unstable();
        list.dedup();
    }
    (envs, wfs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::flow::testing::{Everything, dag, fields, flow};
    use crate::domain::flow::{Action, KnownNames, MAX_STEPS};
    use proptest::prelude::*;

    fn catalog() -> KnownNames {
        KnownNames::new(
            [
                "dev",
                "qa",
                "staging",
                "prod",
                "prod-eu",
                "prod-asia",
                "perf",
            ],
            ["notify", "smoke-tests"],
        )
    }

    fn sequential() -> FlowSpec {
        flow("dev", &[("qa", &["dev"]), ("prod", &["qa"])])
    }

    fn add(after: &str, environments: &[&str]) -> Edit {
        Edit::AddEnvironments {
            after: after.to_owned(),
            environments: environments.iter().map(|e| (*e).to_owned()).collect(),
            policy: Policy::default(),
        }
    }

    fn remove(environment: &str, mode: RemoveMode) -> Edit {
        Edit::RemoveEnvironment {
            environment: environment.to_owned(),
            mode,
        }
    }

    fn reconnect(to: &str) -> RemoveMode {
        RemoveMode::Reconnect { to: to.to_owned() }
    }

    fn set_deps(environment: &str, deps: &[&str]) -> Edit {
        Edit::SetDependencies {
            environment: environment.to_owned(),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    /// A `SetSettings` edit; `None` leaves a setting unchanged.
    fn settings(
        description: Option<&str>,
        trigger_environment: Option<&str>,
        promotion_timeout_secs: Option<Option<u64>>,
        trigger_workflow: Option<Option<&str>>,
    ) -> Edit {
        Edit::SetSettings {
            description: description.map(str::to_owned),
            trigger_environment: trigger_environment.map(str::to_owned),
            promotion_timeout_secs,
            trigger_workflow: trigger_workflow.map(|w| w.map(str::to_owned)),
        }
    }

    fn ok(spec: &FlowSpec, edits: &[Edit]) -> (FlowSpec, Plan) {
        apply_edits(spec, edits, &catalog()).expect("edits apply")
    }

    fn err(spec: &FlowSpec, edits: &[Edit]) -> Vec<Violation> {
        apply_edits(spec, edits, &catalog()).expect_err("edits fail")
    }

    fn deps<'s>(spec: &'s FlowSpec, env: &str) -> Vec<&'s str> {
        spec.step(env)
            .map(|s| s.depends_on.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    fn waves(plan: &Plan) -> Vec<Vec<&str>> {
        plan.waves
            .iter()
            .map(|w| w.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn removal_without_a_mode() {
        let spec = sequential();
        assert_eq!(
            remove_mode_unset(&spec, "prod"),
            Ok(RemoveMode::RemoveDownstream)
        );
        assert_eq!(
            remove_mode_unset(&spec, "qa"),
            Err("qa has dependents (prod): choose reconnect_to or remove_downstream".to_owned())
        );
    }

    #[test]
    fn mentioned_names_cover_the_flow_and_every_edit() {
        let mut spec = sequential();
        spec.hooks.on_start = Some("notify".into());
        let edits = [
            Edit::AddEnvironments {
                after: "qa".into(),
                environments: vec!["perf".into(), "prod".into()],
                policy: Policy {
                    pre_action: Some("smoke-tests".into()),
                    ..Policy::default()
                },
            },
            remove("prod", reconnect("staging")),
            set_deps("perf", &["qa", "x-dep"]),
            Edit::SetHooks {
                environment: Some("h-env".into()),
                hooks: Hooks {
                    on_fail: Some("page".into()),
                    ..Hooks::default()
                },
            },
            settings(None, Some("trigger"), None, Some(Some("gate"))),
        ];
        let (envs, wfs) = mentioned_names(&spec, &edits);
        assert_eq!(
            envs,
            [
                "dev", "h-env", "perf", "prod", "qa", "staging", "trigger", "x-dep"
            ]
        );
        assert_eq!(wfs, ["gate", "notify", "page", "smoke-tests"]);
    }

    #[test]
    fn quick_start_sequential_by_edits() {
        let start = flow("dev", &[("qa", &["dev"])]);
        let (spec, plan) = ok(&start, &[add("qa", &["prod"])]);
        assert_eq!(spec, sequential());
        assert_eq!(waves(&plan), [vec!["dev"], vec!["qa"], vec!["prod"]]);
    }

    #[test]
    fn quick_start_parallel_by_edits() {
        let start = flow("dev", &[("qa", &["dev"])]);
        let commit = Policy {
            action: Some(Action::Commit),
            ..Policy::default()
        };
        let edit = Edit::AddEnvironments {
            after: "qa".to_owned(),
            environments: vec!["prod".into(), "prod-eu".into(), "prod-asia".into()],
            policy: commit.clone(),
        };
        let (spec, plan) = ok(&start, &[edit]);
        assert_eq!(
            waves(&plan),
            [
                vec!["dev"],
                vec!["qa"],
                vec!["prod", "prod-asia", "prod-eu"]
            ]
        );
        for env in ["prod", "prod-eu", "prod-asia"] {
            assert_eq!(deps(&spec, env), ["qa"]);
            assert_eq!(spec.step(env).map(|s| &s.policy), Some(&commit));
        }
    }

    #[test]
    fn quick_start_dependency_by_edits() {
        let (spec, plan) = ok(
            &sequential(),
            &[
                add("dev", &["staging"]),
                set_deps("prod", &["qa", "staging"]),
            ],
        );
        assert_eq!(deps(&spec, "staging"), ["dev"]);
        assert_eq!(
            waves(&plan),
            [vec!["dev"], vec!["qa", "staging"], vec!["prod"]]
        );
    }

    #[test]
    fn add_environments_errors() {
        let violations = err(
            &sequential(),
            &[
                add("qa", &["staging"]),
                add("perf", &["prod-eu"]),
                add("qa", &["prod", "prod-eu", "prod-eu"]),
                add("qa", &[]),
            ],
        );
        assert_eq!(
            fields(&violations),
            [
                "edits[1].add_environments.after",
                "edits[2].add_environments.environments[0]",
                "edits[2].add_environments.environments[2]",
                "edits[3].add_environments.environments",
            ]
        );
        assert_eq!(
            violations[0].description,
            "environment perf is not in the flow"
        );
        assert_eq!(
            violations[1].description,
            "environment prod is already in the flow"
        );
        assert_eq!(violations[2].description, "prod-eu is listed twice");
    }

    #[test]
    fn added_environments_are_validated() {
        // The edit itself is fine; the result is checked by `validate`.
        let violations = err(&sequential(), &[add("qa", &["mars", "Bad"])]);
        assert_eq!(
            fields(&violations),
            ["steps[2].environment", "steps[3].environment"]
        );
        assert!(violations[0].description.contains("does not exist"));
    }

    #[test]
    fn remove_and_reconnect() {
        let start = flow(
            "dev",
            &[
                ("qa", &["dev"]),
                ("staging", &["qa"]),
                ("prod", &["staging", "qa"]),
                ("prod-eu", &["staging"]),
            ],
        );
        let (spec, _) = ok(&start, &[remove("staging", reconnect("qa"))]);
        assert!(!spec.has_node("staging"));
        // prod had [staging, qa]: qa replaces staging, and is kept once.
        assert_eq!(deps(&spec, "prod"), ["qa"]);
        assert_eq!(deps(&spec, "prod-eu"), ["qa"]);

        let (spec, _) = ok(&start, &[remove("qa", reconnect("dev"))]);
        assert_eq!(deps(&spec, "staging"), ["dev"]);
        assert_eq!(deps(&spec, "prod"), ["staging", "dev"]);
    }

    #[test]
    fn remove_the_last_environment() {
        let (spec, _) = ok(
            &sequential(),
            &[remove("prod", RemoveMode::RemoveDownstream)],
        );
        assert_eq!(spec, flow("dev", &[("qa", &["dev"])]));
        let (spec, _) = ok(&sequential(), &[remove("prod", reconnect("dev"))]);
        assert_eq!(spec, flow("dev", &[("qa", &["dev"])]));
    }

    #[test]
    fn remove_downstream() {
        let start = flow(
            "dev",
            &[
                ("qa", &["dev"]),
                ("staging", &["dev"]),
                ("prod", &["qa", "staging"]),
                ("prod-eu", &["prod"]),
            ],
        );
        let (spec, plan) = ok(&start, &[remove("qa", RemoveMode::RemoveDownstream)]);
        assert_eq!(spec, flow("dev", &[("staging", &["dev"])]));
        assert_eq!(waves(&plan), [vec!["dev"], vec!["staging"]]);
    }

    #[test]
    fn remove_errors() {
        let violations = err(
            &sequential(),
            &[
                remove("dev", RemoveMode::RemoveDownstream),
                remove("perf", RemoveMode::RemoveDownstream),
                remove("qa", reconnect("qa")),
                remove("qa", reconnect("prod")),
                remove("qa", reconnect("perf")),
            ],
        );
        assert_eq!(
            fields(&violations),
            [
                "edits[0].remove_environment.environment",
                "edits[1].remove_environment.environment",
                "edits[2].remove_environment.reconnect_to",
                "edits[3].remove_environment.reconnect_to",
                "edits[4].remove_environment.reconnect_to",
            ]
        );
        assert!(
            violations[0]
                .description
                .contains("trigger environment and cannot be removed")
        );
        assert!(violations[3].description.contains("would create a cycle"));
    }

    #[test]
    fn removing_every_step_fails_validation() {
        let violations = err(&sequential(), &[remove("qa", RemoveMode::RemoveDownstream)]);
        assert_eq!(fields(&violations), ["steps"]);
    }

    #[test]
    fn set_dependencies_into_a_cycle_fails_validation() {
        let violations = err(&sequential(), &[set_deps("qa", &["dev", "prod"])]);
        assert_eq!(fields(&violations), ["steps[1].depends_on"]);
        assert_eq!(
            violations[0].description,
            "dependency cycle: prod -> qa -> prod"
        );
    }

    #[test]
    fn step_edits_refuse_the_trigger_and_unknown_environments() {
        let violations = err(
            &sequential(),
            &[
                set_deps("dev", &["qa"]),
                set_deps("perf", &["qa"]),
                Edit::SetPolicy {
                    environment: "dev".to_owned(),
                    policy: Policy::default(),
                },
                Edit::SetHooks {
                    environment: Some("dev".to_owned()),
                    hooks: Hooks::default(),
                },
                Edit::SetHooks {
                    environment: Some("perf".to_owned()),
                    hooks: Hooks::default(),
                },
            ],
        );
        assert_eq!(
            fields(&violations),
            [
                "edits[0].set_dependencies.environment",
                "edits[1].set_dependencies.environment",
                "edits[2].set_policy.environment",
                "edits[3].set_hooks.environment",
                "edits[4].set_hooks.environment",
            ]
        );
        assert!(
            violations[0]
                .description
                .starts_with("dev is the trigger environment")
        );
        assert_eq!(
            violations[1].description,
            "environment perf is not in the flow"
        );
    }

    #[test]
    fn set_policy_and_hooks() {
        let policy = Policy {
            pre_action: Some("smoke-tests".to_owned()),
            action: Some(Action::PullRequest),
            post_action: None,
        };
        let hooks = Hooks {
            on_fail: Some("notify".to_owned()),
            ..Hooks::default()
        };
        let (spec, _) = ok(
            &sequential(),
            &[
                Edit::SetPolicy {
                    environment: "prod".to_owned(),
                    policy: policy.clone(),
                },
                Edit::SetHooks {
                    environment: Some("qa".to_owned()),
                    hooks: hooks.clone(),
                },
                Edit::SetHooks {
                    environment: None,
                    hooks: hooks.clone(),
                },
            ],
        );
        assert_eq!(spec.step("prod").map(|s| &s.policy), Some(&policy));
        assert_eq!(spec.step("qa").map(|s| &s.hooks), Some(&hooks));
        assert_eq!(spec.hooks, hooks);

        // Referenced workflows must exist.
        let violations = err(
            &sequential(),
            &[Edit::SetHooks {
                environment: None,
                hooks: Hooks {
                    on_start: Some("missing".to_owned()),
                    ..Hooks::default()
                },
            }],
        );
        assert_eq!(fields(&violations), ["hooks.on_start"]);
    }

    #[test]
    fn set_settings() {
        let mut start = sequential();
        start.promotion_timeout_secs = Some(600);
        start.trigger_workflow = Some("smoke-tests".to_owned());
        let (spec, _) = ok(
            &start,
            &[settings(Some("to production"), None, Some(None), None)],
        );
        assert_eq!(spec.description, "to production");
        assert_eq!(spec.promotion_timeout_secs, None);
        // Unset settings stay as they were.
        assert_eq!(spec.trigger_workflow.as_deref(), Some("smoke-tests"));

        let (spec, _) = ok(&start, &[settings(None, None, Some(Some(60)), Some(None))]);
        assert_eq!(spec.promotion_timeout_secs, Some(60));
        assert_eq!(spec.trigger_workflow, None);

        let violations = err(&start, &[settings(None, None, Some(Some(0)), None)]);
        assert_eq!(fields(&violations), ["promotion_timeout"]);
    }

    #[test]
    fn changing_the_trigger_environment() {
        // To a step: validation refuses, naming the step.
        let violations = err(&sequential(), &[settings(None, Some("qa"), None, None)]);
        assert_eq!(
            fields(&violations),
            ["steps[0].environment", "steps[0].depends_on[0]"]
        );
        assert!(
            violations[0]
                .description
                .contains("qa is the trigger environment")
        );

        // To a new environment, re-pointing the first step in the same request.
        let (spec, plan) = ok(
            &sequential(),
            &[
                settings(None, Some("perf"), None, None),
                set_deps("qa", &["perf"]),
            ],
        );
        assert_eq!(spec.trigger_environment, "perf");
        assert_eq!(waves(&plan)[0], ["perf"]);
    }

    #[test]
    fn edits_are_all_or_nothing() {
        let start = sequential();
        let violations = err(
            &start,
            &[
                add("qa", &["staging"]),
                remove("perf", RemoveMode::RemoveDownstream),
            ],
        );
        assert_eq!(
            fields(&violations),
            ["edits[1].remove_environment.environment"]
        );
        // A later edit sees the effect of an earlier one.
        let (spec, _) = ok(
            &start,
            &[add("qa", &["staging"]), add("staging", &["perf"])],
        );
        assert_eq!(deps(&spec, "perf"), ["staging"]);
    }

    #[test]
    fn edit_count_is_bounded() {
        assert_eq!(fields(&err(&sequential(), &[])), ["edits"]);
        let many = vec![settings(None, None, None, None); MAX_EDITS + 1];
        let violations = err(&sequential(), &many);
        assert_eq!(fields(&violations), ["edits"]);
        assert!(violations[0].description.contains("at most 100 edits"));
    }

    #[test]
    fn adding_beyond_the_step_limit_is_refused() {
        let many: Vec<String> = (0..MAX_STEPS).map(|i| format!("e{i}")).collect();
        let edit = Edit::AddEnvironments {
            after: "dev".to_owned(),
            environments: many,
            policy: Policy::default(),
        };
        let violations = err(&sequential(), &[edit]);
        assert_eq!(
            fields(&violations),
            ["edits[0].add_environments.environments"]
        );
        assert_eq!(
            violations[0].description,
            "the flow would have more than 1000 steps"
        );
    }

    /// `dev -> e0 -> e1 -> ...`: a chain of `n` steps.
    fn chain(n: usize) -> FlowSpec {
        let names: Vec<String> = std::iter::once("dev".to_owned())
            .chain((0..n).map(|i| format!("e{i}")))
            .collect();
        FlowSpec {
            name: "chain".to_owned(),
            trigger_environment: names[0].clone(),
            steps: names
                .windows(2)
                .map(|w| Step {
                    environment: w[1].clone(),
                    depends_on: vec![w[0].clone()],
                    policy: Policy::default(),
                    hooks: Hooks::default(),
                })
                .collect(),
            ..FlowSpec::default()
        }
    }

    #[test]
    fn a_configured_step_limit_is_honoured() {
        let adding = |n: usize| Edit::AddEnvironments {
            after: "dev".to_owned(),
            environments: (0..n).map(|i| format!("new{i}")).collect(),
            policy: Policy::default(),
        };

        // Above the default: a flow the API refuses grows within a larger limit.
        let big = chain(MAX_STEPS + 100);
        let edits = [adding(50)];
        let larger = Limits::with_max_steps(MAX_STEPS + 150);
        let (edited, plan) =
            apply_edits_with_limits(&big, &edits, &Everything, larger).expect("within the limit");
        assert_eq!(edited.steps.len(), MAX_STEPS + 150);
        assert_eq!(plan.waves.len(), MAX_STEPS + 101);
        let violations = apply_edits(&big, &edits, &Everything).expect_err("default limit");
        assert_eq!(
            fields(&violations),
            ["edits[0].add_environments.environments"]
        );
        assert_eq!(
            violations[0].description,
            "the flow would have more than 1000 steps"
        );
        // One step more than the larger limit is refused, naming it.
        let violations = apply_edits_with_limits(&big, &[adding(51)], &Everything, larger)
            .expect_err("beyond the limit");
        assert_eq!(
            violations[0].description,
            "the flow would have more than 1150 steps"
        );

        // Below the default: sequential (2 steps) may grow to 4, not to 5.
        let small = Limits::with_max_steps(4);
        let ok = [add("qa", &["staging", "perf"])];
        let (edited, _) =
            apply_edits_with_limits(&sequential(), &ok, &catalog(), small).expect("4 steps");
        assert_eq!(edited.steps.len(), 4);
        let too_many = [add("qa", &["staging", "perf", "prod-eu"])];
        let violations = apply_edits_with_limits(&sequential(), &too_many, &catalog(), small)
            .expect_err("5 steps");
        assert_eq!(
            fields(&violations),
            ["edits[0].add_environments.environments"]
        );
        assert_eq!(
            violations[0].description,
            "the flow would have more than 4 steps"
        );
        // Edits that add nothing still have the result validated with the
        // limit: a flow already beyond it is refused as a whole.
        let settings_only = [settings(Some("x"), None, None, None)];
        let violations = apply_edits_with_limits(&chain(5), &settings_only, &Everything, small)
            .expect_err("validated with the limit");
        assert_eq!(fields(&violations), ["steps"]);
        assert_eq!(
            violations[0].description,
            "a flow has at most 4 steps, this one has 5"
        );
    }

    /// Every dependency of every step names a node of the flow.
    fn dangling(spec: &FlowSpec) -> Vec<(String, String)> {
        let nodes: HashSet<&str> = spec.nodes().collect();
        spec.edges()
            .filter(|(dep, _)| !nodes.contains(dep))
            .map(|(dep, env)| (env.to_owned(), dep.to_owned()))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Removing an environment, either way, never leaves a dependency on
        /// an environment that is gone, and the result is valid unless no
        /// step is left.
        #[test]
        fn remove_never_dangles(
            spec in dag(25),
            victim in any::<prop::sample::Index>(),
            target in any::<prop::sample::Index>(),
            downstream in any::<bool>(),
        ) {
            let env = spec.steps[victim.index(spec.steps.len())].environment.clone();
            let mode = if downstream {
                RemoveMode::RemoveDownstream
            } else {
                let descendants = spec.descendants(&env);
                let allowed: Vec<&str> = spec.nodes()
                    .filter(|n| *n != env && !descendants.iter().any(|d| d == n))
                    .collect();
                RemoveMode::Reconnect { to: allowed[target.index(allowed.len())].to_owned() }
            };
            let edits = [Edit::RemoveEnvironment { environment: env.clone(), mode }];
            let edited = apply_all(&spec, &edits, Limits::API).expect("removal of a step applies");
            prop_assert!(!edited.has_node(&env));
            prop_assert_eq!(dangling(&edited), vec![]);
            match apply_edits(&spec, &edits, &Everything) {
                Ok((valid, _)) => prop_assert_eq!(valid, edited),
                Err(violations) => {
                    prop_assert!(edited.steps.is_empty());
                    prop_assert_eq!(fields(&violations), ["steps"]);
                }
            }
        }
    }
}
