//! The scenarios of `promoflow bench`, in the order they run: baseline,
//! read, trigger, end-to-end (closed and open loop), fan-out, gitops
//! (in [`super::gitops`]), large flows.
//! Each returns rows for the report; the baseline rows are the
//! denominators of every ratio.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::cli::client::Conn;
use futures::StreamExt;
use tokio::sync::oneshot;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::load::{self, Pool, Sample, Tally, Window};
use super::server::Server;
use super::{BenchArgs, Row, Scenario, mib, progress};
use crate::proto::v1 as pb;
use crate::proto::v1::environment_service_client::EnvironmentServiceClient;
use crate::proto::v1::flow_service_client::FlowServiceClient;
use crate::proto::v1::product_service_client::ProductServiceClient;
use crate::proto::v1::release_service_client::ReleaseServiceClient;
use crate::proto::v1::workflow_service_client::WorkflowServiceClient;

type Res<T> = Result<T, String>;

pub(super) fn status_text(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// CPU use of the server and of this process over a stretch of wall time.
struct CpuMeter {
    wall: Instant,
    server: Option<Duration>,
    own: Option<Duration>,
}

impl CpuMeter {
    fn start(srv: &Server) -> Self {
        Self {
            wall: Instant::now(),
            server: srv.cpu(),
            own: super::server::cpu_of(std::process::id()),
        }
    }

    /// Records the cores used since `start` in the sample.
    fn stamp(self, srv: &Server, s: &mut Sample) {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-3);
        let cores = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / wall),
            _ => None,
        };
        s.server_cores = cores(self.server, srv.cpu());
        s.client_cores = cores(self.own, super::server::cpu_of(std::process::id()));
    }
}

/// Runs `load` (a closed or open loop) and records the cores the server
/// and this process used meanwhile in its sample.
pub(super) async fn metered(
    srv: &Server,
    load: impl std::future::Future<Output = Sample>,
) -> Sample {
    let meter = CpuMeter::start(srv);
    let mut s = load.await;
    meter.stamp(srv, &mut s);
    s
}

/// The names this run creates, all under one fresh prefix so runs can share
/// a database.
struct World {
    prefix: String,
    products: usize,
}

/// The quick-start's parallel shape: the trigger environment, one test
/// environment, three production regions side by side.
const ENVS: [&str; 5] = ["dev", "qa", "prod", "prod-eu", "prod-asia"];

impl World {
    fn env(&self, e: &str) -> String {
        format!("{}-{e}", self.prefix)
    }
    fn product(&self, i: usize) -> String {
        format!("{}-p{}", self.prefix, i % self.products)
    }
    fn fan_product(&self) -> String {
        format!("{}-fan", self.prefix)
    }
    fn parallel_flow(&self) -> String {
        format!("{}-parallel", self.prefix)
    }
    fn gated_flow(&self) -> String {
        format!("{}-gated", self.prefix)
    }
    fn gate(&self) -> String {
        format!("{}-gate", self.prefix)
    }
    fn large_env(&self, i: usize) -> String {
        format!("{}-l{i}", self.prefix)
    }

    /// The 5-environment parallel flow; with `pre_action` on qa for the
    /// gated variant (an approval holds the release until every watcher
    /// is connected).
    fn flow(&self, name: String, qa_pre_action: &str) -> pb::Flow {
        let step = |env: &str, dep: &str, pre: &str| pb::FlowStep {
            environment: self.env(env),
            depends_on: vec![self.env(dep)],
            policy: Some(pb::Policy {
                pre_action: pre.into(),
                action: pb::PromotionAction::None as i32,
                post_action: String::new(),
            }),
            ..Default::default()
        };
        pb::Flow {
            name,
            description: "promoflow bench".into(),
            trigger_environment: self.env("dev"),
            steps: vec![
                step("qa", "dev", qa_pre_action),
                step("prod", "qa", ""),
                step("prod-eu", "qa", ""),
                step("prod-asia", "qa", ""),
            ],
            ..Default::default()
        }
    }

