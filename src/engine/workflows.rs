//! Workflow runners: what one step does. Each returns a [`StepResult`];
//! none writes to the store (the release worker does, with the event).
//!
//! Cancellation is dropping the future: an HTTP call in flight is aborted,
//! a command's process is killed (`kill_on_drop`), a wait ends.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;

use crate::domain::catalog::WorkflowKind;
use crate::domain::release::{ApprovalRule, Outcome, Time};

/// What running a step produced.
#[derive(Debug, Clone, PartialEq)]
pub enum StepResult {
    Done(Outcome),
    /// An approval: hold the step until its rule's decisions or the
    /// deadline.
    Suspend(Option<Time>, ApprovalRule),
    /// A PULL_REQUEST action opened or adopted pull request `number`: the
    /// step is suspended awaiting review, and its task keeps running (it
    /// polls the pull request and reports `Done` when it is merged or
    /// closed).
    AwaitReview {
        number: i64,
        url: String,
        head_sha: String,
    },
    /// A running step says what it is waiting for (a SYNC step's "waiting
    /// for Argo CD: OutOfSync"); its task keeps running.
    Progress(String),
}

/// What a workflow gets to know about the step it runs for.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub release_id: String,
    pub product: String,
    pub flow: String,
    pub flow_version: i64,
    pub version: String,
    pub environment: String,
    pub step: String,
    pub attempt: i32,
    pub idempotency_key: String,
    pub context: Map<String, Value>,
    pub start_time: Time,
    /// The environment's application (empty for release-level hooks).
    pub application: String,
    /// The trigger application's commit the release promotes (empty when
    /// not Git-backed).
    pub source_commit: String,
    /// Codefresh's promotion parameters of the environment (`COMMIT_SHA`,
    /// `COMMIT_AUTHOR`, `COMMIT_MESSAGE`, `COMMIT_DATE`, `APP_NAME`,
    /// `REPO_URL`, `BRANCH`, `PATH`), for the steps after a COMMIT action:
    /// HTTP bodies carry them under `parameters`, commands as environment
    /// variables.
    pub parameters: BTreeMap<String, String>,
}

fn failed(message: impl Into<String>) -> StepResult {
    StepResult::Done(Outcome::Failed {
        message: message.into(),
    })
}

fn succeeded(message: impl Into<String>, outputs: Map<String, Value>) -> StepResult {
    StepResult::Done(Outcome::Succeeded {
        message: message.into(),
        outputs,
        artifact: None,
    })
}

