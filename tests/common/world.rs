//! Typed helpers over the five services, for any [`Api`]: catalog CRUD
//! wrappers that return the RPC's result, builders, the quick-start world,
//! and the release calls and polls most tests make.

use std::time::{Duration, Instant};

use futures::StreamExt;
use promoflow::proto::v1 as pb;
use tonic::Status;

use super::{Api, dur, strs};

pub type Res<T> = Result<T, Status>;

/// The quick-start product of [`seed_parallel`].
pub const DEMO: &str = "demo-trioapp";
/// The environments of the quick-start world, trigger first.
pub const PARALLEL_ENVS: [&str; 5] = ["dev", "qa", "prod", "prod-eu", "prod-asia"];
/// Its production environments, run in parallel after qa.
pub const PRODS: [&str; 3] = ["prod", "prod-eu", "prod-asia"];

// ------------------------------------------------------------ catalog CRUD

/// Create, get, update, delete and list of one catalog service, which share
/// their shape: a resource by name, an expected version, pages.
macro_rules! crud {
    (
        $client:ident . $field:ident : $T:ident,
        $create:ident = $create_rpc:ident($CreateReq:ident),
        $get:ident = $get_rpc:ident($GetReq:ident),
        $update:ident = $update_rpc:ident($UpdateReq:ident),
        $delete:ident = $delete_rpc:ident($DeleteReq:ident),
        $list:ident = $list_rpc:ident($ListReq:ident) -> $ListResp:ident $(,)?
    ) => {
        pub async fn $create(api: &impl Api, item: pb::$T) -> Res<pb::$T> {
            let r = api
                .$client()
                .$create_rpc(pb::$CreateReq { $field: Some(item) })
                .await?;
            Ok(r.into_inner()
                .$field
                .expect(concat!("response has the ", stringify!($field))))
        }

        pub async fn $get(api: &impl Api, name: &str) -> Res<pb::$T> {
            let r = api
                .$client()
                .$get_rpc(pb::$GetReq { name: name.into() })
                .await?;
            Ok(r.into_inner()
                .$field
                .expect(concat!("response has the ", stringify!($field))))
        }

        pub async fn $update(api: &impl Api, item: pb::$T, expected_version: i64) -> Res<pb::$T> {
            let r = api
                .$client()
                .$update_rpc(pb::$UpdateReq {
                    $field: Some(item),
                    expected_version,
                })
                .await?;
            Ok(r.into_inner()
                .$field
                .expect(concat!("response has the ", stringify!($field))))
        }

        pub async fn $delete(api: &impl Api, name: &str, expected_version: i64) -> Res<()> {
            api.$client()
                .$delete_rpc(pb::$DeleteReq {
                    name: name.into(),
                    expected_version,
                })
                .await?;
            Ok(())
        }

        pub async fn $list(api: &impl Api, page_size: i32, page_token: &str) -> Res<pb::$ListResp> {
            let r = api
                .$client()
                .$list_rpc(pb::$ListReq {
                    page_size,
                    page_token: page_token.into(),
                })
                .await?;
            Ok(r.into_inner())
        }
    };
}

crud! {
    environments.environment: Environment,
    create_env = create_environment(CreateEnvironmentRequest),
    get_env = get_environment(GetEnvironmentRequest),
    update_env = update_environment(UpdateEnvironmentRequest),
    delete_env = delete_environment(DeleteEnvironmentRequest),
    list_envs = list_environments(ListEnvironmentsRequest) -> ListEnvironmentsResponse,
}

crud! {
    products.product: Product,
    create_product = create_product(CreateProductRequest),
    get_product = get_product(GetProductRequest),
    update_product = update_product(UpdateProductRequest),
    delete_product = delete_product(DeleteProductRequest),
    list_products = list_products(ListProductsRequest) -> ListProductsResponse,
}

crud! {
    products.promotion_template: NamedPromotionTemplate,
    create_template = create_promotion_template(CreatePromotionTemplateRequest),
    get_template = get_promotion_template(GetPromotionTemplateRequest),
    update_template = update_promotion_template(UpdatePromotionTemplateRequest),
    delete_template = delete_promotion_template(DeletePromotionTemplateRequest),
    list_templates = list_promotion_templates(ListPromotionTemplatesRequest) -> ListPromotionTemplatesResponse,
}

crud! {
    workflows.workflow: Workflow,
    create_wf = create_workflow(CreateWorkflowRequest),
    get_wf = get_workflow(GetWorkflowRequest),
    update_wf = update_workflow(UpdateWorkflowRequest),
    delete_wf = delete_workflow(DeleteWorkflowRequest),
    list_wfs = list_workflows(ListWorkflowsRequest) -> ListWorkflowsResponse,
}

// ------------------------------------------------------------ environments