    fn product_msg(&self, name: String) -> pb::Product {
        pb::Product {
            name: name.clone(),
            description: "promoflow bench".into(),
            applications: ENVS
                .iter()
                .map(|e| pb::Application {
                    environment: self.env(e),
                    name: format!("{name}-{e}"),
                    version: "1.0.0".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn trigger(&self, flow: String, product: String) -> pb::TriggerReleaseRequest {
        pb::TriggerReleaseRequest {
            flow,
            product,
            version: "2.0.0".into(),
            initiator: "promoflow bench".into(),
            ..Default::default()
        }
    }
}

/// Runs `f` over `items` with at most `concurrency` at a time; the first
/// error wins.
pub(super) async fn concurrently<T, F, Fut>(items: Vec<T>, concurrency: usize, f: F) -> Res<()>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Res<()>>,
{
    let mut results = futures::stream::iter(items.into_iter().map(f)).buffer_unordered(concurrency);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(())
}

/// Creates an environment; one that exists already is fine.
pub(super) async fn ensure_env(ch: Conn, name: String) -> Res<()> {
    let r = EnvironmentServiceClient::new(ch)
        .create_environment(pb::CreateEnvironmentRequest {
            environment: Some(pb::Environment {
                name,
                ..Default::default()
            }),
        })
        .await;
    match r {
        Ok(_) => Ok(()),
        Err(s) if s.code() == Code::AlreadyExists => Ok(()),
        Err(s) => Err(status_text(s)),
    }
}

async fn seed(w: &World, pool: &Pool, concurrency: usize) -> Res<()> {
    let envs: Vec<String> = ENVS.iter().map(|e| w.env(e)).collect();
    concurrently(envs, concurrency, |e| ensure_env(pool.channel(), e)).await?;
    WorkflowServiceClient::new(pool.channel())
        .create_workflow(pb::CreateWorkflowRequest {
            workflow: Some(pb::Workflow {
                name: w.gate(),
                description: "holds a fan-out release until the watchers are in".into(),
                kind: Some(pb::workflow::Kind::Approval(pb::ApprovalWorkflow::default())),
                ..Default::default()
            }),
        })
        .await
        .map_err(status_text)?;
    let mut flows = FlowServiceClient::new(pool.channel());
    for flow in [
        w.flow(w.parallel_flow(), ""),
        w.flow(w.gated_flow(), &w.gate()),
    ] {
        flows
            .create_flow(pb::CreateFlowRequest { flow: Some(flow) })
            .await
            .map_err(status_text)?;
    }
    let mut products: Vec<String> = (0..w.products).map(|i| w.product(i)).collect();
    products.push(w.fan_product());
    concurrently(products, concurrency, |p| {
        let msg = w.product_msg(p);
        let ch = pool.channel();
        async move {
            ProductServiceClient::new(ch)
                .create_product(pb::CreateProductRequest { product: Some(msg) })
                .await
                .map(|_| ())
                .map_err(status_text)
        }
    })
    .await
}

fn is_final(status: i32) -> bool {
    matches!(
        pb::ReleaseStatus::try_from(status),
        Ok(pb::ReleaseStatus::Succeeded
            | pb::ReleaseStatus::Failed
            | pb::ReleaseStatus::Terminated)
    )
}

/// Triggers a release; returns it as created.
pub(super) async fn trigger(ch: Conn, req: pb::TriggerReleaseRequest) -> Res<pb::Release> {
    ReleaseServiceClient::new(ch)
        .trigger_release(req)
        .await
        .map_err(status_text)?
        .into_inner()
        .release
        .ok_or_else(|| "TriggerRelease answered without a release".to_string())
}

/// Polls a release until it is final; returns its status.
pub(super) async fn wait_final(ch: Conn, id: &str, timeout: Duration) -> Res<i32> {
    let start = Instant::now();
    let mut releases = ReleaseServiceClient::new(ch);
    loop {
        let r = releases
            .get_release(pb::GetReleaseRequest {
                release_id: id.into(),
            })
            .await
            .map_err(status_text)?
            .into_inner()
            .release
            .ok_or("GetRelease answered without a release")?;
        if is_final(r.status) {
            return Ok(r.status);
        }
        if start.elapsed() > timeout {
            return Err(format!("release {id} not final after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no release of `flow` is queued or running (the backlog a
/// trigger run leaves); returns how long that took.
async fn drain(ch: Conn, flow: &str, timeout: Duration) -> Res<Duration> {
    let start = Instant::now();
    let mut releases = ReleaseServiceClient::new(ch);
    loop {
        let mut busy = false;
        for status in [pb::ReleaseStatus::Running, pb::ReleaseStatus::Queued] {
            let page = releases
                .list_releases(pb::ListReleasesRequest {
                    flow: flow.into(),
                    status: status as i32,
                    page_size: 1,
                    ..Default::default()
                })
                .await
                .map_err(status_text)?
                .into_inner();
            busy |= !page.releases.is_empty();
        }
        if !busy {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            return Err(format!("releases of {flow} still active after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run_all(
    args: &BenchArgs,
    srv: &Server,
    remote: Option<&super::gitops::Remote>,
) -> Res<Vec<Row>> {
    let c = args.concurrency as usize;
    let window = Window::new(args.duration);
    let pool = Pool::connect(&srv.endpoint, &srv.token, args.connections as usize).await?;
    let w = Arc::new(World {
        prefix: format!("b{}", &uuid::Uuid::new_v4().simple().to_string()[..6]),
        products: args.products as usize,
    });
    let mut rows = Vec::new();
    let rss = |mut row: Row| {
        row.rss_mib = srv.rss().map(mib);
        row
    };

    progress("baseline: Health/Check");
    let health = |pool: Pool| {
        move |_w: usize, _i: u64| {
            let mut h = HealthClient::new(pool.channel());
            async move {
                h.check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| ())
                .map_err(status_text)
            }
        }
    };
    let base1 = metered(srv, load::closed_loop(1, window, health(pool.clone()))).await;
    let base_c = metered(srv, load::closed_loop(c, window, health(pool.clone()))).await;
    let base1_p50 = base1.ms(0.5).max(0.001);
    let base_rate = base_c.rate().max(0.001);
    rows.push(rss(Row::new(
        "baseline",
        "Health/Check",
        "c=1".into(),
        &base1,
    )));
    let mut r = rss(Row::new(
        "baseline",
        "Health/Check",
        format!("c={c}"),
        &base_c,
    ));
    r.vs_baseline = Some(1.0);
    rows.push(r);
    // A throughput ratio against the baseline at the same concurrency.
    let vs = |mut row: Row| {
        row.vs_baseline = Some(row.per_second / base_rate);
        row
    };
    // A latency multiple of the no-op call's p50 at concurrency 1.
    let times = |mut row: Row| {
        row.vs_baseline = Some(row.p50_ms / base1_p50);
        row
    };

    // The store's own limit, before the server has any load to carry.
    let mut raw_store = None;
    if args.scenarios.contains(&Scenario::RawStore) {
        progress("raw-store: the store's own write limit");
        match super::anchor::run(args, window, c).await? {
            Some(row) => {
                raw_store = Some(row.per_second.max(0.001));
                rows.push(row);
            }
            None if args.target.is_some() => {
                progress("raw-store: skipped (the database of a --target server is not known here)")
            }
            None => {}
        }
    }

    progress(format!(
        "seeding {} products under prefix {}",
        w.products, w.prefix
    ));
    seed(&w, &pool, c).await?;
    let first = trigger(pool.channel(), w.trigger(w.parallel_flow(), w.product(0))).await?;
    let status = wait_final(pool.channel(), &first.id, Duration::from_secs(60)).await?;
    if status != pb::ReleaseStatus::Succeeded as i32 {
        return Err(format!(
            "the seed release {} ended {:?} instead of SUCCEEDED",
            first.id,
            pb::ReleaseStatus::try_from(status)
        ));
    }

    if args.scenarios.contains(&Scenario::Read) {
        progress("read: GetRelease, GetFlow");
        let (p, id) = (pool.clone(), first.id.clone());
        let s = metered(
            srv,
            load::closed_loop(c, window, move |_, _| {
                let mut r = ReleaseServiceClient::new(p.channel());
                let id = id.clone();
                async move {
                    r.get_release(pb::GetReleaseRequest { release_id: id })
                        .await
                        .map(|_| ())
                        .map_err(status_text)
                }
            }),
        )
        .await;
        rows.push(rss(vs(Row::new(
            "read",
            "GetRelease",
            format!("c={c}"),
            &s,
        ))));
        let (p, name) = (pool.clone(), w.parallel_flow());
        let s = metered(
            srv,
            load::closed_loop(c, window, move |_, _| {
                let mut f = FlowServiceClient::new(p.channel());
                let name = name.clone();
                async move {
                    f.get_flow(pb::GetFlowRequest {
                        name,
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
                    .map_err(status_text)
                }
            }),
        )
        .await;
        rows.push(rss(vs(Row::new("read", "GetFlow", format!("c={c}"), &s))));
    }

    if args.scenarios.contains(&Scenario::Trigger) {
        progress("trigger: TriggerRelease");
        let created = Arc::new(AtomicU64::new(0));
        let (p, wc, n) = (pool.clone(), w.clone(), created.clone());
        let s = metered(
            srv,
            load::closed_loop(c, window, move |worker, i| {
                let mut r = ReleaseServiceClient::new(p.channel());
                // Spread over the products so releases run side by side.
                let req = wc.trigger(wc.parallel_flow(), wc.product(worker + c * i as usize));
                let n = n.clone();
                async move {
                    r.trigger_release(req).await.map_err(status_text)?;
                    n.fetch_add(1, Ordering::Relaxed);
                    Ok::<(), String>(())
                }
            }),
        )
        .await;
        let mut row = rss(vs(Row::new(
            "trigger",
            "TriggerRelease",
            format!("c={c}"),
            &s,
        )));
        progress("trigger: waiting for the triggered releases to finish");
        let took = drain(pool.channel(), &w.parallel_flow(), Duration::from_secs(600)).await?;
        let n = created.load(Ordering::Relaxed);
        row.note = format!(
            "then ran the {n} releases to the end in {:.1} s",
            took.as_secs_f64()
        );
        rows.push(
            row.with("releases_created", n)
                .with("drain_s", took.as_secs_f64()),
        );
    }

    if args.scenarios.contains(&Scenario::EndToEnd) {
        rows.extend(end_to_end(args, &w, &pool, window, base_rate, srv).await?);
    }

    if args.scenarios.contains(&Scenario::FanOut) {
        for &n in &args.watchers {
            let row = fan_out(args, &w, &pool, srv, n).await?;
            rows.push(rss(times(row)));
        }
    }

    if args.scenarios.contains(&Scenario::Gitops) {
        match remote {
            Some(remote) => {
                let gitops =
                    super::gitops::run(args, &w.prefix, &pool, window, srv, remote).await?;
                rows.extend(gitops.into_iter().map(rss));
            }
            None => progress("gitops: skipped (it needs a server this tool starts, not --target)"),
        }
    }

    if args.scenarios.contains(&Scenario::LargeFlows) {
        for &n in &args.flow_sizes {
            let row = large_flow(&w, &pool, window, c, n, srv).await?;
            rows.push(rss(times(row)));
        }
    }
    // Every write row next to the store's limit for the same rows.
    if let Some(limit) = raw_store {
        for row in &mut rows {
            if matches!(row.scenario.as_str(), "trigger" | "end-to-end") {
                row.vs_raw_store = Some(row.per_second / limit);
            }
        }
    }
    Ok(rows)
}

/// Who waits for which release: filled by the one `WatchReleases` stream
/// that sees every release of the flow finish.
#[derive(Default)]
pub(super) struct Finishes {
    slots: std::sync::Mutex<HashMap<String, Slot>>,
    events: AtomicU64,
}

enum Slot {
    Waiting(oneshot::Sender<(i32, Instant)>),
    Done(i32, Instant),
}

impl Finishes {
    fn finish(&self, id: String, status: i32, at: Instant) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.remove(&id) {
            Some(Slot::Waiting(tx)) => {
                let _ = tx.send((status, at));
            }
            _ => {
                slots.insert(id, Slot::Done(status, at));
            }
        }
    }

    /// The final status of `id` and when it was seen.
    pub(super) async fn wait(&self, id: String, timeout: Duration) -> Res<(i32, Instant)> {
        let rx = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            match slots.remove(&id) {
                Some(Slot::Done(s, at)) => return Ok((s, at)),
                _ => {
                    let (tx, rx) = oneshot::channel();
                    slots.insert(id.clone(), Slot::Waiting(tx));
                    rx
                }
            }
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(format!(
                "the watch stream ended before release {id} finished"
            )),
            Err(_) => Err(format!("release {id} did not finish within {timeout:?}")),
        }
    }

    /// Follows `WatchReleases` for `flow`, resuming after errors, until
    /// aborted.
    pub(super) async fn follow(
        self: Arc<Self>,
        ch: Conn,
        flow: String,
        ready: oneshot::Sender<()>,
    ) {
        let mut cursor = String::new();
        let mut ready = Some(ready);
        loop {
            let stream = ReleaseServiceClient::new(ch.clone())
                .watch_releases(pb::WatchReleasesRequest {
                    flow: flow.clone(),
                    after_cursor: cursor.clone(),
                    ..Default::default()
                })
                .await;
            let mut stream = match stream {
                Ok(s) => s.into_inner(),
                Err(e) => {
                    progress(format!("WatchReleases: {}", status_text(e)));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
            while let Some(msg) = stream.next().await {
                let Ok(msg) = msg else { break };
                if !msg.cursor.is_empty() {
                    cursor = msg.cursor;
                }
                let Some(e) = msg.event else { continue };
                match e.change {
                    Some(pb::release_event::Change::Heartbeat(_)) | None => {}
                    Some(pb::release_event::Change::Release(r)) => {
                        self.events.fetch_add(1, Ordering::Relaxed);
                        if is_final(r.status) {
                            self.finish(e.release_id, r.status, Instant::now());
                        }
                    }
                    Some(_) => {
                        self.events.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Triggers a release and waits for its end, as seen on the watch stream.
async fn trigger_and_wait(
    ch: Conn,
    req: pb::TriggerReleaseRequest,
    finishes: Arc<Finishes>,
) -> Res<()> {
    let release = trigger(ch, req).await?;
    let (status, _) = finishes
        .wait(release.id.clone(), Duration::from_secs(120))
        .await?;
    if status != pb::ReleaseStatus::Succeeded as i32 {
        return Err(format!(
            "release {} ended {:?}",
            release.id,
            pb::ReleaseStatus::try_from(status)
        ));
    }
    Ok(())
}

async fn end_to_end(
    args: &BenchArgs,
    w: &Arc<World>,
    pool: &Pool,
    window: Window,
    base_rate: f64,
    srv: &Server,
) -> Res<Vec<Row>> {
    let c = args.concurrency as usize;
    let finishes = Arc::new(Finishes::default());
    let (ready_tx, ready_rx) = oneshot::channel();
    let follower = tokio::spawn(finishes.clone().follow(
        pool.channel(),
        w.parallel_flow(),
        ready_tx,
    ));
    let _ = ready_rx.await;
    let mut rows = Vec::new();

    progress("end-to-end: closed loop");
    let events0 = finishes.events.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let (p, wc, f) = (pool.clone(), w.clone(), finishes.clone());
    let closed = metered(
        srv,
        load::closed_loop(c, window, move |worker, _| {
            // One product per worker: its releases never queue.
            let req = wc.trigger(wc.parallel_flow(), wc.product(worker));
            trigger_and_wait(p.channel(), req, f.clone())
        }),
    )
    .await;
    let events = finishes.events.load(Ordering::Relaxed) - events0;
    let event_rate = events as f64 / t0.elapsed().as_secs_f64();
    let mut row = Row::new(
        "end-to-end",
        "trigger → SUCCEEDED",
        format!("c={c}"),
        &closed,
    );
    row.vs_baseline = Some(row.per_second / base_rate);
    row.rss_mib = srv.rss().map(mib);
    row.note = format!("{event_rate:.0} events/s");
    rows.push(row.with("events_per_second", event_rate));

    let rate = args.rate.unwrap_or_else(|| (closed.rate() / 2.0).max(1.0));
    progress(format!("end-to-end: open loop at {rate:.0} releases/s"));
    drain(pool.channel(), &w.parallel_flow(), Duration::from_secs(600)).await?;
    let events0 = finishes.events.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let (p, wc, f) = (pool.clone(), w.clone(), finishes.clone());
    let open = metered(
        srv,
        load::open_loop(rate, window, Duration::from_secs(60), move |i| {
            let req = wc.trigger(wc.parallel_flow(), wc.product(c + i as usize));
            trigger_and_wait(p.channel(), req, f.clone())
        }),
    )
    .await;
    let events = finishes.events.load(Ordering::Relaxed) - events0;
    let event_rate = events as f64 / t0.elapsed().as_secs_f64();
    let mut row = Row::new(
        "end-to-end",
        "trigger → SUCCEEDED",
        format!("rate={rate:.0}/s"),
        &open,
    );
    row.vs_baseline = Some(row.per_second / base_rate);
    row.rss_mib = srv.rss().map(mib);
    row.note = format!("open loop; {event_rate:.0} events/s");
    rows.push(
        row.with("events_per_second", event_rate)
            .with("offered_rate", rate),
    );
    follower.abort();
    Ok(rows)
}

/// `n` watchers on one release: connection and snapshot time, server memory
/// per idle watcher, then the delay from each event's commit to its arrival
/// at every watcher.
async fn fan_out(args: &BenchArgs, w: &World, pool: &Pool, srv: &Server, n: usize) -> Res<Row> {
    progress(format!("fan-out: {n} watchers"));
    let release = trigger(pool.channel(), w.trigger(w.gated_flow(), w.fan_product())).await?;
    let per = args.streams_per_connection as usize;
    let mut channels = Vec::new();
    for _ in 0..n.div_ceil(per) {
        channels.push(load::connect(&srv.endpoint, &srv.token).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = srv.rss();
    let ready = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let ch = channels[i / per].clone();
        let id = release.id.clone();
        let ready = ready.clone();
        tasks.spawn(async move {
            let mut s = Tally::default();
            let stream = ReleaseServiceClient::new(ch)
                .watch_release(pb::WatchReleaseRequest {
                    release_id: id,
                    after_seq: 0,
                })
                .await;
            let mut stream = match stream {
                Ok(st) => st.into_inner(),
                Err(e) => {
                    ready.fetch_add(1, Ordering::Relaxed);
                    s.err(status_text(e));
                    return s;
                }
            };
            let mut first = true;
            while let Some(msg) = stream.next().await {
                let e = match msg {
                    Ok(m) => m.event,
                    Err(e) => {
                        s.err(status_text(e));
                        break;
                    }
                };
                if first {
                    first = false;
                    ready.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let Some(e) = e else { continue };
                if matches!(e.change, Some(pb::release_event::Change::Heartbeat(_))) {
                    continue;
                }
                let arrived = SystemTime::now();
                let committed = e.time.and_then(|t| {
                    SystemTime::UNIX_EPOCH.checked_add(Duration::new(
                        t.seconds.max(0) as u64,
                        t.nanos.max(0) as u32,
                    ))
                });
                match committed.map(|c| arrived.duration_since(c).unwrap_or(Duration::ZERO)) {
                    Some(d) => s.ok(d),
                    None => s.err("an event without a time"),
                }
            }
            if first {
                ready.fetch_add(1, Ordering::Relaxed);
            }
            s
        });
    }
    while ready.load(Ordering::Relaxed) < n {
        if start.elapsed() > Duration::from_secs(300) {
            return Err(format!(
                "only {} of {n} watchers connected within 300 s",
                ready.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = start.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with = srv.rss();
    let per_watcher = match (before, with) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / n as f64),
        _ => None,
    };
    progress(format!("fan-out: {n} streams connected; opening the gate"));
    // Open the gate: the release runs to the end and every stream closes.
    let mut releases = ReleaseServiceClient::new(pool.channel());
    let meter = CpuMeter::start(srv);
    let approve_start = Instant::now();
    loop {
        let r = releases
            .approve_environment(pb::ApproveEnvironmentRequest {
                release_id: release.id.clone(),
                environment: w.env("qa"),
                approve: true,
                comment: "bench".into(),
            })
            .await;
        match r {
            Ok(_) => break,
            Err(s) if s.code() == Code::FailedPrecondition => {
                if approve_start.elapsed() > Duration::from_secs(60) {
                    return Err(format!("approval never became possible: {}", s.message()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(s) => return Err(status_text(s)),
        }
    }
    let mut total = Sample::new();
    // Recorded once every stream has ended, not while others still receive.
    let mut tallies = Vec::with_capacity(n);
    let all = async {
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(t) => tallies.push(t),
                Err(e) => total.err(format!("watcher task: {e}")),
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(300), all)
        .await
        .is_err()
    {
        return Err(format!("the {n} watch streams did not end within 300 s"));
    }
    total.elapsed = approve_start.elapsed();
    meter.stamp(srv, &mut total);
    for t in tallies {
        total.absorb(t);
    }
    let mut row = Row::new(
        "fan-out",
        "WatchRelease commit → arrival",
        format!("N={n}"),
        &total,
    );
    row.note = format!(
        "{n} streams in {:.2} s{}",
        connected.as_secs_f64(),
        per_watcher
            .map(|b| format!("; {:.1} KiB per idle watcher", b / 1024.0))
            .unwrap_or_default()
    );
    Ok(row
        .with("connect_s", connected.as_secs_f64())
        .with("bytes_per_watcher", per_watcher.unwrap_or(0.0))
        .with("events_per_watcher", total.count() as f64 / n.max(1) as f64))
}

/// Validates (and plans) a flow of `n` environments through `ValidateFlow`:
/// ten side by side per wave, each after the one ten places before it.
async fn large_flow(
    w: &World,
    pool: &Pool,
    window: Window,
    c: usize,
    n: usize,
    srv: &Server,
) -> Res<Row> {
    progress(format!("large flows: {n} environments"));
    let n = n.max(2);
    let t = Instant::now();
    let names: Vec<String> = (0..n).map(|i| w.large_env(i)).collect();
    concurrently(names, c, |e| ensure_env(pool.channel(), e)).await?;
    let created = t.elapsed();
    const WIDTH: usize = 10;
    let flow = pb::Flow {
        name: format!("{}-large-{n}", w.prefix),
        trigger_environment: w.large_env(0),
        steps: (1..n)
            .map(|i| pb::FlowStep {
                environment: w.large_env(i),
                depends_on: vec![w.large_env(i.saturating_sub(WIDTH))],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let waves = 1 + (n - 1).div_ceil(WIDTH);
    let request = Arc::new(pb::ValidateFlowRequest { flow: Some(flow) });
    let p = pool.clone();
    let s = metered(
        srv,
        load::closed_loop(1, window, move |_, _| {
            let mut f = FlowServiceClient::new(p.channel())
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20);
            let req = (*request).clone();
            async move {
                let resp = f
                    .validate_flow(req)
                    .await
                    .map_err(status_text)?
                    .into_inner();
                if let Some(v) = resp.violations.first() {
                    return Err(format!("{}: {}", v.field, v.description));
                }
                match resp.plan {
                    Some(plan) if plan.waves.len() == waves => Ok(()),
                    Some(plan) => Err(format!(
                        "a plan of {} waves, expected {waves}",
                        plan.waves.len()
                    )),
                    None => Err("no plan and no violation".to_string()),
                }
            }
        }),
    )
    .await;
    let mut row = Row::new("large-flows", "ValidateFlow", format!("envs={n}"), &s);
    row.note = format!(
        "{n} environments created in {:.1} s beforehand",
        created.as_secs_f64()
    );
    Ok(row.with("create_environments_s", created.as_secs_f64()))
}
