//! `promoflow template`: named promotion templates (Codefresh's
//! `PromotionTemplate`): apply YAML, get, list, delete.

use std::process::ExitCode;

use clap::Subcommand;

use super::apply::apply;
use super::client::{CmdResult, Ctx, all_pages};
use super::output::{Output, fields, out, print_done, print_list, print_one};
use crate::domain::codefresh::documents::Kind;
use crate::proto::v1 as pb;

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Create or replace templates from a Codefresh `PromotionTemplate` YAML file
    /// (several documents may be separated by `---`).
    #[command(
        after_help = "Example:\n  promoflow template apply -f promotion-template.yaml\n  cat template.yaml | promoflow template apply -f -"
    )]
    Apply {
        /// The YAML file (`-` reads standard input).
        #[arg(short, long)]
        file: String,
    },
    /// Show a template; `-o yaml` prints it as Codefresh `PromotionTemplate` YAML.
    #[command(
        after_help = "Examples:\n  promoflow template get base-helm\n  promoflow template get base-helm -o yaml > base-helm.yaml"
    )]
    Get { name: String },
    /// List templates.
    #[command(after_help = "Example:\n  promoflow template list")]
    List,
    /// Delete a template no product refers to.
    #[command(after_help = "Example:\n  promoflow template delete base-helm")]
    Delete { name: String },
}

pub async fn run(ctx: &Ctx, cmd: TemplateCommand) -> CmdResult {
    let mut client = ctx.products();
    match cmd {
        TemplateCommand::Apply { file } => {
            apply(ctx, &file, &[Kind::PromotionTemplate], "template").await?;
        }
        TemplateCommand::Get { name } => {
            if ctx.output == Output::Yaml {
                let yaml = client
                    .export_promotion_template(pb::ExportPromotionTemplateRequest { name })
                    .await?
                    .into_inner()
                    .yaml;
                out!("{yaml}");
            } else {
                let t = client
                    .get_promotion_template(pb::GetPromotionTemplateRequest { name })
                    .await?
                    .into_inner()
                    .promotion_template
                    .unwrap_or_default();
                print_one(ctx.output, &t, describe)?;
            }
        }
        TemplateCommand::List => {
            let all = all_pages(|page_token| {
                let mut client = client.clone();
                async move {
                    let r = client
                        .list_promotion_templates(pb::ListPromotionTemplatesRequest {
                            page_size: 0,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((r.promotion_templates, r.next_page_token))
                }
            })
            .await?;
            print_list(
                ctx.output,
                &all,
                &["name", "version source", "files", "description"],
                |t| {
                    vec![
                        t.name.clone(),
                        version_source(t),
                        files(t),
                        t.description.clone(),
                    ]
                },
            )?;
        }
        TemplateCommand::Delete { name } => {
            client
                .delete_promotion_template(pb::DeletePromotionTemplateRequest {
                    name: name.clone(),
                    expected_version: 0,
                })
                .await?;
            print_done(ctx.output, &format!("promotion template {name} deleted"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn version_source(t: &pb::NamedPromotionTemplate) -> String {
    t.template
        .as_ref()
        .and_then(|t| t.version_source.as_ref())
        .map(|v| format!("{} {}", v.file, v.json_path))
        .unwrap_or_else(|| "-".into())
}

fn files(t: &pb::NamedPromotionTemplate) -> String {
    let files: Vec<String> = t
        .template
        .as_ref()
        .map(|t| {
            t.promotion
                .iter()
                .map(|f| format!("{} ({})", f.file, f.json_paths.join(", ")))
                .collect()
        })
        .unwrap_or_default();
    if files.is_empty() {
        "every file, whole".into()
    } else {
        files.join("; ")
    }
}

fn describe(t: &pb::NamedPromotionTemplate) -> String {
    fields(&[
        ("name", t.name.clone()),
        ("description", t.description.clone()),
        ("version source", version_source(t)),
        ("files", files(t)),
        ("version", t.version.to_string()),
    ])
}
