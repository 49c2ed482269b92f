//! `promoflow flow`: promotion flows — apply Codefresh YAML, inspect, edit,
//! validate, copy and render.

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use super::apply::{apply, read};
use super::client::{CmdResult, Ctx, all_pages, fail, key_value};
use super::output::{
    self, Output, fields, out, outln, print_done, print_list, print_one, print_value, table,
    to_value,
};
use crate::domain::codefresh::documents::Kind;
use crate::proto::v1 as pb;
use crate::proto::v1::flow_edit::{
    AddEnvironments, Edit, RemoveEnvironment, SetDependencies, SetPolicy, SetSettings,
    remove_environment,
};

#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Create or update flows from a Codefresh YAML file: `PromotionFlow`
    /// documents, and `PromotionTemplate` and `Product` ones in the same file
    /// (`---` between documents; applied templates first, then flows, then
    /// products).
    #[command(
        after_help = "Examples:\n  promoflow flow apply -f examples/multi-env-parallel-promotion.yaml\n  cat flow.yaml | promoflow flow apply -f -\n  promoflow flow apply -f gitops.yaml   (templates, flows and products together)"
    )]
    Apply {
        /// The YAML file (`-` reads standard input).
        #[arg(short, long)]
        file: String,
    },
    /// Show a flow; `-o yaml` prints it as Codefresh `PromotionFlow` YAML.
    #[command(
        after_help = "Examples:\n  promoflow flow get parallel\n  promoflow flow get parallel -o yaml > parallel.yaml\n  promoflow flow get parallel --version 2 -o json"
    )]
    Get {
        name: String,
        /// A recorded version (default: the latest).
        #[arg(long, default_value_t = 0)]
        version: i64,
    },
    /// List flows.
    #[command(after_help = "Example:\n  promoflow flow list")]
    List,
    /// List the recorded versions of a flow.
    #[command(after_help = "Example:\n  promoflow flow versions parallel")]
    Versions { name: String },
    /// Edit a flow in place: one new version with every edit applied at once.
    Edit(Box<EditArgs>),
    /// Check a Codefresh `PromotionFlow` YAML file against the server without saving it.
    #[command(
        after_help = "Example:\n  promoflow flow validate -f examples/multi-env-dependency-promotion.yaml"
    )]
    Validate {
        /// The YAML file (`-` reads standard input).
        #[arg(short, long)]
        file: String,
    },
    /// Save a copy of a flow under a new name ("save as new flow").
    #[command(after_help = "Example:\n  promoflow flow copy sequential parallel")]
    Copy {
        source: String,
        new_name: String,
        /// The version to copy (default: the latest).
        #[arg(long, default_value_t = 0)]
        version: i64,
    },
    /// Draw a flow as a Mermaid or Graphviz chart, optionally with a release's statuses.
    #[command(
        after_help = "Examples:\n  promoflow flow render parallel > flow.mmd\n  promoflow flow render parallel --format dot | dot -Tsvg > flow.svg\n  promoflow flow render parallel --release 0193c0de-…"
    )]
    Render {
        name: String,
        #[arg(long, value_enum, default_value_t = Format::Mermaid)]
        format: Format,
        /// Colour each environment with its status in this release.
        #[arg(long)]
        release: Option<String>,
        /// A recorded version (default: the latest, or the release's).
        #[arg(long, default_value_t = 0)]
        version: i64,
    },
    /// Delete a flow.
    #[command(after_help = "Example:\n  promoflow flow delete parallel")]
    Delete { name: String },
}

