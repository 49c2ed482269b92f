//! Reading release streams (WatchRelease): open, drain, describe.

use promoflow::proto::v1 as pb;
use promoflow::proto::v1::release_event::Change;

use super::{Api, Res, get_release, is_final};

pub type Watch = tonic::Streaming<pb::WatchReleaseResponse>;

/// Opens the release's stream after `after_seq` (0: from a snapshot).
pub async fn try_watch(api: &impl Api, id: &str, after_seq: i64) -> Res<Watch> {
    api.releases()
        .watch_release(pb::WatchReleaseRequest {
            release_id: id.into(),
            after_seq,
        })
        .await
        .map(|r| r.into_inner())
}

/// [`try_watch`] that must succeed.
pub async fn watch(api: &impl Api, id: &str, after_seq: i64) -> Watch {
    try_watch(api, id, after_seq).await.expect("watch release")
}

pub fn is_heartbeat(e: &pb::ReleaseEvent) -> bool {
    matches!(e.change, Some(Change::Heartbeat(_)))
}

/// Reads a stream to its end (skipping heartbeats); panics on an error.
pub async fn drain(mut s: Watch) -> Vec<pb::ReleaseEvent> {
    let mut out = Vec::new();
    while let Some(m) = s.message().await.expect("stream ends with OK") {
        let e = m.event.expect("event set");
        if !is_heartbeat(&e) {
            out.push(e);
        }
    }
    out
}

/// Reads a release's stream from `after` until it ends, breaks
/// (UNAVAILABLE) or has given `max` events; returns the seqs (snapshots
/// excluded) and whether the last event made the release final.
pub async fn read_stream(api: &impl Api, id: &str, after: i64, max: usize) -> (Vec<i64>, bool) {
    let mut s = watch(api, id, after).await;
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

/// One line per event (`seq what`), for assertion messages.
pub fn describe(events: &[pb::ReleaseEvent]) -> String {
    events
        .iter()
        .map(|e| {
            let d = match &e.change {
                Some(Change::Release(c)) => {
                    format!("release {:?}", pb::ReleaseStatus::try_from(c.status))
                }
                Some(Change::Environment(_)) => format!("env {:?}", env_change(e)),
                Some(Change::Step(c)) => format!(
                    "step {} {} {:?}",
                    c.environment,
                    c.index,
                    c.step.as_ref().map(|s| (s.kind, s.status))
                ),
                Some(Change::Snapshot(_)) => "snapshot".into(),
                Some(Change::Heartbeat(_)) => "heartbeat".into(),
                None => "none".into(),
            };
            format!("{} {}", e.seq, d)
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

pub fn seqs(events: &[pb::ReleaseEvent]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

/// The release status an event sets, if it is a release change.
pub fn release_status(e: &pb::ReleaseEvent) -> Option<pb::ReleaseStatus> {
    match &e.change {
        Some(Change::Release(r)) => pb::ReleaseStatus::try_from(r.status).ok(),
        _ => None,
    }
}

/// The environment and status an event sets, if it is an environment change.
pub fn env_change(e: &pb::ReleaseEvent) -> Option<(&str, pb::EnvironmentStatus)> {
    match &e.change {
        Some(Change::Environment(c)) => {
            let env = c.environment.as_ref().expect("environment set");
            Some((
                env.environment.as_str(),
                pb::EnvironmentStatus::try_from(env.status).unwrap_or_default(),
            ))
        }
        _ => None,
    }
}

/// The whole event log of a (final) release: event 1 is the creation
/// snapshot, the others come from a replay after seq 1.
pub async fn full_log(api: &impl Api, id: &str) -> Vec<pb::ReleaseEvent> {
    let rest = drain(watch(api, id, 1).await).await;
    let r = get_release(api, id).await;
    let expected: Vec<i64> = (2..=r.last_seq).collect();
    assert_eq!(
        seqs(&rest),
        expected,
        "replay after 1 is the whole log: {}",
        describe(&rest)
    );
    rest
}

/// Asserts `events` end with the event that made the release SUCCEEDED.
#[track_caller]
pub fn ends_succeeded(events: &[pb::ReleaseEvent]) {
    let last = events.last().expect("some event");
    assert_eq!(
        release_status(last),
        Some(pb::ReleaseStatus::Succeeded),
        "last event: {last:?}"
    );
}
