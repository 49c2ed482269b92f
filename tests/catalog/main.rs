//! Catalog services against a real server, on SQLite or PostgreSQL (see
//! `common`): one module per service (environments, products and their
//! deployments, workflows), and here what they share and the rules common
//! to all three. One test binary for the three keeps link time down.
//!
//! Every test starts its own server on a fresh database, so tests are
//! independent and run in parallel. The assertions follow the contract in
//! `proto/promoflow/v1/{common,environment,product,workflow}.proto`.

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashMap;

use common::*;
use promoflow::proto::v1 as pb;
use prost_types::{Duration, Timestamp};
use tonic::{Code, Status};

mod environments;
mod products;
mod templates;
mod workflows;

// ------------------------------------------------------------------ helpers

/// Asserts `status`'s message contains every one of `words`.
#[track_caller]
fn assert_message_names(status: &Status, words: &[&str]) {
    for word in words {
        assert!(
            status.message().contains(word),
            "message {:?} should name {word:?}",
            status.message()
        );
    }
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn secs(seconds: i64) -> Duration {
    Duration { seconds, nanos: 0 }
}

/// Walks a listing page by page (`fetch` maps a page token to the page's
/// names and the next token) and checks it against `expected`, the full
/// listing in order, cut into pages of 2.
async fn assert_pages_of_two(
    expected: &[&str],
    mut fetch: impl AsyncFnMut(String) -> (Vec<String>, String),
) {
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut token = String::new();
    loop {
        let (names, next) = fetch(token.clone()).await;
        pages.push(names);
        if next.is_empty() {
            break;
        }
        assert!(
            !expected.contains(&next.as_str()),
            "page token {next:?} should be opaque, not a bare name"
        );
        assert_ne!(next, token, "a page token must move forward");
        assert!(pages.len() <= expected.len(), "pagination never ends");
        token = next;
    }
    let want: Vec<Vec<String>> = expected
        .chunks(2)
        .map(|c| c.iter().map(|s| s.to_string()).collect())
        .collect();
    assert_eq!(pages, want);
}

fn env(name: &str) -> pb::Environment {
    pb::Environment {
        name: name.into(),
        kind: pb::EnvironmentKind::NonProduction as i32,
        description: format!("{name} environment"),
        ..Default::default()
    }
}

/// Starts a server holding the non-production environments `names`.
async fn start_with_envs(names: &[&str]) -> TestServer {
    let server = TestServer::start().await;
    for name in names {
        create_env(&server, env(name))
            .await
            .unwrap_or_else(|s| panic!("create environment {name}: {s:?}"));
    }
    server
}

fn product(name: &str, applications: Vec<pb::Application>) -> pb::Product {
    pb::Product {
        name: name.into(),
        description: format!("{name} product"),
        applications,
        ..Default::default()
    }
}

/// Creates the flow `name`: `trigger` → `target`, running the workflow
/// `pre_action` (empty = none) before the promotion action.
async fn create_one_step_flow(
    server: &TestServer,
    name: &str,
    trigger: &str,
    target: &str,
    pre_action: &str,
) {
    let flow = pb::Flow {
        name: name.into(),
        trigger_environment: trigger.into(),
        steps: vec![pb::FlowStep {
            environment: target.into(),
            depends_on: vec![trigger.into()],
            policy: Some(pb::Policy {
                pre_action: pre_action.into(),
                ..Default::default()
            }),
            hooks: None,
        }],
        ..Default::default()
    };
    create_flow(server, flow)
        .await
        .unwrap_or_else(|s| panic!("create flow {name}: {s:?}"));
}

// ------------------------------------------------------------ all services

#[tokio::test]
async fn lists_reject_negative_page_size_and_bad_page_token() {
    let server = TestServer::start().await;
    for (size, token, field) in [(-1, "", "page_size"), (0, "not a token!", "page_token")] {
        expect_invalid(list_envs(&server, size, token).await, &[field]);
        expect_invalid(list_products(&server, size, token).await, &[field]);
        expect_invalid(list_wfs(&server, size, token).await, &[field]);
    }
}

#[tokio::test]
async fn page_token_from_another_list_is_invalid() {
    let server = start_with_envs(&["dev", "qa"]).await;
    for name in ["api", "web"] {
        create_product(&server, product(name, vec![]))
            .await
            .expect("create product");
    }
    let env_token = list_envs(&server, 1, "")
        .await
        .expect("list")
        .next_page_token;
    let product_token = list_products(&server, 1, "")
        .await
        .expect("list")
        .next_page_token;
    assert!(!env_token.is_empty() && !product_token.is_empty());
    // common.proto, Pagination: a token "from a different call is
    // INVALID_ARGUMENT".
    expect_code(
        list_products(&server, 1, &env_token).await,
        Code::InvalidArgument,
    );
    expect_code(
        list_envs(&server, 1, &product_token).await,
        Code::InvalidArgument,
    );
    expect_code(
        list_wfs(&server, 1, &env_token).await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn get_with_malformed_name_is_invalid_argument() {
    let server = TestServer::start().await;
    // Get*: "Errors: INVALID_ARGUMENT for a malformed name, NOT_FOUND."
    expect_invalid(get_env(&server, "Not_A_Name").await, &["name"]);
    expect_invalid(get_product(&server, "Not_A_Name").await, &["name"]);
    expect_invalid(get_wf(&server, "Not_A_Name").await, &["name"]);
}
