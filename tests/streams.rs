//! The release status streams (WatchRelease, WatchReleases) against a real
//! server (SQLite or PostgreSQL, see `common`).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::watch::*;
use common::*;
use promoflow::proto::v1 as pb;
use promoflow::proto::v1::release_event::Change;

/// Polls until the release is SUSPENDED (all prod approvals waiting).
async fn wait_suspended(server: &TestServer, id: &str) -> pb::Release {
    wait_until(server, id, "suspended", |r| {
        status(r) == pb::ReleaseStatus::Suspended
    })
    .await
}

async fn approve_prods(server: &TestServer, id: &str) {
    for env in PRODS {
        approve(server, id, env, true, "ok").await.expect("approve");
    }
}

#[tokio::test]
async fn watch_from_snapshot_sees_every_event_in_order() {
    let server = start_soaking("soak", 300).await;
    let r = trigger(&server, DEMO, "").await;
    let mut s = watch(&server, &r.id, 0).await;
    let first = s.message().await.expect("first").expect("not ended");
    let first = first.event.expect("event");
    let snap = match &first.change {
        Some(Change::Snapshot(snap)) => snap.clone(),
        other => panic!("first message is not a snapshot: {other:?}"),
    };
    assert_eq!(first.seq, snap.last_seq, "snapshot carries its seq");
    assert!(first.seq >= 1);
    let events = drain(s).await;
    let expected: Vec<i64> = (first.seq + 1..first.seq + 1 + events.len() as i64).collect();
    assert_eq!(seqs(&events), expected, "contiguous, in seq order");
    // Ends right after the event that made the release SUCCEEDED.
    ends_succeeded(&events);
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| release_status(e).is_none_or(|s| s != pb::ReleaseStatus::Succeeded)),
        "only the last event is the final one"
    );
    let done = get_release(&server, &r.id).await;
    assert_eq!(
        done.last_seq,
        events.last().unwrap().seq,
        "{}",
        describe(&events)
    );
    // Same events as a later replay.
    let log = full_log(&server, &r.id).await;
    assert_eq!(&log[(first.seq - 1) as usize..], &events[..]);
    // The branches ran together: each prod's RUNNING before any SUCCEEDED
    // (checked on the whole log: the snapshot may already include some).
    let events = log;
    let pos = |env: &str, st: pb::EnvironmentStatus| {
        events
            .iter()
            .position(|e| env_change(e) == Some((env, st)))
            .unwrap_or_else(|| panic!("no {st:?} event for {env}: {}", describe(&events)))
    };
    let prods = ["prod", "prod-eu", "prod-asia"];
    let last_running = prods
        .iter()
        .map(|p| pos(p, pb::EnvironmentStatus::Running))
        .max()
        .unwrap();
    let first_succeeded = prods
        .iter()
        .map(|p| pos(p, pb::EnvironmentStatus::Succeeded))
        .min()
        .unwrap();
    assert!(last_running < first_succeeded, "{}", describe(&events));
}

#[tokio::test]
async fn resume_replays_exactly_the_rest() {
    let server = start_soaking("soak", 300).await;
    let r = trigger(&server, DEMO, "").await;
    // Live: read up to seq 5, then drop the stream mid-release.
    let k = 5;
    let mut s = watch(&server, &r.id, 1).await;
    let mut head = Vec::new();
    while head.last().map(|e: &pb::ReleaseEvent| e.seq) != Some(k) {
        let e = s
            .message()
            .await
            .expect("live event")
            .expect("not ended")
            .event
            .expect("event");
        if !is_heartbeat(&e) {
            head.push(e);
        }
    }
    drop(s);
    let done = wait_final(&server, &r.id).await;
    assert_eq!(done.status, pb::ReleaseStatus::Succeeded as i32);
    let log = full_log(&server, &r.id).await; // seqs 2..=last
    let last = done.last_seq;
    assert!(last > k + 1, "enough events: {last}");
    let at = |seq: i64| (seq - 2) as usize;
    assert_eq!(&head[..], &log[..at(k + 1)], "live head matches the log");
    // k mid: union of head and resume is the log, no gap or duplicate.
    let tail = drain(watch(&server, &r.id, k).await).await;
    let mut union = head.clone();
    union.extend(tail);
    assert_eq!(union, log);
    // k = 1: everything after the creation snapshot.
    assert_eq!(drain(watch(&server, &r.id, 1).await).await, log);
    // k = last - 1: only the final event.
    let one = drain(watch(&server, &r.id, last - 1).await).await;
    assert_eq!(one, log[at(last)..]);
    ends_succeeded(&one);
    // k = last on a final release: ends with OK at once, no event.
    assert!(drain(watch(&server, &r.id, last).await).await.is_empty());
    // Errors.
    let e = expect_code(
        try_watch(&server, &r.id, last + 1).await,
        tonic::Code::OutOfRange,
    );
    assert!(e.message().contains(&last.to_string()), "{e:?}");
    expect_code(
        try_watch(&server, "no-such-release", 0).await,
        tonic::Code::NotFound,
    );
    expect_code(
        try_watch(&server, "no-such-release", 3).await,
        tonic::Code::NotFound,
    );
    expect_code(
        try_watch(&server, &r.id, -1).await,
        tonic::Code::InvalidArgument,
    );
    expect_code(
        try_watch(&server, "", 0).await,
        tonic::Code::InvalidArgument,
    );
}

