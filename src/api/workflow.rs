//! `WorkflowService`.

use tonic::{Request, Response, Status};

use super::convert::catalog::{workflow_in, workflow_out};
use super::{Ctx, check, check_name_field, expected_version, optional_expected_version, required};
use crate::domain::Violations;
use crate::proto::v1 as pb;
use crate::proto::v1::workflow_service_server::WorkflowService;
use crate::store::PageRequest;

pub struct WorkflowApi {
    ctx: Ctx,
}

impl WorkflowApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }

    /// What the response warns of: a command workflow this server would not
    /// run. Saved anyway (another replica may run it), but said now rather
    /// than as a failed step later.
    fn warnings(&self, wf: &crate::domain::catalog::Workflow) -> Vec<String> {
        if wf.is_command() && !self.ctx.engine.allows_commands() {
            vec![format!(
                "workflow {:?} is a command, and this server does not run command workflows: steps using it fail until the server is started with --allow-command-workflows",
                wf.name
            )]
        } else {
            Vec::new()
        }
    }
}

#[tonic::async_trait]
impl WorkflowService for WorkflowApi {
    async fn create_workflow(
        &self,
        request: Request<pb::CreateWorkflowRequest>,
    ) -> Result<Response<pb::CreateWorkflowResponse>, Status> {
        let principal = crate::api::principal_of(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let wf = workflow_in(&mut v, required("workflow", req.workflow.as_ref())?);
        check(v)?;
        require_admin_for_commands(&principal, &wf)?;
        let warnings = self.warnings(&wf);
        let wf = self.ctx.store.create_workflow(&wf).await?;
        Ok(Response::new(pb::CreateWorkflowResponse {
            workflow: Some(workflow_out(wf)),
            warnings,
        }))
    }

    async fn get_workflow(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        let name = request.into_inner().name;
        check_name_field("name", &name)?;
        let wf = self.ctx.store.get_workflow(&name).await?;
        Ok(Response::new(pb::GetWorkflowResponse {
            workflow: Some(workflow_out(wf)),
        }))
    }

    async fn list_workflows(
        &self,
        request: Request<pb::ListWorkflowsRequest>,
    ) -> Result<Response<pb::ListWorkflowsResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse("workflows", req.page_size, &req.page_token)?;
        let page = self.ctx.store.list_workflows(&page).await?;
        Ok(Response::new(pb::ListWorkflowsResponse {
            workflows: page.items.into_iter().map(workflow_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_workflow(
        &self,
        request: Request<pb::UpdateWorkflowRequest>,
    ) -> Result<Response<pb::UpdateWorkflowResponse>, Status> {
        let principal = crate::api::principal_of(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let wf = workflow_in(&mut v, required("workflow", req.workflow.as_ref())?);
        let expected = expected_version(&mut v, req.expected_version);
        check(v)?;
        require_admin_for_commands(&principal, &wf)?;
        let warnings = self.warnings(&wf);
        let wf = self.ctx.store.update_workflow(&wf, expected).await?;
        Ok(Response::new(pb::UpdateWorkflowResponse {
            workflow: Some(workflow_out(wf)),
            warnings,
        }))
    }

    async fn delete_workflow(
        &self,
        request: Request<pb::DeleteWorkflowRequest>,
    ) -> Result<Response<pb::DeleteWorkflowResponse>, Status> {
        let req = request.into_inner();
        check_name_field("name", &req.name)?;
        let expected = optional_expected_version(req.expected_version)?;
        describe_workflow(&req.name);
        self.ctx.store.delete_workflow(&req.name, expected).await?;
        Ok(Response::new(pb::DeleteWorkflowResponse {}))
    }
}

/// Names the workflow a write is about in the call's audit row.
fn describe_workflow(name: &str) {
    crate::store::audit::describe(format!("workflow/{name}"), "", "");
}

/// A `command` workflow runs programs on the server's machine: only a
/// global admin may create or change one. The audit row names it.
fn require_admin_for_commands(
    principal: &crate::domain::access::Principal,
    wf: &crate::domain::catalog::Workflow,
) -> Result<(), crate::error::Error> {
    describe_workflow(&wf.name);
    if wf.is_command() && !principal.is_admin() {
        return Err(crate::error::Error::PermissionDenied(format!(
            "{} may not create or change command workflow {:?}: command workflows run programs on the server and need the admin role",
            principal.id, wf.name
        )));
    }
    Ok(())
}
