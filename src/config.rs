//! Command-line flags and `PROMOFLOW_*` environment variables.
//!
//! Every server flag can also be set through the environment, which is how
//! container deployments configure replicas.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::{Args, ValueEnum};

use crate::domain::flow;

/// Largest value `--max-flow-steps` accepts.
pub const MAX_FLOW_STEPS_CEILING: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `--data-dir`'s default, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "promoflow-data";

/// Settings of a promoflow server (`serve`, and the server `demo` starts).
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Address to listen on for gRPC: `IP:PORT`, or `HOST:PORT` with a host
    /// name that resolves (`localhost:50051`; its IPv4 address first).
    #[arg(long, env = "PROMOFLOW_LISTEN", default_value = "127.0.0.1:50051", value_parser = listen_address)]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB`.
    /// Default: a SQLite file in the data directory.
    #[arg(long, env = "PROMOFLOW_DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory for the default SQLite database; created when missing.
    #[arg(long, env = "PROMOFLOW_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// Log format.
    #[arg(long, env = "PROMOFLOW_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "PROMOFLOW_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Interval of heartbeats on idle release streams.
    #[arg(long, env = "PROMOFLOW_HEARTBEAT_INTERVAL", value_parser = humantime::parse_duration, default_value = "15s")]
    pub heartbeat_interval: Duration,

    /// How long shutdown waits for in-flight requests after health turns NOT_SERVING.
    #[arg(long, env = "PROMOFLOW_SHUTDOWN_GRACE", value_parser = humantime::parse_duration, default_value = "10s")]
    pub shutdown_grace: Duration,

    /// Allow `command` workflows to run programs on the server's machine.
    #[arg(
        long,
        env = "PROMOFLOW_ALLOW_COMMAND_WORKFLOWS",
        default_value_t = false
    )]
    pub allow_command_workflows: bool,

    /// Most environments running at once across all releases.
    #[arg(
        long,
        env = "PROMOFLOW_MAX_PARALLEL_ENVIRONMENTS",
        default_value_t = 256
    )]
    pub max_parallel_environments: usize,

    /// This replica's id in leases and logs (default: random at each start).
    #[arg(long, env = "PROMOFLOW_REPLICA_ID")]
    pub replica_id: Option<String>,

    /// How long a replica's claim on a release lasts without renewal; a
    /// replica that dies loses its releases to the others after this long.
    #[arg(long, env = "PROMOFLOW_LEASE_DURATION", value_parser = humantime::parse_duration, default_value = "15s")]
    pub lease_duration: Duration,

    /// How often a replica looks for releases without a live lease and
    /// re-checks the store for events it may not have been told about.
    #[arg(long, env = "PROMOFLOW_CATCH_UP_INTERVAL", value_parser = humantime::parse_duration, default_value = "1s")]
    pub catch_up_interval: Duration,

    /// Largest number of database connections in the pool.
    #[arg(long, env = "PROMOFLOW_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// How long an API token, a flow's latest version or a final release
    /// read from the store may be served from memory before it is read
    /// again (0s: always read). Changes made through this replica are seen
    /// at once; on PostgreSQL, other replicas' changes as soon as their
    /// commit is announced (LISTEN/NOTIFY), this being the bound should an
    /// announcement be lost; on a SQLite file that several processes share,
    /// this is how long one may serve what another changed.
    #[arg(long, env = "PROMOFLOW_REMEMBER_FOR", value_parser = humantime::parse_duration, default_value = "5s")]
    pub remember_for: Duration,

    /// Most steps a flow may have (1 to 100000); flows, edits and YAML
    /// imports beyond it are refused.
    #[arg(
        long,
        env = "PROMOFLOW_MAX_FLOW_STEPS",
        default_value_t = flow::MAX_STEPS,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_FLOW_STEPS_CEILING as u64)
    )]
    pub max_flow_steps: usize,

    /// YAML file of Git credentials: a list of `{url_prefix, username,
    /// token_env | token_file}`; the first entry whose prefix matches a
    /// repository URL is used. Tokens reach git only through its environment.
    #[arg(long, env = "PROMOFLOW_GIT_CREDENTIALS")]
    pub git_credentials: Option<PathBuf>,

    /// Send Git credentials over plain `http://` (for loopback servers and
    /// tests; never across a network you do not trust).
    #[arg(
        long,
        env = "PROMOFLOW_ALLOW_INSECURE_GIT_HTTP",
        default_value_t = false
    )]
    pub allow_insecure_git_http: bool,

    /// Allow applications whose Git source is a local path or `file://`
    /// URL on the server's machine (the demo uses one).
    #[arg(long, env = "PROMOFLOW_ALLOW_LOCAL_GIT", default_value_t = false)]
    pub allow_local_git: bool,

    /// Author and committer of promotion commits, as `Name <email>`.
    #[arg(
        long,
        env = "PROMOFLOW_GIT_AUTHOR",
        default_value = "promoflow <promoflow@localhost>"
    )]
    pub git_author: String,

    /// Where cached bare repositories live (default: `git-cache` in the data
    /// directory).
    #[arg(long, env = "PROMOFLOW_GIT_CACHE_DIR")]
    pub git_cache_dir: Option<PathBuf>,

    /// Longest a single git command may run (fetch, push, …) before it is
    /// killed.
    #[arg(long, env = "PROMOFLOW_GIT_TIMEOUT", value_parser = humantime::parse_duration, default_value = "60s")]
    pub git_timeout: Duration,

    /// How often the branch of each Git-backed trigger application is
    /// checked for new commits (`0s`: never). A new commit that changes a
    /// file under the application's path records its deployment and starts
    /// the product's first matching promotion flow, as ReportDeployment
    /// would; see the README, "Promoting through Git".
    #[arg(long, env = "PROMOFLOW_GIT_POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "30s")]
    pub git_poll_interval: Duration,
    /// How often a pull request awaited by a PULL_REQUEST action is checked
    /// for a merge or close.
    #[arg(long, env = "PROMOFLOW_PR_POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "30s")]
    pub pr_poll_interval: Duration,
    /// Sets a commit status `promoflow/<flow>` on the trigger commit of each
    /// release that has one (`source_commit`), through the forge of the
    /// repository's --git-credentials entry: pending when the release
    /// starts, then success, failure or error (terminated) when it ends.
    /// Best effort: a forge that fails is logged, the release goes on.
    #[arg(long, env = "PROMOFLOW_COMMIT_STATUS", default_value_t = false)]
    pub commit_status: bool,
    /// The link of those commit statuses, with `{id}` standing for the
    /// release id, e.g. `https://promoflow.example.com/releases/{id}`;
    /// empty: the statuses link nowhere.
    #[arg(
        long,
        env = "PROMOFLOW_RELEASE_URL_TEMPLATE",
        default_value = "",
        hide_default_value = true
    )]
    pub release_url_template: String,
    /// How often a SYNC step reads its Argo CD application while it waits
    /// for it to be Synced and Healthy at the promoted commit.
    #[arg(long, env = "PROMOFLOW_SYNC_POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "5s")]
    pub sync_poll_interval: Duration,
    /// How long an Argo CD application must have been Healthy before a SYNC
    /// step counts it as deployed (a rollout can look healthy for a moment).
    #[arg(long, env = "PROMOFLOW_SYNC_HOLD", value_parser = humantime::parse_duration, default_value = "5s")]
    pub sync_hold: Duration,
    /// Longest a SYNC step waits, from its start, before it fails the
    /// environment ("Argo CD did not report … within …").
    #[arg(long, env = "PROMOFLOW_SYNC_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10m")]
    pub sync_timeout: Duration,

    /// A file holding the shared secret that signs Git webhook deliveries
    /// (`POST /webhooks/github|gitea|gitlab` on the listen address). Without
    /// it the secret is read from the `PROMOFLOW_WEBHOOK_SECRET` environment
    /// variable; with neither, the webhook endpoints answer 503. Never a
    /// flag value: a secret in argv is visible to every local user.
    #[arg(long, env = "PROMOFLOW_WEBHOOK_SECRET_FILE")]
    pub webhook_secret_file: Option<PathBuf>,

    /// Authentication: `required` (every call but health and reflection
    /// needs an API token, OIDC token or client certificate) or `none`
    /// (everybody may do everything; for a laptop, never a shared server).
    #[arg(long, env = "PROMOFLOW_AUTH", value_enum, default_value_t = crate::auth::AuthMode::Required)]
    pub auth: crate::auth::AuthMode,

    /// Reflection needs a credential (any role) too; by default it is open
    /// like health, so `grpcurl list` works before a token is at hand.
    #[arg(long, env = "PROMOFLOW_REFLECTION_NEEDS_AUTH")]
    pub reflection_needs_auth: bool,

    /// How long audit events are kept; older ones are deleted hourly.
    /// 0 keeps them forever.
    #[arg(long, env = "PROMOFLOW_AUDIT_RETENTION", value_parser = humantime::parse_duration, default_value = "365days")]
    pub audit_retention: Duration,

    /// Failed authentications allowed per remote address and minute; past
    /// it, the address gets RESOURCE_EXHAUSTED until the minute is over.
    /// 0: no limit.
    #[arg(long, env = "PROMOFLOW_AUTH_FAILURES_PER_MINUTE", default_value_t = 20)]
    pub auth_failures_per_minute: u32,

    /// Accept OIDC bearer JWTs from this issuer (its discovery document
    /// names the signing keys). Needs `--oidc-audience`; roles come from
    /// `--auth-mapping`.
    #[arg(long, env = "PROMOFLOW_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// The audience (`aud`) OIDC tokens must be issued for: usually the
    /// client id of promoflow at the identity provider.
    #[arg(long, env = "PROMOFLOW_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,

    /// The issuer's JWKS, when it is not where discovery says.
    #[arg(long, env = "PROMOFLOW_OIDC_JWKS_URL", requires = "oidc_issuer")]
    pub oidc_jwks_url: Option<String>,

    /// The claim that lists a token's groups (a string or a list).
    #[arg(long, env = "PROMOFLOW_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,

    /// The signing keys are fetched again when older than this.
    #[arg(long, env = "PROMOFLOW_OIDC_JWKS_REFRESH", value_parser = humantime::parse_duration, default_value = "10m")]
    pub oidc_jwks_refresh: Duration,

    /// A token signed by an unknown key fetches the keys at once (the
    /// issuer rotated), but at most this often.
    #[arg(long, env = "PROMOFLOW_OIDC_JWKS_MIN_REFRESH", value_parser = humantime::parse_duration, default_value = "10s")]
    pub oidc_jwks_min_refresh: Duration,

    /// A YAML file giving OIDC groups and subjects, and client-certificate
    /// subjects, their roles and scopes (README, "Security": the mapping file).
    #[arg(long, env = "PROMOFLOW_AUTH_MAPPING")]
    pub auth_mapping: Option<PathBuf>,

    /// Serve TLS with this certificate chain (PEM); needs `--tls-key`.
    /// The files are read again on SIGHUP and when they change.
    #[arg(long, env = "PROMOFLOW_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM).
    #[arg(long, env = "PROMOFLOW_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require a client certificate signed by these CAs (PEM): mutual
    /// TLS. Its subject's common name is the principal `cert:<name>`, its
    /// organizational units its groups, mapped by `--auth-mapping`.
    #[arg(long, env = "PROMOFLOW_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