#[tokio::test]
async fn idle_watcher_gets_heartbeats_with_the_latest_seq() {
    let server =
        TestServer::start_with(|c| c.heartbeat_interval = Duration::from_millis(200)).await;
    create_approval(&server, "gate", None).await;
    seed_parallel(&server, Some("gate")).await;
    let r = trigger(&server, DEMO, "").await;
    let suspended = wait_suspended(&server, &r.id).await;
    let latest = suspended.last_seq;
    let mut s = watch(&server, &r.id, latest).await;
    for _ in 0..2 {
        let e = s
            .message()
            .await
            .expect("heartbeat")
            .expect("not ended")
            .event
            .expect("event");
        match e.change {
            Some(Change::Heartbeat(h)) => {
                assert_eq!(h.latest_seq, latest);
                assert_eq!(e.seq, latest);
                assert_eq!(e.release_id, r.id);
            }
            other => panic!("expected a heartbeat while suspended, got {other:?}"),
        }
    }
    // Still live after heartbeats: approvals flow through and the stream ends.
    approve_prods(&server, &r.id).await;
    let rest = drain(s).await;
    let expected: Vec<i64> = (latest + 1..=latest + rest.len() as i64).collect();
    assert_eq!(seqs(&rest), expected);
    ends_succeeded(&rest);
}

#[tokio::test]
async fn slow_watcher_misses_nothing() {
    let server = start_soaking("soak", 100).await;
    let r = trigger(&server, DEMO, "").await;
    // Opened before the fast one, read only after the fast one finished.
    let slow = watch(&server, &r.id, 1).await;
    let fast = drain(watch(&server, &r.id, 1).await).await;
    ends_succeeded(&fast);
    let slow = drain(slow).await;
    assert_eq!(slow, fast);
    assert_eq!(slow, full_log(&server, &r.id).await);
}

