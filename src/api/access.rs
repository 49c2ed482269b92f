//! `TokenService` and `AuditService`, and the object-level permission
//! check every handler uses ([`require`]).

use tonic::{Request, Response, Status};

use super::{Ctx, check, check_name_field, enum_in, principal_of, timestamp};
use crate::domain::Violations;
use crate::domain::access::{Grant, Pattern, Permission, Principal, Role, Scope};
use crate::error::Error;
use crate::proto::v1 as pb;
use crate::proto::v1::audit_service_server::AuditService;
use crate::proto::v1::token_service_server::TokenService;
use crate::store::PageRequest;
use crate::store::audit::{self, AuditFilter, AuditResult};
use crate::store::tokens::ApiToken;

/// Longest token lifetime: ten years.
const MAX_TTL_MS: u64 = 10 * 366 * 24 * 3600 * 1000;

/// Fails with PERMISSION_DENIED, naming the permission and scope, unless
/// `principal` holds `p` on `scope`.
pub fn require(principal: &Principal, p: Permission, scope: &Scope<'_>) -> Result<(), Error> {
    principal
        .require(p, scope)
        .map_err(|d| Error::PermissionDenied(d.0))
}

/// [`require`] of `flows.write` on `flow`, which the call's audit row
/// then names.
pub fn require_flow_write(principal: &Principal, flow: &str) -> Result<(), Error> {
    audit::describe(format!("flow/{flow}"), flow, "");
    require(principal, Permission::FlowsWrite, &Scope::flow(flow))
}

fn role_in(v: &mut Violations, role: i32) -> Option<Role> {
    match enum_in::<pb::Role>(v, "role", role)? {
        pb::Role::Unspecified => {
            v.push(
                "role",
                "is required: ROLE_VIEWER, ROLE_PROMOTER, ROLE_EDITOR or ROLE_ADMIN",
            );
            None
        }
        pb::Role::Viewer => Some(Role::Viewer),
        pb::Role::Promoter => Some(Role::Promoter),
        pb::Role::Editor => Some(Role::Editor),
        pb::Role::Admin => Some(Role::Admin),
    }
}

fn role_out(r: Role) -> pb::Role {
    match r {
        Role::Viewer => pb::Role::Viewer,
        Role::Promoter => pb::Role::Promoter,
        Role::Editor => pb::Role::Editor,
        Role::Admin => pb::Role::Admin,
    }
}

fn patterns_in(v: &mut Violations, field: &str, xs: &[String]) -> Vec<Pattern> {
    if xs.len() > 100 {
        v.push(field, "at most 100 patterns");
        return Vec::new();
    }
    xs.iter()
        .enumerate()
        .filter_map(|(i, x)| {
            Pattern::parse(x)
                .map_err(|e| v.push(format!("{field}[{i}]"), e))
                .ok()
        })
        .collect()
}

/// A validated `CreateTokenRequest`: what to grant and for how long.
pub(crate) struct TokenSpec {
    pub grant: Grant,
    pub ttl: Option<std::time::Duration>,
}

/// Validates a `CreateTokenRequest` (every violation at once). The server
/// and the offline `promoflow token create --database-url` share it.
pub(crate) fn token_request_in(req: &pb::CreateTokenRequest) -> Result<TokenSpec, Error> {
    let mut v = Violations::new();
    crate::domain::check_name(&mut v, "name", &req.name);
    let role = role_in(&mut v, req.role);
    let flows = patterns_in(&mut v, "flow_patterns", &req.flow_patterns);
    let environments = patterns_in(&mut v, "environment_patterns", &req.environment_patterns);
    let ttl = super::duration_ms_in(&mut v, "ttl", req.ttl.as_ref()).filter(|ms| *ms > 0);
    if ttl.is_some_and(|ms| ms > MAX_TTL_MS) {
        v.push("ttl", "must be at most 10 years");
    }
    check(v)?;
    Ok(TokenSpec {
        grant: Grant {
            role: role.ok_or_else(|| Error::Internal("role checked above".into()))?,
            flows,
            environments,
        },
        ttl: ttl.map(std::time::Duration::from_millis),
    })
}

fn token_out(t: ApiToken) -> pb::Token {
    let strs = |ps: Vec<Pattern>| ps.into_iter().map(String::from).collect();
    pb::Token {
        name: t.name,
        role: role_out(t.grant.role) as i32,
        flow_patterns: strs(t.grant.flows),
        environment_patterns: strs(t.grant.environments),
        id: t.id,
        create_time: timestamp(Some(t.create_time)),
        expire_time: timestamp(t.expire_time),
        last_used_time: timestamp(t.last_used_time),
        revoke_time: timestamp(t.revoke_time),
        created_by: t.created_by,
    }
}

pub struct TokenApi {
    ctx: Ctx,
}

impl TokenApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let principal = principal_of(&request);
        let req = request.into_inner();
        audit::describe(format!("token/{}", req.name), "", "");
        let spec = token_request_in(&req)?;
        let (token, secret) = crate::auth::create_token(
            &self.ctx.store,
            &req.name,
            &spec.grant,
            &principal.id,
            spec.ttl,
        )
        .await?;
        Ok(Response::new(pb::CreateTokenResponse {
            token: Some(token_out(token)),
            secret,
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse("tokens", req.page_size, &req.page_token)?;
        let page = self.ctx.store.list_tokens(&page).await?;
        Ok(Response::new(pb::ListTokensResponse {
            tokens: page.items.into_iter().map(token_out).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenResponse>, Status> {
        let name = request.into_inner().name;
        audit::describe(format!("token/{name}"), "", "");
        check_name_field("name", &name)?;
        let token = self.ctx.store.revoke_token(&name).await?;
        Ok(Response::new(pb::RevokeTokenResponse {
            token: Some(token_out(token)),
        }))
    }
}

pub struct AuditApi {
    ctx: Ctx,
}

impl AuditApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

fn result_out(r: AuditResult) -> pb::AuditResult {
    match r {
        AuditResult::Ok => pb::AuditResult::Ok,
        AuditResult::Denied => pb::AuditResult::Denied,
        AuditResult::Error => pb::AuditResult::Error,
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        for (field, value) in [
            ("actor", &req.actor),
            ("action", &req.action),
            ("resource", &req.resource),
        ] {
            crate::domain::check_text(&mut v, field, value);
        }
        let result = match enum_in::<pb::AuditResult>(&mut v, "result", req.result) {
            Some(pb::AuditResult::Ok) => Some(AuditResult::Ok),
            Some(pb::AuditResult::Denied) => Some(AuditResult::Denied),
            Some(pb::AuditResult::Error) => Some(AuditResult::Error),
            _ => None,
        };
        check(v)?;
        let page = PageRequest::parse("audit", req.page_size, &req.page_token)?;
        let filter = AuditFilter {
            actor: req.actor,
            action: req.action,
            resource: req.resource,
            result,
        };
        let page = self.ctx.store.list_audit(&filter, &page).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: page
                .items
                .into_iter()
                .map(|e| pb::AuditEvent {
                    id: e.id,
                    time: timestamp(e.time),
                    actor: e.actor,
                    actor_kind: e.actor_kind,
                    action: e.action,
                    resource: e.resource,
                    flow: e.flow,
                    environment: e.environment,
                    result: result_out(e.result) as i32,
                    grpc_code: e.grpc_code,
                    message: e.message,
                    request_id: e.request_id,
                    remote_address: e.remote_address,
                })
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
