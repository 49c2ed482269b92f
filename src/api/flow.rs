//! `FlowService`: flows, their versions, edits, YAML and charts.

use tonic::{Request, Response, Status};

use super::{Ctx, check, expected_version, optional_expected_version, required, timestamp};
use crate::domain::edit::{self, Edit, RemoveMode};
use crate::domain::flow::{self, Action, FlowSpec, Hooks, Plan, Policy, Step};
use crate::domain::{Violation, Violations, codefresh};
use crate::error::{Error, Result};
use crate::proto::v1 as pb;
use crate::proto::v1::flow_edit::Edit as PbEdit;
use crate::proto::v1::flow_edit::remove_environment::Mode;
use crate::proto::v1::flow_service_server::FlowService;
use crate::store::PageRequest;
use crate::store::flows::StoredFlow;

pub struct FlowApi {
    ctx: Ctx,
}

impl FlowApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

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

fn action_in(v: &mut Violations, field: &str, value: i32) -> Action {
    match super::enum_in::<pb::PromotionAction>(v, field, value) {
        Some(pb::PromotionAction::Commit) => Action::Commit,
        Some(pb::PromotionAction::PullRequest) => Action::PullRequest,
        _ => Action::None,
    }
}

fn policy_in(v: &mut Violations, field: &str, p: Option<&pb::Policy>) -> Policy {
    p.map(|p| Policy {
        pre_action: opt(&p.pre_action),
        action: action_in(v, &format!("{field}.action"), p.action),
        post_action: opt(&p.post_action),
    })
    .unwrap_or_default()
}

fn policy_out(p: &Policy) -> pb::Policy {
    pb::Policy {
        pre_action: p.pre_action.clone().unwrap_or_default(),
        action: match p.action {
            Action::None => pb::PromotionAction::None,
            Action::Commit => pb::PromotionAction::Commit,
            Action::PullRequest => pb::PromotionAction::PullRequest,
        } as i32,
        post_action: p.post_action.clone().unwrap_or_default(),
    }
}

/// Whole seconds of a duration; `Some(0)` for zero or sub-second values so
/// validation reports "must be positive", and a violation when negative.
fn seconds_in(v: &mut Violations, field: &str, d: Option<&prost_types::Duration>) -> Option<u64> {
    super::duration_ms_in(v, field, d).map(|ms| ms / 1000)
}

