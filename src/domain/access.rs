//! Who may do what: permissions, roles, scoped grants and principals.
//!
//! A permission is `resource.action` (`releases.approve`). A role is a fixed
//! set of permissions. A grant gives a role on the flows and environments
//! its patterns match: `name`, `prefix*` or `*` (the crates.io scope
//! syntax). A principal is who the server authenticated, with its grants;
//! it may act when one of its grants holds the permission on the object.
//!
//! Everything here is pure: the API layer authenticates and asks
//! [`Principal::require`]; the store persists grants as JSON.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a request needs: one per RPC (see `auth::table`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    EnvironmentsRead,
    EnvironmentsWrite,
    ProductsRead,
    ProductsWrite,
    WorkflowsRead,
    WorkflowsWrite,
    FlowsRead,
    FlowsWrite,
    PoliciesRead,
    PoliciesWrite,
    ReleasesRead,
    ReleasesTrigger,
    ReleasesRetry,
    ReleasesTerminate,
    ReleasesApprove,
    DeploymentsReport,
    TokensManage,
    AuditRead,
}

impl Permission {
    pub const ALL: [Permission; 18] = [
        Self::EnvironmentsRead,
        Self::EnvironmentsWrite,
        Self::ProductsRead,
        Self::ProductsWrite,
        Self::WorkflowsRead,
        Self::WorkflowsWrite,
        Self::FlowsRead,
        Self::FlowsWrite,
        Self::PoliciesRead,
        Self::PoliciesWrite,
        Self::ReleasesRead,
        Self::ReleasesTrigger,
        Self::ReleasesRetry,
        Self::ReleasesTerminate,
        Self::ReleasesApprove,
        Self::DeploymentsReport,
        Self::TokensManage,
        Self::AuditRead,
    ];

    /// The name users see in errors and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EnvironmentsRead => "environments.read",
            Self::EnvironmentsWrite => "environments.write",
            Self::ProductsRead => "products.read",
            Self::ProductsWrite => "products.write",
            Self::WorkflowsRead => "workflows.read",
            Self::WorkflowsWrite => "workflows.write",
            Self::FlowsRead => "flows.read",
            Self::FlowsWrite => "flows.write",
            Self::PoliciesRead => "policies.read",
            Self::PoliciesWrite => "policies.write",
            Self::ReleasesRead => "releases.read",
            Self::ReleasesTrigger => "releases.trigger",
            Self::ReleasesRetry => "releases.retry",
            Self::ReleasesTerminate => "releases.terminate",
            Self::ReleasesApprove => "releases.approve",
            Self::DeploymentsReport => "deployments.report",
            Self::TokensManage => "tokens.manage",
            Self::AuditRead => "audit.read",
        }
    }

    fn is_read(self) -> bool {
        self.as_str().ends_with(".read") && self != Self::AuditRead
    }

    /// Permissions that concern one flow and its environments: a grant's
    /// patterns narrow these. The others (catalog writes, tokens, audit)
    /// are global: only a grant whose patterns are both `*` gives them, so
    /// a role scoped to `staging` cannot edit the environment catalog.
    pub fn is_scoped(self) -> bool {
        matches!(
            self,
            Self::FlowsRead
                | Self::FlowsWrite
                | Self::ReleasesRead
                | Self::ReleasesTrigger
                | Self::ReleasesRetry
                | Self::ReleasesTerminate
                | Self::ReleasesApprove
                | Self::DeploymentsReport
                | Self::EnvironmentsRead
                | Self::ProductsRead
                | Self::WorkflowsRead
                | Self::PoliciesRead
        )
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The built-in roles, as Argo CD and Kargo ship them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Role {
    /// Reads everything but the audit log.
    Viewer,
    /// Reads; triggers, retries, terminates and approves releases; reports
    /// deployments.
    Promoter,
    /// Reads; writes the catalog (environments, products, workflows,
    /// policies) and flows.
    Editor,
    /// Everything, tokens and the audit log included.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Self::Viewer, Self::Promoter, Self::Editor, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Promoter => "promoter",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Self::Admin => true,
            Self::Viewer => p.is_read(),
            Self::Promoter => {
                p.is_read()
                    || matches!(
                        p,
                        ReleasesTrigger
                            | ReleasesRetry
                            | ReleasesTerminate
                            | ReleasesApprove
                            | DeploymentsReport
                    )
            }
            Self::Editor => {
                p.is_read()
                    || matches!(
                        p,
                        EnvironmentsWrite
                            | ProductsWrite
                            | WorkflowsWrite
                            | FlowsWrite
                            | PoliciesWrite
                    )
            }
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `name`, `prefix*` or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern(String);

impl Pattern {
    pub fn any() -> Self {
        Self("*".into())
    }

    /// Checks the syntax: a name (letters, digits, `-`, `_`, `.`), optionally
    /// followed by one `*`, or `*` alone.
    pub fn parse(s: &str) -> Result<Self, String> {
        let body = s.strip_suffix('*').unwrap_or(s);
        if s.is_empty() {
            return Err("must not be empty (use * for all)".into());
        }
        if s.len() > 128 {
            return Err("must be at most 128 characters".into());
        }
        if !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "{s:?} is not a pattern: a name, a prefix followed by *, or *"
            ));
        }
        Ok(Self(s.to_string()))
    }

    pub fn matches(&self, name: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.0 == name,
        }
    }

    pub fn is_any(&self) -> bool {
        self.0 == "*"
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.0
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A role on the flows and environments the patterns match. Empty pattern
/// lists mean `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub role: Role,
    #[serde(default)]
    pub flows: Vec<Pattern>,
    #[serde(default)]
    pub environments: Vec<Pattern>,
}

