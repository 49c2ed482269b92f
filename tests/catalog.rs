//! Catalog services (environments, products, workflows) against a real
//! server, on SQLite or PostgreSQL (see `common`).
//!
//! Every test starts its own server on a fresh database, so tests are
//! independent and run in parallel. The assertions follow the contract in
//! `proto/promoflow/v1/{common,environment,product,workflow}.proto`.

mod common;

use std::collections::HashMap;

use common::{TestServer, expect_code, violation_fields};
use pb::workflow::Kind;
use promoflow::proto::v1 as pb;
use prost_types::{Duration, Timestamp};
use tonic::{Code, Status};

type Res<T> = Result<T, Status>;

// ------------------------------------------------------------------ helpers

/// The field paths of `status`'s violations, sorted: the contract fixes the
/// set of violations, not their order.
fn sorted_fields(status: &Status) -> Vec<String> {
    let mut fields = violation_fields(status);
    fields.sort();
    fields
}

/// The (field, description) pairs of `status`'s `BadRequest` details.
fn violations(status: &Status) -> Vec<(String, String)> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| {
            b.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts `result` is `INVALID_ARGUMENT` with exactly the violations `fields`.
#[track_caller]
fn expect_invalid<T: std::fmt::Debug>(result: Res<T>, fields: &[&str]) -> Status {
    let status = expect_code(result, Code::InvalidArgument);
    let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    want.sort();
    assert_eq!(sorted_fields(&status), want, "violations of {status:?}");
    status
}

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

fn time_of(t: &Option<Timestamp>) -> (i64, i32) {
    let t = t.as_ref().expect("timestamp is set");
    (t.seconds, t.nanos)
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

// ------------------------------------------------------------- environments

fn env(name: &str) -> pb::Environment {
    pb::Environment {
        name: name.into(),
        kind: pb::EnvironmentKind::NonProduction as i32,
        description: format!("{name} environment"),
        ..Default::default()
    }
}

async fn create_env(server: &TestServer, e: pb::Environment) -> Res<pb::Environment> {
    let r = server
        .environments()
        .create_environment(pb::CreateEnvironmentRequest {
            environment: Some(e),
        })
        .await?;
    Ok(r.into_inner()
        .environment
        .expect("response has the environment"))
}

async fn get_env(server: &TestServer, name: &str) -> Res<pb::Environment> {
    let r = server
        .environments()
        .get_environment(pb::GetEnvironmentRequest { name: name.into() })
        .await?;
    Ok(r.into_inner()
        .environment
        .expect("response has the environment"))
}

async fn update_env(
    server: &TestServer,
    e: pb::Environment,
    expected_version: i64,
) -> Res<pb::Environment> {
    let r = server
        .environments()
        .update_environment(pb::UpdateEnvironmentRequest {
            environment: Some(e),
            expected_version,
        })
        .await?;
    Ok(r.into_inner()
        .environment
        .expect("response has the environment"))
}

async fn delete_env(server: &TestServer, name: &str, expected_version: i64) -> Res<()> {
    server
        .environments()
        .delete_environment(pb::DeleteEnvironmentRequest {
            name: name.into(),
            expected_version,
        })
        .await?;
    Ok(())
}

async fn list_envs(
    server: &TestServer,
    page_size: i32,
    page_token: &str,
) -> Res<pb::ListEnvironmentsResponse> {
    let r = server
        .environments()
        .list_environments(pb::ListEnvironmentsRequest {
            page_size,
            page_token: page_token.into(),
        })
        .await?;
    Ok(r.into_inner())
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

fn env_names(envs: &[pb::Environment]) -> Vec<String> {
    envs.iter().map(|e| e.name.clone()).collect()
}

/// Creates the flow `name`: `trigger` → `target`, running the workflow
/// `pre_action` (empty = none) before the promotion action.
async fn create_flow(
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
    server
        .flows()
        .create_flow(pb::CreateFlowRequest { flow: Some(flow) })
        .await
        .unwrap_or_else(|s| panic!("create flow {name}: {s:?}"));
}

#[tokio::test]
async fn environment_lifecycle_and_errors() {
    let server = TestServer::start().await;

    let created = create_env(&server, env("dev")).await.expect("create");
    assert_eq!(created.name, "dev");
    assert_eq!(created.version, 1);

    expect_code(create_env(&server, env("dev")).await, Code::AlreadyExists);
    expect_invalid(
        create_env(&server, env("Bad_Name")).await,
        &["environment.name"],
    );

    let mut changed = created.clone();
    changed.description = "changed".into();
    let updated = update_env(&server, changed.clone(), 1)
        .await
        .expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.description, "changed");

    expect_code(update_env(&server, changed, 1).await, Code::Aborted);
    let got = get_env(&server, "dev").await.expect("get");
    assert_eq!(got.description, "changed", "a stale update changes nothing");
}

#[tokio::test]
async fn environment_round_trips_kind_labels_and_timestamps() {
    let server = TestServer::start().await;
    let input = pb::Environment {
        name: "prod-eu".into(),
        kind: pb::EnvironmentKind::Production as i32,
        description: "Production, Europe".into(),
        labels: labels(&[("team", "payments"), ("region", "eu-west-1")]),
        // Output only: ignored on create.
        version: 42,
        create_time: Some(Timestamp {
            seconds: 1,
            nanos: 0,
        }),
        update_time: None,
    };
    let created = create_env(&server, input.clone()).await.expect("create");
    assert_eq!(created.name, "prod-eu");
    assert_eq!(created.kind, pb::EnvironmentKind::Production as i32);
    assert_eq!(created.description, "Production, Europe");
    assert_eq!(created.labels, input.labels);
    assert_eq!(created.version, 1, "output-only version is ignored");
    assert_ne!(
        time_of(&created.create_time),
        (1, 0),
        "create_time is the server's"
    );
    assert_eq!(created.create_time, created.update_time);

    let got = get_env(&server, "prod-eu").await.expect("get");
    assert_eq!(got, created);
}

#[tokio::test]
async fn environment_unspecified_kind_is_stored_as_non_production() {
    let server = TestServer::start().await;
    let input = pb::Environment {
        kind: pb::EnvironmentKind::Unspecified as i32,
        ..env("dev")
    };
    let created = create_env(&server, input).await.expect("create");
    assert_eq!(created.kind, pb::EnvironmentKind::NonProduction as i32);
    let got = get_env(&server, "dev").await.expect("get");
    assert_eq!(got.kind, pb::EnvironmentKind::NonProduction as i32);
}

#[tokio::test]
async fn environment_create_reports_every_violation() {
    let server = TestServer::start().await;
    let long_key = "k".repeat(64);
    let input = pb::Environment {
        name: "Prod_EU".into(),
        kind: 99,
        labels: labels(&[(&long_key, "v"), ("ok", "fine")]),
        ..Default::default()
    };
    let label_field = format!("environment.labels[{long_key}]");
    expect_invalid(
        create_env(&server, input).await,
        &["environment.kind", "environment.name", &label_field],
    );
    let listed = list_envs(&server, 0, "").await.expect("list");
    assert!(listed.environments.is_empty(), "nothing was created");
}

#[tokio::test]
async fn environment_update_replaces_kind_description_and_labels() {
    let server = TestServer::start().await;
    let created = create_env(
        &server,
        pb::Environment {
            labels: labels(&[("team", "web"), ("tier", "2")]),
            ..env("staging")
        },
    )
    .await
    .expect("create");

    let change = pb::Environment {
        kind: pb::EnvironmentKind::Production as i32,
        description: String::new(),
        labels: labels(&[("owner", "sre")]),
        ..created.clone()
    };
    let updated = update_env(&server, change, 1).await.expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.kind, pb::EnvironmentKind::Production as i32);
    assert_eq!(updated.description, "", "an empty description clears it");
    assert_eq!(
        updated.labels,
        labels(&[("owner", "sre")]),
        "labels are replaced"
    );
    assert_eq!(updated.create_time, created.create_time);
    assert!(
        time_of(&updated.update_time) > time_of(&created.update_time),
        "update_time moves forward"
    );
    assert_eq!(get_env(&server, "staging").await.expect("get"), updated);

    let cleared = update_env(
        &server,
        pb::Environment {
            labels: HashMap::new(),
            ..updated
        },
        2,
    )
    .await
    .expect("clear labels");
    assert!(cleared.labels.is_empty(), "an empty map clears the labels");
    assert_eq!(cleared.version, 3);
}

#[tokio::test]
async fn environment_update_errors_change_nothing() {
    let server = TestServer::start().await;
    let created = create_env(
        &server,
        pb::Environment {
            labels: labels(&[("team", "web")]),
            ..env("dev")
        },
    )
    .await
    .expect("create");
    let change = pb::Environment {
        kind: pb::EnvironmentKind::Production as i32,
        labels: labels(&[("team", "platform")]),
        ..created.clone()
    };

    let unknown = update_env(&server, env("nowhere"), 1).await;
    let status = expect_code(unknown, Code::NotFound);
    assert_message_names(&status, &["nowhere"]);

    expect_invalid(
        update_env(&server, change.clone(), 0).await,
        &["expected_version"],
    );

    let status = expect_code(update_env(&server, change.clone(), 7).await, Code::Aborted);
    assert_message_names(&status, &["dev"]);

    expect_invalid(
        update_env(
            &server,
            pb::Environment {
                name: "Dev".into(),
                ..change
            },
            1,
        )
        .await,
        &["environment.name"],
    );

    let got = get_env(&server, "dev").await.expect("get");
    assert_eq!(got, created, "failed updates change nothing");
}

#[tokio::test]
async fn environment_update_reports_expected_version_with_other_violations() {
    let server = start_with_envs(&["dev"]).await;
    let long_key = "k".repeat(64);
    let change = pb::Environment {
        labels: labels(&[(&long_key, "v")]),
        ..env("dev")
    };
    let label_field = format!("environment.labels[{long_key}]");
    // common.proto: every violation at once, never only the first.
    expect_invalid(
        update_env(&server, change, 0).await,
        &[&label_field, "expected_version"],
    );
}

#[tokio::test]
async fn environment_get_unknown_is_not_found() {
    let server = start_with_envs(&["dev"]).await;
    let status = expect_code(get_env(&server, "qa").await, Code::NotFound);
    assert_message_names(&status, &["qa"]);
}

#[tokio::test]
async fn environment_list_pages_in_name_order() {
    let server = start_with_envs(&["qa", "prod-eu", "dev", "prod", "prod-asia"]).await;
    let sorted = ["dev", "prod", "prod-asia", "prod-eu", "qa"];

    assert_pages_of_two(&sorted, async |token| {
        let page = list_envs(&server, 2, &token).await.expect("list");
        (env_names(&page.environments), page.next_page_token)
    })
    .await;

    let all = list_envs(&server, 0, "").await.expect("default page size");
    assert_eq!(env_names(&all.environments), sorted);
    assert_eq!(all.next_page_token, "", "everything fits in a default page");
    for e in &all.environments {
        assert_eq!(e, &get_env(&server, &e.name).await.expect("get"));
    }

    let huge = list_envs(&server, 100_000, "")
        .await
        .expect("huge page size");
    assert_eq!(env_names(&huge.environments), sorted);
    assert_eq!(huge.next_page_token, "");
}

#[tokio::test]
async fn environment_list_neither_repeats_nor_skips_across_changes() {
    let server = start_with_envs(&["b", "d", "f", "h", "j"]).await;
    let first = list_envs(&server, 2, "").await.expect("page 1");
    assert_eq!(env_names(&first.environments), ["b", "d"]);

    // Between pages: one row ahead of the cursor goes, rows on both sides come.
    delete_env(&server, "f", 0).await.expect("delete f");
    create_env(&server, env("a")).await.expect("create a");
    create_env(&server, env("e")).await.expect("create e");

    let second = list_envs(&server, 2, &first.next_page_token)
        .await
        .expect("page 2");
    assert_eq!(env_names(&second.environments), ["e", "h"]);
    let third = list_envs(&server, 2, &second.next_page_token)
        .await
        .expect("page 3");
    assert_eq!(env_names(&third.environments), ["j"]);
    assert_eq!(third.next_page_token, "");
}

#[tokio::test]
async fn environment_delete_checks_existence_and_version() {
    let server = start_with_envs(&["dev", "qa"]).await;
    let dev = update_env(&server, env("dev"), 1)
        .await
        .expect("update to v2");
    assert_eq!(dev.version, 2);

    let status = expect_code(delete_env(&server, "dev", 1).await, Code::Aborted);
    assert_message_names(&status, &["dev"]);
    assert_eq!(get_env(&server, "dev").await.expect("still there"), dev);

    let status = expect_code(delete_env(&server, "nowhere", 0).await, Code::NotFound);
    assert_message_names(&status, &["nowhere"]);

    delete_env(&server, "dev", 2)
        .await
        .expect("delete at current version");
    expect_code(get_env(&server, "dev").await, Code::NotFound);
    expect_code(delete_env(&server, "dev", 0).await, Code::NotFound);

    delete_env(&server, "qa", 0)
        .await
        .expect("delete at any version");
    expect_code(get_env(&server, "qa").await, Code::NotFound);

    let again = create_env(&server, env("dev")).await.expect("re-create");
    assert_eq!(again.version, 1, "a re-created environment starts over");
}

#[tokio::test]
async fn environment_in_use_by_products_cannot_be_deleted() {
    let server = start_with_envs(&["dev", "qa"]).await;
    for name in ["shop", "web"] {
        create_product(
            &server,
            product(name, vec![app("dev", &format!("{name}-dev"), "1.0.0")]),
        )
        .await
        .expect("create product");
    }

    let status = expect_code(
        delete_env(&server, "dev", 1).await,
        Code::FailedPrecondition,
    );
    assert_message_names(&status, &["shop", "web"]);
    let dev = get_env(&server, "dev").await.expect("dev still exists");
    assert_eq!(dev.version, 1);

    delete_env(&server, "qa", 0).await.expect("qa is not used");

    for name in ["shop", "web"] {
        delete_product(&server, name, 0)
            .await
            .expect("delete product");
    }
    delete_env(&server, "dev", 1)
        .await
        .expect("dev is free once its products are gone");
}

#[tokio::test]
async fn environment_in_use_by_a_flow_cannot_be_deleted() {
    let server = start_with_envs(&["dev", "qa", "prod"]).await;
    create_flow(&server, "dev-to-qa", "dev", "qa", "").await;

    for used in ["dev", "qa"] {
        let status = expect_code(delete_env(&server, used, 0).await, Code::FailedPrecondition);
        assert_message_names(&status, &["dev-to-qa"]);
        get_env(&server, used).await.expect("still exists");
    }
    delete_env(&server, "prod", 0)
        .await
        .expect("prod is not in the flow");
}

// ----------------------------------------------------------------- products

fn app(environment: &str, name: &str, version: &str) -> pb::Application {
    pb::Application {
        environment: environment.into(),
        name: name.into(),
        version: version.into(),
        ..Default::default()
    }
}

fn product(name: &str, applications: Vec<pb::Application>) -> pb::Product {
    pb::Product {
        name: name.into(),
        description: format!("{name} product"),
        applications,
        ..Default::default()
    }
}

/// `environment:name@version` of each application, in order.
fn apps_of(p: &pb::Product) -> Vec<String> {
    p.applications
        .iter()
        .map(|a| format!("{}:{}@{}", a.environment, a.name, a.version))
        .collect()
}

fn commit(sha: &str, message: &str) -> pb::Commit {
    pb::Commit {
        sha: sha.into(),
        message: message.into(),
        author: "Ada Lovelace <ada@example.com>".into(),
        revision: "main".into(),
    }
}

fn deployment(product: &str, environment: &str, version: &str) -> pb::ReportDeploymentRequest {
    pb::ReportDeploymentRequest {
        product: product.into(),
        environment: environment.into(),
        version: version.into(),
        ..Default::default()
    }
}

async fn create_product(server: &TestServer, p: pb::Product) -> Res<pb::Product> {
    let r = server
        .products()
        .create_product(pb::CreateProductRequest { product: Some(p) })
        .await?;
    Ok(r.into_inner().product.expect("response has the product"))
}

async fn get_product(server: &TestServer, name: &str) -> Res<pb::Product> {
    let r = server
        .products()
        .get_product(pb::GetProductRequest { name: name.into() })
        .await?;
    Ok(r.into_inner().product.expect("response has the product"))
}

async fn update_product(
    server: &TestServer,
    p: pb::Product,
    expected_version: i64,
) -> Res<pb::Product> {
    let r = server
        .products()
        .update_product(pb::UpdateProductRequest {
            product: Some(p),
            expected_version,
        })
        .await?;
    Ok(r.into_inner().product.expect("response has the product"))
}

async fn delete_product(server: &TestServer, name: &str, expected_version: i64) -> Res<()> {
    server
        .products()
        .delete_product(pb::DeleteProductRequest {
            name: name.into(),
            expected_version,
        })
        .await?;
    Ok(())
}

async fn list_products(
    server: &TestServer,
    page_size: i32,
    page_token: &str,
) -> Res<pb::ListProductsResponse> {
    let r = server
        .products()
        .list_products(pb::ListProductsRequest {
            page_size,
            page_token: page_token.into(),
        })
        .await?;
    Ok(r.into_inner())
}

async fn report(
    server: &TestServer,
    request: pb::ReportDeploymentRequest,
) -> Res<pb::ReportDeploymentResponse> {
    Ok(server
        .products()
        .report_deployment(request)
        .await?
        .into_inner())
}

/// The application of `p` in `environment`.
fn app_in<'a>(p: &'a pb::Product, environment: &str) -> &'a pb::Application {
    p.applications
        .iter()
        .find(|a| a.environment == environment)
        .unwrap_or_else(|| panic!("{} has no application in {environment}", p.name))
}

