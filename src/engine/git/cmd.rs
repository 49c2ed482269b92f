//! Running one `git` command: the hardened argv and environment, the
//! timeout, killing the whole process group when the call is dropped, and
//! turning git's stderr into an error that holds no secret.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::GitError;

/// Environment variables a git child may inherit: the search path,
/// temporary files, TLS trust and proxies. Everything else (any `GIT_*`
/// of the server's own environment included) is cleared.
const INHERITED_ENV: &[&str] = &[
    "PATH",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// Stderr kept in an error message, at most.
const MAX_STDERR_IN_ERROR: usize = 1500;

/// One git command, ready to run: `git <args>` with exactly `env`.
#[derive(Debug, Clone)]
pub(super) struct Invocation {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Strings that must never leave this process: scrubbed from stderr.
    pub secrets: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub cwd: PathBuf,
    /// `host[:port]` of the remote, for authentication errors.
    pub host: Option<String>,
}

impl Invocation {
    pub fn stdin(mut self, data: Vec<u8>) -> Self {
        self.stdin = Some(data);
        self
    }

    /// The first argument (the git subcommand), for messages.
    fn what(&self) -> &str {
        self.args
            .iter()
            .find(|a| !a.starts_with('-') && !a.contains('='))
            .map_or("command", String::as_str)
    }
}

/// What a finished git process left.
pub(super) struct Output {
    pub success: bool,
    pub stdout: Vec<u8>,
    /// Scrubbed of every secret.
    pub stderr: String,
    what: String,
    host: Option<String>,
}

impl Output {
    /// The stdout of a successful run, or the error its stderr describes.
    pub fn ok(self) -> Result<Vec<u8>, GitError> {
        if self.success {
            Ok(self.stdout)
        } else {
            Err(self.error())
        }
    }

    /// The error git's stderr describes (authentication, missing
    /// repository or branch, stall), or a generic failure quoting it.
    pub fn error(&self) -> GitError {
        classify(&self.what, &self.stderr, self.host.as_deref())
    }
}

/// Kills the process group of a child that has not been waited for: git
/// runs helpers (`git-remote-https`, `index-pack`) that killing `git`
/// alone would leave running.
struct GroupKill(Option<i32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: kill(2) with a negative pid signals the process group
            // the child leads (spawned with `process_group(0)`); the group
            // still exists because the child has not been reaped.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Runs `inv` for at most `timeout`. Dropping the returned future (a
/// terminated release) kills git and its helpers.
pub(super) async fn run(inv: Invocation, timeout: Duration) -> Result<Output, GitError> {
    tracing::debug!(args = ?inv.args, cwd = %inv.cwd.display(), "git");
    let what = inv.what().to_string();
    let mut cmd = tokio::process::Command::new("git");
    cmd.env_clear()
        .envs(
            INHERITED_ENV
                .iter()
                .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
        )
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .args(&inv.args)
        .current_dir(&inv.cwd)
        .stdin(if inv.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            GitError::Failed(NOT_INSTALLED.into())
        } else {
            GitError::Failed(format!("cannot start git: {e}"))
        }
    })?;
    let mut group = GroupKill(child.id().and_then(|id| i32::try_from(id).ok()));
    let stdin = child.stdin.take();
    let input = inv.stdin;
    let work = async move {
        let write = async move {
            if let (Some(mut pipe), Some(data)) = (stdin, input) {
                // A git that exits early closes its stdin: its exit status
                // and stderr tell why, not this write error.
                let _ = pipe.write_all(&data).await;
            }
        };
        let (_, out) = tokio::join!(write, child.wait_with_output());
        out
    };
    let out = match tokio::time::timeout(timeout, work).await {
        Ok(Ok(out)) => {
            group.0 = None;
            out
        }
        Ok(Err(e)) => return Err(GitError::Failed(format!("git {what}: {e}"))),
        Err(_) => {
            return Err(GitError::Timeout(format!(
                "git {what}{} did not finish within {}",
                inv.host
                    .as_deref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default(),
                humantime::format_duration(timeout)
            )));
        }
    };
    let stderr = scrub(&String::from_utf8_lossy(&out.stderr), &inv.secrets);
    if !out.status.success() {
        tracing::debug!(git = %what, status = ?out.status.code(), stderr = %stderr, "git failed");
    }
    Ok(Output {
        success: out.status.success(),
        stdout: out.stdout,
        stderr,
        what,
        host: inv.host,
    })
}

pub(super) const NOT_INSTALLED: &str = "the `git` command was not found; promoflow needs git 2.31 or newer: install the `git` package (for example `apt-get install git`)";

/// `text` without any of `secrets`, and without any line naming an
/// Authorization header (git's curl traces would).
pub(super) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(s.as_str(), "[redacted]");
    }
    text.lines()
        .map(|line| {
            if line.to_ascii_lowercase().contains("authorization:") {
                "[redacted header]"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The error git's (scrubbed) stderr describes.
fn classify(what: &str, stderr: &str, host: Option<&str>) -> GitError {
    let lower = stderr.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if let Some(host) = host
        && any(&[
            "authentication failed",
            "could not read username",
            "could not read password",
            "returned error: 401",
            "returned error: 403",
            "http 401",
            "http 403",
            "invalid username or password",
        ])
    {
        return GitError::Auth {
            host: host.to_string(),
        };
    }
    let detail = short(stderr);
    if any(&["couldn't find remote ref", "could not find remote ref"]) {
        return GitError::NotFound(format!("branch not found: {detail}"));
    }
    if any(&[
        "repository not found",
        "returned error: 404",
        "does not appear to be a git repository",
        "not found",
    ]) && any(&["repository", "404"])
    {
        return GitError::NotFound(format!(
            "repository not found (or the credentials cannot see it): {detail}"
        ));
    }
    if any(&["operation too slow", "timed out", "timeout was reached"]) {
        return GitError::Timeout(format!("git {what} stalled: {detail}"));
    }
    GitError::Failed(format!("git {what} failed: {detail}"))
}

/// The meaningful part of git's stderr, bounded: its `fatal:`/`error:`
/// lines when there are some, else all of it; cut to a length an error
/// message can carry.
fn short(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let important: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("fatal:") || l.starts_with("error:"))
        .collect();
    let text = if important.is_empty() {
        lines.join("; ")
    } else {
        important.join("; ")
    };
    if text.len() <= MAX_STDERR_IN_ERROR {
        return text;
    }
    let mut end = MAX_STDERR_IN_ERROR;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_secrets_and_headers() {
        let out = scrub(
            "fatal: bad token s3cr3t-token\n> Authorization: Basic dXNlcjpzM2NyM3Q=\nok",
            &["s3cr3t-token".to_string()],
        );
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(!out.contains("dXNlcj"), "{out}");
        assert!(out.ends_with("ok"));
    }

    #[test]
    fn classifies() {
        let auth = classify(
            "fetch",
            "fatal: could not read Username for 'http://h': terminal prompts disabled",
            Some("h:1"),
        );
        assert_eq!(auth, GitError::Auth { host: "h:1".into() });
        assert_eq!(auth.to_string(), "authentication failed for h:1");
        assert!(matches!(
            classify(
                "fetch",
                "fatal: couldn't find remote ref refs/heads/x",
                Some("h")
            ),
            GitError::NotFound(_)
        ));
        assert!(matches!(
            classify(
                "fetch",
                "fatal: repository 'http://h/x/' not found",
                Some("h")
            ),
            GitError::NotFound(_)
        ));
        assert!(matches!(
            classify("fetch", "fatal: something else", Some("h")),
            GitError::Failed(_)
        ));
    }
}
