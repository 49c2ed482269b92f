//! `promoflow product`: products and their applications.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::client::{CliError, CmdResult, Ctx, all_pages, fail, update_failed, version};
use super::order::FlagOrder;
use super::output::{
    self, Output, fields, outln, print_done, print_list, print_one, print_value, table, to_value,
};
use crate::domain::codefresh::documents::Kind;
use crate::proto::v1 as pb;

#[derive(Debug, Subcommand)]
pub enum ProductCommand {
    /// Create or update products from a Codefresh `Product` YAML file (several
    /// documents may be separated by `---`; applications travel in the
    /// `promoflow.io/applications` annotation, see the README).
    #[command(
        after_help = "Example:\n  promoflow product apply -f product.yaml\n  cat product.yaml | promoflow product apply -f -"
    )]
    Apply {
        /// The YAML file (`-` reads standard input).
        #[arg(short, long)]
        file: String,
    },
    /// Create a product with one application per environment.
    #[command(
        after_help = "Examples:\n  promoflow product create demo --app dev=demo-dev@1.0.0 --app qa=demo-qa --app prod=demo-prod --flow multi-env-sequential-promotion\n  promoflow product create shop --app dev=shop-dev --app prod=shop-prod --flow hotfix --selector 'commit-message in *hotfix*' --flow multi-env-sequential-promotion"
    )]
    Create {
        /// Lowercase DNS label, e.g. `demo-trioapp`.
        name: String,
        #[arg(long, default_value = "", hide_default_value = true)]
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
        /// A condition of the `--flow` before it (repeatable; all must match):
        /// `KEY OP PATTERNS` with KEY commit-message or git-revision, OP in or
        /// not-in, PATTERNS comma-separated with `*` wildcards.
        #[arg(long = "selector", value_name = "KEY OP PATTERNS", value_parser = selector)]
        selectors: Vec<pb::TriggerSelector>,
        #[arg(skip)]
        order: FlagOrder,
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
        #[arg(long, default_value = "", hide_default_value = true)]
        sha: String,
        /// The commit message (matched by COMMIT_MESSAGE selectors).
        #[arg(long, default_value = "", hide_default_value = true)]
        message: String,
        #[arg(long, default_value = "", hide_default_value = true)]
        author: String,
        /// The Git revision, e.g. a branch (matched by GIT_REVISION selectors).
        #[arg(long, default_value = "", hide_default_value = true)]
        revision: String,
        /// Idempotency key: CI retries with the same key record it once.
        #[arg(long, default_value = "", hide_default_value = true)]
        request_id: String,
    },
    /// Change a product: only the fields given change, the others keep their
    /// values. Recorded application versions change only through `report`
    /// and releases.
    #[command(
        after_help = "Examples:\n  promoflow product update demo --app prod-eu=demo-prod-eu --remove-app qa --concurrency terminate\n  promoflow product update demo --flow hotfix --selector 'commit-message in *hotfix*,*urgent*' --flow multi-env-sequential-promotion --expected-version 4"
    )]
    Update {
        name: String,
        /// The new description (`''` clears it).
        #[arg(long)]
        description: Option<String>,
        /// An application, ENV=NAME or ENV=NAME@VERSION (repeatable): added, or
        /// renaming the application of ENV, which keeps its recorded version.
        #[arg(long = "app", value_parser = application)]
        apps: Vec<pb::Application>,
        /// Remove the application of environment ENV (repeatable).
        #[arg(long = "remove-app", value_name = "ENV")]
        remove_apps: Vec<String>,
        #[arg(long, value_enum)]
        concurrency: Option<Concurrency>,
        /// Replace the flows ReportDeployment may trigger with these, in order
        /// (repeatable); a flow already listed keeps its selectors unless
        /// `--selector` follows it.
        #[arg(long = "flow")]
        flows: Vec<String>,
        /// A condition of the `--flow` before it, replacing that entry's
        /// selectors (repeatable; all must match): `KEY OP PATTERNS`, as for
        /// `product create`.
        #[arg(long = "selector", value_name = "KEY OP PATTERNS", value_parser = selector, requires = "flows")]
        selectors: Vec<pb::TriggerSelector>,
        /// Remove every flow: ReportDeployment triggers nothing.
        #[arg(long, conflicts_with = "flows")]
        clear_flows: bool,
        /// Change it only if its version is still N (as read by `product get`);
        /// by default, the version this command reads.
        #[arg(long, value_name = "N", value_parser = version)]
        expected_version: Option<i64>,
        #[arg(skip)]
        order: FlagOrder,
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
        ProductCommand::Apply { file } => {
            super::apply::apply(ctx, &file, &[Kind::Product], "product").await?;
        }
        ProductCommand::Create {
            name,
            description,
            apps,
            concurrency,
            flows,
            selectors,
            order,
        } => {
            let promotion_flows = flow_entries(flows, selectors, &order)?
                .into_iter()
                .map(|(flow, selectors)| pb::ProductPromotionFlow {
                    flow,
                    selectors: selectors.unwrap_or_default(),
                })
                .collect();
            let product = client
                .create_product(pb::CreateProductRequest {
                    product: Some(pb::Product {
                        name,
                        description,
                        applications: apps,
                        concurrency: pb_concurrency(concurrency) as i32,
                        promotion_flows,
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
                        app_environments(p),
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
        ProductCommand::Update {
            name,
            description,
            apps,
            remove_apps,
            concurrency,
            flows,
            selectors,
            clear_flows,
            expected_version,
            order,
        } => {
            if description.is_none()
                && apps.is_empty()
                && remove_apps.is_empty()
                && concurrency.is_none()
                && flows.is_empty()
                && !clear_flows
            {
                return fail(
                    "nothing to update: give at least one of --description, --app, --remove-app, --concurrency, --flow, --clear-flows",
                );
            }
            check_app_flags(&apps, &remove_apps)?;
            let flows = flow_entries(flows, selectors, &order)?;
            let mut product = client
                .get_product(pb::GetProductRequest { name: name.clone() })
                .await?
                .into_inner()
                .product
                .unwrap_or_default();
            let read_version = product.version;
            if let Some(description) = description {
                product.description = description;
            }
            if let Some(concurrency) = concurrency {
                product.concurrency = pb_concurrency(concurrency) as i32;
            }
            edit_applications(&mut product, apps, remove_apps)?;
            if clear_flows {
                product.promotion_flows.clear();
            } else if !flows.is_empty() {
                product.promotion_flows = replace_flows(&product.promotion_flows, flows);
            }
            let product = client
                .update_product(pb::UpdateProductRequest {
                    product: Some(product),
                    expected_version: expected_version.unwrap_or(read_version),
                })
                .await
                .map_err(|s| {
                    update_failed(
                        s,
                        expected_version,
                        &format!("promoflow product get {name}"),
                    )
                })?
                .into_inner()
                .product
                .unwrap_or_default();
            print_one(ctx.output, &product, |p| {
                format!("product {} updated (version {})", p.name, p.version)
            })?;
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

fn pb_concurrency(c: Concurrency) -> pb::Concurrency {
    match c {
        Concurrency::Queue => pb::Concurrency::Queue,
        Concurrency::Terminate => pb::Concurrency::Terminate,
    }
}

/// Refuses `--app` and `--remove-app` flags that contradict each other:
/// checked before anything is read or sent.
fn check_app_flags(
    apps: &[pb::Application],
    remove: &[String],
) -> Result<(), super::client::CliError> {
    for (i, app) in apps.iter().enumerate() {
        let env = &app.environment;
        if apps[..i].iter().any(|a| a.environment == *env) {
            return fail(format!("--app {env}=… is given twice"));
        }
        if remove.contains(env) {
            return fail(format!(
                "--remove-app {env} and --app {env}=… contradict each other"
            ));
        }
    }
    Ok(())
}

/// Applies `--remove-app` and `--app` to the product's applications.
///
/// `--app ENV=…` for an environment that has an application replaces that
/// application's name and keeps everything recorded for it: its version,
/// commit and time. The server keeps the recorded version of an existing
/// application whatever the request says (only `report` and releases change
/// it), so a different `@VERSION` could not take effect: it is refused
/// rather than silently ignored, and the same version is accepted. An
/// application for a new environment is added at the end, with the
/// `@VERSION` given as its initial version. Removing an environment that has
/// no application is refused too: it is more likely a typo than a wish to
/// change nothing.
fn edit_applications(
    product: &mut pb::Product,
    apps: Vec<pb::Application>,
    remove: Vec<String>,
) -> Result<(), super::client::CliError> {
    let name = product.name.clone();
    for env in &remove {
        let before = product.applications.len();
        product.applications.retain(|a| a.environment != *env);
        if product.applications.len() == before {
            return fail(format!(
                "product {name} has no application in environment {env:?} (it has: {})",
                output::or_none(&app_environments(product))
            ));
        }
    }
    for app in apps {
        match product
            .applications
            .iter_mut()
            .find(|a| a.environment == app.environment)
        {
            Some(current) => {
                if !app.version.is_empty() && app.version != current.version {
                    let env = &app.environment;
                    let recorded = if current.version.is_empty() {
                        "no recorded version".to_string()
                    } else {
                        format!("version {}", current.version)
                    };
                    return fail(format!(
                        "--app {env}=…@{}: the application of {name} in {env} has {recorded}, and update does not change recorded versions; record a deployment with `promoflow product report {name} --env {env} --version {}`",
                        app.version, app.version
                    ));
                }
                current.name = app.name;
            }
            None => product.applications.push(app),
        }
    }
    Ok(())
}

/// A `--flow` and the `--selector`s that followed it (`None`: none did).
type FlowEntry = (String, Option<Vec<pb::TriggerSelector>>);

/// Pairs each `--selector` with the `--flow` given last before it.
fn flow_entries(
    flows: Vec<String>,
    selectors: Vec<pb::TriggerSelector>,
    order: &FlagOrder,
) -> Result<Vec<FlowEntry>, CliError> {
    let mut entries: Vec<FlowEntry> = flows.into_iter().map(|f| (f, None)).collect();
    for (k, selector) in selectors.into_iter().enumerate() {
        let at = order.position("selectors", k);
        let owner = at.and_then(|at| {
            (0..entries.len())
                .rev()
                .find(|&i| order.position("flows", i).is_some_and(|p| p < at))
        });
        let Some(i) = owner else {
            return fail(format!(
                "--selector {:?} must follow the --flow it is a condition of, e.g. --flow hotfix --selector 'commit-message in *hotfix*'",
                selector_text(&selector)
            ));
        };
        entries[i].1.get_or_insert_with(Vec::new).push(selector);
    }
    Ok(entries)
}

/// The promotion flows named by `--flow`, in that order. An entry for a flow
/// that is already listed keeps its selectors unless `--selector`s followed
/// it: the n-th `--flow X` takes the n-th existing entry of X; others have
/// only the selectors given.
fn replace_flows(
    current: &[pb::ProductPromotionFlow],
    flows: Vec<FlowEntry>,
) -> Vec<pb::ProductPromotionFlow> {
    let mut unused: Vec<Option<&pb::ProductPromotionFlow>> = current.iter().map(Some).collect();
    flows
        .into_iter()
        .map(|(flow, selectors)| {
            let kept = unused
                .iter_mut()
                .find(|e| e.is_some_and(|e| e.flow == flow))
                .and_then(Option::take);
            let selectors = selectors
                .or_else(|| kept.map(|entry| entry.selectors.clone()))
                .unwrap_or_default();
            pb::ProductPromotionFlow { flow, selectors }
        })
        .collect()
}

/// Parses `--selector`: `commit-message in *hotfix*,*urgent*`. Codefresh's
/// spellings (`commitMessage`, `NotIn`) are accepted too.
fn selector(s: &str) -> Result<pb::TriggerSelector, String> {
    let usage = "expected KEY OP PATTERNS, e.g. 'commit-message in *hotfix*' or 'git-revision not-in main,release-*'";
    let mut words = s.trim().splitn(3, char::is_whitespace);
    let (Some(key), Some(op), Some(patterns)) = (words.next(), words.next(), words.next()) else {
        return Err(format!("{usage}; got {s:?}"));
    };
    let key = match key.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "commitmessage" => pb::SelectorKey::CommitMessage,
        "gitrevision" => pb::SelectorKey::GitRevision,
        _ => {
            return Err(format!(
                "{key:?} is not a selector key: use commit-message or git-revision"
            ));
        }
    };
    let operator = match op.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
        "in" => pb::SelectorOperator::In,
        "notin" => pb::SelectorOperator::NotIn,
        _ => return Err(format!("{op:?} is not an operator: use in or not-in")),
    };
    let values: Vec<String> = patterns
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    if values.is_empty() {
        return Err(format!("{usage}; got no patterns"));
    }
    Ok(pb::TriggerSelector {
        key: key as i32,
        operator: operator as i32,
        values,
    })
}

/// A selector as `--selector` spells it.
fn selector_text(s: &pb::TriggerSelector) -> String {
    let key = match pb::SelectorKey::try_from(s.key) {
        Ok(pb::SelectorKey::GitRevision) => "git-revision",
        Ok(pb::SelectorKey::CommitMessage) => "commit-message",
        _ => "?",
    };
    let op = match pb::SelectorOperator::try_from(s.operator) {
        Ok(pb::SelectorOperator::NotIn) => "not-in",
        Ok(pb::SelectorOperator::In) => "in",
        _ => "?",
    };
    format!("{key} {op} {}", s.values.join(","))
}

fn app_environments(p: &pb::Product) -> String {
    p.applications
        .iter()
        .map(|a| a.environment.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Each flow with its selectors: `hotfix (commit-message in *hotfix*)`.
fn flows_described(p: &pb::Product) -> String {
    p.promotion_flows
        .iter()
        .map(|f| {
            if f.selectors.is_empty() {
                f.flow.clone()
            } else {
                let conditions: Vec<String> = f.selectors.iter().map(selector_text).collect();
                format!("{} ({})", f.flow, conditions.join(" and "))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn flow_names(p: &pb::Product) -> String {
    p.promotion_flows
        .iter()
        .map(|f| f.flow.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// What the product's Git promotions move: a named template, an inline
/// one, or every file.
fn template(p: &pb::Product) -> String {
    match (&p.promotion_template_ref, &p.promotion_template) {
        (name, _) if !name.is_empty() => name.clone(),
        (_, Some(_)) => "inline".into(),
        (_, None) => "-".into(),
    }
}

fn describe(p: &pb::Product) -> String {
    let head = fields(&[
        ("name", p.name.clone()),
        ("description", p.description.clone()),
        ("concurrency", output::concurrency(p.concurrency)),
        ("flows", flows_described(p)),
        ("template", template(p)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};

    fn sel(s: &str) -> pb::TriggerSelector {
        selector(s).expect(s)
    }

    #[test]
    fn selectors_parse_in_both_spellings() {
        let s = sel("commit-message in *hotfix*, *urgent*");
        assert_eq!(s.key, pb::SelectorKey::CommitMessage as i32);
        assert_eq!(s.operator, pb::SelectorOperator::In as i32);
        assert_eq!(s.values, ["*hotfix*", "*urgent*"]);
        assert_eq!(
            sel("gitRevision NotIn main"),
            sel("git-revision not-in main")
        );
        assert_eq!(selector_text(&s), "commit-message in *hotfix*,*urgent*");
        for bad in [
            "commit-message",
            "author in x",
            "commit-message like x",
            "git-revision in ,",
        ] {
            assert!(selector(bad).is_err(), "{bad}");
        }
    }

    /// `product create shop ARGS` through the real parser, paired.
    fn entries(args: &[&str]) -> Result<Vec<FlowEntry>, CliError> {
        let argv = ["promoflow", "product", "create", "shop"]
            .iter()
            .chain(args);
        let Command::Product(ProductCommand::Create {
            flows,
            selectors,
            order,
            ..
        }) = Cli::parse_from_args(argv).command
        else {
            panic!("not a product create");
        };
        flow_entries(flows, selectors, &order)
    }

    #[test]
    fn each_selector_belongs_to_the_flow_before_it() {
        let entries = entries(&[
            "--flow",
            "hotfix",
            "--selector",
            "commit-message in *hotfix*",
            "--selector",
            "git-revision in main",
            "--flow",
            "plain",
        ])
        .expect("entries");
        assert_eq!(entries[0].0, "hotfix");
        assert_eq!(entries[0].1.as_ref().map(Vec::len), Some(2));
        assert_eq!(entries[1], ("plain".to_owned(), None));

        let err = super::tests::entries(&["--selector", "commit-message in x", "--flow", "f"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("must follow the --flow"), "{err}");
    }

    #[test]
    fn replaced_flows_keep_selectors_unless_given() {
        let current = vec![pb::ProductPromotionFlow {
            flow: "hotfix".into(),
            selectors: vec![sel("commit-message in *hotfix*")],
        }];
        let kept = replace_flows(&current, vec![("hotfix".into(), None), ("f".into(), None)]);
        assert_eq!(kept[0], current[0]);
        assert!(kept[1].selectors.is_empty());
        let replaced = replace_flows(
            &current,
            vec![("hotfix".into(), Some(vec![sel("git-revision in main")]))],
        );
        assert_eq!(replaced[0].selectors, [sel("git-revision in main")]);
    }
}