fn selector(
    key: pb::SelectorKey,
    operator: pb::SelectorOperator,
    values: &[&str],
) -> pb::TriggerSelector {
    pb::TriggerSelector {
        key: key as i32,
        operator: operator as i32,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[tokio::test]
async fn product_create_and_get_keep_applications_in_order() {
    let server = start_with_envs(&["dev", "qa", "prod"]).await;
    let input = product(
        "trioapp",
        vec![
            app("qa", "trioapp-qa", "1.1.0"),
            app("dev", "trioapp-dev", "1.2.0"),
            app("prod", "trioapp-prod", ""),
        ],
    );
    let created = create_product(&server, input).await.expect("create");
    assert_eq!(created.name, "trioapp");
    assert_eq!(created.description, "trioapp product");
    assert_eq!(created.version, 1);
    assert_eq!(
        created.concurrency,
        pb::Concurrency::Queue as i32,
        "UNSPECIFIED is stored as QUEUE"
    );
    assert_eq!(
        apps_of(&created),
        [
            "qa:trioapp-qa@1.1.0",
            "dev:trioapp-dev@1.2.0",
            "prod:trioapp-prod@"
        ]
    );
    assert!(created.create_time.is_some());
    assert_eq!(created.create_time, created.update_time);

    let got = get_product(&server, "trioapp").await.expect("get");
    assert_eq!(got, created);
}

#[tokio::test]
async fn product_application_update_time_is_unset_until_a_version_is_recorded() {
    let server = start_with_envs(&["dev", "prod"]).await;
    let created = create_product(
        &server,
        product(
            "shop",
            vec![
                app("dev", "shop-dev", "1.0.0"),
                app("prod", "shop-prod", ""),
            ],
        ),
    )
    .await
    .expect("create");
    assert!(app_in(&created, "dev").update_time.is_some());
    assert_eq!(
        app_in(&created, "prod").update_time,
        None,
        "Application.update_time: unset when no version was ever recorded"
    );
}

#[tokio::test]
async fn product_create_ignores_output_only_application_fields() {
    let server = start_with_envs(&["dev"]).await;
    let input = product(
        "shop",
        vec![pb::Application {
            last_commit: Some(commit("forged", "not reported by anyone")),
            update_time: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..app("dev", "shop-dev", "1.0.0")
        }],
    );
    let created = create_product(&server, input).await.expect("create");
    let dev = app_in(&created, "dev");
    assert_ne!(
        time_of(&dev.update_time),
        (1, 0),
        "update_time is output only"
    );
    assert_eq!(dev.last_commit, None, "last_commit is output only");
}

#[tokio::test]
async fn product_duplicate_application_environment_is_invalid() {
    let server = start_with_envs(&["dev", "qa"]).await;
    let input = product(
        "shop",
        vec![
            app("dev", "shop-dev", ""),
            app("dev", "shop-dev-2", ""),
            app("qa", "shop-qa", ""),
        ],
    );
    let status = expect_invalid(
        create_product(&server, input).await,
        &["product.applications[1].environment"],
    );
    let (_, description) = &violations(&status)[0];
    assert!(description.contains("dev"), "{description}");
    expect_code(get_product(&server, "shop").await, Code::NotFound);
}

#[tokio::test]
async fn product_unknown_environment_is_invalid() {
    let server = start_with_envs(&["dev"]).await;
    let input = product(
        "shop",
        vec![app("dev", "shop-dev", ""), app("nowhere", "shop-x", "")],
    );
    let status = expect_invalid(
        create_product(&server, input).await,
        &["product.applications[1].environment"],
    );
    let (_, description) = &violations(&status)[0];
    assert!(description.contains("nowhere"), "{description}");
    expect_code(get_product(&server, "shop").await, Code::NotFound);
}

#[tokio::test]
async fn product_reports_every_violation_at_once() {
    let server = start_with_envs(&["dev"]).await;
    let input = product(
        "Bad_Name",
        vec![
            app("dev", "a", ""),
            app("dev", "b", ""),
            app("nowhere", "", ""),
        ],
    );
    expect_invalid(
        create_product(&server, input).await,
        &[
            "product.name",
            "product.applications[1].environment",
            "product.applications[2].environment",
            "product.applications[2].name",
        ],
    );
    let listed = list_products(&server, 0, "").await.expect("list");
    assert!(listed.products.is_empty(), "nothing was created");
}

#[tokio::test]
async fn product_concurrency_round_trips() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        pb::Product {
            concurrency: pb::Concurrency::Terminate as i32,
            ..product("shop", vec![app("dev", "shop-dev", "")])
        },
    )
    .await
    .expect("create");
    assert_eq!(created.concurrency, pb::Concurrency::Terminate as i32);
    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(got.concurrency, pb::Concurrency::Terminate as i32);

    let updated = update_product(
        &server,
        pb::Product {
            concurrency: pb::Concurrency::Unspecified as i32,
            ..got
        },
        1,
    )
    .await
    .expect("update");
    assert_eq!(
        updated.concurrency,
        pb::Concurrency::Queue as i32,
        "UNSPECIFIED is stored as QUEUE"
    );

    expect_invalid(
        create_product(
            &server,
            pb::Product {
                concurrency: 9,
                ..product("web", vec![])
            },
        )
        .await,
        &["product.concurrency"],
    );
}

