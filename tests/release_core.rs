//! The release core's contract at its edges, against a real server: approvals
//! of release-level hooks, the codes of a trigger that names nothing, and
//! calls that fail without changing anything (deployment reports, product
//! updates and deletes).

mod common;

use std::time::Duration;

use common::{TestServer, expect_code, seed_parallel, wait_final};
use promoflow::proto::v1 as pb;
use tonic::Code;

/// An approval workflow, waiting `timeout_secs` (or for ever).
async fn approval(server: &TestServer, name: &str, timeout_secs: Option<i64>) {
    server
        .workflows()
        .create_workflow(pb::CreateWorkflowRequest {
            workflow: Some(pb::Workflow {
                name: name.into(),
                kind: Some(pb::workflow::Kind::Approval(pb::ApprovalWorkflow {
                    timeout: timeout_secs
                        .map(|seconds| prost_types::Duration { seconds, nanos: 0 }),
                })),
                ..Default::default()
            }),
        })
        .await
        .expect("create approval workflow");
}

/// Sets the release-level `on_start` hook of flow `parallel` (version 2
/// after `seed_parallel`).
async fn release_on_start(server: &TestServer, workflow: &str) {
    server
        .flows()
        .edit_flow(pb::EditFlowRequest {
            name: "parallel".into(),
            expected_version: 2,
            edits: vec![pb::FlowEdit {
                edit: Some(pb::flow_edit::Edit::SetHooks(pb::flow_edit::SetHooks {
                    environment: String::new(),
                    hooks: Some(pb::Hooks {
                        on_start: workflow.into(),
                        ..Default::default()
                    }),
                })),
            }],
        })
        .await
        .expect("set release hooks");
}

