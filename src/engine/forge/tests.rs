//! The request shapes of each forge at the HTTP level, against a small
//! recording stub on 127.0.0.1:0, and the wait's handling of answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "forge-t0ken-xyz";

/// One request the stub received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    auth: String,
    headers: Vec<(String, String)>,
    body: Value,
}

type Answer = dyn Fn(&str, &str) -> (u16, Value) + Send + Sync;
/// The stub's state: what it saw, and how it answers.
type StubState = (Arc<Mutex<Vec<Seen>>>, Arc<Answer>);

struct Stub {
    api: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: tokio::task::JoinHandle<()>,
}

/// A stub answering `answer(method, path)` and recording every request.
async fn stub(answer: impl Fn(&str, &str) -> (u16, Value) + Send + Sync + 'static) -> Stub {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let answer: Arc<Answer> = Arc::new(answer);
    let state = (seen.clone(), answer);
    async fn handle(State((seen, answer)): State<StubState>, req: Request) -> Response {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let (status, reply) = answer(&method, &path);
        seen.lock().unwrap().push(Seen {
            method,
            path,
            query,
            auth,
            headers,
            body,
        });
        (
            http::StatusCode::from_u16(status).unwrap(),
            axum::Json(reply),
        )
            .into_response()
    }
    let app = axum::Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Stub {
        api: format!("http://{addr}"),
        seen,
        _task: task,
    }
}

impl Stub {
    fn client(&self, prefix: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            api: format!("{}{prefix}", self.api),
            host: self.api.trim_start_matches("http://").to_string(),
            token: TOKEN.into(),
            scheme: "Bearer",
            headers: &[],
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn header<'a>(s: &'a Seen, name: &str) -> &'a str {
    s.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

fn github_pr(number: i64, state: &str, merged: bool) -> Value {
    json!({
        "number": number,
        "html_url": format!("https://github.example/acme/apps/pull/{number}"),
        "state": state,
        "merged": merged,
        "merge_commit_sha": if merged { "m3rge" } else { "testmerge" },
        "head": {"ref": "promoflow/r1/prod", "sha": "h3ad"},
        "base": {"ref": "main"},
    })
}

fn new_pr<'a>() -> NewPullRequest<'a> {
    NewPullRequest {
        head: "promoflow/r1/prod",
        base: "main",
        title: "promote shop 1.2.0 from dev to prod",
        body: "release r1",
    }
}

#[tokio::test]
async fn github_requests_have_the_rest_v3_shape() {
    let s = stub(|method, path| match (method, path) {
        ("POST", "/api/v3/repos/acme/apps/pulls") => (201, github_pr(7, "open", false)),
        ("GET", "/api/v3/repos/acme/apps/pulls") => (
            200,
            json!([github_pr(7, "open", false), {
                "number": 3, "state": "closed", "merged_at": "2026-01-01T00:00:00Z",
                "merge_commit_sha": "old", "html_url": "u",
                "head": {"ref": "promoflow/r1/prod", "sha": "x"}, "base": {"ref": "main"}
            }]),
        ),
        ("GET", "/api/v3/repos/acme/apps/pulls/7") => (200, github_pr(7, "closed", true)),
        ("POST", "/api/v3/repos/acme/apps/issues/7/comments") => (201, json!({"id": 1})),
        _ => (404, json!({"message": "Not Found"})),
    })
    .await;
    let gh = github::Github::new(s.client("/api/v3"), "acme".into(), "apps".into());
    let pr = gh.create(&new_pr()).await.unwrap();
    assert_eq!(
        (
            pr.number,
            pr.state,
            pr.head_sha.as_str(),
            pr.merge_sha.as_str()
        ),
        (7, PrState::Open, "h3ad", ""),
        "an open pull request's test merge is not a merge"
    );
    let found = gh.find("promoflow/r1/prod", "main").await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!((found[1].number, found[1].state), (3, PrState::Merged));
    let got = gh.get(7).await.unwrap();
    assert_eq!(
        (got.state, got.merge_sha.as_str()),
        (PrState::Merged, "m3rge")
    );
    gh.comment(7, "stopped waiting").await.unwrap();

    let seen = s.seen();
    assert_eq!(seen.len(), 4);
    for r in &seen {
        assert_eq!(r.auth, format!("Bearer {TOKEN}"), "{r:?}");
        assert_eq!(header(r, "x-github-api-version"), "2022-11-28");
        assert!(header(r, "accept").contains("application/vnd.github+json"));
    }
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].body,
        json!({"title": "promote shop 1.2.0 from dev to prod", "head": "promoflow/r1/prod", "base": "main", "body": "release r1"})
    );
    let query: Vec<(String, String)> = url::form_urlencoded::parse(seen[1].query.as_bytes())
        .into_owned()
        .collect();
    for want in [
        ("head", "acme:promoflow/r1/prod"),
        ("base", "main"),
        ("state", "all"),
    ] {
        assert!(query.contains(&(want.0.into(), want.1.into())), "{query:?}");
    }
    assert_eq!(
        (seen[2].method.as_str(), seen[2].path.as_str()),
        ("GET", "/api/v3/repos/acme/apps/pulls/7")
    );
    assert_eq!(seen[3].body, json!({"body": "stopped waiting"}));
}