#[tokio::test]
async fn product_promotion_flows_round_trip() {
    let server = start_with_envs(&["dev", "qa"]).await;
    create_flow(&server, "dev-to-qa", "dev", "qa", "").await;
    create_flow(&server, "hotfix", "dev", "qa", "").await;
    use pb::{SelectorKey as Key, SelectorOperator as Op};
    let flows = vec![
        pb::ProductPromotionFlow {
            flow: "hotfix".into(),
            selectors: vec![
                selector(Key::CommitMessage, Op::In, &["*hotfix*", "fix: *"]),
                selector(Key::GitRevision, Op::NotIn, &["main", "release-*"]),
            ],
        },
        pb::ProductPromotionFlow {
            flow: "dev-to-qa".into(),
            selectors: vec![],
        },
        pb::ProductPromotionFlow {
            flow: "hotfix".into(),
            selectors: vec![selector(Key::GitRevision, Op::In, &["v*"])],
        },
    ];
    let created = create_product(
        &server,
        pb::Product {
            promotion_flows: flows.clone(),
            ..product(
                "shop",
                vec![app("dev", "shop-dev", ""), app("qa", "shop-qa", "")],
            )
        },
    )
    .await
    .expect("create");
    assert_eq!(created.promotion_flows, flows);
    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(got.promotion_flows, flows);

    let reordered: Vec<_> = flows.iter().rev().cloned().collect();
    let updated = update_product(
        &server,
        pb::Product {
            promotion_flows: reordered.clone(),
            ..got
        },
        1,
    )
    .await
    .expect("update");
    assert_eq!(
        updated.promotion_flows, reordered,
        "order is priority order"
    );
}

