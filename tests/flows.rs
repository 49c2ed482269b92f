//! FlowService against a real server, on SQLite or PostgreSQL (see
//! `common`): the quick-start flows built by edits, validation, edits,
//! concurrency, YAML, rendering, referential rules and limits, following
//! `proto/promoflow/v1/flow.proto`.

mod common;

use common::*;
use pb::flow_edit::Edit as E;
use promoflow::proto::v1 as pb;
use tonic::{Code, Status};

// ------------------------------------------------------------------ helpers

const ENVS: [&str; 6] = ["dev", "qa", "staging", "prod", "prod-eu", "prod-asia"];

async fn world() -> TestServer {
    let server = TestServer::start().await;
    create_envs(&server, &ENVS, pb::EnvironmentKind::NonProduction).await;
    server
}

fn add_after(after: &str, envs: &[&str]) -> pb::FlowEdit {
    pb::FlowEdit {
        edit: Some(E::AddEnvironments(pb::flow_edit::AddEnvironments {
            after: after.into(),
            environments: strs(envs),
            policy: None,
        })),
    }
}

fn set_deps(env: &str, deps: &[&str]) -> pb::FlowEdit {
    pb::FlowEdit {
        edit: Some(E::SetDependencies(pb::flow_edit::SetDependencies {
            environment: env.into(),
            depends_on: strs(deps),
        })),
    }
}

fn remove(env: &str, mode: Option<pb::flow_edit::remove_environment::Mode>) -> pb::FlowEdit {
    pb::FlowEdit {
        edit: Some(E::RemoveEnvironment(pb::flow_edit::RemoveEnvironment {
            environment: env.into(),
            mode,
        })),
    }
}

async fn copy(flows: &TestServer, source: &str, new_name: &str) -> Res<pb::Flow> {
    flows
        .flows()
        .copy_flow(pb::CopyFlowRequest {
            source: source.into(),
            version: 0,
            new_name: new_name.into(),
        })
        .await
        .map(|r| r.into_inner().flow.expect("flow"))
}

