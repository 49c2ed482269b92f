//! `promoflow bench`: the load generator behind BENCHMARKS.md.
//!
//! It starts a server as a child process of this binary (a temporary SQLite
//! store by default, `--database-url` for PostgreSQL) or measures one that
//! already runs (`--target`), seeds a world under a fresh name prefix, and
//! runs the scenarios in [`scenarios`]. Every figure is put next to the
//! no-op floor measured on the same server in the same run: a
//! `grpc.health.v1.Health/Check`, which crosses the same transport, HTTP/2
//! and tonic stack but does no work.

pub mod anchor;
pub mod git_http;
pub mod gitops;
pub mod load;
pub mod scenarios;
pub mod server;

use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;

use self::load::Sample;
use self::server::Server;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Measure an already running server instead of starting one
    /// (its memory is read only with --server-pid).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Process id of the --target server, to read its resident memory.
    #[arg(long, requires = "target")]
    pub server_pid: Option<u32>,
    /// Database of the server the tool starts; default: a temporary SQLite file.
    /// Use an empty database: the tool adds its own names under a fresh prefix.
    #[arg(long, env = "PROMOFLOW_BENCH_DATABASE_URL", conflicts_with = "target")]
    pub database_url: Option<String>,
    /// Extra flag for the started server, repeatable
    /// (for example --server-arg=--db-max-connections=32).
    #[arg(long = "server-arg", value_name = "FLAG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Measured time of each scenario (a warm-up of a fifth of it, at most
    /// 1 s, comes first and is not counted).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub duration: Duration,
    /// Concurrent requests of the loaded scenarios (the baseline also runs at 1).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub concurrency: u16,
    /// Releases per second of the open-loop end-to-end run; default: half of
    /// what the closed loop completed.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Watcher counts of the fan-out scenario.
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
    pub watchers: Vec<usize>,
    /// Environment counts of the large-flow scenario.
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
    pub flow_sizes: Vec<usize>,
    /// HTTP/2 connections for request load.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub connections: u16,
    /// WatchRelease streams per HTTP/2 connection in the fan-out scenario
    /// (the server allows 200 concurrent streams per connection).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=200))]
    pub streams_per_connection: u16,
    /// Products the trigger and end-to-end scenarios spread releases over
    /// (releases of one product queue behind each other).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u16).range(1..))]
    pub products: u16,
    /// Releases in flight in the gitops scenario (one product each; all of
    /// them commit to one branch, so more only queue longer).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub gitops_concurrency: u16,
    /// Scenarios to run (the baseline always runs: it is every ratio's denominator).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Scenario::all())]
    pub scenarios: Vec<Scenario>,
    /// Print the results as JSON on standard output instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// The store's own write limit (the anchor of the write rows' `vs_raw_store`).
    RawStore,
    Read,
    Trigger,
    EndToEnd,
    FanOut,
    Gitops,
    LargeFlows,
}

impl Scenario {
    fn all() -> Vec<Scenario> {
        vec![
            Scenario::RawStore,
            Scenario::Read,
            Scenario::Trigger,
            Scenario::EndToEnd,
            Scenario::FanOut,
            Scenario::Gitops,
            Scenario::LargeFlows,
        ]
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.to_possible_value().expect("no skipped variants");
        f.write_str(v.get_name())
    }
}

/// One line of the results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub operation: String,
    /// `c=64` (closed loop), `rate=500/s` (open loop), `N=1000` (fan-out).
    pub load: String,
    /// Operations measured (for the fan-out: event deliveries).
    pub count: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Throughput rows: operations/s over Health/Check's at the same
    /// concurrency. Latency rows (fan-out, large flows): p50 over
    /// Health/Check's p50 at concurrency 1. The gitops release row:
    /// promoflow's commits/s over bare `git push`es/s of the same run.
    pub vs_baseline: Option<f64>,
    /// Write rows (trigger, end-to-end): releases/s over the `raw-store`
    /// anchor's, the store's own limit for the same rows in the same run.
    pub vs_raw_store: Option<f64>,
    /// The server's resident memory at the end of the scenario.
    pub rss_mib: Option<f64>,
    /// Cores the server kept busy during the scenario (CPU time over wall
    /// time, warm-up included), and the load generator's own: on a shared
    /// machine their sum near the core count means the run is CPU-bound.
    pub server_cores: Option<f64>,
    pub client_cores: Option<f64>,
    /// Scenario-specific figures (also summarised in `note`).
    pub extra: serde_json::Map<String, serde_json::Value>,
    pub note: String,
    pub first_error: Option<String>,
}

