//! What every client command shares: the connection flags, the gRPC
//! clients, and one way to show an error.

use std::fmt;
use std::process::ExitCode;

use clap::Args;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use super::output::Output;
use crate::proto::v1::audit_service_client::AuditServiceClient;
use crate::proto::v1::environment_service_client::EnvironmentServiceClient;
use crate::proto::v1::flow_service_client::FlowServiceClient;
use crate::proto::v1::product_service_client::ProductServiceClient;
use crate::proto::v1::release_service_client::ReleaseServiceClient;
use crate::proto::v1::token_service_client::TokenServiceClient;
use crate::proto::v1::workflow_service_client::WorkflowServiceClient;

/// Flags of the client commands (global: accepted before or after the
/// subcommand).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The promoflow server the client commands talk to: `host:port` or
    /// `http://host:port` (plaintext), `https://host:port` (TLS).
    #[arg(
        long,
        global = true,
        env = "PROMOFLOW_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// Output of the client commands: a table for people, JSON or YAML for scripts.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// The API token (`pf_…`) sent with every call. Prefer `PROMOFLOW_TOKEN`
    /// or `--token-file`: a flag's value is visible to other local users.
    /// With none of the three, a client of a server on this machine
    /// (loopback) reads `$PROMOFLOW_DATA_DIR/admin.token`
    /// (`promoflow-data/admin.token` by default), the token the server made
    /// on its first start.
    #[arg(long, global = true, env = "PROMOFLOW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the API token.
    #[arg(long, global = true, env = "PROMOFLOW_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// With an `https://` server: the CA certificates (PEM) that sign its
    /// certificate, when they are not public ones.
    #[arg(long, global = true, env = "PROMOFLOW_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// With an `https://` server that asks for one (mutual TLS): the
    /// client certificate (PEM); needs `--key`.
    #[arg(long, global = true, env = "PROMOFLOW_CLIENT_CERT", requires = "key")]
    pub cert: Option<std::path::PathBuf>,
    /// The private key of `--cert` (PEM).
    #[arg(long, global = true, env = "PROMOFLOW_CLIENT_KEY", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
}

/// The TLS files of a client.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    pub ca_cert: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
}

/// A lazily connected channel to `server` (`http://` or `https://`): an
/// unreachable server shows up as an `UNAVAILABLE` error of the first call.
/// Over `https://` the server is verified against `tls.ca_cert` or the
/// public CAs, and `tls.cert`/`tls.key` answer a server asking for a client
/// certificate.
pub fn channel(server: &str, tls: &ClientTls) -> Result<Channel, String> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let server = &server_url(server);
    let endpoint = Channel::from_shared(server.to_string()).map_err(|e| {
        format!("--server {server:?} is not a URL ({e}); example: http://127.0.0.1:50051")
    })?;
    let read = |flag: &str, p: &std::path::Path| {
        std::fs::read(p).map_err(|e| format!("{flag} {}: {e}", p.display()))
    };
    let https = server.starts_with("https://");
    if !https {
        if tls.ca_cert.is_some() || tls.cert.is_some() {
            return Err(format!(
                "--ca-cert and --cert are for https:// servers; --server is {server:?}"
            ));
        }
        return Ok(endpoint.connect_lazy());
    }
    let mut config = ClientTlsConfig::new();
    config = match &tls.ca_cert {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read("--ca-cert", ca)?)),
        None => config.with_webpki_roots(),
    };
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        config = config.identity(Identity::from_pem(
            read("--cert", cert)?,
            read("--key", key)?,
        ));
    }
    Ok(endpoint
        .tls_config(config)
        .map_err(|e| format!("TLS settings: {e}"))?
        .connect_lazy())
}

impl ClientArgs {
    /// The token to send, from `--token`, `--token-file`, or the local
    /// server's `admin.token`; `None` when there is none (calls then fail
    /// with UNAUTHENTICATED, which says what to do).
    pub fn resolved_token(&self) -> Result<Option<String>, CliError> {
        if let Some(t) = self.token.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(t.trim().to_string()));
        }
        if let Some(path) = &self.token_file {
            return read_token_file(path).map(Some);
        }
        if is_loopback(&self.server) {
            let dir = std::env::var_os("PROMOFLOW_DATA_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| std::path::PathBuf::from(crate::config::DEFAULT_DATA_DIR));
            let path = dir.join(crate::auth::TOKEN_FILE);
            if path.exists() {
                return read_token_file(&path).map(Some);
            }
        }
        Ok(None)
    }
}

fn read_token_file(path: &std::path::Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Message(format!("--token-file {}: {e}", path.display())))?;
    let t = text.trim();
    if t.is_empty() {
        return fail(format!(
            "--token-file {}: the file is empty",
            path.display()
        ));
    }
    Ok(t.to_string())
}

/// `--server` as a URL: `host:port` alone means plaintext `http://` (as
/// grpcurl's `-plaintext host:port`); `http://` and `https://` stay.
pub fn server_url(server: &str) -> String {
    let server = server.trim();
    if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    }
}