/// The edits of `promoflow flow edit` (boxed: far larger than the other commands).
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("edit").required(true).multiple(true).args(["add", "remove", "depends_on", "policy", "description", "trigger_environment"])),
    after_help = "Examples:\n  promoflow flow edit parallel --add prod,prod-eu,prod-asia --after qa\n  promoflow flow edit parallel --remove prod-asia --remove-downstream\n  promoflow flow edit parallel --remove qa --reconnect-to dev\n  promoflow flow edit dependency --depends-on prod=qa,staging\n  promoflow flow edit parallel --policy prod --pre-action sign-off --post-action soak"
)]
pub struct EditArgs {
    name: String,
    /// Environments to add as parallel siblings (comma-separated), with --after.
    #[arg(long, value_delimiter = ',', requires = "after")]
    add: Vec<String>,
    /// The environment the added ones depend on.
    #[arg(long, requires = "add")]
    after: Option<String>,
    /// An environment to remove, with --reconnect-to or --remove-downstream.
    #[arg(long)]
    remove: Option<String>,
    /// Re-parent the removed environment's children to this one.
    #[arg(long, requires = "remove", conflicts_with = "remove_downstream")]
    reconnect_to: Option<String>,
    /// Also remove every environment that depends on the removed one.
    #[arg(long, requires = "remove")]
    remove_downstream: bool,
    /// Set an environment's dependencies: ENV=a,b (repeatable).
    #[arg(long, value_parser = key_value)]
    depends_on: Vec<(String, String)>,
    /// Change an environment's policy: with --pre-action, --action, --post-action
    /// (the parts not given stay as they are; an empty value clears a workflow).
    #[arg(long)]
    policy: Option<String>,
    /// The workflow run before the promotion action (with --policy).
    #[arg(long, requires = "policy")]
    pre_action: Option<String>,
    /// The promotion action (with --policy).
    #[arg(long, value_enum, requires = "policy")]
    action: Option<ActionArg>,
    /// The workflow run after the promotion action (with --policy).
    #[arg(long, requires = "policy")]
    post_action: Option<String>,
    /// A new description.
    #[arg(long)]
    description: Option<String>,
    /// A new trigger environment.
    #[arg(long)]
    trigger_environment: Option<String>,
    /// Refuse the edit unless the latest version is this one (default: the latest, read first).
    #[arg(long)]
    expected_version: Option<i64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ActionArg {
    /// Record the version on the target application.
    None,
    /// Commit the version to the application's Git source.
    Commit,
    /// Open a pull request with the version.
    Pr,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Mermaid,
    Dot,
}

pub async fn run(ctx: &Ctx, cmd: FlowCommand) -> CmdResult {
    let mut client = ctx.flows();
    match cmd {
        FlowCommand::Apply { file } => {
            apply(
                ctx,
                &file,
                &[Kind::PromotionTemplate, Kind::PromotionFlow, Kind::Product],
                "flow",
            )
            .await?;
        }
        FlowCommand::Get { name, version } => {
            if ctx.output == Output::Yaml {
                let yaml = client
                    .export_flow(pb::ExportFlowRequest { name, version })
                    .await?
                    .into_inner()
                    .yaml;
                out!("{yaml}");
            } else {
                let flow = client
                    .get_flow(pb::GetFlowRequest { name, version })
                    .await?
                    .into_inner()
                    .flow
                    .unwrap_or_default();
                print_one(ctx.output, &flow, describe)?;
            }
        }
        FlowCommand::List => {
            let all = all_pages(|page_token| {
                let mut client = client.clone();
                async move {
                    let r = client
                        .list_flows(pb::ListFlowsRequest {
                            page_size: 0,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((r.flows, r.next_page_token))
                }
            })
            .await?;
            print_list(
                ctx.output,
                &all,
                &["name", "version", "trigger", "environments", "description"],
                |f| {
                    vec![
                        f.name.clone(),
                        f.version.to_string(),
                        f.trigger_environment.clone(),
                        (f.steps.len() + 1).to_string(),
                        f.description.clone(),
                    ]
                },
            )?;
        }
        FlowCommand::Versions { name } => {
            let all = all_pages(|page_token| {
                let mut client = client.clone();
                let name = name.clone();
                async move {
                    let r = client
                        .list_flow_versions(pb::ListFlowVersionsRequest {
                            name,
                            page_size: 0,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((r.versions, r.next_page_token))
                }
            })
            .await?;
            print_list(
                ctx.output,
                &all,
                &["version", "saved", "environments", "description"],
                |f| {
                    vec![
                        f.version.to_string(),
                        output::time(f.update_time.as_ref()),
                        environments(f),
                        f.description.clone(),
                    ]
                },
            )?;
        }
        FlowCommand::Edit(edit) => {
            let EditArgs {
                name,
                add,
                after,
                remove,
                reconnect_to,
                remove_downstream,
                depends_on,
                policy,
                pre_action,
                action,
                post_action,
                description,
                trigger_environment,
                expected_version,
            } = *edit;
            let mut edits = Vec::new();
            if let Some(after) = after {
                edits.push(Edit::AddEnvironments(AddEnvironments {
                    after,
                    environments: add,
                    policy: None,
                }));
            }
            for (environment, list) in depends_on {
                edits.push(Edit::SetDependencies(SetDependencies {
                    environment,
                    depends_on: list
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                }));
            }
            if let Some(environment) = remove {
                let mode = match (reconnect_to, remove_downstream) {
                    (Some(to), _) => remove_environment::Mode::ReconnectTo(to),
                    (None, true) => remove_environment::Mode::RemoveDownstream(true),
                    (None, false) => {
                        return fail(
                            "--remove needs --reconnect-to ENV (keep its children, re-parented) or --remove-downstream (remove them too)",
                        );
                    }
                };
                edits.push(Edit::RemoveEnvironment(RemoveEnvironment {
                    environment,
                    mode: Some(mode),
                }));
            }
            if description.is_some() || trigger_environment.is_some() {
                edits.push(Edit::SetSettings(SetSettings {
                    description,
                    trigger_environment,
                    ..Default::default()
                }));
            }
            // The latest version: the base of the edit unless the caller
            // pins one, and the policy the --policy changes start from.
            let current = if expected_version.is_none() || policy.is_some() {
                client
                    .get_flow(pb::GetFlowRequest {
                        name: name.clone(),
                        version: 0,
                    })
                    .await?
                    .into_inner()
                    .flow
            } else {
                None
            };
            if let Some(environment) = policy {
                let mut p = current
                    .as_ref()
                    .and_then(|f| f.steps.iter().find(|s| s.environment == environment))
                    .and_then(|s| s.policy.clone())
                    .unwrap_or_default();
                if let Some(w) = pre_action {
                    p.pre_action = w;
                }
                if let Some(w) = post_action {
                    p.post_action = w;
                }
                if p.action == pb::PromotionAction::Unspecified as i32 {
                    p.action = pb::PromotionAction::None as i32;
                }
                if let Some(a) = action {
                    p.action = match a {
                        ActionArg::None => pb::PromotionAction::None,
                        ActionArg::Commit => pb::PromotionAction::Commit,
                        ActionArg::Pr => pb::PromotionAction::PullRequest,
                    } as i32;
                }
                edits.push(Edit::SetPolicy(SetPolicy {
                    environment,
                    policy: Some(p),
                }));
            }
            let expected_version = expected_version
                .or(current.map(|f| f.version))
                .unwrap_or_default();
            let flow = client
                .edit_flow(pb::EditFlowRequest {
                    name,
                    expected_version,
                    edits: edits
                        .into_iter()
                        .map(|e| pb::FlowEdit { edit: Some(e) })
                        .collect(),
                })
                .await?
                .into_inner()
                .flow
                .unwrap_or_default();
            print_one(ctx.output, &flow, |f| {
                format!(
                    "flow {} edited (version {}): {}",
                    f.name,
                    f.version,
                    environments(f)
                )
            })?;
        }
        FlowCommand::Validate { file } => return validate(ctx, &read(&file)?).await,
        FlowCommand::Copy {
            source,
            new_name,
            version,
        } => {
            let flow = client
                .copy_flow(pb::CopyFlowRequest {
                    source: source.clone(),
                    version,
                    new_name,
                })
                .await?
                .into_inner()
                .flow
                .unwrap_or_default();
            print_one(ctx.output, &flow, |f| {
                format!("flow {source} copied to {}", f.name)
            })?;
        }
        FlowCommand::Render {
            name,
            format,
            release,
            version,
        } => {
            let format = match format {
                Format::Mermaid => pb::RenderFormat::Mermaid,
                Format::Dot => pb::RenderFormat::Dot,
            };
            let text = client
                .render_flow(pb::RenderFlowRequest {
                    name,
                    version,
                    release_id: release.unwrap_or_default(),
                    format: format as i32,
                })
                .await?
                .into_inner()
                .text;
            outln!("{}", text.trim_end());
        }
        FlowCommand::Delete { name } => {
            client
                .delete_flow(pb::DeleteFlowRequest {
                    name: name.clone(),
                    expected_version: 0,
                })
                .await?;
            print_done(ctx.output, &format!("flow {name} deleted"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses the YAML locally (shape: unknown fields, types) and has the
/// server check the rest (names exist, graph, workflows, its step limit).
/// Exit code 1 when anything is wrong.
async fn validate(ctx: &Ctx, yaml: &str) -> CmdResult {
    // The server's `--max-flow-steps` is unknown here: parse anything a
    // server may accept and leave the size to it.
    let limits = crate::domain::flow::Limits::with_max_steps(crate::config::MAX_FLOW_STEPS_CEILING);
    let (violations, plan) = match crate::domain::codefresh::from_yaml_with_limits(yaml, limits) {
        Err(violations) => (
            violations
                .into_iter()
                .map(|v| pb::FlowViolation {
                    field: v.field,
                    description: v.description,
                })
                .collect(),
            None,
        ),
        Ok(spec) => {
            let r = ctx
                .flows()
                .validate_flow(pb::ValidateFlowRequest {
                    flow: Some(pb::Flow::from(spec)),
                })
                .await?
                .into_inner();
            (r.violations, r.plan)
        }
    };
    let ok = violations.is_empty();
    let response = pb::ValidateFlowResponse { violations, plan };
    match ctx.output {
        Output::Table => {
            if ok {
                outln!("valid; execution plan:");
                for (i, w) in response.plan.unwrap_or_default().waves.iter().enumerate() {
                    outln!("  wave {i}: {}", w.environments.join(", "));
                }
            } else {
                eprintln!("invalid flow:");
                for v in &response.violations {
                    eprintln!("  - {}: {}", v.field, v.description);
                }
            }
        }
        _ => print_value(ctx.output, &to_value(&response)?)?,
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `dev → qa → {prod, prod-eu}`: the environments by wave.
fn environments(f: &pb::Flow) -> String {
    let mut nodes: Vec<(&str, &[String])> = vec![(f.trigger_environment.as_str(), &[])];
    nodes.extend(
        f.steps
            .iter()
            .map(|s| (s.environment.as_str(), s.depends_on.as_slice())),
    );
    output::waves(&nodes)
        .iter()
        .map(|w| {
            if w.len() == 1 {
                w[0].to_string()
            } else {
                format!("{{{}}}", w.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

fn describe(f: &pb::Flow) -> String {
    let hooks = |h: &Option<pb::Hooks>| {
        h.as_ref()
            .map(|h| {
                [
                    ("on-start", &h.on_start),
                    ("on-success", &h.on_success),
                    ("on-fail", &h.on_fail),
                ]
                .iter()
                .filter(|(_, w)| !w.is_empty())
                .map(|(k, w)| format!("{k}={w}"))
                .collect::<Vec<_>>()
                .join(" ")
            })
            .unwrap_or_default()
    };
    let head = fields(&[
        ("name", f.name.clone()),
        ("description", f.description.clone()),
        ("version", f.version.to_string()),
        ("trigger", f.trigger_environment.clone()),
        ("trigger workflow", f.trigger_workflow.clone()),
        ("timeout", output::duration(f.promotion_timeout.as_ref())),
        ("hooks", hooks(&f.hooks)),
        ("graph", environments(f)),
    ]);
    let steps = table(
        &[
            "environment",
            "depends on",
            "pre-action",
            "action",
            "post-action",
            "hooks",
        ],
        f.steps.iter().map(|s| {
            let p = s.policy.clone().unwrap_or_default();
            vec![
                s.environment.clone(),
                s.depends_on.join(","),
                p.pre_action,
                output::action(p.action),
                p.post_action,
                hooks(&s.hooks),
            ]
        }),
    );
    format!("{head}\n\n{steps}")
}
