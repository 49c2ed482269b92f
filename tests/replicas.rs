//! Several replicas on one database: leased work, fail-over, fencing, and
//! streams that see every replica's events. Each replica is a real
//! `promoflow serve` process (so it can be killed and paused).
//!
//! On PostgreSQL the replicas wake each other through LISTEN/NOTIFY; on
//! SQLite (one file shared by the processes) through the periodic
//! catch-up. The same guarantees are checked on both.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::TestDb;
use common::hook::Hook;
use common::replica::Replica;
use promoflow::proto::v1 as pb;
use promoflow::proto::v1::environment_service_client::EnvironmentServiceClient;
use promoflow::proto::v1::flow_service_client::FlowServiceClient;
use promoflow::proto::v1::product_service_client::ProductServiceClient;
use promoflow::proto::v1::release_event::Change;
use promoflow::proto::v1::release_service_client::ReleaseServiceClient;
use promoflow::proto::v1::workflow_service_client::WorkflowServiceClient;
use tonic::transport::Channel;

const ENVS: [&str; 5] = ["dev", "qa", "prod", "prod-eu", "prod-asia"];

/// The parallel flow whose production steps call `hook_url`, and
/// `products` products with an application in every environment.
async fn seed(ch: &Channel, hook_url: &str, products: usize) {
    let mut envs = EnvironmentServiceClient::new(ch.clone());
    for e in ENVS {
        envs.create_environment(pb::CreateEnvironmentRequest {
            environment: Some(pb::Environment {
                name: e.into(),
                ..Default::default()
            }),
        })
        .await
        .expect("environment");
    }
    WorkflowServiceClient::new(ch.clone())
        .create_workflow(pb::CreateWorkflowRequest {
            workflow: Some(pb::Workflow {
                name: "deploy-check".into(),
                kind: Some(pb::workflow::Kind::Http(pb::HttpWorkflow {
                    url: hook_url.into(),
                    timeout: Some(prost_types::Duration {
                        seconds: 30,
                        nanos: 0,
                    }),
                    max_attempts: 1,
                    ..Default::default()
                })),
                ..Default::default()
            }),
        })
        .await
        .expect("workflow");
    for p in 0..products {
        ProductServiceClient::new(ch.clone())
            .create_product(pb::CreateProductRequest {
                product: Some(pb::Product {
                    name: format!("app-{p}"),
                    applications: ENVS
                        .iter()
                        .map(|e| pb::Application {
                            environment: e.to_string(),
                            name: format!("app-{p}-{e}"),
                            version: "1.0.0".into(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }),
            })
            .await
            .expect("product");
    }
    let mut flows = FlowServiceClient::new(ch.clone());
    let step = |env: &str, dep: &str, post: &str| pb::FlowStep {
        environment: env.into(),
        depends_on: vec![dep.into()],
        policy: Some(pb::Policy {
            post_action: post.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    flows
        .create_flow(pb::CreateFlowRequest {
            flow: Some(pb::Flow {
                name: "parallel".into(),
                trigger_environment: "dev".into(),
                steps: vec![
                    step("qa", "dev", ""),
                    step("prod", "qa", "deploy-check"),
                    step("prod-eu", "qa", "deploy-check"),
                    step("prod-asia", "qa", "deploy-check"),
                ],
                ..Default::default()
            }),
        })
        .await
        .expect("flow");
}

async fn trigger(ch: &Channel, product: &str, version: &str) -> pb::Release {
    ReleaseServiceClient::new(ch.clone())
        .trigger_release(pb::TriggerReleaseRequest {
            flow: "parallel".into(),
            product: product.into(),
            version: version.into(),
            ..Default::default()
        })
        .await
        .expect("trigger")
        .into_inner()
        .release
        .expect("release")
}

async fn get(ch: &Channel, id: &str) -> pb::Release {
    ReleaseServiceClient::new(ch.clone())
        .get_release(pb::GetReleaseRequest {
            release_id: id.into(),
        })
        .await
        .expect("get")
        .into_inner()
        .release
        .expect("release")
}

fn is_final(status: i32) -> bool {
    [
        pb::ReleaseStatus::Succeeded as i32,
        pb::ReleaseStatus::Failed as i32,
        pb::ReleaseStatus::Terminated as i32,
    ]
    .contains(&status)
}

/// Waits (up to 60 s) until every release is final; returns them.
async fn wait_all(ch: &Channel, ids: &[String]) -> Vec<pb::Release> {
    for _ in 0..600 {
        let mut all = Vec::new();
        for id in ids {
            all.push(get(ch, id).await);
        }
        if all.iter().all(|r| is_final(r.status)) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("releases did not finish in 60 s");
}

/// A protobuf timestamp as (seconds, nanos), ordered like time.
type Instant = (i64, i32);

fn ts(t: &Option<prost_types::Timestamp>) -> Instant {
    t.as_ref().map(|t| (t.seconds, t.nanos)).expect("timestamp")
}

/// Reads a release's stream from `after` until it ends; returns the seqs
/// (snapshots excluded) and whether the last event made it final.
async fn read_stream(ch: &Channel, id: &str, after: i64, max: usize) -> (Vec<i64>, bool) {
    let mut s = ReleaseServiceClient::new(ch.clone())
        .watch_release(pb::WatchReleaseRequest {
            release_id: id.into(),
            after_seq: after,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut seqs = Vec::new();
    let mut ended_final = false;
    while seqs.len() < max {
        match s.message().await {
            Ok(Some(m)) => {
                let e = m.event.expect("event");
                match e.change {
                    Some(Change::Heartbeat(_)) | Some(Change::Snapshot(_)) => {}
                    Some(Change::Release(c)) => {
                        seqs.push(e.seq);
                        ended_final = is_final(c.status);
                    }
                    _ => {
                        seqs.push(e.seq);
                        ended_final = false;
                    }
                }
            }
            Ok(None) => break,
            Err(e) if e.code() == tonic::Code::Unavailable => break,
            Err(e) => panic!("stream failed: {e}"),
        }
    }
    (seqs, ended_final)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_run_every_step_exactly_once() {
    let db = TestDb::new().await;
    let (hook, url) = Hook::start(&[]).await;
    let replicas = [
        Replica::start(&db.url, "r1").await,
        Replica::start(&db.url, "r2").await,
        Replica::start(&db.url, "r3").await,
    ];
    seed(&replicas[0].channel, &url, 5).await;
    // 50 releases of 5 products (QUEUE), triggered round-robin.
    let mut ids = Vec::new();
    for i in 0..50 {
        let ch = &replicas[i % 3].channel;
        ids.push(
            trigger(ch, &format!("app-{}", i % 5), &format!("2.{i}.0"))
                .await
                .id,
        );
    }
    let done = wait_all(&replicas[1].channel, &ids).await;
    for r in &done {
        assert_eq!(r.status, pb::ReleaseStatus::Succeeded as i32, "{r:?}");
    }
    // Every production step ran exactly once: 3 per release.
    let per_step = hook.per_step();
    assert_eq!(per_step.len(), 150, "one hit per (release, environment)");
    assert!(per_step.values().all(|n| *n == 1), "{per_step:?}");
    // QUEUE held across replicas: a product's releases never overlapped.
    let mut by_product: HashMap<String, Vec<(Instant, Instant)>> = HashMap::new();
    for r in &done {
        by_product
            .entry(r.product.clone())
            .or_default()
            .push((ts(&r.start_time), ts(&r.finish_time)));
    }
    for (p, mut spans) in by_product {
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "{p}: releases overlapped: {w:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replicas_releases_are_finished_by_the_others() {
    let db = TestDb::new().await;
    let (hook, url) = Hook::slow(Duration::from_millis(1500)).await;
    let mut a = Replica::start(&db.url, "a").await;
    let b = Replica::start(&db.url, "b").await;
    seed(&a.channel, &url, 4).await;
    let mut ids = Vec::new();
    for p in 0..4 {
        ids.push(trigger(&a.channel, &format!("app-{p}"), "3.0.0").await.id);
    }
    // Kill A while its production steps are in flight.
    for _ in 0..200 {
        if hook.per_key().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!hook.per_key().is_empty(), "steps started before the kill");
    a.kill();
    let done = wait_all(&b.channel, &ids).await;
    for r in &done {
        assert_eq!(r.status, pb::ReleaseStatus::Succeeded as i32, "{r:?}");
    }
    // Interrupted steps ran again with the same key, at most twice; every
    // step used exactly one key.
    let per_key = hook.per_key();
    assert!(per_key.values().all(|n| *n <= 2), "{per_key:?}");
    assert!(
        per_key.values().any(|n| *n == 2),
        "some step was re-run after the kill"
    );
    assert_eq!(
        per_key.len(),
        hook.per_step().len(),
        "one idempotency key per step"
    );
    assert_eq!(per_key.len(), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_on_one_replica_sees_another_replicas_release() {
    let db = TestDb::new().await;
    let (_hook, url) = Hook::slow(Duration::from_millis(200)).await;
    let a = Replica::start(&db.url, "a").await;
    let b = Replica::start(&db.url, "b").await;
    seed(&a.channel, &url, 1).await;
    let r = trigger(&a.channel, "app-0", "4.0.0").await;
    let (seqs, ended_final) = read_stream(&b.channel, &r.id, 1, 10_000).await;
    let last = get(&a.channel, &r.id).await.last_seq;
    assert!(ended_final, "the stream on B ended with the final event");
    assert_eq!(
        seqs,
        (2..=last).collect::<Vec<_>>(),
        "every event, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_resumes_on_another_replica_after_a_kill() {
    let db = TestDb::new().await;
    let (_hook, url) = Hook::slow(Duration::from_millis(1000)).await;
    let mut a = Replica::start(&db.url, "a").await;
    let b = Replica::start(&db.url, "b").await;
    seed(&a.channel, &url, 1).await;
    let r = trigger(&a.channel, "app-0", "5.0.0").await;
    let (head, _) = read_stream(&a.channel, &r.id, 1, 6).await;
    a.kill();
    let resume_from = *head.last().expect("some events before the kill");
    let (tail, ended_final) = read_stream(&b.channel, &r.id, resume_from, 10_000).await;
    let last = get(&b.channel, &r.id).await;
    assert_eq!(last.status, pb::ReleaseStatus::Succeeded as i32);
    assert!(ended_final);
    let all: Vec<i64> = head.into_iter().chain(tail).collect();
    assert_eq!(
        all,
        (2..=last.last_seq).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_replicas_late_writes_are_fenced() {
    let db = TestDb::new().await;
    let (hook, url) = Hook::slow(Duration::from_millis(1500)).await;
    let a = Replica::start(&db.url, "a").await;
    let b = Replica::start(&db.url, "b").await;
    seed(&a.channel, &url, 1).await;
    let r = trigger(&a.channel, "app-0", "6.0.0").await;
    for _ in 0..200 {
        if hook.per_key().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Pause A past its 2 s lease; B takes the release over and finishes it.
    a.pause();
    let done = wait_all(&b.channel, std::slice::from_ref(&r.id)).await;
    a.resume();
    assert_eq!(done[0].status, pb::ReleaseStatus::Succeeded as i32);
    // A wakes up with its HTTP answers and tries to write: fenced. The
    // release stays as B left it, and its event log stays contiguous.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = get(&a.channel, &r.id).await;
    assert_eq!(after.status, pb::ReleaseStatus::Succeeded as i32);
    assert_eq!(after.last_seq, done[0].last_seq, "no late write landed");
    let (seqs, ended_final) = read_stream(&a.channel, &r.id, 1, 10_000).await;
    assert!(ended_final);
    assert_eq!(seqs, (2..=after.last_seq).collect::<Vec<_>>());
    assert!(hook.per_key().values().all(|n| *n <= 2));
}