/// Whether the server URL names this machine.
fn is_loopback(server: &str) -> bool {
    url::Url::parse(&server_url(server))
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Default)]
pub struct Credentials {
    header: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl Credentials {
    /// No credential (the server must run with `--auth none`).
    pub fn none() -> Self {
        Self::default()
    }

    pub fn bearer(token: &str) -> Result<Self, String> {
        let mut value: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
            format!("Bearer {}", token.trim())
                .parse()
                .map_err(|_| "the token holds characters a header cannot carry".to_string())?;
        // Never indexed by HPACK, never shown by debug output.
        value.set_sensitive(true);
        Ok(Self {
            header: Some(value),
        })
    }
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(h) = &self.header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    }
}

/// A channel whose calls carry credentials: what every client uses.
pub type Conn = tonic::service::interceptor::InterceptedService<Channel, Credentials>;

/// `channel` with `credentials` on every call.
pub fn conn(channel: Channel, credentials: Credentials) -> Conn {
    tonic::service::interceptor::InterceptedService::new(channel, credentials)
}

/// A client command's connection and output choice.
pub struct Ctx {
    pub channel: Conn,
    pub output: Output,
}

impl Ctx {
    /// A lazily connected channel: an unreachable server shows up as an
    /// `UNAVAILABLE` error of the first call, explained by [`finish`].
    pub fn new(args: &ClientArgs) -> Result<Self, CliError> {
        let tls = ClientTls {
            ca_cert: args.ca_cert.clone(),
            cert: args.cert.clone(),
            key: args.key.clone(),
        };
        let channel = channel(&args.server, &tls).map_err(CliError::Message)?;
        let credentials = match args.resolved_token()? {
            Some(t) => Credentials::bearer(&t).map_err(CliError::Message)?,
            None => Credentials::none(),
        };
        Ok(Self {
            channel: conn(channel, credentials),
            output: args.output,
        })
    }

    pub fn environments(&self) -> EnvironmentServiceClient<Conn> {
        EnvironmentServiceClient::new(self.channel.clone())
    }
    pub fn products(&self) -> ProductServiceClient<Conn> {
        ProductServiceClient::new(self.channel.clone())
    }
    pub fn workflows(&self) -> WorkflowServiceClient<Conn> {
        WorkflowServiceClient::new(self.channel.clone())
    }
    pub fn flows(&self) -> FlowServiceClient<Conn> {
        FlowServiceClient::new(self.channel.clone())
    }
    pub fn releases(&self) -> ReleaseServiceClient<Conn> {
        ReleaseServiceClient::new(self.channel.clone())
    }
    pub fn tokens(&self) -> TokenServiceClient<Conn> {
        TokenServiceClient::new(self.channel.clone())
    }
    pub fn audit(&self) -> AuditServiceClient<Conn> {
        AuditServiceClient::new(self.channel.clone())
    }
}

/// Why a client command failed.
#[derive(Debug)]
pub enum CliError {
    /// The server answered with an error.
    Status(tonic::Status),
    /// A local problem (bad flag value, unreadable file).
    Message(String),
}

impl From<tonic::Status> for CliError {
    fn from(s: tonic::Status) -> Self {
        Self::Status(s)
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        Self::Message(e.to_string())
    }
}

impl From<Box<dyn std::error::Error + Send + Sync>> for CliError {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        match e.downcast::<tonic::Status>() {
            Ok(s) => Self::Status(*s),
            Err(e) => Self::Message(e.to_string()),
        }
    }
}

impl CliError {
    /// Renames the fields of an INVALID_ARGUMENT's violations (`rename`
    /// returns the new name, or `None` to keep the field), so that a command
    /// can name its own flags instead of request paths. Other errors pass
    /// unchanged.
    pub fn rename_fields(self, rename: impl Fn(&str) -> Option<String>) -> Self {
        let Self::Status(s) = self else {
            return self;
        };
        let Some(bad) = s.get_details_bad_request() else {
            return Self::Status(s);
        };
        let violations: Vec<_> = bad
            .field_violations
            .into_iter()
            .map(|mut v| {
                if let Some(name) = rename(&v.field) {
                    v.field = name;
                }
                v
            })
            .collect();
        Self::Status(tonic::Status::with_error_details(
            s.code(),
            s.message(),
            tonic_types::ErrorDetails::with_bad_request(violations),
        ))
    }
}

/// Shorthand for a local error.
pub fn fail<T>(message: impl Into<String>) -> Result<T, CliError> {
    Err(CliError::Message(message.into()))
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Message(m) => write!(f, "{m}"),
            Self::Status(s) => {
                let violations = s
                    .get_details_bad_request()
                    .map(|b| b.field_violations)
                    .unwrap_or_default();
                if !violations.is_empty() && s.code() == tonic::Code::InvalidArgument {
                    // The message only summarises the violations: list them instead.
                    let n = violations.len();
                    write!(
                        f,
                        "the server refused the request as invalid ({n} problem{}):",
                        if n == 1 { "" } else { "s" }
                    )?;
                } else if s.message().is_empty() {
                    write!(f, "{}", code_words(s.code()))?;
                } else {
                    write!(f, "{} ({})", s.message(), code_words(s.code()))?;
                }
                for v in violations {
                    write!(f, "\n  - {}: {}", v.field, v.description)?;
                }
                Ok(())
            }
        }
    }
}

