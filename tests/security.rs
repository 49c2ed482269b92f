//! Authentication, authorization and audit, end to end against a real
//! server: every RPC of the descriptor set without a credential, with a
//! bad one, with a viewer and with a role lacking the permission (generated
//! from the permission table, so a new RPC cannot be forgotten); scoped
//! promoters; revocation, expiry and throttling; the audit log; the first
//! admin token of a fresh `promoflow serve`.

mod common;

use std::time::Duration;

use common::*;
use promoflow::auth::table;
use promoflow::domain::access::Role;
use promoflow::proto::v1 as pb;
use prost::Message;
use tonic::Code;

/// A message without fields: an empty request is valid for every proto3
/// message, and any answer decodes into it (fields it does not know are
/// skipped).
#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

/// Calls `path` with an empty request (valid for every proto3 message) and
/// returns the status: OK, or the error the server answered.
async fn call(conn: Conn, path: &str, streaming: bool) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(conn);
    if let Err(e) = grpc.ready().await {
        return tonic::Status::unavailable(e.to_string());
    }
    let codec = tonic_prost::ProstCodec::<Empty, Empty>::default();
    let path = http::uri::PathAndQuery::try_from(path.to_string()).expect("path");
    let req = tonic::Request::new(Empty {});
    let r = if streaming {
        grpc.server_streaming(req, path, codec).await.map(|_| ())
    } else {
        grpc.unary(req, path, codec).await.map(|_| ())
    };
    r.err().unwrap_or_else(|| tonic::Status::ok(""))
}

/// Every promoflow method: (path, server streaming).
fn methods() -> Vec<(String, bool)> {
    let fds = prost_types::FileDescriptorSet::decode(promoflow::proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut out = Vec::new();
    for file in fds.file.iter().filter(|f| f.package() == "promoflow.v1") {
        for service in &file.service {
            for m in &service.method {
                out.push((
                    format!("/promoflow.v1.{}/{}", service.name(), m.name()),
                    m.server_streaming(),
                ));
            }
        }
    }
    out
}

/// A token of `role` on `flows` × `environments`, and a connection with it.
async fn token_conn(
    server: &TestServer,
    name: &str,
    role: pb::Role,
    flows: &[&str],
    envs: &[&str],
) -> (Conn, String) {
    let made = server
        .tokens()
        .create_token(pb::CreateTokenRequest {
            name: name.into(),
            role: role as i32,
            flow_patterns: strs(flows),
            environment_patterns: strs(envs),
            ttl: None,
        })
        .await
        .expect("create token")
        .into_inner();
    assert!(made.secret.starts_with("pf_"), "{}", made.secret);
    (connect(&server.addr.to_string(), &made.secret), made.secret)
}

fn role_of(r: pb::Role) -> Role {
    match r {
        pb::Role::Viewer => Role::Viewer,
        pb::Role::Promoter => Role::Promoter,
        pb::Role::Editor => Role::Editor,
        _ => Role::Admin,
    }
}

#[tokio::test]
async fn every_rpc_refuses_missing_bad_and_insufficient_credentials() {
    // Far more bad credentials than the default limit allows per minute.
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 0).await;
    let anonymous = conn(server.raw.clone(), Credentials::none());
    let bad = connect(
        &server.addr.to_string(),
        "pf_aaaaaaaaaaaaaaaa_not-the-secret",
    );
    let mut tokens = Vec::new();
    for (name, role) in [
        ("viewer", pb::Role::Viewer),
        ("promoter", pb::Role::Promoter),
        ("editor", pb::Role::Editor),
    ] {
        tokens.push((role, token_conn(&server, name, role, &[], &[]).await.0));
    }
    let methods = methods();
    assert!(methods.len() > 40, "{} methods", methods.len());
    for (path, streaming) in &methods {
        let rule = table::rule(path).unwrap_or_else(|| panic!("{path}: no rule"));
        let s = call(anonymous.clone(), path, *streaming).await;
        assert_eq!(s.code(), Code::Unauthenticated, "{path} anonymous: {s:?}");
        assert!(
            s.message().contains("authorization: Bearer"),
            "{path}: {s:?}"
        );
        let s = call(bad.clone(), path, *streaming).await;
        assert_eq!(s.code(), Code::Unauthenticated, "{path} bad token: {s:?}");
        for (role, conn) in &tokens {
            let s = call(conn.clone(), path, *streaming).await;
            if role_of(*role).allows(rule.permission) {
                // Past authorization: whatever the empty request gets.
                assert!(
                    !matches!(s.code(), Code::PermissionDenied | Code::Unauthenticated),
                    "{path} as {role:?}: {s:?}"
                );
            } else {
                assert_eq!(
                    s.code(),
                    Code::PermissionDenied,
                    "{path} as {role:?}: {s:?}"
                );
                assert!(
                    s.message().contains(rule.permission.as_str()),
                    "{path}: the message names the permission: {s:?}"
                );
            }
        }
    }
    // Health stays open.
    promoflow::cli::wait_ready(&server.raw, Duration::from_secs(5))
        .await
        .expect("health without a credential");
}

