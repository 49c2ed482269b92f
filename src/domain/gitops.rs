//! Where applications live in Git, and what a promotion writes there: an
//! application's [`GitSource`] and a product's [`PromotionTemplate`]
//! (Codefresh's `promotionTemplate`), with their write-time validation.
//!
//! Validation here is about the values themselves (URL shapes, relative
//! paths, JSONPaths that parse). Whether the server may reach a URL (local
//! repositories, plain HTTP) is the server's policy, checked by the API with
//! the engine's Git settings.

use serde::{Deserialize, Serialize};

use super::{Violations, check_text};

/// Most files one template promotes, and JSONPaths per file.
pub const MAX_TEMPLATE_ENTRIES: usize = 64;

/// An application's manifests in Git (Argo CD's repoURL / targetRevision /
/// path).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GitSource {
    pub repo_url: String,
    /// Empty: the remote's default branch.
    pub branch: String,
    /// Relative to the repository's root; empty: the root.
    pub path: String,
}

/// The Argo CD application that deploys an application's manifests: the
/// environment of a release succeeds only once Argo CD reports it Synced at
/// the promoted commit and Healthy (see `domain::sync`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ArgoCdApp {
    /// The Argo CD API server, `https://host[/path]`.
    pub server: String,
    /// The Argo CD Application's name (a Kubernetes object name).
    pub name: String,
}

/// Validates an Argo CD application at `field` (`…argocd`): the server an
/// `http(s)://` URL with a host and no user name, password, query or
/// fragment (its token comes from `--git-credentials`); the name a
/// Kubernetes object name (RFC 1123 subdomain: lowercase letters, digits,
/// `-` and `.`, at most 253 bytes, alphanumeric at both ends).
pub fn validate_argocd(v: &mut Violations, field: &str, a: &ArgoCdApp) {
    let server = format!("{field}.server");
    if a.server.is_empty() {
        v.push(server, "is required");
    } else {
        check_text(v, &server, &a.server);
        match url::Url::parse(&a.server) {
            Err(_) => v.push(
                server,
                format!(
                    "{:?} is not a URL: use https://argocd.example.com",
                    a.server
                ),
            ),
            Ok(u) => {
                if !matches!(u.scheme(), "https" | "http") {
                    v.push(&server, "must be an https:// (or http://) URL");
                } else if u.host_str().is_none_or(str::is_empty) {
                    v.push(&server, format!("{:?} has no host", a.server));
                }
                if !u.username().is_empty() || u.password().is_some() {
                    v.push(
                        &server,
                        "must not carry a user name or password: give the token to the server with --git-credentials",
                    );
                }
                if u.query().is_some() || u.fragment().is_some() {
                    v.push(&server, "must not have a query or fragment");
                }
            }
        }
    }
    let name = format!("{field}.name");
    if a.name.is_empty() {
        v.push(name, "is required");
    } else if !is_kubernetes_name(&a.name) {
        v.push(
            name,
            format!(
                "{:?} is not a Kubernetes object name: lowercase letters, digits, '-' and '.', at most 253, starting and ending with a letter or digit",
                a.name.get(..80).unwrap_or(&a.name)
            ),
        );
    }
}

/// A Kubernetes object name (RFC 1123 subdomain), as Argo CD Applications
/// are named.
pub fn is_kubernetes_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Where a product's version is read: a scalar in one file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VersionSource {
    pub file: String,
    /// Normalized RFC 9535 JSONPath.
    pub json_path: String,
}

/// One promoted file: the values at `json_paths`, or the whole file (`*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PromotedFile {
    pub file: String,
    pub json_paths: Vec<String>,
}

impl PromotedFile {
    /// True when the whole file is copied.
    pub fn is_whole(&self) -> bool {
        self.json_paths.iter().any(|p| p == WHOLE_FILE)
    }
}

/// The JSONPath entry that promotes a whole file.
pub const WHOLE_FILE: &str = "*";

/// What a promotion moves from the trigger application into each target.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PromotionTemplate {
    pub version_source: Option<VersionSource>,
    /// Empty: every file under the source path, whole.
    pub promotion: Vec<PromotedFile>,
}

/// What a release promotes, read from the trigger application's commit at
/// trigger time: values by normalized path, and whole files (relative to the
/// application's directory).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Promotion {
    pub values: Vec<super::promotion::PromotedValue>,
    pub files: std::collections::BTreeMap<String, String>,
}