#[tokio::test]
async fn product_unknown_promotion_flow_is_invalid() {
    let server = start_with_envs(&["dev"]).await;
    let input = pb::Product {
        promotion_flows: vec![pb::ProductPromotionFlow {
            flow: "ghost".into(),
            selectors: vec![],
        }],
        ..product("shop", vec![app("dev", "shop-dev", "")])
    };
    // product.proto, CreateProduct: "a promotion flow that does not exist"
    // is INVALID_ARGUMENT.
    expect_invalid(
        create_product(&server, input).await,
        &["product.promotion_flows[0].flow"],
    );
}

#[tokio::test]
async fn product_selector_without_operator_is_invalid() {
    let server = start_with_envs(&["dev", "qa"]).await;
    create_flow(&server, "dev-to-qa", "dev", "qa", "").await;
    let input = pb::Product {
        promotion_flows: vec![pb::ProductPromotionFlow {
            flow: "dev-to-qa".into(),
            selectors: vec![selector(
                pb::SelectorKey::GitRevision,
                pb::SelectorOperator::Unspecified,
                &["main"],
            )],
        }],
        ..product("shop", vec![app("dev", "shop-dev", "")])
    };
    // product.proto, SelectorOperator UNSPECIFIED: "Not set: INVALID_ARGUMENT".
    expect_invalid(
        create_product(&server, input).await,
        &["product.promotion_flows[0].selectors[0].operator"],
    );
}