async fn trigger(
    server: &TestServer,
    flow: &str,
    product: &str,
) -> Result<pb::Release, tonic::Status> {
    server
        .releases()
        .trigger_release(pb::TriggerReleaseRequest {
            flow: flow.into(),
            product: product.into(),
            version: "2.0.0".into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().release.expect("release"))
}

async fn get(server: &TestServer, id: &str) -> pb::Release {
    server
        .releases()
        .get_release(pb::GetReleaseRequest {
            release_id: id.into(),
        })
        .await
        .expect("get release")
        .into_inner()
        .release
        .expect("release")
}

/// Polls until the release has `status` (or panics after 20 s).
async fn wait_status(server: &TestServer, id: &str, status: pb::ReleaseStatus) -> pb::Release {
    for _ in 0..400 {
        let r = get(server, id).await;
        if r.status == status as i32 {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "release {id} never became {status:?}: {:?}",
        get(server, id).await
    );
}

async fn approve(
    server: &TestServer,
    id: &str,
    environment: &str,
    yes: bool,
) -> Result<pb::Release, tonic::Status> {
    server
        .releases()
        .approve_environment(pb::ApproveEnvironmentRequest {
            release_id: id.into(),
            environment: environment.into(),
            approve: yes,
            comment: "change board".into(),
        })
        .await
        .map(|r| r.into_inner().release.expect("release"))
}

async fn product(server: &TestServer, name: &str) -> pb::Product {
    server
        .products()
        .get_product(pb::GetProductRequest { name: name.into() })
        .await
        .expect("get product")
        .into_inner()
        .product
        .expect("product")
}

#[tokio::test]
async fn a_release_level_approval_suspends_the_release_and_an_empty_environment_decides_it() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    approval(&server, "change-board", None).await;
    release_on_start(&server, "change-board").await;
    let r = trigger(&server, "parallel", "demo-trioapp")
        .await
        .expect("trigger");
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
        approve(&server, &r.id, "qa", true).await,
        Code::FailedPrecondition,
    );
    let after = approve(&server, &r.id, "", true)
        .await
        .expect("approve the hook");
    assert_ne!(after.status, pb::ReleaseStatus::Suspended as i32);
    let done = wait_final(&server, &r.id).await;
    assert_eq!(done.status, pb::ReleaseStatus::Succeeded as i32, "{done:?}");
    assert_eq!(done.hooks[0].message, "approved: change board");
    // Nothing awaits a decision any more.
    expect_code(
        approve(&server, &r.id, "", true).await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn a_release_level_approval_times_out_and_can_be_retried() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    approval(&server, "change-board", Some(1)).await;
    release_on_start(&server, "change-board").await;
    let r = trigger(&server, "parallel", "demo-trioapp")
        .await
        .expect("trigger");
    let failed = wait_final(&server, &r.id).await;
    assert_eq!(
        failed.status,
        pb::ReleaseStatus::Failed as i32,
        "{failed:?}"
    );
    assert_eq!(failed.hooks[0].message, "approval timed out");
    // A retry asks again; a rejection then fails the release.
    server
        .releases()
        .retry_release(pb::RetryReleaseRequest {
            release_id: r.id.clone(),
        })
        .await
        .expect("retry");
    let held = wait_status(&server, &r.id, pb::ReleaseStatus::Suspended).await;
    assert_eq!(held.hooks[0].attempt, 2);
    approve(&server, &r.id, "", false).await.expect("reject");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(done.status, pb::ReleaseStatus::Failed as i32);
    assert_eq!(done.hooks[0].message, "rejected: change board");
}

#[tokio::test]
async fn triggering_an_unknown_flow_or_product_is_not_found() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    let s = expect_code(
        trigger(&server, "nope", "demo-trioapp").await,
        Code::NotFound,
    );
    assert!(s.message().contains("nope"), "{s:?}");
    let s = expect_code(trigger(&server, "parallel", "nope").await, Code::NotFound);
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
    assert!(s.message().contains("prod-asia"), "{s:?}");
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
    let mut p = product(&server, "demo-trioapp").await;
    p.promotion_flows = vec![pb::ProductPromotionFlow {
        flow: "parallel".into(),
        ..Default::default()
    }];
    let p = server
        .products()
        .update_product(pb::UpdateProductRequest {
            product: Some(p.clone()),
            expected_version: p.version,
        })
        .await
        .expect("add the flow")
        .into_inner()
        .product
        .expect("product");
    let mut smaller = p.clone();
    smaller.applications.retain(|a| a.environment != "prod-eu");
    let s = expect_code(
        server
            .products()
            .update_product(pb::UpdateProductRequest {
                product: Some(smaller),
                expected_version: p.version,
            })
            .await,
        Code::FailedPrecondition,
    );
    assert!(
        s.message().contains("prod-eu") && s.message().contains("parallel"),
        "{s:?}"
    );
    assert_eq!(product(&server, "demo-trioapp").await, p, "nothing changed");
}

#[tokio::test]
async fn releases_of_a_deleted_product_are_history() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    approval(&server, "gate", None).await;
    release_on_start(&server, "gate").await;
    let r = trigger(&server, "parallel", "demo-trioapp")
        .await
        .expect("trigger");
    wait_status(&server, &r.id, pb::ReleaseStatus::Suspended).await;
    server
        .releases()
        .terminate_release(pb::TerminateReleaseRequest {
            release_id: r.id.clone(),
            reason: "stop".into(),
        })
        .await
        .expect("terminate");
    wait_final(&server, &r.id).await;
    let old = product(&server, "demo-trioapp").await;
    server
        .products()
        .delete_product(pb::DeleteProductRequest {
            name: "demo-trioapp".into(),
            expected_version: 0,
        })
        .await
        .expect("delete product");
    let retry = || async {
        server
            .releases()
            .retry_release(pb::RetryReleaseRequest {
                release_id: r.id.clone(),
            })
            .await
    };
    let s = expect_code(retry().await, Code::FailedPrecondition);
    assert!(s.message().contains("deleted"), "{s:?}");
    // A new product of the same name does not inherit the old releases.
    let mut again = old.clone();
    again.version = 0;
    server
        .products()
        .create_product(pb::CreateProductRequest {
            product: Some(again),
        })
        .await
        .expect("create the product again");
    expect_code(retry().await, Code::FailedPrecondition);
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
        get(&server, &r.id).await.status,
        pb::ReleaseStatus::Terminated as i32
    );
}
