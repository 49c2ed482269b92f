//! Credentials for Git over HTTPS: a YAML list of URL prefixes, each with a
//! user name and where its token is (an environment variable or a file).
//! The token itself is read only when a git command needs it, so a rotated
//! token file is picked up without a restart, and it never sits in a
//! struct that could be logged.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::GitError;
use super::url::trim_repo_path;

/// One entry of the `--git-credentials` file.
///
/// ```yaml
/// - url_prefix: https://github.com/acme/
///   username: x-access-token
///   token_env: GITHUB_TOKEN
/// - url_prefix: https://git.example.com
///   username: promoflow
///   token_file: /run/secrets/git-token   # relative: to the YAML file
///   forge: {kind: gitea, api_url: https://git.example.com/api/v1}
/// ```
///
/// `forge` names the pull-request API behind the repositories the entry
/// covers (PULL_REQUEST actions need it); the same token authenticates it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// `https://host[/path]`: matches repository URLs on that host whose
    /// path starts with this path, on a `/` boundary (`…/acme` matches
    /// `…/acme/app.git`, not `…/acme-other/app`).
    pub url_prefix: String,
    pub username: String,
    /// The environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The file holding the token (surrounding whitespace is ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The forge serving these repositories' pull requests.
    #[serde(default)]
    pub forge: Option<ForgeConfig>,
}

/// Which pull-request API a credentials entry's repositories have.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeConfig {
    pub kind: ForgeKind,
    /// The API's base URL; by default `https://api.github.com` for
    /// github.com, `<scheme>://<host>/api/v3` for other GitHub (Enterprise)
    /// hosts, `<scheme>://<host>/api/v1` for Gitea and `…/api/v4` for
    /// GitLab.
    #[serde(default)]
    pub api_url: Option<String>,
}

/// The forges promoflow opens pull requests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    /// Gitea and Forgejo (and Codeberg): `/api/v1`.
    #[serde(alias = "forgejo")]
    Gitea,
    /// GitHub and GitHub Enterprise: REST v3.
    Github,
    /// GitLab: merge requests, `/api/v4`.
    Gitlab,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Gitea => "gitea",
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
        }
    }
}

/// Reads and checks a credentials file; token files given relative are
/// resolved against the file's directory. The tokens are not read here.
pub fn load_credentials(path: &Path) -> Result<Vec<Credential>, GitError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        GitError::Invalid(format!(
            "cannot read the git credentials file {}: {e}",
            path.display()
        ))
    })?;
    let mut list: Vec<Credential> = if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_saphyr::from_str(&text).map_err(|e| {
            GitError::Invalid(format!(
                "the git credentials file {} is not a list of credentials: {e}",
                path.display()
            ))
        })?
    };
    let base = path.parent().unwrap_or(Path::new("."));
    for (i, c) in list.iter_mut().enumerate() {
        c.check().map_err(|e| {
            GitError::Invalid(format!(
                "the git credentials file {}, entry {} ({}): {e}",
                path.display(),
                i + 1,
                c.url_prefix
            ))
        })?;
        if let Some(file) = &c.token_file
            && file.is_relative()
        {
            c.token_file = Some(base.join(file));
        }
    }
    Ok(list)
}

