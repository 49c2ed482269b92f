//! An Argo CD stand-in for tests: `GET /api/v1/applications/{name}` as Argo
//! CD's REST API answers it (Bearer token, `refresh` query), on
//! `127.0.0.1:0`, for applications whose state follows a real bare
//! repository's branch the way an automated sync does.
//!
//! A [`Follow`] application reports `OutOfSync` at the revision it last
//! deployed for `out_of_sync_polls` reads after the branch moves, then a
//! sync operation that finished, `Synced` at the new tip and `Progressing`
//! for one read, then `end` (Healthy or Degraded) from then on, with a
//! health transition far enough back that a hold is satisfied.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::Response;

/// How a followed application ends once synced at the new tip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Healthy,
    Degraded,
}

/// An application that deploys what `branch` of the bare repository
/// `repo` holds.
#[derive(Debug, Clone)]
pub struct Follow {
    pub repo: PathBuf,
    pub branch: String,
    pub out_of_sync_polls: usize,
    pub end: End,
}

enum Mode {
    Follow(Follow),
    /// The same document for every read.
    Fixed(serde_json::Value),
}

struct App {
    mode: Mode,
    /// The revision deployed (synced) last, and reads since the branch
    /// moved away from it.
    deployed: Option<String>,
    behind_reads: usize,
    progressing_shown: bool,
}

#[derive(Default)]
struct Shared {
    token: String,
    apps: Mutex<HashMap<String, App>>,
    /// Every request as `<path>?<query>`.
    requests: Mutex<Vec<String>>,
}

/// A running stand-in; stopped when dropped.
pub struct ArgoCd {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    state: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ArgoCd {
    /// Starts a stand-in accepting `Authorization: Bearer <token>`.
    pub async fn start(token: &str) -> Self {
        let state = Arc::new(Shared {
            token: token.into(),
            ..Default::default()
        });
        let app = axum::Router::new()
            .route("/api/v1/applications/{name}", axum::routing::get(get_app))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// Serves `name` following a branch; it starts deployed at the
    /// branch's current tip (Synced, Healthy).
    pub fn follow(&self, name: &str, follow: Follow) {
        let deployed = tip(&follow.repo, &follow.branch);
        self.state.apps.lock().unwrap().insert(
            name.into(),
            App {
                mode: Mode::Follow(follow),
                deployed: Some(deployed),
                behind_reads: 0,
                progressing_shown: false,
            },
        );
    }

    /// Serves `name` as `document` (a whole Application) on every read.
    pub fn fixed(&self, name: &str, document: serde_json::Value) {
        self.state.apps.lock().unwrap().insert(
            name.into(),
            App {
                mode: Mode::Fixed(document),
                deployed: None,
                behind_reads: 0,
                progressing_shown: false,
            },
        );
    }

    /// The requests served so far, as `<path>?<query>`.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }
}

impl Drop for ArgoCd {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tip(repo: &std::path::Path, branch: &str) -> String {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", &format!("refs/heads/{branch}")])
        .output()
        .expect("git rev-parse");
    assert!(out.status.success(), "no branch {branch} in {repo:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn json(status: u16, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// An Application document in Argo CD's shape.
pub fn document(
    name: &str,
    sync: &str,
    revision: &str,
    health: &str,
    operation_phase: &str,
) -> serde_json::Value {
    let long_ago = "2020-01-01T00:00:00Z";
    let now = chrono::Utc::now().to_rfc3339();
    serde_json::json!({
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"project": "default"},
        "status": {
            "sync": {"status": sync, "revision": revision},
            "health": {"status": health, "lastTransitionTime": long_ago},
            "operationState": {
                "phase": operation_phase,
                "message": if operation_phase == "Succeeded" { "successfully synced" } else { "" },
                "startedAt": long_ago,
                "finishedAt": long_ago,
                "syncResult": {"revision": revision}
            },
            "reconciledAt": now,
            "conditions": []
        }
    })
}

async fn get_app(State(s): State<Arc<Shared>>, Path(name): Path<String>, req: Request) -> Response {
    s.requests.lock().unwrap().push(format!(
        "{}?{}",
        req.uri().path(),
        req.uri().query().unwrap_or_default()
    ));
    let expected = format!("Bearer {}", s.token);
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        return json(
            401,
            serde_json::json!({"error": "invalid session", "code": 16}),
        );
    }
    let follow = {
        let apps = s.apps.lock().unwrap();
        match apps.get(&name).map(|a| &a.mode) {
            None => {
                return json(
                    404,
                    serde_json::json!({"error": format!("applications.argoproj.io \"{name}\" not found"), "code": 5}),
                );
            }
            Some(Mode::Fixed(doc)) => return json(200, doc.clone()),
            Some(Mode::Follow(f)) => f.clone(),
        }
    };
    let head = tokio::task::spawn_blocking(move || tip(&follow.repo, &follow.branch))
        .await
        .expect("tip");
    let mut apps = s.apps.lock().unwrap();
    let Some(app) = apps.get_mut(&name) else {
        return json(404, serde_json::json!({"code": 5}));
    };
    let Mode::Follow(f) = &app.mode else {
        unreachable!("checked above");
    };
    let end = match f.end {
        End::Healthy => "Healthy",
        End::Degraded => "Degraded",
    };
    let deployed = app.deployed.clone().unwrap_or_default();
    if deployed != head {
        if app.behind_reads < f.out_of_sync_polls {
            app.behind_reads += 1;
            return json(
                200,
                document(&name, "OutOfSync", &deployed, "Healthy", "Succeeded"),
            );
        }
        app.deployed = Some(head.clone());
        app.behind_reads = 0;
        app.progressing_shown = true;
        return json(
            200,
            document(&name, "Synced", &head, "Progressing", "Succeeded"),
        );
    }
    let health = if app.progressing_shown {
        end
    } else {
        "Healthy"
    };
    json(200, document(&name, "Synced", &head, health, "Succeeded"))
}