async fn versions(flows: &TestServer, name: &str) -> Vec<i64> {
    flows
        .flows()
        .list_flow_versions(pb::ListFlowVersionsRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .expect("list versions")
        .into_inner()
        .versions
        .iter()
        .map(|f| f.version)
        .collect()
}

async fn flow_names(flows: &TestServer) -> Vec<String> {
    flows
        .flows()
        .list_flows(pb::ListFlowsRequest::default())
        .await
        .expect("list flows")
        .into_inner()
        .flows
        .into_iter()
        .map(|f| f.name)
        .collect()
}

async fn export(flows: &TestServer, name: &str) -> String {
    flows
        .flows()
        .export_flow(pb::ExportFlowRequest {
            name: name.into(),
            version: 0,
        })
        .await
        .expect("export")
        .into_inner()
        .yaml
}

async fn import(flows: &TestServer, yaml: &str, replace: bool) -> Res<pb::Flow> {
    flows
        .flows()
        .import_flow(pb::ImportFlowRequest {
            yaml: yaml.into(),
            replace,
        })
        .await
        .map(|r| r.into_inner().flow.expect("flow"))
}

async fn render(flows: &TestServer, name: &str, format: pb::RenderFormat) -> String {
    flows
        .flows()
        .render_flow(pb::RenderFlowRequest {
            name: name.into(),
            format: format as i32,
            ..Default::default()
        })
        .await
        .expect("render")
        .into_inner()
        .text
}

/// The (environment, depends_on) pairs of a flow's steps, in order.
fn graph(f: &pb::Flow) -> Vec<(String, Vec<String>)> {
    f.steps
        .iter()
        .map(|s| (s.environment.clone(), s.depends_on.clone()))
        .collect()
}

fn g(pairs: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    pairs
        .iter()
        .map(|(e, d)| (e.to_string(), strs(d)))
        .collect()
}

/// The descriptions of `status`'s violations, in order.
fn descriptions(status: &Status) -> Vec<String> {
    violations(status).into_iter().map(|(_, d)| d).collect()
}

async fn validate(flows: &TestServer, f: pb::Flow) -> pb::ValidateFlowResponse {
    flows
        .flows()
        .validate_flow(pb::ValidateFlowRequest { flow: Some(f) })
        .await
        .expect("validate")
        .into_inner()
}

fn waves(plan: &Option<pb::Plan>) -> Vec<Vec<String>> {
    plan.as_ref()
        .expect("plan")
        .waves
        .iter()
        .map(|w| w.environments.clone())
        .collect()
}

/// Builds the three quick-start flows exactly as a user clicks:
/// `sequential` dev → qa → prod, `parallel` dev → qa → {prod, prod-eu,
/// prod-asia} ("save as" the sequential one, then add), `dependencies`
/// dev → {qa, staging} → prod.
async fn quick_start(flows: &TestServer) {
    let f = create_flow(flows, flow("sequential", "dev", vec![step("qa", &["dev"])]))
        .await
        .expect("create sequential");
    assert_eq!(f.version, 1);
    let f = edit_flow(flows, "sequential", 1, vec![add_after("qa", &["prod"])])
        .await
        .expect("add prod");
    assert_eq!(f.version, 2);

    let f = copy(flows, "sequential", "parallel").await.expect("copy");
    assert_eq!(f.version, 1);
    assert_eq!(graph(&f), g(&[("qa", &["dev"]), ("prod", &["qa"])]));
    let f = edit_flow(
        flows,
        "parallel",
        1,
        vec![add_after("qa", &["prod-eu", "prod-asia"])],
    )
    .await
    .expect("add parallel prods");
    assert_eq!(f.version, 2);

    copy(flows, "sequential", "dependencies")
        .await
        .expect("copy");
    let f = edit_flow(
        flows,
        "dependencies",
        1,
        vec![add_after("dev", &["staging"])],
    )
    .await
    .expect("add staging");
    assert_eq!(f.version, 2);
    let f = edit_flow(
        flows,
        "dependencies",
        2,
        vec![set_deps("prod", &["qa", "staging"])],
    )
    .await
    .expect("fan-in");
    assert_eq!(f.version, 3);
}

// -------------------------------------------------------------- quick start

#[tokio::test]
async fn quick_start_flows_built_by_edits() {
    let server = world().await;
    let flows = &server;
    quick_start(flows).await;

    let seq = get_flow(flows, "sequential", 0).await.unwrap();
    assert_eq!(seq.version, 2);
    assert_eq!(seq.trigger_environment, "dev");
    assert_eq!(graph(&seq), g(&[("qa", &["dev"]), ("prod", &["qa"])]));

    let par = get_flow(flows, "parallel", 0).await.unwrap();
    assert_eq!(par.version, 2);
    assert_eq!(
        graph(&par),
        g(&[
            ("qa", &["dev"]),
            ("prod", &["qa"]),
            ("prod-eu", &["qa"]),
            ("prod-asia", &["qa"]),
        ])
    );

    let dep = get_flow(flows, "dependencies", 0).await.unwrap();
    assert_eq!(dep.version, 3);
    assert_eq!(
        graph(&dep),
        g(&[
            ("qa", &["dev"]),
            ("prod", &["qa", "staging"]),
            ("staging", &["dev"])
        ])
    );

    // Versions: newest first, old ones still readable and unchanged.
    assert_eq!(versions(flows, "dependencies").await, [3, 2, 1]);
    assert_eq!(versions(flows, "sequential").await, [2, 1]);
    let v1 = get_flow(flows, "dependencies", 1).await.unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(graph(&v1), g(&[("qa", &["dev"]), ("prod", &["qa"])]));
    let v2 = get_flow(flows, "dependencies", 2).await.unwrap();
    assert_eq!(
        graph(&v2),
        g(&[("qa", &["dev"]), ("prod", &["qa"]), ("staging", &["dev"])])
    );
    expect_code(get_flow(flows, "dependencies", 4).await, Code::NotFound);
    assert_eq!(
        flow_names(flows).await,
        ["dependencies", "parallel", "sequential"]
    );

    // Plans.
    let r = validate(flows, dep.clone()).await;
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(
        waves(&r.plan),
        vec![strs(&["dev"]), strs(&["qa", "staging"]), strs(&["prod"])]
    );
    let r = validate(flows, par).await;
    assert_eq!(
        waves(&r.plan),
        vec![
            strs(&["dev"]),
            strs(&["qa"]),
            strs(&["prod", "prod-asia", "prod-eu"])
        ]
    );
    let r = validate(flows, seq).await;
    assert_eq!(
        waves(&r.plan),
        vec![strs(&["dev"]), strs(&["qa"]), strs(&["prod"])]
    );
}

// --------------------------------------------------------------- validation

fn base(name: &str) -> pb::Flow {
    flow(
        name,
        "dev",
        vec![step("qa", &["dev"]), step("prod", &["qa"])],
    )
}

/// Creating `f` fails with exactly `fields` (under `flow.`), nothing is
/// saved, and ValidateFlow reports the same fields (without `flow.`).
async fn rejected(flows: &TestServer, f: pb::Flow, fields: &[&str]) -> Status {
    let status = expect_invalid(create_flow(flows, f.clone()).await, fields);
    assert!(flow_names(flows).await.is_empty(), "nothing saved");
    if !f.name.is_empty() {
        // A malformed name is refused as such before any lookup.
        let code = if promoflow::domain::is_dns_label(&f.name) {
            Code::NotFound
        } else {
            Code::InvalidArgument
        };
        expect_code(get_flow(flows, &f.name, 0).await, code);
    }
    let r = validate(flows, f).await;
    let mut got: Vec<String> = r
        .violations
        .iter()
        .map(|v| format!("flow.{}", v.field))
        .collect();
    got.sort();
    let mut want = strs(fields);
    want.sort();
    assert_eq!(got, want, "ValidateFlow reports the same violations");
    assert!(r.plan.is_none());
    status
}

#[tokio::test]
async fn validation_rules_one_at_a_time() {
    let server = world().await;
    create_wait(&server, "soak", 10).await;
    let flows = &server;

    // An unset flow is checked as an empty one: the required fields.
    let r = flows
        .flows()
        .validate_flow(pb::ValidateFlowRequest { flow: None })
        .await
        .expect("validate an unset flow")
        .into_inner();
    let fields: Vec<&str> = r.violations.iter().map(|v| v.field.as_str()).collect();
    for field in ["name", "trigger_environment", "steps"] {
        assert!(fields.contains(&field), "{field} in {fields:?}");
    }
    assert!(r.plan.is_none());

    // The base flow is valid (checked, not saved).
    let r = validate(flows, base("ok")).await;
    assert!(r.violations.is_empty(), "{:?}", r.violations);

    let mut f = base("Bad_Name");
    f.name = "Bad_Name".into();
    rejected(flows, f, &["flow.name"]).await;

    let f = flow(
        "f",
        "mars",
        vec![step("qa", &["mars"]), step("prod", &["qa"])],
    );
    let s = rejected(flows, f, &["flow.trigger_environment"]).await;
    assert!(descriptions(&s)[0].contains("mars"), "{s:?}");

    let f = flow(
        "f",
        "dev",
        vec![step("qa", &["dev"]), step("mars", &["qa"])],
    );
    rejected(flows, f, &["flow.steps[1].environment"]).await;

    let f = flow("f", "dev", vec![step("qa", &["dev"]), step("qa", &["dev"])]);
    rejected(flows, f, &["flow.steps[1].environment"]).await;

    let f = flow("f", "dev", vec![step("qa", &["dev"]), step("dev", &["qa"])]);
    rejected(flows, f, &["flow.steps[1].environment"]).await;

    let f = flow("f", "dev", vec![step("qa", &["dev"]), step("prod", &[])]);
    rejected(flows, f, &["flow.steps[1].depends_on"]).await;

    let f = flow(
        "f",
        "dev",
        vec![step("qa", &["dev"]), step("prod", &["staging"])],
    );
    rejected(flows, f, &["flow.steps[1].depends_on[0]"]).await;

    let f = flow(
        "f",
        "dev",
        vec![step("qa", &["dev"]), step("prod", &["qa", "prod"])],
    );
    rejected(flows, f, &["flow.steps[1].depends_on[1]"]).await;

    let f = flow(
        "f",
        "dev",
        vec![step("qa", &["dev"]), step("prod", &["qa", "qa"])],
    );
    rejected(flows, f, &["flow.steps[1].depends_on[1]"]).await;

    let f = flow(
        "f",
        "dev",
        vec![
            step("qa", &["dev", "prod"]),
            step("staging", &["qa"]),
            step("prod", &["staging"]),
        ],
    );
    let s = expect_code(create_flow(flows, f.clone()).await, Code::InvalidArgument);
    let fields = violation_fields(&s);
    assert_eq!(fields.len(), 1, "{s:?}");
    assert!(fields[0].starts_with("flow.steps["), "{s:?}");
    let d = &descriptions(&s)[0];
    for env in ["qa", "staging", "prod"] {
        assert!(d.contains(env), "cycle description {d:?} names {env}");
    }
    assert!(!d.contains("dev"), "dev is not on the cycle: {d:?}");
    let r = validate(flows, f).await;
    assert_eq!(r.violations.len(), 1);
    assert!(flow_names(flows).await.is_empty());

    let mut f = base("f");
    f.steps[1].policy = Some(pb::Policy {
        post_action: "nope".into(),
        ..Default::default()
    });
    rejected(flows, f.clone(), &["flow.steps[1].policy.post_action"]).await;
    // The same with an existing workflow is fine.
    f.steps[1].policy.as_mut().unwrap().post_action = "soak".into();
    assert!(validate(flows, f).await.violations.is_empty());

    let f = flow("f", "dev", vec![]);
    rejected(flows, f, &["flow.steps"]).await;

    let mut f = base("f");
    f.promotion_timeout = Some(prost_types::Duration {
        seconds: 0,
        nanos: 0,
    });
    rejected(flows, f, &["flow.promotion_timeout"]).await;

    // Several at once: all reported.
    let mut f = flow(
        "Bad",
        "dev",
        vec![
            step("qa", &["dev"]),
            step("mars", &["qa"]),
            step("prod", &["prod"]),
        ],
    );
    f.promotion_timeout = Some(prost_types::Duration {
        seconds: 0,
        nanos: 0,
    });
    rejected(
        flows,
        f,
        &[
            "flow.name",
            "flow.steps[1].environment",
            "flow.steps[2].depends_on[0]",
            "flow.promotion_timeout",
        ],
    )
    .await;
}

#[tokio::test]
async fn invalid_update_changes_nothing() {
    let server = world().await;
    let flows = &server;
    quick_start(flows).await;
    let before = get_flow(flows, "parallel", 0).await.unwrap();
    let mut f = before.clone();
    f.steps[1].depends_on = strs(&["mars"]);
    let r = flows
        .flows()
        .update_flow(pb::UpdateFlowRequest {
            flow: Some(f),
            expected_version: before.version,
        })
        .await;
    expect_invalid(r, &["flow.steps[1].depends_on[0]"]);
    assert_eq!(get_flow(flows, "parallel", 0).await.unwrap(), before);
    assert_eq!(versions(flows, "parallel").await, [2, 1]);
}

// -------------------------------------------------------------------- edits

#[tokio::test]
async fn remove_environment_modes() {
    use pb::flow_edit::remove_environment::Mode;
    let server = world().await;
    let flows = &server;
    quick_start(flows).await;

    // Without a mode while it has dependents: rejected, nothing saved.
    let s = expect_invalid(
        edit_flow(flows, "parallel", 2, vec![remove("qa", None)]).await,
        &["edits[0].remove_environment"],
    );
    assert!(s.message().contains("prod") || descriptions(&s)[0].contains("prod"));
    assert_eq!(versions(flows, "parallel").await, [2, 1]);

    // Reconnect: the children depend on dev instead.
    let f = edit_flow(
        flows,
        "parallel",
        2,
        vec![remove("qa", Some(Mode::ReconnectTo("dev".into())))],
    )
    .await
    .expect("reconnect");
    assert_eq!(f.version, 3);
    assert_eq!(
        graph(&f),
        g(&[
            ("prod", &["dev"]),
            ("prod-eu", &["dev"]),
            ("prod-asia", &["dev"])
        ])
    );

    // Without a mode and no dependents: just removed.
    let f = edit_flow(flows, "parallel", 3, vec![remove("prod-asia", None)])
        .await
        .expect("leaf removal");
    assert_eq!(graph(&f), g(&[("prod", &["dev"]), ("prod-eu", &["dev"])]));

    // Remove downstream: dev → {qa, staging} → prod; removing qa removes prod.
    let f = edit_flow(
        flows,
        "dependencies",
        3,
        vec![remove("qa", Some(Mode::RemoveDownstream(true)))],
    )
    .await
    .expect("remove downstream");
    assert_eq!(f.version, 4);
    assert_eq!(graph(&f), g(&[("staging", &["dev"])]));

    // remove_downstream false is rejected.
    expect_invalid(
        edit_flow(
            flows,
            "dependencies",
            4,
            vec![remove("staging", Some(Mode::RemoveDownstream(false)))],
        )
        .await,
        &["edits[0].remove_environment.remove_downstream"],
    );
    // Removing the last step leaves an invalid flow.
    expect_invalid(
        edit_flow(
            flows,
            "dependencies",
            4,
            vec![remove("staging", Some(Mode::RemoveDownstream(true)))],
        )
        .await,
        &["flow.steps"],
    );
    assert_eq!(versions(flows, "dependencies").await, [4, 3, 2, 1]);
}

#[tokio::test]
async fn bad_edits_save_nothing() {
    let server = world().await;
    let flows = &server;
    quick_start(flows).await;
    let before = get_flow(flows, "sequential", 0).await.unwrap();

    // An unknown `after`.
    let s = expect_code(
        edit_flow(
            flows,
            "sequential",
            2,
            vec![add_after("mars", &["staging"])],
        )
        .await,
        Code::InvalidArgument,
    );
    let fields = violation_fields(&s);
    assert!(
        !fields.is_empty() && fields.iter().all(|f| f.starts_with("edits[0]")),
        "{s:?}"
    );

    // The second edit is bad: the first is not saved either.
    let s = expect_code(
        edit_flow(
            flows,
            "sequential",
            2,
            vec![add_after("qa", &["staging"]), set_deps("prod-eu", &["qa"])],
        )
        .await,
        Code::InvalidArgument,
    );
    let fields = violation_fields(&s);
    assert!(
        !fields.is_empty() && fields.iter().all(|f| f.starts_with("edits[1]")),
        "{s:?}"
    );

    // Adding an environment that does not exist in the catalog.
    let s = expect_code(
        edit_flow(flows, "sequential", 2, vec![add_after("qa", &["mars"])]).await,
        Code::InvalidArgument,
    );
    assert!(
        violation_fields(&s)
            .iter()
            .all(|f| f.starts_with("edits[0]") || f.starts_with("flow.")),
        "{s:?}"
    );
    assert!(s.message().contains("mars") || descriptions(&s).iter().any(|d| d.contains("mars")));

    // Adding one already in the flow.
    let s = expect_code(
        edit_flow(flows, "sequential", 2, vec![add_after("dev", &["prod"])]).await,
        Code::InvalidArgument,
    );
    assert!(
        violation_fields(&s)
            .iter()
            .any(|f| f.starts_with("edits[0]")),
        "{s:?}"
    );

    // Empty edit list, expected_version 0.
    expect_invalid(edit_flow(flows, "sequential", 2, vec![]).await, &["edits"]);
    expect_invalid(
        edit_flow(flows, "sequential", 0, vec![add_after("qa", &["staging"])]).await,
        &["expected_version"],
    );
    // Stale version: ABORTED.
    let s = expect_code(
        edit_flow(flows, "sequential", 1, vec![add_after("qa", &["staging"])]).await,
        Code::Aborted,
    );
    assert!(s.message().contains('2'), "{s:?}");
    // Unknown flow.
    expect_code(
        edit_flow(flows, "nope", 1, vec![add_after("qa", &["staging"])]).await,
        Code::NotFound,
    );

    assert_eq!(get_flow(flows, "sequential", 0).await.unwrap(), before);
    assert_eq!(versions(flows, "sequential").await, [2, 1]);
}

#[tokio::test]
async fn concurrent_edits_have_one_winner() {
    let server = world().await;
    let flows = &server;
    quick_start(flows).await;
    let envs = ["staging", "prod-eu", "prod-asia"];
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = server.channel.clone();
        let env = envs[i % envs.len()];
        tasks.push(tokio::spawn(async move {
            edit_flow(&c, "sequential", 2, vec![add_after("qa", &[env])]).await
        }));
    }
    let mut ok = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(f) => ok.push(f),
            Err(s) => assert_eq!(s.code(), Code::Aborted, "{s:?}"),
        }
    }
    assert_eq!(ok.len(), 1, "exactly one winner");
    assert_eq!(ok[0].version, 3);
    assert_eq!(versions(flows, "sequential").await, [3, 2, 1]);
    let latest = get_flow(flows, "sequential", 0).await.unwrap();
    assert_eq!(latest, ok[0]);
    assert_eq!(latest.steps.len(), 3);
}

