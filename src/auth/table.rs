//! The one table of what every RPC needs.
//!
//! Each promoflow method names its permission, the action recorded in the
//! audit log, and whether it changes something (changes are audited; reads
//! are not). The authentication layer checks the permission "somewhere"
//! (some grant holds it); handlers then check it on the object (the flow
//! and environments) with [`crate::api::require`]. A unit test fails when a
//! method of the descriptor set has no entry, so a new RPC cannot be
//! forgotten.

use crate::domain::access::Permission;

/// What one RPC needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub permission: Permission,
    /// `resource.verb`, as the audit log records it.
    pub action: &'static str,
    /// Changes state: audited.
    pub changes: bool,
}

const fn read(permission: Permission, action: &'static str) -> Rule {
    Rule {
        permission,
        action,
        changes: false,
    }
}

const fn write(permission: Permission, action: &'static str) -> Rule {
    Rule {
        permission,
        action,
        changes: true,
    }
}

/// Services anyone may call: load balancers and `grpcurl list` must work
/// without a credential.
pub const PUBLIC_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The rule of `/<package.Service>/<Method>`; `None` for anything that is
/// not a promoflow method.
pub fn rule(path: &str) -> Option<Rule> {
    use Permission::*;
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let service = service.strip_prefix("promoflow.v1.")?;
    Some(match (service, method) {
        ("EnvironmentService", m) => match m {
            "CreateEnvironment" => write(EnvironmentsWrite, "environment.create"),
            "GetEnvironment" => read(EnvironmentsRead, "environment.get"),
            "ListEnvironments" => read(EnvironmentsRead, "environment.list"),
            "UpdateEnvironment" => write(EnvironmentsWrite, "environment.update"),
            "DeleteEnvironment" => write(EnvironmentsWrite, "environment.delete"),
            _ => return None,
        },
        ("ProductService", m) => match m {
            "CreateProduct" => write(ProductsWrite, "product.create"),
            "GetProduct" => read(ProductsRead, "product.get"),
            "ListProducts" => read(ProductsRead, "product.list"),
            "UpdateProduct" => write(ProductsWrite, "product.update"),
            "DeleteProduct" => write(ProductsWrite, "product.delete"),
            "ReportDeployment" => write(DeploymentsReport, "deployment.report"),
            "ImportProduct" => write(ProductsWrite, "product.import"),
            "ExportProduct" => read(ProductsRead, "product.export"),
            "CreatePromotionTemplate" => write(ProductsWrite, "template.create"),
            "GetPromotionTemplate" => read(ProductsRead, "template.get"),
            "ListPromotionTemplates" => read(ProductsRead, "template.list"),
            "UpdatePromotionTemplate" => write(ProductsWrite, "template.update"),
            "DeletePromotionTemplate" => write(ProductsWrite, "template.delete"),
            "ImportPromotionTemplate" => write(ProductsWrite, "template.import"),
            "ExportPromotionTemplate" => read(ProductsRead, "template.export"),
            _ => return None,
        },
        ("WorkflowService", m) => match m {
            "CreateWorkflow" => write(WorkflowsWrite, "workflow.create"),
            "GetWorkflow" => read(WorkflowsRead, "workflow.get"),
            "ListWorkflows" => read(WorkflowsRead, "workflow.list"),
            "UpdateWorkflow" => write(WorkflowsWrite, "workflow.update"),
            "DeleteWorkflow" => write(WorkflowsWrite, "workflow.delete"),
            _ => return None,
        },
        ("FlowService", m) => match m {
            "CreateFlow" => write(FlowsWrite, "flow.create"),
            "GetFlow" => read(FlowsRead, "flow.get"),
            "ListFlows" => read(FlowsRead, "flow.list"),
            "UpdateFlow" => write(FlowsWrite, "flow.update"),
            "DeleteFlow" => write(FlowsWrite, "flow.delete"),
            "ListFlowVersions" => read(FlowsRead, "flow.list_versions"),
            "ValidateFlow" => read(FlowsRead, "flow.validate"),
            "EditFlow" => write(FlowsWrite, "flow.edit"),
            "CopyFlow" => write(FlowsWrite, "flow.copy"),
            "ImportFlow" => write(FlowsWrite, "flow.import"),
            "ExportFlow" => read(FlowsRead, "flow.export"),
            "RenderFlow" => read(FlowsRead, "flow.render"),
            _ => return None,
        },
        ("ReleaseService", m) => match m {
            "TriggerRelease" => write(ReleasesTrigger, "release.trigger"),
            "GetRelease" => read(ReleasesRead, "release.get"),
            "ListReleases" => read(ReleasesRead, "release.list"),
            "TerminateRelease" => write(ReleasesTerminate, "release.terminate"),
            "RetryRelease" => write(ReleasesRetry, "release.retry"),
            "ApproveEnvironment" => write(ReleasesApprove, "release.approve"),
            "WatchRelease" => read(ReleasesRead, "release.watch"),
            "WatchReleases" => read(ReleasesRead, "release.watch_all"),
            _ => return None,
        },
        ("TokenService", m) => match m {
            "CreateToken" => write(TokensManage, "token.create"),
            "ListTokens" => read(TokensManage, "token.list"),
            "RevokeToken" => write(TokensManage, "token.revoke"),
            _ => return None,
        },
        ("AuditService", "ListAuditEvents") => read(AuditRead, "audit.list"),
        _ => return None,
    })
}

/// Whether `path` belongs to a service anyone may call.
pub fn is_public(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .is_some_and(|(service, _)| PUBLIC_SERVICES.contains(&service))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every method of every promoflow service in the descriptor set the
    /// server is built from has a rule; and every rule names a real method.
    #[test]
    fn every_rpc_has_a_rule() {
        let fds = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut seen = 0;
        let mut actions = std::collections::HashSet::new();
        for file in &fds.file {
            let package = file.package();
            if package != "promoflow.v1" {
                continue;
            }
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{package}.{}/{}", service.name(), method.name());
                    let rule = rule(&path).unwrap_or_else(|| panic!("{path} has no rule"));
                    assert!(
                        actions.insert(rule.action),
                        "{path}: action {} twice",
                        rule.action
                    );
                    // Reads change nothing: their names say so.
                    let m = method.name();
                    let reads = ["Get", "List", "Watch", "Validate", "Export", "Render"];
                    assert_eq!(
                        !rule.changes,
                        reads.iter().any(|r| m.starts_with(r)),
                        "{path}: changes = {}",
                        rule.changes
                    );
                    seen += 1;
                }
            }
        }
        assert!(
            seen > 40,
            "only {seen} methods found: the descriptor set is incomplete"
        );
        assert!(rule("/promoflow.v1.FlowService/Nope").is_none());
        assert!(rule("/grpc.health.v1.Health/Check").is_none());
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(!is_public("/promoflow.v1.FlowService/GetFlow"));
    }
}
