//! Request validation across the services, on SQLite or PostgreSQL (see
//! `common`): text the database cannot store and malformed names are the
//! caller's mistake, answered INVALID_ARGUMENT naming the field, the same way
//! on both backends, and change nothing.

mod common;

use std::collections::HashMap;

use common::*;
use futures::future::BoxFuture;
use promoflow::proto::v1 as pb;
use tonic::{Code, Response, Status};

/// One request expected to fail at `field`.
struct Case {
    what: &'static str,
    field: String,
    call: BoxFuture<'static, Result<(), Status>>,
}

fn case<T: Send + 'static>(
    what: &'static str,
    field: impl Into<String>,
    call: impl Future<Output = Result<Response<T>, Status>> + Send + 'static,
) -> Case {
    Case {
        what,
        field: field.into(),
        call: Box::pin(async move { call.await.map(|_| ()) }),
    }
}

/// Runs every case, asserting INVALID_ARGUMENT with exactly its field (and,
/// when given, a description containing `needle`).
async fn expect_invalid_fields(cases: Vec<Case>, needle: Option<&str>) {
    for c in cases {
        let status = expect_code(c.call.await, Code::InvalidArgument);
        assert_eq!(
            violation_fields(&status),
            [c.field.as_str()],
            "{}: {status:?}",
            c.what
        );
        if let Some(needle) = needle {
            assert!(
                status.message().contains(needle),
                "{}: {:?} should contain {needle:?}",
                c.what,
                status.message()
            );
        }
    }
}

fn wait_workflow(name: &str) -> pb::Workflow {
    pb::Workflow {
        name: name.into(),
        kind: Some(pb::workflow::Kind::Wait(pb::WaitWorkflow {
            duration: Some(dur(1000)),
        })),
        ..Default::default()
    }
}

fn two_step_flow(name: &str) -> pb::Flow {
    pb::Flow {
        description: "dev then qa".into(),
        ..flow(name, "dev", vec![step("qa", &["dev"])])
    }
}

/// Environments dev and qa, workflow `wait`, flow `f` (dev → qa) and
/// product `p` with an application in each environment.
async fn small_world(server: &TestServer) {
    create_envs(server, &["dev", "qa"], pb::EnvironmentKind::NonProduction).await;
    create_wf(server, wait_workflow("wait"))
        .await
        .expect("create workflow");
    create_flow(server, two_step_flow("f"))
        .await
        .expect("create flow");
    create_product_in(server, "p", &["dev", "qa"], |_| "1.0.0").await;
}

/// Everything the world holds, as (kind, name, version and the texts the
/// cases try to change): equal before and after means nothing changed.
async fn snapshot(server: &TestServer) -> Vec<String> {
    let mut out = Vec::new();
    let envs = server
        .environments()
        .list_environments(pb::ListEnvironmentsRequest::default())
        .await
        .expect("list environments")
        .into_inner()
        .environments;
    out.extend(envs.iter().map(|e| {
        format!(
            "env {} v{} {:?} {:?}",
            e.name, e.version, e.description, e.labels
        )
    }));
    let wfs = server
        .workflows()
        .list_workflows(pb::ListWorkflowsRequest::default())
        .await
        .expect("list workflows")
        .into_inner()
        .workflows;
    out.extend(
        wfs.iter()
            .map(|w| format!("workflow {} v{}", w.name, w.version)),
    );
    let flows = server
        .flows()
        .list_flows(pb::ListFlowsRequest::default())
        .await
        .expect("list flows")
        .into_inner()
        .flows;
    out.extend(
        flows
            .iter()
            .map(|f| format!("flow {} v{} {:?}", f.name, f.version, f.description)),
    );
    let products = server
        .products()
        .list_products(pb::ListProductsRequest::default())
        .await
        .expect("list products")
        .into_inner()
        .products;
    for p in &products {
        out.push(format!(
            "product {} v{} {:?}",
            p.name, p.version, p.description
        ));
        out.extend(p.applications.iter().map(|a| {
            format!(
                "app {} {} {:?}",
                a.environment,
                a.version,
                a.last_commit.as_ref().map(|c| &c.message)
            )
        }));
    }
    let releases = server
        .releases()
        .list_releases(pb::ListReleasesRequest::default())
        .await
        .expect("list releases")
        .into_inner()
        .releases;
    out.extend(releases.iter().map(|r| format!("release {}", r.id)));
    out
}

