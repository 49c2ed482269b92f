//! Command-line interface: `serve`, `demo`, `migrate`, and the client
//! commands, one module per command group. [`client`] holds what they share
//! (connection, error display), [`output`] tables and JSON/YAML.

pub mod access;
pub mod apply;
pub mod bench;
pub mod client;
pub mod demo;
pub mod env;
pub mod flow;
pub mod follow;
pub mod order;
pub mod output;
pub mod product;
pub mod release;
pub mod template;
pub mod watch;
pub mod workflow;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, ServerConfig};

/// promoflow: promote application versions through graphs of environments.
#[derive(Debug, Parser)]
#[command(name = "promoflow", version, about, long_about = None)]
#[command(
    after_help = "Quick start (from the repository's root; README, \"The command line\", goes on):\n  promoflow serve &\n  promoflow env create dev && promoflow env create qa && promoflow env create prod --kind production\n  promoflow product create demo --app dev=demo-dev@1.0.0 --app qa=demo-qa --app prod=demo-prod\n  promoflow flow apply -f examples/multi-env-sequential-promotion.yaml\n  promoflow release trigger --flow multi-env-sequential-promotion --product demo --wait"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub client: client::ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    #[command(
        after_help = "Examples:\n  promoflow serve\n  promoflow serve --listen 0.0.0.0:50051 --database-url postgres://promoflow@db/promoflow"
    )]
    Serve(ServerConfig),
    /// Start a server with the quick-start world and show a parallel promotion live.
    #[command(
        after_help = "Examples:\n  promoflow demo                  (keeps serving afterwards; Ctrl-C stops)\n  promoflow demo --exit           (for scripts: exit code 0 when the release succeeded)\n  promoflow demo --data-dir demo  (keeps the demo world in ./demo)"
    )]
    Demo(demo::DemoArgs),
    /// Measure throughput, latency and memory against a no-op RPC (see BENCHMARKS.md).
    #[command(
        after_help = "Examples:\n  promoflow bench                      (starts its own server on temporary SQLite)\n  promoflow bench --database-url postgres://promoflow@db/bench --json\n  promoflow bench --duration 1s --watchers 100 --flow-sizes 100   (a smoke run)"
    )]
    Bench(Box<bench::BenchArgs>),
    /// Apply database migrations and exit.
    #[command(
        after_help = "Example:\n  promoflow migrate --database-url postgres://promoflow@db/promoflow"
    )]
    Migrate(ServerConfig),
    /// Environments: create, get, list, update, delete.
    #[command(
        subcommand,
        after_help = "Example:\n  promoflow env create prod-eu --kind production --description 'EU production'"
    )]
    Env(env::EnvCommand),
    /// Products and their applications: create, get, list, update, report, delete.
    #[command(
        subcommand,
        after_help = "Example:\n  promoflow product create demo --app dev=demo-dev@1.0.0 --app qa=demo-qa --app prod=demo-prod"
    )]
    Product(product::ProductCommand),
    /// Named promotion templates (Codefresh `PromotionTemplate`): apply YAML, get, list, delete.
    #[command(
        subcommand,
        after_help = "Example:\n  promoflow template apply -f promotion-template.yaml"
    )]
    Template(template::TemplateCommand),
    /// Workflows (HTTP call, wait, approval, command): create, get, list, update, delete.
    #[command(
        subcommand,
        after_help = "Example:\n  promoflow workflow create soak --wait 30s"
    )]
    Workflow(workflow::WorkflowCommand),
    /// Promotion flows: apply YAML, get, list, versions, edit, validate, copy, render, delete.
    #[command(
        subcommand,
        after_help = "Example:\n  promoflow flow apply -f examples/multi-env-parallel-promotion.yaml\n  promoflow flow render multi-env-parallel-promotion"
    )]
    Flow(flow::FlowCommand),
    /// Releases: trigger, watch, follow, get, list, terminate, retry, approve, reject.
    #[command(
        subcommand,
        after_help = "Example:\n  promoflow release trigger --flow multi-env-parallel-promotion --product demo-trioapp --wait"
    )]
    Release(release::ReleaseCommand),
    /// API tokens: create (the secret is shown once), list, revoke.
    #[command(
        subcommand,
        after_help = "Example:\n  promoflow token create ci --role promoter --env qa --env 'staging*'"
    )]
    Token(access::TokenCommand),
    /// The audit log: who changed or tried to change what.
    #[command(
        subcommand,
        after_help = "Example:\n  promoflow audit list --action release.approve"
    )]
    Audit(access::AuditCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  promoflow completions bash > /etc/bash_completion.d/promoflow\n  promoflow completions zsh > \"${fpath[1]}/_promoflow\""
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Installs the tracing subscriber (`RUST_LOG` filters, default `info`).
pub fn init_tracing(format: LogFormat) {
    init_tracing_with(format, "info,sqlx=warn,sea_orm=warn");
}

/// Installs the tracing subscriber with `default` as the filter when
/// `RUST_LOG` is unset (the demo keeps its own output readable with `warn`).
fn init_tracing_with(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub async fn run(cli: Cli) -> ExitCode {
    let args = cli.client;
    match cli.command {
        Command::Serve(config) => {
            init_tracing(config.log_format);
            let result = async {
                let (listener, _) = crate::server::bind(config.listen).await?;
                crate::server::run(config, listener, crate::server::shutdown_signal()).await
            }
            .await;
            report(result)
        }
        Command::Demo(args) => {
            init_tracing_with(args.server.log_format, "warn");
            match demo::run(args).await {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("promoflow demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench(args) => {
            init_tracing_with(crate::config::LogFormat::Text, "warn");
            match bench::run(*args).await {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("promoflow bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Migrate(config) => {
            init_tracing(config.log_format);
            let result = async {
                let url = config.resolved_database_url().map_err(|e| {
                    crate::error::Error::Unavailable(format!("data directory: {e}"))
                })?;
                crate::store::Store::open(&url, 1).await?.close().await;
                tracing::info!("migrations applied");
                Ok(())
            }
            .await;
            report(result)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "promoflow",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Env(cmd) => client(&args, |ctx| async move { env::run(&ctx, cmd).await }).await,
        Command::Product(cmd) => {
            client(&args, |ctx| async move { product::run(&ctx, cmd).await }).await
        }
        Command::Template(cmd) => {
            client(&args, |ctx| async move { template::run(&ctx, cmd).await }).await
        }
        Command::Workflow(cmd) => {
            client(&args, |ctx| async move { workflow::run(&ctx, cmd).await }).await
        }
        Command::Flow(cmd) => client(&args, |ctx| async move { flow::run(&ctx, cmd).await }).await,
        Command::Release(cmd) => {
            client(&args, |ctx| async move { release::run(&ctx, cmd).await }).await
        }
        Command::Token(
            cmd @ access::TokenCommand::Create {
                database_url: Some(_),
                ..
            },
        ) => client::finish(&args, access::create_offline(cmd, args.output).await),
        Command::Token(cmd) => {
            client(
                &args,
                |ctx| async move { access::run_token(&ctx, cmd).await },
            )
            .await
        }
        Command::Audit(cmd) => {
            client(
                &args,
                |ctx| async move { access::run_audit(&ctx, cmd).await },
            )
            .await
        }
    }
}

/// Runs a client command and turns its result into the exit code.
async fn client<F, Fut>(args: &client::ClientArgs, command: F) -> ExitCode
where
    F: FnOnce(client::Ctx) -> Fut,
    Fut: std::future::Future<Output = client::CmdResult>,
{
    let result = match client::Ctx::new(args) {
        Ok(ctx) => command(ctx).await,
        Err(e) => Err(e),
    };
    client::finish(args, result)
}

fn report(result: crate::error::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("promoflow: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits until the server behind `channel` answers health `SERVING`
/// (migrations applied, services up), for at most `timeout`. Used by the
/// demo and by tests that start servers.
pub async fn wait_ready(
    channel: &tonic::transport::Channel,
    timeout: std::time::Duration,
) -> Result<(), String> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let start = std::time::Instant::now();
    loop {
        let mut health = HealthClient::new(channel.clone());
        if let Ok(r) = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            && r.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "the server did not become ready within {timeout:?}"
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
