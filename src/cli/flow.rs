//! `promoflow flow`: promotion flows — apply Codefresh YAML, inspect, edit,
//! validate, copy and render.

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};

use super::apply::{apply, read};
use super::client::{CliError, CmdResult, Ctx, all_pages, duration, fail, key_value};
use super::order::FlagOrder;
use super::output::{
    self, Output, fields, out, outln, print_done, print_list, print_one, print_value, table,
    to_value,
};
use crate::domain::codefresh::documents::Kind;
use crate::proto::v1 as pb;
use crate::proto::v1::flow_edit::{
    AddEnvironments, Edit, RemoveEnvironment, SetDependencies, SetHooks, SetPolicy, SetSettings,
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
        after_help = "Examples:\n  promoflow flow get multi-env-parallel-promotion\n  promoflow flow get multi-env-parallel-promotion -o yaml > multi-env-parallel-promotion.yaml\n  promoflow flow get multi-env-parallel-promotion --version 2 -o json"
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
    #[command(after_help = "Example:\n  promoflow flow versions multi-env-parallel-promotion")]
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
    #[command(
        after_help = "Example:\n  promoflow flow copy multi-env-sequential-promotion my-sequential"
    )]
    Copy {
        source: String,
        new_name: String,
        /// The version to copy (default: the latest).
        #[arg(long, default_value_t = 0)]
        version: i64,
    },
    /// Draw a flow as a Mermaid or Graphviz chart, optionally with a release's statuses.
    #[command(
        after_help = "Examples:\n  promoflow flow render multi-env-parallel-promotion > flow.mmd\n  promoflow flow render multi-env-parallel-promotion --format dot | dot -Tsvg > flow.svg\n  promoflow flow render multi-env-parallel-promotion --release 0193c0de-…"
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
    #[command(after_help = "Example:\n  promoflow flow delete multi-env-parallel-promotion")]
    Delete { name: String },
}

/// The edits of `promoflow flow edit` (boxed: far larger than the other commands).
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("edit").required(true).multiple(true).args([
        "add", "remove", "depends_on", "policy", "on_start", "on_success", "on_fail",
        "promotion_timeout", "trigger_workflow", "description", "trigger_environment",
    ])),
    after_help = "The edits apply in the order given, as one new version; an error names the flag.\n\nExamples:\n  promoflow flow edit multi-env-parallel-promotion --add prod-us --after qa\n  promoflow flow edit multi-env-parallel-promotion --remove prod-asia --remove-downstream\n  promoflow flow edit multi-env-sequential-promotion --remove qa --reconnect-to dev\n  promoflow flow edit multi-env-dependency-promotion --depends-on prod=qa,staging\n  promoflow flow edit multi-env-parallel-promotion --policy prod --pre-action approval --post-action soak-3s\n  promoflow flow edit multi-env-parallel-promotion --on-fail notify --on-success prod=notify\n  promoflow flow edit multi-env-parallel-promotion --promotion-timeout 30m --trigger-workflow smoke"
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
    #[arg(long, value_name = "ENV=DEPS", value_parser = key_value)]
    depends_on: Vec<(String, String)>,
    /// Change an environment's policy: with --pre-action, --action, --post-action
    /// (the parts not given stay as they are; an empty value clears a workflow).
    #[arg(long, value_name = "ENV")]
    policy: Option<String>,
    /// The workflow run before the promotion action (with --policy).
    #[arg(long, value_name = "WORKFLOW", requires = "policy")]
    pre_action: Option<String>,
    /// The promotion action (with --policy).
    #[arg(long, value_enum, requires = "policy")]
    action: Option<ActionArg>,
    /// The workflow run after the promotion action (with --policy).
    #[arg(long, value_name = "WORKFLOW", requires = "policy")]
    post_action: Option<String>,
    /// The on-start hook: WORKFLOW for the release, ENV=WORKFLOW for a step;
    /// an empty WORKFLOW clears it (repeatable).
    #[arg(long, value_name = "[ENV=]WORKFLOW")]
    on_start: Vec<String>,
    /// The on-success hook, as --on-start (repeatable).
    #[arg(long, value_name = "[ENV=]WORKFLOW")]
    on_success: Vec<String>,
    /// The on-fail hook, as --on-start (repeatable).
    #[arg(long, value_name = "[ENV=]WORKFLOW")]
    on_fail: Vec<String>,
    /// A release still running after this long is terminated (`30m`, `2h`;
    /// `0` removes the limit).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    promotion_timeout: Option<prost_types::Duration>,
    /// The workflow run in the trigger environment when a release starts
    /// (`''` clears it).
    #[arg(long, value_name = "WORKFLOW")]
    trigger_workflow: Option<String>,
    /// A new description (`''` clears it).
    #[arg(long)]
    description: Option<String>,
    /// A new trigger environment.
    #[arg(long, value_name = "ENV")]
    trigger_environment: Option<String>,
    /// Refuse the edit unless the latest version is this one (default: the latest, read first).
    #[arg(long)]
    expected_version: Option<i64>,
    #[arg(skip)]
    pub(super) order: FlagOrder,
}

