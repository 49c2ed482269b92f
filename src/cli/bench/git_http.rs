//! A Git smart-HTTP server on loopback: git's own CGI program,
//! `git http-backend`, behind a small axum bridge with Basic
//! authentication, plus plumbing helpers that write commits straight into
//! its bare repositories.
//!
//! Two places use it: the `gitops` scenario of `promoflow bench`, which
//! needs a Git remote that behaves like a forge (HTTP, authentication,
//! real rejected pushes) without one on the network, and the integration
//! tests' `GitServer` (`tests/common/git_server.rs`), which wraps the same
//! [`Bridge`] with its fault injection (a commit slipped in before a push,
//! a stalled repository). It is library code because the bench is part of
//! the binary and integration tests can only share code through the
//! library; it sits under `cli::bench` rather than `engine::git` because it
//! is test equipment: `promoflow serve` never runs it, and the engine's Git
//! client must not depend on a server.
//!
//! Clones, fetches and pushes are git's own on both sides; the bridge only
//! translates one HTTP request into one CGI run and back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::AsyncWriteExt;

/// Largest request body the bridge reads (a pushed pack).
const MAX_BODY: usize = 256 << 20;

/// `git http-backend` for the bare repositories under one directory,
/// accepting one Basic `user:token`.
pub struct Bridge {
    root: PathBuf,
    backend: PathBuf,
    user: String,
    /// The whole `Authorization` header value that is accepted.
    expected: String,
    requests: AtomicU64,
}

/// One request, read whole, ready for `git http-backend`.
pub struct Call {
    method: String,
    path: String,
    query: String,
    content_type: Option<String>,
    encoding: Option<String>,
    protocol: Option<String>,
    body: Bytes,
}

impl Bridge {
    /// Serves the repositories `<root>/<name>.git`; finds
    /// `git http-backend` in git's exec path.
    pub fn new(root: impl Into<PathBuf>, user: &str, token: &str) -> Result<Self, String> {
        let root = root.into();
        let exec_path = run_git(&root, &["--exec-path"], &[], None)?;
        let backend = Path::new(exec_path.trim()).join("git-http-backend");
        if !backend.exists() {
            return Err(format!(
                "git http-backend not found at {}",
                backend.display()
            ));
        }
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
        Ok(Self {
            root,
            backend,
            user: user.into(),
            expected: format!("Basic {basic}"),
            requests: AtomicU64::new(0),
        })
    }

    /// The directory holding the repositories.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The bare repository of `name` on disk.
    pub fn repo_dir(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.git"))
    }

    /// How many requests reached `git http-backend` so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `Ok` when `headers` carry the accepted credentials, else the 401
    /// that makes git ask for (or give up on) credentials.
    // The error is the response to send as it is; boxing it buys nothing.
    #[allow(clippy::result_large_err)]
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), Response> {
        let ok = headers
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == self.expected.as_bytes());
        if ok {
            return Ok(());
        }
        Err(Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(http::header::WWW_AUTHENTICATE, "Basic realm=\"git\"")
            .body(Body::from("authentication required\n"))
            .expect("a constant, valid response"))
    }

    /// Runs `git http-backend` for `call`; its CGI answer as a response.
    pub async fn run(&self, call: Call) -> Response {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut cmd = tokio::process::Command::new(&self.backend);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.root)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", &call.path)
            .env("QUERY_STRING", &call.query)
            .env("REQUEST_METHOD", &call.method)
            .env("CONTENT_LENGTH", call.body.len().to_string())
            .env("REMOTE_USER", &self.user)
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (var, value) in [
            ("CONTENT_TYPE", &call.content_type),
            ("HTTP_CONTENT_ENCODING", &call.encoding),
            ("HTTP_GIT_PROTOCOL", &call.protocol),
        ] {
            if let Some(v) = value {
                cmd.env(var, v);
            }
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return error(format!("cannot start git http-backend: {e}")),
        };
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let body = call.body;
        let write = async move {
            // A backend that exits early closes its stdin; its output says why.
            let _ = stdin.write_all(&body).await;
        };
        let (_, out) = tokio::join!(write, child.wait_with_output());
        match out {
            Ok(out) => cgi_response(&out.stdout, &out.stderr),
            Err(e) => error(format!("git http-backend: {e}")),
        }
    }

    /// Authenticates and serves one request.
    pub async fn handle(&self, req: Request) -> Response {
        if let Err(denied) = self.authorize(req.headers()) {
            return denied;
        }
        match Call::read(req).await {
            Ok(call) => self.run(call).await,
            Err(bad) => bad,
        }
    }

    /// The router of a server that does nothing but [`Bridge::handle`].
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .fallback(
                |State(b): State<Arc<Bridge>>, req: Request| async move { b.handle(req).await },
            )
            .with_state(self)
    }
}

