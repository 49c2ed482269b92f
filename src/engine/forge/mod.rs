//! Pull requests on the forge hosting a repository: one small trait,
//! [`Forge`], implemented for Gitea/Forgejo ([`gitea`]), GitHub and GitHub
//! Enterprise ([`github`]) and GitLab merge requests ([`gitlab`]), all over
//! the engine's one `reqwest` client (rustls).
//!
//! Which forge, and where its API is, comes from the `forge` of the
//! `--git-credentials` entry covering the repository URL ([`connect`]); its
//! token is the one git uses, sent in a sensitive `Authorization` header,
//! never logged and scrubbed from every message.
//!
//! The PULL_REQUEST action opens or adopts a pull request
//! (`promote::open_pull_request`), records it on its step, then waits here:
//! [`wait_for_merge`] checks it every `--pr-poll-interval`, or at once when
//! its [`Wakers`] entry is rung. **Hook point for webhooks:** a
//! pull-request event handler calls [`Wakers::wake`] with the repository
//! URL and number, and the waiting environment re-checks immediately;
//! polling stays the fallback, so a lost webhook only costs time.

mod gitea;
mod github;
mod gitlab;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Notify;

use super::git::{ForgeKind, Git};

/// Longest one forge API call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between checks after passing failures.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);
/// How many characters of a forge's error message are kept.
const MAX_MESSAGE: usize = 200;

/// A pull request (a GitLab merge request) as promoflow needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PullRequest {
    /// GitHub/Gitea: the number; GitLab: the iid.
    pub number: i64,
    /// Its web page.
    pub url: String,
    pub state: PrState,
    pub head_branch: String,
    pub base_branch: String,
    pub head_sha: String,
    /// Once merged: the commit the merge made on the base branch (the head
    /// itself for fast-forward and rebase merges).
    pub merge_sha: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrState {
    Open,
    Merged,
    /// Closed without being merged.
    Closed,
}

/// What to open.
#[derive(Debug, Clone)]
pub(crate) struct NewPullRequest<'a> {
    pub head: &'a str,
    pub base: &'a str,
    pub title: &'a str,
    pub body: &'a str,
}

/// A forge's pull-request API for one repository.
#[async_trait::async_trait]
pub(crate) trait Forge: Send + Sync {
    /// Pull requests from branch `head` into `base`, in any state, newest
    /// first (among the most recent ones the forge lists).
    async fn find(&self, head: &str, base: &str) -> Result<Vec<PullRequest>, ForgeError>;
    async fn create(&self, pr: &NewPullRequest<'_>) -> Result<PullRequest, ForgeError>;
    async fn get(&self, number: i64) -> Result<PullRequest, ForgeError>;
    /// Adds a comment to the pull request's conversation.
    async fn comment(&self, number: i64, body: &str) -> Result<(), ForgeError>;
    /// Sets the commit status `status.context` of commit `sha`.
    async fn commit_status(&self, sha: &str, status: &CommitStatus<'_>) -> Result<(), ForgeError>;
}

/// Where a release stands, as a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusState {
    Pending,
    Success,
    Failure,
    /// Terminated: neither a success nor a failure of the promotion.
    Error,
}

impl StatusState {
    /// GitHub's and Gitea's name of the state.
    pub(crate) fn github(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }

    /// GitLab's name: a running pipeline, or a failed or canceled one.
    pub(crate) fn gitlab(self) -> &'static str {
        match self {
            StatusState::Pending => "running",
            StatusState::Success => "success",
            StatusState::Failure => "failed",
            StatusState::Error => "canceled",
        }
    }
}

/// A commit status to set.
#[derive(Debug, Clone)]
pub(crate) struct CommitStatus<'a> {
    pub state: StatusState,
    /// The release's page; empty: no link.
    pub target_url: &'a str,
    pub description: &'a str,
    /// `promoflow/<flow>`.
    pub context: &'a str,
}

/// What went wrong talking to a forge; `Display` never holds a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ForgeError {
    /// 401 or 403: the token is wrong, expired or lacks a scope.
    #[error("authentication failed for {host}")]
    Auth { host: String },
    /// Any other answer that is not a success.
    #[error("{what} on {host} failed: HTTP {status}{}", message_suffix(.message))]
    Status {
        host: String,
        what: String,
        status: u16,
        message: String,
    },
    /// Worth trying again: 5xx, 429, a connection that failed or timed out.
    #[error("{0}")]
    Transient(String),
    /// A configuration or answer promoflow cannot use.
    #[error("{0}")]
    Invalid(String),
}

fn message_suffix(m: &str) -> String {
    if m.is_empty() {
        String::new()
    } else {
        format!(": {m}")
    }
}

impl ForgeError {
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, ForgeError::Transient(_))
    }
}