/// The environment variable that may hold the webhook secret itself.
pub const WEBHOOK_SECRET_ENV: &str = "PROMOFLOW_WEBHOOK_SECRET";

impl ServerConfig {
    /// The configured database URL, or the default SQLite file in `data_dir`
    /// (the directory is created here so a first start just works).
    pub fn resolved_database_url(&self) -> std::io::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir)?;
        let path = self.data_dir.join("promoflow.db");
        Ok(format!("sqlite://{}?mode=rwc", path.display()))
    }

    /// A configuration with defaults, for tests and embedding.
    pub fn for_tests(database_url: String) -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("literal address"),
            database_url: Some(database_url),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            log_format: LogFormat::Text,
            max_message_bytes: 4 * 1024 * 1024,
            heartbeat_interval: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(2),
            allow_command_workflows: false,
            max_parallel_environments: 256,
            replica_id: None,
            lease_duration: Duration::from_secs(15),
            catch_up_interval: Duration::from_secs(1),
            db_max_connections: 8,
            remember_for: crate::store::REMEMBER_FOR,
            max_flow_steps: flow::MAX_STEPS,
            git_credentials: None,
            allow_insecure_git_http: false,
            allow_local_git: false,
            git_author: "promoflow <promoflow@localhost>".into(),
            git_cache_dir: None,
            git_timeout: Duration::from_secs(60),
            // Tests that watch Git turn it on with a short interval.
            git_poll_interval: Duration::ZERO,
            pr_poll_interval: Duration::from_secs(30),
            commit_status: false,
            release_url_template: String::new(),
            sync_poll_interval: Duration::from_secs(5),
            sync_hold: Duration::from_secs(5),
            sync_timeout: Duration::from_secs(600),
            webhook_secret_file: None,
            auth: crate::auth::AuthMode::Required,
            reflection_needs_auth: false,
            audit_retention: Duration::from_secs(365 * 24 * 3600),
            auth_failures_per_minute: 20,
            oidc_issuer: None,
            oidc_audience: None,
            oidc_jwks_url: None,
            oidc_groups_claim: "groups".into(),
            oidc_jwks_refresh: Duration::from_secs(600),
            oidc_jwks_min_refresh: Duration::from_secs(10),
            auth_mapping: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }

    /// The webhook secret: the contents of `--webhook-secret-file` (one
    /// trailing newline dropped, as editors add it) or else the
    /// `PROMOFLOW_WEBHOOK_SECRET` environment variable; `None` when neither
    /// is set. An unreadable file or an empty secret is an error, so a
    /// misconfigured server does not start with unsigned webhooks refused
    /// for a reason nobody sees. The message never holds the secret.
    pub fn webhook_secret(&self) -> Result<Option<Vec<u8>>, String> {
        let secret = match &self.webhook_secret_file {
            Some(path) => {
                let mut bytes = std::fs::read(path)
                    .map_err(|e| format!("--webhook-secret-file {}: {e}", path.display()))?;
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                bytes
            }
            None => match std::env::var_os(WEBHOOK_SECRET_ENV) {
                Some(v) => v.into_encoded_bytes(),
                None => return Ok(None),
            },
        };
        if secret.is_empty() {
            return Err(format!(
                "the webhook secret ({}) is empty",
                match &self.webhook_secret_file {
                    Some(p) => format!("--webhook-secret-file {}", p.display()),
                    None => WEBHOOK_SECRET_ENV.to_string(),
                }
            ));
        }
        Ok(Some(secret))
    }

    /// The author of promotion commits, split into name and email.
    pub fn git_author_parts(&self) -> Result<(String, String), String> {
        let a = self.git_author.trim();
        let parsed = a.strip_suffix('>').and_then(|rest| rest.rsplit_once('<'));
        match parsed {
            Some((name, email)) if !name.trim().is_empty() && email.contains('@') => {
                Ok((name.trim().to_string(), email.trim().to_string()))
            }
            _ => Err(format!(
                "--git-author {a:?} must look like `Name <email@host>`"
            )),
        }
    }

    /// The flow size limits this server applies.
    pub fn flow_limits(&self) -> flow::Limits {
        flow::Limits::with_max_steps(self.max_flow_steps)
    }
}