#[tokio::test]
async fn watch_releases_across_concurrent_releases() {
    let server =
        TestServer::start_with(|c| c.heartbeat_interval = Duration::from_millis(200)).await;
    create_wait(&server, "soak", 100).await;
    seed_parallel(&server, Some("soak")).await;
    let products: Vec<String> = (0..20).map(|i| format!("app{i:02}")).collect();
    for p in &products {
        create_product_in(&server, p, &PARALLEL_ENVS, dev_only).await;
    }
    let mut client = server.releases();
    // Opened before triggering: sees every event from seq 1 on.
    let mut all = client
        .watch_releases(pb::WatchReleasesRequest::default())
        .await
        .expect("watch releases")
        .into_inner();
    let ids: Vec<String> =
        futures::future::join_all(products.iter().map(|p| trigger(&server, p, "")))
            .await
            .into_iter()
            .map(|r| r.id)
            .collect();
    let mut per: HashMap<String, Vec<i64>> = HashMap::new();
    let mut msgs: Vec<(String, pb::ReleaseEvent)> = Vec::new();
    let mut finished = 0;
    while finished < ids.len() {
        let m = all.message().await.expect("event").expect("not ended");
        let e = m.event.clone().expect("event");
        if is_heartbeat(&e) {
            assert!(e.release_id.is_empty());
            continue;
        }
        assert!(ids.contains(&e.release_id), "unknown release {e:?}");
        if matches!(
            release_status(&e),
            Some(pb::ReleaseStatus::Succeeded | pb::ReleaseStatus::Failed)
        ) {
            finished += 1;
        }
        per.entry(e.release_id.clone()).or_default().push(e.seq);
        msgs.push((m.cursor, e));
    }
    for id in &ids {
        let r = get_release(&server, id).await;
        assert_eq!(r.status, pb::ReleaseStatus::Succeeded as i32);
        let expected: Vec<i64> = (1..=r.last_seq).collect();
        assert_eq!(per[id], expected, "events of {id}");
        // Seq 1 is the creation snapshot.
        let first = msgs.iter().find(|(_, e)| &e.release_id == id).unwrap();
        assert!(matches!(first.1.change, Some(Change::Snapshot(_))));
        // Same events as the release's own stream.
        let log = full_log(&server, id).await;
        let mine: Vec<&pb::ReleaseEvent> = msgs
            .iter()
            .map(|(_, e)| e)
            .filter(|e| &e.release_id == id && e.seq > 1)
            .collect();
        assert_eq!(mine, log.iter().collect::<Vec<_>>());
    }
    drop(all);
    // Resume from mid-stream: exactly the rest, then (idle) a heartbeat.
    for m in [0, msgs.len() / 3, msgs.len() / 2, msgs.len() - 1] {
        let mut resumed = client
            .watch_releases(pb::WatchReleasesRequest {
                after_cursor: msgs[m].0.clone(),
                ..Default::default()
            })
            .await
            .expect("resume")
            .into_inner();
        let mut got = Vec::new();
        loop {
            let r = resumed.message().await.expect("event").expect("not ended");
            let e = r.event.expect("event");
            if is_heartbeat(&e) {
                break;
            }
            got.push(e);
        }
        let want: Vec<pb::ReleaseEvent> = msgs[m + 1..].iter().map(|(_, e)| e.clone()).collect();
        assert_eq!(got.len(), want.len(), "resume after message {m}");
        assert!(got == want, "resume after message {m}: different events");
    }
    // A product filter sees only that product's releases.
    let mut one = client
        .watch_releases(pb::WatchReleasesRequest {
            product: "app07".into(),
            after_cursor: msgs[0].0.clone(),
            ..Default::default()
        })
        .await
        .expect("filtered")
        .into_inner();
    let mut got = Vec::new();
    loop {
        let e = one.message().await.unwrap().unwrap().event.unwrap();
        if is_heartbeat(&e) {
            break;
        }
        got.push(e);
    }
    let app07 = &ids[7];
    let want: Vec<pb::ReleaseEvent> = msgs[1..]
        .iter()
        .map(|(_, e)| e.clone())
        .filter(|e| &e.release_id == app07)
        .collect();
    assert!(!want.is_empty());
    assert!(got == want, "filtered stream");
    // Bad cursors.
    // Not base64, wrong prefix ("x:1"), negative ("p:-1"), not a number ("p:a").
    for bad in ["!!!", "eDox", "cDotMQ", "cDph"] {
        let r = client
            .watch_releases(pb::WatchReleasesRequest {
                after_cursor: bad.into(),
                ..Default::default()
            })
            .await
            .map(|_| ());
        let s = expect_code(r, tonic::Code::InvalidArgument);
        assert_eq!(violation_fields(&s), vec!["after_cursor"], "{bad}");
    }
}

