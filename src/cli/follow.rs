//! `promoflow release follow`: every release's changes as they commit, from
//! `WatchReleases` (optionally of one product or flow), one line each, or
//! one JSON object per line (`-o json`: the stream's messages in the proto3
//! JSON mapping, cursor included, for scripts that resume with `--after`).
//!
//! A dropped connection is resumed from the last cursor received, so no
//! change is missed or shown twice. Heartbeats are not printed. It runs until
//! interrupted.

use std::collections::HashMap;

use super::client::{CliError, CmdResult, Ctx, fail};
use super::output::{self, Output, env_status, outln, release_status, step_status};
use super::watch::{Reconnects, counters, env_detail, step_label, symbol};
use crate::proto::v1 as pb;
use crate::proto::v1::release_event::Change;

/// What a line names about a release: kept from its first event, or read
/// once with GetRelease for releases created before the follow began.
#[derive(Clone)]
struct Known {
    product: String,
    version: String,
    flow: String,
}

pub async fn follow(ctx: &Ctx, product: String, flow: String, after: String) -> CmdResult {
    if ctx.output == Output::Id {
        return fail("release follow prints lines or -o json/yaml; -o id has nothing to list");
    }
    let mut cursor = after;
    let mut known: HashMap<String, Known> = HashMap::new();
    let mut reconnects = Reconnects::default();
    loop {
        let request = pb::WatchReleasesRequest {
            product: product.clone(),
            flow: flow.clone(),
            after_cursor: cursor.clone(),
        };
        let mut stream = reconnects
            .open(|| {
                let mut releases = ctx.releases();
                let request = request.clone();
                async move { releases.watch_releases(request).await }
            })
            .await?;
        loop {
            match stream.message().await {
                Ok(Some(msg)) => {
                    reconnects.progress();
                    cursor = msg.cursor.clone();
                    let Some(event) = &msg.event else { continue };
                    if matches!(event.change, None | Some(Change::Heartbeat(_))) {
                        continue;
                    }
                    match ctx.output {
                        Output::Table => {
                            let about = about(ctx, &mut known, event).await?;
                            outln!("{}", line(event, &about));
                        }
                        Output::Yaml => {
                            output::print_value(Output::Yaml, &output::to_value(&msg)?)?;
                            outln!("---");
                        }
                        _ => outln!(
                            "{}",
                            serde_json::to_string(&output::to_value(&msg)?)
                                .map_err(|e| CliError::Message(e.to_string()))?
                        ),
                    }
                }
                // The stream does not end on its own: a clean end (a proxy
                // closing it) is resumed like a dropped connection.
                Ok(None) if reconnects.count() => break,
                Ok(None) => {
                    return fail(
                        "the server keeps closing the stream; run the command again with --after CURSOR (-o json shows cursors)",
                    );
                }
                Err(e) if reconnects.retry(&e) => {
                    eprintln!(
                        "connection lost ({}); resuming after the last change shown",
                        e.message()
                    );
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        reconnects.pause().await;
    }
}

/// The product, version and flow of the event's release.
async fn about(
    ctx: &Ctx,
    known: &mut HashMap<String, Known>,
    event: &pb::ReleaseEvent,
) -> Result<Known, CliError> {
    if let Some(Change::Snapshot(r)) = &event.change {
        let k = Known {
            product: r.product.clone(),
            version: r.version.clone(),
            flow: r.flow.clone(),
        };
        known.insert(r.id.clone(), k.clone());
        return Ok(k);
    }
    if let Some(k) = known.get(&event.release_id) {
        return Ok(k.clone());
    }
    let r = ctx
        .releases()
        .get_release(pb::GetReleaseRequest {
            release_id: event.release_id.clone(),
        })
        .await?
        .into_inner()
        .release
        .unwrap_or_default();
    let k = Known {
        product: r.product,
        version: r.version,
        flow: r.flow,
    };
    known.insert(event.release_id.clone(), k.clone());
    Ok(k)
}

/// `19:11:20  01a2…  demo-trioapp 1.1.0 via multi-env-parallel-promotion  ▶ prod RUNNING`
fn line(event: &pb::ReleaseEvent, about: &Known) -> String {
    let time = output::datetime(event.time.as_ref())
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default();
    let what = match &event.change {
        Some(Change::Snapshot(r)) => {
            let s = release_status(r.status);
            format!("{} release created, {s}", symbol(&s))
        }
        Some(Change::Release(c)) => {
            let s = release_status(c.status);
            let message = if c.message.is_empty() {
                String::new()
            } else {
                format!(": {}", c.message)
            };
            format!(
                "{} release {s} ({}){message}",
                symbol(&s),
                counters(&c.counters.unwrap_or_default()).join(", ")
            )
        }
        Some(Change::Environment(c)) => {
            let e = c.environment.clone().unwrap_or_default();
            let s = env_status(e.status);
            let detail = env_detail(&e, &s);
            let detail = if detail.is_empty() || s == "RUNNING" {
                String::new()
            } else {
                format!(" ({detail})")
            };
            format!("{} {} {s}{detail}", symbol(&s), e.environment)
        }
        Some(Change::Step(c)) => {
            let step = c.step.clone().unwrap_or_default();
            let env = if c.environment.is_empty() {
                "release"
            } else {
                &c.environment
            };
            format!(
                "  {env} {}: {}",
                step_label(&step),
                step_status(step.status)
            )
        }
        Some(Change::Heartbeat(_)) | None => String::new(),
    };
    format!(
        "{time}  {}  {} {} via {}  {what}",
        event.release_id, about.product, about.version, about.flow
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_release_and_the_change() {
        let about = Known {
            product: "shop".into(),
            version: "1.2.0".into(),
            flow: "parallel".into(),
        };
        let event = pb::ReleaseEvent {
            release_id: "r-1".into(),
            seq: 4,
            time: Some(prost_types::Timestamp {
                seconds: 3600 * 19 + 60 * 11 + 20,
                nanos: 0,
            }),
            change: Some(Change::Environment(pb::EnvironmentChange {
                environment: Some(pb::EnvironmentRun {
                    environment: "prod".into(),
                    status: pb::EnvironmentStatus::Skipped as i32,
                    blocked_on: vec!["qa".into()],
                    ..Default::default()
                }),
            })),
        };
        assert_eq!(
            line(&event, &about),
            "19:11:20  r-1  shop 1.2.0 via parallel  ↷ prod SKIPPED (skipped: qa did not succeed)"
        );
    }
}