impl Row {
    pub(super) fn new(scenario: &str, operation: &str, load: String, s: &Sample) -> Self {
        Self {
            scenario: scenario.into(),
            operation: operation.into(),
            load,
            count: s.count(),
            errors: s.errors,
            per_second: s.rate(),
            p50_ms: s.ms(0.5),
            p99_ms: s.ms(0.99),
            max_ms: s.max_ms(),
            vs_baseline: None,
            vs_raw_store: None,
            rss_mib: None,
            server_cores: s.server_cores,
            client_cores: s.client_cores,
            extra: Default::default(),
            note: String::new(),
            first_error: s.first_error.clone(),
        }
    }

    pub(super) fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub promoflow: String,
    pub backend: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub open_files_limit: Option<u64>,
    pub duration_s: f64,
    pub concurrency: u16,
    pub idle_rss_mib: Option<f64>,
    pub rows: Vec<Row>,
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Progress goes to standard error, so `--json` output stays clean.
pub(super) fn progress(msg: impl std::fmt::Display) {
    eprintln!("bench: {msg}");
}

/// Runs the benchmark; returns the process exit code (1 when a scenario
/// had errors, so a smoke run fails loudly).
pub async fn run(args: BenchArgs) -> Result<i32, String> {
    let fd_limit = server::raise_fd_limit();
    // The gitops scenario's Git server comes first: the started server
    // gets the flags (credentials, plain http) to push to it.
    let remote = if args.target.is_none() && args.scenarios.contains(&Scenario::Gitops) {
        Some(gitops::Remote::start().await?)
    } else {
        None
    };
    let mut srv = match &args.target {
        Some(t) => Server::attach(t, args.server_pid).await?,
        None => {
            let mut extra = args.server_args.clone();
            if let Some(r) = &remote {
                extra.extend(r.server_args.iter().cloned());
            }
            Server::start(args.database_url.as_deref(), &extra).await?
        }
    };
    progress(format!("server {} ({})", srv.endpoint, srv.backend));
    // Idle: started and migrated, nothing else yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = srv.rss();
    let result = scenarios::run_all(&args, &srv, remote.as_ref()).await;
    srv.stop();
    let rows = result?;
    let (cores, memory) = server::machine();
    let report = Report {
        promoflow: env!("CARGO_PKG_VERSION").into(),
        backend: srv.backend.clone(),
        cores,
        memory_gib: memory as f64 / (1024.0 * 1024.0 * 1024.0),
        open_files_limit: fd_limit,
        duration_s: args.duration.as_secs_f64(),
        concurrency: args.concurrency,
        idle_rss_mib: idle.map(mib),
        rows,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print_table(&report);
    }
    let failed: Vec<&Row> = report.rows.iter().filter(|r| r.errors > 0).collect();
    for r in &failed {
        progress(format!(
            "{} {} had {} errors; first: {}",
            r.scenario,
            r.operation,
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        ));
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

fn print_table(r: &Report) {
    println!(
        "promoflow {} on {}: {} cores, {:.1} GiB; {} s per scenario; idle RSS {}",
        r.promoflow,
        r.backend,
        r.cores,
        r.memory_gib,
        r.duration_s,
        r.idle_rss_mib
            .map(|m| format!("{m:.1} MiB"))
            .unwrap_or_else(|| "unknown".into())
    );
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "scenario",
        "operation",
        "load",
        "count",
        "errors",
        "per s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "vs no-op",
        "vs store",
        "RSS MiB",
        "note",
    ]);
    for row in &r.rows {
        t.add_row([
            row.scenario.clone(),
            row.operation.clone(),
            row.load.clone(),
            row.count.to_string(),
            row.errors.to_string(),
            format!("{:.0}", row.per_second),
            format!("{:.2}", row.p50_ms),
            format!("{:.2}", row.p99_ms),
            format!("{:.2}", row.max_ms),
            row.vs_baseline
                .map(|v| format!("{v:.2}"))
                .unwrap_or_default(),
            row.vs_raw_store
                .map(|v| format!("{v:.2}"))
                .unwrap_or_default(),
            row.rss_mib.map(|v| format!("{v:.1}")).unwrap_or_default(),
            match (row.server_cores, row.client_cores) {
                (Some(s), Some(c)) => format!("{s:.2}+{c:.2}"),
                (None, Some(c)) => format!("?+{c:.2}"),
                _ => String::new(),
            },
            row.note.clone(),
        ]);
    }
    println!("{t}");
}