impl Credential {
    /// Checks the entry's shape (not the token).
    pub fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.url_prefix)
            .map_err(|e| format!("url_prefix is not a URL: {e}"))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err("url_prefix must start with https:// (or http://)".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("url_prefix has no host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("url_prefix must not contain a user name or password".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("url_prefix must not have a query or fragment".into());
        }
        if self.username.is_empty() || self.username.contains(':') {
            return Err("username must be set and must not contain `:`".into());
        }
        if self.username.chars().any(char::is_control) {
            return Err("username contains a control character".into());
        }
        if let Some(api) = self.forge.as_ref().and_then(|f| f.api_url.as_deref()) {
            let u = url::Url::parse(api).map_err(|e| format!("forge.api_url is not a URL: {e}"))?;
            if !matches!(u.scheme(), "https" | "http") || u.host_str().is_none_or(str::is_empty) {
                return Err("forge.api_url must be https://host[/path] (or http://)".into());
            }
            if !u.username().is_empty() || u.password().is_some() || u.query().is_some() {
                return Err("forge.api_url must not contain a user name, password or query".into());
            }
        }
        match (&self.token_env, &self.token_file) {
            (Some(var), None) if !var.is_empty() && !var.contains('=') => Ok(()),
            (Some(_), None) => Err("token_env must name an environment variable".into()),
            (None, Some(file)) if !file.as_os_str().is_empty() => Ok(()),
            (None, Some(_)) => Err("token_file is empty".into()),
            (Some(_), Some(_)) => Err("set one of token_env and token_file, not both".into()),
            (None, None) => Err("set token_env or token_file".into()),
        }
    }

    /// Whether this entry covers the repository `url` (parsed, no user
    /// info): same scheme, host and port, and a path on a `/` boundary.
    pub(crate) fn matches(&self, url: &url::Url) -> bool {
        let Ok(prefix) = url::Url::parse(&self.url_prefix) else {
            return false;
        };
        if prefix.scheme() != url.scheme()
            || prefix.host_str() != url.host_str()
            || prefix.port_or_known_default() != url.port_or_known_default()
        {
            return false;
        }
        let want = trim_repo_path(prefix.path());
        let have = trim_repo_path(url.path());
        want.is_empty()
            || have == want
            || have
                .strip_prefix(want)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The token, read now. Errors name the variable or file, never a
    /// token.
    pub(crate) fn token(&self) -> Result<String, GitError> {
        let missing = |what: String| {
            GitError::Invalid(format!(
                "the git credential for {} has no token: {what}",
                self.url_prefix
            ))
        };
        let token = match (&self.token_env, &self.token_file) {
            (Some(var), _) => std::env::var(var)
                .map_err(|_| missing(format!("environment variable {var} is not set")))?,
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| missing(format!("cannot read {}: {e}", file.display())))?,
            (None, None) => String::new(),
        };
        let token = token.trim().to_string();
        if token.is_empty() || token.chars().any(char::is_control) {
            return Err(missing("it is empty or contains control characters".into()));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(prefix: &str) -> Credential {
        Credential {
            url_prefix: prefix.into(),
            username: "u".into(),
            token_env: Some("T".into()),
            token_file: None,
            forge: None,
        }
    }

    #[test]
    fn prefix_matching_respects_boundaries() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        let acme = cred("https://github.com/acme");
        assert!(acme.matches(&url("https://github.com/acme/app.git")));
        assert!(acme.matches(&url("https://GITHUB.com:443/acme/app")));
        assert!(!acme.matches(&url("https://github.com/acme-evil/app")));
        assert!(!acme.matches(&url("http://github.com/acme/app")));
        assert!(!acme.matches(&url("https://github.com.evil.io/acme/app")));
        assert!(cred("https://github.com/").matches(&url("https://github.com/x/y")));
        assert!(
            cred("https://github.com/acme/app.git").matches(&url("https://github.com/acme/app"))
        );
    }

    #[test]
    fn loads_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.yaml");
        std::fs::write(
            &path,
            "- url_prefix: https://github.com/acme\n  username: x\n  token_file: tok\n",
        )
        .unwrap();
        let list = load_credentials(&path).unwrap();
        assert_eq!(
            list[0].token_file.as_deref(),
            Some(dir.path().join("tok").as_path())
        );

        std::fs::write(
            &path,
            "- url_prefix: https://h\n  username: x\n  tokn_env: A\n",
        )
        .unwrap();
        let e = load_credentials(&path).unwrap_err().to_string();
        assert!(e.contains("tokn_env"), "{e}");

        for (body, want) in [
            (
                "- url_prefix: https://h\n  username: x\n",
                "set token_env or token_file",
            ),
            (
                "- url_prefix: https://h\n  username: x\n  token_env: A\n  token_file: b\n",
                "not both",
            ),
            (
                "- url_prefix: ssh://h\n  username: x\n  token_env: A\n",
                "https://",
            ),
            (
                "- url_prefix: https://a:b@h\n  username: x\n  token_env: A\n",
                "user name",
            ),
        ] {
            std::fs::write(&path, body).unwrap();
            let e = load_credentials(&path).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
        std::fs::write(&path, "").unwrap();
        assert!(load_credentials(&path).unwrap().is_empty());

        std::fs::write(
            &path,
            "- url_prefix: https://h\n  username: x\n  token_env: A\n  forge: {kind: forgejo, api_url: https://h/api/v1}\n",
        )
        .unwrap();
        let forge = load_credentials(&path).unwrap()[0].forge.clone().unwrap();
        assert_eq!(forge.kind, ForgeKind::Gitea);
        assert_eq!(forge.api_url.as_deref(), Some("https://h/api/v1"));
        for (body, want) in [
            ("forge: {kind: bitbucket}", "bitbucket"),
            ("forge: {kind: github, api: x}", "api"),
            ("forge: {kind: gitlab, api_url: ftp://h}", "forge.api_url"),
        ] {
            std::fs::write(
                &path,
                format!("- url_prefix: https://h\n  username: x\n  token_env: A\n  {body}\n"),
            )
            .unwrap();
            let e = load_credentials(&path).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
    }
}