/// The forge of the repository at `repo_url`, from its credentials entry.
/// The error is a message for the environment.
pub(crate) fn connect(
    git: &Git,
    http: &reqwest::Client,
    repo_url: &str,
) -> Result<Arc<dyn Forge>, String> {
    let url = url::Url::parse(repo_url).map_err(|_| {
        format!("the repository {repo_url:?} is not an https:// URL: pull requests need a forge")
    })?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(format!("the repository URL {repo_url:?} has no host")),
    };
    let cred = git.credential_for(repo_url).map_err(|e| e.to_string())?.ok_or_else(|| {
        format!(
            "no --git-credentials entry covers {repo_url} (over http:// only with --allow-insecure-git-http): a PULL_REQUEST action needs one naming the forge"
        )
    })?;
    let Some(forge) = &cred.forge else {
        return Err(format!(
            "the credentials entry for {host} names no forge: add `forge: {{kind: gitea|github|gitlab}}` to it in --git-credentials to open pull requests"
        ));
    };
    let api = match &forge.api_url {
        Some(a) => a.trim_end_matches('/').to_string(),
        None => default_api(forge.kind, &url),
    };
    let api_url = url::Url::parse(&api).map_err(|e| format!("forge.api_url {api:?}: {e}"))?;
    if api_url.scheme() != "https" && !git.allow_insecure_http() {
        return Err(format!(
            "the forge API {api} is not https://: the token is sent over http:// only with --allow-insecure-git-http"
        ));
    }
    let token = cred.token().map_err(|e| e.to_string())?;
    let path = url
        .path()
        .trim_matches('/')
        .trim_end_matches(".git")
        .to_string();
    let client = Client {
        http: http.clone(),
        api,
        host: api_url
            .host_str()
            .map(|h| match api_url.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
            .unwrap_or(host),
        token,
        scheme: "Bearer",
        headers: &[],
    };
    let (owner, name) = match path.rsplit_once('/') {
        Some((o, n)) if !o.is_empty() && !n.is_empty() => {
            (o.rsplit('/').next().unwrap_or(o).to_string(), n.to_string())
        }
        _ => {
            return Err(format!(
                "cannot tell the owner and name of the repository {repo_url}: its path must be /<owner>/<name>"
            ));
        }
    };
    Ok(match forge.kind {
        ForgeKind::Gitea => Arc::new(gitea::new(client, owner, name)),
        ForgeKind::Github => Arc::new(github::Github::new(client, owner, name)),
        ForgeKind::Gitlab => {
            // The project is the repository's whole path, below the path
            // GitLab itself is served under (the API URL's, minus /api/v4).
            let prefix = api_url
                .path()
                .trim_end_matches('/')
                .trim_end_matches("/api/v4")
                .trim_matches('/')
                .to_string();
            let project = if prefix.is_empty() {
                path
            } else {
                path.strip_prefix(&format!("{prefix}/"))
                    .map(str::to_string)
                    .unwrap_or(path)
            };
            Arc::new(gitlab::Gitlab::new(client, project))
        }
    })
}

/// The API of a forge of `kind` at the repository's host.
fn default_api(kind: ForgeKind, repo: &url::Url) -> String {
    let origin = repo.origin().ascii_serialization();
    match kind {
        ForgeKind::Github if repo.host_str() == Some("github.com") => {
            "https://api.github.com".to_string()
        }
        ForgeKind::Github => format!("{origin}/api/v3"),
        ForgeKind::Gitea => format!("{origin}/api/v1"),
        ForgeKind::Gitlab => format!("{origin}/api/v4"),
    }
}

/// An authenticated JSON client of one forge API.
#[derive(Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    /// The API's base URL, without a trailing `/`.
    api: String,
    /// `host[:port]` of the API, for messages.
    host: String,
    token: String,
    /// How the forge wants its token: `Authorization: <scheme> <token>`
    /// (`token` for Gitea, `Bearer` for GitHub and GitLab).
    scheme: &'static str,
    /// Headers the forge wants on every request.
    headers: &'static [(&'static str, &'static str)],
}

impl Client {
    /// This client for a forge wanting `scheme` and `headers`.
    fn speaking(
        mut self,
        scheme: &'static str,
        headers: &'static [(&'static str, &'static str)],
    ) -> Self {
        self.scheme = scheme;
        self.headers = headers;
        self
    }