/// Records violations of a repository URL's shape at `field`: `https://`,
/// `http://`, `file://` or an absolute path, with a host for the network
/// schemes, and no user name or password (credentials come from the
/// server's `--git-credentials`, never from a URL that ends up in releases,
/// logs and exports).
pub fn check_repo_url(v: &mut Violations, field: &str, url: &str) {
    if url.is_empty() {
        v.push(field, "is required");
        return;
    }
    check_text(v, field, url);
    if url.starts_with('/') {
        return;
    }
    let Ok(parsed) = url::Url::parse(url) else {
        v.push(
            field,
            format!("{url:?} is not a URL: use https://host/owner/repo.git (or a local path)"),
        );
        return;
    };
    match parsed.scheme() {
        "https" | "http" => {
            if parsed.host_str().is_none_or(str::is_empty) {
                v.push(field, format!("{url:?} has no host"));
            }
        }
        "file" => {}
        other => v.push(
            field,
            format!(
                "scheme {other:?} is not supported: use https:// (or http://, or a local path)"
            ),
        ),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        v.push(
            field,
            "must not carry a user name or password: give credentials to the server with --git-credentials",
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        v.push(field, "must not have a query or fragment");
    }
}

/// Records a violation unless `id` is empty or a commit id as people paste
/// it: 7 to 64 hexadecimal digits (abbreviated, SHA-1 or SHA-256).
pub fn check_commit_id(v: &mut Violations, field: &str, id: &str) {
    let hex = (7..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit());
    if !id.is_empty() && !hex {
        v.push(
            field,
            format!(
                "{:?} is not a commit id: give 7 to 64 hexadecimal digits",
                id.get(..80).unwrap_or(id)
            ),
        );
    }
}

/// The page showing commit `sha` of `repo_url` on the forges whose URL
/// scheme is fixed and public (github.com, gitlab.com, bitbucket.org and
/// codeberg.org); empty for any other host, where a guessed link would
/// often be wrong (self-hosted forges put it under different paths).
pub fn commit_web_url(repo_url: &str, sha: &str) -> String {
    let Ok(url) = url::Url::parse(repo_url) else {
        return String::new();
    };
    if url.scheme() != "https" || sha.is_empty() {
        return String::new();
    }
    let page = match url.host_str().map(str::to_ascii_lowercase).as_deref() {
        Some("github.com") | Some("codeberg.org") => "commit",
        Some("gitlab.com") => "-/commit",
        Some("bitbucket.org") => "commits",
        _ => return String::new(),
    };
    let Some(host) = url.host_str() else {
        return String::new();
    };
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    if path.trim_matches('/').is_empty() {
        return String::new();
    }
    format!("https://{}{path}/{page}/{sha}", host.to_ascii_lowercase())
}

/// Records a violation unless `path` is a relative path inside the
/// repository (or the application's directory): no leading `/`, no `..`,
/// no `.git` component, no backslashes or control characters.
pub fn check_relative_path(v: &mut Violations, field: &str, path: &str, required: bool) {
    if path.is_empty() {
        if required {
            v.push(field, "is required");
        }
        return;
    }
    check_text(v, field, path);
    let bad = path.starts_with('/')
        || path.contains('\\')
        || path.chars().any(char::is_control)
        || path
            .split('/')
            .any(|c| c == ".." || c == ".git" || (c.is_empty() && required));
    if bad {
        v.push(
            field,
            format!(
                "{path:?} must be a relative path inside the application's directory (no leading '/', no '..', no '.git')"
            ),
        );
    }
}

/// Validates a Git source at `field` (`…source`).
pub fn validate_source(v: &mut Violations, field: &str, s: &GitSource) {
    check_repo_url(v, &format!("{field}.repo_url"), &s.repo_url);
    if !s.branch.is_empty() && !is_branch_name(&s.branch) {
        v.push(
            format!("{field}.branch"),
            format!("{:?} is not a valid branch name", s.branch),
        );
    }
    let trimmed = s.path.trim_end_matches('/');
    check_relative_path(v, &format!("{field}.path"), trimmed, false);
}

/// A branch name git accepts (`git check-ref-format --branch`, the rules
/// that matter for a name we pass on): no spaces, control characters,
/// `~^:?*[\`, `..`, `@{`, no leading `-` or `/`, no trailing `/`, `.` or
/// `.lock`.
pub fn is_branch_name(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 255
        && !b.starts_with('-')
        && !b.starts_with('/')
        && !b.ends_with('/')
        && !b.ends_with('.')
        && !b.ends_with(".lock")
        && !b.contains("..")
        && !b.contains("@{")
        && !b.contains("//")
        && b != "@"
        && !b
            .chars()
            .any(|c| c.is_control() || c == ' ' || "~^:?*[\\".contains(c))
}

/// Validates a promotion template at `field` (`product.promotion_template`),
/// normalizing its JSONPaths in place with `normalize` (which explains a
/// path it refuses).
pub fn validate_template(
    v: &mut Violations,
    field: &str,
    t: &mut PromotionTemplate,
    normalize: &dyn Fn(&str) -> Result<String, String>,
) {
    if let Some(vs) = &mut t.version_source {
        let f = format!("{field}.version_source");
        check_relative_path(v, &format!("{f}.file"), &vs.file, true);
        if vs.json_path.is_empty() {
            v.push(format!("{f}.json_path"), "is required");
        } else {
            match normalize(&vs.json_path) {
                Ok(p) => vs.json_path = p,
                Err(e) => v.push(format!("{f}.json_path"), e),
            }
        }
    }
    if t.promotion.len() > MAX_TEMPLATE_ENTRIES {
        v.push(
            format!("{field}.promotion"),
            format!("has more than {MAX_TEMPLATE_ENTRIES} files"),
        );
        return;
    }
    let mut files = std::collections::HashSet::new();
    for (i, pf) in t.promotion.iter_mut().enumerate() {
        let f = format!("{field}.promotion[{i}]");
        check_relative_path(v, &format!("{f}.file"), &pf.file, true);
        if !pf.file.is_empty() && !files.insert(pf.file.clone()) {
            v.push(
                format!("{f}.file"),
                format!(
                    "{:?} is listed twice: give all its paths in one entry",
                    pf.file
                ),
            );
        }
        if pf.json_paths.is_empty() {
            v.push(
                format!("{f}.json_paths"),
                "needs at least one JSONPath, or \"*\" for the whole file",
            );
        }
        if pf.json_paths.len() > MAX_TEMPLATE_ENTRIES {
            v.push(
                format!("{f}.json_paths"),
                format!("has more than {MAX_TEMPLATE_ENTRIES} entries"),
            );
            continue;
        }
        if pf.is_whole() && pf.json_paths.len() > 1 {
            v.push(
                format!("{f}.json_paths"),
                "\"*\" promotes the whole file and cannot be combined with JSONPaths",
            );
            continue;
        }
        for (j, p) in pf.json_paths.iter_mut().enumerate() {
            if p == WHOLE_FILE {
                continue;
            }
            match normalize(p) {
                Ok(n) => *p = n,
                Err(e) => v.push(format!("{f}.json_paths[{j}]"), e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Violations) -> Vec<String> {
        v.0.into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn argocd_applications() {
        let check = |server: &str, name: &str| {
            let mut v = Violations::new();
            validate_argocd(
                &mut v,
                "a",
                &ArgoCdApp {
                    server: server.into(),
                    name: name.into(),
                },
            );
            fields(v)
        };
        assert!(check("https://argocd.example.com", "shop-prod").is_empty());
        assert!(check("http://127.0.0.1:8080/argo", "shop.prod-1").is_empty());
        for (server, name, want) in [
            ("", "", vec!["a.server", "a.name"]),
            ("https://u:p@argocd.example.com", "x", vec!["a.server"]),
            ("ftp://argocd.example.com", "x", vec!["a.server"]),
            ("https://argocd.example.com/?t=1", "x", vec!["a.server"]),
            ("argocd.example.com", "x", vec!["a.server"]),
            ("https://argocd.example.com", "Shop", vec!["a.name"]),
            ("https://argocd.example.com", "-shop", vec!["a.name"]),
            ("https://argocd.example.com", "a..b", vec!["a.name"]),
            ("https://argocd.example.com", "ns/shop", vec!["a.name"]),
        ] {
            assert_eq!(check(server, name), want, "{server} {name}");
        }
        assert!(!is_kubernetes_name(&"a".repeat(254)));
    }

    #[test]
    fn repository_urls() {
        for ok in [
            "https://git.example.com/team/apps.git",
            "http://127.0.0.1:8080/apps.git",
            "file:///srv/git/apps.git",
            "/srv/git/apps.git",
        ] {
            let mut v = Violations::new();
            check_repo_url(&mut v, "u", ok);
            assert!(v.is_empty(), "{ok}: {:?}", v.0);
        }
        for bad in [
            "",
            "git@github.com:team/apps.git",
            "ssh://git@host/apps.git",
            "https://user:token@host/apps.git",
            "https://user@host/apps.git",
            "https://",
            "https://host/apps.git?x=1",
            "ftp://host/apps.git",
        ] {
            let mut v = Violations::new();
            check_repo_url(&mut v, "u", bad);
            assert!(!v.is_empty(), "{bad} should be refused");
        }
    }

    #[test]
    fn paths_stay_inside_the_application() {
        for ok in ["values.yaml", "apps/dev/values.yaml", "a.b/c"] {
            let mut v = Violations::new();
            check_relative_path(&mut v, "p", ok, true);
            assert!(v.is_empty(), "{ok}");
        }
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            ".git/config",
            "a\\b",
            "a//b",
            "a\n",
        ] {
            let mut v = Violations::new();
            check_relative_path(&mut v, "p", bad, true);
            assert!(!v.is_empty(), "{bad:?} should be refused");
        }
        let mut v = Violations::new();
        check_relative_path(&mut v, "p", "", false);
        assert!(v.is_empty(), "an empty directory is the root");
    }

    #[test]
    fn branch_names() {
        for ok in ["main", "release/1.x", "env-prod"] {
            assert!(is_branch_name(ok), "{ok}");
        }
        for bad in ["", "-x", "a..b", "a b", "a:b", "x.lock", "a/", "@", "a@{1}"] {
            assert!(!is_branch_name(bad), "{bad}");
        }
    }

    #[test]
    fn templates_are_checked_whole_and_normalized() {
        let normalize = |p: &str| {
            if p.starts_with('$') {
                Ok(p.replacen("$v", "$.v", 1))
            } else {
                Err(format!("{p:?} is not a JSONPath"))
            }
        };
        let mut t = PromotionTemplate {
            version_source: Some(VersionSource {
                file: "Chart.yaml".into(),
                json_path: "$version".into(),
            }),
            promotion: vec![
                PromotedFile {
                    file: "values.yaml".into(),
                    json_paths: vec!["$.image.tag".into()],
                },
                PromotedFile {
                    file: "values.yaml".into(),
                    json_paths: vec!["tag".into(), "*".into()],
                },
                PromotedFile {
                    file: "../x".into(),
                    json_paths: vec![],
                },
            ],
        };
        let mut v = Violations::new();
        validate_template(&mut v, "t", &mut t, &normalize);
        assert_eq!(
            t.version_source.as_ref().map(|s| s.json_path.as_str()),
            Some("$.version"),
            "stored normalized"
        );
        assert_eq!(
            fields(v),
            [
                "t.promotion[1].file",
                "t.promotion[1].json_paths",
                "t.promotion[2].file",
                "t.promotion[2].json_paths",
            ]
        );
    }

    #[test]
    fn commit_ids() {
        let mut v = Violations::new();
        for ok in ["", "abc1234", &"a".repeat(40), &"F".repeat(64)] {
            check_commit_id(&mut v, "c", ok);
        }
        assert!(v.is_empty());
        for bad in ["abc123", "abc123g", &"a".repeat(65), "main"] {
            check_commit_id(&mut v, "c", bad);
        }
        assert_eq!(fields(v).len(), 4);
    }

    #[test]
    fn commit_pages_on_known_forges_only() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            commit_web_url("https://GitHub.com/acme/app.git", sha),
            format!("https://github.com/acme/app/commit/{sha}")
        );
        assert_eq!(
            commit_web_url("https://gitlab.com/group/sub/app/", sha),
            format!("https://gitlab.com/group/sub/app/-/commit/{sha}")
        );
        assert_eq!(
            commit_web_url("https://bitbucket.org/acme/app.git", sha),
            format!("https://bitbucket.org/acme/app/commits/{sha}")
        );
        for none in [
            "https://git.example.com/acme/app.git",
            "http://github.com/acme/app",
            "/srv/git/app.git",
            "https://github.com/",
        ] {
            assert_eq!(commit_web_url(none, sha), "", "{none}");
        }
        assert_eq!(commit_web_url("https://github.com/acme/app", ""), "");
    }
}