#[tokio::test]
async fn scoped_promoters_promote_and_approve_only_their_environments() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    create_approval(&server, "gate", None).await;
    // A flow that promotes dev → qa only, gated by an approval.
    let mut qa = step("qa", &["dev"]);
    qa.policy = Some(pb::Policy {
        pre_action: "gate".into(),
        action: pb::PromotionAction::None as i32,
        ..Default::default()
    });
    create_flow(&server, flow("to-qa", "dev", vec![qa]))
        .await
        .expect("flow");
    let (qa_only, _) = token_conn(
        &server,
        "qa-promoter",
        pb::Role::Promoter,
        &["to-*", "parallel"],
        &["qa"],
    )
    .await;
    // parallel promotes into prod too: refused, naming what is missing.
    let denied = qa_only
        .releases()
        .trigger_release(pb::TriggerReleaseRequest {
            flow: "parallel".into(),
            product: DEMO.into(),
            ..Default::default()
        })
        .await
        .expect_err("parallel reaches prod");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains("releases.trigger")
            && denied.message().contains("prod")
            && !denied.message().contains("qa,"),
        "{denied:?}"
    );
    let r = trigger_flow(&qa_only, "to-qa", DEMO, "").await;
    // The actor is the principal the server computed; the initiator is
    // whatever the client wrote.
    assert_eq!(
        (r.actor.as_str(), r.initiator.as_str()),
        ("token:qa-promoter", "test")
    );
    wait_until(&server, &r.id, "qa waits for approval", |r| {
        env_status(r, "qa") == pb::EnvironmentStatus::Suspended
    })
    .await;
    // A promoter of other environments may not approve qa.
    let (prod_only, _) = token_conn(
        &server,
        "prod-promoter",
        pb::Role::Promoter,
        &[],
        &["prod*"],
    )
    .await;
    let s = approve(&prod_only, &r.id, "qa", true, "")
        .await
        .expect_err("not its environment");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("releases.approve"), "{s:?}");
    // Nor may it terminate a release promoting into qa.
    let s = terminate(&prod_only, &r.id, "no")
        .await
        .expect_err("terminate");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    approve(&qa_only, &r.id, "qa", true, "ok")
        .await
        .expect("approve qa");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded);
    // An editor scoped to one flow edits it and no other.
    let (editor, _) = token_conn(&server, "flow-editor", pb::Role::Editor, &["to-qa"], &[]).await;
    let current = get_flow(&server, "parallel", 0).await.expect("flow");
    let s = editor
        .flows()
        .update_flow(pb::UpdateFlowRequest {
            expected_version: current.version,
            flow: Some(current),
        })
        .await
        .expect_err("not its flow");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    // Scoped grants never reach the global catalog.
    let s = create_env(
        &editor,
        environment("x", pb::EnvironmentKind::NonProduction),
    )
    .await
    .expect_err("catalog");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
}

