//! The `promoflow` binary: the server, the demo and the client commands.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = promoflow::cli::Cli::parse_args();
    promoflow::cli::run(cli).await
}
