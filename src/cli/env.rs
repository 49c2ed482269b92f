//! `promoflow env`: environments.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::client::{CmdResult, Ctx, all_pages, key_value};
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
        #[arg(long, default_value = "")]
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
            let kind = match kind {
                Kind::Production => pb::EnvironmentKind::Production,
                Kind::NonProduction => pb::EnvironmentKind::NonProduction,
            };
            let env = client
                .create_environment(pb::CreateEnvironmentRequest {
                    environment: Some(pb::Environment {
                        name,
                        kind: kind as i32,
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