#[tokio::test]
async fn product_selector_violations_name_the_right_selector() {
    let server = start_with_envs(&["dev", "qa"]).await;
    create_flow(&server, "dev-to-qa", "dev", "qa", "").await;
    let input = pb::Product {
        promotion_flows: vec![pb::ProductPromotionFlow {
            flow: "dev-to-qa".into(),
            selectors: vec![
                selector(
                    pb::SelectorKey::Unspecified,
                    pb::SelectorOperator::In,
                    &["x"],
                ),
                selector(pb::SelectorKey::GitRevision, pb::SelectorOperator::In, &[]),
            ],
        }],
        ..product("shop", vec![app("dev", "shop-dev", "")])
    };
    expect_invalid(
        create_product(&server, input).await,
        &[
            "product.promotion_flows[0].selectors[0].key",
            "product.promotion_flows[0].selectors[1].values",
        ],
    );
}

#[tokio::test]
async fn product_duplicate_name_is_already_exists() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    let again = pb::Product {
        description: "another".into(),
        ..product("shop", vec![])
    };
    let status = expect_code(create_product(&server, again).await, Code::AlreadyExists);
    assert_message_names(&status, &["shop"]);
    assert_eq!(get_product(&server, "shop").await.expect("get"), created);
}

#[tokio::test]
async fn product_update_with_stale_version_is_aborted() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    let first = update_product(
        &server,
        pb::Product {
            description: "first edit".into(),
            ..created.clone()
        },
        1,
    )
    .await
    .expect("update");
    assert_eq!(first.version, 2);
    assert_eq!(first.description, "first edit");
    assert_eq!(first.create_time, created.create_time);

    let stale = pb::Product {
        description: "lost edit".into(),
        concurrency: pb::Concurrency::Terminate as i32,
        applications: vec![],
        ..created
    };
    let status = expect_code(update_product(&server, stale, 1).await, Code::Aborted);
    assert_message_names(&status, &["shop"]);
    assert_eq!(get_product(&server, "shop").await.expect("get"), first);
}

#[tokio::test]
async fn product_update_errors_change_nothing() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");

    let status = expect_code(
        update_product(&server, product("ghost", vec![]), 1).await,
        Code::NotFound,
    );
    assert_message_names(&status, &["ghost"]);

    expect_invalid(
        update_product(&server, created.clone(), 0).await,
        &["expected_version"],
    );

    let bad = pb::Product {
        applications: vec![app("dev", "shop-dev", ""), app("nowhere", "shop-x", "")],
        ..created.clone()
    };
    expect_invalid(
        update_product(&server, bad, 1).await,
        &["product.applications[1].environment"],
    );

    assert_eq!(get_product(&server, "shop").await.expect("get"), created);
}

#[tokio::test]
async fn product_update_keeps_recorded_versions_of_existing_applications() {
    let server = start_with_envs(&["dev", "qa", "prod"]).await;
    let created = create_product(
        &server,
        product(
            "shop",
            vec![
                app("dev", "shop-dev", "1.0.0"),
                app("qa", "shop-qa", "0.9.0"),
            ],
        ),
    )
    .await
    .expect("create");
    let reported = report(
        &server,
        pb::ReportDeploymentRequest {
            commit: Some(commit("abc123", "feat: checkout")),
            ..deployment("shop", "dev", "1.1.0")
        },
    )
    .await
    .expect("report")
    .application
    .expect("application");

    let change = pb::Product {
        description: "edited".into(),
        applications: vec![
            app("dev", "shop-dev", ""),
            app("qa", "shop-qa", ""),
            app("prod", "shop-prod", "2.0.0"),
        ],
        ..created.clone()
    };
    let updated = update_product(&server, change, 1).await.expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.description, "edited");
    assert_eq!(
        apps_of(&updated),
        [
            "dev:shop-dev@1.1.0",
            "qa:shop-qa@0.9.0",
            "prod:shop-prod@2.0.0"
        ],
        "empty versions keep the recorded ones; a new application takes its initial version"
    );
    assert_eq!(
        app_in(&updated, "dev"),
        &reported,
        "the recorded commit and time are kept too"
    );
    assert_eq!(app_in(&updated, "qa"), app_in(&created, "qa"));
    assert_eq!(get_product(&server, "shop").await.expect("get"), updated);
}

#[tokio::test]
async fn product_update_ignores_requested_versions_of_existing_applications() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    let change = pb::Product {
        applications: vec![app("dev", "shop-dev", "0.0.1-rollback")],
        ..created.clone()
    };
    let updated = update_product(&server, change, 1).await.expect("update");
    // product.proto, Application.version: "UpdateProduct keeps the stored
    // value of an existing application whatever the request says."
    assert_eq!(apps_of(&updated), ["dev:shop-dev@1.0.0"]);
    assert_eq!(app_in(&updated, "dev"), app_in(&created, "dev"));
}

#[tokio::test]
async fn product_update_replaces_the_application_list() {
    let server = start_with_envs(&["dev", "qa", "prod"]).await;
    let created = create_product(
        &server,
        product(
            "shop",
            vec![
                app("dev", "shop-dev", "1.0.0"),
                app("qa", "shop-qa", "0.9.0"),
            ],
        ),
    )
    .await
    .expect("create");
    let change = pb::Product {
        applications: vec![
            app("prod", "shop-prod", "3.0.0"),
            app("dev", "shop-web", ""),
        ],
        ..created
    };
    let updated = update_product(&server, change, 1).await.expect("update");
    assert_eq!(
        apps_of(&updated),
        ["prod:shop-prod@3.0.0", "dev:shop-web@1.0.0"],
        "removed, added, renamed and reordered as requested"
    );
    assert_eq!(get_product(&server, "shop").await.expect("get"), updated);
    delete_env(&server, "qa", 0)
        .await
        .expect("qa is no longer used by the product");
}