#[tokio::test]
async fn a_two_person_approval_needs_two_other_principals() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    let rule = pb::ApprovalWorkflow {
        min_approvals: 2,
        forbid_self_approval: true,
        ..Default::default()
    };
    create_kind(&server, "two-person", pb::workflow::Kind::Approval(rule)).await;
    let mut qa = step("qa", &["dev"]);
    qa.policy = Some(pb::Policy {
        pre_action: "two-person".into(),
        action: pb::PromotionAction::None as i32,
        ..Default::default()
    });
    create_flow(&server, flow("guarded", "dev", vec![qa]))
        .await
        .expect("flow");
    let (author, _) = token_conn(&server, "author", pb::Role::Promoter, &[], &[]).await;
    let (alice, _) = token_conn(&server, "alice", pb::Role::Promoter, &[], &["qa"]).await;
    let (bob, _) = token_conn(&server, "bob", pb::Role::Promoter, &[], &["qa"]).await;
    let r = trigger_flow(&author, "guarded", DEMO, "").await;
    wait_until(&server, &r.id, "qa waits for approval", |r| {
        env_status(r, "qa") == pb::EnvironmentStatus::Suspended
    })
    .await;
    let s = approve(&author, &r.id, "qa", true, "mine")
        .await
        .expect_err("self-approval");
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert!(s.message().contains("self-approval"), "{s:?}");
    let one = approve(&alice, &r.id, "qa", true, "lgtm")
        .await
        .expect("first approval")
        .release
        .expect("release");
    let gate = |r: &pb::Release| {
        r.environments
            .iter()
            .find(|e| e.environment == "qa")
            .expect("qa")
            .steps[0]
            .clone()
    };
    assert_eq!(
        (env_status(&one, "qa"), gate(&one).required_approvals),
        (pb::EnvironmentStatus::Suspended, 2),
        "one of two approvals: still waiting"
    );
    let s = approve(&alice, &r.id, "qa", true, "again")
        .await
        .expect_err("twice");
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    approve(&bob, &r.id, "qa", true, "")
        .await
        .expect("second approval");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(status(&done), pb::ReleaseStatus::Succeeded);
    let decisions: Vec<(String, bool, String)> = gate(&done)
        .approvals
        .iter()
        .map(|d| (d.principal.clone(), d.approve, d.comment.clone()))
        .collect();
    assert_eq!(
        decisions,
        vec![
            ("token:alice".into(), true, "lgtm".into()),
            ("token:bob".into(), true, String::new())
        ]
    );
    // A termination records who asked.
    let r = trigger_flow(&author, "guarded", DEMO, "").await;
    terminate(&alice, &r.id, "not today")
        .await
        .expect("terminate");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(done.terminated_by, "token:alice");
}

#[tokio::test]
async fn reflection_is_open_unless_the_flag_asks_for_a_credential() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_response};
    async fn list(conn: Conn) -> Result<usize, tonic::Status> {
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new(conn)
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await?
            .into_inner();
        match stream.message().await?.and_then(|r| r.message_response) {
            Some(server_reflection_response::MessageResponse::ListServicesResponse(l)) => {
                Ok(l.service.len())
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }
    let open = TestServer::start().await;
    assert!(
        list(conn(open.raw.clone(), Credentials::none()))
            .await
            .expect("open reflection")
            > 5
    );
    let closed = TestServer::start_with(|c| c.reflection_needs_auth = true).await;
    let s = list(conn(closed.raw.clone(), Credentials::none()))
        .await
        .expect_err("needs a credential");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    assert!(list(closed.channel.clone()).await.expect("with a token") > 5);
}

#[tokio::test]
async fn command_workflows_need_an_admin() {
    let server = TestServer::start().await;
    let (editor, _) = token_conn(&server, "editor", pb::Role::Editor, &[], &[]).await;
    let command = pb::Workflow {
        name: "run".into(),
        kind: Some(pb::workflow::Kind::Command(pb::CommandWorkflow {
            argv: strs(&["true"]),
            ..Default::default()
        })),
        ..Default::default()
    };
    let s = create_wf(&editor, command.clone())
        .await
        .expect_err("editor");
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("admin"), "{s:?}");
    create_wait(&editor, "pause", 10).await;
    create_wf(&server, command).await.expect("admin");
}

