//! `EnvironmentService`.

use tonic::{Request, Response, Status};

use super::convert::catalog::{environment_in, environment_out};
use super::{Ctx, check, check_name_field, expected_version, optional_expected_version, required};
use crate::proto::v1 as pb;
use crate::proto::v1::environment_service_server::EnvironmentService;
use crate::store::PageRequest;

pub struct EnvironmentApi {
    ctx: Ctx,
}

/// Names the environment a write is about in the call's audit row.
fn describe_environment(name: &str) {
    crate::store::audit::describe(format!("environment/{name}"), "", name);
}

impl EnvironmentApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl EnvironmentService for EnvironmentApi {
    async fn create_environment(
        &self,
        request: Request<pb::CreateEnvironmentRequest>,
    ) -> Result<Response<pb::CreateEnvironmentResponse>, Status> {
        let req = request.into_inner();
        let mut v = crate::domain::Violations::new();
        let env = environment_in(&mut v, required("environment", req.environment.as_ref())?);
        check(v)?;
        describe_environment(&env.name);
        let env = self.ctx.store.create_environment(&env).await?;
        Ok(Response::new(pb::CreateEnvironmentResponse {
            environment: Some(environment_out(env)),
        }))
    }

    async fn get_environment(
        &self,
        request: Request<pb::GetEnvironmentRequest>,
    ) -> Result<Response<pb::GetEnvironmentResponse>, Status> {
        let name = request.into_inner().name;
        check_name_field("name", &name)?;
        let env = self.ctx.store.get_environment(&name).await?;
        Ok(Response::new(pb::GetEnvironmentResponse {
            environment: Some(environment_out(env)),
        }))
    }

    async fn list_environments(
        &self,
        request: Request<pb::ListEnvironmentsRequest>,
    ) -> Result<Response<pb::ListEnvironmentsResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse("environments", req.page_size, &req.page_token)?;
        let page = self.ctx.store.list_environments(&page).await?;
        Ok(Response::new(pb::ListEnvironmentsResponse {
            environments: page.items.into_iter().map(environment_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_environment(
        &self,
        request: Request<pb::UpdateEnvironmentRequest>,
    ) -> Result<Response<pb::UpdateEnvironmentResponse>, Status> {
        let req = request.into_inner();
        let mut v = crate::domain::Violations::new();
        let env = environment_in(&mut v, required("environment", req.environment.as_ref())?);
        let expected = expected_version(&mut v, req.expected_version);
        check(v)?;
        describe_environment(&env.name);
        let env = self.ctx.store.update_environment(&env, expected).await?;
        Ok(Response::new(pb::UpdateEnvironmentResponse {
            environment: Some(environment_out(env)),
        }))
    }

    async fn delete_environment(
        &self,
        request: Request<pb::DeleteEnvironmentRequest>,
    ) -> Result<Response<pb::DeleteEnvironmentResponse>, Status> {
        let req = request.into_inner();
        check_name_field("name", &req.name)?;
        let expected = optional_expected_version(req.expected_version)?;
        describe_environment(&req.name);
        self.ctx
            .store
            .delete_environment(&req.name, expected)
            .await?;
        Ok(Response::new(pb::DeleteEnvironmentResponse {}))
    }
}