impl Call {
    /// Reads the parts `git http-backend` needs and the whole body; the
    /// error is the response to send (a body too large or cut short).
    #[allow(clippy::result_large_err)]
    pub async fn read(req: Request) -> Result<Self, Response> {
        // In a block: a borrow of the request must not live across the
        // await below (the body is not `Sync`, the future must be `Send`).
        let (content_type, encoding, protocol) = {
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            (
                header("content-type"),
                header("content-encoding"),
                header("git-protocol"),
            )
        };
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|e| {
                Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .body(Body::from(e.to_string()))
                    .expect("a valid response")
            })?;
        Ok(Self {
            method,
            path,
            query,
            content_type,
            encoding,
            protocol,
            body,
        })
    }

    /// The repository the request is for (its name without `.git`).
    pub fn repo(&self) -> Option<&str> {
        repo_of(&self.path)
    }

    /// The repository, when the request is a push (the POST to
    /// `git-receive-pack` that carries the ref updates and the pack).
    pub fn push_repo(&self) -> Option<&str> {
        if self.method != "POST" {
            return None;
        }
        self.path
            .strip_suffix("/git-receive-pack")
            .map(|p| p.trim_start_matches('/').trim_end_matches(".git"))
    }
}

/// The repository named by a request path `/<name>.git/...`.
pub fn repo_of(path: &str) -> Option<&str> {
    path.trim_start_matches('/')
        .split_once(".git/")
        .map(|(repo, _)| repo)
}

/// Serves `app` on a free port of 127.0.0.1; returns `http://127.0.0.1:<port>`
/// and the task serving it (abort it to stop).
pub async fn listen(app: axum::Router) -> Result<(String, tokio::task::JoinHandle<()>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind the git server: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("git server address: {e}"))?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("git server on {addr}: {e}");
        }
    });
    Ok((format!("http://{addr}"), task))
}

fn error(message: String) -> Response {
    Response::builder()
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .body(Body::from(message))
        .expect("a valid response")
}

/// Turns CGI output (headers, a blank line, the body) into a response.
fn cgi_response(stdout: &[u8], stderr: &[u8]) -> Response {
    let split = find(stdout, b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| find(stdout, b"\n\n").map(|i| (i, 2)));
    let Some((at, sep)) = split else {
        return error(format!(
            "bad CGI output; stderr: {}",
            String::from_utf8_lossy(stderr)
        ));
    };
    let (head, body) = (&stdout[..at], &stdout[at + sep..]);
    let mut response = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
                .unwrap_or(500);
            response = response.status(code);
        } else if let Ok(v) = HeaderValue::from_str(value) {
            response = response.header(name.trim(), v);
        }
    }
    response
        .body(Body::from(body.to_vec()))
        .unwrap_or_else(|e| error(format!("bad CGI headers: {e}")))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ------------------------------------------------- writing repositories

/// Creates the bare repository `dir` with `branch` as its default branch.
pub fn init_bare(dir: &Path, branch: &str) -> Result<(), String> {
    let parent = dir.parent().unwrap_or(dir);
    // Nested names (`acme/apps`) need their owner's directory first.
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let dir_str = dir.to_string_lossy().to_string();
    let initial = format!("--initial-branch={branch}");
    run_git(
        parent,
        &["init", "--bare", "--quiet", &initial, &dir_str],
        &[],
        None,
    )
    .map(|_| ())
}

