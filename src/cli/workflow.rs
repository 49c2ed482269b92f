//! `promoflow workflow`: reusable units of work (HTTP call, wait, approval,
//! command).

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};

use super::client::{CmdResult, Ctx, all_pages, duration, fail, key_value, update_failed, version};
use super::output::{self, fields, print_done, print_list, print_one};
use crate::proto::v1 as pb;
use crate::proto::v1::workflow::Kind;

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Create a workflow: exactly one of --wait, --http, --approval, --command.
    #[command(
        group(ArgGroup::new("kind").required(true).args(["wait", "http", "approval", "command"])),
        after_help = "Examples:\n  promoflow workflow create soak --wait 30s\n  promoflow workflow create smoke --http https://ci.example.com/smoke --timeout 1m --max-attempts 3\n  promoflow workflow create sign-off --approval --timeout 1h\n  promoflow workflow create change-board --approval --min-approvals 2 --forbid-self-approval\n  promoflow workflow create notify --command -- /usr/local/bin/notify --channel releases"
    )]
    Create {
        /// Lowercase DNS label, e.g. `soak-30s`.
        name: String,
        #[arg(long, default_value = "", hide_default_value = true)]
        description: String,
        #[command(flatten)]
        kind: KindArgs,
    },
    /// Show one workflow.
    #[command(after_help = "Example:\n  promoflow workflow get soak -o json")]
    Get { name: String },
    /// List workflows.
    #[command(after_help = "Example:\n  promoflow workflow list")]
    List,
    /// Change a workflow: its description, or its kind, replaced entirely
    /// when a kind flag (--wait, --http, --approval, --command) is given.
    #[command(
        group(ArgGroup::new("kind").args(["wait", "http", "approval", "command"])),
        after_help = "Examples:\n  promoflow workflow update soak --wait 2m\n  promoflow workflow update smoke --description 'smoke tests' --http https://ci.example.com/smoke --max-attempts 5 --expected-version 2"
    )]
    Update {
        name: String,
        /// The new description (`''` clears it).
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        kind: KindArgs,
        /// Change it only if its version is still N (as read by `workflow get`);
        /// by default, the version this command reads.
        #[arg(long, value_name = "N", value_parser = version)]
        expected_version: Option<i64>,
    },
    /// Delete a workflow (refused while a flow uses it).
    #[command(after_help = "Example:\n  promoflow workflow delete soak")]
    Delete { name: String },
}

/// The flags that say what a workflow does, shared by `create` and
/// `update` (each command puts --wait, --http, --approval and --command in a
/// group "kind": at most one of them).
#[derive(Debug, Args)]
pub struct KindArgs {
    /// A soak time (e.g. `30s`, `5m`).
    #[arg(long, value_parser = duration)]
    wait: Option<prost_types::Duration>,
    /// POST the release context to this URL; 2xx succeeds.
    #[arg(long)]
    http: Option<String>,
    /// An HTTP header, KEY=VALUE (repeatable, with --http).
    #[arg(long = "header", value_parser = key_value, requires = "http")]
    headers: Vec<(String, String)>,
    /// Attempts of the HTTP call (with --http).
    #[arg(long, requires = "http")]
    max_attempts: Option<i32>,
    /// Suspend the environment until someone approves or rejects it.
    #[arg(long)]
    approval: bool,
    /// Distinct principals that must approve (with --approval; default 1).
    #[arg(long, requires = "approval")]
    min_approvals: Option<i32>,
    /// The release's own actor may not approve it (with --approval).
    #[arg(long, requires = "approval")]
    forbid_self_approval: bool,
    /// Run the argv given after `--` on the server (needs a server started to allow it).
    #[arg(long, requires = "argv")]
    command: bool,
    /// An environment variable of the command, KEY=VALUE (repeatable, with --command).
    #[arg(long = "env", value_parser = key_value, requires = "command")]
    envs: Vec<(String, String)>,
    /// Timeout of an HTTP call, an approval or a command (e.g. `1h`).
    #[arg(long, value_parser = duration, conflicts_with = "wait", requires = "kind")]
    timeout: Option<prost_types::Duration>,
    /// The command's argv (after `--`).
    #[arg(last = true)]
    argv: Vec<String>,
}

impl KindArgs {
    /// The kind the flags describe; `None` when no kind flag is given.
    fn build(self) -> Option<Kind> {
        let KindArgs {
            wait,
            http,
            headers,
            max_attempts,
            approval,
            min_approvals,
            forbid_self_approval,
            command,
            envs,
            timeout,
            argv,
        } = self;
        Some(if let Some(duration) = wait {
            Kind::Wait(pb::WaitWorkflow {
                duration: Some(duration),
            })
        } else if let Some(url) = http {
            Kind::Http(pb::HttpWorkflow {
                url,
                headers: headers.into_iter().collect(),
                timeout,
                max_attempts: max_attempts.unwrap_or(0),
            })
        } else if approval {
            Kind::Approval(pb::ApprovalWorkflow {
                timeout,
                min_approvals: min_approvals.unwrap_or(0),
                forbid_self_approval,
            })
        } else if command {
            Kind::Command(pb::CommandWorkflow {
                argv,
                env: envs.into_iter().collect(),
                timeout,
            })
        } else {
            return None;
        })
    }
}

