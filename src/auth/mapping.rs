//! Roles for principals the store does not know: OIDC subjects and groups,
//! client-certificate subjects.
//!
//! API tokens carry their grant in the store. An OIDC JWT or a client
//! certificate only says who the caller is (and which groups it is in), so
//! `--auth-mapping FILE` says what they may do:
//!
//! ```yaml
//! rules:
//!   - groups: [platform]          # any of these groups (OIDC claim, certificate OU)
//!     role: admin
//!   - groups: [release-managers]
//!     role: promoter
//!     environments: ["prod*"]     # name, prefix* or * (default *)
//!   - principals: [oidc:ci-bot, cert:deployer]   # exact principal ids
//!     role: promoter
//!     flows: [demo]
//! ```
//!
//! Every rule that matches adds its grant; a principal no rule matches is
//! authenticated but may do nothing, and each refusal names the permission
//! it lacked. The file is read at start; a mistake in it stops the server
//! with the rule and field that is wrong.

use serde::Deserialize;

use crate::domain::access::{Grant, Pattern, Role};

#[derive(Debug, Clone, Default)]
pub struct Mapping {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    groups: Vec<String>,
    principals: Vec<String>,
    grant: Grant,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    principals: Vec<String>,
    role: String,
    #[serde(default)]
    flows: Vec<String>,
    #[serde(default)]
    environments: Vec<String>,
}

impl Mapping {
    /// Parses a mapping document; the error names the rule and field.
    pub fn parse(yaml: &str) -> Result<Self, String> {
        let file: File = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, r) in file.rules.into_iter().enumerate() {
            let at = |field: &str| format!("rules[{i}].{field}");
            if r.groups.is_empty() && r.principals.is_empty() {
                return Err(format!(
                    "rules[{i}]: name the groups or principals the rule is for"
                ));
            }
            if let Some(p) = r
                .principals
                .iter()
                .find(|p| !(p.starts_with("oidc:") || p.starts_with("cert:")) || p.len() <= 5)
            {
                return Err(format!(
                    "{}: {p:?} is not a principal id (oidc:<subject> or cert:<common name>)",
                    at("principals")
                ));
            }
            let role = Role::parse(&r.role).ok_or_else(|| {
                format!(
                    "{}: {:?} is not a role (viewer, promoter, editor, admin)",
                    at("role"),
                    r.role
                )
            })?;
            let patterns = |field: &str, xs: Vec<String>| {
                xs.iter()
                    .map(|x| Pattern::parse(x).map_err(|e| format!("{}: {e}", at(field))))
                    .collect::<Result<Vec<_>, _>>()
            };
            rules.push(Rule {
                groups: r.groups,
                principals: r.principals,
                grant: Grant {
                    role,
                    flows: patterns("flows", r.flows)?,
                    environments: patterns("environments", r.environments)?,
                },
            });
        }
        Ok(Self { rules })
    }

    /// Reads `--auth-mapping`.
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--auth-mapping {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("--auth-mapping {}: {e}", path.display()))
    }

    /// The grants of principal `id` in `groups`.
    pub fn grants(&self, id: &str, groups: &[String]) -> Vec<Grant> {
        self.rules
            .iter()
            .filter(|r| {
                r.principals.iter().any(|p| p == id) || r.groups.iter().any(|g| groups.contains(g))
            })
            .map(|r| r.grant.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::{Permission, Principal, Scope};

    const DOC: &str = r#"
rules:
  - groups: [platform]
    role: admin
  - groups: [release-managers]
    role: promoter
    environments: ["prod*"]
  - principals: [oidc:ci-bot]
    role: promoter
    flows: [demo]
"#;

    #[test]
    fn groups_and_principals_add_their_grants() {
        let m = Mapping::parse(DOC).unwrap();
        let g = m.grants("oidc:alice", &["release-managers".into()]);
        let p = Principal {
            id: "oidc:alice".into(),
            kind: crate::domain::access::PrincipalKind::Oidc,
            grants: g,
        };
        assert!(p.may(
            Permission::ReleasesApprove,
            &Scope::environments("demo", ["prod-eu"])
        ));
        assert!(!p.may(
            Permission::ReleasesApprove,
            &Scope::environments("demo", ["qa"])
        ));
        assert_eq!(m.grants("oidc:ci-bot", &[]).len(), 1);
        assert_eq!(m.grants("cert:ci-bot", &[]).len(), 0, "ids are per kind");
        assert!(m.grants("oidc:nobody", &["other".into()]).is_empty());
        assert_eq!(
            m.grants("oidc:x", &["platform".into(), "release-managers".into()])
                .len(),
            2
        );
    }

    #[test]
    fn mistakes_name_the_rule_and_field() {
        let e = Mapping::parse("rules:\n  - groups: [a]\n    role: boss\n").unwrap_err();
        assert!(e.contains("rules[0].role") && e.contains("boss"), "{e}");
        let e = Mapping::parse("rules:\n  - role: admin\n").unwrap_err();
        assert!(
            e.contains("rules[0]") && e.contains("groups or principals"),
            "{e}"
        );
        let e = Mapping::parse(
            "rules:\n  - groups: [a]\n    role: admin\n  - principals: [alice]\n    role: viewer\n",
        )
        .unwrap_err();
        assert!(e.contains("rules[1].principals"), "{e}");
        let e = Mapping::parse("rules:\n  - groups: [a]\n    role: viewer\n    flows: ['a b']\n")
            .unwrap_err();
        assert!(e.contains("rules[0].flows"), "{e}");
        assert!(Mapping::parse("rulez: []\n").is_err());
    }
}