/// The status code in words (`NOT_FOUND` → "not found").
fn code_words(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown error",
        InvalidArgument => "invalid argument",
        DeadlineExceeded => "deadline exceeded",
        NotFound => "not found",
        AlreadyExists => "already exists",
        PermissionDenied => "permission denied",
        ResourceExhausted => "resource exhausted",
        FailedPrecondition => "failed precondition",
        Aborted => "aborted",
        OutOfRange => "out of range",
        Unimplemented => "not implemented by the server",
        Internal => "internal server error",
        Unavailable => "server unavailable",
        DataLoss => "data loss",
        Unauthenticated => "unauthenticated",
    }
}

/// The error of an `update` command's write. On `ABORTED` (the resource is
/// no longer at the version the update was based on, and nothing changed)
/// it adds what to do: run the command again. `expected_version` is the
/// `--expected-version` given, if any; `get` the command that shows the
/// resource.
pub fn update_failed(status: tonic::Status, expected_version: Option<i64>, get: &str) -> CliError {
    if status.code() != tonic::Code::Aborted {
        return CliError::Status(status);
    }
    let hint = match expected_version {
        Some(v) => format!(
            "--expected-version {v} is not its current version: look at it again (`{get}`), then run the command again with its current version."
        ),
        None => "It changed after this command read it: run the command again.".to_string(),
    };
    CliError::Message(format!("{}\n  {hint}", CliError::Status(status)))
}

/// The result of a client command: its exit code, or an error.
pub type CmdResult = Result<ExitCode, CliError>;

/// Prints a failed command's error on stderr and turns it into exit code 1.
pub fn finish(args: &ClientArgs, result: CmdResult) -> ExitCode {
    let e = match result {
        Ok(code) => return code,
        Err(e) => e,
    };
    match &e {
        CliError::Status(s) => match transport_mismatch(s) {
            Some(why) => eprintln!(
                "error: {why}\n  (from the connection to {}: {})",
                args.server,
                s.message()
            ),
            None if s.code() == tonic::Code::Unavailable => eprintln!(
                "error: cannot reach the promoflow server at {} ({}).\n  Is `promoflow serve` running there? Point --server or PROMOFLOW_SERVER at it.",
                args.server,
                s.message()
            ),
            None => eprintln!("error: {e}"),
        },
        _ => eprintln!("error: {e}"),
    }
    ExitCode::FAILURE
}

/// A sentence for a connection that reached something, but not a promoflow
/// server speaking what `--server` asked for: TLS to a plaintext port, or a
/// port where no gRPC server listens (tonic only says `corrupt message` or
/// `h2 protocol error` there).
fn transport_mismatch(s: &tonic::Status) -> Option<String> {
    // The status's own message, then its causes (tonic keeps the transport
    // error there: "transport error" alone says nothing).
    let mut m = s.message().to_string();
    let mut cause = std::error::Error::source(s);
    while let Some(c) = cause {
        m.push_str(": ");
        m.push_str(&c.to_string());
        cause = c.source();
    }

    if m.contains("InvalidContentType") || m.contains("corrupt message") {
        return Some(
            "the server did not answer TLS: it serves plaintext (use http://host:port or host:port), or it is not a promoflow server"
                .into(),
        );
    }
    // A request the CLI never cancelled, cancelled all the same: the
    // connection closed under it (what an HTTP/1 server's answer can do
    // to the HTTP/2 client, depending on timing).
    let closed = s.code() == tonic::Code::Cancelled && m.contains("operation was canceled");
    if closed
        || m.contains("h2 protocol error")
        || m.contains("http2 error")
        || m.contains("frame with invalid size")
    {
        return Some(
            "no gRPC server answered there: the port is something else's (an HTTP/1 server?); point --server or PROMOFLOW_SERVER at promoflow's gRPC port"
                .into(),
        );
    }
    None
}

/// Splits `KEY=VALUE` (for `--label`, `--app`, `--header` …).
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Parses `--expected-version`: a version as `get` shows it (1 or more).
pub fn version(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!(
            "expected a version as `get` shows it (1 or more), got {s:?}"
        )),
    }
}

/// Parses a human duration (`30s`, `1h 30m`) into a protobuf duration.
pub fn duration(s: &str) -> Result<prost_types::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 5m, 1h)"))?;
    Ok(prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    })
}

/// The initiator recorded on releases started from this command line.
pub fn initiator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default();
    if user.is_empty() {
        "cli".to_string()
    } else {
        format!("cli:{user}")
    }
}

/// Every item of a paginated list: `page` fetches one page for a token and
/// returns its items and the next token (empty at the end).
pub async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, CliError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = page(token).await?;
        all.extend(items);
        if next.is_empty() {
            return Ok(all);
        }
        token = next;
    }
}
