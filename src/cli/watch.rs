//! The live release view: one line per change, built on `WatchRelease`
//! with resume (a dropped connection reconnects from the last `seq`).

use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::proto::v1 as pb;
use crate::proto::v1::release_event::Change;
use crate::proto::v1::release_service_client::ReleaseServiceClient;

fn name<E: TryFrom<i32> + std::fmt::Debug>(
    v: i32,
    strip: &str,
    f: fn(&E) -> &'static str,
) -> String {
    E::try_from(v)
        .map(|e| f(&e).trim_start_matches(strip).to_string())
        .unwrap_or_else(|_| v.to_string())
}

fn release_status(v: i32) -> String {
    name::<pb::ReleaseStatus>(v, "RELEASE_STATUS_", pb::ReleaseStatus::as_str_name)
}

fn env_status(v: i32) -> String {
    name::<pb::EnvironmentStatus>(v, "ENVIRONMENT_STATUS_", pb::EnvironmentStatus::as_str_name)
}

fn step_status(v: i32) -> String {
    name::<pb::StepStatus>(v, "STEP_STATUS_", pb::StepStatus::as_str_name)
}

fn step_kind(v: i32) -> String {
    name::<pb::StepKind>(v, "STEP_KIND_", pb::StepKind::as_str_name).to_lowercase()
}

fn symbol(status: &str) -> &'static str {
    match status {
        "SUCCEEDED" => "✔",
        "FAILED" => "✘",
        "RUNNING" => "▶",
        "SUSPENDED" => "⏸",
        "SKIPPED" => "↷",
        "TERMINATED" | "TERMINATING" => "■",
        _ => "·",
    }
}

/// Watches release `id` until it is final, printing each change; returns
/// the final status.
pub async fn watch(
    channel: Channel,
    id: &str,
) -> Result<pb::ReleaseStatus, Box<dyn std::error::Error + Send + Sync>> {
    let start = Instant::now();
    let mut after = 0i64;
    let mut status = pb::ReleaseStatus::Unspecified;
    let mut reconnects = 0;
    loop {
        let mut client = ReleaseServiceClient::new(channel.clone());
        let stream = client
            .watch_release(pb::WatchReleaseRequest {
                release_id: id.to_string(),
                after_seq: after,
            })
            .await;
        let mut stream = match stream {
            Ok(s) => s.into_inner(),
            Err(e) if e.code() == tonic::Code::Unavailable && reconnects < 30 => {
                reconnects += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            match stream.message().await {
                Ok(Some(msg)) => {
                    let Some(ev) = msg.event else { continue };
                    let t = start.elapsed().as_secs_f64();
                    match ev.change {
                        Some(Change::Snapshot(r)) => {
                            after = ev.seq;
                            status = pb::ReleaseStatus::try_from(r.status).unwrap_or_default();
                            for e in &r.environments {
                                let s = env_status(e.status);
                                println!("[{t:5.1}s] {} {:<10} {s}", symbol(&s), e.environment);
                            }
                        }
                        Some(Change::Release(c)) => {
                            after = ev.seq;
                            let s = release_status(c.status);
                            status = pb::ReleaseStatus::try_from(c.status).unwrap_or_default();
                            let n = c.counters.unwrap_or_default();
                            println!(
                                "[{t:5.1}s] {} release {s}  ({} succeeded, {} running, {} pending, {} failed){}",
                                symbol(&s),
                                n.succeeded,
                                n.running + n.suspended,
                                n.pending,
                                n.failed,
                                if c.message.is_empty() {
                                    String::new()
                                } else {
                                    format!(": {}", c.message)
                                }
                            );
                        }
                        Some(Change::Environment(c)) => {
                            after = ev.seq;
                            if let Some(e) = c.environment {
                                let s = env_status(e.status);
                                let extra = if !e.blocked_on.is_empty() && s != "RUNNING" {
                                    format!(" (waiting for {})", e.blocked_on.join(", "))
                                } else if !e.message.is_empty() {
                                    format!(" ({})", e.message)
                                } else {
                                    String::new()
                                };
                                println!(
                                    "[{t:5.1}s] {} {:<10} {s}{extra}",
                                    symbol(&s),
                                    e.environment
                                );
                            }
                        }
                        Some(Change::Step(c)) => {
                            after = ev.seq;
                            if let Some(s) = c.step {
                                let st = step_status(s.status);
                                let what = if s.workflow.is_empty() {
                                    step_kind(s.kind)
                                } else {
                                    format!("{} {}", step_kind(s.kind), s.workflow)
                                };
                                let env = if c.environment.is_empty() {
                                    "release"
                                } else {
                                    &c.environment
                                };
                                println!("[{t:5.1}s]   {:<10} {what}: {st}", env);
                            }
                        }
                        Some(Change::Heartbeat(_)) | None => {}
                    }
                }
                Ok(None) => {
                    println!(
                        "\nrelease {id} {} in {:.1}s",
                        release_status(status as i32),
                        start.elapsed().as_secs_f64()
                    );
                    return Ok(status);
                }
                Err(e) if e.code() == tonic::Code::Unavailable && reconnects < 30 => {
                    reconnects += 1;
                    eprintln!(
                        "connection lost ({}); resuming after seq {after}",
                        e.message()
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