#[tokio::test]
async fn a_thousand_watchers_see_every_event() {
    let server = TestServer::start().await;
    create_approval(&server, "gate", None).await;
    seed_parallel(&server, Some("gate")).await;
    let r = trigger(&server, DEMO, "").await;
    let suspended = wait_suspended(&server, &r.id).await;
    // All watchers open (and read up to now) while the release waits.
    let mut tasks = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(1000);
    for _ in 0..1000 {
        let c = server.channel.clone();
        let id = r.id.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = try_watch(&c, &id, 1).await.expect("watch");
            let mut got = Vec::new();
            let mut told = false;
            while let Some(m) = s.message().await.expect("stream ends with OK") {
                let e = m.event.expect("event");
                if is_heartbeat(&e) {
                    continue;
                }
                let seq = e.seq;
                got.push(e);
                if !told && seq == suspended.last_seq {
                    told = true;
                    let _ = ready.send(()).await;
                }
            }
            got
        }));
    }
    drop(ready_tx);
    for _ in 0..1000 {
        ready_rx.recv().await.expect("every watcher caught up");
    }
    approve_prods(&server, &r.id).await;
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.expect("watcher task"));
    }
    let log = full_log(&server, &r.id).await;
    ends_succeeded(&log);
    for (i, got) in all.iter().enumerate() {
        assert!(got == &log, "watcher {i} saw {:?}", seqs(got));
    }
}

#[tokio::test]
async fn shutdown_ends_open_watches_with_unavailable() {
    let server = TestServer::start().await;
    create_approval(&server, "gate", None).await;
    seed_parallel(&server, Some("gate")).await;
    let r = trigger(&server, DEMO, "").await;
    let suspended = wait_suspended(&server, &r.id).await;
    let mut s = watch(&server, &r.id, 0).await;
    let snap = s.message().await.unwrap().unwrap().event.unwrap();
    assert_eq!(snap.seq, suspended.last_seq);
    let mut all = server
        .releases()
        .watch_releases(pb::WatchReleasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let reader = tokio::spawn(async move {
        let one = loop {
            match s.message().await {
                Ok(Some(m)) if m.event.as_ref().is_some_and(is_heartbeat) => continue,
                other => break other.map(|m| m.map(|m| m.event)),
            }
        };
        let two = loop {
            match all.message().await {
                Ok(Some(m)) if m.event.as_ref().is_some_and(is_heartbeat) => continue,
                other => break other.map(|m| m.map(|m| m.event)),
            }
        };
        (one, two)
    });
    let _db = server.stop().await;
    let (one, two) = reader.await.unwrap();
    let one = expect_code(one, tonic::Code::Unavailable);
    assert!(one.message().contains("resume"), "{one:?}");
    expect_code(two, tonic::Code::Unavailable);
}

/// Every committed event gets the next global position, in the order of its
/// release's sequence, and on PostgreSQL every write announces its release's
/// last event (`release seq position`) to the other replicas.
#[tokio::test]
async fn events_are_numbered_in_order_and_announced() {
    use sea_orm::{ConnectionTrait, Statement};
    let server = TestServer::start().await;
    let db = sea_orm::Database::connect(server.db.url.as_str())
        .await
        .expect("connect to the test database");
    let mut listener = if server.db.is_postgres() {
        let mut l =
            sea_orm::sqlx::postgres::PgListener::connect_with(db.get_postgres_connection_pool())
                .await
                .expect("LISTEN connection");
        l.listen(promoflow::store::notify::NOTIFY_CHANNEL)
            .await
            .expect("LISTEN");
        Some(l)
    } else {
        None
    };
    seed_parallel(&server, None).await;
    let r = trigger(&server, DEMO, "").await;
    let done = wait_final(&server, &r.id).await;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT seq, position FROM events WHERE release_id = '{}' ORDER BY seq",
                r.id
            ),
        ))
        .await
        .expect("read events");
    let stored: Vec<(i64, i64)> = rows
        .iter()
        .map(|row| {
            (
                row.try_get::<i64>("", "seq").expect("seq"),
                row.try_get::<i64>("", "position").expect("position"),
            )
        })
        .collect();
    let seqs: Vec<i64> = stored.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=done.last_seq).collect::<Vec<_>>(), "no gaps");
    assert!(
        stored.windows(2).all(|w| w[0].1 < w[1].1),
        "positions increase with seq: {stored:?}"
    );
    let Some(listener) = listener.as_mut() else {
        return;
    };
    // Until the last event's notification: each one names a stored event.
    let mut announced = Vec::new();
    while announced.last().map(|(s, _)| *s) != Some(done.last_seq) {
        let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .unwrap_or_else(|_| panic!("no notification of the last event; got {announced:?}"))
            .expect("notification");
        let parts: Vec<&str> = n.payload().split(' ').collect();
        assert_eq!(parts.len(), 3, "payload {:?}", n.payload());
        if parts[0] != r.id {
            continue;
        }
        let at = (
            parts[1].parse::<i64>().expect("seq"),
            parts[2].parse::<i64>().expect("position"),
        );
        assert!(stored.contains(&at), "{at:?} is not stored: {stored:?}");
        announced.push(at);
    }
    assert!(announced.len() >= 2, "one per write: {announced:?}");
}

