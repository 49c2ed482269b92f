//! Git webhooks: `POST /webhooks/github`, `/webhooks/gitea` and
//! `/webhooks/gitlab`, plain HTTP/1.1 or HTTP/2 on the gRPC port.
//!
//! Each delivery is answered in this order:
//! - no secret configured → 503 (webhooks are off; the body says how to turn
//!   them on);
//! - a body over [`MAX_BODY`] → 413;
//! - a missing or wrong signature → 401, and nothing changes;
//! - no event header, or a push / pull-request payload that is not JSON or
//!   lacks its repository, ref or number → 400;
//! - any other event (a ping, a tag push) → 202 `ignored`;
//! - a push → 202 once the watched applications of that repository and
//!   branch are handed to the Git poller (`Engine::poll_pushed`), which
//!   polls them at once through its own path; `matched` says how many (0 for
//!   a repository nobody watches);
//! - a pull-request event → 202 once the waits on that pull request running
//!   here are woken (`woken`).
//!
//! A store failure while matching is 503: the forge may redeliver. One log
//! line per delivery names the forge, event, repository and result; never
//! the body or a signature.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::domain::webhook::{self, Delivery, Forge};
use crate::engine::Engine;

/// Largest delivery body accepted. GitHub caps payloads at 25 MB but a push
/// of a normal size is a few kilobytes; a bigger one is refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;

struct Hooks {
    engine: Engine,
    /// The shared secret; `None`: webhooks are off.
    secret: Option<Vec<u8>>,
}

/// The webhook routes, to be merged with the gRPC routes.
pub(crate) fn router(engine: Engine, secret: Option<Vec<u8>>) -> Router {
    let state = Arc::new(Hooks { engine, secret });
    Router::new()
        .route("/webhooks/github", post(github))
        .route("/webhooks/gitea", post(gitea))
        .route("/webhooks/gitlab", post(gitlab))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn github(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    deliver(&h, Forge::GitHub, &headers, body).await
}

async fn gitea(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    deliver(&h, Forge::Gitea, &headers, body).await
}

async fn gitlab(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    deliver(&h, Forge::GitLab, &headers, body).await
}

/// An answer and what the log line says about it.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    repository: String,
    /// What the log line adds (an internal error), never sent back.
    detail: String,
}

fn refuse(status: StatusCode, why: impl std::fmt::Display) -> Answer {
    Answer {
        status,
        body: json!({"result": "refused", "error": why.to_string()}),
        repository: String::new(),
        detail: String::new(),
    }
}

async fn deliver(
    h: &Hooks,
    forge: Forge,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let event = headers
        .get(forge.event_header())
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(64)
        .collect::<String>();
    let a = answer(h, forge, headers, body, &event).await;
    let result = a.body["result"].as_str().unwrap_or("");
    if a.status.is_client_error() || a.status.is_server_error() {
        tracing::warn!(forge = forge.name(), event = %event, repository = %a.repository, status = a.status.as_u16(), result, error = a.body["error"].as_str().unwrap_or(""), detail = %a.detail, "webhook delivery refused");
    } else {
        tracing::info!(forge = forge.name(), event = %event, repository = %a.repository, status = a.status.as_u16(), result, matched = ?a.body.get("matched"), woken = ?a.body.get("woken"), "webhook delivery");
    }
    (
        a.status,
        [(header::CONTENT_TYPE, "application/json")],
        a.body.to_string(),
    )
        .into_response()
}

async fn answer(
    h: &Hooks,
    forge: Forge,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    event: &str,
) -> Answer {
    let Some(secret) = &h.secret else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks are off: start the server with --webhook-secret-file or PROMOFLOW_WEBHOOK_SECRET",
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY} bytes"),
            );
        }
        Err(_) => return refuse(StatusCode::BAD_REQUEST, "the body could not be read"),
    };
    let signature = headers.get(forge.signature_header()).map(|v| v.as_bytes());
    if let Err(e) = webhook::verify(forge, secret, signature, &body) {
        return refuse(StatusCode::UNAUTHORIZED, e);
    }
    let event = (!event.is_empty()).then_some(event);
    let delivery = match webhook::parse(forge, event, &body) {
        Ok(d) => d,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    match delivery {
        Delivery::Ignored(why) => Answer {
            status: StatusCode::ACCEPTED,
            body: json!({"result": "ignored", "reason": why}),
            repository: String::new(),
            detail: String::new(),
        },
        Delivery::Push { repo_urls, branch } => {
            let repository = repo_urls.first().cloned().unwrap_or_default();
            match h.engine.poll_pushed(&repo_urls, &branch).await {
                Ok(matched) => Answer {
                    status: StatusCode::ACCEPTED,
                    body: json!({"result": if matched > 0 { "accepted" } else { "ignored" }, "event": "push", "branch": branch, "matched": matched}),
                    repository,
                    detail: String::new(),
                },
                Err(e) => Answer {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    body: json!({"result": "failed", "error": "the store is unavailable; deliver again later"}),
                    repository,
                    detail: e.to_string(),
                },
            }
        }
        Delivery::PullRequest { repo_urls, number } => {
            let repository = repo_urls.first().cloned().unwrap_or_default();
            let woken = h.engine.wake_pull_request(&repo_urls, number);
            Answer {
                status: StatusCode::ACCEPTED,
                body: json!({"result": if woken > 0 { "accepted" } else { "ignored" }, "event": "pull_request", "number": number, "woken": woken}),
                repository,
                detail: String::new(),
            }
        }
    }
}
