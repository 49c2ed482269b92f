//! Reading an application's status from Argo CD's REST API, for the wait
//! until a promotion is deployed (`domain::sync` judges what is read).
//!
//! `GET {server}/api/v1/applications/{name}` with `Authorization: Bearer`;
//! the first read of a wait asks for `refresh=normal` (Argo CD then
//! re-compares with Git before answering, instead of reporting what it saw
//! up to three minutes ago). Over the engine's one HTTP client (reqwest,
//! rustls). The token never reaches a message: errors name the host.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::release::Outcome;
use crate::domain::sync::{AppStatus, Verdict, judge};
use crate::engine::git::{Git, GitError};

/// How long one read may take: a refresh makes Argo CD compare with Git
/// first, which takes a few seconds on a large application.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgoError {
    /// The token was refused (401, 403) or none is configured.
    #[error("{0}")]
    Auth(String),
    /// No such application (404) or a malformed address: waiting will not
    /// help.
    #[error("{0}")]
    Invalid(String),
    /// Network trouble or a server error: the next poll may succeed.
    #[error("{0}")]
    Transient(String),
}

/// Reads `name` on the Argo CD at `server` (`https://argocd.example.com`,
/// or a path prefix under which Argo CD is served).
pub async fn read(
    http: &reqwest::Client,
    server: &str,
    name: &str,
    token: Option<&str>,
    refresh: bool,
) -> Result<AppStatus, ArgoError> {
    let mut url = url::Url::parse(server)
        .map_err(|e| ArgoError::Invalid(format!("Argo CD server {server:?}: {e}")))?;
    let host = url.host_str().unwrap_or_default().to_string();
    url.path_segments_mut()
        .map_err(|_| ArgoError::Invalid(format!("Argo CD server {server:?} is not a base URL")))?
        .pop_if_empty()
        .extend(["api", "v1", "applications", name]);
    if refresh {
        url.query_pairs_mut().append_pair("refresh", "normal");
    }
    let mut req = http.get(url).timeout(READ_TIMEOUT);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| {
        ArgoError::Transient(format!(
            "cannot reach Argo CD at {host}: {}",
            without_url(e)
        ))
    })?;
    let status = resp.status();
    match status.as_u16() {
        200..=299 => {}
        401 | 403 => {
            return Err(ArgoError::Auth(format!(
                "authentication failed for Argo CD at {host} ({status}): check its token in --git-credentials"
            )));
        }
        404 => {
            return Err(ArgoError::Invalid(format!(
                "Argo CD at {host} has no application {name:?}"
            )));
        }
        _ => {
            return Err(ArgoError::Transient(format!(
                "Argo CD at {host} answered {status}"
            )));
        }
    }
    let app: App = resp.json().await.map_err(|e| {
        ArgoError::Transient(format!(
            "Argo CD at {host} sent an application that cannot be read: {}",
            without_url(e)
        ))
    })?;
    Ok(app.into())
}

/// How SYNC steps wait (`--sync-poll-interval`, `--sync-hold`,
/// `--sync-timeout`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SyncSettings {
    pub poll: Duration,
    pub hold: Duration,
    pub timeout: Duration,
}

/// One SYNC step's wait: which application, for which commit.
pub(crate) struct SyncWait<'a> {
    pub http: &'a reqwest::Client,
    pub git: &'a Git,
    pub server: &'a str,
    pub name: &'a str,
    pub token: Option<&'a str>,
    /// The application's repository, to tell whether a later revision
    /// contains `commit`; `None` when it is not Git-backed.
    pub repo_url: Option<&'a str>,
    /// The promoted commit; empty: any revision will do (action NONE, or
    /// nothing to change).
    pub commit: &'a str,
    pub settings: SyncSettings,
    /// What is left of `settings.timeout` (the step may have started
    /// before a restart).
    pub left: Duration,
}

/// Polls the application until `domain::sync::judge` says it is deployed
/// (succeeded) or cannot be (failed), or the time is up (failed). Each new
/// "waiting for …" text goes to `progress`. A passing error (network, 5xx)
/// is waited out; a refused token or a missing application fails at once.
pub(crate) async fn wait_for_sync(w: SyncWait<'_>, progress: impl Fn(&str)) -> Outcome {
    let failed = |message: String| Outcome::Failed { message };
    let until = tokio::time::Instant::now() + w.left;
    let mut last = String::new();
    let say = |m: String, last: &mut String| {
        if *last != m {
            progress(&m);
            *last = m;
        }
    };
    // Whether a revision contains the commit, once known (a revision
    // never changes its history).
    let mut known: std::collections::HashMap<String, bool> = Default::default();
    let mut first = true;
    loop {
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        let read = read(w.http, w.server, w.name, w.token, first);
        let status = match tokio::time::timeout(left, read).await {
            Err(_) => break,
            Ok(Ok(s)) => {
                first = false;
                s
            }
            Ok(Err(ArgoError::Transient(m))) => {
                say(format!("waiting for Argo CD: {m}; retrying"), &mut last);
                tokio::time::sleep(w.settings.poll.min(left)).await;
                continue;
            }
            Ok(Err(ArgoError::Auth(m) | ArgoError::Invalid(m))) => return failed(m),
        };
        let contains = contains(&w, &status, &mut known).await;
        match judge(
            &status,
            w.commit,
            contains,
            w.settings.hold,
            chrono::Utc::now(),
        ) {
            Verdict::Ready => {
                return Outcome::Succeeded {
                    message: format!("Synced and Healthy at {}", short(&status.revision)),
                    outputs: Default::default(),
                    artifact: None,
                };
            }
            Verdict::Failed(m) => return failed(m),
            Verdict::Waiting(m) => say(m, &mut last),
        }
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        tokio::time::sleep(w.settings.poll.min(left)).await;
    }
    let at = if w.commit.is_empty() {
        String::new()
    } else {
        format!(" at {}", short(w.commit))
    };
    let seen = last
        .strip_prefix("waiting for Argo CD: ")
        .map(|m| format!(" (last: {m})"))
        .unwrap_or_default();
    failed(format!(
        "Argo CD did not report {} Synced and Healthy{at} within {}{seen}",
        w.name,
        humantime::format_duration(w.settings.timeout)
    ))
}

