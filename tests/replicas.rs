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

use common::hook::Hook;
use common::serve::Serve;
use common::watch::read_stream;
use common::*;
use promoflow::proto::v1 as pb;

/// A protobuf timestamp as (seconds, nanos), ordered like time.
type Instant = (i64, i32);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_run_every_step_exactly_once() {
    let db = TestDb::new().await;
    let (hook, url) = Hook::start(&[]).await;
    let replicas = [
        Serve::replica("r1").start(&db).await,
        Serve::replica("r2").start(&db).await,
        Serve::replica("r3").start(&db).await,
    ];
    seed_hooked(&replicas[0], &url, 5).await;
    // 50 releases of 5 products (QUEUE), triggered round-robin.
    let mut ids = Vec::new();
    for i in 0..50 {
        let ch = &replicas[i % 3];
        ids.push(
            trigger(ch, &format!("app-{}", i % 5), &format!("2.{i}.0"))
                .await
                .id,
        );
    }
    let done = wait_all(&replicas[1], &ids).await;
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
async fn a_watcher_on_one_replica_sees_another_replicas_release() {
    let db = TestDb::new().await;
    let (_hook, url) = Hook::slow(Duration::from_millis(200)).await;
    let a = Serve::replica("a").start(&db).await;
    let b = Serve::replica("b").start(&db).await;
    seed_hooked(&a, &url, 1).await;
    let r = trigger(&a, "app-0", "4.0.0").await;
    let (seqs, ended_final) = read_stream(&b, &r.id, 1, 10_000).await;
    let last = get_release(&a, &r.id).await.last_seq;
    assert!(ended_final, "the stream on B ended with the final event");
    assert_eq!(
        seqs,
        (2..=last).collect::<Vec<_>>(),
        "every event, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_replicas_late_writes_are_fenced() {
    let db = TestDb::new().await;
    let (hook, url) = Hook::slow(Duration::from_millis(1500)).await;
    let a = Serve::replica("a").start(&db).await;
    let b = Serve::replica("b").start(&db).await;
    seed_hooked(&a, &url, 1).await;
    let r = trigger(&a, "app-0", "6.0.0").await;
    for _ in 0..200 {
        if hook.per_key().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Pause A past its 2 s lease; B takes the release over and finishes it.
    a.pause();
    let done = wait_all(&b, std::slice::from_ref(&r.id)).await;
    a.resume();
    assert_eq!(done[0].status, pb::ReleaseStatus::Succeeded as i32);
    // A wakes up with its HTTP answers and tries to write: fenced. The
    // release stays as B left it, and its event log stays contiguous.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = get_release(&a, &r.id).await;
    assert_eq!(after.status, pb::ReleaseStatus::Succeeded as i32);
    assert_eq!(after.last_seq, done[0].last_seq, "no late write landed");
    let (seqs, ended_final) = read_stream(&a, &r.id, 1, 10_000).await;
    assert!(ended_final);
    assert_eq!(seqs, (2..=after.last_seq).collect::<Vec<_>>());
    assert!(hook.per_key().values().all(|n| *n <= 2));
}

/// What one replica remembers for reads (an API token, a flow's latest
/// version, a final release) follows the writes of another. On PostgreSQL
/// both remember for an hour, so only the other replica's announcement
/// (NOTIFY in the writing transaction) can make A see the change; on
/// SQLite, where processes sharing a file hear nothing of each other,
/// `--remember-for` (1 s here) is what bounds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_remembered_on_one_replica_follow_writes_on_another() {
    let db = TestDb::new().await;
    let remember_for = if db.is_postgres() { "1h" } else { "1s" };
    let (hook, url) = Hook::start(&["prod-eu"]).await;
    let a = Serve::replica("a")
        .args(["--remember-for", remember_for])
        .start(&db)
        .await;
    let b = Serve::replica("b")
        .args(["--remember-for", remember_for])
        .start(&db)
        .await;
    seed_hooked(&a, &url, 1).await;
    // Read on A first, so that A remembers each of them.
    let made = a
        .tokens()
        .create_token(pb::CreateTokenRequest {
            name: "reader".into(),
            role: pb::Role::Viewer as i32,
            ..Default::default()
        })
        .await
        .expect("create token")
        .into_inner();
    let reader = connect(&a.addr, &made.secret);
    list_envs(&reader, 0, "").await.expect("a valid token");
    // Its first use is recorded (a write that A forgets); the next calls
    // find it recorded and are served from what A remembers.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !token_used(&a, "reader").await {
        assert!(std::time::Instant::now() < deadline, "use never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    list_envs(&reader, 0, "").await.expect("a valid token");
    assert_eq!(get_flow(&a, "parallel", 0).await.expect("flow").version, 1);
    let r = trigger(&a, "app-0", "2.0.0").await;
    let failed = wait_final(&a, &r.id).await;
    assert_eq!(status(&failed), pb::ReleaseStatus::Failed, "{failed:?}");
    get_release(&a, &r.id).await;

    // Changed on B.
    b.tokens()
        .revoke_token(pb::RevokeTokenRequest {
            name: "reader".into(),
        })
        .await
        .expect("revoke on B");
    create_envs(&b, &["staging"], pb::EnvironmentKind::Unspecified).await;
    edit_latest(
        &b,
        "parallel",
        vec![add_envs_after("qa", &["staging"], None)],
    )
    .await;
    hook.heal();
    retry(&b, &r.id).await.expect("retry on B");

    // Seen on A.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = [false; 2];
    while seen != [true, true] {
        assert!(
            std::time::Instant::now() < deadline,
            "A still serves what B changed (revoked token, flow version): {seen:?}"
        );
        if !seen[0] {
            seen[0] = list_envs(&reader, 0, "")
                .await
                .is_err_and(|s| s.code() == tonic::Code::Unauthenticated);
        }
        if !seen[1] {
            seen[1] = get_flow(&a, "parallel", 0).await.expect("flow").version == 2;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retried = wait_until(&a, &r.id, "the retry made on B", |r| {
        status(r) != pb::ReleaseStatus::Failed
    })
    .await;
    assert!(retried.last_seq > failed.last_seq, "{retried:?}");
}

/// Whether the token `name` has its use recorded.
async fn token_used(api: &impl Api, name: &str) -> bool {
    api.tokens()
        .list_tokens(pb::ListTokensRequest::default())
        .await
        .expect("list tokens")
        .into_inner()
        .tokens
        .iter()
        .any(|t| t.name == name && t.last_used_time.is_some())
}