/// Decodes a flow; violations are collected in `v` with paths relative to
/// the flow (`steps[0].policy.action`). `max_steps` is the server's limit.
fn spec_in(v: &mut Violations, f: &pb::Flow, max_steps: usize) -> FlowSpec {
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

pub fn flow_out(s: StoredFlow) -> pb::Flow {
    let spec = s.spec;
    pb::Flow {
        name: spec.name,
        description: spec.description,
        trigger_environment: spec.trigger_environment,
        trigger_workflow: spec.trigger_workflow.unwrap_or_default(),
        promotion_timeout: spec
            .promotion_timeout_secs
            .map(|secs| super::duration_out(std::time::Duration::from_secs(secs))),
        hooks: hooks_out(&spec.hooks),
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
        annotations: spec.annotations.into_iter().collect(),
        version: s.version,
        create_time: timestamp(Some(s.create_time)),
        update_time: timestamp(Some(s.update_time)),
    }
}

fn plan_out(p: Plan) -> pb::Plan {
    pb::Plan {
        waves: p
            .waves
            .into_iter()
            .map(|environments| pb::Wave { environments })
            .collect(),
    }
}

/// Prefixes flow-relative violation paths with `flow.`, as request paths.
fn under_flow(violations: Vec<Violation>) -> Vec<Violation> {
    violations
        .into_iter()
        .map(|x| Violation::new(format!("flow.{}", x.field), x.description))
        .collect()
}

impl FlowApi {
    /// The size limits of this server (`--max-flow-steps`).
    fn limits(&self) -> flow::Limits {
        self.ctx.config.flow_limits()
    }

    /// Decodes a flow with this server's step limit.
    fn spec_in(&self, v: &mut Violations, f: &pb::Flow) -> FlowSpec {
        spec_in(v, f, self.limits().max_steps)
    }

    /// Decodes and fully validates a flow against the catalog.
    async fn checked_spec(&self, f: &pb::Flow) -> Result<(FlowSpec, Plan)> {
        let mut v = Violations::new();
        let spec = self.spec_in(&mut v, f);
        let validation = self.validate(&spec).await?;
        match validation {
            Ok(plan) if v.is_empty() => Ok((spec, plan)),
            Ok(_) => Err(Error::invalid(under_flow(v.0))),
            Err(mut more) => {
                let mut all = v.0;
                // Decoding and validation may both flag the same field.
                more.retain(|m| !all.iter().any(|a| a.field == m.field));
                all.extend(more);
                Err(Error::invalid(under_flow(all)))
            }
        }
    }

    /// Validates `spec` against the environments and workflows that exist,
    /// with this server's limits.
    async fn validate(&self, spec: &FlowSpec) -> Result<std::result::Result<Plan, Vec<Violation>>> {
        let limits = self.limits();
        if spec.steps.len() > limits.max_steps {
            // Refused for its size: validation stops before the steps, so
            // only the names of the flow-level settings are looked up (not
            // the oversized list of the steps' ones).
            let envs = [spec.trigger_environment.clone()];
            let workflows: Vec<String> = spec
                .trigger_workflow
                .as_deref()
                .into_iter()
                .chain(spec.hooks.names())
                .map(str::to_string)
                .collect();
            let known = self.ctx.store.known_names_among(&envs, &workflows).await?;
            return Ok(flow::validate_with_limits(spec, &known, limits));
        }
        let known = self.ctx.store.known_names(spec).await?;
        Ok(flow::validate_with_limits(spec, &known, limits))
    }
}

/// Decodes the edits of an `EditFlow` request; `current` is needed to
/// resolve a removal without a mode.
fn edits_in(current: &FlowSpec, edits: &[pb::FlowEdit]) -> Result<Vec<Edit>> {
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
                    None => {
                        let children = current.children(&r.environment);
                        if !children.is_empty() {
                            v.push(
                                format!("{f}.remove_environment"),
                                format!(
                                    "{} has dependents ({}): choose reconnect_to or remove_downstream",
                                    r.environment,
                                    children.join(", ")
                                ),
                            );
                            continue;
                        }
                        // Nothing depends on it: both modes mean the same.
                        RemoveMode::RemoveDownstream
                    }
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
fn edit_violations(violations: Vec<Violation>) -> Error {
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

#[tonic::async_trait]
impl FlowService for FlowApi {
    async fn create_flow(
        &self,
        request: Request<pb::CreateFlowRequest>,
    ) -> Result<Response<pb::CreateFlowResponse>, Status> {
        let req = request.into_inner();
        let (spec, _) = self
            .checked_spec(required("flow", req.flow.as_ref())?)
            .await?;
        let saved = self.ctx.store.create_flow(&spec).await?;
        Ok(Response::new(pb::CreateFlowResponse {
            flow: Some(flow_out(saved)),
        }))
    }

    async fn get_flow(
        &self,
        request: Request<pb::GetFlowRequest>,
    ) -> Result<Response<pb::GetFlowResponse>, Status> {
        let req = request.into_inner();
        let version = optional_version(req.version)?;
        let saved = self.ctx.store.get_flow(&req.name, version).await?;
        Ok(Response::new(pb::GetFlowResponse {
            flow: Some(flow_out(saved)),
        }))
    }

    async fn list_flows(
        &self,
        request: Request<pb::ListFlowsRequest>,
    ) -> Result<Response<pb::ListFlowsResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse("flows", req.page_size, &req.page_token)?;
        let page = self.ctx.store.list_flows(&page).await?;
        Ok(Response::new(pb::ListFlowsResponse {
            flows: page.items.into_iter().map(flow_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_flow(
        &self,
        request: Request<pb::UpdateFlowRequest>,
    ) -> Result<Response<pb::UpdateFlowResponse>, Status> {
        let req = request.into_inner();
        let (spec, _) = self
            .checked_spec(required("flow", req.flow.as_ref())?)
            .await?;
        let expected = {
            let mut v = Violations::new();
            let e = expected_version(&mut v, req.expected_version);
            check(v)?;
            e
        };
        let saved = self.ctx.store.save_flow_version(&spec, expected).await?;
        Ok(Response::new(pb::UpdateFlowResponse {
            flow: Some(flow_out(saved)),
        }))
    }

    async fn delete_flow(
        &self,
        request: Request<pb::DeleteFlowRequest>,
    ) -> Result<Response<pb::DeleteFlowResponse>, Status> {
        let req = request.into_inner();
        let expected = optional_expected_version(req.expected_version)?;
        self.ctx.store.delete_flow(&req.name, expected).await?;
        Ok(Response::new(pb::DeleteFlowResponse {}))
    }

    async fn list_flow_versions(
        &self,
        request: Request<pb::ListFlowVersionsRequest>,
    ) -> Result<Response<pb::ListFlowVersionsResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse(
            &format!("flow-versions:{}", req.name),
            req.page_size,
            &req.page_token,
        )?;
        let page = self.ctx.store.list_flow_versions(&req.name, &page).await?;
        Ok(Response::new(pb::ListFlowVersionsResponse {
            versions: page.items.into_iter().map(flow_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn validate_flow(
        &self,
        request: Request<pb::ValidateFlowRequest>,
    ) -> Result<Response<pb::ValidateFlowResponse>, Status> {
        let req = request.into_inner();
        // Unset is checked as an empty flow (see the proto).
        let f = req.flow.unwrap_or_default();
        let mut v = Violations::new();
        let spec = self.spec_in(&mut v, &f);
        let (violations, plan) = match self.validate(&spec).await? {
            Ok(plan) if v.is_empty() => (Vec::new(), Some(plan_out(plan))),
            Ok(_) => (v.0, None),
            Err(mut more) => {
                let mut all = v.0;
                more.retain(|m| !all.iter().any(|a| a.field == m.field));
                all.extend(more);
                (all, None)
            }
        };
        Ok(Response::new(pb::ValidateFlowResponse {
            violations: violations
                .into_iter()
                .map(|x| pb::FlowViolation {
                    field: x.field,
                    description: x.description,
                })
                .collect(),
            plan,
        }))
    }

    async fn edit_flow(
        &self,
        request: Request<pb::EditFlowRequest>,
    ) -> Result<Response<pb::EditFlowResponse>, Status> {
        let req = request.into_inner();
        let expected = {
            let mut v = Violations::new();
            let e = expected_version(&mut v, req.expected_version);
            check(v)?;
            e
        };
        let current = self.ctx.store.get_flow(&req.name, 0).await?;
        if current.version != expected {
            return Err(Error::stale("flow", &req.name, expected, current.version).into());
        }
        let edits = edits_in(&current.spec, &req.edits)?;
        // Validate against the catalog as it is: look up every name the
        // edited flow could mention, then apply and validate in one pass so
        // every violation is reported together.
        let (envs, workflows) = mentioned_names(&current.spec, &edits);
        let known = self.ctx.store.known_names_among(&envs, &workflows).await?;
        let (edited, _) =
            edit::apply_edits_with_limits(&current.spec, &edits, &known, self.limits())
                .map_err(edit_violations)?;
        let saved = self.ctx.store.save_flow_version(&edited, expected).await?;
        Ok(Response::new(pb::EditFlowResponse {
            flow: Some(flow_out(saved)),
        }))
    }

    async fn copy_flow(
        &self,
        request: Request<pb::CopyFlowRequest>,
    ) -> Result<Response<pb::CopyFlowResponse>, Status> {
        let req = request.into_inner();
        let version = optional_version(req.version)?;
        let mut v = Violations::new();
        crate::domain::check_name(&mut v, "new_name", &req.new_name);
        check(v)?;
        let source = self.ctx.store.get_flow(&req.source, version).await?;
        let mut spec = source.spec;
        spec.name = req.new_name;
        // Validated again: an old version may name a workflow or an
        // environment deleted since (only the latest version holds them).
        if let Err(violations) = self.validate(&spec).await? {
            return Err(Error::invalid(under_flow(violations)).into());
        }
        let saved = self.ctx.store.create_flow(&spec).await?;
        Ok(Response::new(pb::CopyFlowResponse {
            flow: Some(flow_out(saved)),
        }))
    }

    async fn import_flow(
        &self,
        request: Request<pb::ImportFlowRequest>,
    ) -> Result<Response<pb::ImportFlowResponse>, Status> {
        let req = request.into_inner();
        let spec =
            codefresh::from_yaml_with_limits(&req.yaml, self.limits()).map_err(|violations| {
                Error::invalid(
                    violations
                        .into_iter()
                        // The contract: every document problem is on field
                        // `yaml`, the description naming its path.
                        .map(|x| {
                            if x.field == "yaml" {
                                Violation::new("yaml", x.description)
                            } else {
                                Violation::new("yaml", format!("{}: {}", x.field, x.description))
                            }
                        })
                        .collect(),
                )
            })?;
        match self.validate(&spec).await? {
            Ok(_) => {}
            Err(violations) => return Err(Error::invalid(under_flow(violations)).into()),
        }
        let saved = match self.ctx.store.create_flow(&spec).await {
            Err(Error::AlreadyExists(_)) if req.replace => {
                self.ctx.store.save_flow_version(&spec, 0).await?
            }
            Err(Error::AlreadyExists(m)) => {
                return Err(Error::AlreadyExists(format!(
                    "{m}; set replace to save the YAML as its new version"
                ))
                .into());
            }
            other => other?,
        };
        Ok(Response::new(pb::ImportFlowResponse {
            flow: Some(flow_out(saved)),
        }))
    }

    async fn export_flow(
        &self,
        request: Request<pb::ExportFlowRequest>,
    ) -> Result<Response<pb::ExportFlowResponse>, Status> {
        let req = request.into_inner();
        let version = optional_version(req.version)?;
        let saved = self.ctx.store.get_flow(&req.name, version).await?;
        Ok(Response::new(pb::ExportFlowResponse {
            yaml: codefresh::to_yaml(&saved.spec),
        }))
    }

    async fn render_flow(
        &self,
        request: Request<pb::RenderFlowRequest>,
    ) -> Result<Response<pb::RenderFlowResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let format = super::enum_in::<pb::RenderFormat>(&mut v, "format", req.format);
        check(v)?;
        let (spec, statuses) = if req.release_id.is_empty() {
            let version = optional_version(req.version)?;
            (
                self.ctx.store.get_flow(&req.name, version).await?.spec,
                None,
            )
        } else {
            let (spec, statuses) = self.ctx.store.release_graph(&req.release_id).await?;
            (spec, Some(statuses))
        };
        let text = match format {
            Some(pb::RenderFormat::Dot) => {
                crate::domain::render::render_dot(&spec, statuses.as_ref())
            }
            _ => crate::domain::render::render_mermaid(&spec, statuses.as_ref()),
        };
        Ok(Response::new(pb::RenderFlowResponse { text }))
    }
}

/// Every environment and workflow name the current flow or the edits mention.
fn mentioned_names(current: &FlowSpec, edits: &[Edit]) -> (Vec<String>, Vec<String>) {
    let mut envs: Vec<String> = current.nodes().map(str::to_string).collect();
    let mut wfs: Vec<String> = current.workflow_names().map(str::to_string).collect();
    let policy_wfs = |p: &Policy, wfs: &mut Vec<String>| {
        wfs.extend(p.pre_action.iter().chain(p.post_action.iter()).cloned());
    };
    let hook_wfs = |h: &Hooks, wfs: &mut Vec<String>| {
        wfs.extend(
            h.entries()
                .iter()
                .filter_map(|(_, w)| w.map(str::to_string)),
        );
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
                hook_wfs(hooks, &mut wfs);
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

fn optional_version(version: i64) -> Result<i64> {
    if version < 0 {
        Err(Error::invalid_field(
            "version",
            "must not be negative (0 means the latest)",
        ))
    } else {
        Ok(version)
    }
}