/// Parses `--listen`: a socket address, or a host name and port resolved
/// once at start (the first IPv4 address, else the first one).
pub fn listen_address(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let hint = "give IP:PORT (127.0.0.1:50051 for this machine, 0.0.0.0:50051 for every interface) or HOST:PORT";
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not an address to listen on ({e}): {hint}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{s:?} resolves to no address: {hint}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn listen_takes_ip_or_a_resolvable_host_and_explains_the_rest() {
        assert_eq!(
            listen_address("0.0.0.0:80").unwrap().to_string(),
            "0.0.0.0:80"
        );
        let local = listen_address("localhost:50051").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 50051, "{local}");
        let bad = listen_address("no port here").unwrap_err();
        assert!(bad.contains("give IP:PORT"), "{bad}");
    }

    #[test]
    fn the_webhook_secret_comes_from_its_file_without_the_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ServerConfig::for_tests("sqlite::memory:".into());
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\r\n").unwrap();
        c.webhook_secret_file = Some(file.clone());
        assert_eq!(c.webhook_secret().unwrap().as_deref(), Some(&b"s3cret"[..]));
        std::fs::write(&file, "\n").unwrap();
        let empty = c.webhook_secret().unwrap_err();
        assert!(empty.contains("is empty"), "{empty}");
        c.webhook_secret_file = Some(dir.path().join("missing"));
        let missing = c.webhook_secret().unwrap_err();
        assert!(missing.starts_with("--webhook-secret-file"), "{missing}");
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerConfig,
    }

    fn max_flow_steps(args: &[&str]) -> Result<usize, clap::Error> {
        let argv = std::iter::once("promoflow").chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| cli.server.max_flow_steps)
    }

    #[test]
    fn max_flow_steps_defaults_to_the_api_limit_and_is_bounded() {
        // The variable would change the default; the test sets the flag.
        if std::env::var_os("PROMOFLOW_MAX_FLOW_STEPS").is_none() {
            assert_eq!(max_flow_steps(&[]).expect("default"), 1000);
        }
        for ok in [1, 10_000, 100_000] {
            let arg = ok.to_string();
            assert_eq!(
                max_flow_steps(&["--max-flow-steps", &arg]).expect("in range"),
                ok
            );
        }
        for bad in ["0", "100001", "many"] {
            let e = max_flow_steps(&["--max-flow-steps", bad]).expect_err(bad);
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn git_polling_is_every_30s_by_default_and_0_turns_it_off() {
        let interval = |args: &[&str]| {
            let argv = std::iter::once("promoflow").chain(args.iter().copied());
            Cli::try_parse_from(argv).map(|cli| cli.server.git_poll_interval)
        };
        if std::env::var_os("PROMOFLOW_GIT_POLL_INTERVAL").is_none() {
            assert_eq!(interval(&[]).expect("default"), Duration::from_secs(30));
        }
        for (arg, want) in [("0", Duration::ZERO), ("100ms", Duration::from_millis(100))] {
            assert_eq!(interval(&["--git-poll-interval", arg]).expect(arg), want);
        }
        assert!(interval(&["--git-poll-interval", "often"]).is_err());
    }
}