// --------------------------------------------------------------------- YAML

#[tokio::test]
async fn yaml_round_trip_of_the_quick_start_flows() {
    let server = world().await;
    let flows = &server;
    quick_start(flows).await;
    for name in ["sequential", "parallel", "dependencies"] {
        let yaml = export(flows, name).await;
        assert!(yaml.contains("kind: PromotionFlow"), "{yaml}");
        let from = format!("name: {name}\n");
        assert_eq!(yaml.matches(&from).count(), 1, "{yaml}");
        let copy_name = format!("{name}-copy");
        let renamed = yaml.replace(&from, &format!("name: {copy_name}\n"));
        let f = import(flows, &renamed, false).await.expect("import");
        assert_eq!(f.version, 1);
        let original = get_flow(flows, name, 0).await.unwrap();
        assert_eq!(graph(&f), graph(&original));
        assert_eq!(f.trigger_environment, original.trigger_environment);
        let again = export(flows, &copy_name).await;
        assert_eq!(again, renamed, "export of the import equals the export");
    }

    // Existing name without replace: ALREADY_EXISTS; with replace, the same
    // document changes nothing (`unchanged`), a changed one is a new version.
    let yaml = export(flows, "parallel").await;
    expect_code(import(flows, &yaml, false).await, Code::AlreadyExists);
    assert_eq!(versions(flows, "parallel").await, [2, 1]);
    let same = flows
        .flows()
        .import_flow(pb::ImportFlowRequest {
            yaml: yaml.clone(),
            replace: true,
        })
        .await
        .expect("replace")
        .into_inner();
    assert!(same.unchanged);
    assert_eq!(same.flow.expect("flow").version, 2);
    assert_eq!(versions(flows, "parallel").await, [2, 1]);
    let changed = yaml.replace("steps:", "promotionTimeoutLimit: 30\n  steps:");
    assert_ne!(changed, yaml);
    let f = import(flows, &changed, true).await.expect("replace");
    assert_eq!(f.version, 3);
    assert_eq!(versions(flows, "parallel").await, [3, 2, 1]);

    // Unknown field: named, nothing saved.
    let bad = yaml.replace("name: parallel\n", "name: other\n").replace(
        "triggerEnvironment: dev",
        "triggerEnvironment: dev\n  bogusField: 1",
    );
    assert!(bad.contains("bogusField"), "{bad}");
    let s = expect_code(import(flows, &bad, false).await, Code::InvalidArgument);
    let d = descriptions(&s).join(" ") + s.message();
    assert_eq!(violation_fields(&s), ["yaml"], "{s:?}");
    assert!(
        d.contains("spec.bogusField"),
        "the description names the path: {s:?}"
    );
    // A misspelt step field, and a document that is not YAML at all.
    let bad =
        yaml.replace("name: parallel\n", "name: other\n")
            .replacen("dependsOn:", "dependsOm:", 1);
    let s = expect_invalid(import(flows, &bad, false).await, &["yaml"]);
    assert!(
        descriptions(&s)
            .iter()
            .any(|d| d.contains("spec.steps[0].dependsOm")),
        "{s:?}"
    );
    let s = expect_invalid(import(flows, "spec: [unclosed", false).await, &["yaml"]);
    assert!(!descriptions(&s)[0].is_empty());
    expect_code(get_flow(flows, "other", 0).await, Code::NotFound);

    // A valid document whose flow is invalid: `flow.` paths.
    let bad = yaml
        .replace("name: parallel\n", "name: other\n")
        .replace("environment: prod-eu", "environment: mars");
    let s = expect_code(import(flows, &bad, false).await, Code::InvalidArgument);
    assert!(
        violation_fields(&s)
            .iter()
            .any(|f| f.starts_with("flow.steps[")),
        "{s:?}"
    );
    expect_code(get_flow(flows, "other", 0).await, Code::NotFound);
}