/// One edit of the request and the flags that asked for it, as the user
/// wrote them (the name its errors are reported under).
struct FlagEdit {
    position: usize,
    flags: String,
    edit: Edit,
}

impl EditArgs {
    /// The edits in the order their flags were given. `current` is the flow's
    /// latest version: the base of `--policy` and hook changes (the parts not
    /// given are kept).
    fn edits(&self, current: Option<&pb::Flow>) -> Result<Vec<FlagEdit>, CliError> {
        let order = &self.order;
        let mut edits = Vec::new();
        let mut push = |position: usize, flags: String, edit: Edit| {
            edits.push(FlagEdit {
                position,
                flags,
                edit,
            });
        };
        if let Some(after) = &self.after {
            push(
                order.key("add", 0).min(order.key("after", 0)),
                format!("--add {} --after {after}", self.add.join(",")),
                Edit::AddEnvironments(AddEnvironments {
                    after: after.clone(),
                    environments: self.add.clone(),
                    policy: None,
                }),
            );
        }
        if let Some(environment) = &self.remove {
            let (mode, flags) = match (&self.reconnect_to, self.remove_downstream) {
                (Some(to), _) => (
                    remove_environment::Mode::ReconnectTo(to.clone()),
                    format!("--remove {environment} --reconnect-to {to}"),
                ),
                (None, true) => (
                    remove_environment::Mode::RemoveDownstream(true),
                    format!("--remove {environment} --remove-downstream"),
                ),
                (None, false) => {
                    return fail(
                        "--remove needs --reconnect-to ENV (keep its children, re-parented) or --remove-downstream (remove them too)",
                    );
                }
            };
            push(
                order.key("remove", 0),
                flags,
                Edit::RemoveEnvironment(RemoveEnvironment {
                    environment: environment.clone(),
                    mode: Some(mode),
                }),
            );
        }
        for (k, (environment, list)) in self.depends_on.iter().enumerate() {
            push(
                order.key("depends_on", k),
                format!("--depends-on {environment}={list}"),
                Edit::SetDependencies(SetDependencies {
                    environment: environment.clone(),
                    depends_on: list
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                }),
            );
        }
        if let Some(environment) = &self.policy {
            let mut p = current
                .and_then(|f| step(f, environment))
                .and_then(|s| s.policy.clone())
                .unwrap_or_default();
            let mut flags = format!("--policy {environment}");
            if let Some(w) = &self.pre_action {
                p.pre_action = w.clone();
                flags.push_str(&format!(" --pre-action {w:?}"));
            }
            if let Some(a) = self.action {
                p.action = match a {
                    ActionArg::None => pb::PromotionAction::None,
                    ActionArg::Commit => pb::PromotionAction::Commit,
                    ActionArg::Pr => pb::PromotionAction::PullRequest,
                } as i32;
                flags.push_str(&format!(" --action {}", output::action(p.action)));
            }
            if let Some(w) = &self.post_action {
                p.post_action = w.clone();
                flags.push_str(&format!(" --post-action {w:?}"));
            }
            push(
                order.key("policy", 0),
                flags,
                Edit::SetPolicy(SetPolicy {
                    environment: environment.clone(),
                    policy: Some(p),
                }),
            );
        }
        for hooks in self.hook_edits(current)? {
            push(hooks.position, hooks.flags, hooks.edit);
        }
        // Each setting given is its own edit, at its flag's place.
        let settings = [
            (
                "description",
                self.description
                    .as_ref()
                    .map(|d| format!("--description {d:?}")),
                SetSettings {
                    description: self.description.clone(),
                    ..Default::default()
                },
            ),
            (
                "trigger_environment",
                self.trigger_environment
                    .as_ref()
                    .map(|e| format!("--trigger-environment {e}")),
                SetSettings {
                    trigger_environment: self.trigger_environment.clone(),
                    ..Default::default()
                },
            ),
            (
                "promotion_timeout",
                self.promotion_timeout
                    .map(|d| format!("--promotion-timeout {}", output::duration(Some(&d)))),
                SetSettings {
                    promotion_timeout: self.promotion_timeout,
                    ..Default::default()
                },
            ),
            (
                "trigger_workflow",
                self.trigger_workflow
                    .as_ref()
                    .map(|w| format!("--trigger-workflow {w:?}")),
                SetSettings {
                    trigger_workflow: self.trigger_workflow.clone(),
                    ..Default::default()
                },
            ),
        ];
        for (id, flags, settings) in settings {
            if let Some(flags) = flags {
                push(order.key(id, 0), flags, Edit::SetSettings(settings));
            }
        }
        edits.sort_by_key(|e| e.position);
        Ok(edits)
    }

