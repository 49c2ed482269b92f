//! The catalog: environments, workflows, products and their applications.

use super::{duration_ms_in, duration_ms_out, enum_in, timestamp};
use crate::domain::Violations;
use crate::domain::catalog::{
    self, Application, Commit, Concurrency, DEFAULT_HTTP_ATTEMPTS, DEFAULT_WORKFLOW_TIMEOUT,
    EnvironmentKind, Meta, ProductFlow, SelectorKey, SelectorOperator, TriggerSelector,
    WorkflowKind,
};
use crate::domain::gitops::{ArgoCdApp, GitSource, PromotedFile, PromotionTemplate, VersionSource};
use crate::proto::v1 as pb;
use crate::proto::v1::workflow::Kind;

impl From<EnvironmentKind> for pb::EnvironmentKind {
    fn from(k: EnvironmentKind) -> Self {
        match k {
            EnvironmentKind::Production => Self::Production,
            EnvironmentKind::NonProduction => Self::NonProduction,
        }
    }
}

/// `UNSPECIFIED` is the documented default, non-production.
impl From<pb::EnvironmentKind> for EnvironmentKind {
    fn from(k: pb::EnvironmentKind) -> Self {
        match k {
            pb::EnvironmentKind::Production => Self::Production,
            pb::EnvironmentKind::NonProduction | pb::EnvironmentKind::Unspecified => {
                Self::NonProduction
            }
        }
    }
}

impl From<Concurrency> for pb::Concurrency {
    fn from(c: Concurrency) -> Self {
        match c {
            Concurrency::Queue => Self::Queue,
            Concurrency::Terminate => Self::Terminate,
        }
    }
}

/// `UNSPECIFIED` is the documented default, queue.
impl From<pb::Concurrency> for Concurrency {
    fn from(c: pb::Concurrency) -> Self {
        match c {
            pb::Concurrency::Terminate => Self::Terminate,
            pb::Concurrency::Queue | pb::Concurrency::Unspecified => Self::Queue,
        }
    }
}

impl From<SelectorKey> for pb::SelectorKey {
    fn from(k: SelectorKey) -> Self {
        match k {
            SelectorKey::CommitMessage => Self::CommitMessage,
            SelectorKey::GitRevision => Self::GitRevision,
        }
    }
}

/// A selector's key is required: `UNSPECIFIED` is `Err(())`.
impl TryFrom<pb::SelectorKey> for SelectorKey {
    type Error = ();

    fn try_from(k: pb::SelectorKey) -> Result<Self, ()> {
        match k {
            pb::SelectorKey::Unspecified => Err(()),
            pb::SelectorKey::CommitMessage => Ok(Self::CommitMessage),
            pb::SelectorKey::GitRevision => Ok(Self::GitRevision),
        }
    }
}

impl From<SelectorOperator> for pb::SelectorOperator {
    fn from(o: SelectorOperator) -> Self {
        match o {
            SelectorOperator::In => Self::In,
            SelectorOperator::NotIn => Self::NotIn,
        }
    }
}

/// A selector's operator is required: `UNSPECIFIED` is `Err(())`.
impl TryFrom<pb::SelectorOperator> for SelectorOperator {
    type Error = ();

    fn try_from(o: pb::SelectorOperator) -> Result<Self, ()> {
        match o {
            pb::SelectorOperator::Unspecified => Err(()),
            pb::SelectorOperator::In => Ok(Self::In),
            pb::SelectorOperator::NotIn => Ok(Self::NotIn),
        }
    }
}

/// Reads a required enum field: unknown numbers and `UNSPECIFIED` are
/// violations at `field`, and `placeholder` stands in so that decoding goes
/// on (and later entries keep their indexes in paths).
fn required_enum<P, D>(v: &mut Violations, field: &str, value: i32, placeholder: D) -> D
where
    P: TryFrom<i32>,
    D: TryFrom<P, Error = ()>,
{
    match enum_in::<P>(v, field, value).map(D::try_from) {
        Some(Ok(d)) => d,
        Some(Err(())) => {
            v.push(field, "is required");
            placeholder
        }
        None => placeholder,
    }
}