/// Runs workflow `kind` for the step described by `ctx`.
pub async fn run(
    http: &reqwest::Client,
    allow_commands: bool,
    name: &str,
    kind: &WorkflowKind,
    ctx: &StepContext,
) -> StepResult {
    match kind {
        WorkflowKind::Http {
            url,
            headers,
            timeout_ms,
            max_attempts,
        } => run_http(http, url, headers, *timeout_ms, *max_attempts, ctx).await,
        WorkflowKind::Wait { duration_ms } => {
            // Measured from the step's recorded start, so a restart waits
            // only for the time that is left.
            let end = ctx.start_time + chrono::Duration::milliseconds(*duration_ms as i64);
            let left = (end - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            tokio::time::sleep(left).await;
            succeeded(
                format!(
                    "waited {}",
                    humantime::format_duration(Duration::from_millis(*duration_ms))
                ),
                Map::new(),
            )
        }
        WorkflowKind::Approval {
            timeout_ms,
            min_approvals,
            forbid_self_approval,
        } => StepResult::Suspend(
            timeout_ms.map(|ms| ctx.start_time + chrono::Duration::milliseconds(ms as i64)),
            ApprovalRule {
                min_approvals: *min_approvals,
                forbid_self_approval: *forbid_self_approval,
            },
        ),
        WorkflowKind::Command {
            argv,
            env,
            timeout_ms,
        } => {
            if !allow_commands {
                return failed(format!(
                    "workflow {name:?} is a command, and command workflows are disabled on this server: start it with --allow-command-workflows"
                ));
            }
            run_command(argv, env, *timeout_ms, ctx).await
        }
    }
}

fn body(ctx: &StepContext) -> Value {
    json!({
        "release_id": ctx.release_id,
        "product": ctx.product,
        "flow": ctx.flow,
        "flow_version": ctx.flow_version,
        "version": ctx.version,
        "environment": ctx.environment,
        "step": ctx.step,
        "attempt": ctx.attempt,
        "idempotency_key": ctx.idempotency_key,
        "context": ctx.context,
        "application": ctx.application,
        "source_commit": ctx.source_commit,
        "parameters": ctx.parameters,
    })
}

/// Backoff before attempt `n` (n ≥ 2): 1 s, 2 s, 4 s … capped at 30 s.
/// Tests shorten it through `PROMOFLOW_HTTP_BACKOFF_MS`.
fn backoff(n: u32) -> Duration {
    let base = std::env::var("PROMOFLOW_HTTP_BACKOFF_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1000);
    Duration::from_millis((base << (n.saturating_sub(2)).min(5)).min(30_000))
}

async fn run_http(
    http: &reqwest::Client,
    url: &str,
    headers: &BTreeMap<String, String>,
    timeout_ms: u64,
    max_attempts: u32,
    ctx: &StepContext,
) -> StepResult {
    let payload = body(ctx);
    let mut last = String::new();
    for attempt in 1..=max_attempts.max(1) {
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        let mut req = http
            .post(url)
            .timeout(Duration::from_millis(timeout_ms))
            .header("Idempotency-Key", &ctx.idempotency_key)
            .json(&payload);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                if status.is_success() {
                    let outputs = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v.get("outputs").and_then(Value::as_object).cloned())
                        .unwrap_or_default();
                    return succeeded(format!("HTTP {status}"), outputs);
                }
                last = format!("HTTP {status}: {}", tail(&text, 200));
                let retryable = status.is_server_error()
                    || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                    || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                if !retryable {
                    break;
                }
            }
            Err(e) if e.is_timeout() => {
                last = format!(
                    "timed out after {}",
                    humantime::format_duration(Duration::from_millis(timeout_ms))
                );
            }
            Err(e) if e.is_connect() => last = format!("cannot connect: {}", root_cause(&e)),
            Err(e) => last = format!("request failed: {}", root_cause(&e)),
        }
        if attempt > 1 && attempt == max_attempts {
            last = format!("{last} (after {attempt} attempts)");
        }
    }
    failed(format!("POST {url}: {last}"))
}

/// The innermost cause of an error (`Connection refused (os error 111)`,
/// `invalid peer certificate: UnknownIssuer`): reqwest's own message only
/// says "error sending request for url (…)", which hides why.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// The last `n` bytes of `s` (on a character boundary).
fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s.trim();
    }
    let mut start = s.len() - n;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].trim()
}

