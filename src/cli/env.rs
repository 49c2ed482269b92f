//! `promoflow env`: environments.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::client::{CmdResult, Ctx, all_pages, fail, key_value, update_failed, version};
use super::output::{self, fields, print_done, print_list, print_one};
use crate::proto::v1 as pb;

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Create an environment.
    #[command(
        after_help = "Examples:\n  promoflow env create dev\n  promoflow env create prod --kind production --description 'EU production' --label region=eu"
    )]
    Create {
        /// Lowercase DNS label, e.g. `prod-eu`.
        name: String,
        #[arg(long, value_enum, default_value_t = Kind::NonProduction)]
        kind: Kind,
        #[arg(long, default_value = "", hide_default_value = true)]
        description: String,
        /// A label, KEY=VALUE (repeatable).
        #[arg(long = "label", value_parser = key_value)]
        labels: Vec<(String, String)>,
    },
    /// Show one environment.
    #[command(after_help = "Example:\n  promoflow env get prod -o yaml")]
    Get { name: String },
    /// List environments.
    #[command(after_help = "Example:\n  promoflow env list -o json")]
    List,
    /// Change an environment: only the fields given change, the others keep
    /// their values.
    #[command(
        after_help = "Examples:\n  promoflow env update prod --description 'EU production' --label tier=1\n  promoflow env update staging --kind production --remove-label temp --expected-version 3"
    )]
    Update {
        name: String,
        #[arg(long, value_enum)]
        kind: Option<Kind>,
        /// The new description (`''` clears it).
        #[arg(long)]
        description: Option<String>,
        /// Add a label or replace its value, KEY=VALUE (repeatable).
        #[arg(long = "label", value_parser = key_value)]
        labels: Vec<(String, String)>,
        /// Remove the label KEY (repeatable).
        #[arg(long = "remove-label", value_name = "KEY")]
        remove_labels: Vec<String>,
        /// Remove every label before adding the --label ones.
        #[arg(long, conflicts_with = "remove_labels")]
        clear_labels: bool,
        /// Change it only if its version is still N (as read by `env get`);
        /// by default, the version this command reads.
        #[arg(long, value_name = "N", value_parser = version)]
        expected_version: Option<i64>,
    },
    /// Delete an environment (refused while a flow or product uses it).
    #[command(after_help = "Example:\n  promoflow env delete staging")]
    Delete { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Production,
    NonProduction,
}

pub async fn run(ctx: &Ctx, cmd: EnvCommand) -> CmdResult {
    let mut client = ctx.environments();
    match cmd {
        EnvCommand::Create {
            name,
            kind,
            description,
            labels,
        } => {
            let env = client
                .create_environment(pb::CreateEnvironmentRequest {
                    environment: Some(pb::Environment {
                        name,
                        kind: pb_kind(kind) as i32,
                        description,
                        labels: labels.into_iter().collect(),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner()
                .environment
                .unwrap_or_default();
            print_one(ctx.output, &env, |e| {
                format!("environment {} created", e.name)
            })?;
        }
        EnvCommand::Get { name } => {
            let env = client
                .get_environment(pb::GetEnvironmentRequest { name })
                .await?
                .into_inner()
                .environment
                .unwrap_or_default();
            print_one(ctx.output, &env, describe)?;
        }
        EnvCommand::List => {
            let all = all_pages(|page_token| {
                let mut client = client.clone();
                async move {
                    let r = client
                        .list_environments(pb::ListEnvironmentsRequest {
                            page_size: 0,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((r.environments, r.next_page_token))
                }
            })
            .await?;
            print_list(
                ctx.output,
                &all,
                &["name", "kind", "labels", "description"],
                |e| {
                    vec![
                        e.name.clone(),
                        output::environment_kind(e.kind),
                        labels(&e.labels),
                        e.description.clone(),
                    ]
                },
            )?;
        }
        EnvCommand::Update {
            name,
            kind,
            description,
            labels,
            remove_labels,
            clear_labels,
            expected_version,
        } => {
            if kind.is_none()
                && description.is_none()
                && labels.is_empty()
                && remove_labels.is_empty()
                && !clear_labels
            {
                return fail(
                    "nothing to update: give at least one of --kind, --description, --label, --remove-label, --clear-labels",
                );
            }
            if let Some(key) = remove_labels
                .iter()
                .find(|key| labels.iter().any(|(k, _)| k == *key))
            {
                return fail(format!(
                    "--remove-label {key} and --label {key}=… contradict each other"
                ));
            }
            let mut env = client
                .get_environment(pb::GetEnvironmentRequest { name: name.clone() })
                .await?
                .into_inner()
                .environment
                .unwrap_or_default();
            let read_version = env.version;
            if let Some(kind) = kind {
                env.kind = pb_kind(kind) as i32;
            }
            if let Some(description) = description {
                env.description = description;
            }
            if clear_labels {
                env.labels.clear();
            }
            for key in &remove_labels {
                // A key that is not there is more likely a typo than a
                // label already gone: say so rather than change nothing.
                if env.labels.remove(key).is_none() {
                    return fail(format!(
                        "environment {name} has no label {key:?} (its labels: {})",
                        output::or_none(&self::labels(&env.labels))
                    ));
                }
            }
            env.labels.extend(labels);
            let env = client
                .update_environment(pb::UpdateEnvironmentRequest {
                    environment: Some(env),
                    expected_version: expected_version.unwrap_or(read_version),
                })
                .await
                .map_err(|s| {
                    update_failed(s, expected_version, &format!("promoflow env get {name}"))
                })?
                .into_inner()
                .environment
                .unwrap_or_default();
            print_one(ctx.output, &env, |e| {
                format!("environment {} updated (version {})", e.name, e.version)
            })?;
        }
        EnvCommand::Delete { name } => {
            client
                .delete_environment(pb::DeleteEnvironmentRequest {
                    name: name.clone(),
                    expected_version: 0,
                })
                .await?;
            print_done(ctx.output, &format!("environment {name} deleted"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn pb_kind(kind: Kind) -> pb::EnvironmentKind {
    match kind {
        Kind::Production => pb::EnvironmentKind::Production,
        Kind::NonProduction => pb::EnvironmentKind::NonProduction,
    }
}

fn labels(l: &std::collections::HashMap<String, String>) -> String {
    let mut v: Vec<_> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.sort();
    v.join(",")
}

fn describe(e: &pb::Environment) -> String {
    fields(&[
        ("name", e.name.clone()),
        ("kind", output::environment_kind(e.kind)),
        ("description", e.description.clone()),
        ("labels", labels(&e.labels)),
        ("version", e.version.to_string()),
        ("created", output::time(e.create_time.as_ref())),
        ("updated", output::time(e.update_time.as_ref())),
    ])
}