/// A map of a request, as the domain keeps it (sorted).
fn map_in(
    m: &std::collections::HashMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn environment_out(e: catalog::Environment) -> pb::Environment {
    pb::Environment {
        name: e.name,
        kind: pb::EnvironmentKind::from(e.kind) as i32,
        description: e.description,
        labels: e.labels.into_iter().collect(),
        version: e.meta.version,
        create_time: timestamp(e.meta.create_time),
        update_time: timestamp(e.meta.update_time),
    }
}

/// Decodes and validates an environment, collecting violations in `v`.
pub fn environment_in(v: &mut Violations, e: &pb::Environment) -> catalog::Environment {
    let kind = enum_in::<pb::EnvironmentKind>(v, "environment.kind", e.kind)
        .map(EnvironmentKind::from)
        .unwrap_or_default();
    let env = catalog::Environment {
        name: e.name.clone(),
        kind,
        description: e.description.clone(),
        labels: map_in(&e.labels),
        meta: Meta::default(),
    };
    v.extend(catalog::validate_environment(&env));
    env
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
        WorkflowKind::Approval {
            timeout_ms,
            min_approvals,
            forbid_self_approval,
        } => Kind::Approval(pb::ApprovalWorkflow {
            timeout: timeout_ms.map(duration_ms_out),
            min_approvals: min_approvals as i32,
            forbid_self_approval,
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
pub fn workflow_in(out: &mut Violations, w: &pb::Workflow) -> catalog::Workflow {
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
            headers: map_in(&h.headers),
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
            // 0 (unset) means one approver; a negative count is refused by
            // the domain's check as out of range.
            min_approvals: match a.min_approvals {
                0 => 1,
                n => u32::try_from(n).unwrap_or(0),
            },
            forbid_self_approval: a.forbid_self_approval,
        },
        Some(Kind::Command(c)) => WorkflowKind::Command {
            argv: c.argv.clone(),
            env: map_in(&c.env),
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

pub fn commit_out(c: Commit) -> pb::Commit {
    pb::Commit {
        sha: c.sha,
        message: c.message,
        author: c.author,
        revision: c.revision,
    }
}

/// Decodes the commit of a deployment report; its fields are free text
/// stored with the application, checked at `commit.sha` etc.
pub fn commit_in(v: &mut Violations, c: &pb::Commit) -> Commit {
    for (field, text) in [
        ("commit.sha", &c.sha),
        ("commit.message", &c.message),
        ("commit.author", &c.author),
        ("commit.revision", &c.revision),
    ] {
        crate::domain::check_text(v, field, text);
    }
    Commit {
        sha: c.sha.clone(),
        message: c.message.clone(),
        author: c.author.clone(),
        revision: c.revision.clone(),
    }
}

pub fn application_out(a: Application) -> pb::Application {
    pb::Application {
        environment: a.environment,
        name: a.name,
        version: a.version,
        last_commit: a.last_commit.map(commit_out),
        update_time: timestamp(a.update_time),
        source: a.source.map(source_out),
        argocd: a.argocd.map(|x| pb::ArgoCdApp {
            server: x.server,
            name: x.name,
        }),
    }
}

fn source_out(s: GitSource) -> pb::GitSource {
    pb::GitSource {
        repo_url: s.repo_url,
        branch: s.branch,
        path: s.path,
    }
}

fn source_in(s: &pb::GitSource) -> GitSource {
    GitSource {
        repo_url: s.repo_url.clone(),
        branch: s.branch.clone(),
        // One spelling for the application's directory: no trailing '/'.
        path: s.path.trim_end_matches('/').to_string(),
    }
}

pub fn template_out(t: PromotionTemplate) -> pb::PromotionTemplate {
    pb::PromotionTemplate {
        version_source: t.version_source.map(|v| pb::VersionSource {
            file: v.file,
            json_path: v.json_path,
        }),
        promotion: t
            .promotion
            .into_iter()
            .map(|f| pb::PromotedFile {
                file: f.file,
                json_paths: f.json_paths,
            })
            .collect(),
    }
}

pub fn template_in(t: &pb::PromotionTemplate) -> PromotionTemplate {
    PromotionTemplate {
        version_source: t.version_source.as_ref().map(|v| VersionSource {
            file: v.file.clone(),
            json_path: v.json_path.clone(),
        }),
        promotion: t
            .promotion
            .iter()
            .map(|f| PromotedFile {
                file: f.file.clone(),
                json_paths: f.json_paths.clone(),
            })
            .collect(),
    }
}

pub fn product_out(p: catalog::Product) -> pb::Product {
    pb::Product {
        name: p.name,
        description: p.description,
        applications: p.applications.into_iter().map(application_out).collect(),
        concurrency: pb::Concurrency::from(p.concurrency) as i32,
        promotion_template: p.promotion_template.map(template_out),
        promotion_template_ref: p.promotion_template_ref,
        promotion_flows: p
            .promotion_flows
            .into_iter()
            .map(|f| pb::ProductPromotionFlow {
                flow: f.flow,
                selectors: f
                    .selectors
                    .into_iter()
                    .map(|s| pb::TriggerSelector {
                        key: pb::SelectorKey::from(s.key) as i32,
                        operator: pb::SelectorOperator::from(s.operator) as i32,
                        values: s.values,
                    })
                    .collect(),
            })
            .collect(),
        version: p.meta.version,
        create_time: timestamp(p.meta.create_time),
        update_time: timestamp(p.meta.update_time),
    }
}

/// Decodes a product, collecting decoding violations in `v`. Validation
/// needs the catalog (which environments and flows exist), so the handler
/// runs it after looking them up.
pub fn product_in(v: &mut Violations, p: &pb::Product) -> catalog::Product {
    let concurrency = enum_in::<pb::Concurrency>(v, "product.concurrency", p.concurrency)
        .map(Concurrency::from)
        .unwrap_or_default();
    let promotion_flows = p
        .promotion_flows
        .iter()
        .enumerate()
        .map(|(i, f)| ProductFlow {
            flow: f.flow.clone(),
            selectors: f
                .selectors
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let field = format!("product.promotion_flows[{i}].selectors[{j}]");
                    TriggerSelector {
                        key: required_enum::<pb::SelectorKey, _>(
                            v,
                            &format!("{field}.key"),
                            s.key,
                            SelectorKey::CommitMessage,
                        ),
                        operator: required_enum::<pb::SelectorOperator, _>(
                            v,
                            &format!("{field}.operator"),
                            s.operator,
                            SelectorOperator::In,
                        ),
                        values: s.values.clone(),
                    }
                })
                .collect(),
        })
        .collect();
    catalog::Product {
        name: p.name.clone(),
        description: p.description.clone(),
        applications: p
            .applications
            .iter()
            .map(|a| Application {
                environment: a.environment.clone(),
                name: a.name.clone(),
                version: a.version.clone(),
                // Output only: commits come with deployment reports.
                last_commit: None,
                update_time: None,
                source: a.source.as_ref().map(source_in),
                argocd: a.argocd.as_ref().map(|x| ArgoCdApp {
                    // One spelling for the server: no trailing '/'.
                    server: x.server.trim_end_matches('/').to_string(),
                    name: x.name.clone(),
                }),
            })
            .collect(),
        concurrency,
        promotion_flows,
        promotion_template: p.promotion_template.as_ref().map(template_in),
        promotion_template_ref: p.promotion_template_ref.clone(),
        meta: Meta::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip() {
        for k in [EnvironmentKind::Production, EnvironmentKind::NonProduction] {
            assert_eq!(EnvironmentKind::from(pb::EnvironmentKind::from(k)), k);
        }
        assert_eq!(
            EnvironmentKind::from(pb::EnvironmentKind::Unspecified),
            EnvironmentKind::NonProduction
        );
        for c in [Concurrency::Queue, Concurrency::Terminate] {
            assert_eq!(Concurrency::from(pb::Concurrency::from(c)), c);
        }
        assert_eq!(
            Concurrency::from(pb::Concurrency::Unspecified),
            Concurrency::Queue
        );
        for k in [SelectorKey::CommitMessage, SelectorKey::GitRevision] {
            assert_eq!(SelectorKey::try_from(pb::SelectorKey::from(k)), Ok(k));
        }
        for o in [SelectorOperator::In, SelectorOperator::NotIn] {
            assert_eq!(
                SelectorOperator::try_from(pb::SelectorOperator::from(o)),
                Ok(o)
            );
        }
    }

    #[test]
    fn selectors_need_a_key_and_an_operator() {
        let mut v = Violations::new();
        let p = product_in(
            &mut v,
            &pb::Product {
                promotion_flows: vec![pb::ProductPromotionFlow {
                    flow: "f".into(),
                    selectors: vec![pb::TriggerSelector {
                        key: 0,
                        operator: 99,
                        values: vec!["x".into()],
                    }],
                }],
                ..Default::default()
            },
        );
        let fields: Vec<_> = v.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "product.promotion_flows[0].selectors[0].key",
                "product.promotion_flows[0].selectors[0].operator"
            ]
        );
        assert_eq!(p.promotion_flows[0].selectors.len(), 1);
    }
}