#[tokio::test]
async fn product_delete_checks_existence_and_version() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");

    let status = expect_code(delete_product(&server, "shop", 5).await, Code::Aborted);
    assert_message_names(&status, &["shop"]);
    assert_eq!(
        get_product(&server, "shop").await.expect("still there"),
        created
    );

    let status = expect_code(delete_product(&server, "ghost", 0).await, Code::NotFound);
    assert_message_names(&status, &["ghost"]);

    delete_product(&server, "shop", 1).await.expect("delete");
    expect_code(get_product(&server, "shop").await, Code::NotFound);
    expect_code(delete_product(&server, "shop", 0).await, Code::NotFound);
    let listed = list_products(&server, 0, "").await.expect("list");
    assert!(listed.products.is_empty());

    let again = create_product(&server, product("shop", vec![app("dev", "shop-dev", "")]))
        .await
        .expect("re-create");
    assert_eq!(again.version, 1);
    assert_eq!(
        apps_of(&again),
        ["dev:shop-dev@"],
        "no application survives the delete"
    );
    delete_product(&server, "shop", 0)
        .await
        .expect("delete at any version");
}

#[tokio::test]
async fn product_list_pages_in_name_order() {
    let server = start_with_envs(&["dev", "qa"]).await;
    for name in ["web", "api", "shop", "billing", "search"] {
        create_product(
            &server,
            product(
                name,
                vec![
                    app("qa", &format!("{name}-qa"), "2.0"),
                    app("dev", &format!("{name}-dev"), ""),
                ],
            ),
        )
        .await
        .expect("create");
    }
    let sorted = ["api", "billing", "search", "shop", "web"];

    assert_pages_of_two(&sorted, async |token| {
        let page = list_products(&server, 2, &token).await.expect("list");
        let names = page.products.iter().map(|p| p.name.clone()).collect();
        (names, page.next_page_token)
    })
    .await;

    let all = list_products(&server, 0, "").await.expect("list");
    assert_eq!(all.next_page_token, "");
    assert_eq!(all.products.len(), 5);
    for p in &all.products {
        assert_eq!(
            p,
            &get_product(&server, &p.name).await.expect("get"),
            "listed products carry their applications"
        );
    }
}

// --------------------------------------------------------- report deployment

#[tokio::test]
async fn report_deployment_records_version_and_commit() {
    let server = start_with_envs(&["dev", "qa"]).await;
    let created = create_product(
        &server,
        product(
            "shop",
            vec![app("dev", "shop-dev", "1.0.0"), app("qa", "shop-qa", "")],
        ),
    )
    .await
    .expect("create");
    let c = commit("0123456789abcdef", "feat: checkout\n\nLonger body.");
    let response = report(
        &server,
        pb::ReportDeploymentRequest {
            commit: Some(c.clone()),
            ..deployment("shop", "dev", "1.1.0")
        },
    )
    .await
    .expect("report");
    assert_eq!(response.release, None, "the product has no promotion flows");
    let application = response.application.expect("application");
    assert_eq!(application.environment, "dev");
    assert_eq!(application.name, "shop-dev");
    assert_eq!(application.version, "1.1.0");
    assert_eq!(application.last_commit, Some(c));
    assert!(
        time_of(&application.update_time) > time_of(&app_in(&created, "dev").update_time),
        "the version's time is the report's"
    );

    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(app_in(&got, "dev"), &application);
    assert_eq!(
        app_in(&got, "qa"),
        app_in(&created, "qa"),
        "qa is untouched"
    );
    assert_eq!(
        got.version, 1,
        "recording a version does not bump the product"
    );
    assert_eq!(got.update_time, created.update_time);
}

#[tokio::test]
async fn report_deployment_without_commit_clears_the_previous_commit() {
    let server = start_with_envs(&["dev"]).await;
    create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    report(
        &server,
        pb::ReportDeploymentRequest {
            commit: Some(commit("abc", "feat: one")),
            ..deployment("shop", "dev", "1.1.0")
        },
    )
    .await
    .expect("report with commit");
    let second = report(&server, deployment("shop", "dev", "1.2.0"))
        .await
        .expect("report without commit")
        .application
        .expect("application");
    // Application.last_commit: "The commit reported with the current
    // version"; 1.2.0 came without one.
    assert_eq!(second.version, "1.2.0");
    assert_eq!(second.last_commit, None, "1.1.0's commit is not 1.2.0's");
    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(app_in(&got, "dev").last_commit, None);
}

#[tokio::test]
async fn report_deployment_errors_record_nothing() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");

    let status = expect_code(
        report(&server, deployment("ghost", "dev", "1.1.0")).await,
        Code::NotFound,
    );
    assert_message_names(&status, &["ghost"]);

    let status = expect_code(
        report(&server, deployment("shop", "nowhere", "1.1.0")).await,
        Code::NotFound,
    );
    assert_message_names(&status, &["nowhere"]);

    expect_invalid(
        report(&server, deployment("shop", "dev", "")).await,
        &["version"],
    );
    expect_invalid(
        report(&server, deployment("Shop", "Dev", "")).await,
        &["environment", "product", "version"],
    );

    assert_eq!(get_product(&server, "shop").await.expect("get"), created);
}