/// An environment of `kind` (nothing else set).
pub fn environment(name: &str, kind: pb::EnvironmentKind) -> pb::Environment {
    pb::Environment {
        name: name.into(),
        kind: kind as i32,
        ..Default::default()
    }
}

/// Creates an environment of `kind` for each of `names`, in order.
pub async fn create_envs(api: &impl Api, names: &[&str], kind: pb::EnvironmentKind) {
    for name in names {
        create_env(api, environment(name, kind))
            .await
            .unwrap_or_else(|e| panic!("create environment {name}: {e}"));
    }
}

/// Creates a non-production environment for each of `names`, 16 requests
/// at a time (for flows of hundreds or thousands of steps).
pub async fn create_environments(api: &impl Api, names: impl IntoIterator<Item = String>) {
    futures::stream::iter(names)
        .map(|name| async move {
            create_env(api, environment(&name, pb::EnvironmentKind::NonProduction))
                .await
                .unwrap_or_else(|e| panic!("create environment {name}: {e}"));
        })
        .buffer_unordered(16)
        .for_each(|()| async {})
        .await;
}

// ---------------------------------------------------------------- products

/// An application (output-only fields unset).
pub fn app(environment: &str, name: &str, version: &str) -> pb::Application {
    pb::Application {
        environment: environment.into(),
        name: name.into(),
        version: version.into(),
        ..Default::default()
    }
}

