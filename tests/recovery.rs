//! `kill -9` of the real binary (`common::serve`), on SQLite or
//! PostgreSQL: releases are finished, and streams resume without a gap or a
//! repeated event, whether the same server comes back on the same data or
//! another replica takes over.

mod common;

use std::time::Duration;

use common::hook::Hook;
use common::serve::Serve;
use common::watch::*;
use common::*;
use promoflow::proto::v1 as pb;
use promoflow::proto::v1::release_event::Change;

#[tokio::test]
async fn releases_survive_kill_9() {
    // Seed through an in-process server, then hand the database over to
    // the real binary.
    let server = start_soaking("soak", 2000).await;
    let db = server.stop().await;

    // A restarted process is another replica: short leases.
    let mut child = Serve::new().short_leases().start(&db).await;
    let mut ids = Vec::new();
    for v in ["2.0.0", "3.0.0"] {
        ids.push(trigger(&child, DEMO, v).await.id);
    }
    // Kill while the first release soaks in production.
    wait_until(&child, &ids[0], "production running", |r| {
        PRODS
            .iter()
            .all(|e| env_status(r, e) == pb::EnvironmentStatus::Running)
    })
    .await;
    child.kill();

    child.restart().await;
    for id in &ids {
        let done = wait_final(&child, id).await;
        assert_eq!(status(&done), pb::ReleaseStatus::Succeeded, "{done:?}");
        for e in &done.environments {
            assert_eq!(e.status, pb::EnvironmentStatus::Succeeded as i32, "{e:?}");
        }
    }
    let p = get_product(&child, DEMO).await.unwrap();
    for app in p.applications.iter().filter(|a| a.environment != "dev") {
        assert_eq!(app.version, "3.0.0", "{app:?}");
    }
    // The events of the interrupted release have no gap either.
    let store = promoflow::store::Store::connect(&db.url, 2).await.unwrap();
    let last = get_release(&child, &ids[0]).await.last_seq;
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
async fn kill_9_then_resume_misses_nothing() {
    // Seed in-process, then run the real binary on the same database.
    let server = start_soaking("soak", 2000).await;
    let db: TestDb = server.stop().await;

    let mut bin = Serve::new().start(&db).await;
    let r = trigger(&bin, DEMO, "").await;
    let mut s = watch(&bin, &r.id, 0).await;
    let snap = s.message().await.unwrap().unwrap().event.unwrap();
    let mut seen = vec![snap.seq];
    // Read until a production environment runs its 2 s soak, then kill -9.
    let prod_running = match &snap.change {
        Some(Change::Snapshot(r)) => r.environments.iter().any(|e| {
            e.environment.starts_with("prod") && e.status == pb::EnvironmentStatus::Running as i32
        }),
        _ => panic!("first message is a snapshot"),
    };
    let mut live = Vec::new();
    // Already running in the snapshot: kill at once; otherwise read on.
    if !prod_running {
        loop {
            let e = s
                .message()
                .await
                .expect("live event")
                .unwrap_or_else(|| panic!("ended early: {:?} {}", snap, describe(&live)))
                .event
                .unwrap();
            if is_heartbeat(&e) {
                continue;
            }
            live.push(e.clone());
            seen.push(e.seq);
            if matches!(env_change(&e), Some((env, pb::EnvironmentStatus::Running)) if env.starts_with("prod"))
            {
                break;
            }
        }
    }
    bin.kill();
    // Whatever was already on the wire still counts; then the stream breaks.
    loop {
        match s.message().await {
            Ok(Some(m)) => {
                let e = m.event.unwrap();
                if !is_heartbeat(&e) {
                    seen.push(e.seq);
                }
            }
            Ok(None) => panic!("stream ended with OK after a crash"),
            Err(_) => break,
        }
    }
    drop(s);

    bin.restart().await;
    let last_seen = *seen.last().unwrap();
    let rest = drain(watch(&bin, &r.id, last_seen).await).await;
    ends_succeeded(&rest);
    seen.extend(seqs(&rest));
    let expected: Vec<i64> = (snap.seq..=*seen.last().unwrap()).collect();
    assert_eq!(seen, expected, "no event missing or repeated");
    let done = get_release(&bin, &r.id).await;
    assert_eq!(done.status, pb::ReleaseStatus::Succeeded as i32);
    assert_eq!(done.last_seq, *seen.last().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replicas_releases_are_finished_by_the_others() {
    let db = TestDb::new().await;
    let (hook, url) = Hook::slow(Duration::from_millis(1500)).await;
    let mut a = Serve::replica("a").start(&db).await;
    let b = Serve::replica("b").start(&db).await;
    seed_hooked(&a, &url, 4).await;
    let mut ids = Vec::new();
    for p in 0..4 {
        ids.push(trigger(&a, &format!("app-{p}"), "3.0.0").await.id);
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
    let done = wait_all(&b, &ids).await;
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
async fn a_watch_resumes_on_another_replica_after_a_kill() {
    let db = TestDb::new().await;
    let (_hook, url) = Hook::slow(Duration::from_millis(1000)).await;
    let mut a = Serve::replica("a").start(&db).await;
    let b = Serve::replica("b").start(&db).await;
    seed_hooked(&a, &url, 1).await;
    let r = trigger(&a, "app-0", "5.0.0").await;
    let (head, _) = read_stream(&a, &r.id, 1, 6).await;
    a.kill();
    let resume_from = *head.last().expect("some events before the kill");
    let (tail, ended_final) = read_stream(&b, &r.id, resume_from, 10_000).await;
    let last = get_release(&b, &r.id).await;
    assert_eq!(last.status, pb::ReleaseStatus::Succeeded as i32);
    assert!(ended_final);
    let all: Vec<i64> = head.into_iter().chain(tail).collect();
    assert_eq!(
        all,
        (2..=last.last_seq).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
}
