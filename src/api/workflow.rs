//! `WorkflowService`.

use tonic::{Request, Response, Status};

use super::{
    Ctx, check, duration_ms_in, duration_ms_out, expected_version, optional_expected_version,
    required, timestamp,
};
use crate::domain::Violations;
use crate::domain::catalog::{
    self, DEFAULT_HTTP_ATTEMPTS, DEFAULT_WORKFLOW_TIMEOUT, Meta, WorkflowKind,
};
use crate::proto::v1 as pb;
use crate::proto::v1::workflow::Kind;
use crate::proto::v1::workflow_service_server::WorkflowService;
use crate::store::PageRequest;

pub struct WorkflowApi {
    ctx: Ctx,
}

impl WorkflowApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

pub fn workflow_out(w: catalog::Workflow) -> pb::Workflow {
    let kind = match w.kind {
        WorkflowKind::Http {
            url,
            headers,
            timeout_ms,
            max_attempts,
        } => Kind::Http(pb::HttpWorkflow {
            url,
            headers: headers.into_iter().collect(),
            timeout: Some(duration_ms_out(timeout_ms)),
            max_attempts: max_attempts as i32,
        }),
        WorkflowKind::Wait { duration_ms } => Kind::Wait(pb::WaitWorkflow {
            duration: Some(duration_ms_out(duration_ms)),
        }),
        WorkflowKind::Approval { timeout_ms } => Kind::Approval(pb::ApprovalWorkflow {
            timeout: timeout_ms.map(duration_ms_out),
        }),
        WorkflowKind::Command {
            argv,
            env,
            timeout_ms,
        } => Kind::Command(pb::CommandWorkflow {
            argv,
            env: env.into_iter().collect(),
            timeout: Some(duration_ms_out(timeout_ms)),
        }),
    };
    pb::Workflow {
        name: w.name,
        description: w.description,
        kind: Some(kind),
        version: w.meta.version,
        create_time: timestamp(w.meta.create_time),
        update_time: timestamp(w.meta.update_time),
    }
}

const DEFAULT_TIMEOUT_MS: u64 = DEFAULT_WORKFLOW_TIMEOUT.as_millis() as u64;

/// Decodes and validates a workflow, filling documented defaults; the
/// violations are collected in `out`.
fn workflow_in(out: &mut Violations, w: &pb::Workflow) -> catalog::Workflow {
    let mut v = Violations::new();
    let kind = match &w.kind {
        None => {
            v.push(
                "workflow.kind",
                "set one of http, wait, approval or command",
            );
            WorkflowKind::Wait { duration_ms: 1 }
        }
        Some(Kind::Http(h)) => WorkflowKind::Http {
            url: h.url.clone(),
            headers: h
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout_ms: duration_ms_in(&mut v, "workflow.http.timeout", h.timeout.as_ref())
                .unwrap_or(DEFAULT_TIMEOUT_MS),
            max_attempts: match h.max_attempts {
                0 => DEFAULT_HTTP_ATTEMPTS,
                n if n < 0 => 0, // reported by validation
                n => n as u32,
            },
        },
        Some(Kind::Wait(wait)) => WorkflowKind::Wait {
            duration_ms: duration_ms_in(&mut v, "workflow.wait.duration", wait.duration.as_ref())
                .unwrap_or(0),
        },
        Some(Kind::Approval(a)) => WorkflowKind::Approval {
            timeout_ms: duration_ms_in(&mut v, "workflow.approval.timeout", a.timeout.as_ref()),
        },
        Some(Kind::Command(c)) => WorkflowKind::Command {
            argv: c.argv.clone(),
            env: c.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            timeout_ms: duration_ms_in(&mut v, "workflow.command.timeout", c.timeout.as_ref())
                .unwrap_or(DEFAULT_TIMEOUT_MS),
        },
    };
    let wf = catalog::Workflow {
        name: w.name.clone(),
        description: w.description.clone(),
        kind,
        meta: Meta::default(),
    };
    // Duration decoding already reported malformed values; don't repeat them.
    let decoded_bad: Vec<String> = v.0.iter().map(|x| x.field.clone()).collect();
    for x in catalog::validate_workflow(&wf).0 {
        if !decoded_bad.contains(&x.field) {
            v.0.push(x);
        }
    }
    out.extend(v);
    wf
}

#[tonic::async_trait]
impl WorkflowService for WorkflowApi {
    async fn create_workflow(
        &self,
        request: Request<pb::CreateWorkflowRequest>,
    ) -> Result<Response<pb::CreateWorkflowResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let wf = workflow_in(&mut v, required("workflow", req.workflow.as_ref())?);
        check(v)?;
        let wf = self.ctx.store.create_workflow(&wf).await?;
        Ok(Response::new(pb::CreateWorkflowResponse {
            workflow: Some(workflow_out(wf)),
        }))
    }

    async fn get_workflow(
        &self,
        request: Request<pb::GetWorkflowRequest>,
    ) -> Result<Response<pb::GetWorkflowResponse>, Status> {
        let name = request.into_inner().name;
        super::check_name_field("name", &name)?;
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
        let req = request.into_inner();
        let mut v = Violations::new();
        let wf = workflow_in(&mut v, required("workflow", req.workflow.as_ref())?);
        let expected = expected_version(&mut v, req.expected_version);
        check(v)?;
        let wf = self.ctx.store.update_workflow(&wf, expected).await?;
        Ok(Response::new(pb::UpdateWorkflowResponse {
            workflow: Some(workflow_out(wf)),
        }))
    }

    async fn delete_workflow(
        &self,
        request: Request<pb::DeleteWorkflowRequest>,
    ) -> Result<Response<pb::DeleteWorkflowResponse>, Status> {
        let req = request.into_inner();
        let expected = optional_expected_version(req.expected_version)?;
        self.ctx.store.delete_workflow(&req.name, expected).await?;
        Ok(Response::new(pb::DeleteWorkflowResponse {}))
    }
}
