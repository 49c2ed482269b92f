//! The release engine against a real server (SQLite or PostgreSQL).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::hook::Hook;
use common::*;
use promoflow::proto::v1 as pb;

#[tokio::test]
async fn parallel_quick_start_runs_branches_together() {
    let server = start_soaking("soak", 300).await;
    let r = trigger(&server, DEMO, "").await;
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
    let product = get_product(&server, DEMO).await.expect("get product");
    for app in &product.applications {
        assert_eq!(app.version, "1.0.0", "{app:?}");
    }
}

// ---------------------------------------------------------------------------
// Failure and retry
// ---------------------------------------------------------------------------

/// The quick-start world with an http post-action `notify` on every
/// production step, plus `prod-eu-edge` → `prod-eu-tail` after prod-eu; the
/// hook fails prod-eu. Returns the final (FAILED) release.
async fn failing_branch(server: &TestServer) -> (Hook, pb::Release) {
    let (hook, url) = Hook::start(&["prod-eu"]).await;
    create_http(server, "notify", &url, 1, 5000).await;
    seed_parallel(server, Some("notify")).await;
    create_envs(
        server,
        &["prod-eu-edge", "prod-eu-tail"],
        pb::EnvironmentKind::Production,
    )
    .await;
    add_apps(server, DEMO, &["prod-eu-edge", "prod-eu-tail"]).await;
    edit_latest(
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
    let r = trigger(server, DEMO, "").await;
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
    let post = step_of(eu, pb::StepKind::PostAction);
    assert_eq!(post.status, pb::StepStatus::Failed as i32, "{post:?}");
    assert!(post.message.contains("500"), "{post:?}");
    assert_eq!(
        step_of(eu, pb::StepKind::Action).status,
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
    let p = get_product(&server, DEMO).await.expect("get product");
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
    // Read twice while FAILED (the second read is served from the cache of
    // final releases), then retried: reads must see the re-run at once.
    assert_eq!(get_release(&server, &failed.id).await, failed);
    assert_eq!(get_release(&server, &failed.id).await, failed);

    let retried = retry(&server, &failed.id).await.expect("retry");
    assert_eq!(retried.id, failed.id, "retried in place");
    assert_ne!(
        status(&get_release(&server, &failed.id).await),
        pb::ReleaseStatus::Failed,
        "a cached final release is not served after a retry"
    );
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
    assert_eq!(step_of(eu, pb::StepKind::PostAction).attempt, 2, "{eu:?}");
    assert_eq!(
        step_of(eu, pb::StepKind::Action).attempt,
        1,
        "the succeeded action is not re-run: {eu:?}"
    );
    assert_eq!(env(&done, "prod").attempt, 1);
    assert_eq!(env(&done, "prod-asia").attempt, 1);
    assert_eq!(env(&done, "prod-eu-edge").attempt, 1);
    let p = get_product(&server, DEMO).await.expect("get product");
    for app in &p.applications {
        assert_eq!(app.version, "1.0.0", "{app:?}");
    }
    // Retrying a succeeded release is refused.
    expect_code(
        retry(&server, &failed.id).await,
        tonic::Code::FailedPrecondition,
    );
}

// ---------------------------------------------------------------------------
// Terminate and timeout
// ---------------------------------------------------------------------------

#[tokio::test]
async fn terminate_cancels_running_environments() {
    let server = start_soaking("long", 30_000).await;
    let r = trigger(&server, DEMO, "").await;
    wait_until(&server, &r.id, "production post-actions running", |r| {
        ["prod", "prod-eu", "prod-asia"].iter().all(|e| {
            step_of(env(r, e), pb::StepKind::PostAction).status == pb::StepStatus::Running as i32
        })
    })
    .await;
    let t = terminate(&server, &r.id, "operator pulled the plug")
        .await
        .expect("terminate");
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
        let post = step_of(env(&done, e), pb::StepKind::PostAction);
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
        terminate(&server, &r.id, "").await,
        tonic::Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn promotion_timeout_terminates_release() {
    let server = start_soaking("long", 30_000).await;
    edit_latest(
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
    let r = trigger(&server, DEMO, "").await;
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
    create_approval(server, "gate", None).await;
    seed_parallel(server, None).await;
    edit_latest(
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
    let r = trigger(server, DEMO, "").await;
    let r = wait_until(server, &r.id, "suspended", |r| {
        status(r) == pb::ReleaseStatus::Suspended
    })
    .await;
    assert_eq!(env_status(&r, "prod"), pb::EnvironmentStatus::Suspended);
    assert_eq!(
        step_of(env(&r, "prod"), pb::StepKind::PreAction).status,
        pb::StepStatus::Suspended as i32
    );
    for e in ["prod-eu", "prod-asia"] {
        assert_eq!(env_status(&r, e), pb::EnvironmentStatus::Succeeded, "{e}");
    }
    assert_eq!(r.counters.unwrap().suspended, 1);
    r
}

#[tokio::test]
async fn approval_approved_continues() {
    let server = TestServer::start().await;
    let r = approval_world(&server).await;
    // Nothing awaits approval in prod-eu (it succeeded) or qa.
    let s = expect_code(
        approve(&server, &r.id, "prod-eu", true, "looks good").await,
        tonic::Code::FailedPrecondition,
    );
    assert!(s.message().contains("SUCCEEDED"), "{s:?}");
    expect_code(
        approve(&server, &r.id, "nowhere", true, "looks good").await,
        tonic::Code::NotFound,
    );
    approve(&server, &r.id, "prod", true, "looks good")
        .await
        .expect("approve");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    let pre = step_of(env(&done, "prod"), pb::StepKind::PreAction);
    assert_eq!(pre.status, pb::StepStatus::Succeeded as i32);
    assert!(pre.message.contains("looks good"), "{pre:?}");
    // Approving twice: nothing waits any more.
    expect_code(
        approve(&server, &r.id, "prod", true, "looks good").await,
        tonic::Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn approval_rejected_fails_release() {
    let server = TestServer::start().await;
    let r = approval_world(&server).await;
    approve(&server, &r.id, "prod", false, "not on a friday")
        .await
        .expect("reject");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    assert_eq!(env_status(&done, "prod"), pb::EnvironmentStatus::Failed);
    let prod = env(&done, "prod");
    let pre = step_of(prod, pb::StepKind::PreAction);
    assert_eq!(pre.status, pb::StepStatus::Failed as i32);
    assert!(pre.message.contains("not on a friday"), "{pre:?}");
    // The action never ran: prod keeps no version.
    assert_ne!(
        step_of(prod, pb::StepKind::Action).status,
        pb::StepStatus::Succeeded as i32
    );
    let p = get_product(&server, DEMO).await.expect("get product");
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
    create_envs(&server, &["staging"], pb::EnvironmentKind::Production).await;
    add_apps(&server, DEMO, &["staging"]).await;
    let steps = vec![
        step("qa", &["dev"]),
        step_then("staging", &["dev"], "soak"),
        step("prod", &["qa", "staging"]),
    ];
    create_flow(&server, flow("fanin", "dev", steps))
        .await
        .expect("create flow");
    let r = trigger_flow(&server, "fanin", DEMO, "").await;
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
    let server = start_soaking("soak", 300).await;
    let first = trigger(&server, DEMO, "2.0.0").await;
    assert_eq!(status(&first), pb::ReleaseStatus::Running, "{first:?}");
    let second = trigger(&server, DEMO, "3.0.0").await;
    assert_eq!(status(&second), pb::ReleaseStatus::Queued, "{second:?}");
    assert!(second.start_time.is_none());
    // It says what it waits behind (and the stream's snapshot carries it).
    assert!(
        second
            .message
            .starts_with(&format!("queued behind release {}", first.id)),
        "{second:?}"
    );
    let first = wait_final(&server, &first.id).await;
    let second = wait_final(&server, &second.id).await;
    assert_eq!(second.message, "", "started: the queue's message is gone");
    assert_eq!(status(&first), pb::ReleaseStatus::Succeeded, "{first:?}");
    assert_eq!(status(&second), pb::ReleaseStatus::Succeeded, "{second:?}");
    assert!(
        ts(&second.start_time) >= ts(&first.finish_time),
        "second started {:?} before the first finished {:?}",
        second.start_time,
        first.finish_time
    );
    let p = get_product(&server, DEMO).await.expect("get product");
    for app in p.applications.iter().filter(|a| a.environment != "dev") {
        assert_eq!(app.version, "3.0.0", "the later release wins: {app:?}");
    }
}

#[tokio::test]
async fn terminate_concurrency_supersedes_the_running_release() {
    let server = start_soaking("long", 30_000).await;
    change_product(&server, DEMO, |p| {
        p.concurrency = pb::Concurrency::Terminate as i32;
    })
    .await;
    let first = trigger(&server, DEMO, "2.0.0").await;
    wait_until(&server, &first.id, "prod running", |r| {
        env_status(r, "prod") == pb::EnvironmentStatus::Running
    })
    .await;
    let second = trigger(&server, DEMO, "3.0.0").await;
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
    terminate(&server, &second.id, "done")
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
    create_envs(&server, &["edge"], pb::EnvironmentKind::Production).await;
    edit_latest(
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
    let server = start_soaking("soak", 100).await;
    let r = trigger(&server, DEMO, "").await;
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
    change_product(&server, DEMO, |p| {
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
    let p = get_product(&server, DEMO).await.expect("get product");
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

#[tokio::test]
async fn retry_is_refused_while_another_release_of_the_product_runs() {
    let server = TestServer::start().await;
    let (hook, failed) = failing_branch(&server).await;
    assert_eq!(status(&failed), pb::ReleaseStatus::Failed, "{failed:?}");
    hook.heal();
    // A newer release of the same product now runs (soaking in prod).
    create_wait(&server, "long", 30_000).await;
    edit_latest(
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
    let newer = trigger(&server, DEMO, "2.0.0").await;
    assert_eq!(status(&newer), pb::ReleaseStatus::Running, "{newer:?}");
    let s = expect_code(
        retry(&server, &failed.id).await,
        tonic::Code::FailedPrecondition,
    );
    assert!(
        s.message().contains(&newer.id),
        "names the other release: {s:?}"
    );
    assert_eq!(
        status(&get_release(&server, &failed.id).await),
        pb::ReleaseStatus::Failed
    );
    terminate(&server, &newer.id, "").await.expect("terminate");
    let newer = wait_final(&server, &newer.id).await;
    assert_eq!(newer.message, "terminated on request");
    // Now nothing else is active: the retry goes through.
    retry(&server, &failed.id).await.expect("retry");
    let done = wait_final(&server, &failed.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
}

/// Two retries of different releases of one product, sent together: the
/// check for another active release is taken in the retry's own write, so
/// exactly one of them goes through, every time.
#[tokio::test]
async fn simultaneous_retries_of_one_product_let_exactly_one_through() {
    let server = start_soaking("long", 30_000).await;
    let terminate = |id: String| {
        let server = &server;
        async move {
            terminate(server, &id, "").await.expect("terminate");
            let t = wait_final(server, &id).await;
            assert_eq!(status(&t), pb::ReleaseStatus::Terminated, "{t:?}");
        }
    };
    let mut ids = Vec::new();
    for version in ["1.0.0", "2.0.0"] {
        let r = trigger(&server, DEMO, version).await;
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
            status(&get_release(&server, loser).await),
            pb::ReleaseStatus::Terminated,
            "round {round}: the refused retry changed nothing"
        );
        terminate(winner.clone()).await;
    }
}

#[tokio::test]
async fn queued_release_is_terminated_at_once() {
    let server = start_soaking("long", 30_000).await;
    let first = trigger(&server, DEMO, "2.0.0").await;
    let second = trigger(&server, DEMO, "3.0.0").await;
    assert_eq!(status(&second), pb::ReleaseStatus::Queued);
    let t = terminate(&server, &second.id, "not needed")
        .await
        .expect("terminate queued");
    assert_eq!(status(&t), pb::ReleaseStatus::Terminated, "{t:?}");
    assert_eq!(t.message, "not needed");
    assert!(t.start_time.is_none(), "never started: {t:?}");
    for e in &t.environments {
        assert_eq!(e.status, pb::EnvironmentStatus::Terminated as i32, "{e:?}");
        assert_eq!(e.attempt, 0, "{e:?}");
    }
    // The running one is untouched.
    assert_eq!(
        status(&get_release(&server, &first.id).await),
        pb::ReleaseStatus::Running
    );
    terminate(&server, &first.id, "")
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
    create_approval(&server, "brief-gate", Some(300)).await;
    seed_parallel(&server, Some("brief-gate")).await;
    let r = trigger(&server, DEMO, "").await;
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    for e in ["prod", "prod-eu", "prod-asia"] {
        assert_eq!(env_status(&done, e), pb::EnvironmentStatus::Failed, "{e}");
        let post = step_of(env(&done, e), pb::StepKind::PostAction);
        assert_eq!(post.status, pb::StepStatus::Failed as i32, "{post:?}");
        assert!(post.message.contains("timed out"), "{post:?}");
    }
}

#[tokio::test]
async fn http_outputs_flow_into_later_workflows_and_on_fail_runs() {
    let server = TestServer::start().await;
    let (hook, url) = Hook::start(&["prod-asia"]).await;
    create_http(&server, "notify", &url, 2, 5000).await;
    seed_parallel(&server, Some("notify")).await;
    edit_latest(
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
    let r = trigger(&server, DEMO, "").await;
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Failed, "{done:?}");
    // prod-asia was tried twice (max_attempts 2), then failed with the status.
    let counts = hook.counts();
    assert_eq!(counts.get("prod-asia"), Some(&2), "{counts:?}");
    let post = step_of(env(&done, "prod-asia"), pb::StepKind::PostAction);
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
    let server = start_soaking("long", 30_000).await;
    let r = trigger(&server, DEMO, "").await;
    wait_until(&server, &r.id, "production post-actions running", |r| {
        ["prod", "prod-eu", "prod-asia"].iter().all(|e| {
            step_of(env(r, e), pb::StepKind::PostAction).status == pb::StepStatus::Running as i32
        })
    })
    .await;
    terminate(&server, &r.id, "pause").await.expect("terminate");
    let t = wait_final(&server, &r.id).await;
    assert_eq!(status(&t), pb::ReleaseStatus::Terminated);
    // Workflows run as currently defined: shorten the soak, then retry.
    let mut wf = get_wf(&server, "long").await.unwrap();
    let version = wf.version;
    wf.kind = Some(pb::workflow::Kind::Wait(pb::WaitWorkflow {
        duration: Some(dur(50)),
    }));
    update_wf(&server, wf, version)
        .await
        .expect("update workflow");
    retry(&server, &r.id).await.expect("retry");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
    assert!(done.message.is_empty(), "{done:?}");
    for e in ["prod", "prod-eu", "prod-asia"] {
        let run = env(&done, e);
        assert_eq!(run.attempt, 2, "{run:?}");
        assert_eq!(step_of(run, pb::StepKind::Action).attempt, 1, "{run:?}");
        assert_eq!(step_of(run, pb::StepKind::PostAction).attempt, 2, "{run:?}");
        assert_eq!(
            step_of(run, pb::StepKind::PostAction).status,
            pb::StepStatus::Succeeded as i32
        );
    }
    assert_eq!(env(&done, "qa").attempt, 1);
}

#[tokio::test]
async fn terminate_cancels_a_pending_approval() {
    let server = TestServer::start().await;
    let r = approval_world(&server).await;
    terminate(&server, &r.id, "abandoned")
        .await
        .expect("terminate");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Terminated, "{done:?}");
    assert_eq!(done.message, "abandoned");
    let prod = env(&done, "prod");
    assert_eq!(prod.status, pb::EnvironmentStatus::Terminated as i32);
    assert_eq!(
        step_of(prod, pb::StepKind::PreAction).status,
        pb::StepStatus::Terminated as i32,
        "{prod:?}"
    );
    // The action never started: skipped, not terminated.
    assert_eq!(
        step_of(prod, pb::StepKind::Action).status,
        pb::StepStatus::Skipped as i32,
        "{prod:?}"
    );
    expect_code(
        approve(&server, &r.id, "prod", true, "looks good").await,
        tonic::Code::FailedPrecondition,
    );
}
