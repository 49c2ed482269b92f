//! The `promoflow` binary: the server, the demo and the client commands.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = promoflow::cli::Cli::parse();
    promoflow::cli::run(cli).await
}