    /// `method {api}{path}` with `query` and a JSON `body`; the answer's
    /// JSON. `what` names the operation in errors.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, ForgeError> {
        let (scheme, headers) = (self.scheme, self.headers);
        let mut value = reqwest::header::HeaderValue::from_str(&format!("{scheme} {}", self.token))
            .map_err(|_| {
                ForgeError::Invalid(format!(
                    "the token for {} cannot be sent in a header",
                    self.host
                ))
            })?;
        value.set_sensitive(true);
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .timeout(REQUEST_TIMEOUT)
            .header(reqwest::header::AUTHORIZATION, value);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"))
        {
            req = req.header(reqwest::header::ACCEPT, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timed out"
                } else {
                    "could not connect"
                };
                return Err(ForgeError::Transient(format!(
                    "{what} on {}: {kind}",
                    self.host
                )));
            }
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ForgeError::Auth {
                host: self.host.clone(),
            });
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ForgeError::Transient(format!(
                "{what} on {} failed: HTTP {}",
                self.host,
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(ForgeError::Status {
                host: self.host.clone(),
                what: what.to_string(),
                status: status.as_u16(),
                message: self.scrub(&error_message(&text)),
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| {
            ForgeError::Invalid(format!("{what} on {}: the answer is not JSON", self.host))
        })
    }

    /// `text` without the token, and short.
    fn scrub(&self, text: &str) -> String {
        let clean = if self.token.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.token, "***")
        };
        let clean: String = clean.chars().filter(|c| !c.is_control()).collect();
        if clean.chars().count() > MAX_MESSAGE {
            let mut short: String = clean.chars().take(MAX_MESSAGE).collect();
            short.push('…');
            short
        } else {
            clean
        }
    }

    fn invalid(&self, what: &str) -> ForgeError {
        ForgeError::Invalid(format!(
            "{what} on {}: the answer lacks the pull request's fields",
            self.host
        ))
    }
}

/// The message of a forge's error body: its `message` (or `error`) when it
/// is JSON, else the text itself.
fn error_message(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => match v.get("message").or_else(|| v.get("error")) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        },
        Err(_) => text.trim().to_string(),
    }
}

/// A path segment, percent-encoded (GitLab's project path, branch names).
pub(crate) fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Longest commit status description GitHub takes.
const MAX_DESCRIPTION: usize = 140;

/// `status`'s description, short enough for every forge.
fn short_description(status: &CommitStatus<'_>) -> String {
    status.description.chars().take(MAX_DESCRIPTION).collect()
}

/// The commit status body of GitHub and Gitea; no `target_url` without a
/// link.
fn github_status_body(status: &CommitStatus<'_>) -> Value {
    let mut body = serde_json::json!({
        "state": status.state.github(),
        "description": short_description(status),
        "context": status.context,
    });
    if !status.target_url.is_empty() {
        body["target_url"] = status.target_url.into();
    }
    body
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// Waits until pull request `number` is merged (success, with the merge
/// commit) or closed (failure); checks at once, then every `every`, or as
/// soon as `wake` is rung. Passing failures (5xx, timeouts, no connection)
/// are retried with a growing delay, never failing the wait; the promotion
/// timeout or a terminate end it from outside (by dropping this future).
pub(crate) async fn wait_for_merge(
    forge: &dyn Forge,
    number: i64,
    every: Duration,
    wake: &Notify,
) -> Result<PullRequest, String> {
    let every = every.max(Duration::from_millis(10));
    let mut delay = every;
    loop {
        match forge.get(number).await {
            Ok(pr) => match pr.state {
                PrState::Open => delay = every,
                PrState::Merged => return Ok(pr),
                PrState::Closed => {
                    return Err(format!(
                        "pull request #{number} was closed without being merged"
                    ));
                }
            },
            Err(e) if e.is_transient() => {
                tracing::warn!(pull_request = number, error = %e, "checking the pull request failed; retrying");
                delay = (delay * 2).min(MAX_RETRY_DELAY.max(every));
            }
            Err(e) => return Err(format!("checking pull request #{number}: {e}")),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = wake.notified() => {}
        }
    }
}

/// Doorbells of the pull requests environments wait on, by repository and
/// number: a webhook rings one to have the wait check at once.
#[derive(Default)]
pub(crate) struct Wakers {
    bells: Mutex<HashMap<String, Weak<Notify>>>,
}

impl Wakers {
    fn key(repo_url: &str, number: i64) -> String {
        let repo = repo_url
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .to_ascii_lowercase();
        format!("{repo}#{number}")
    }

    /// The doorbell of pull request `number` of `repo_url`, for a wait;
    /// forgotten once every holder dropped it.
    pub(crate) fn register(&self, repo_url: &str, number: i64) -> Arc<Notify> {
        let mut bells = self.bells.lock().unwrap_or_else(|e| e.into_inner());
        bells.retain(|_, w| w.strong_count() > 0);
        let key = Self::key(repo_url, number);
        if let Some(n) = bells.get(&key).and_then(Weak::upgrade) {
            return n;
        }
        let n = Arc::new(Notify::new());
        bells.insert(key, Arc::downgrade(&n));
        n
    }

    /// Wakes the wait on pull request `number` of `repo_url`, if one runs
    /// here (the hook point for pull-request webhooks). True when one did.
    pub(crate) fn wake(&self, repo_url: &str, number: i64) -> bool {
        let bells = self.bells.lock().unwrap_or_else(|e| e.into_inner());
        match bells
            .get(&Self::key(repo_url, number))
            .and_then(Weak::upgrade)
        {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests;
