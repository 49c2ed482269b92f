//! `promoflow release`: trigger, watch and steer releases.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::client::{CliError, CmdResult, Ctx, all_pages, initiator};
use super::output::{
    self, Output, elapsed, env_status, fields, outln, print_list, print_one, release_status,
    step_kind, step_status, table,
};
use super::watch::{View, counters, env_detail, watch_until};
use crate::proto::v1 as pb;

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Start a release of a product through a flow.
    #[command(
        after_help = "Examples:\n  promoflow release trigger --flow multi-env-parallel-promotion --product demo --wait\n  promoflow release trigger --flow multi-env-parallel-promotion --product demo --version 1.2.0 -o json\n\nWith --wait the exit code is 0 only when the release SUCCEEDED."
    )]
    Trigger {
        #[arg(long)]
        flow: String,
        #[arg(long)]
        product: String,
        /// The version to promote (default: the one recorded in the trigger environment).
        #[arg(long, default_value = "", hide_default_value = true)]
        version: String,
        /// A note recorded with the release.
        #[arg(long, default_value = "", hide_default_value = true)]
        message: String,
        /// Idempotency key: the same key and request return the same release.
        #[arg(long, default_value = "", hide_default_value = true)]
        request_id: String,
        /// Promote from this commit of the trigger application's branch (default: its tip).
        #[arg(long, default_value = "", hide_default_value = true)]
        source_commit: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Follow a release live until it is final (exit code 0 when it SUCCEEDED).
    #[command(
        after_help = "Examples:\n  promoflow release watch 0193c0de\n  promoflow release watch --latest --product demo-trioapp\n\nOn a terminal the view redraws in place; piped, it prints one line per change. An id may be shortened to a unique prefix or suffix of at least 4 characters (its tail tells releases apart: ids begin with their creation time)."
    )]
    Watch {
        #[arg(required_unless_present = "latest")]
        id: Option<String>,
        /// Watch the newest release (of --product and --flow, when given)
        #[arg(long, conflicts_with = "id")]
        latest: bool,
        #[arg(
            long,
            default_value = "",
            hide_default_value = true,
            requires = "latest"
        )]
        product: String,
        #[arg(
            long,
            default_value = "",
            hide_default_value = true,
            requires = "latest"
        )]
        flow: String,
        #[arg(long, value_enum, default_value_t = ViewArg::Auto)]
        view: ViewArg,
        /// Stop as soon as the release is in this status, with exit code 0
        /// (`--until suspended`: wait for an approval to be asked); a final
        /// status ends the watch as always
        #[arg(long, value_enum)]
        until: Option<StatusArg>,
    },
    /// Print every release's changes as they happen (all releases, or those
    /// of --product / --flow), one line each; `-o json` prints one JSON
    /// object per line, with the cursor to resume from. Runs until Ctrl-C.
    #[command(
        after_help = "Examples:\n  promoflow release follow\n  promoflow release follow --product demo-trioapp\n  promoflow release follow --flow multi-env-parallel-promotion -o json | jq -c '.event.environment // empty'\n  promoflow release follow -o json --after \"$cursor\""
    )]
    Follow {
        /// Only releases of this product.
        #[arg(long, default_value = "", hide_default_value = true)]
        product: String,
        /// Only releases of this flow.
        #[arg(long, default_value = "", hide_default_value = true)]
        flow: String,
        /// Resume right after this cursor (the `cursor` of a `-o json` line);
        /// without it, from now on.
        #[arg(
            long,
            value_name = "CURSOR",
            default_value = "",
            hide_default_value = true
        )]
        after: String,
    },
    /// Show a release and its environments.
    #[command(after_help = "Example:\n  promoflow release get 0193c0de-… -o json")]
    Get { id: String },
    /// List releases, newest first.
    #[command(after_help = "Example:\n  promoflow release list --product demo --status running")]
    List {
        #[arg(long, default_value = "", hide_default_value = true)]
        product: String,
        #[arg(long, default_value = "", hide_default_value = true)]
        flow: String,
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
    },
    /// Stop a release: running steps are cancelled, unfinished environments TERMINATED.
    #[command(
        after_help = "Example:\n  promoflow release terminate 0193c0de-… --reason 'bad build'"
    )]
    Terminate {
        id: String,
        #[arg(long, default_value = "", hide_default_value = true)]
        reason: String,
    },
    /// Re-run a FAILED or TERMINATED release from the steps that did not succeed.
    #[command(after_help = "Example:\n  promoflow release retry 0193c0de-… --wait")]
    Retry {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Approve an environment awaiting approval.
    #[command(
        after_help = "Example:\n  promoflow release approve 0193c0de-… prod --comment 'change ticket 4711'"
    )]
    Approve {
        id: String,
        environment: String,
        #[arg(long, default_value = "", hide_default_value = true)]
        comment: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Reject an environment awaiting approval (the environment fails).
    #[command(
        after_help = "Example:\n  promoflow release reject 0193c0de-… prod --comment 'not during the freeze'"
    )]
    Reject {
        id: String,
        environment: String,
        #[arg(long, default_value = "", hide_default_value = true)]
        comment: String,
    },
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Follow the release until it is final; exit code 0 only when it SUCCEEDED.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ViewArg {
    /// Redraw in place on a terminal, one line per change otherwise.
    Auto,
    /// Always one line per change.
    Lines,
    /// Always redraw in place.
    Live,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Queued,
    Running,
    Suspended,
    Terminating,
    Succeeded,
    Failed,
    Terminated,
}