pub async fn run(ctx: &Ctx, cmd: WorkflowCommand) -> CmdResult {
    let mut client = ctx.workflows();
    match cmd {
        WorkflowCommand::Create {
            name,
            description,
            kind,
        } => {
            let Some(kind) = kind.build() else {
                return fail("give one of --wait, --http, --approval, --command");
            };
            let response = client
                .create_workflow(pb::CreateWorkflowRequest {
                    workflow: Some(pb::Workflow {
                        name,
                        description,
                        kind: Some(kind),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner();
            warn(&response.warnings);
            let workflow = response.workflow.unwrap_or_default();
            print_one(ctx.output, &workflow, |w| {
                format!("workflow {} created ({})", w.name, summary(w))
            })?;
        }
        WorkflowCommand::Get { name } => {
            let workflow = client
                .get_workflow(pb::GetWorkflowRequest { name })
                .await?
                .into_inner()
                .workflow
                .unwrap_or_default();
            print_one(ctx.output, &workflow, |w| {
                fields(&[
                    ("name", w.name.clone()),
                    ("kind", kind_name(w).to_string()),
                    ("runs", summary(w)),
                    ("description", w.description.clone()),
                    ("version", w.version.to_string()),
                    ("updated", output::time(w.update_time.as_ref())),
                ])
            })?;
        }
        WorkflowCommand::List => {
            let all = all_pages(|page_token| {
                let mut client = client.clone();
                async move {
                    let r = client
                        .list_workflows(pb::ListWorkflowsRequest {
                            page_size: 0,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((r.workflows, r.next_page_token))
                }
            })
            .await?;
            print_list(
                ctx.output,
                &all,
                &["name", "kind", "runs", "description"],
                |w| {
                    vec![
                        w.name.clone(),
                        kind_name(w).to_string(),
                        summary(w),
                        w.description.clone(),
                    ]
                },
            )?;
        }
        WorkflowCommand::Update {
            name,
            description,
            kind,
            expected_version,
        } => {
            let kind = kind.build();
            if description.is_none() && kind.is_none() {
                return fail(
                    "nothing to update: give at least one of --description, --wait, --http, --approval, --command",
                );
            }
            let mut workflow = client
                .get_workflow(pb::GetWorkflowRequest { name: name.clone() })
                .await?
                .into_inner()
                .workflow
                .unwrap_or_default();
            let read_version = workflow.version;
            if let Some(description) = description {
                workflow.description = description;
            }
            if let Some(kind) = kind {
                workflow.kind = Some(kind);
            }
            let response = client
                .update_workflow(pb::UpdateWorkflowRequest {
                    workflow: Some(workflow),
                    expected_version: expected_version.unwrap_or(read_version),
                })
                .await
                .map_err(|s| {
                    update_failed(
                        s,
                        expected_version,
                        &format!("promoflow workflow get {name}"),
                    )
                })?
                .into_inner();
            warn(&response.warnings);
            let workflow = response.workflow.unwrap_or_default();
            print_one(ctx.output, &workflow, |w| {
                format!(
                    "workflow {} updated (version {}: {})",
                    w.name,
                    w.version,
                    summary(w)
                )
            })?;
        }
        WorkflowCommand::Delete { name } => {
            client
                .delete_workflow(pb::DeleteWorkflowRequest {
                    name: name.clone(),
                    expected_version: 0,
                })
                .await?;
            print_done(ctx.output, &format!("workflow {name} deleted"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn kind_name(w: &pb::Workflow) -> &'static str {
    match w.kind {
        Some(Kind::Http(_)) => "http",
        Some(Kind::Wait(_)) => "wait",
        Some(Kind::Approval(_)) => "approval",
        Some(Kind::Command(_)) => "command",
        None => "",
    }
}

/// What the workflow does, in a few words.
fn summary(w: &pb::Workflow) -> String {
    let timeout = |t: &Option<prost_types::Duration>| match t {
        Some(_) => format!(", timeout {}", output::duration(t.as_ref())),
        None => String::new(),
    };
    match &w.kind {
        Some(Kind::Http(h)) => format!("POST {}{}", h.url, timeout(&h.timeout)),
        Some(Kind::Wait(d)) => format!("wait {}", output::duration(d.duration.as_ref())),
        Some(Kind::Approval(a)) => {
            let mut s = String::from("approval");
            if a.min_approvals > 1 {
                s.push_str(&format!(" by {} principals", a.min_approvals));
            }
            if a.forbid_self_approval {
                s.push_str(", not by the release's actor");
            }
            s + &timeout(&a.timeout)
        }
        Some(Kind::Command(c)) => format!("{}{}", c.argv.join(" "), timeout(&c.timeout)),
        None => String::new(),
    }
}

/// A response's warnings, on standard error (standard output keeps the
/// document for `-o json`).
fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}