fn gitlab_mr(iid: i64, state: &str) -> Value {
    json!({
        "id": 900 + iid, "iid": iid, "state": state,
        "web_url": format!("https://gitlab.example/group/sub/apps/-/merge_requests/{iid}"),
        "source_branch": "promoflow/r1/prod", "target_branch": "main",
        "sha": "h3ad", "merge_commit_sha": if state == "merged" { Value::from("m3rge") } else { Value::Null },
    })
}

#[tokio::test]
async fn gitlab_requests_are_merge_requests_of_the_encoded_project() {
    let s = stub(|method, path| {
        let project = "/api/v4/projects/group%2Fsub%2Fapps";
        match (method, path.strip_prefix(project)) {
            ("POST", Some("/merge_requests")) => (201, gitlab_mr(4, "opened")),
            ("GET", Some("/merge_requests")) => (200, json!([gitlab_mr(4, "opened")])),
            ("GET", Some("/merge_requests/4")) => (200, gitlab_mr(4, "merged")),
            ("POST", Some("/merge_requests/4/notes")) => (201, json!({"id": 1})),
            _ => (404, json!({"message": "404 Project Not Found"})),
        }
    })
    .await;
    let gl = gitlab::Gitlab::new(s.client("/api/v4"), "group/sub/apps".into());
    let mr = gl.create(&new_pr()).await.unwrap();
    assert_eq!((mr.number, mr.state), (4, PrState::Open));
    assert!(mr.url.ends_with("/merge_requests/4"));
    assert_eq!(gl.find("promoflow/r1/prod", "main").await.unwrap().len(), 1);
    let got = gl.get(4).await.unwrap();
    assert_eq!(
        (got.state, got.merge_sha.as_str()),
        (PrState::Merged, "m3rge")
    );
    gl.comment(4, "stopped waiting").await.unwrap();

    let seen = s.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for r in &seen {
        assert_eq!(r.auth, format!("Bearer {TOKEN}"));
        assert!(
            r.path.starts_with("/api/v4/projects/group%2Fsub%2Fapps/"),
            "{r:?}"
        );
    }
    assert_eq!(
        seen[0].body,
        json!({"source_branch": "promoflow/r1/prod", "target_branch": "main", "title": "promote shop 1.2.0 from dev to prod", "description": "release r1"})
    );
    let query: Vec<(String, String)> = url::form_urlencoded::parse(seen[1].query.as_bytes())
        .into_owned()
        .collect();
    for want in [
        ("source_branch", "promoflow/r1/prod"),
        ("target_branch", "main"),
        ("state", "all"),
    ] {
        assert!(query.contains(&(want.0.into(), want.1.into())), "{query:?}");
    }
    assert_eq!(seen[3].body, json!({"body": "stopped waiting"}));
}

#[tokio::test]
async fn gitea_uses_its_token_scheme_and_errors_are_scrubbed() {
    let s = stub(|method, path| match (method, path) {
        ("POST", "/api/v1/repos/acme/apps/pulls") => (
            422,
            json!({"message": format!("bad head for token {TOKEN}")}),
        ),
        ("GET", "/api/v1/repos/acme/apps/pulls/1") => (401, json!({"message": "token is invalid"})),
        ("GET", "/api/v1/repos/acme/apps/pulls/2") => (503, json!({})),
        _ => (404, json!({"message": "not found"})),
    })
    .await;
    let gt = gitea::new(s.client("/api/v1"), "acme".into(), "apps".into());
    let e = gt.create(&new_pr()).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, ForgeError::Status { status: 422, .. }), "{e:?}");
    assert!(!text.contains(TOKEN) && text.contains("bad head"), "{text}");
    let e = gt.get(1).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "authentication failed for {}",
            s.api.trim_start_matches("http://")
        )
    );
    assert!(gt.get(2).await.unwrap_err().is_transient());
    let seen = s.seen();
    assert_eq!(seen[0].auth, format!("token {TOKEN}"));
    assert_eq!(
        seen[0].body,
        json!({"head": "promoflow/r1/prod", "base": "main", "title": "promote shop 1.2.0 from dev to prod", "body": "release r1"})
    );
}