/// Checks the release-level events of a whole event log (after seq 1) of a
/// release of `envs`: every environment status change is followed, in the
/// same transaction, by a ReleaseChange whose counters match the
/// environments (as the API promises), and no ReleaseChange shows the
/// release SUSPENDED while one of its environments runs. Returns how many
/// ReleaseChanges there were.
#[track_caller]
fn check_release_changes(envs: &[&str], log: &[pb::ReleaseEvent]) -> usize {
    let mut statuses: HashMap<String, pb::EnvironmentStatus> = envs
        .iter()
        .map(|e| (e.to_string(), pb::EnvironmentStatus::Pending))
        .collect();
    let count = |statuses: &HashMap<String, pb::EnvironmentStatus>, s: pb::EnvironmentStatus| {
        statuses.values().filter(|x| **x == s).count() as i32
    };
    // Set by an environment status change, cleared by the ReleaseChange
    // that must come before any event of a later transaction (events of one
    // transaction come steps first, then environments, then the release).
    let mut owed: Option<i64> = None;
    let mut announced = 0;
    for e in log {
        match &e.change {
            Some(Change::Environment(_)) => {
                let (name, status) = env_change(e).expect("environment");
                if statuses.insert(name.to_string(), status) != Some(status) {
                    owed.get_or_insert(e.seq);
                }
            }
            Some(Change::Release(c)) => {
                let n = c.counters.expect("counters set");
                let want = (
                    count(&statuses, pb::EnvironmentStatus::Succeeded),
                    count(&statuses, pb::EnvironmentStatus::Running),
                    count(&statuses, pb::EnvironmentStatus::Suspended),
                    count(&statuses, pb::EnvironmentStatus::Pending),
                );
                assert_eq!(
                    (n.succeeded, n.running, n.suspended, n.pending),
                    want,
                    "counters of event {}: {}",
                    e.seq,
                    describe(log)
                );
                if c.status == pb::ReleaseStatus::Suspended as i32 {
                    assert_eq!(
                        want.1,
                        0,
                        "event {} shows a suspended release with a running environment: {}",
                        e.seq,
                        describe(log)
                    );
                }
                owed = None;
                announced += 1;
            }
            _ => assert!(
                owed.is_none(),
                "environment change {owed:?} not followed by counters before event {}: {}",
                e.seq,
                describe(log)
            ),
        }
    }
    assert!(owed.is_none(), "last change without counters: {owed:?}");
    announced
}

#[tokio::test]
async fn counters_follow_every_environment_status_change() {
    let server = start_soaking("soak", 50).await;
    let r = trigger(&server, DEMO, "").await;
    wait_final(&server, &r.id).await;
    let log = full_log(&server, &r.id).await;
    let announced = check_release_changes(&PARALLEL_ENVS, &log);
    // Pending → running → succeeded for dev, qa and the three productions
    // come in at least three transactions, each announcing new counters:
    // the trigger's own (the release started, dev done, qa started), qa's
    // end with the productions' start, and the productions' end.
    assert!(
        announced >= 3,
        "{announced} ReleaseChanges: {}",
        describe(&log)
    );
}

/// The same through approvals: an approval runs its environment again, and
/// the release stops being SUSPENDED in that same transaction.
#[tokio::test]
async fn counters_and_status_follow_approvals() {
    let server = TestServer::start().await;
    create_approval(&server, "gate", None).await;
    seed_parallel(&server, Some("gate")).await;
    let r = trigger(&server, DEMO, "").await;
    wait_suspended(&server, &r.id).await;
    approve_prods(&server, &r.id).await;
    let done = wait_final(&server, &r.id).await;
    assert_eq!(done.status, pb::ReleaseStatus::Succeeded as i32);
    let log = full_log(&server, &r.id).await;
    check_release_changes(&PARALLEL_ENVS, &log);
}