#[tokio::test]
async fn revocation_and_expiry_take_effect_at_once() {
    let server = TestServer::start().await;
    let (viewer, _) = token_conn(&server, "short", pb::Role::Viewer, &[], &[]).await;
    list_envs(&viewer, 0, "").await.expect("valid token");
    let revoked = server
        .tokens()
        .revoke_token(pb::RevokeTokenRequest {
            name: "short".into(),
        })
        .await
        .expect("revoke")
        .into_inner()
        .token
        .expect("token");
    assert!(revoked.revoke_time.is_some());
    let s = list_envs(&viewer, 0, "").await.expect_err("revoked");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    // Expiry.
    let made = server
        .tokens()
        .create_token(pb::CreateTokenRequest {
            name: "brief".into(),
            role: pb::Role::Viewer as i32,
            ttl: Some(dur(300)),
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner();
    let brief = connect(&server.addr.to_string(), &made.secret);
    list_envs(&brief, 0, "").await.expect("before expiry");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = list_envs(&brief, 0, "").await.expect_err("expired");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    // Listing shows tokens, never secrets; names are unique forever.
    let list = server
        .tokens()
        .list_tokens(pb::ListTokensRequest::default())
        .await
        .expect("list")
        .into_inner();
    let names: Vec<&str> = list.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["brief", "short", "test-admin"]);
    assert!(!format!("{list:?}").contains(&made.secret));
    let again = server
        .tokens()
        .create_token(pb::CreateTokenRequest {
            name: "short".into(),
            role: pb::Role::Viewer as i32,
            ..Default::default()
        })
        .await
        .expect_err("name taken");
    assert_eq!(again.code(), Code::AlreadyExists);
    let bad = server
        .tokens()
        .create_token(pb::CreateTokenRequest {
            name: "Bad Name".into(),
            role: 0,
            environment_patterns: strs(&["p*d"]),
            ..Default::default()
        })
        .await;
    expect_invalid(bad, &["name", "role", "environment_patterns[0]"]);
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_throttled() {
    let server = TestServer::start().await;
    let bad = connect(&server.addr.to_string(), "pf_bbbbbbbbbbbbbbbb_wrong");
    let mut codes = Vec::new();
    for _ in 0..22 {
        codes.push(list_envs(&bad, 0, "").await.expect_err("bad").code());
    }
    assert_eq!(codes[0], Code::Unauthenticated);
    assert_eq!(codes[19], Code::Unauthenticated);
    assert_eq!(codes[21], Code::ResourceExhausted, "{codes:?}");
}

#[tokio::test]
async fn the_audit_log_records_every_decision_with_its_principal() {
    let server = TestServer::start().await;
    seed_parallel(&server, None).await;
    let (ci, secret) = token_conn(&server, "ci", pb::Role::Promoter, &[], &[]).await;
    let r = trigger(&ci, DEMO, "").await;
    // A denied change: a promoter may not create environments.
    create_env(&ci, environment("nope", pb::EnvironmentKind::NonProduction))
        .await
        .expect_err("denied");
    // An allowed call that fails.
    retry(&ci, &r.id).await.expect_err("not failed");
    let events = server
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest {
            actor: "token:ci".into(),
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner()
        .events;
    let seen: Vec<(&str, i32, &str)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.result, e.grpc_code.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "release.retry",
                pb::AuditResult::Error as i32,
                "FAILED_PRECONDITION"
            ),
            (
                "environment.create",
                pb::AuditResult::Denied as i32,
                "PERMISSION_DENIED"
            ),
            ("release.trigger", pb::AuditResult::Ok as i32, "OK"),
        ],
        "{events:#?}"
    );
    let trig = &events[2];
    assert_eq!(trig.actor_kind, "token");
    assert_eq!(trig.resource, "flow/parallel");
    assert_eq!(trig.flow, "parallel");
    assert!(trig.remote_address.starts_with("127.0.0.1:"), "{trig:?}");
    assert_eq!(events[0].resource, format!("release/{}", r.id));
    // Anonymous attempts are recorded too, and no secret anywhere.
    let anonymous = conn(server.raw.clone(), Credentials::none());
    create_env(
        &anonymous,
        environment("x", pb::EnvironmentKind::NonProduction),
    )
    .await
    .expect_err("anonymous");
    let all = server
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest {
            result: pb::AuditResult::Denied as i32,
            ..Default::default()
        })
        .await
        .expect("audit")
        .into_inner();
    assert_eq!(all.events.len(), 2, "{all:#?}");
    assert_eq!(all.events[0].actor, "");
    assert_eq!(all.events[0].actor_kind, "none");
    assert_eq!(all.events[0].grpc_code, "UNAUTHENTICATED");
    let everything = server
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .expect("audit")
        .into_inner();
    let text = format!("{everything:?}");
    assert!(!text.contains(&secret) && !text.contains(&server.db.token));
    // Token creation itself is audited, by the admin.
    assert!(
        everything.events.iter().any(|e| e.action == "token.create"
            && e.actor == "token:test-admin"
            && e.resource == "token/ci"),
        "{everything:#?}"
    );
    // Catalog writes name their object: the environment also in its column.
    let row = |action: &str, resource: &str| {
        everything
            .events
            .iter()
            .find(|e| e.action == action && e.resource == resource)
            .unwrap_or_else(|| panic!("no {action} of {resource}: {everything:#?}"))
    };
    assert_eq!(
        row("environment.create", "environment/prod-eu").environment,
        "prod-eu"
    );
    assert_eq!(
        row("product.create", &format!("product/{DEMO}")).result,
        pb::AuditResult::Ok as i32
    );
    assert_eq!(row("flow.edit", "flow/parallel").flow, "parallel");
    // Reads are not audited; only admins read the log.
    assert!(
        everything
            .events
            .iter()
            .all(|e| !e.action.ends_with(".list"))
    );
    let s = ci
        .audit()
        .list_audit_events(pb::ListAuditEventsRequest::default())
        .await
        .expect_err("promoter");
    assert_eq!(s.code(), Code::PermissionDenied);
}