#[tokio::test]
async fn report_deployment_where_the_product_has_no_application_is_failed_precondition() {
    let server = start_with_envs(&["dev", "qa"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    // product.proto, ReportDeployment: "FAILED_PRECONDITION when the product
    // has no application in `environment`".
    let status = expect_code(
        report(&server, deployment("shop", "qa", "1.1.0")).await,
        Code::FailedPrecondition,
    );
    assert_message_names(&status, &["shop", "qa"]);
    assert_eq!(get_product(&server, "shop").await.expect("get"), created);
}

#[tokio::test]
async fn report_deployment_request_id_is_idempotent() {
    let server = start_with_envs(&["dev"]).await;
    create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    let first_request = pb::ReportDeploymentRequest {
        request_id: "ci-job-1".into(),
        ..deployment("shop", "dev", "1.1.0")
    };
    let first = report(&server, first_request.clone()).await.expect("first");
    report(
        &server,
        pb::ReportDeploymentRequest {
            request_id: "ci-job-2".into(),
            ..deployment("shop", "dev", "1.2.0")
        },
    )
    .await
    .expect("second");

    let replay = report(&server, first_request.clone())
        .await
        .expect("replay");
    assert_eq!(replay, first, "a replay returns the original response");
    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(
        app_in(&got, "dev").version,
        "1.2.0",
        "a replay changes nothing"
    );

    let conflict = pb::ReportDeploymentRequest {
        version: "9.9.9".into(),
        ..first_request
    };
    expect_code(report(&server, conflict).await, Code::AlreadyExists);
    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(app_in(&got, "dev").version, "1.2.0");
}

// ---------------------------------------------------------------- workflows

fn workflow(name: &str, kind: Kind) -> pb::Workflow {
    pb::Workflow {
        name: name.into(),
        description: format!("{name} workflow"),
        kind: Some(kind),
        ..Default::default()
    }
}

fn http(url: &str) -> pb::HttpWorkflow {
    pb::HttpWorkflow {
        url: url.into(),
        ..Default::default()
    }
}

fn wait(duration: Option<Duration>) -> Kind {
    Kind::Wait(pb::WaitWorkflow { duration })
}

fn command(argv: &[&str]) -> pb::CommandWorkflow {
    pb::CommandWorkflow {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

async fn create_wf(server: &TestServer, w: pb::Workflow) -> Res<pb::Workflow> {
    let r = server
        .workflows()
        .create_workflow(pb::CreateWorkflowRequest { workflow: Some(w) })
        .await?;
    Ok(r.into_inner().workflow.expect("response has the workflow"))
}

async fn get_wf(server: &TestServer, name: &str) -> Res<pb::Workflow> {
    let r = server
        .workflows()
        .get_workflow(pb::GetWorkflowRequest { name: name.into() })
        .await?;
    Ok(r.into_inner().workflow.expect("response has the workflow"))
}

async fn update_wf(
    server: &TestServer,
    w: pb::Workflow,
    expected_version: i64,
) -> Res<pb::Workflow> {
    let r = server
        .workflows()
        .update_workflow(pb::UpdateWorkflowRequest {
            workflow: Some(w),
            expected_version,
        })
        .await?;
    Ok(r.into_inner().workflow.expect("response has the workflow"))
}

async fn delete_wf(server: &TestServer, name: &str, expected_version: i64) -> Res<()> {
    server
        .workflows()
        .delete_workflow(pb::DeleteWorkflowRequest {
            name: name.into(),
            expected_version,
        })
        .await?;
    Ok(())
}

async fn list_wfs(
    server: &TestServer,
    page_size: i32,
    page_token: &str,
) -> Res<pb::ListWorkflowsResponse> {
    let r = server
        .workflows()
        .list_workflows(pb::ListWorkflowsRequest {
            page_size,
            page_token: page_token.into(),
        })
        .await?;
    Ok(r.into_inner())
}

/// Creates `input` and checks the server returns it with `expected` as its
/// kind (`input`'s kind with the defaults filled in), at version 1, and that
/// GetWorkflow returns the same.
async fn assert_workflow_round_trip(server: &TestServer, input: pb::Workflow, expected: Kind) {
    let created = create_wf(server, input.clone())
        .await
        .unwrap_or_else(|s| panic!("create {}: {s:?}", input.name));
    assert_eq!(created.name, input.name);
    assert_eq!(created.description, input.description);
    assert_eq!(created.kind, Some(expected), "kind of {}", input.name);
    assert_eq!(created.version, 1);
    assert!(created.create_time.is_some());
    assert_eq!(created.create_time, created.update_time);
    let got = get_wf(server, &input.name).await.expect("get");
    assert_eq!(got, created);
}

#[tokio::test]
async fn workflow_kinds_round_trip() {
    let server = TestServer::start().await;
    let cases = [
        workflow(
            "notify",
            Kind::Http(pb::HttpWorkflow {
                url: "https://hooks.example.com/promote?team=web".into(),
                headers: labels(&[("Authorization", "Bearer s3cret"), ("X-Trace", "1")]),
                timeout: Some(Duration {
                    seconds: 5,
                    nanos: 500_000_000,
                }),
                max_attempts: 5,
            }),
        ),
        workflow("soak", wait(Some(secs(15 * 60)))),
        workflow("longest-soak", wait(Some(secs(7 * 24 * 3600)))),
        workflow(
            "sign-off",
            Kind::Approval(pb::ApprovalWorkflow {
                timeout: Some(secs(24 * 3600)),
            }),
        ),
        workflow(
            "gate",
            Kind::Approval(pb::ApprovalWorkflow { timeout: None }),
        ),
        workflow(
            "smoke",
            Kind::Command(pb::CommandWorkflow {
                env: labels(&[("TARGET", "qa")]),
                timeout: Some(secs(120)),
                ..command(&["./smoke.sh", "--env", "qa"])
            }),
        ),
    ];
    for input in cases {
        let expected = input.kind.clone().expect("kind");
        assert_workflow_round_trip(&server, input, expected).await;
    }
}

#[tokio::test]
async fn workflow_defaults_are_filled_in() {
    let server = TestServer::start().await;
    assert_workflow_round_trip(
        &server,
        workflow("notify", Kind::Http(http("http://127.0.0.1:8080/hook"))),
        Kind::Http(pb::HttpWorkflow {
            timeout: Some(secs(30)),
            max_attempts: 3,
            ..http("http://127.0.0.1:8080/hook")
        }),
    )
    .await;
    assert_workflow_round_trip(
        &server,
        workflow("smoke", Kind::Command(command(&["true"]))),
        Kind::Command(pb::CommandWorkflow {
            timeout: Some(secs(30)),
            ..command(&["true"])
        }),
    )
    .await;
}

#[tokio::test]
async fn workflow_validation_names_the_fields() {
    let server = TestServer::start().await;
    let http_with = |f: fn(&mut pb::HttpWorkflow)| {
        let mut h = http("https://example.com/hook");
        f(&mut h);
        Kind::Http(h)
    };
    let cases: Vec<(pb::Workflow, &[&str])> = vec![
        (
            pb::Workflow {
                kind: None,
                ..workflow("no-kind", wait(Some(secs(1))))
            },
            &["workflow.kind"],
        ),
        (
            workflow("ftp", Kind::Http(http("ftp://example.com/hook"))),
            &["workflow.http.url"],
        ),
        (
            workflow("not-a-url", Kind::Http(http("not a url"))),
            &["workflow.http.url"],
        ),
        (
            workflow("no-url", Kind::Http(http(""))),
            &["workflow.http.url"],
        ),
        (
            workflow("eleven", http_with(|h| h.max_attempts = 11)),
            &["workflow.http.max_attempts"],
        ),
        (
            workflow("negative", http_with(|h| h.max_attempts = -1)),
            &["workflow.http.max_attempts"],
        ),
        (
            workflow("zero-timeout", http_with(|h| h.timeout = Some(secs(0)))),
            &["workflow.http.timeout"],
        ),
        (
            workflow("zero-wait", wait(Some(secs(0)))),
            &["workflow.wait.duration"],
        ),
        (workflow("no-wait", wait(None)), &["workflow.wait.duration"]),
        (
            workflow("week-and-a-second", wait(Some(secs(7 * 24 * 3600 + 1)))),
            &["workflow.wait.duration"],
        ),
        (
            workflow(
                "negative-approval",
                Kind::Approval(pb::ApprovalWorkflow {
                    timeout: Some(secs(-5)),
                }),
            ),
            &["workflow.approval.timeout"],
        ),
        (
            workflow("no-argv", Kind::Command(command(&[]))),
            &["workflow.command.argv"],
        ),
        (
            workflow("empty-program", Kind::Command(command(&["", "x"]))),
            &["workflow.command.argv"],
        ),
        (
            pb::Workflow {
                name: "Bad Name".into(),
                ..workflow(
                    "",
                    Kind::Http(pb::HttpWorkflow {
                        max_attempts: 11,
                        ..http("ftp://example.com")
                    }),
                )
            },
            &[
                "workflow.name",
                "workflow.http.url",
                "workflow.http.max_attempts",
            ],
        ),
    ];
    for (input, fields) in cases {
        let name = input.name.clone();
        let status = expect_code(create_wf(&server, input).await, Code::InvalidArgument);
        let mut want: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        want.sort();
        assert_eq!(sorted_fields(&status), want, "violations for {name}");
    }
    let listed = list_wfs(&server, 0, "").await.expect("list");
    assert!(listed.workflows.is_empty(), "nothing was created");
}

#[tokio::test]
async fn workflow_duplicate_name_is_already_exists() {
    let server = TestServer::start().await;
    let created = create_wf(&server, workflow("soak", wait(Some(secs(60)))))
        .await
        .expect("create");
    let status = expect_code(
        create_wf(&server, workflow("soak", Kind::Command(command(&["true"])))).await,
        Code::AlreadyExists,
    );
    assert_message_names(&status, &["soak"]);
    assert_eq!(get_wf(&server, "soak").await.expect("get"), created);
}

#[tokio::test]
async fn workflow_update_can_change_the_kind() {
    let server = TestServer::start().await;
    let created = create_wf(&server, workflow("gate", wait(Some(secs(600)))))
        .await
        .expect("create");
    let change = pb::Workflow {
        description: "now a manual approval".into(),
        kind: Some(Kind::Approval(pb::ApprovalWorkflow {
            timeout: Some(secs(3600)),
        })),
        ..created.clone()
    };
    let updated = update_wf(&server, change.clone(), 1).await.expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.description, "now a manual approval");
    assert_eq!(updated.kind, change.kind);
    assert_eq!(updated.create_time, created.create_time);
    assert!(time_of(&updated.update_time) > time_of(&created.update_time));
    assert_eq!(get_wf(&server, "gate").await.expect("get"), updated);
}

#[tokio::test]
async fn workflow_update_errors_change_nothing() {
    let server = TestServer::start().await;
    let created = create_wf(&server, workflow("gate", wait(Some(secs(600)))))
        .await
        .expect("create");
    let change = pb::Workflow {
        kind: Some(wait(Some(secs(5)))),
        ..created.clone()
    };

    let status = expect_code(update_wf(&server, change.clone(), 3).await, Code::Aborted);
    assert_message_names(&status, &["gate"]);

    expect_invalid(
        update_wf(&server, change.clone(), 0).await,
        &["expected_version"],
    );

    let status = expect_code(
        update_wf(&server, workflow("ghost", wait(Some(secs(5)))), 1).await,
        Code::NotFound,
    );
    assert_message_names(&status, &["ghost"]);

    let invalid = pb::Workflow {
        kind: Some(Kind::Http(http("ftp://example.com"))),
        ..created.clone()
    };
    expect_invalid(update_wf(&server, invalid, 1).await, &["workflow.http.url"]);

    assert_eq!(get_wf(&server, "gate").await.expect("get"), created);
}

#[tokio::test]
async fn workflow_delete_checks_existence_version_and_use() {
    let server = start_with_envs(&["dev", "qa"]).await;
    let soak = create_wf(&server, workflow("soak", wait(Some(secs(60)))))
        .await
        .expect("create soak");
    create_wf(
        &server,
        workflow(
            "gate",
            Kind::Approval(pb::ApprovalWorkflow { timeout: None }),
        ),
    )
    .await
    .expect("create gate");

    let status = expect_code(delete_wf(&server, "soak", 9).await, Code::Aborted);
    assert_message_names(&status, &["soak"]);
    assert_eq!(get_wf(&server, "soak").await.expect("still there"), soak);

    let status = expect_code(delete_wf(&server, "ghost", 0).await, Code::NotFound);
    assert_message_names(&status, &["ghost"]);

    create_flow(&server, "guarded", "dev", "qa", "gate").await;
    let status = expect_code(
        delete_wf(&server, "gate", 0).await,
        Code::FailedPrecondition,
    );
    assert_message_names(&status, &["gate", "guarded"]);
    get_wf(&server, "gate").await.expect("gate still exists");

    delete_wf(&server, "soak", 1).await.expect("delete");
    expect_code(get_wf(&server, "soak").await, Code::NotFound);
    expect_code(delete_wf(&server, "soak", 0).await, Code::NotFound);
}

#[tokio::test]
async fn workflow_list_pages_in_name_order() {
    let server = TestServer::start().await;
    for name in ["smoke", "approve", "notify", "soak", "gate"] {
        create_wf(&server, workflow(name, wait(Some(secs(1)))))
            .await
            .expect("create");
    }
    let sorted = ["approve", "gate", "notify", "smoke", "soak"];
    assert_pages_of_two(&sorted, async |token| {
        let page = list_wfs(&server, 2, &token).await.expect("list");
        let names = page.workflows.iter().map(|w| w.name.clone()).collect();
        (names, page.next_page_token)
    })
    .await;

    let all = list_wfs(&server, 0, "").await.expect("list");
    assert_eq!(all.next_page_token, "");
    assert_eq!(all.workflows.len(), 5);
    for w in &all.workflows {
        assert_eq!(w, &get_wf(&server, &w.name).await.expect("get"));
    }
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
