//! Command-line interface: `serve`, `migrate`, and (later) client commands.

pub mod demo;
pub mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, ServerConfig};

/// promoflow: promote application versions through graphs of environments.
#[derive(Debug, Parser)]
#[command(name = "promoflow", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    ///
    /// Example: promoflow serve --listen 0.0.0.0:50051 --database-url postgres://promoflow@db/promoflow
    Serve(ServerConfig),
    /// Start a server with the quick-start world and show a parallel promotion live.
    ///
    /// Example: promoflow demo          (keeps serving afterwards; Ctrl-C stops)
    /// Example: promoflow demo --exit   (for scripts: exit code 0 when the release succeeded)
    Demo(demo::DemoArgs),
    /// Apply database migrations and exit.
    ///
    /// Example: promoflow migrate --database-url postgres://promoflow@db/promoflow
    Migrate(ServerConfig),
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
    }
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