#[tokio::test]
async fn the_wait_retries_passing_failures_and_wakes_at_once() {
    let calls = Arc::new(Mutex::new(0));
    let c = calls.clone();
    let s = stub(move |_, _| {
        let mut n = c.lock().unwrap();
        *n += 1;
        match *n {
            1 => (502, json!({})),
            2 => (200, github_pr(7, "open", false)),
            _ => (200, github_pr(7, "closed", false)),
        }
    })
    .await;
    let gt = gitea::new(s.client("/api/v1"), "acme".into(), "apps".into());
    let wakers = Wakers::default();
    let bell = wakers.register("http://h/acme/apps.git", 7);
    // The interval is an hour: only the bell makes the later checks.
    let wait = wait_for_merge(&gt, 7, Duration::from_secs(3600), &bell);
    let wake = async {
        for seen in 1..=2 {
            while *calls.lock().unwrap() < seen {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(wakers.wake("HTTP://h/acme/apps", 7));
        }
    };
    let (result, _) =
        tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(wait, wake) })
            .await
            .expect("woken, not polled");
    assert_eq!(
        result.unwrap_err(),
        "pull request #7 was closed without being merged"
    );
    assert!(!wakers.wake("http://h/acme/apps", 8), "nobody waits on #8");
}

#[test]
fn default_api_urls_follow_each_forge() {
    let u = |s: &str| url::Url::parse(s).unwrap();
    assert_eq!(
        default_api(ForgeKind::Github, &u("https://github.com/acme/apps.git")),
        "https://api.github.com"
    );
    assert_eq!(
        default_api(ForgeKind::Github, &u("https://ghe.example.com/acme/apps")),
        "https://ghe.example.com/api/v3"
    );
    assert_eq!(
        default_api(ForgeKind::Gitea, &u("https://codeberg.org/acme/apps")),
        "https://codeberg.org/api/v1"
    );
    assert_eq!(
        default_api(
            ForgeKind::Gitlab,
            &u("https://gitlab.example.com:8443/g/s/apps.git")
        ),
        "https://gitlab.example.com:8443/api/v4"
    );
    assert_eq!(encode("group/sub/apps"), "group%2Fsub%2Fapps");
}

fn status<'a>(state: StatusState, target_url: &'a str) -> CommitStatus<'a> {
    CommitStatus {
        state,
        target_url,
        description: "promoting shop 1.2.0",
        context: "promoflow/standard",
    }
}

#[tokio::test]
async fn commit_statuses_have_each_forges_shape() {
    let s = stub(|method, path| match (method, path) {
        ("POST", p) if p.contains("/statuses/") => (201, json!({"id": 1})),
        _ => (404, json!({"message": "Not Found"})),
    })
    .await;
    let link = "https://promoflow.example.com/releases/r1";
    let gh = github::Github::new(s.client("/api/v3"), "acme".into(), "apps".into());
    gh.commit_status("abc123", &status(StatusState::Pending, link))
        .await
        .unwrap();
    let gt = gitea::new(s.client("/api/v1"), "acme".into(), "apps".into());
    gt.commit_status("abc123", &status(StatusState::Failure, ""))
        .await
        .unwrap();
    let gl = gitlab::Gitlab::new(s.client("/api/v4"), "group/sub/apps".into());
    gl.commit_status("abc123", &status(StatusState::Pending, link))
        .await
        .unwrap();
    gl.commit_status("abc123", &status(StatusState::Error, link))
        .await
        .unwrap();

    let seen = s.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|r| r.method == "POST"), "{seen:?}");
    assert_eq!(seen[0].path, "/api/v3/repos/acme/apps/statuses/abc123");
    assert_eq!(seen[0].auth, format!("Bearer {TOKEN}"));
    assert_eq!(header(&seen[0], "x-github-api-version"), "2022-11-28");
    assert!(header(&seen[0], "accept").contains("application/vnd.github+json"));
    assert!(header(&seen[0], "content-type").contains("application/json"));
    assert_eq!(
        seen[0].body,
        json!({"state": "pending", "target_url": link, "description": "promoting shop 1.2.0", "context": "promoflow/standard"})
    );
    assert_eq!(seen[1].path, "/api/v1/repos/acme/apps/statuses/abc123");
    assert_eq!(seen[1].auth, format!("token {TOKEN}"));
    assert_eq!(
        seen[1].body,
        json!({"state": "failure", "description": "promoting shop 1.2.0", "context": "promoflow/standard"}),
        "no link: no target_url"
    );
    assert_eq!(
        seen[2].path,
        "/api/v4/projects/group%2Fsub%2Fapps/statuses/abc123"
    );
    assert_eq!(seen[2].auth, format!("Bearer {TOKEN}"));
    assert_eq!(
        seen[2].body,
        json!({"state": "running", "target_url": link, "description": "promoting shop 1.2.0", "name": "promoflow/standard"})
    );
    assert_eq!(seen[3].body["state"], "canceled");
}

#[tokio::test]
async fn a_refused_commit_status_is_an_error_without_the_token() {
    let s = stub(|_, _| (422, json!({"message": format!("bad token {TOKEN}")}))).await;
    let gt = gitea::new(s.client("/api/v1"), "acme".into(), "apps".into());
    let e = gt
        .commit_status("abc123", &status(StatusState::Success, ""))
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(m.contains("HTTP 422") && m.contains("127.0.0.1"), "{m}");
    assert!(!m.contains(TOKEN), "{m}");
}
