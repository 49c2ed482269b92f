//! The release engine against a real server (SQLite or PostgreSQL).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::hook::Hook;
use common::{TestServer, create_wait, expect_code, seed_parallel, wait_final};
use promoflow::proto::v1 as pb;

fn ts(t: &Option<prost_types::Timestamp>) -> (i64, i32) {
    let t = t.as_ref().expect("timestamp set");
    (t.seconds, t.nanos)
}

#[tokio::test]
async fn parallel_quick_start_runs_branches_together() {
    let server = TestServer::start().await;
    create_wait(&server, "soak", 300).await;
    seed_parallel(&server, Some("soak")).await;
    let r = server
        .releases()
        .trigger_release(pb::TriggerReleaseRequest {
            flow: "parallel".into(),
            product: "demo-trioapp".into(),
            initiator: "test".into(),
            ..Default::default()
        })
        .await
        .expect("trigger")
        .into_inner()
        .release
        .expect("release");
    assert_eq!(
        r.version, "1.0.0",
        "version comes from the trigger environment"
    );
    let done = wait_final(&server, &r.id).await;
    assert_eq!(done.status, pb::ReleaseStatus::Succeeded as i32, "{done:?}");
    let prods: Vec<&pb::EnvironmentRun> = done
        .environments
        .iter()
        .filter(|e| e.environment.starts_with("prod"))
        .collect();
    assert_eq!(prods.len(), 3);
    // Every production environment started before any of them finished.
    let latest_start = prods.iter().map(|e| ts(&e.start_time)).max().unwrap();
    let earliest_finish = prods.iter().map(|e| ts(&e.finish_time)).min().unwrap();
    assert!(
        latest_start < earliest_finish,
        "branches overlapped: {prods:?}"
    );
    // The versions were recorded on the applications.
    let product = server
        .products()
        .get_product(pb::GetProductRequest {
            name: "demo-trioapp".into(),
        })
        .await
        .expect("get product")
        .into_inner()
        .product
        .expect("product");
    for app in &product.applications {
        assert_eq!(app.version, "1.0.0", "{app:?}");
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A local HTTP server playing the external system an `http` workflow
/// calls: it records every hit (environment, idempotency key) and answers
/// 500 for the environments listed in `failing`, 200 otherwise.
fn dur(ms: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

async fn create_http(server: &TestServer, name: &str, url: &str, max_attempts: i32) {
    server
        .workflows()
        .create_workflow(pb::CreateWorkflowRequest {
            workflow: Some(pb::Workflow {
                name: name.into(),
                kind: Some(pb::workflow::Kind::Http(pb::HttpWorkflow {
                    url: url.into(),
                    max_attempts,
                    timeout: Some(dur(5000)),
                    ..Default::default()
                })),
                ..Default::default()
            }),
        })
        .await
        .expect("create http workflow");
}

async fn create_approval(server: &TestServer, name: &str) {
    server
        .workflows()
        .create_workflow(pb::CreateWorkflowRequest {
            workflow: Some(pb::Workflow {
                name: name.into(),
                kind: Some(pb::workflow::Kind::Approval(pb::ApprovalWorkflow {
                    timeout: None,
                })),
                ..Default::default()
            }),
        })
        .await
        .expect("create approval workflow");
}

async fn create_env(server: &TestServer, name: &str) {
    server
        .environments()
        .create_environment(pb::CreateEnvironmentRequest {
            environment: Some(pb::Environment {
                name: name.into(),
                kind: pb::EnvironmentKind::Production as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("create environment");
}

async fn get_product(server: &TestServer, name: &str) -> pb::Product {
    server
        .products()
        .get_product(pb::GetProductRequest { name: name.into() })
        .await
        .expect("get product")
        .into_inner()
        .product
        .expect("product")
}

/// Changes the product with `f` (read, modify, update).
async fn update_product(server: &TestServer, name: &str, f: impl FnOnce(&mut pb::Product)) {
    let mut p = get_product(server, name).await;
    let expected_version = p.version;
    f(&mut p);
    server
        .products()
        .update_product(pb::UpdateProductRequest {
            product: Some(p),
            expected_version,
        })
        .await
        .expect("update product");
}

/// Adds an application for each of `envs` to demo-trioapp.
async fn add_apps(server: &TestServer, envs: &[&str]) {
    update_product(server, "demo-trioapp", |p| {
        for e in envs {
            p.applications.push(pb::Application {
                environment: e.to_string(),
                name: format!("demo-trioapp-{e}"),
                ..Default::default()
            });
        }
    })
    .await;
}

async fn edit_flow(server: &TestServer, name: &str, edits: Vec<pb::flow_edit::Edit>) {
    let flow = server
        .flows()
        .get_flow(pb::GetFlowRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .expect("get flow")
        .into_inner()
        .flow
        .expect("flow");
    server
        .flows()
        .edit_flow(pb::EditFlowRequest {
            name: name.into(),
            expected_version: flow.version,
            edits: edits
                .into_iter()
                .map(|e| pb::FlowEdit { edit: Some(e) })
                .collect(),
        })
        .await
        .expect("edit flow");
}

async fn trigger(server: &TestServer, version: &str) -> pb::Release {
    server
        .releases()
        .trigger_release(pb::TriggerReleaseRequest {
            flow: "parallel".into(),
            product: "demo-trioapp".into(),
            version: version.into(),
            initiator: "test".into(),
            ..Default::default()
        })
        .await
        .expect("trigger")
        .into_inner()
        .release
        .expect("release")
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

/// Polls until `pred` holds for the release (panics after 30 s).
async fn wait_until(
    server: &TestServer,
    id: &str,
    what: &str,
    pred: impl Fn(&pb::Release) -> bool,
) -> pb::Release {
    let mut last = None;
    for _ in 0..1500 {
        let r = get(server, id).await;
        if pred(&r) {
            return r;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("release {id} never reached: {what}; last state {last:?}");
}

fn env<'a>(r: &'a pb::Release, name: &str) -> &'a pb::EnvironmentRun {
    r.environments
        .iter()
        .find(|e| e.environment == name)
        .unwrap_or_else(|| panic!("no environment {name} in {r:?}"))
}

fn env_status(r: &pb::Release, name: &str) -> pb::EnvironmentStatus {
    pb::EnvironmentStatus::try_from(env(r, name).status).unwrap_or_default()
}

fn status(r: &pb::Release) -> pb::ReleaseStatus {
    pb::ReleaseStatus::try_from(r.status).unwrap_or_default()
}

fn step(e: &pb::EnvironmentRun, kind: pb::StepKind) -> &pb::StepRun {
    e.steps
        .iter()
        .find(|s| s.kind == kind as i32)
        .unwrap_or_else(|| panic!("no {kind:?} step in {e:?}"))
}

// ---------------------------------------------------------------------------
// Failure and retry
// ---------------------------------------------------------------------------

/// The quick-start world with an http post-action `notify` on every
/// production step, plus `prod-eu-edge` → `prod-eu-tail` after prod-eu; the
/// hook fails prod-eu. Returns the final (FAILED) release.
async fn failing_branch(server: &TestServer) -> (Hook, pb::Release) {
    let (hook, url) = Hook::start(&["prod-eu"]).await;
    create_http(server, "notify", &url, 1).await;
    seed_parallel(server, Some("notify")).await;
    for e in ["prod-eu-edge", "prod-eu-tail"] {
        create_env(server, e).await;
    }
    add_apps(server, &["prod-eu-edge", "prod-eu-tail"]).await;
    edit_flow(
        server,
        "parallel",
        vec![
            pb::flow_edit::Edit::AddEnvironments(pb::flow_edit::AddEnvironments {
                after: "prod-eu".into(),
                environments: vec!["prod-eu-edge".into()],
                policy: None,
            }),
            pb::flow_edit::Edit::AddEnvironments(pb::flow_edit::AddEnvironments {
                after: "prod-eu-edge".into(),
                environments: vec!["prod-eu-tail".into()],
                policy: None,
            }),
        ],
    )
    .await;
    let r = trigger(server, "").await;
    let done = wait_final(server, &r.id).await;
    (hook, done)
}

#[tokio::test]
async fn failing_branch_skips_descendants_and_fails_release() {
    let server = TestServer::start().await;
    let (hook, done) = failing_branch(&server).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    assert!(!done.message.is_empty(), "release message set: {done:?}");
    assert!(done.message.contains("prod-eu"), "{}", done.message);

    let eu = env(&done, "prod-eu");
    assert_eq!(env_status(&done, "prod-eu"), pb::EnvironmentStatus::Failed);
    assert!(eu.message.contains("500"), "prod-eu message: {eu:?}");
    let post = step(eu, pb::StepKind::PostAction);
    assert_eq!(post.status, pb::StepStatus::Failed as i32, "{post:?}");
    assert!(post.message.contains("500"), "{post:?}");
    assert_eq!(
        step(eu, pb::StepKind::Action).status,
        pb::StepStatus::Succeeded as i32
    );

    for d in ["prod-eu-edge", "prod-eu-tail"] {
        assert_eq!(env_status(&done, d), pb::EnvironmentStatus::Skipped, "{d}");
        assert_eq!(env(&done, d).blocked_on, vec!["prod-eu".to_string()], "{d}");
        // Never started: attempt 0, steps skipped.
        assert_eq!(env(&done, d).attempt, 0, "{d}");
        assert!(env(&done, d).start_time.is_none(), "{d}");
        for s in &env(&done, d).steps {
            assert_eq!(s.status, pb::StepStatus::Skipped as i32, "{d}: {s:?}");
            assert_eq!(s.attempt, 0, "{d}: {s:?}");
        }
    }
    assert_eq!(env(&done, "prod-eu").attempt, 1);
    for ok in ["dev", "qa", "prod", "prod-asia"] {
        assert_eq!(
            env_status(&done, ok),
            pb::EnvironmentStatus::Succeeded,
            "{ok}"
        );
    }
    let c = done.counters.expect("counters");
    assert_eq!(
        (
            c.total,
            c.succeeded,
            c.failed,
            c.skipped,
            c.running,
            c.pending
        ),
        (7, 4, 1, 2, 0, 0),
        "{c:?}"
    );
    assert!(done.finish_time.is_some());
    // The action ran before the post-action failed: the version advanced
    // in prod-eu, not in its skipped descendants.
    let p = get_product(&server, "demo-trioapp").await;
    let ver = |e: &str| {
        p.applications
            .iter()
            .find(|a| a.environment == e)
            .map(|a| a.version.clone())
            .unwrap()
    };
    assert_eq!(ver("prod-eu"), "1.0.0");
    assert_eq!(ver("prod"), "1.0.0");
    assert_eq!(ver("prod-eu-edge"), "");
    let counts = hook.counts();
    assert_eq!(
        counts.get("prod-eu"),
        Some(&1),
        "max_attempts 1: {counts:?}"
    );
}

#[tokio::test]
async fn retry_reruns_only_the_failed_step() {
    let server = TestServer::start().await;
    let (hook, failed) = failing_branch(&server).await;
    assert_eq!(status(&failed), pb::ReleaseStatus::Failed, "{failed:?}");
    let first_key = hook.keys("prod-eu");
    hook.heal();

    let retried = server
        .releases()
        .retry_release(pb::RetryReleaseRequest {
            release_id: failed.id.clone(),
        })
        .await
        .expect("retry")
        .into_inner()
        .release
        .expect("release");
    assert_eq!(retried.id, failed.id, "retried in place");
    assert!(
        matches!(
            status(&retried),
            pb::ReleaseStatus::Running | pb::ReleaseStatus::Succeeded
        ),
        "{retried:?}"
    );
    assert!(retried.message.is_empty() || status(&retried) != pb::ReleaseStatus::Running);

    let done = wait_final(&server, &failed.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    assert!(done.message.is_empty(), "message cleared: {done:?}");
    for e in &done.environments {
        assert_eq!(
            e.status,
            pb::EnvironmentStatus::Succeeded as i32,
            "{}",
            e.environment
        );
    }
    let counts = hook.counts();
    assert_eq!(counts.get("prod-eu"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("prod"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("prod-asia"), Some(&1), "{counts:?}");
    // A re-run is a new attempt: it gets its own idempotency key.
    let keys = hook.keys("prod-eu");
    assert_eq!(keys[0], first_key[0]);
    assert_ne!(keys[0], keys[1], "{keys:?}");

    let eu = env(&done, "prod-eu");
    assert_eq!(eu.attempt, 2, "{eu:?}");
    assert_eq!(step(eu, pb::StepKind::PostAction).attempt, 2, "{eu:?}");
    assert_eq!(
        step(eu, pb::StepKind::Action).attempt,
        1,
        "the succeeded action is not re-run: {eu:?}"
    );
    assert_eq!(env(&done, "prod").attempt, 1);
    assert_eq!(env(&done, "prod-asia").attempt, 1);
    assert_eq!(env(&done, "prod-eu-edge").attempt, 1);
    let p = get_product(&server, "demo-trioapp").await;
    for app in &p.applications {
        assert_eq!(app.version, "1.0.0", "{app:?}");
    }
    // Retrying a succeeded release is refused.
    expect_code(
        server
            .releases()
            .retry_release(pb::RetryReleaseRequest {
                release_id: failed.id.clone(),
            })
            .await,
        tonic::Code::FailedPrecondition,
    );
}

// ---------------------------------------------------------------------------
// Terminate and timeout
// ---------------------------------------------------------------------------

#[tokio::test]
async fn terminate_cancels_running_environments() {
    let server = TestServer::start().await;
    create_wait(&server, "long", 30_000).await;
    seed_parallel(&server, Some("long")).await;
    let r = trigger(&server, "").await;
    wait_until(&server, &r.id, "production post-actions running", |r| {
        ["prod", "prod-eu", "prod-asia"].iter().all(|e| {
            step(env(r, e), pb::StepKind::PostAction).status == pb::StepStatus::Running as i32
        })
    })
    .await;
    let t = server
        .releases()
        .terminate_release(pb::TerminateReleaseRequest {
            release_id: r.id.clone(),
            reason: "operator pulled the plug".into(),
        })
        .await
        .expect("terminate")
        .into_inner()
        .release
        .expect("release");
    assert!(
        matches!(
            status(&t),
            pb::ReleaseStatus::Terminating | pb::ReleaseStatus::Terminated
        ),
        "{t:?}"
    );
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Terminated, "{done:?}");
    assert_eq!(done.message, "operator pulled the plug");
    for e in ["prod", "prod-eu", "prod-asia"] {
        assert_eq!(
            env_status(&done, e),
            pb::EnvironmentStatus::Terminated,
            "{e}"
        );
        let post = step(env(&done, e), pb::StepKind::PostAction);
        assert_eq!(post.status, pb::StepStatus::Terminated as i32, "{post:?}");
        assert!(env(&done, e).finish_time.is_some());
    }
    for e in ["dev", "qa"] {
        assert_eq!(
            env_status(&done, e),
            pb::EnvironmentStatus::Succeeded,
            "{e}"
        );
    }
    let c = done.counters.unwrap();
    assert_eq!((c.terminated, c.succeeded, c.running), (3, 2, 0), "{c:?}");
    // Already final: nothing to terminate.
    expect_code(
        server
            .releases()
            .terminate_release(pb::TerminateReleaseRequest {
                release_id: r.id.clone(),
                reason: String::new(),
            })
            .await,
        tonic::Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn promotion_timeout_terminates_release() {
    let server = TestServer::start().await;
    create_wait(&server, "long", 30_000).await;
    seed_parallel(&server, Some("long")).await;
    edit_flow(
        &server,
        "parallel",
        vec![pb::flow_edit::Edit::SetSettings(
            pb::flow_edit::SetSettings {
                promotion_timeout: Some(dur(1000)),
                ..Default::default()
            },
        )],
    )
    .await;
    let r = trigger(&server, "").await;
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Terminated, "{done:?}");
    assert!(done.message.contains("timeout"), "{}", done.message);
    for e in ["prod", "prod-eu", "prod-asia"] {
        assert_eq!(
            env_status(&done, e),
            pb::EnvironmentStatus::Terminated,
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------
// Approval
// ---------------------------------------------------------------------------

async fn approval_world(server: &TestServer) -> pb::Release {
    create_approval(server, "gate").await;
    seed_parallel(server, None).await;
    edit_flow(
        server,
        "parallel",
        vec![pb::flow_edit::Edit::SetPolicy(pb::flow_edit::SetPolicy {
            environment: "prod".into(),
            policy: Some(pb::Policy {
                pre_action: "gate".into(),
                ..Default::default()
            }),
        })],
    )
    .await;
    let r = trigger(server, "").await;
    let r = wait_until(server, &r.id, "suspended", |r| {
        status(r) == pb::ReleaseStatus::Suspended
    })
    .await;
    assert_eq!(env_status(&r, "prod"), pb::EnvironmentStatus::Suspended);
    assert_eq!(
        step(env(&r, "prod"), pb::StepKind::PreAction).status,
        pb::StepStatus::Suspended as i32
    );
    for e in ["prod-eu", "prod-asia"] {
        assert_eq!(env_status(&r, e), pb::EnvironmentStatus::Succeeded, "{e}");
    }
    assert_eq!(r.counters.unwrap().suspended, 1);
    r
}

async fn approve(
    server: &TestServer,
    id: &str,
    env: &str,
    approve: bool,
) -> Result<tonic::Response<pb::ApproveEnvironmentResponse>, tonic::Status> {
    server
        .releases()
        .approve_environment(pb::ApproveEnvironmentRequest {
            release_id: id.into(),
            environment: env.into(),
            approve,
            comment: if approve {
                "looks good".into()
            } else {
                "not on a friday".into()
            },
        })
        .await
}

#[tokio::test]
async fn approval_approved_continues() {
    let server = TestServer::start().await;
    let r = approval_world(&server).await;
    // Nothing awaits approval in prod-eu (it succeeded) or qa.
    let s = expect_code(
        approve(&server, &r.id, "prod-eu", true).await,
        tonic::Code::FailedPrecondition,
    );
    assert!(s.message().contains("SUCCEEDED"), "{s:?}");
    expect_code(
        approve(&server, &r.id, "nowhere", true).await,
        tonic::Code::NotFound,
    );
    approve(&server, &r.id, "prod", true)
        .await
        .expect("approve");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    let pre = step(env(&done, "prod"), pb::StepKind::PreAction);
    assert_eq!(pre.status, pb::StepStatus::Succeeded as i32);
    assert!(pre.message.contains("looks good"), "{pre:?}");
    // Approving twice: nothing waits any more.
    expect_code(
        approve(&server, &r.id, "prod", true).await,
        tonic::Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn approval_rejected_fails_release() {
    let server = TestServer::start().await;
    let r = approval_world(&server).await;
    approve(&server, &r.id, "prod", false)
        .await
        .expect("reject");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    assert_eq!(env_status(&done, "prod"), pb::EnvironmentStatus::Failed);
    let prod = env(&done, "prod");
    let pre = step(prod, pb::StepKind::PreAction);
    assert_eq!(pre.status, pb::StepStatus::Failed as i32);
    assert!(pre.message.contains("not on a friday"), "{pre:?}");
    // The action never ran: prod keeps no version.
    assert_ne!(
        step(prod, pb::StepKind::Action).status,
        pb::StepStatus::Succeeded as i32
    );
    let p = get_product(&server, "demo-trioapp").await;
    let prod_app = p.applications.iter().find(|a| a.environment == "prod");
    assert_eq!(prod_app.unwrap().version, "");
}

// ---------------------------------------------------------------------------
// Fan-in
// ---------------------------------------------------------------------------

#[tokio::test]
async fn fan_in_waits_for_every_dependency() {
    let server = TestServer::start().await;
    create_wait(&server, "soak", 400).await;
    seed_parallel(&server, None).await;
    create_env(&server, "staging").await;
    add_apps(&server, &["staging"]).await;
    server
        .flows()
        .create_flow(pb::CreateFlowRequest {
            flow: Some(pb::Flow {
                name: "fanin".into(),
                trigger_environment: "dev".into(),
                steps: vec![
                    pb::FlowStep {
                        environment: "qa".into(),
                        depends_on: vec!["dev".into()],
                        ..Default::default()
                    },
                    pb::FlowStep {
                        environment: "staging".into(),
                        depends_on: vec!["dev".into()],
                        policy: Some(pb::Policy {
                            post_action: "soak".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    pb::FlowStep {
                        environment: "prod".into(),
                        depends_on: vec!["qa".into(), "staging".into()],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
        })
        .await
        .expect("create flow");
    let r = server
        .releases()
        .trigger_release(pb::TriggerReleaseRequest {
            flow: "fanin".into(),
            product: "demo-trioapp".into(),
            ..Default::default()
        })
        .await
        .expect("trigger")
        .into_inner()
        .release
        .unwrap();
    // While staging soaks, qa is done and prod still waits on staging alone.
    let mid = wait_until(&server, &r.id, "qa done, staging running", |r| {
        env_status(r, "qa") == pb::EnvironmentStatus::Succeeded
            && env_status(r, "staging") == pb::EnvironmentStatus::Running
    })
    .await;
    if env_status(&mid, "staging") == pb::EnvironmentStatus::Running {
        assert_eq!(env_status(&mid, "prod"), pb::EnvironmentStatus::Pending);
        assert_eq!(env(&mid, "prod").blocked_on, vec!["staging".to_string()]);
    }
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    let prod_start = ts(&env(&done, "prod").start_time);
    assert!(prod_start >= ts(&env(&done, "qa").finish_time), "{done:?}");
    assert!(
        prod_start >= ts(&env(&done, "staging").finish_time),
        "{done:?}"
    );
    // qa finished long before staging (which soaked).
    assert!(ts(&env(&done, "qa").finish_time) < ts(&env(&done, "staging").finish_time));
}

// ---------------------------------------------------------------------------
// Product concurrency
// ---------------------------------------------------------------------------

#[tokio::test]
async fn queue_concurrency_runs_releases_one_after_another() {
    let server = TestServer::start().await;
    create_wait(&server, "soak", 300).await;
    seed_parallel(&server, Some("soak")).await;
    let first = trigger(&server, "2.0.0").await;
    assert_eq!(status(&first), pb::ReleaseStatus::Running, "{first:?}");
    let second = trigger(&server, "3.0.0").await;
    assert_eq!(status(&second), pb::ReleaseStatus::Queued, "{second:?}");
    assert!(second.start_time.is_none());
    let first = wait_final(&server, &first.id).await;
    let second = wait_final(&server, &second.id).await;
    assert_eq!(status(&first), pb::ReleaseStatus::Succeeded, "{first:?}");
    assert_eq!(status(&second), pb::ReleaseStatus::Succeeded, "{second:?}");
    assert!(
        ts(&second.start_time) >= ts(&first.finish_time),
        "second started {:?} before the first finished {:?}",
        second.start_time,
        first.finish_time
    );
    let p = get_product(&server, "demo-trioapp").await;
    for app in p.applications.iter().filter(|a| a.environment != "dev") {
        assert_eq!(app.version, "3.0.0", "the later release wins: {app:?}");
    }
}

#[tokio::test]
async fn terminate_concurrency_supersedes_the_running_release() {
    let server = TestServer::start().await;
    create_wait(&server, "long", 30_000).await;
    seed_parallel(&server, Some("long")).await;
    update_product(&server, "demo-trioapp", |p| {
        p.concurrency = pb::Concurrency::Terminate as i32;
    })
    .await;
    let first = trigger(&server, "2.0.0").await;
    wait_until(&server, &first.id, "prod running", |r| {
        env_status(r, "prod") == pb::EnvironmentStatus::Running
    })
    .await;
    let second = trigger(&server, "3.0.0").await;
    assert_ne!(status(&second), pb::ReleaseStatus::Queued, "{second:?}");
    let first = wait_final(&server, &first.id).await;
    assert_eq!(status(&first), pb::ReleaseStatus::Terminated, "{first:?}");
    assert_eq!(
        first.message,
        format!("superseded by release {}", second.id),
        "{first:?}"
    );
    assert_eq!(
        env_status(&first, "prod"),
        pb::EnvironmentStatus::Terminated
    );
    // The second one runs (and is stopped here to keep the test short).
    wait_until(&server, &second.id, "second running prod", |r| {
        env_status(r, "prod") == pb::EnvironmentStatus::Running
    })
    .await;
    server
        .releases()
        .terminate_release(pb::TerminateReleaseRequest {
            release_id: second.id.clone(),
            reason: "done".into(),
        })
        .await
        .expect("terminate second");
    let second = wait_final(&server, &second.id).await;
    assert_eq!(status(&second), pb::ReleaseStatus::Terminated);
}

// ---------------------------------------------------------------------------
// Idempotency and preconditions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn concurrent_triggers_with_one_request_id_make_one_release() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    let calls = (0..50).map(|_| {
        let mut client = server.releases();
        async move {
            client
                .trigger_release(pb::TriggerReleaseRequest {
                    flow: "parallel".into(),
                    product: "demo-trioapp".into(),
                    version: "2.0.0".into(),
                    request_id: "ci-job-42".into(),
                    ..Default::default()
                })
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let ids: HashSet<String> = results
        .into_iter()
        .map(|r| r.expect("trigger").into_inner().release.unwrap().id)
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let list = server
        .releases()
        .list_releases(pb::ListReleasesRequest {
            product: "demo-trioapp".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.releases.len(), 1, "{:?}", list.releases);
    let id = ids.into_iter().next().unwrap();
    assert_eq!(list.releases[0].id, id);
    assert_eq!(list.releases[0].request_id, "ci-job-42");

    let s = expect_code(
        server
            .releases()
            .trigger_release(pb::TriggerReleaseRequest {
                flow: "parallel".into(),
                product: "demo-trioapp".into(),
                version: "9.9.9".into(),
                request_id: "ci-job-42".into(),
                ..Default::default()
            })
            .await,
        tonic::Code::AlreadyExists,
    );
    assert!(s.message().contains("ci-job-42"), "{s:?}");
    let done = wait_final(&server, &id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded);
}

#[tokio::test]
async fn trigger_without_application_names_the_environment() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    create_env(&server, "edge").await;
    edit_flow(
        &server,
        "parallel",
        vec![pb::flow_edit::Edit::AddEnvironments(
            pb::flow_edit::AddEnvironments {
                after: "prod".into(),
                environments: vec!["edge".into()],
                policy: None,
            },
        )],
    )
    .await;
    let s = expect_code(
        server
            .releases()
            .trigger_release(pb::TriggerReleaseRequest {
                flow: "parallel".into(),
                product: "demo-trioapp".into(),
                ..Default::default()
            })
            .await,
        tonic::Code::FailedPrecondition,
    );
    assert!(s.message().contains("edge"), "{s:?}");
    let list = server
        .releases()
        .list_releases(pb::ListReleasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.releases.is_empty(), "nothing was created");
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

#[tokio::test]
async fn events_are_numbered_without_gaps() {
    let server = TestServer::start().await;
    create_wait(&server, "soak", 100).await;
    seed_parallel(&server, Some("soak")).await;
    let r = trigger(&server, "").await;
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded);
    assert!(done.last_seq > 5, "{done:?}");

    let store = promoflow::store::Store::connect(&server.db.url, 2)
        .await
        .expect("connect store");
    let events = store.events_after(&r.id, 0, 100_000).await.expect("events");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=done.last_seq).collect::<Vec<_>>());

    // Through the API: replay after seq 1 gives 2..=last, then ends.
    let mut stream = server
        .releases()
        .watch_release(pb::WatchReleaseRequest {
            release_id: r.id.clone(),
            after_seq: 1,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut seen = Vec::new();
    while let Some(msg) = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("stream ends after the final event")
        .expect("stream ok")
    {
        let ev = msg.event.expect("event");
        if matches!(ev.change, Some(pb::release_event::Change::Heartbeat(_))) {
            continue;
        }
        seen.push(ev.seq);
    }
    assert_eq!(seen, (2..=done.last_seq).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// ReportDeployment
// ---------------------------------------------------------------------------

#[tokio::test]
async fn report_deployment_triggers_matching_flow() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    update_product(&server, "demo-trioapp", |p| {
        p.promotion_flows = vec![pb::ProductPromotionFlow {
            flow: "parallel".into(),
            selectors: vec![pb::TriggerSelector {
                key: pb::SelectorKey::CommitMessage as i32,
                operator: pb::SelectorOperator::In as i32,
                values: vec!["*[promote]*".into()],
            }],
        }];
    })
    .await;
    let report = |version: &str, message: &str| pb::ReportDeploymentRequest {
        product: "demo-trioapp".into(),
        environment: "dev".into(),
        version: version.into(),
        commit: Some(pb::Commit {
            sha: "abc123".into(),
            message: message.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let resp = server
        .products()
        .report_deployment(report("2.0.0", "fix the thing [promote] please"))
        .await
        .expect("report")
        .into_inner();
    assert_eq!(resp.application.as_ref().unwrap().version, "2.0.0");
    let rel = resp.release.expect("a release was triggered");
    assert_eq!(rel.version, "2.0.0");
    assert_eq!(rel.initiator, "report-deployment");
    assert_eq!(rel.trigger_message, "fix the thing [promote] please");
    let done = wait_final(&server, &rel.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    let p = get_product(&server, "demo-trioapp").await;
    for app in &p.applications {
        assert_eq!(app.version, "2.0.0", "{app:?}");
    }

    let resp = server
        .products()
        .report_deployment(report("2.1.0", "wip: nothing to see"))
        .await
        .expect("report")
        .into_inner();
    assert!(resp.release.is_none(), "{:?}", resp.release);
    assert_eq!(resp.application.unwrap().version, "2.1.0");
    let list = server
        .releases()
        .list_releases(pb::ListReleasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.releases.len(), 1);
}

// ---------------------------------------------------------------------------
// Crash and restart of the real binary
// ---------------------------------------------------------------------------

struct Child {
    child: std::process::Child,
    channel: tonic::transport::Channel,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn_binary(url: &str) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_promoflow"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            url,
            // A new process is another replica: it takes over the killed
            // one's releases once their leases expire; keep that short.
            "--lease-duration",
            "2s",
            "--catch-up-interval",
            "200ms",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start promoflow");
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_lazy();
    let mut child = Child { child, channel };
    for _ in 0..600 {
        let mut health = tonic_health::pb::health_client::HealthClient::new(child.channel.clone());
        if let Ok(r) = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            && r.into_inner().status == 1
        {
            return child;
        }
        if let Ok(Some(st)) = child.child.try_wait() {
            panic!("promoflow exited early: {st}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("promoflow did not become ready");
}

async fn poll_release(
    channel: &tonic::transport::Channel,
    id: &str,
    pred: impl Fn(&pb::Release) -> bool,
) -> pb::Release {
    let mut client = pb::release_service_client::ReleaseServiceClient::new(channel.clone());
    let mut last = None;
    for _ in 0..1500 {
        if let Ok(r) = client
            .get_release(pb::GetReleaseRequest {
                release_id: id.into(),
            })
            .await
        {
            let r = r.into_inner().release.unwrap();
            if pred(&r) {
                return r;
            }
            last = Some(r);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("release {id} did not get there: {last:?}");
}

#[tokio::test]
async fn releases_survive_kill_9() {
    // Seed through an in-process server, then hand the database over to
    // the real binary.
    let server = TestServer::start().await;
    create_wait(&server, "soak", 2000).await;
    seed_parallel(&server, Some("soak")).await;
    let db = server.stop().await;

    let child = spawn_binary(&db.url).await;
    let mut releases = pb::release_service_client::ReleaseServiceClient::new(child.channel.clone());
    let mut ids = Vec::new();
    for v in ["2.0.0", "3.0.0"] {
        let r = releases
            .trigger_release(pb::TriggerReleaseRequest {
                flow: "parallel".into(),
                product: "demo-trioapp".into(),
                version: v.into(),
                ..Default::default()
            })
            .await
            .expect("trigger")
            .into_inner()
            .release
            .unwrap();
        ids.push(r.id);
    }
    // Kill while the first release soaks in production.
    poll_release(&child.channel, &ids[0], |r| {
        ["prod", "prod-eu", "prod-asia"]
            .iter()
            .all(|e| env_status(r, e) == pb::EnvironmentStatus::Running)
    })
    .await;
    let mut child = child;
    child.child.kill().expect("kill -9");
    child.child.wait().expect("reap");
    drop(child);

    let child = spawn_binary(&db.url).await;
    for id in &ids {
        let done = poll_release(&child.channel, id, |r| {
            matches!(
                status(r),
                pb::ReleaseStatus::Succeeded
                    | pb::ReleaseStatus::Failed
                    | pb::ReleaseStatus::Terminated
            )
        })
        .await;
        assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
        for e in &done.environments {
            assert_eq!(e.status, pb::EnvironmentStatus::Succeeded as i32, "{e:?}");
        }
    }
    let mut products = pb::product_service_client::ProductServiceClient::new(child.channel.clone());
    let p = products
        .get_product(pb::GetProductRequest {
            name: "demo-trioapp".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    for app in p.applications.iter().filter(|a| a.environment != "dev") {
        assert_eq!(app.version, "3.0.0", "{app:?}");
    }
    // The events of the interrupted release have no gap either.
    let store = promoflow::store::Store::connect(&db.url, 2).await.unwrap();
    let last = poll_release(&child.channel, &ids[0], |_| true)
        .await
        .last_seq;
    let seqs: Vec<i64> = store
        .events_after(&ids[0], 0, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    drop(store);
    drop(child);
    drop(db);
}

#[tokio::test]
async fn retry_is_refused_while_another_release_of_the_product_runs() {
    let server = TestServer::start().await;
    let (hook, failed) = failing_branch(&server).await;
    assert_eq!(status(&failed), pb::ReleaseStatus::Failed, "{failed:?}");
    hook.heal();
    // A newer release of the same product now runs (soaking in prod).
    create_wait(&server, "long", 30_000).await;
    edit_flow(
        &server,
        "parallel",
        vec![pb::flow_edit::Edit::SetPolicy(pb::flow_edit::SetPolicy {
            environment: "prod".into(),
            policy: Some(pb::Policy {
                post_action: "long".into(),
                ..Default::default()
            }),
        })],
    )
    .await;
    let newer = trigger(&server, "2.0.0").await;
    assert_eq!(status(&newer), pb::ReleaseStatus::Running, "{newer:?}");
    let s = expect_code(
        server
            .releases()
            .retry_release(pb::RetryReleaseRequest {
                release_id: failed.id.clone(),
            })
            .await,
        tonic::Code::FailedPrecondition,
    );
    assert!(
        s.message().contains(&newer.id),
        "names the other release: {s:?}"
    );
    assert_eq!(
        status(&get(&server, &failed.id).await),
        pb::ReleaseStatus::Failed
    );
    server
        .releases()
        .terminate_release(pb::TerminateReleaseRequest {
            release_id: newer.id.clone(),
            reason: String::new(),
        })
        .await
        .expect("terminate");
    let newer = wait_final(&server, &newer.id).await;
    assert_eq!(newer.message, "terminated on request");
    // Now nothing else is active: the retry goes through.
    server
        .releases()
        .retry_release(pb::RetryReleaseRequest {
            release_id: failed.id.clone(),
        })
        .await
        .expect("retry");
    let done = wait_final(&server, &failed.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
}

/// Two retries of different releases of one product, sent together: the
/// check for another active release is taken in the retry's own write, so
/// exactly one of them goes through, every time.
#[tokio::test]
async fn simultaneous_retries_of_one_product_let_exactly_one_through() {
    let server = TestServer::start().await;
    create_wait(&server, "long", 30_000).await;
    seed_parallel(&server, Some("long")).await;
    let terminate = |id: String| {
        let server = &server;
        async move {
            server
                .releases()
                .terminate_release(pb::TerminateReleaseRequest {
                    release_id: id.clone(),
                    reason: String::new(),
                })
                .await
                .expect("terminate");
            let t = wait_final(server, &id).await;
            assert_eq!(status(&t), pb::ReleaseStatus::Terminated, "{t:?}");
        }
    };
    let mut ids = Vec::new();
    for version in ["1.0.0", "2.0.0"] {
        let r = trigger(&server, version).await;
        assert_eq!(status(&r), pb::ReleaseStatus::Running, "{r:?}");
        terminate(r.id.clone()).await;
        ids.push(r.id);
    }
    for round in 0..8 {
        let retry = |id: String| {
            let mut client = server.releases();
            async move {
                client
                    .retry_release(pb::RetryReleaseRequest { release_id: id })
                    .await
            }
        };
        let (a, b) = tokio::join!(retry(ids[0].clone()), retry(ids[1].clone()));
        let winner = match (&a, &b) {
            (Ok(_), Err(s)) => {
                assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{s:?}");
                assert!(s.message().contains(&ids[0]), "names the winner: {s:?}");
                &ids[0]
            }
            (Err(s), Ok(_)) => {
                assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{s:?}");
                assert!(s.message().contains(&ids[1]), "names the winner: {s:?}");
                &ids[1]
            }
            _ => panic!("round {round}: exactly one retry must pass: {a:?} / {b:?}"),
        };
        let loser = if winner == &ids[0] { &ids[1] } else { &ids[0] };
        assert_eq!(
            status(&get(&server, loser).await),
            pb::ReleaseStatus::Terminated,
            "round {round}: the refused retry changed nothing"
        );
        terminate(winner.clone()).await;
    }
}

#[tokio::test]
async fn queued_release_is_terminated_at_once() {
    let server = TestServer::start().await;
    create_wait(&server, "long", 30_000).await;
    seed_parallel(&server, Some("long")).await;
    let first = trigger(&server, "2.0.0").await;
    let second = trigger(&server, "3.0.0").await;
    assert_eq!(status(&second), pb::ReleaseStatus::Queued);
    let t = server
        .releases()
        .terminate_release(pb::TerminateReleaseRequest {
            release_id: second.id.clone(),
            reason: "not needed".into(),
        })
        .await
        .expect("terminate queued")
        .into_inner()
        .release
        .unwrap();
    assert_eq!(status(&t), pb::ReleaseStatus::Terminated, "{t:?}");
    assert_eq!(t.message, "not needed");
    assert!(t.start_time.is_none(), "never started: {t:?}");
    for e in &t.environments {
        assert_eq!(e.status, pb::EnvironmentStatus::Terminated as i32, "{e:?}");
        assert_eq!(e.attempt, 0, "{e:?}");
    }
    // The running one is untouched.
    assert_eq!(
        status(&get(&server, &first.id).await),
        pb::ReleaseStatus::Running
    );
    server
        .releases()
        .terminate_release(pb::TerminateReleaseRequest {
            release_id: first.id.clone(),
            reason: String::new(),
        })
        .await
        .expect("terminate first");
    assert_eq!(
        wait_final(&server, &first.id).await.message,
        "terminated on request"
    );
}

#[tokio::test]
async fn approval_timeout_fails_the_environment() {
    let server = TestServer::start().await;
    server
        .workflows()
        .create_workflow(pb::CreateWorkflowRequest {
            workflow: Some(pb::Workflow {
                name: "brief-gate".into(),
                kind: Some(pb::workflow::Kind::Approval(pb::ApprovalWorkflow {
                    timeout: Some(dur(300)),
                })),
                ..Default::default()
            }),
        })
        .await
        .expect("create approval");
    seed_parallel(&server, Some("brief-gate")).await;
    let r = trigger(&server, "").await;
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    for e in ["prod", "prod-eu", "prod-asia"] {
        assert_eq!(env_status(&done, e), pb::EnvironmentStatus::Failed, "{e}");
        let post = step(env(&done, e), pb::StepKind::PostAction);
        assert_eq!(post.status, pb::StepStatus::Failed as i32, "{post:?}");
        assert!(post.message.contains("timed out"), "{post:?}");
    }
}

#[tokio::test]
async fn http_outputs_flow_into_later_workflows_and_on_fail_runs() {
    let server = TestServer::start().await;
    let (hook, url) = Hook::start(&["prod-asia"]).await;
    create_http(&server, "notify", &url, 2).await;
    seed_parallel(&server, Some("notify")).await;
    edit_flow(
        &server,
        "parallel",
        vec![
            pb::flow_edit::Edit::SetPolicy(pb::flow_edit::SetPolicy {
                environment: "qa".into(),
                policy: Some(pb::Policy {
                    post_action: "notify".into(),
                    ..Default::default()
                }),
            }),
            pb::flow_edit::Edit::SetHooks(pb::flow_edit::SetHooks {
                environment: String::new(),
                hooks: Some(pb::Hooks {
                    on_fail: "notify".into(),
                    ..Default::default()
                }),
            }),
        ],
    )
    .await;
    let r = trigger(&server, "").await;
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    // prod-asia was tried twice (max_attempts 2), then failed with the status.
    let counts = hook.counts();
    assert_eq!(counts.get("prod-asia"), Some(&2), "{counts:?}");
    let post = step(env(&done, "prod-asia"), pb::StepKind::PostAction);
    assert!(post.message.contains("500"), "{post:?}");
    assert_eq!(post.attempt, 1, "HTTP retries are not attempts: {post:?}");
    // The release-level on_fail hook ran once (environment empty).
    assert_eq!(counts.get(""), Some(&1), "{counts:?}");
    let hooks = &done.hooks;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].kind, pb::StepKind::OnFail as i32);
    assert_eq!(
        hooks[0].status,
        pb::StepStatus::Succeeded as i32,
        "{hooks:?}"
    );
    // qa's output reached the production post-actions' context.
    let bodies = hook.bodies();
    let prod = bodies
        .iter()
        .find(|b| b["environment"] == "prod")
        .expect("prod was called");
    assert_eq!(prod["context"]["from_qa"], "qa", "{prod}");
    assert_eq!(prod["version"], "1.0.0");
    assert_eq!(prod["product"], "demo-trioapp");
    assert_eq!(prod["release_id"], r.id.as_str());
}

#[tokio::test]
async fn terminated_release_retries_from_the_terminated_step() {
    let server = TestServer::start().await;
    create_wait(&server, "long", 30_000).await;
    seed_parallel(&server, Some("long")).await;
    let r = trigger(&server, "").await;
    wait_until(&server, &r.id, "production post-actions running", |r| {
        ["prod", "prod-eu", "prod-asia"].iter().all(|e| {
            step(env(r, e), pb::StepKind::PostAction).status == pb::StepStatus::Running as i32
        })
    })
    .await;
    server
        .releases()
        .terminate_release(pb::TerminateReleaseRequest {
            release_id: r.id.clone(),
            reason: "pause".into(),
        })
        .await
        .expect("terminate");
    let t = wait_final(&server, &r.id).await;
    assert_eq!(status(&t), pb::ReleaseStatus::Terminated);
    // Workflows run as currently defined: shorten the soak, then retry.
    let wf = server
        .workflows()
        .get_workflow(pb::GetWorkflowRequest {
            name: "long".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .workflow
        .unwrap();
    let version = wf.version;
    let mut wf = wf;
    wf.kind = Some(pb::workflow::Kind::Wait(pb::WaitWorkflow {
        duration: Some(dur(50)),
    }));
    server
        .workflows()
        .update_workflow(pb::UpdateWorkflowRequest {
            workflow: Some(wf),
            expected_version: version,
        })
        .await
        .expect("update workflow");
    server
        .releases()
        .retry_release(pb::RetryReleaseRequest {
            release_id: r.id.clone(),
        })
        .await
        .expect("retry");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    assert!(done.message.is_empty(), "{done:?}");
    for e in ["prod", "prod-eu", "prod-asia"] {
        let run = env(&done, e);
        assert_eq!(run.attempt, 2, "{run:?}");
        assert_eq!(step(run, pb::StepKind::Action).attempt, 1, "{run:?}");
        assert_eq!(step(run, pb::StepKind::PostAction).attempt, 2, "{run:?}");
        assert_eq!(
            step(run, pb::StepKind::PostAction).status,
            pb::StepStatus::Succeeded as i32
        );
    }
    assert_eq!(env(&done, "qa").attempt, 1);
}

#[tokio::test]
async fn terminate_cancels_a_pending_approval() {
    let server = TestServer::start().await;
    let r = approval_world(&server).await;
    server
        .releases()
        .terminate_release(pb::TerminateReleaseRequest {
            release_id: r.id.clone(),
            reason: "abandoned".into(),
        })
        .await
        .expect("terminate");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Terminated, "{done:?}");
    assert_eq!(done.message, "abandoned");
    let prod = env(&done, "prod");
    assert_eq!(prod.status, pb::EnvironmentStatus::Terminated as i32);
    assert_eq!(
        step(prod, pb::StepKind::PreAction).status,
        pb::StepStatus::Terminated as i32,
        "{prod:?}"
    );
    // The action never started: skipped, not terminated.
    assert_eq!(
        step(prod, pb::StepKind::Action).status,
        pb::StepStatus::Skipped as i32,
        "{prod:?}"
    );
    expect_code(
        approve(&server, &r.id, "prod", true).await,
        tonic::Code::FailedPrecondition,
    );
}