    /// One SetHooks per target (the release, or a step) named by
    /// `--on-start|--on-success|--on-fail [ENV=]WORKFLOW`, placed where its
    /// first hook flag stood and starting from the target's current hooks.
    fn hook_edits(&self, current: Option<&pb::Flow>) -> Result<Vec<FlagEdit>, CliError> {
        let mut given = Vec::new();
        for (id, flag, values) in [
            ("on_start", "--on-start", &self.on_start),
            ("on_success", "--on-success", &self.on_success),
            ("on_fail", "--on-fail", &self.on_fail),
        ] {
            for (k, value) in values.iter().enumerate() {
                given.push((self.order.key(id, k), id, flag, value));
            }
        }
        given.sort_by_key(|(position, ..)| *position);
        let mut out: Vec<(Option<String>, FlagEdit, pb::Hooks)> = Vec::new();
        for (position, id, flag, value) in given {
            let (target, workflow) = match value.split_once('=') {
                Some((env, workflow)) if !env.is_empty() => (Some(env.to_owned()), workflow),
                Some(_) => {
                    return fail(format!(
                        "{flag} {value:?}: expected WORKFLOW or ENV=WORKFLOW"
                    ));
                }
                None => (None, value.as_str()),
            };
            let i = match out.iter().position(|(t, ..)| *t == target) {
                Some(i) => i,
                None => {
                    let hooks = match (&target, current) {
                        (None, Some(f)) => f.hooks.clone(),
                        (Some(env), Some(f)) => step(f, env).and_then(|s| s.hooks.clone()),
                        (_, None) => None,
                    };
                    out.push((
                        target.clone(),
                        FlagEdit {
                            position,
                            flags: String::new(),
                            edit: Edit::SetHooks(SetHooks::default()),
                        },
                        hooks.unwrap_or_default(),
                    ));
                    out.len() - 1
                }
            };
            let (_, edit, hooks) = &mut out[i];
            let slot = match id {
                "on_start" => &mut hooks.on_start,
                "on_success" => &mut hooks.on_success,
                _ => &mut hooks.on_fail,
            };
            *slot = workflow.to_owned();
            if !edit.flags.is_empty() {
                edit.flags.push(' ');
            }
            edit.flags.push_str(&format!("{flag} {value:?}"));
        }
        Ok(out
            .into_iter()
            .map(|(target, mut edit, hooks)| {
                edit.edit = Edit::SetHooks(SetHooks {
                    environment: target.unwrap_or_default(),
                    hooks: Some(hooks),
                });
                edit
            })
            .collect())
    }

    /// Whether the edits start from the flow's current content.
    fn reads_current(&self) -> bool {
        self.expected_version.is_none()
            || self.policy.is_some()
            || !(self.on_start.is_empty() && self.on_success.is_empty() && self.on_fail.is_empty())
    }
}

fn step<'a>(f: &'a pb::Flow, environment: &str) -> Option<&'a pb::FlowStep> {
    f.steps.iter().find(|s| s.environment == environment)
}