const NUL: &str = "a\0b";

#[tokio::test]
async fn nul_in_free_text_is_invalid_argument_and_changes_nothing() {
    let server = TestServer::start().await;
    small_world(&server).await;
    let before = snapshot(&server).await;

    let env = |description: &str, labels: &[(&str, &str)]| pb::Environment {
        name: "staging".into(),
        description: description.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    };
    let mut updated_dev = env(NUL, &[]);
    updated_dev.name = "dev".into();
    let mut http = wait_workflow("notify");
    http.kind = Some(pb::workflow::Kind::Http(pb::HttpWorkflow {
        url: format!("http://127.0.0.1:9/{NUL}"),
        headers: [("x-team".to_string(), NUL.to_string())].into(),
        ..Default::default()
    }));
    let mut command = wait_workflow("run");
    command.kind = Some(pb::workflow::Kind::Command(pb::CommandWorkflow {
        argv: vec!["echo".into(), NUL.into()],
        ..Default::default()
    }));
    let mut described = wait_workflow("wait");
    described.description = NUL.into();
    let mut flow_description = two_step_flow("g");
    flow_description.description = NUL.into();
    let mut flow_annotation = two_step_flow("g");
    flow_annotation.annotations = [("team".to_string(), NUL.to_string())].into();
    let product = |description: &str, version: &str| pb::Product {
        name: "q".into(),
        description: description.into(),
        applications: vec![pb::Application {
            environment: "dev".into(),
            name: "app".into(),
            version: version.into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let trigger = |version: &str, request_id: &str, initiator: &str, message: &str| {
        pb::TriggerReleaseRequest {
            flow: "f".into(),
            product: "p".into(),
            version: version.into(),
            request_id: request_id.into(),
            initiator: initiator.into(),
            message: message.into(),
            source_commit: String::new(),
        }
    };
    let report = |version: &str, commit_message: &str| pb::ReportDeploymentRequest {
        product: "p".into(),
        environment: "dev".into(),
        version: version.into(),
        commit: Some(pb::Commit {
            sha: "abc".into(),
            message: commit_message.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };

    let (mut e, mut w, mut f, mut p, mut r) = (
        server.environments(),
        server.workflows(),
        server.flows(),
        server.products(),
        server.releases(),
    );
    let cases = vec![
        case("environment description", "environment.description", {
            let req = pb::CreateEnvironmentRequest {
                environment: Some(env(NUL, &[])),
            };
            let mut c = e.clone();
            async move { c.create_environment(req).await }
        }),
        case("label value", "environment.labels[team]", {
            let req = pb::CreateEnvironmentRequest {
                environment: Some(env("", &[("team", NUL)])),
            };
            let mut c = e.clone();
            async move { c.create_environment(req).await }
        }),
        case("label key", "environment.labels[a\\0b]", {
            let req = pb::CreateEnvironmentRequest {
                environment: Some(env("", &[(NUL, "v")])),
            };
            let mut c = e.clone();
            async move { c.create_environment(req).await }
        }),
        case("environment update", "environment.description", {
            let req = pb::UpdateEnvironmentRequest {
                environment: Some(updated_dev),
                expected_version: 1,
            };
            async move { e.update_environment(req).await }
        }),
        case("workflow url", "workflow.http.url", {
            let mut http = http.clone();
            if let Some(pb::workflow::Kind::Http(h)) = &mut http.kind {
                h.headers.clear();
            }
            let mut c = w.clone();
            async move {
                c.create_workflow(pb::CreateWorkflowRequest {
                    workflow: Some(http),
                })
                .await
            }
        }),
        case("workflow header", "workflow.http.headers[x-team]", {
            let mut http = http.clone();
            if let Some(pb::workflow::Kind::Http(h)) = &mut http.kind {
                h.url = "http://127.0.0.1:9/".into();
            }
            let mut c = w.clone();
            async move {
                c.create_workflow(pb::CreateWorkflowRequest {
                    workflow: Some(http),
                })
                .await
            }
        }),
        case("command argv", "workflow.command.argv[1]", {
            let mut c = w.clone();
            async move {
                c.create_workflow(pb::CreateWorkflowRequest {
                    workflow: Some(command),
                })
                .await
            }
        }),
        case("workflow update", "workflow.description", async move {
            w.update_workflow(pb::UpdateWorkflowRequest {
                workflow: Some(described),
                expected_version: 1,
            })
            .await
        }),
        case("flow description", "flow.description", {
            let mut c = f.clone();
            async move {
                c.create_flow(pb::CreateFlowRequest {
                    flow: Some(flow_description),
                })
                .await
            }
        }),
        case("flow annotation", "flow.annotations.team", {
            let mut c = f.clone();
            async move {
                c.create_flow(pb::CreateFlowRequest {
                    flow: Some(flow_annotation),
                })
                .await
            }
        }),
        case("edit settings", "flow.description", async move {
            f.edit_flow(pb::EditFlowRequest {
                name: "f".into(),
                expected_version: 1,
                edits: vec![pb::FlowEdit {
                    edit: Some(pb::flow_edit::Edit::SetSettings(
                        pb::flow_edit::SetSettings {
                            description: Some(NUL.into()),
                            ..Default::default()
                        },
                    )),
                }],
            })
            .await
        }),
        case("product description", "product.description", {
            let req = pb::CreateProductRequest {
                product: Some(product(NUL, "")),
            };
            let mut c = p.clone();
            async move { c.create_product(req).await }
        }),
        case("application version", "product.applications[0].version", {
            let req = pb::CreateProductRequest {
                product: Some(product("", NUL)),
            };
            let mut c = p.clone();
            async move { c.create_product(req).await }
        }),
        case("reported version", "version", {
            let req = report(NUL, "");
            let mut c = p.clone();
            async move { c.report_deployment(req).await }
        }),
        case("commit message", "commit.message", {
            let req = report("2.0.0", NUL);
            async move { p.report_deployment(req).await }
        }),
        case("trigger message", "message", {
            let req = trigger("", "", "", NUL);
            let mut c = r.clone();
            async move { c.trigger_release(req).await }
        }),
        case("trigger initiator", "initiator", {
            let req = trigger("", "", NUL, "");
            let mut c = r.clone();
            async move { c.trigger_release(req).await }
        }),
        case("trigger version", "version", {
            let req = trigger(NUL, "", "", "");
            let mut c = r.clone();
            async move { c.trigger_release(req).await }
        }),
        case("trigger request id", "request_id", {
            let req = trigger("", NUL, "", "");
            let mut c = r.clone();
            async move { c.trigger_release(req).await }
        }),
        case("release id", "release_id", {
            let mut c = r.clone();
            async move {
                c.get_release(pb::GetReleaseRequest {
                    release_id: NUL.into(),
                })
                .await
            }
        }),
        case("terminate reason", "reason", {
            let mut c = r.clone();
            async move {
                c.terminate_release(pb::TerminateReleaseRequest {
                    release_id: "0190".into(),
                    reason: NUL.into(),
                })
                .await
            }
        }),
        case("approval comment", "comment", async move {
            r.approve_environment(pb::ApproveEnvironmentRequest {
                release_id: "0190".into(),
                environment: "qa".into(),
                approve: true,
                comment: NUL.into(),
            })
            .await
        }),
    ];
    expect_invalid_fields(cases, Some("NUL")).await;
    assert_eq!(
        snapshot(&server).await,
        before,
        "a refused request changed data"
    );
}

#[tokio::test]
async fn malformed_names_are_invalid_argument() {
    let server = TestServer::start().await;
    // A name that is not a DNS label, one the database could not even
    // store, and none at all.
    for (bad, needle) in [
        ("Bad_Name", "is not a valid name"),
        ("dev\0", "is not a valid name"),
        ("", "is required"),
    ] {
        let name = || bad.to_string();
        let (mut e, mut w, mut f, mut p) = (
            server.environments(),
            server.workflows(),
            server.flows(),
            server.products(),
        );
        let mut batch = vec![
            case("GetFlow", "name", {
                let mut c = f.clone();
                let req = pb::GetFlowRequest {
                    name: name(),
                    version: 0,
                };
                async move { c.get_flow(req).await }
            }),
            case("DeleteFlow", "name", {
                let mut c = f.clone();
                let req = pb::DeleteFlowRequest {
                    name: name(),
                    expected_version: 0,
                };
                async move { c.delete_flow(req).await }
            }),
            case("ExportFlow", "name", {
                let mut c = f.clone();
                let req = pb::ExportFlowRequest {
                    name: name(),
                    version: 0,
                };
                async move { c.export_flow(req).await }
            }),
            case("ListFlowVersions", "name", {
                let mut c = f.clone();
                let req = pb::ListFlowVersionsRequest {
                    name: name(),
                    ..Default::default()
                };
                async move { c.list_flow_versions(req).await }
            }),
            case("RenderFlow", "name", {
                let mut c = f.clone();
                let req = pb::RenderFlowRequest {
                    name: name(),
                    ..Default::default()
                };
                async move { c.render_flow(req).await }
            }),
            case("CopyFlow source", "source", {
                let mut c = f.clone();
                let req = pb::CopyFlowRequest {
                    source: name(),
                    version: 0,
                    new_name: "copy".into(),
                };
                async move { c.copy_flow(req).await }
            }),
            case("CopyFlow new_name", "new_name", {
                let mut c = f.clone();
                let req = pb::CopyFlowRequest {
                    source: "f".into(),
                    version: 0,
                    new_name: name(),
                };
                async move { c.copy_flow(req).await }
            }),
            case("EditFlow", "name", {
                let req = pb::EditFlowRequest {
                    name: name(),
                    expected_version: 1,
                    edits: Vec::new(),
                };
                async move { f.edit_flow(req).await }
            }),
            case("GetEnvironment", "name", {
                let mut c = e.clone();
                let req = pb::GetEnvironmentRequest { name: name() };
                async move { c.get_environment(req).await }
            }),
            case("DeleteEnvironment", "name", {
                let req = pb::DeleteEnvironmentRequest {
                    name: name(),
                    expected_version: 0,
                };
                async move { e.delete_environment(req).await }
            }),
            case("GetWorkflow", "name", {
                let mut c = w.clone();
                let req = pb::GetWorkflowRequest { name: name() };
                async move { c.get_workflow(req).await }
            }),
            case("DeleteWorkflow", "name", {
                let req = pb::DeleteWorkflowRequest {
                    name: name(),
                    expected_version: 0,
                };
                async move { w.delete_workflow(req).await }
            }),
            case("GetProduct", "name", {
                let mut c = p.clone();
                let req = pb::GetProductRequest { name: name() };
                async move { c.get_product(req).await }
            }),
            case("DeleteProduct", "name", {
                let req = pb::DeleteProductRequest {
                    name: name(),
                    expected_version: 0,
                };
                async move { p.delete_product(req).await }
            }),
        ];
        // Filters and optional references: empty means "any" or "none".
        if !bad.is_empty() {
            let mut r = server.releases();
            batch.push(case("ListReleases product", "product", {
                let mut c = r.clone();
                let req = pb::ListReleasesRequest {
                    product: name(),
                    ..Default::default()
                };
                async move { c.list_releases(req).await }
            }));
            batch.push(case("ListReleases flow", "flow", {
                let mut c = r.clone();
                let req = pb::ListReleasesRequest {
                    flow: name(),
                    ..Default::default()
                };
                async move { c.list_releases(req).await }
            }));
            batch.push(case("ApproveEnvironment", "environment", {
                let req = pb::ApproveEnvironmentRequest {
                    release_id: "0190".into(),
                    environment: name(),
                    approve: true,
                    comment: String::new(),
                };
                async move { r.approve_environment(req).await }
            }));
        }
        expect_invalid_fields(batch, Some(needle)).await;
    }
}