/// A fresh `promoflow serve` refuses anonymous changes and writes its
/// first admin token, mode 0600, which then works; `--auth none` is open.
#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_server_makes_its_first_admin_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
    let mut config = promoflow::config::ServerConfig::for_tests(db.clone());
    config.data_dir = dir.path().join("data");
    let start = |config: promoflow::config::ServerConfig| async move {
        let (listener, addr) = promoflow::server::bind(config.listen).await.expect("bind");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(promoflow::server::run(config, listener, async move {
            let _ = rx.await;
        }));
        let raw = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_lazy();
        promoflow::cli::wait_ready(&raw, READY_TIMEOUT)
            .await
            .expect("ready");
        (raw, tx, handle)
    };
    let (raw, tx, handle) = start(config.clone()).await;
    let file = dir.path().join("data").join("admin.token");
    let meta = std::fs::metadata(&file).expect("admin.token written");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&file)
        .expect("read")
        .trim()
        .to_string();
    let anonymous = conn(raw.clone(), Credentials::none());
    let s = create_env(
        &anonymous,
        environment("dev", pb::EnvironmentKind::NonProduction),
    )
    .await
    .expect_err("anonymous change");
    assert_eq!(s.code(), Code::Unauthenticated);
    let admin = conn(raw.clone(), Credentials::bearer(&token).expect("token"));
    create_env(
        &admin,
        environment("dev", pb::EnvironmentKind::NonProduction),
    )
    .await
    .expect("admin change");
    let _ = tx.send(());
    handle.await.expect("join").expect("stopped");

    // Restarted on the same store: no second token, the file stays.
    let (_raw, tx, handle) = start(config).await;
    let again = std::fs::read_to_string(&file)
        .expect("read")
        .trim()
        .to_string();
    assert_eq!(again, token);
    let _ = tx.send(());
    handle.await.expect("join").expect("stopped");

    let server = TestServer::start_with(|c| c.auth = promoflow::auth::AuthMode::None).await;
    let anonymous = conn(server.raw.clone(), Credentials::none());
    create_env(
        &anonymous,
        environment("open", pb::EnvironmentKind::NonProduction),
    )
    .await
    .expect("--auth none needs no credential");
}