impl From<StatusArg> for pb::ReleaseStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Queued => Self::Queued,
            StatusArg::Running => Self::Running,
            StatusArg::Suspended => Self::Suspended,
            StatusArg::Terminating => Self::Terminating,
            StatusArg::Succeeded => Self::Succeeded,
            StatusArg::Failed => Self::Failed,
            StatusArg::Terminated => Self::Terminated,
        }
    }
}

pub async fn run(ctx: &Ctx, cmd: ReleaseCommand) -> CmdResult {
    let mut client = ctx.releases();
    let release = match cmd {
        ReleaseCommand::Trigger {
            flow,
            product,
            version,
            message,
            request_id,
            source_commit,
            wait,
        } => {
            let r = client
                .trigger_release(pb::TriggerReleaseRequest {
                    flow,
                    product,
                    version,
                    request_id,
                    initiator: initiator(),
                    message,
                    source_commit,
                })
                .await?
                .into_inner()
                .release
                .unwrap_or_default();
            return after_change(ctx, r, wait.wait, |r| {
                format!(
                    "release {} triggered: {} {} through {} v{}",
                    r.id, r.product, r.version, r.flow, r.flow_version
                )
            })
            .await;
        }
        ReleaseCommand::Watch {
            id,
            latest: _,
            product,
            flow,
            view,
            until,
        } => {
            let id = match id {
                Some(id) => resolve_id(ctx, &id).await?,
                None => latest(ctx, product, flow).await?,
            };
            let view = match view {
                ViewArg::Auto => View::Auto,
                ViewArg::Lines => View::Lines,
                ViewArg::Live => View::Live,
            };
            return watch(ctx, &id, view, until.map(Into::into)).await;
        }
        ReleaseCommand::Follow {
            product,
            flow,
            after,
        } => return super::follow::follow(ctx, product, flow, after).await,
        ReleaseCommand::Get { id } => {
            let r = get(ctx, &resolve_id(ctx, &id).await?).await?;
            print_one(ctx.output, &r, describe)?;
            return Ok(ExitCode::SUCCESS);
        }
        ReleaseCommand::List {
            product,
            flow,
            status,
        } => {
            let status = status.map(pb::ReleaseStatus::from).unwrap_or_default() as i32;
            let all = all_pages(|page_token| {
                let mut client = client.clone();
                let (product, flow) = (product.clone(), flow.clone());
                async move {
                    let r = client
                        .list_releases(pb::ListReleasesRequest {
                            product,
                            flow,
                            status,
                            page_size: 0,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((r.releases, r.next_page_token))
                }
            })
            .await?;
            print_list(
                ctx.output,
                &all,
                &[
                    "id", "product", "version", "flow", "status", "progress", "created",
                ],
                |r| {
                    let n = r.counters.unwrap_or_default();
                    vec![
                        r.id.clone(),
                        r.product.clone(),
                        r.version.clone(),
                        format!("{} v{}", r.flow, r.flow_version),
                        release_status(r.status),
                        format!("{}/{}", n.succeeded, n.total),
                        output::time(r.create_time.as_ref()),
                    ]
                },
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        ReleaseCommand::Terminate { id, reason } => client
            .terminate_release(pb::TerminateReleaseRequest {
                release_id: resolve_id(ctx, &id).await?,
                reason,
            })
            .await?
            .into_inner()
            .release
            .unwrap_or_default(),
        ReleaseCommand::Retry { id, wait } => {
            let response = client
                .retry_release(pb::RetryReleaseRequest {
                    release_id: resolve_id(ctx, &id).await?,
                })
                .await?
                .into_inner();
            let note = response.note;
            if !note.is_empty() && ctx.output != Output::Table {
                // Standard output carries only the release document.
                eprintln!("note: {note}");
            }
            let r = response.release.unwrap_or_default();
            return after_change(ctx, r, wait.wait, |r| {
                let line = format!("release {} retried: {}", r.id, release_status(r.status));
                if note.is_empty() {
                    line
                } else {
                    format!("{line}\nnote: {note}")
                }
            })
            .await;
        }
        ReleaseCommand::Approve {
            id,
            environment,
            comment,
            wait,
        } => {
            let r = client
                .approve_environment(pb::ApproveEnvironmentRequest {
                    release_id: resolve_id(ctx, &id).await?,
                    environment: environment.clone(),
                    approve: true,
                    comment,
                })
                .await?
                .into_inner()
                .release
                .unwrap_or_default();
            return after_change(ctx, r, wait.wait, |r| {
                format!("{environment} approved in release {}", r.id)
            })
            .await;
        }
        ReleaseCommand::Reject {
            id,
            environment,
            comment,
        } => {
            let r = client
                .approve_environment(pb::ApproveEnvironmentRequest {
                    release_id: resolve_id(ctx, &id).await?,
                    environment: environment.clone(),
                    approve: false,
                    comment,
                })
                .await?
                .into_inner()
                .release
                .unwrap_or_default();
            print_one(ctx.output, &r, |r| {
                format!("{environment} rejected in release {}", r.id)
            })?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    // Terminate.
    print_one(ctx.output, &release, |r| {
        format!("release {} {}", r.id, release_status(r.status))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A release id as given: the whole id, or a unique prefix or suffix of one
/// (at least 4 characters), looked up among the releases, newest first.
/// Ids are UUIDv7: they begin with their creation time, so releases made
/// within a minute share their first 8 characters, and the random tail
/// (`…-01a5f136884f`) is what a short form usually needs.
async fn resolve_id(ctx: &Ctx, given: &str) -> Result<String, CliError> {
    let given = given.trim();
    if uuid::Uuid::parse_str(given).is_ok() {
        return Ok(given.to_string());
    }
    if given.len() < 4 || !given.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(CliError::Message(format!(
            "{given:?} is not a release id: give the whole id, or at least 4 characters of its start or end (`promoflow release list` shows them)"
        )));
    }
    let short = given.to_ascii_lowercase();
    let mut found: Vec<String> = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = ctx
            .releases()
            .list_releases(pb::ListReleasesRequest {
                page_token,
                ..Default::default()
            })
            .await?
            .into_inner();
        found.extend(
            page.releases
                .into_iter()
                .map(|r| r.id)
                .filter(|id| id.starts_with(&short) || id.ends_with(&short)),
        );
        // Two matches already make it ambiguous: no need to read further.
        if found.len() > 1 || page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::Message(format!(
            "no release id starts or ends with {given:?} (`promoflow release list` shows them)"
        ))),
        [a, b, ..] => Err(CliError::Message(format!(
            "{given:?} matches several release ids ({a}, {b}, …): give more of it"
        ))),
    }
}

/// The id of the newest release, of `product` and `flow` when not empty.
async fn latest(ctx: &Ctx, product: String, flow: String) -> Result<String, CliError> {
    let what = match (product.is_empty(), flow.is_empty()) {
        (true, true) => "no release exists yet".to_string(),
        _ => format!(
            "no release of {} exists yet",
            [("product", &product), ("flow", &flow)]
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    };
    ctx.releases()
        .list_releases(pb::ListReleasesRequest {
            product,
            flow,
            page_size: 1,
            ..Default::default()
        })
        .await?
        .into_inner()
        .releases
        .into_iter()
        .next()
        .map(|r| r.id)
        .ok_or(CliError::Message(what))
}

async fn get(ctx: &Ctx, id: &str) -> Result<pb::Release, CliError> {
    Ok(ctx
        .releases()
        .get_release(pb::GetReleaseRequest {
            release_id: id.to_string(),
        })
        .await?
        .into_inner()
        .release
        .unwrap_or_default())
}

/// After a trigger, retry or approval: without `--wait` print the release;
/// with it, follow the release (tables: the live view; JSON/YAML: quietly,
/// then the final release).
async fn after_change(
    ctx: &Ctx,
    release: pb::Release,
    wait: bool,
    line: impl FnOnce(&pb::Release) -> String,
) -> CmdResult {
    if !wait {
        print_one(ctx.output, &release, line)?;
        return Ok(ExitCode::SUCCESS);
    }
    if ctx.output == Output::Table {
        outln!("{}\n", line(&release));
    }
    watch(ctx, &release.id, View::Auto, None).await
}

/// Follows a release; exit code 0 only when it SUCCEEDED (or reached
/// `until`).
async fn watch(ctx: &Ctx, id: &str, view: View, until: Option<pb::ReleaseStatus>) -> CmdResult {
    let view = if ctx.output == Output::Table {
        view
    } else {
        View::Quiet
    };
    let status = watch_until(ctx.channel.clone(), id, view, until).await?;
    if ctx.output != Output::Table {
        let r = get(ctx, id).await?;
        print_one(ctx.output, &r, |_| String::new())?;
    }
    Ok(
        if status == pb::ReleaseStatus::Succeeded || Some(status) == until {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

fn describe(r: &pb::Release) -> String {
    let n = r.counters.unwrap_or_default();
    let head = fields(&[
        ("release", r.id.clone()),
        ("status", release_status(r.status)),
        ("product", format!("{} {}", r.product, r.version)),
        ("flow", format!("{} v{}", r.flow, r.flow_version)),
        ("initiator", r.initiator.clone()),
        ("actor", r.actor.clone()),
        ("ended by", r.terminated_by.clone()),
        ("note", r.trigger_message.clone()),
        ("message", r.message.clone()),
        ("created", output::time(r.create_time.as_ref())),
        (
            "duration",
            elapsed(r.start_time.as_ref(), r.finish_time.as_ref()),
        ),
        (
            "progress",
            format!("{} of {}", counters(&n).join(", "), n.total),
        ),
    ]);
    let envs = table(
        &[
            "environment",
            "status",
            "attempt",
            "steps",
            "duration",
            "message",
        ],
        r.environments.iter().map(|e| {
            // What it waits for, why it is suspended, failed or skipped;
            // otherwise its own message (`no changes`).
            let message = match env_detail(e, &env_status(e.status)) {
                detail if detail.is_empty() => e.message.clone(),
                detail => detail,
            };
            vec![
                e.environment.clone(),
                env_status(e.status),
                e.attempt.to_string(),
                e.steps
                    .iter()
                    .map(|s| format!("{} {}", step_kind(s.kind), step_status(s.status)))
                    .collect::<Vec<_>>()
                    .join(", "),
                elapsed(e.start_time.as_ref(), e.finish_time.as_ref()),
                message,
            ]
        }),
    );
    format!("{head}\n\n{envs}")
}
