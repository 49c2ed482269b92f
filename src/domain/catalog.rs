//! The catalog: environments, products (with their applications) and
//! workflows, and the validation rules for each.
//!
//! These types are what the store persists and the API translates; the
//! validation functions collect every violation at once.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::gitops::{GitSource, PromotionTemplate};
use super::{Violations, check_name, check_text, check_text_max, entry_field};

/// Maximum number of labels, applications, flows, headers, … in one request:
/// keeps messages and rows bounded.
pub const MAX_COLLECTION: usize = 256;
/// Maximum length of a free-text field (description, label value, URL, …).
pub const MAX_TEXT: usize = 4096;
/// Longest accepted workflow duration (timeouts, waits): 7 days.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most attempts an HTTP workflow may make.
pub const MAX_HTTP_ATTEMPTS: u32 = 10;
/// Most distinct approvers an approval workflow may require.
pub const MAX_APPROVALS: u32 = 10;

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EnvironmentKind {
    Production,
    #[default]
    NonProduction,
}

impl EnvironmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Production => "PRODUCTION",
            Self::NonProduction => "NON_PRODUCTION",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PRODUCTION" => Some(Self::Production),
            "NON_PRODUCTION" => Some(Self::NonProduction),
            _ => None,
        }
    }
}

/// Versioning and timestamps every catalog entity carries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Meta {
    /// Optimistic-concurrency version: 1 on create, +1 per update.
    pub version: i64,
    pub create_time: Option<chrono::DateTime<chrono::Utc>>,
    pub update_time: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Environment {
    pub name: String,
    pub kind: EnvironmentKind,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub meta: Meta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Concurrency {
    #[default]
    Queue,
    Terminate,
}

impl Concurrency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "QUEUE",
            Self::Terminate => "TERMINATE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "QUEUE" => Some(Self::Queue),
            "TERMINATE" => Some(Self::Terminate),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Commit {
    pub sha: String,
    pub message: String,
    pub author: String,
    pub revision: String,
}

impl Commit {
    /// The commit with every field storable as free text (see
    /// [`super::text_problem`]): NULs dropped, cut to [`MAX_TEXT`] bytes. A
    /// commit read from a Git repository reaches the store without the
    /// API's checks, and a long message must not stop its deployment.
    pub fn storable(self) -> Self {
        let fit = |mut s: String| {
            s.retain(|c| c != '\0');
            if s.len() > MAX_TEXT {
                let mut end = MAX_TEXT;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.truncate(end);
            }
            s
        };
        Self {
            sha: fit(self.sha),
            message: fit(self.message),
            author: fit(self.author),
            revision: fit(self.revision),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Application {
    pub environment: String,
    pub name: String,
    pub version: String,
    pub last_commit: Option<Commit>,
    pub update_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Where its manifests live; `None`: not Git-backed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<GitSource>,
    /// The Argo CD application deploying it; `None`: releases do not wait
    /// for a sync (no SYNC step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd: Option<super::gitops::ArgoCdApp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorKey {
    CommitMessage,
    GitRevision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    In,
    NotIn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerSelector {
    pub key: SelectorKey,
    pub operator: SelectorOperator,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductFlow {
    pub flow: String,
    pub selectors: Vec<TriggerSelector>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Product {
    pub name: String,
    pub description: String,
    pub applications: Vec<Application>,
    pub concurrency: Concurrency,
    pub promotion_flows: Vec<ProductFlow>,
    /// What Git promotions write; `None`: every file of the trigger
    /// application's directory, whole.
    pub promotion_template: Option<PromotionTemplate>,
    /// A named template used instead of `promotion_template`; empty: none.
    pub promotion_template_ref: String,
    pub meta: Meta,
}

impl Product {
    pub fn application(&self, environment: &str) -> Option<&Application> {
        self.applications
            .iter()
            .find(|a| a.environment == environment)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkflowKind {
    Http {
        url: String,
        headers: BTreeMap<String, String>,
        timeout_ms: u64,
        max_attempts: u32,
    },
    Wait {
        duration_ms: u64,
    },
    Approval {
        /// `None`: wait for a decision forever (or until the release's timeout).
        timeout_ms: Option<u64>,
        /// Distinct approvers needed (at least 1; stored workflows from
        /// before the rule existed read as 1) and whether the release's
        /// actor may be one.
        #[serde(default = "one")]
        min_approvals: u32,
        #[serde(default)]
        forbid_self_approval: bool,
    },
    Command {
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        timeout_ms: u64,
    },
}

impl WorkflowKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Http { .. } => "http",
            Self::Wait { .. } => "wait",
            Self::Approval { .. } => "approval",
            Self::Command { .. } => "command",
        }
    }
}

/// Default per-attempt timeout of HTTP workflows and commands.
pub const DEFAULT_WORKFLOW_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of attempts of an HTTP workflow.
pub const DEFAULT_HTTP_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub name: String,
    pub description: String,
    pub kind: WorkflowKind,
    pub meta: Meta,
}

impl Workflow {
    /// A `command` workflow runs a program on the server's machine: only
    /// admins may write one, and only servers that allow them run one.
    pub fn is_command(&self) -> bool {
        matches!(self.kind, WorkflowKind::Command { .. })
    }
}

fn check_labels(v: &mut Violations, field: &str, labels: &BTreeMap<String, String>) {
    if labels.len() > MAX_COLLECTION {
        v.push(field, format!("has more than {MAX_COLLECTION} entries"));
        return;
    }
    for (key, value) in labels {
        let entry = entry_field(field, key);
        if key.is_empty() || key.len() > 63 {
            v.push(&entry, "keys must be 1-63 bytes long");
        } else if key.contains('\0') {
            v.push(&entry, "keys must not contain NUL characters (\\0)");
        }
        check_text(v, &entry, value);
    }
}

pub fn validate_environment(env: &Environment) -> Violations {
    let mut v = Violations::new();
    check_name(&mut v, "environment.name", &env.name);
    check_text(&mut v, "environment.description", &env.description);
    check_labels(&mut v, "environment.labels", &env.labels);
    v
}

/// Validates a product on its own; `known_environments` tells which
/// environments exist (the caller looks them up), so unknown ones are reported
/// together with every other violation.
/// Checks a product as a whole and normalizes what has a canonical form
/// (the template's JSONPaths, with `normalize_json_path`).
pub fn validate_product(
    p: &mut Product,
    environment_exists: &dyn Fn(&str) -> bool,
    normalize_json_path: &dyn Fn(&str) -> Result<String, String>,
) -> Violations {
    let mut v = Violations::new();
    check_name(&mut v, "product.name", &p.name);
    check_text(&mut v, "product.description", &p.description);
    if p.applications.len() > MAX_COLLECTION {
        v.push(
            "product.applications",
            format!("has more than {MAX_COLLECTION} entries"),
        );
        return v;
    }
    let mut seen = HashSet::new();
    for (i, app) in p.applications.iter().enumerate() {
        let f = format!("product.applications[{i}]");
        check_name(&mut v, &format!("{f}.environment"), &app.environment);
        if !app.environment.is_empty() {
            if !seen.insert(app.environment.as_str()) {
                v.push(
                    format!("{f}.environment"),
                    format!(
                        "the product already has an application in environment {:?}: at most one per environment",
                        app.environment
                    ),
                );
            } else if super::is_dns_label(&app.environment) && !environment_exists(&app.environment)
            {
                v.push(
                    format!("{f}.environment"),
                    format!("environment {:?} does not exist", app.environment),
                );
            }
        }
        if app.name.is_empty() {
            v.push(format!("{f}.name"), "is required");
        } else {
            check_text_max(&mut v, &format!("{f}.name"), &app.name, 253);
        }
        check_text(&mut v, &format!("{f}.version"), &app.version);
        if let Some(source) = &app.source {
            super::gitops::validate_source(&mut v, &format!("{f}.source"), source);
        }
        if let Some(argocd) = &app.argocd {
            super::gitops::validate_argocd(&mut v, &format!("{f}.argocd"), argocd);
        }
    }
    if !p.promotion_template_ref.is_empty() {
        check_name(
            &mut v,
            "product.promotion_template_ref",
            &p.promotion_template_ref,
        );
        if p.promotion_template.is_some() {
            v.push(
                "product.promotion_template_ref",
                "set either promotion_template or promotion_template_ref, not both",
            );
        }
    }
    if let Some(t) = &mut p.promotion_template {
        super::gitops::validate_template(
            &mut v,
            "product.promotion_template",
            t,
            normalize_json_path,
        );
    }
    if p.promotion_flows.len() > MAX_COLLECTION {
        v.push(
            "product.promotion_flows",
            format!("has more than {MAX_COLLECTION} entries"),
        );
        return v;
    }
    for (i, pf) in p.promotion_flows.iter().enumerate() {
        let f = format!("product.promotion_flows[{i}]");
        check_name(&mut v, &format!("{f}.flow"), &pf.flow);
        for (j, s) in pf.selectors.iter().enumerate() {
            if s.values.is_empty() {
                v.push(
                    format!("{f}.selectors[{j}].values"),
                    "needs at least one value",
                );
            }
            if s.values.len() > MAX_COLLECTION {
                v.push(
                    format!("{f}.selectors[{j}].values"),
                    format!("has more than {MAX_COLLECTION} entries"),
                );
            } else {
                for (k, value) in s.values.iter().enumerate() {
                    check_text(&mut v, &format!("{f}.selectors[{j}].values[{k}]"), value);
                }
            }
        }
    }
    v
}

fn check_duration(v: &mut Violations, field: &str, ms: u64) {
    if ms == 0 {
        v.push(field, "must be positive");
    } else if ms > MAX_DURATION.as_millis() as u64 {
        v.push(field, "must be at most 7 days");
    }
}

pub fn validate_workflow(w: &Workflow) -> Violations {
    let mut v = Violations::new();
    check_name(&mut v, "workflow.name", &w.name);
    check_text(&mut v, "workflow.description", &w.description);
    match &w.kind {
        WorkflowKind::Http {
            url,
            headers,
            timeout_ms,
            max_attempts,
        } => {
            if url.is_empty() {
                v.push("workflow.http.url", "is required");
            } else if let Some(problem) = super::text_problem(url, MAX_TEXT) {
                // Checked before parsing: the parser would percent-encode a
                // NUL, but the URL is stored as written.
                v.push("workflow.http.url", problem);
            } else {
                match url::Url::parse(url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                    Ok(_) => v.push("workflow.http.url", "must be an http:// or https:// URL"),
                    Err(e) => v.push("workflow.http.url", format!("is not a valid URL: {e}")),
                }
            }
            check_labels(&mut v, "workflow.http.headers", headers);
            check_duration(&mut v, "workflow.http.timeout", *timeout_ms);
            if *max_attempts == 0 || *max_attempts > MAX_HTTP_ATTEMPTS {
                v.push(
                    "workflow.http.max_attempts",
                    format!("must be between 1 and {MAX_HTTP_ATTEMPTS}"),
                );
            }
        }
        WorkflowKind::Wait { duration_ms } => {
            check_duration(&mut v, "workflow.wait.duration", *duration_ms)
        }
        WorkflowKind::Approval {
            timeout_ms,
            min_approvals,
            ..
        } => {
            if let Some(ms) = timeout_ms {
                check_duration(&mut v, "workflow.approval.timeout", *ms);
            }
            if *min_approvals == 0 || *min_approvals > MAX_APPROVALS {
                v.push(
                    "workflow.approval.min_approvals",
                    format!("must be between 1 and {MAX_APPROVALS}"),
                );
            }
        }
        WorkflowKind::Command {
            argv,
            env,
            timeout_ms,
        } => {
            if argv.is_empty() || argv[0].is_empty() {
                v.push("workflow.command.argv", "needs at least the program to run");
            }
            if argv.len() > MAX_COLLECTION {
                v.push(
                    "workflow.command.argv",
                    format!("has more than {MAX_COLLECTION} entries"),
                );
            } else {
                for (i, arg) in argv.iter().enumerate() {
                    check_text(&mut v, &format!("workflow.command.argv[{i}]"), arg);
                }
            }
            check_labels(&mut v, "workflow.command.env", env);
            check_duration(&mut v, "workflow.command.timeout", *timeout_ms);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str, attempts: u32) -> Workflow {
        Workflow {
            name: "notify".into(),
            description: String::new(),
            kind: WorkflowKind::Http {
                url: url.into(),
                headers: BTreeMap::new(),
                timeout_ms: 1000,
                max_attempts: attempts,
            },
            meta: Meta::default(),
        }
    }

    #[test]
    fn http_workflow_rules() {
        assert!(validate_workflow(&http("http://127.0.0.1:8080/x", 3)).is_empty());
        let v = validate_workflow(&http("ftp://x", 0));
        let fields: Vec<_> = v.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["workflow.http.url", "workflow.http.max_attempts"]);
    }

    /// Every free-text field refuses NUL, which PostgreSQL cannot store,
    /// at its own path.
    #[test]
    fn nul_is_refused_everywhere() {
        let fields = |v: Violations| -> Vec<String> { v.0.into_iter().map(|x| x.field).collect() };
        let env = Environment {
            name: "dev".into(),
            kind: EnvironmentKind::NonProduction,
            description: "a\0".into(),
            labels: [("k\0".into(), "v".into()), ("team".into(), "\0".into())].into(),
            meta: Meta::default(),
        };
        assert_eq!(
            fields(validate_environment(&env)),
            [
                "environment.description",
                "environment.labels[k\\0]",
                "environment.labels[team]"
            ]
        );
        let mut w = http("http://example.com/\0", 3);
        w.description = "\0".into();
        assert_eq!(
            fields(validate_workflow(&w)),
            ["workflow.description", "workflow.http.url"]
        );
        let w = Workflow {
            kind: WorkflowKind::Command {
                argv: vec!["echo".into(), "a\0".into()],
                env: [("HOME".into(), "\0".into())].into(),
                timeout_ms: 1000,
            },
            ..http("", 1)
        };
        assert_eq!(
            fields(validate_workflow(&w)),
            ["workflow.command.argv[1]", "workflow.command.env[HOME]"]
        );
    }

    #[test]
    fn product_reports_every_problem() {
        let mut p = Product {
            name: "Bad".into(),
            applications: vec![
                Application {
                    environment: "dev".into(),
                    name: "a".into(),
                    ..Default::default()
                },
                Application {
                    environment: "dev".into(),
                    name: "b".into(),
                    ..Default::default()
                },
                Application {
                    environment: "nope".into(),
                    name: String::new(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let v = validate_product(&mut p, &|e| e == "dev", &|j| Ok(j.to_string()));
        let fields: Vec<_> = v.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "product.name",
                "product.applications[1].environment",
                "product.applications[2].environment",
                "product.applications[2].name"
            ]
        );
    }
}

/// True when `value` matches `pattern`, where `*` matches any run of
/// characters (including none) and everything else matches itself.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    // Iterative glob matching with backtracking to the last `*`: linear in
    // practice, no regex compilation per check.
    let (p, v) = (pattern.as_bytes(), value.as_bytes());
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

impl TriggerSelector {
    /// Whether a deployment with `commit` satisfies this selector.
    pub fn matches(&self, commit: &Commit) -> bool {
        let value = match self.key {
            SelectorKey::CommitMessage => commit.message.as_str(),
            SelectorKey::GitRevision => commit.revision.as_str(),
        };
        let any = self.values.iter().any(|p| wildcard_match(p, value));
        match self.operator {
            SelectorOperator::In => any,
            SelectorOperator::NotIn => !any,
        }
    }
}

impl ProductFlow {
    /// All selectors match (no selectors: always).
    pub fn matches(&self, commit: &Commit) -> bool {
        self.selectors.iter().all(|s| s.matches(commit))
    }
}

#[cfg(test)]
mod selector_tests {
    use super::*;

    #[test]
    fn a_commit_from_git_is_made_storable() {
        let c = Commit {
            sha: "abc".into(),
            message: format!("fix\0{}é", "a".repeat(MAX_TEXT - 4)),
            ..Default::default()
        }
        .storable();
        // Cut before the two-byte é that would end past the limit.
        assert_eq!(c.message.len(), MAX_TEXT - 1);
        assert!(super::super::text_problem(&c.message, MAX_TEXT).is_none());
        assert!(c.message.starts_with("fixaaa"));
        assert_eq!(c.sha, "abc");
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("release-*", "release-1.2"));
        assert!(wildcard_match("*fix*", "a fix here"));
        assert!(!wildcard_match("release-*", "hotfix"));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
    }

    #[test]
    fn selectors_all_must_match() {
        let commit = Commit {
            message: "feat: deploy [promote]".into(),
            revision: "main".into(),
            ..Default::default()
        };
        let flow = |selectors| ProductFlow {
            flow: "f".into(),
            selectors,
        };
        let sel = |key, operator, values: &[&str]| TriggerSelector {
            key,
            operator,
            values: values.iter().map(|s| s.to_string()).collect(),
        };
        assert!(flow(vec![]).matches(&commit));
        assert!(
            flow(vec![
                sel(
                    SelectorKey::CommitMessage,
                    SelectorOperator::In,
                    &["*[promote]*"]
                ),
                sel(SelectorKey::GitRevision, SelectorOperator::NotIn, &["dev*"]),
            ])
            .matches(&commit)
        );
        assert!(
            !flow(vec![
                sel(
                    SelectorKey::CommitMessage,
                    SelectorOperator::In,
                    &["*[promote]*"]
                ),
                sel(
                    SelectorKey::GitRevision,
                    SelectorOperator::In,
                    &["release-*"]
                ),
            ])
            .matches(&commit)
        );
    }
}