/// Whether `s.revision` is the promoted commit or a later commit
/// containing it (asked of Git only once the application is Synced there).
async fn contains(
    w: &SyncWait<'_>,
    s: &AppStatus,
    known: &mut std::collections::HashMap<String, bool>,
) -> bool {
    if w.commit.is_empty() || s.revision == w.commit {
        return true;
    }
    if s.sync != "Synced" || s.revision.is_empty() {
        return false;
    }
    let Some(repo) = w.repo_url else {
        return false;
    };
    if let Some(&k) = known.get(&s.revision) {
        return k;
    }
    match w.git.is_ancestor(repo, w.commit, &s.revision).await {
        Ok(k) => {
            known.insert(s.revision.clone(), k);
            k
        }
        // Not a commit of the repository (another source, a chart
        // version): never the promoted one.
        Err(GitError::NotFound(_) | GitError::Invalid(_)) => {
            known.insert(s.revision.clone(), false);
            false
        }
        Err(e) => {
            tracing::debug!(app = w.name, error = %e, "cannot tell whether the synced revision contains the promoted commit yet");
            false
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// reqwest's message without the URL it appends (the host is already
/// named, and the query is noise).
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

// The parts of Argo CD's `v1alpha1.Application` the judgement reads.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct App {
    operation: Option<serde_json::Value>,
    status: Status,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Status {
    sync: Sync,
    health: Health,
    operation_state: Option<OperationState>,
    reconciled_at: Option<DateTime<Utc>>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Sync {
    status: String,
    revision: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Health {
    status: String,
    message: String,
    last_transition_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct OperationState {
    phase: String,
    message: String,
    finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

impl From<App> for AppStatus {
    fn from(a: App) -> Self {
        let s = a.status;
        let op = s.operation_state.unwrap_or_default();
        AppStatus {
            sync: s.sync.status,
            revision: s.sync.revision,
            health: s.health.status,
            health_message: s.health.message,
            health_since: s.health.last_transition_time,
            operation_requested: a.operation.is_some_and(|o| !o.is_null()),
            operation_phase: op.phase,
            operation_message: op.message,
            operation_finished: op.finished_at,
            reconciled: s.reconciled_at,
            conditions: s
                .conditions
                .into_iter()
                .map(|c| (c.kind, c.message))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A one-route stand-in answering `status` with `body`, recording each
    /// request's path, query and Authorization header.
    async fn stub(status: u16, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let log = log.clone();
            async move {
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string();
                log.lock().unwrap().push(format!("{} {}", req.uri(), auth));
                axum::response::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body))
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), seen)
    }

    const APP: &str = r#"{
      "metadata": {"name": "shop-prod"},
      "operation": null,
      "status": {
        "sync": {"status": "Synced", "revision": "abc123", "comparedTo": {}},
        "health": {"status": "Degraded", "message": "Back-off", "lastTransitionTime": "2026-12-01T10:00:00Z"},
        "operationState": {"phase": "Succeeded", "message": "successfully synced", "finishedAt": "2026-12-01T09:59:00Z", "startedAt": "2026-12-01T09:58:00Z"},
        "reconciledAt": "2026-12-01T10:00:01Z",
        "conditions": [{"type": "SyncError", "message": "x"}],
        "resources": []
      }
    }"#;

    #[tokio::test]
    async fn reads_the_fields_the_judgement_needs() {
        let (base, seen) = stub(200, APP).await;
        let http = reqwest::Client::new();
        let s = read(
            &http,
            &format!("{base}/argo/"),
            "shop-prod",
            Some("t0k"),
            true,
        )
        .await
        .unwrap();
        assert_eq!(
            (s.sync.as_str(), s.revision.as_str(), s.health.as_str()),
            ("Synced", "abc123", "Degraded")
        );
        assert_eq!(s.health_message, "Back-off");
        assert!(!s.operation_requested, "null is no operation");
        assert_eq!(s.operation_phase, "Succeeded");
        assert!(s.operation_finished < s.reconciled);
        assert_eq!(s.conditions, [("SyncError".into(), "x".into())]);
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["/argo/api/v1/applications/shop-prod?refresh=normal Bearer t0k"]
        );
        read(&http, &base, "a b", None, false).await.unwrap();
        assert_eq!(seen.lock().unwrap()[1], "/api/v1/applications/a%20b -");
    }

    #[tokio::test]
    async fn errors_say_what_to_do_without_the_token() {
        let http = reqwest::Client::new();
        for (code, want) in [
            (401, "authentication failed"),
            (403, "authentication failed"),
            (404, "no application"),
            (503, "answered 503"),
        ] {
            let (base, _) = stub(code, "{}").await;
            let e = read(&http, &base, "app", Some("s3cret"), false)
                .await
                .unwrap_err();
            assert!(e.to_string().contains(want), "{code}: {e}");
            assert!(!e.to_string().contains("s3cret"));
            assert_eq!(
                matches!(e, ArgoError::Transient(_)),
                code == 503,
                "{code}: only server errors are worth another poll"
            );
        }
        let (base, _) = stub(200, "not json").await;
        let e = read(&http, &base, "app", None, false).await.unwrap_err();
        assert!(matches!(e, ArgoError::Transient(_)), "{e}");
    }
}