impl Grant {
    /// The role everywhere.
    pub fn global(role: Role) -> Self {
        Self {
            role,
            flows: Vec::new(),
            environments: Vec::new(),
        }
    }

    fn all(patterns: &[Pattern]) -> bool {
        patterns.is_empty() || patterns.iter().any(Pattern::is_any)
    }

    fn any_match(patterns: &[Pattern], name: &str) -> bool {
        Self::all(patterns) || patterns.iter().any(|p| p.matches(name))
    }

    /// Whether this grant gives `p` on `scope`.
    pub fn gives(&self, p: Permission, scope: &Scope<'_>) -> bool {
        if !self.role.allows(p) {
            return false;
        }
        if !p.is_scoped() {
            return Self::all(&self.flows) && Self::all(&self.environments);
        }
        scope.flow.is_none_or(|f| Self::any_match(&self.flows, f))
            && scope
                .environments
                .iter()
                .all(|e| Self::any_match(&self.environments, e))
    }

    /// Whether this grant gives `p` somewhere (the RPC-level check, before
    /// the handler knows the object).
    pub fn gives_somewhere(&self, p: Permission) -> bool {
        self.role.allows(p)
            && (p.is_scoped() || (Self::all(&self.flows) && Self::all(&self.environments)))
    }

    /// `admin`, `promoter on flows demo, env prod*`.
    pub fn describe(&self) -> String {
        let list = |ps: &[Pattern]| {
            if Self::all(ps) {
                "*".to_string()
            } else {
                ps.iter().map(Pattern::as_str).collect::<Vec<_>>().join(",")
            }
        };
        format!(
            "{} (flows {}, environments {})",
            self.role,
            list(&self.flows),
            list(&self.environments)
        )
    }
}

/// The object a permission is asked for: a flow and the environments an
/// action touches (all of them must be covered). Empty: the RPC as such.
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    pub flow: Option<&'a str>,
    pub environments: Vec<&'a str>,
}

impl<'a> Scope<'a> {
    pub fn flow(flow: &'a str) -> Self {
        Self {
            flow: Some(flow),
            environments: Vec::new(),
        }
    }

    pub fn environments(flow: &'a str, environments: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            flow: Some(flow),
            environments: environments.into_iter().collect(),
        }
    }
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.flow, self.environments.as_slice()) {
            (None, []) => f.write_str("any object"),
            (Some(flow), []) => write!(f, "flow {flow:?}"),
            (flow, envs) => {
                if let Some(flow) = flow {
                    write!(f, "flow {flow:?}, ")?;
                }
                write!(f, "environment")?;
                if envs.len() > 1 {
                    write!(f, "s")?;
                }
                write!(f, " {}", envs.join(", "))
            }
        }
    }
}

/// How a principal was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalKind {
    /// An API token (`pf_<id>_<secret>`); the name is the token's name.
    Token,
    /// An OIDC JWT; the name is its subject.
    Oidc,
    /// A verified client certificate; the name is its subject's common name.
    Certificate,
    /// `--auth none`: everyone is this principal, with every permission.
    Anonymous,
    /// The server itself (Git pushes, the poller, recovery).
    System,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Oidc => "oidc",
            Self::Certificate => "certificate",
            Self::Anonymous => "anonymous",
            Self::System => "system",
        }
    }
}

/// Who is calling, as the server computed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `token:<name>`, `oidc:<subject>`, `cert:<subject>`, `anonymous` or
    /// `system:<what>`: unique across kinds, so approvals by two kinds of
    /// credential with the same name still count as two people only when
    /// they are.
    pub id: String,
    pub kind: PrincipalKind,
    pub grants: Vec<Grant>,
}