/// Creates `product` with an application `{product}-{env}` in each of
/// `envs`, at the version `version_in(env)` (empty: none recorded).
pub async fn create_product_in(
    api: &impl Api,
    product: &str,
    envs: &[&str],
    version_in: impl Fn(&str) -> &'static str,
) {
    create_product(
        api,
        pb::Product {
            name: product.into(),
            applications: envs
                .iter()
                .map(|e| app(e, &format!("{product}-{e}"), version_in(e)))
                .collect(),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create product {product}: {e}"));
}

/// The quick-start version map: 1.0.0 in dev, nothing elsewhere.
pub fn dev_only(env: &str) -> &'static str {
    if env == "dev" { "1.0.0" } else { "" }
}

/// Changes the product with `f` (read, modify, update).
pub async fn change_product(api: &impl Api, name: &str, f: impl FnOnce(&mut pb::Product)) {
    let mut p = get_product(api, name).await.expect("get product");
    let expected_version = p.version;
    f(&mut p);
    update_product(api, p, expected_version)
        .await
        .expect("update product");
}

/// Adds an application `{product}-{env}` for each of `envs` to `product`.
pub async fn add_apps(api: &impl Api, product: &str, envs: &[&str]) {
    change_product(api, product, |p| {
        for e in envs {
            p.applications.push(app(e, &format!("{product}-{e}"), ""));
        }
    })
    .await;
}

// --------------------------------------------------------------- workflows

/// Creates the workflow `name` of `kind`.
pub async fn create_kind(api: &impl Api, name: &str, kind: pb::workflow::Kind) {
    create_wf(
        api,
        pb::Workflow {
            name: name.into(),
            kind: Some(kind),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create workflow {name}: {e}"));
}

/// Creates a `wait` workflow of `ms` milliseconds.
pub async fn create_wait(api: &impl Api, name: &str, ms: u64) {
    let wait = pb::WaitWorkflow {
        duration: Some(dur(ms)),
    };
    create_kind(api, name, pb::workflow::Kind::Wait(wait)).await;
}

/// Creates an `http` workflow calling `url`, `max_attempts` times at most,
/// each call timing out after `timeout_ms`.
pub async fn create_http(
    api: &impl Api,
    name: &str,
    url: &str,
    max_attempts: i32,
    timeout_ms: u64,
) {
    let http = pb::HttpWorkflow {
        url: url.into(),
        max_attempts,
        timeout: Some(dur(timeout_ms)),
        ..Default::default()
    };
    create_kind(api, name, pb::workflow::Kind::Http(http)).await;
}

/// Creates an approval workflow, timing out after `timeout_ms` (None: never).
pub async fn create_approval(api: &impl Api, name: &str, timeout_ms: Option<u64>) {
    let approval = pb::ApprovalWorkflow {
        timeout: timeout_ms.map(dur),
        ..Default::default()
    };
    create_kind(api, name, pb::workflow::Kind::Approval(approval)).await;
}

// ------------------------------------------------------------------- flows

/// A step on `env` after `deps`, with the default policy.
pub fn step(env: &str, deps: &[&str]) -> pb::FlowStep {
    pb::FlowStep {
        environment: env.into(),
        depends_on: strs(deps),
        ..Default::default()
    }
}

/// `step` with a policy running `post_action` (a workflow name) after the
/// promotion action.
pub fn step_then(env: &str, deps: &[&str], post_action: &str) -> pb::FlowStep {
    pb::FlowStep {
        policy: Some(pb::Policy {
            post_action: post_action.into(),
            ..Default::default()
        }),
        ..step(env, deps)
    }
}

pub fn flow(name: &str, trigger: &str, steps: Vec<pb::FlowStep>) -> pb::Flow {
    pb::Flow {
        name: name.into(),
        trigger_environment: trigger.into(),
        steps,
        ..Default::default()
    }
}

pub async fn create_flow(api: &impl Api, f: pb::Flow) -> Res<pb::Flow> {
    api.flows()
        .create_flow(pb::CreateFlowRequest { flow: Some(f) })
        .await
        .map(|r| r.into_inner().flow.expect("flow"))
}

/// Version `version` of the flow `name` (0: the latest).
pub async fn get_flow(api: &impl Api, name: &str, version: i64) -> Res<pb::Flow> {
    api.flows()
        .get_flow(pb::GetFlowRequest {
            name: name.into(),
            version,
        })
        .await
        .map(|r| r.into_inner().flow.expect("flow"))
}

pub async fn edit_flow(
    api: &impl Api,
    name: &str,
    expected: i64,
    edits: Vec<pb::FlowEdit>,
) -> Res<pb::Flow> {
    api.flows()
        .edit_flow(pb::EditFlowRequest {
            name: name.into(),
            expected_version: expected,
            edits,
        })
        .await
        .map(|r| r.into_inner().flow.expect("flow"))
}

/// Applies `edits` to the latest version of the flow `name`.
pub async fn edit_latest(api: &impl Api, name: &str, edits: Vec<pb::flow_edit::Edit>) {
    let version = get_flow(api, name, 0).await.expect("get flow").version;
    let edits = edits
        .into_iter()
        .map(|e| pb::FlowEdit { edit: Some(e) })
        .collect();
    edit_flow(api, name, version, edits)
        .await
        .expect("edit flow");
}

/// An edit adding `envs` after `after`, with `policy` on each.
pub fn add_envs_after(
    after: &str,
    envs: &[&str],
    policy: Option<pb::Policy>,
) -> pb::flow_edit::Edit {
    pb::flow_edit::Edit::AddEnvironments(pb::flow_edit::AddEnvironments {
        after: after.into(),
        environments: strs(envs),
        policy,
    })
}

/// Seeds the quick-start world: environments dev, qa, prod, prod-eu,
/// prod-asia (prod ones PRODUCTION), product `demo-trioapp` with an
/// application in each (version 1.0.0 in dev), and the parallel flow
/// `parallel` built by edits: dev → qa → {prod, prod-eu, prod-asia}.
/// `post_action` (a workflow name) is set on every production step.
pub async fn seed_parallel(api: &impl Api, post_action: Option<&str>) {
    create_envs(api, &["dev", "qa"], pb::EnvironmentKind::NonProduction).await;
    create_envs(api, &PRODS, pb::EnvironmentKind::Production).await;
    create_product_in(api, DEMO, &PARALLEL_ENVS, dev_only).await;
    create_flow(api, flow("parallel", "dev", vec![step("qa", &["dev"])]))
        .await
        .expect("create flow");
    let policy = pb::Policy {
        post_action: post_action.unwrap_or_default().to_string(),
        action: pb::PromotionAction::None as i32,
        ..Default::default()
    };
    let edit = pb::FlowEdit {
        edit: Some(add_envs_after("qa", &PRODS, Some(policy))),
    };
    edit_flow(api, "parallel", 1, vec![edit])
        .await
        .expect("edit flow");
}

// ---------------------------------------------------------------- releases

/// Triggers the flow `parallel` for `product` (`version` empty: the
/// version in the trigger environment).
pub async fn trigger(api: &impl Api, product: &str, version: &str) -> pb::Release {
    trigger_flow(api, "parallel", product, version).await
}

/// Triggers `flow` for `product` (`version` empty: the version in the
/// trigger environment), as initiator `test`.
pub async fn trigger_flow(api: &impl Api, flow: &str, product: &str, version: &str) -> pb::Release {
    api.releases()
        .trigger_release(pb::TriggerReleaseRequest {
            flow: flow.into(),
            product: product.into(),
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

pub async fn get_release(api: &impl Api, id: &str) -> pb::Release {
    api.releases()
        .get_release(pb::GetReleaseRequest {
            release_id: id.into(),
        })
        .await
        .expect("get release")
        .into_inner()
        .release
        .expect("release")
}

pub async fn terminate(api: &impl Api, id: &str, reason: &str) -> Res<pb::Release> {
    api.releases()
        .terminate_release(pb::TerminateReleaseRequest {
            release_id: id.into(),
            reason: reason.into(),
        })
        .await
        .map(|r| r.into_inner().release.expect("release"))
}

pub async fn retry(api: &impl Api, id: &str) -> Res<pb::Release> {
    api.releases()
        .retry_release(pb::RetryReleaseRequest {
            release_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().release.expect("release"))
}

/// Approves (or rejects) what waits in `env` (empty: the release itself).
pub async fn approve(
    api: &impl Api,
    id: &str,
    env: &str,
    approve: bool,
    comment: &str,
) -> Res<pb::ApproveEnvironmentResponse> {
    api.releases()
        .approve_environment(pb::ApproveEnvironmentRequest {
            release_id: id.into(),
            environment: env.into(),
            approve,
            comment: comment.into(),
        })
        .await
        .map(|r| r.into_inner())
}

pub fn status(r: &pb::Release) -> pb::ReleaseStatus {
    pb::ReleaseStatus::try_from(r.status).unwrap_or_default()
}

/// SUCCEEDED, FAILED or TERMINATED.
pub fn is_final(status: i32) -> bool {
    [
        pb::ReleaseStatus::Succeeded as i32,
        pb::ReleaseStatus::Failed as i32,
        pb::ReleaseStatus::Terminated as i32,
    ]
    .contains(&status)
}

/// The run of environment `name` in `r`.
pub fn env<'a>(r: &'a pb::Release, name: &str) -> &'a pb::EnvironmentRun {
    r.environments
        .iter()
        .find(|e| e.environment == name)
        .unwrap_or_else(|| panic!("no environment {name} in {r:?}"))
}

pub fn env_status(r: &pb::Release, name: &str) -> pb::EnvironmentStatus {
    pb::EnvironmentStatus::try_from(env(r, name).status).unwrap_or_default()
}

/// The step of `kind` of an environment run.
pub fn step_of(e: &pb::EnvironmentRun, kind: pb::StepKind) -> &pb::StepRun {
    e.steps
        .iter()
        .find(|s| s.kind == kind as i32)
        .unwrap_or_else(|| panic!("no {kind:?} step in {e:?}"))
}

/// Polls (every 50 ms) until `pred` holds for the release; panics after
/// 30 s.
pub async fn wait_until(
    api: &impl Api,
    id: &str,
    what: &str,
    pred: impl Fn(&pb::Release) -> bool,
) -> pb::Release {
    let deadline = Instant::now() + Duration::from_secs(30);
    poll_until(api, id, what, deadline, pred).await
}

async fn poll_until(
    api: &impl Api,
    id: &str,
    what: &str,
    deadline: Instant,
    pred: impl Fn(&pb::Release) -> bool,
) -> pb::Release {
    loop {
        let r = get_release(api, id).await;
        if pred(&r) {
            return r;
        }
        if Instant::now() > deadline {
            panic!("release {id} never reached: {what}; last state {r:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until the release is final (or panics after 30 s).
pub async fn wait_final(api: &impl Api, id: &str) -> pb::Release {
    wait_until(api, id, "a final status", |r| is_final(r.status)).await
}

/// Waits (up to 60 s in all) until every release of `ids` is final;
/// returns them in order.
pub async fn wait_all(api: &impl Api, ids: &[String]) -> Vec<pb::Release> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut all = Vec::new();
    for id in ids {
        all.push(poll_until(api, id, "a final status", deadline, |r| is_final(r.status)).await);
    }
    all
}

/// The world of the multi-process tests: the quick-start environments, an
/// `http` workflow `deploy-check` calling `hook_url` after the promotion to
/// each production environment (flow `parallel`, created whole), and
/// `products` products `app-N`, with version 1.0.0 in every environment.
pub async fn seed_hooked(api: &impl Api, hook_url: &str, products: usize) {
    create_envs(api, &PARALLEL_ENVS, pb::EnvironmentKind::Unspecified).await;
    create_http(api, "deploy-check", hook_url, 1, 30_000).await;
    for p in 0..products {
        create_product_in(api, &format!("app-{p}"), &PARALLEL_ENVS, |_| "1.0.0").await;
    }
    let steps = vec![
        step_then("qa", &["dev"], ""),
        step_then("prod", &["qa"], "deploy-check"),
        step_then("prod-eu", &["qa"], "deploy-check"),
        step_then("prod-asia", &["qa"], "deploy-check"),
    ];
    create_flow(api, flow("parallel", "dev", steps))
        .await
        .expect("flow");
}

/// A server with the quick-start world whose production steps soak: the
/// `wait` workflow `name` of `ms` milliseconds runs after their promotion.
pub async fn start_soaking(name: &str, ms: u64) -> super::TestServer {
    let server = super::TestServer::start().await;
    create_wait(&server, name, ms).await;
    seed_parallel(&server, Some(name)).await;
    server
}
