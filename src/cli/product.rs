//! `promoflow product`: products and their applications.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::client::{CmdResult, Ctx, all_pages};
use super::output::{
    self, Output, fields, outln, print_done, print_list, print_one, print_value, table, to_value,
};
use crate::proto::v1 as pb;

#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// Create a product with one application per environment.
    #[command(
        after_help = "Example:\n  promoflow product create demo --app dev=demo-dev@1.0.0 --app qa=demo-qa --app prod=demo-prod --flow sequential"
    )]
    Create {
        /// Lowercase DNS label, e.g. `demo-trioapp`.
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// An application: ENV=NAME, or ENV=NAME@VERSION for its current version (repeatable).
        #[arg(long = "app", value_parser = application)]
        apps: Vec<pb::Application>,
        /// What a new release does while another one of the product runs.
        #[arg(long, value_enum, default_value_t = Concurrency::Queue)]
        concurrency: Concurrency,
        /// A flow that ReportDeployment may trigger, in order (repeatable).
        #[arg(long = "flow")]
        flows: Vec<String>,
    },
    /// Show one product and its applications.
    #[command(after_help = "Example:\n  promoflow product get demo")]
    Get { name: String },
    /// List products.
    #[command(after_help = "Example:\n  promoflow product list -o json")]
    List,
    /// Record a new version deployed to an environment (what CI calls after a
    /// deploy); it triggers the first matching promotion flow of the product.
    #[command(
        after_help = "Example:\n  promoflow product report demo --env dev --version 1.2.0 --sha 4f2c1e9 --message 'feat: faster checkout' --revision main"
    )]
    Report {
        name: String,
        /// The environment deployed to.
        #[arg(long = "env")]
        environment: String,
        #[arg(long)]
        version: String,
        /// The commit's SHA.
        #[arg(long, default_value = "")]
        sha: String,
        /// The commit message (matched by COMMIT_MESSAGE selectors).
        #[arg(long, default_value = "")]
        message: String,
        #[arg(long, default_value = "")]
        author: String,
        /// The Git revision, e.g. a branch (matched by GIT_REVISION selectors).
        #[arg(long, default_value = "")]
        revision: String,
        /// Idempotency key: CI retries with the same key record it once.
        #[arg(long, default_value = "")]
        request_id: String,
    },
    /// Delete a product.
    #[command(after_help = "Example:\n  promoflow product delete demo")]
    Delete { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Concurrency {
    /// A new release waits until the earlier ones are final.
    Queue,
    /// A new release terminates the product's active releases.
    Terminate,
}

fn application(s: &str) -> Result<pb::Application, String> {
    let (env, rest) = super::client::key_value(s)
        .map_err(|_| format!("expected ENV=NAME or ENV=NAME@VERSION, got {s:?}"))?;
    let (name, version) = rest.split_once('@').unwrap_or((rest.as_str(), ""));
    Ok(pb::Application {
        environment: env,
        name: name.to_string(),
        version: version.to_string(),
        ..Default::default()
    })
}

pub async fn run(ctx: &Ctx, cmd: ProductCommand) -> CmdResult {
    let mut client = ctx.products();
    match cmd {
        ProductCommand::Create {
            name,
            description,
            apps,
            concurrency,
            flows,
        } => {
            let concurrency = match concurrency {
                Concurrency::Queue => pb::Concurrency::Queue,
                Concurrency::Terminate => pb::Concurrency::Terminate,
            };
            let product = client
                .create_product(pb::CreateProductRequest {
                    product: Some(pb::Product {
                        name,
                        description,
                        applications: apps,
                        concurrency: concurrency as i32,
                        promotion_flows: flows
                            .into_iter()
                            .map(|flow| pb::ProductPromotionFlow {
                                flow,
                                selectors: Vec::new(),
                            })
                            .collect(),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner()
                .product
                .unwrap_or_default();
            print_one(ctx.output, &product, |p| {
                format!(
                    "product {} created with {} applications",
                    p.name,
                    p.applications.len()
                )
            })?;
        }
        ProductCommand::Get { name } => {
            let product = client
                .get_product(pb::GetProductRequest { name })
                .await?
                .into_inner()
                .product
                .unwrap_or_default();
            print_one(ctx.output, &product, describe)?;
        }
        ProductCommand::List => {
            let all = all_pages(|page_token| {
                let mut client = client.clone();
                async move {
                    let r = client
                        .list_products(pb::ListProductsRequest {
                            page_size: 0,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((r.products, r.next_page_token))
                }
            })
            .await?;
            print_list(
                ctx.output,
                &all,
                &["name", "applications", "flows", "description"],
                |p| {
                    vec![
                        p.name.clone(),
                        p.applications
                            .iter()
                            .map(|a| a.environment.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        flow_names(p),
                        p.description.clone(),
                    ]
                },
            )?;
        }
        ProductCommand::Report {
            name,
            environment,
            version,
            sha,
            message,
            author,
            revision,
            request_id,
        } => {
            let r = client
                .report_deployment(pb::ReportDeploymentRequest {
                    product: name.clone(),
                    environment,
                    version,
                    commit: Some(pb::Commit {
                        sha,
                        message,
                        author,
                        revision,
                    }),
                    request_id,
                })
                .await?
                .into_inner();
            let app = r.application.unwrap_or_default();
            match (ctx.output, r.release) {
                (Output::Table, release) => {
                    outln!(
                        "{name} {} recorded in {} ({})",
                        app.version,
                        app.environment,
                        app.name
                    );
                    match release {
                        Some(rel) => outln!(
                            "release {} triggered through {}: promoflow release watch {}",
                            rel.id,
                            rel.flow,
                            rel.id
                        ),
                        None => outln!("no promotion flow of {name} matched: nothing triggered"),
                    }
                }
                (output, release) => {
                    let mut doc = serde_json::Map::new();
                    doc.insert("application".into(), to_value(&app)?);
                    if let Some(rel) = release {
                        doc.insert("release".into(), to_value(&rel)?);
                    }
                    print_value(output, &serde_json::Value::Object(doc))?;
                }
            }
        }
        ProductCommand::Delete { name } => {
            client
                .delete_product(pb::DeleteProductRequest {
                    name: name.clone(),
                    expected_version: 0,
                })
                .await?;
            print_done(ctx.output, &format!("product {name} deleted"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn flow_names(p: &pb::Product) -> String {
    p.promotion_flows
        .iter()
        .map(|f| f.flow.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn describe(p: &pb::Product) -> String {
    let head = fields(&[
        ("name", p.name.clone()),
        ("description", p.description.clone()),
        ("concurrency", output::concurrency(p.concurrency)),
        ("flows", flow_names(p)),
        ("version", p.version.to_string()),
        ("updated", output::time(p.update_time.as_ref())),
    ]);
    let apps = table(
        &["environment", "application", "version", "commit", "updated"],
        p.applications.iter().map(|a| {
            vec![
                a.environment.clone(),
                a.name.clone(),
                a.version.clone(),
                a.last_commit
                    .as_ref()
                    .map(|c| c.sha.clone())
                    .unwrap_or_default(),
                output::time(a.update_time.as_ref()),
            ]
        }),
    );
    format!("{head}\n\n{apps}")
}