/// A principal lacked a permission: the message names it and the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl Principal {
    pub fn token(name: &str, grants: Vec<Grant>) -> Self {
        Self {
            id: format!("token:{name}"),
            kind: PrincipalKind::Token,
            grants,
        }
    }

    /// The subject of a verified OIDC token.
    pub fn oidc(subject: &str, grants: Vec<Grant>) -> Self {
        Self {
            id: format!("oidc:{subject}"),
            kind: PrincipalKind::Oidc,
            grants,
        }
    }

    /// The common name of a verified client certificate.
    pub fn certificate(common_name: &str, grants: Vec<Grant>) -> Self {
        Self {
            id: format!("cert:{common_name}"),
            kind: PrincipalKind::Certificate,
            grants,
        }
    }

    pub fn anonymous() -> Self {
        Self {
            id: "anonymous".into(),
            kind: PrincipalKind::Anonymous,
            grants: vec![Grant::global(Role::Admin)],
        }
    }

    pub fn system(what: &str) -> Self {
        Self {
            id: format!("system:{what}"),
            kind: PrincipalKind::System,
            grants: vec![Grant::global(Role::Admin)],
        }
    }

    pub fn may(&self, p: Permission, scope: &Scope<'_>) -> bool {
        self.grants.iter().any(|g| g.gives(p, scope))
    }

    pub fn may_somewhere(&self, p: Permission) -> bool {
        self.grants.iter().any(|g| g.gives_somewhere(p))
    }

    /// Holds a global admin grant (needed to create `command` workflows,
    /// which run programs on the server's machine).
    pub fn is_admin(&self) -> bool {
        self.grants
            .iter()
            .any(|g| g.role == Role::Admin && Grant::all(&g.flows) && Grant::all(&g.environments))
    }

    /// `Ok` when some grant gives `p` on `scope`, else why not.
    pub fn require(&self, p: Permission, scope: &Scope<'_>) -> Result<(), Denied> {
        if self.may(p, scope) {
            return Ok(());
        }
        // Name the environments that are not covered, not all of them.
        let uncovered: Vec<&str> = scope
            .environments
            .iter()
            .copied()
            .filter(|e| {
                !self.may(
                    p,
                    &Scope {
                        flow: scope.flow,
                        environments: vec![e],
                    },
                )
            })
            .collect();
        let what = if uncovered.is_empty() || uncovered.len() == scope.environments.len() {
            scope.to_string()
        } else {
            Scope {
                flow: scope.flow,
                environments: uncovered,
            }
            .to_string()
        };
        Err(Denied(format!(
            "{} lacks permission {p} on {what}",
            self.id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(xs: &[&str]) -> Vec<Pattern> {
        xs.iter().map(|x| Pattern::parse(x).unwrap()).collect()
    }

    #[test]
    fn patterns_match_names_prefixes_and_all() {
        assert!(Pattern::parse("prod").unwrap().matches("prod"));
        assert!(!Pattern::parse("prod").unwrap().matches("prod-eu"));
        assert!(Pattern::parse("prod*").unwrap().matches("prod-eu"));
        assert!(!Pattern::parse("prod*").unwrap().matches("qa"));
        assert!(Pattern::parse("*").unwrap().matches("anything"));
        for bad in ["", "p*d", "a b", "**", "prod/x"] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn roles_hold_the_documented_permissions() {
        use Permission::*;
        assert!(Role::Viewer.allows(ReleasesRead));
        assert!(!Role::Viewer.allows(ReleasesTrigger));
        assert!(!Role::Viewer.allows(AuditRead));
        assert!(Role::Promoter.allows(ReleasesApprove));
        assert!(!Role::Promoter.allows(FlowsWrite));
        assert!(Role::Editor.allows(FlowsWrite));
        assert!(!Role::Editor.allows(ReleasesTrigger));
        assert!(!Role::Editor.allows(TokensManage));
        for p in Permission::ALL {
            assert!(Role::Admin.allows(p));
        }
    }

    #[test]
    fn scoped_grants_cover_only_their_environments() {
        let g = Grant {
            role: Role::Promoter,
            flows: pats(&["demo"]),
            environments: pats(&["qa", "staging*"]),
        };
        let p = Principal::token("ci", vec![g]);
        let ok = Scope::environments("demo", ["qa", "staging-eu"]);
        assert!(p.require(Permission::ReleasesTrigger, &ok).is_ok());
        let prod = Scope::environments("demo", ["qa", "prod"]);
        let e = p.require(Permission::ReleasesTrigger, &prod).unwrap_err();
        assert_eq!(
            e.0,
            "token:ci lacks permission releases.trigger on flow \"demo\", environment prod"
        );
        let other = Scope::environments("other", ["qa"]);
        assert!(p.require(Permission::ReleasesTrigger, &other).is_err());
        // Scoped grants never give global permissions.
        assert!(!p.may_somewhere(Permission::TokensManage));
        let editor = Principal::token(
            "e",
            vec![Grant {
                role: Role::Editor,
                flows: pats(&["demo"]),
                environments: vec![],
            }],
        );
        assert!(!editor.may_somewhere(Permission::EnvironmentsWrite));
        assert!(editor.may(Permission::FlowsWrite, &Scope::flow("demo")));
        assert!(!editor.may(Permission::FlowsWrite, &Scope::flow("other")));
    }

    #[test]
    fn grants_round_trip_as_json() {
        let g = Grant {
            role: Role::Viewer,
            flows: pats(&["a*"]),
            environments: vec![],
        };
        let s = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<Grant>(&s).unwrap(), g);
        assert!(serde_json::from_str::<Grant>(r#"{"role":"Viewer","flows":["a b"]}"#).is_err());
    }
}
