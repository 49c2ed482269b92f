//! WorkflowService (`proto/promoflow/v1/workflow.proto`).

use super::*;
use pb::workflow::Kind;

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
                min_approvals: 2,
                forbid_self_approval: true,
            }),
        ),
        workflow(
            "gate",
            Kind::Approval(pb::ApprovalWorkflow {
                timeout: None,
                min_approvals: 1,
                forbid_self_approval: false,
            }),
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
                    ..Default::default()
                }),
            ),
            &["workflow.approval.timeout"],
        ),
        (
            workflow(
                "negative-approvers",
                Kind::Approval(pb::ApprovalWorkflow {
                    min_approvals: -1,
                    ..Default::default()
                }),
            ),
            &["workflow.approval.min_approvals"],
        ),
        (
            workflow(
                "eleven-approvers",
                Kind::Approval(pb::ApprovalWorkflow {
                    min_approvals: 11,
                    ..Default::default()
                }),
            ),
            &["workflow.approval.min_approvals"],
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
            min_approvals: 1,
            ..Default::default()
        })),
        ..created.clone()
    };
    let updated = update_wf(&server, change.clone(), 1).await.expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.description, "now a manual approval");
    assert_eq!(updated.kind, change.kind);
    assert_eq!(updated.create_time, created.create_time);
    assert!(ts(&updated.update_time) > ts(&created.update_time));
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
            Kind::Approval(pb::ApprovalWorkflow {
                timeout: None,
                min_approvals: 1,
                forbid_self_approval: false,
            }),
        ),
    )
    .await
    .expect("create gate");

    let status = expect_code(delete_wf(&server, "soak", 9).await, Code::Aborted);
    assert_message_names(&status, &["soak"]);
    assert_eq!(get_wf(&server, "soak").await.expect("still there"), soak);

    let status = expect_code(delete_wf(&server, "ghost", 0).await, Code::NotFound);
    assert_message_names(&status, &["ghost"]);

    create_one_step_flow(&server, "guarded", "dev", "qa", "gate").await;
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