/// `edits[2].set_policy.environment` → `--policy prod (environment)`: the
/// request path of an edit's error, in the user's words.
fn flag_field(field: &str, flags: &[String]) -> Option<String> {
    let rest = field.strip_prefix("edits[")?;
    let (i, rest) = rest.split_once(']')?;
    let flags = flags.get(i.parse::<usize>().ok()?)?;
    // Drop the edit's kind (`.set_policy`): the flags already say it.
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let detail = rest.split_once('.').map_or("", |(_, detail)| detail);
    Some(if detail.is_empty() {
        flags.clone()
    } else {
        format!("{flags} ({detail})")
    })
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
            // The latest version: the base of the edit unless the caller
            // pins one, and what --policy and hook changes start from.
            let current = if edit.reads_current() {
                client
                    .get_flow(pb::GetFlowRequest {
                        name: edit.name.clone(),
                        version: 0,
                    })
                    .await?
                    .into_inner()
                    .flow
            } else {
                None
            };
            let edits = edit.edits(current.as_ref())?;
            let flags: Vec<String> = edits.iter().map(|e| e.flags.clone()).collect();
            let expected_version = edit
                .expected_version
                .or(current.map(|f| f.version))
                .unwrap_or_default();
            let flow = client
                .edit_flow(pb::EditFlowRequest {
                    name: edit.name.clone(),
                    expected_version,
                    edits: edits
                        .into_iter()
                        .map(|e| pb::FlowEdit { edit: Some(e.edit) })
                        .collect(),
                })
                .await
                .map_err(|s| CliError::from(s).rename_fields(|field| flag_field(field, &flags)))?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};

    fn edit_args(args: &[&str]) -> EditArgs {
        let argv = ["promoflow", "flow", "edit", "f"].iter().chain(args);
        match Cli::parse_from_args(argv).command {
            Command::Flow(FlowCommand::Edit(edit)) => *edit,
            other => panic!("not a flow edit: {other:?}"),
        }
    }

    fn current() -> pb::Flow {
        pb::Flow {
            name: "f".into(),
            trigger_environment: "dev".into(),
            hooks: Some(pb::Hooks {
                on_fail: "page".into(),
                ..Default::default()
            }),
            steps: vec![pb::FlowStep {
                environment: "qa".into(),
                depends_on: vec!["dev".into()],
                hooks: Some(pb::Hooks {
                    on_start: "gate".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn edits_follow_the_order_of_the_flags() {
        let args = edit_args(&[
            "--depends-on",
            "prod=qa",
            "--add",
            "prod",
            "--after",
            "dev",
            "--description",
            "d",
            "--on-success",
            "qa=notify",
            "--promotion-timeout",
            "30m",
            "--on-fail",
            "qa=",
        ]);
        let edits = args.edits(Some(&current())).expect("edits");
        let flags: Vec<&str> = edits.iter().map(|e| e.flags.as_str()).collect();
        assert_eq!(
            flags,
            [
                "--depends-on prod=qa",
                "--add prod --after dev",
                "--description \"d\"",
                "--on-success \"qa=notify\" --on-fail \"qa=\"",
                "--promotion-timeout 30m",
            ]
        );
        // The step's hooks start from its current ones: on-start stays.
        let Edit::SetHooks(h) = &edits[3].edit else {
            panic!("not hooks: {:?}", edits[3].edit);
        };
        assert_eq!(h.environment, "qa");
        let hooks = h.hooks.clone().unwrap_or_default();
        assert_eq!(
            (
                hooks.on_start.as_str(),
                hooks.on_success.as_str(),
                hooks.on_fail.as_str()
            ),
            ("gate", "notify", "")
        );
    }

    #[test]
    fn release_hooks_keep_the_ones_not_given() {
        let edits = edit_args(&["--on-start", "announce"])
            .edits(Some(&current()))
            .expect("edits");
        let Edit::SetHooks(h) = &edits[0].edit else {
            panic!("not hooks");
        };
        assert_eq!(h.environment, "");
        let hooks = h.hooks.clone().unwrap_or_default();
        assert_eq!(
            (hooks.on_start.as_str(), hooks.on_fail.as_str()),
            ("announce", "page")
        );
        assert!(edit_args(&["--on-start", "=x"]).edits(None).is_err());
    }

    #[test]
    fn an_unset_action_stays_unset() {
        let edits = edit_args(&["--policy", "qa", "--post-action", "soak"])
            .edits(Some(&current()))
            .expect("edits");
        let Edit::SetPolicy(p) = &edits[0].edit else {
            panic!("not a policy");
        };
        let policy = p.policy.clone().unwrap_or_default();
        assert_eq!(policy.action, pb::PromotionAction::Unspecified as i32);
        assert_eq!(policy.post_action, "soak");
    }

    #[test]
    fn request_paths_become_flags() {
        let flags = vec![
            "--add prod --after qa".to_owned(),
            "--policy prod".to_owned(),
        ];
        assert_eq!(
            flag_field("edits[1].set_policy.environment", &flags).as_deref(),
            Some("--policy prod (environment)")
        );
        assert_eq!(
            flag_field("edits[0].add_environments.environments[0]", &flags).as_deref(),
            Some("--add prod --after qa (environments[0])")
        );
        assert_eq!(
            flag_field("edits[1]", &flags).as_deref(),
            Some("--policy prod")
        );
        assert_eq!(flag_field("edits[7].set_policy", &flags), None);
        assert_eq!(flag_field("flow.steps[0]", &flags), None);
    }
}