async fn run_command(
    argv: &[String],
    env: &BTreeMap<String, String>,
    timeout_ms: u64,
    ctx: &StepContext,
) -> StepResult {
    let Some((program, args)) = argv.split_first() else {
        return failed("the command is empty");
    };
    let mut cmd = tokio::process::Command::new(program);
    // A clean environment: the server's own variables (its database URL,
    // tokens, cloud credentials) must not reach a program a flow runs. Only
    // PATH is kept, so programs are found as on the server's shell; all
    // else is what the workflow declares plus the promotion context.
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .args(args)
        .envs(env)
        .env("PROMOFLOW_RELEASE_ID", &ctx.release_id)
        .env("PROMOFLOW_PRODUCT", &ctx.product)
        .env("PROMOFLOW_FLOW", &ctx.flow)
        .env("PROMOFLOW_VERSION", &ctx.version)
        .env("PROMOFLOW_ENVIRONMENT", &ctx.environment)
        .env("PROMOFLOW_STEP", &ctx.step)
        .env("PROMOFLOW_ATTEMPT", ctx.attempt.to_string())
        .env("PROMOFLOW_IDEMPOTENCY_KEY", &ctx.idempotency_key)
        .env("PROMOFLOW_APPLICATION", &ctx.application)
        .env("PROMOFLOW_SOURCE_COMMIT", &ctx.source_commit)
        .envs(&ctx.parameters)
        .env(
            "PROMOFLOW_CONTEXT",
            Value::Object(ctx.context.clone()).to_string(),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot start {program:?}: {e}")),
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    match tokio::time::timeout(Duration::from_millis(timeout_ms), run).await {
        Err(_) => failed(format!("{program} timed out after {timeout_ms} ms")),
        Ok((Err(e), _, _)) => failed(format!("{program}: {e}")),
        Ok((Ok(status), out, err)) => {
            let mut text = String::from_utf8_lossy(&out).into_owned();
            text.push_str(&String::from_utf8_lossy(&err));
            let output = tail(&text, 1000).to_string();
            if status.success() {
                succeeded(output, Map::new())
            } else {
                failed(format!("{program} exited with {status}: {output}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> StepContext {
        StepContext {
            release_id: "r1".into(),
            product: "p".into(),
            flow: "f".into(),
            flow_version: 1,
            version: "1.0.0".into(),
            environment: "qa".into(),
            step: "PRE_ACTION".into(),
            attempt: 1,
            idempotency_key: "k".into(),
            context: Map::new(),
            start_time: chrono::Utc::now(),
            application: "p-qa".into(),
            source_commit: String::new(),
            parameters: BTreeMap::new(),
        }
    }

    async fn http_failure(url: &str, timeout_ms: u64) -> String {
        let http = reqwest::Client::new();
        match run_http(&http, url, &BTreeMap::new(), timeout_ms, 1, &ctx()).await {
            StepResult::Done(Outcome::Failed { message }) => message,
            other => panic!("not a failure: {other:?}"),
        }
    }

    /// An HTTP workflow's failure keeps its root cause: refused, timed out,
    /// or the status the endpoint answered.
    #[tokio::test]
    async fn http_failures_say_why() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A port nobody listens on any more.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let refused = format!("http://{}/hook", closed.local_addr().expect("addr"));
        drop(closed);
        let message = http_failure(&refused, 2_000).await;
        assert!(
            message.starts_with(&format!("POST {refused}: cannot connect: ")),
            "{message}"
        );
        assert!(
            message.to_lowercase().contains("connection refused"),
            "{message}"
        );

        // One that accepts and never answers, and one that answers 503.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let silent_url = format!("http://{}/hook", silent.local_addr().expect("addr"));
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let message = http_failure(&silent_url, 300).await;
        assert_eq!(message, format!("POST {silent_url}: timed out after 300ms"));

        let down = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let down_url = format!("http://{}/hook", down.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = down.accept().await {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 11\r\nconnection: close\r\n\r\nmaintenance")
                    .await;
            }
        });
        let message = http_failure(&down_url, 2_000).await;
        assert_eq!(
            message,
            format!("POST {down_url}: HTTP 503 Service Unavailable: maintenance")
        );
    }

    #[tokio::test]
    async fn commands_get_a_clean_environment_with_what_they_declare() {
        // HOME is set for every test process; a program a flow runs must
        // not see it (nor the server's database URL or tokens).
        assert!(std::env::var_os("HOME").is_some(), "the probe needs HOME");
        let kind = WorkflowKind::Command {
            argv: vec![
                "sh".into(),
                "-c".into(),
                r#"test -z "$HOME" || { echo "leaked HOME=$HOME" >&2; exit 3; }; test "$GREETING" = hi && test "$PROMOFLOW_ENVIRONMENT" = qa"#.into(),
            ],
            env: BTreeMap::from([("GREETING".to_string(), "hi".to_string())]),
            timeout_ms: 10_000,
        };
        let http = reqwest::Client::new();
        let result = run(&http, true, "probe", &kind, &ctx()).await;
        assert!(
            matches!(result, StepResult::Done(Outcome::Succeeded { .. })),
            "{result:?}"
        );
    }
}