/// Commits `files` (path, contents) onto `branch` of the bare repository
/// `dir`, on top of its tip (a root commit when the branch does not exist
/// yet), with plumbing only; returns the commit. The ref moves only if the
/// branch is still where it was read, so a concurrent writer makes this
/// fail instead of being overwritten.
pub fn commit_files(
    dir: &Path,
    branch: &str,
    files: &[(&str, &str)],
    message: &str,
) -> Result<String, String> {
    let refname = format!("refs/heads/{branch}");
    let parent =
        git_ok(dir, &["rev-parse", "--verify", "--quiet", &refname]).map(|p| p.trim().to_string());
    let index = TempFile(dir.join(format!("bench-index-{}", uuid::Uuid::new_v4().simple())));
    let index_str = index.0.to_string_lossy().to_string();
    let env = [("GIT_INDEX_FILE", index_str.as_str())];
    if let Some(parent) = &parent {
        run_git(dir, &["read-tree", parent], &env, None)?;
    }
    let mut index_info = String::new();
    for (path, contents) in files {
        let blob = run_git(
            dir,
            &["hash-object", "-w", "--stdin"],
            &[],
            Some(contents.as_bytes()),
        )?;
        index_info.push_str(&format!("100644 {}\t{path}\n", blob.trim()));
    }
    run_git(
        dir,
        &["update-index", "--add", "--index-info"],
        &env,
        Some(index_info.as_bytes()),
    )?;
    let tree = run_git(dir, &["write-tree"], &env, None)?;
    drop(index);
    let mut args = vec!["commit-tree", tree.trim(), "-m", message];
    if let Some(parent) = &parent {
        args.extend(["-p", parent.as_str()]);
    }
    let author = [
        ("GIT_AUTHOR_NAME", "Someone Else"),
        ("GIT_AUTHOR_EMAIL", "someone@example.com"),
        ("GIT_COMMITTER_NAME", "Someone Else"),
        ("GIT_COMMITTER_EMAIL", "someone@example.com"),
    ];
    let sha = run_git(dir, &args, &author, None)?.trim().to_string();
    // The zero id as the old value: "must not exist yet".
    let old = parent.unwrap_or_else(|| "0".repeat(40));
    run_git(dir, &["update-ref", &refname, &sha, &old], &[], None)?;
    Ok(sha)
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `git args` in `dir` (as its git dir when it is one); its standard
/// output, or an error quoting its standard error.
pub fn run_git(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Result<String, String> {
    let out = git(dir, args, env, stdin).map_err(|e| format!("git {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The standard output of `git args`, or `None` when it failed.
pub fn git_ok(dir: &Path, args: &[&str]) -> Option<String> {
    let out = git(dir, args, &[], None).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `git args` in `dir` without system or global configuration.
pub fn git(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> std::io::Result<Output> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if dir.join("HEAD").exists() {
        cmd.env("GIT_DIR", dir);
    }
    let mut child = cmd.spawn()?;
    if let Some(data) = stdin {
        use std::io::Write;
        // Dropped at the end of the statement: git sees the end of input.
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(data)?;
    }
    child.wait_with_output()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_becomes_a_response() {
        let r = cgi_response(
            b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope",
            b"",
        );
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()["content-type"], "text/plain");
        let r = cgi_response(b"Content-Type: a/b\n\nbody", b"");
        assert_eq!(r.status(), StatusCode::OK);
        let r = cgi_response(b"no blank line", b"oops");
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn request_paths_name_their_repository() {
        assert_eq!(repo_of("/apps.git/info/refs"), Some("apps"));
        assert_eq!(repo_of("/a/b.git/git-upload-pack"), Some("a/b"));
        assert_eq!(repo_of("/nothing"), None);
    }
}