// ------------------------------------------------------------------- render

/// The node ids and edges of a Mermaid diagram, as environment names.
fn mermaid_graph(text: &str) -> (Vec<String>, Vec<(String, String)>) {
    let mut ids: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some((a, b)) = line.split_once(" --> ") {
            edges.push((ids[a].clone(), ids[b].clone()));
        } else if let Some(q) = line.find("\"")
            && line.starts_with('n')
        {
            let id = line[..line.find(['[', '(']).unwrap()].to_string();
            let label = line[q + 1..].split('"').next().unwrap();
            let name = label.trim_end_matches(" (trigger)").to_string();
            ids.insert(id, name.clone());
            nodes.push(name);
        }
    }
    nodes.sort();
    edges.sort();
    (nodes, edges)
}

#[tokio::test]
async fn render_draws_every_node_and_edge() {
    let server = world().await;
    let flows = &server;
    quick_start(flows).await;

    let text = render(flows, "parallel", pb::RenderFormat::Unspecified).await;
    assert!(text.starts_with("flowchart LR"), "{text}");
    let (nodes, edges) = mermaid_graph(&text);
    assert_eq!(
        nodes,
        strs(&["dev", "prod", "prod-asia", "prod-eu", "qa"]),
        "{text}"
    );
    let mut want: Vec<(String, String)> = [
        ("dev", "qa"),
        ("qa", "prod"),
        ("qa", "prod-eu"),
        ("qa", "prod-asia"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    want.sort();
    assert_eq!(edges, want, "{text}");
    assert!(text.contains("dev (trigger)"), "{text}");

    let text = render(flows, "dependencies", pb::RenderFormat::Dot).await;
    assert!(text.starts_with("digraph \"dependencies\" {"), "{text}");
    for env in ["dev", "qa", "staging", "prod"] {
        assert!(
            text.contains(&format!("    \"{env}\" [label=")),
            "{env} in {text}"
        );
    }
    let edge_lines: Vec<&str> = text.lines().filter(|l| l.contains(" -> ")).collect();
    let mut want = vec![
        "    \"dev\" -> \"qa\";",
        "    \"dev\" -> \"staging\";",
        "    \"qa\" -> \"prod\";",
        "    \"staging\" -> \"prod\";",
    ];
    want.sort();
    let mut got = edge_lines.clone();
    got.sort();
    assert_eq!(got, want, "{text}");
    assert!(text.trim_end().ends_with('}'));

    // Old versions render too; bad requests are rejected.
    let old = flows
        .flows()
        .render_flow(pb::RenderFlowRequest {
            name: "dependencies".into(),
            version: 1,
            format: pb::RenderFormat::Dot as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .text;
    assert!(!old.contains("staging"), "{old}");
    expect_code(
        flows
            .flows()
            .render_flow(pb::RenderFlowRequest {
                name: "nope".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    expect_code(
        flows
            .flows()
            .render_flow(pb::RenderFlowRequest {
                name: "parallel".into(),
                version: -1,
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
}

// -------------------------------------------------------------- referential

#[tokio::test]
async fn referenced_environments_and_workflows_cannot_be_deleted() {
    let server = world().await;
    create_wait(&server, "soak", 10).await;
    let flows = &server;
    quick_start(flows).await;
    let mut f = get_flow(flows, "parallel", 0).await.unwrap();
    f.steps[2].policy = Some(pb::Policy {
        post_action: "soak".into(),
        ..Default::default()
    });
    flows
        .flows()
        .update_flow(pb::UpdateFlowRequest {
            flow: Some(f),
            expected_version: 2,
        })
        .await
        .expect("update");

    let s = expect_code(
        server
            .environments()
            .delete_environment(pb::DeleteEnvironmentRequest {
                name: "prod-eu".into(),
                expected_version: 0,
            })
            .await,
        Code::FailedPrecondition,
    );
    assert!(s.message().contains("parallel"), "{s:?}");
    let s = expect_code(
        server
            .workflows()
            .delete_workflow(pb::DeleteWorkflowRequest {
                name: "soak".into(),
                expected_version: 0,
            })
            .await,
        Code::FailedPrecondition,
    );
    assert!(s.message().contains("parallel"), "{s:?}");
    // qa is used by all three flows.
    let s = expect_code(
        server
            .environments()
            .delete_environment(pb::DeleteEnvironmentRequest {
                name: "qa".into(),
                expected_version: 0,
            })
            .await,
        Code::FailedPrecondition,
    );
    assert!(s.message().contains("sequential"), "{s:?}");

    expect_code(
        flows
            .flows()
            .delete_flow(pb::DeleteFlowRequest {
                name: "parallel".into(),
                expected_version: 1,
            })
            .await,
        Code::Aborted,
    );
    flows
        .flows()
        .delete_flow(pb::DeleteFlowRequest {
            name: "parallel".into(),
            expected_version: 3,
        })
        .await
        .expect("delete flow");
    expect_code(get_flow(flows, "parallel", 0).await, Code::NotFound);
    expect_code(get_flow(flows, "parallel", 1).await, Code::NotFound);
    expect_code(
        flows
            .flows()
            .list_flow_versions(pb::ListFlowVersionsRequest {
                name: "parallel".into(),
                ..Default::default()
            })
            .await,
        Code::NotFound,
    );
    assert_eq!(flow_names(flows).await, ["dependencies", "sequential"]);

    // Now nothing refers to them.
    server
        .environments()
        .delete_environment(pb::DeleteEnvironmentRequest {
            name: "prod-eu".into(),
            expected_version: 0,
        })
        .await
        .expect("delete prod-eu");
    server
        .workflows()
        .delete_workflow(pb::DeleteWorkflowRequest {
            name: "soak".into(),
            expected_version: 0,
        })
        .await
        .expect("delete soak");
    expect_code(
        flows
            .flows()
            .delete_flow(pb::DeleteFlowRequest {
                name: "parallel".into(),
                expected_version: 0,
            })
            .await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn copy_is_validated_again() {
    let server = world().await;
    let flows = &server;
    quick_start(flows).await;
    expect_code(
        copy(flows, "sequential", "parallel").await,
        Code::AlreadyExists,
    );
    expect_invalid(copy(flows, "sequential", "Bad_Name").await, &["new_name"]);
    expect_code(copy(flows, "nope", "x").await, Code::NotFound);
    // A copy of an old version keeps that version's content.
    let f = flows
        .flows()
        .copy_flow(pb::CopyFlowRequest {
            source: "dependencies".into(),
            version: 1,
            new_name: "old-deps".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .flow
        .unwrap();
    assert_eq!(f.version, 1);
    assert_eq!(graph(&f), g(&[("qa", &["dev"]), ("prod", &["qa"])]));

    // Version 3 of `parallel` uses workflow `soak`, version 4 no longer
    // does, so `soak` can be deleted; copying version 3 is then invalid.
    create_wait(&server, "soak", 10).await;
    let policy = |post: &str| pb::FlowEdit {
        edit: Some(E::SetPolicy(pb::flow_edit::SetPolicy {
            environment: "prod-eu".into(),
            policy: Some(pb::Policy {
                post_action: post.into(),
                ..Default::default()
            }),
        })),
    };
    edit_flow(flows, "parallel", 2, vec![policy("soak")])
        .await
        .expect("v3");
    edit_flow(flows, "parallel", 3, vec![policy("")])
        .await
        .expect("v4");
    server
        .workflows()
        .delete_workflow(pb::DeleteWorkflowRequest {
            name: "soak".into(),
            expected_version: 0,
        })
        .await
        .expect("soak is unused by the latest version");
    let r = flows
        .flows()
        .copy_flow(pb::CopyFlowRequest {
            source: "parallel".into(),
            version: 3,
            new_name: "revived".into(),
        })
        .await;
    expect_invalid(r, &["flow.steps[2].policy.post_action"]);
    expect_code(get_flow(flows, "revived", 0).await, Code::NotFound);
}

// ------------------------------------------------------------------- limits

#[tokio::test]
async fn size_limits() {
    let server = world().await;
    let flows = &server;
    let mut steps = vec![step("qa", &["dev"])];
    for i in 0..1000 {
        steps.push(step(&format!("e{i}"), &["qa"]));
    }
    assert_eq!(steps.len(), 1001);
    let s = expect_code(
        create_flow(flows, flow("huge", "dev", steps.clone())).await,
        Code::InvalidArgument,
    );
    assert!(
        violation_fields(&s).contains(&"flow.steps".to_string()),
        "{s:?}"
    );
    assert!(
        violation_fields(&s).len() < 10,
        "the limit, not 1000 violations: {s:?}"
    );
    let r = validate(flows, flow("huge", "dev", steps)).await;
    assert!(
        r.violations.iter().any(|v| v.field == "steps"),
        "{:?}",
        r.violations.len()
    );

    let deps: Vec<String> = (0..65).map(|i| format!("e{i}")).collect();
    let mut f = base("wide");
    f.steps[1].depends_on = deps;
    let s = expect_code(create_flow(flows, f).await, Code::InvalidArgument);
    assert!(
        violation_fields(&s).contains(&"flow.steps[1].depends_on".to_string()),
        "{s:?}"
    );
    assert!(violation_fields(&s).len() < 10, "{s:?}");
    assert!(flow_names(flows).await.is_empty());
}

/// `dev -> e0 -> e1 -> ... -> e{n-1}`, named `name`.
fn chain(name: &str, n: usize) -> pb::Flow {
    let steps = (0..n)
        .map(|i| {
            let dep = if i == 0 {
                "dev".to_string()
            } else {
                format!("e{}", i - 1)
            };
            step(&format!("e{i}"), &[dep.as_str()])
        })
        .collect();
    flow(name, "dev", steps)
}

/// The description of the ValidateFlow violation on `field`, if any.
fn reported_on<'r>(r: &'r pb::ValidateFlowResponse, field: &str) -> Option<&'r str> {
    r.violations
        .iter()
        .find(|v| v.field == field)
        .map(|v| v.description.as_str())
}

/// The description of the status's violation on `field`, if any.
fn violation_on(status: &Status, field: &str) -> Option<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()?
        .field_violations
        .into_iter()
        .find(|v| v.field == field)
        .map(|v| v.description)
}

/// Fails with `INVALID_ARGUMENT` and `description` on `flow.steps`. (A flow
/// over the limit is refused without looking up its names, so its trigger
/// environment may also be reported missing, as it always was.)
#[track_caller]
fn too_many_steps<T: std::fmt::Debug>(result: Res<T>, description: &str) {
    let s = expect_code(result, Code::InvalidArgument);
    assert_eq!(
        violation_on(&s, "flow.steps").as_deref(),
        Some(description),
        "{s:?}"
    );
}

/// `--max-flow-steps` raises the limit through every flow RPC; the same
/// database served with the default limit refuses the same flows at 1000.
#[tokio::test]
async fn configured_step_limit() {
    let server = TestServer::start_with(|c| c.max_flow_steps = 1500).await;
    create_environments(
        &server,
        std::iter::once("dev".to_string()).chain((0..1250).map(|i| format!("e{i}"))),
    )
    .await;
    let flows = &server;
    let big = chain("big", 1200);

    let r = validate(flows, big.clone()).await;
    assert!(r.violations.is_empty(), "within 1500: {:?}", r.violations);
    let plan = waves(&r.plan);
    assert_eq!(plan.len(), 1201);
    assert_eq!(plan[1200], ["e1199"]);
    // Among 1,300 names, exactly the 50 that are not in the catalog are named.
    let r = validate(flows, chain("partly-missing", 1300)).await;
    let mut missing: Vec<&str> = r
        .violations
        .iter()
        .filter_map(|v| {
            v.description
                .strip_prefix("environment ")?
                .strip_suffix(" does not exist")
        })
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let mut want: Vec<String> = (1250..1300).map(|i| format!("e{i}")).collect();
    want.sort_unstable();
    assert_eq!(missing, want, "{:?}", r.violations);
    // The configured limit is the one reported.
    let r = validate(flows, chain("bigger", 1501)).await;
    assert_eq!(
        reported_on(&r, "steps"),
        Some("at most 1500 steps, got 1501")
    );
    assert!(r.plan.is_none());

    let created = create_flow(flows, big.clone()).await.expect("create");
    assert_eq!(created.steps.len(), 1200);
    let more: Vec<String> = (1200..1250).map(|i| format!("e{i}")).collect();
    let more: Vec<&str> = more.iter().map(String::as_str).collect();
    let edited = edit_flow(flows, "big", 1, vec![add_after("e1199", &more)])
        .await
        .expect("edit within the limit");
    assert_eq!((edited.version, edited.steps.len()), (2, 1250));
    let beyond: Vec<String> = (0..251).map(|i| format!("x{i}")).collect();
    let beyond: Vec<&str> = beyond.iter().map(String::as_str).collect();
    let s = expect_invalid(
        edit_flow(flows, "big", 2, vec![add_after("dev", &beyond)]).await,
        &["edits[0].add_environments.environments"],
    );
    assert_eq!(
        descriptions(&s),
        ["the flow would have more than 1500 steps"]
    );
    let updated = flows
        .flows()
        .update_flow(pb::UpdateFlowRequest {
            flow: Some(big.clone()),
            expected_version: 2,
        })
        .await
        .expect("update")
        .into_inner()
        .flow
        .expect("flow");
    assert_eq!((updated.version, updated.steps.len()), (3, 1200));
    let copied = copy(flows, "big", "big-copy").await.expect("copy");
    assert_eq!(copied.steps.len(), 1200);
    let yaml = export(flows, "big").await;
    let renamed = |to: &str| yaml.replacen("  name: big\n", &format!("  name: {to}\n"), 1);
    assert_ne!(renamed("imported"), yaml);
    let imported = import(flows, &renamed("imported"), false)
        .await
        .expect("import");
    assert_eq!(imported.steps.len(), 1200);

    // The same database and requests on a server with the default limit.
    let db = server.stop().await;
    let server = TestServer::start_on(db, |_| {}).await;
    let flows = &server;
    let r = validate(flows, big.clone()).await;
    assert_eq!(
        reported_on(&r, "steps"),
        Some("at most 1000 steps, got 1200")
    );
    // Its trigger environment exists: only the size is reported.
    let fields: Vec<&str> = r.violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["steps"], "{:?}", r.violations);
    assert!(r.plan.is_none());
    let too_big = "a flow has at most 1000 steps, this one has 1200";
    let mut other = big.clone();
    other.name = "other".into();
    too_many_steps(
        create_flow(flows, other).await,
        "at most 1000 steps, got 1200",
    );
    too_many_steps(
        flows
            .flows()
            .update_flow(pb::UpdateFlowRequest {
                flow: Some(big.clone()),
                expected_version: 3,
            })
            .await,
        "at most 1000 steps, got 1200",
    );
    too_many_steps(copy(flows, "big", "big-copy-2").await, too_big);
    too_many_steps(import(flows, &renamed("imported-2"), false).await, too_big);
    too_many_steps(
        edit_flow(flows, "big", 3, vec![set_deps("e1", &["e0"])]).await,
        too_big,
    );
    let s = expect_invalid(
        edit_flow(flows, "big", 3, vec![add_after("e1199", &["e1200"])]).await,
        &["edits[0].add_environments.environments"],
    );
    assert_eq!(
        descriptions(&s),
        ["the flow would have more than 1000 steps"]
    );
    let mut names = flow_names(flows).await;
    names.sort();
    assert_eq!(names, ["big", "big-copy", "imported"], "nothing saved");
    assert_eq!(versions(flows, "big").await.len(), 3, "nothing saved");
}
