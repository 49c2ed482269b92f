//! `FlowService`: flows, their versions, edits, YAML and charts.

use tonic::{Request, Response, Status};

use super::access::require_flow_write;
use super::convert::flow::{
    edit_violations, edits_in, flow_out, flow_violation_out, merge_violations, plan_out, spec_in,
    under_flow,
};
use super::principal_of;
use super::{
    Ctx, check, check_name_field, check_release_id, expected_version, optional_expected_version,
    optional_version, required, yaml_violations,
};
use crate::domain::edit;
use crate::domain::flow::{self, FlowSpec, Plan};
use crate::domain::{Violation, Violations, codefresh};
use crate::error::{Error, Result};
use crate::proto::v1 as pb;
use crate::proto::v1::flow_service_server::FlowService;
use crate::store::PageRequest;

pub struct FlowApi {
    ctx: Ctx,
}

impl FlowApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
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
            Err(more) => Err(Error::invalid(under_flow(merge_violations(v, more)))),
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

#[tonic::async_trait]
impl FlowService for FlowApi {
    async fn create_flow(
        &self,
        request: Request<pb::CreateFlowRequest>,
    ) -> Result<Response<pb::CreateFlowResponse>, Status> {
        let principal = principal_of(&request);
        let req = request.into_inner();
        let name = req
            .flow
            .as_ref()
            .map(|f| f.name.as_str())
            .unwrap_or_default();
        require_flow_write(&principal, name)?;
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
        check_name_field("name", &req.name)?;
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
        let principal = principal_of(&request);
        let req = request.into_inner();
        let name = req
            .flow
            .as_ref()
            .map(|f| f.name.as_str())
            .unwrap_or_default();
        require_flow_write(&principal, name)?;
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
        let principal = principal_of(&request);
        let req = request.into_inner();
        require_flow_write(&principal, &req.name)?;
        check_name_field("name", &req.name)?;
        let expected = optional_expected_version(req.expected_version)?;
        self.ctx.store.delete_flow(&req.name, expected).await?;
        Ok(Response::new(pb::DeleteFlowResponse {}))
    }

    async fn list_flow_versions(
        &self,
        request: Request<pb::ListFlowVersionsRequest>,
    ) -> Result<Response<pb::ListFlowVersionsResponse>, Status> {
        let req = request.into_inner();
        check_name_field("name", &req.name)?;
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
            Err(more) => (merge_violations(v, more), None),
        };
        Ok(Response::new(pb::ValidateFlowResponse {
            violations: violations.into_iter().map(flow_violation_out).collect(),
            plan,
        }))
    }

    async fn edit_flow(
        &self,
        request: Request<pb::EditFlowRequest>,
    ) -> Result<Response<pb::EditFlowResponse>, Status> {
        let principal = principal_of(&request);
        let req = request.into_inner();
        require_flow_write(&principal, &req.name)?;
        let expected = {
            let mut v = Violations::new();
            crate::domain::check_name(&mut v, "name", &req.name);
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
        let (envs, workflows) = edit::mentioned_names(&current.spec, &edits);
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
        let principal = principal_of(&request);
        let req = request.into_inner();
        require_flow_write(&principal, &req.new_name)?;
        let version = optional_version(req.version)?;
        let mut v = Violations::new();
        crate::domain::check_name(&mut v, "source", &req.source);
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
        let principal = principal_of(&request);
        let req = request.into_inner();
        let spec =
            codefresh::from_yaml_with_limits(&req.yaml, self.limits()).map_err(yaml_violations)?;
        require_flow_write(&principal, &spec.name)?;
        match self.validate(&spec).await? {
            Ok(_) => {}
            Err(violations) => return Err(Error::invalid(under_flow(violations)).into()),
        }
        let mut unchanged = false;
        let saved = match self.ctx.store.create_flow(&spec).await {
            Err(Error::AlreadyExists(_)) if req.replace => {
                let latest = self.ctx.store.get_flow(&spec.name, 0).await?;
                if latest.spec == spec {
                    unchanged = true;
                    latest
                } else {
                    self.ctx.store.save_flow_version(&spec, 0).await?
                }
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
            unchanged,
        }))
    }

    async fn export_flow(
        &self,
        request: Request<pb::ExportFlowRequest>,
    ) -> Result<Response<pb::ExportFlowResponse>, Status> {
        let req = request.into_inner();
        check_name_field("name", &req.name)?;
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
        if req.release_id.is_empty() {
            crate::domain::check_name(&mut v, "name", &req.name);
        } else {
            // The release names its flow; a name alongside must be valid.
            super::check_optional_name(&mut v, "name", &req.name);
        }
        check(v)?;
        let (spec, statuses) = if req.release_id.is_empty() {
            let version = optional_version(req.version)?;
            (
                self.ctx.store.get_flow(&req.name, version).await?.spec,
                None,
            )
        } else {
            check_release_id("release_id", &req.release_id)?;
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
