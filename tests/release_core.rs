//! The release core's contract at its edges, against a real server: approvals
//! of release-level hooks, the codes of a trigger that names nothing, and
//! calls that fail without changing anything (deployment reports, product
//! updates and deletes).

mod common;

use common::*;
use promoflow::proto::v1 as pb;
use tonic::Code;

/// Sets the release-level `on_start` hook of flow `parallel`.
async fn release_on_start(server: &TestServer, workflow: &str) {
    let hooks = pb::Hooks {
        on_start: workflow.into(),
        ..Default::default()
    };
    edit_latest(
        server,
        "parallel",
        vec![pb::flow_edit::Edit::SetHooks(pb::flow_edit::SetHooks {
            environment: String::new(),
            hooks: Some(hooks),
        })],
    )
    .await;
}

/// `TriggerRelease` of version 2.0.0, its result unchecked.
async fn try_trigger(
    server: &TestServer,
    flow: &str,
    product: &str,
) -> Res<pb::TriggerReleaseResponse> {
    server
        .releases()
        .trigger_release(pb::TriggerReleaseRequest {
            flow: flow.into(),
            product: product.into(),
            version: "2.0.0".into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

async fn wait_status(server: &TestServer, id: &str, want: pb::ReleaseStatus) -> pb::Release {
    wait_until(server, id, want.as_str_name(), |r| status(r) == want).await
}

async fn product(server: &TestServer, name: &str) -> pb::Product {
    get_product(server, name).await.expect("get product")
}

#[tokio::test]
async fn a_release_level_approval_suspends_the_release_and_an_empty_environment_decides_it() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    create_approval(&server, "change-board", None).await;
    release_on_start(&server, "change-board").await;
    let r = trigger(&server, DEMO, "2.0.0").await;
    let held = wait_status(&server, &r.id, pb::ReleaseStatus::Suspended).await;
    assert_eq!(
        held.hooks[0].status,
        pb::StepStatus::Suspended as i32,
        "{held:?}"
    );
    assert!(
        held.environments
            .iter()
            .all(|e| e.status == pb::EnvironmentStatus::Pending as i32),
        "nothing runs before the release's on_start hook: {held:?}"
    );
    // No environment of it awaits approval: naming one is refused.
    expect_code(
        approve(&server, &r.id, "qa", true, "").await,
        Code::FailedPrecondition,
    );
    let after = approve(&server, &r.id, "", true, "change board")
        .await
        .expect("approve the hook")
        .release
        .expect("release");
    assert_ne!(after.status, pb::ReleaseStatus::Suspended as i32);
    let done = wait_final(&server, &r.id).await;
    assert_eq!(done.status, pb::ReleaseStatus::Succeeded as i32, "{done:?}");
    assert_eq!(
        done.hooks[0].message,
        "approved by token:test-admin: change board"
    );
    // Nothing awaits a decision any more.
    expect_code(
        approve(&server, &r.id, "", true, "").await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn a_release_level_approval_times_out_and_can_be_retried() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    create_approval(&server, "change-board", Some(1000)).await;
    release_on_start(&server, "change-board").await;
    let r = trigger(&server, DEMO, "2.0.0").await;
    let failed = wait_final(&server, &r.id).await;
    assert_eq!(
        failed.status,
        pb::ReleaseStatus::Failed as i32,
        "{failed:?}"
    );
    assert_eq!(failed.hooks[0].message, "approval timed out");
    // A retry asks again; a rejection then fails the release.
    retry(&server, &r.id).await.expect("retry");
    let held = wait_status(&server, &r.id, pb::ReleaseStatus::Suspended).await;
    assert_eq!(held.hooks[0].attempt, 2);
    approve(&server, &r.id, "", false, "change board")
        .await
        .expect("reject");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(done.status, pb::ReleaseStatus::Failed as i32);
    assert_eq!(
        done.hooks[0].message,
        "rejected by token:test-admin: change board"
    );
}

#[tokio::test]
async fn triggering_an_unknown_flow_or_product_is_not_found() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    let s = expect_code(try_trigger(&server, "nope", DEMO).await, Code::NotFound);
    assert!(s.message().contains("nope"), "{s:?}");
    let s = expect_code(
        try_trigger(&server, "parallel", "nope").await,
        Code::NotFound,
    );
    assert!(s.message().contains("nope"), "{s:?}");
}

#[tokio::test]
async fn a_report_whose_release_cannot_start_records_nothing() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    // A product without an application in prod-asia, whose flow needs one.
    server
        .products()
        .create_product(pb::CreateProductRequest {
            product: Some(pb::Product {
                name: "partial".into(),
                applications: ["dev", "qa", "prod", "prod-eu"]
                    .iter()
                    .map(|e| pb::Application {
                        environment: e.to_string(),
                        name: format!("partial-{e}"),
                        version: "1.0.0".into(),
                        ..Default::default()
                    })
                    .collect(),
                promotion_flows: vec![pb::ProductPromotionFlow {
                    flow: "parallel".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .await
        .expect("create product");
    let s = expect_code(
        server
            .products()
            .report_deployment(pb::ReportDeploymentRequest {
                product: "partial".into(),
                environment: "dev".into(),
                version: "2.0.0".into(),
                ..Default::default()
            })
            .await,
        Code::FailedPrecondition,
    );
    assert!(
        s.message()
            .contains("`promoflow product update partial --app prod-asia=NAME`"),
        "the message names the command that fixes it: {s:?}"
    );
    let p = product(&server, "partial").await;
    let dev = p
        .applications
        .iter()
        .find(|a| a.environment == "dev")
        .expect("dev");
    assert_eq!(dev.version, "1.0.0", "the failed report changed nothing");
    let listed = server
        .releases()
        .list_releases(pb::ListReleasesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.releases.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn an_update_cannot_remove_an_application_its_own_flows_need() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    let mut p = product(&server, DEMO).await;
    p.promotion_flows = vec![pb::ProductPromotionFlow {
        flow: "parallel".into(),
        ..Default::default()
    }];
    let p = update_product(&server, p.clone(), p.version)
        .await
        .expect("add the flow");
    let mut smaller = p.clone();
    smaller.applications.retain(|a| a.environment != "prod-eu");
    let s = expect_code(
        update_product(&server, smaller, p.version).await,
        Code::FailedPrecondition,
    );
    assert!(
        s.message().contains("prod-eu") && s.message().contains("parallel"),
        "{s:?}"
    );
    assert_eq!(product(&server, DEMO).await, p, "nothing changed");
}

#[tokio::test]
async fn releases_of_a_deleted_product_are_history() {
    let server = TestServer::start().await;
    // A release that ends TERMINATED while its production soaks.
    create_wait(&server, "soak", 60_000).await;
    seed_parallel(&server, Some("soak")).await;
    let r = trigger(&server, DEMO, "2.0.0").await;
    terminate(&server, &r.id, "stop").await.expect("terminate");
    wait_final(&server, &r.id).await;
    let old = product(&server, DEMO).await;
    delete_product(&server, DEMO, 0)
        .await
        .expect("delete product");
    let s = expect_code(retry(&server, &r.id).await, Code::FailedPrecondition);
    assert!(s.message().contains("deleted"), "{s:?}");
    // A new product of the same name does not inherit the old releases.
    let mut again = old.clone();
    again.version = 0;
    create_product(&server, again)
        .await
        .expect("create the product again");
    expect_code(retry(&server, &r.id).await, Code::FailedPrecondition);
    let listed = server
        .releases()
        .list_releases(pb::ListReleasesRequest {
            product: "demo-trioapp".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(listed.releases.is_empty(), "{listed:?}");
    // The history stays readable.
    assert_eq!(
        get_release(&server, &r.id).await.status,
        pb::ReleaseStatus::Terminated as i32
    );
}
