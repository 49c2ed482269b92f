//! A real Git smart-HTTP server for tests: `git http-backend` behind a
//! small axum CGI bridge on `127.0.0.1:0`, with Basic authentication.
//!
//! Clones, fetches and pushes are git's own (real rejections when a branch
//! moved, real 401s). Helpers read and write the bare repositories
//! directly, and [`GitServer::inject_before_next_push`] commits to a
//! repository just before the next push to it reaches `receive-pack`, so
//! a test can make a push lose a race deterministically.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine as _;
use http::{HeaderValue, StatusCode};
use tokio::io::AsyncWriteExt;

/// One commit of a branch's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub sha: String,
    pub subject: String,
    pub trailers: Vec<(String, String)>,
}

/// A running server; stopped (and its repositories deleted) when dropped.
pub struct GitServer {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    state: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// A commit of one file made just before a push: (branch, path, contents).
type Injection = (String, String, String);

struct Shared {
    root: PathBuf,
    backend: PathBuf,
    user: String,
    token: String,
    /// Per repository: commits to make before its next receive-pack.
    inject: Mutex<HashMap<String, Vec<Injection>>>,
    injected: AtomicUsize,
    /// Requests refused for want of the right credentials.
    refused: AtomicUsize,
    /// Per repository: receive-pack requests served.
    pushes: Mutex<HashMap<String, usize>>,
    /// Repositories whose requests never get an answer.
    stalled: Mutex<HashSet<String>>,
}

impl GitServer {
    /// Starts a server accepting Basic `user:token`.
    pub async fn start(user: &str, token: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("repos");
        std::fs::create_dir_all(&root).expect("repos dir");
        let exec_path = run_git(dir.path(), &["--exec-path"], &[], None);
        let backend = Path::new(exec_path.trim()).join("git-http-backend");
        assert!(
            backend.exists(),
            "git http-backend not found at {}",
            backend.display()
        );
        let state = Arc::new(Shared {
            root,
            backend,
            user: user.into(),
            token: token.into(),
            inject: Mutex::default(),
            injected: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            pushes: Mutex::default(),
            stalled: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("git server");
        });
        Self {
            base,
            state,
            task,
            _dir: dir,
        }
    }

    /// The clone URL of repository `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}.git", self.base)
    }

    /// The bare repository of `name` on disk (a local repository URL).
    pub fn path(&self, name: &str) -> PathBuf {
        self.repo(name)
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.state.root.join(format!("{name}.git"))
    }

    /// A bare repository whose `main` (its default branch) has one commit
    /// holding `files`; returns its URL.
    pub fn create_repo(&self, name: &str, files: &[(&str, &str)]) -> String {
        let dir = self.repo(name);
        let dir_str = dir.to_string_lossy().to_string();
        run_git(
            &self.state.root,
            &[
                "init",
                "--bare",
                "--quiet",
                "--initial-branch=main",
                &dir_str,
            ],
            &[],
            None,
        );
        commit_files(&dir, "main", files, "initial commit");
        self.url(name)
    }

    /// Makes `branch` (created from `main` when missing) the default
    /// branch (`HEAD`) of `name`.
    pub fn set_default_branch(&self, name: &str, branch: &str) {
        let dir = self.repo(name);
        let refname = format!("refs/heads/{branch}");
        if git_ok(&dir, &["rev-parse", "--verify", "--quiet", &refname]).is_none() {
            run_git(
                &dir,
                &["update-ref", &refname, "refs/heads/main"],
                &[],
                None,
            );
        }
        run_git(&dir, &["symbolic-ref", "HEAD", &refname], &[], None);
    }

    /// The commits of `branch`, newest first.
    pub fn log(&self, name: &str, branch: &str) -> Vec<LogEntry> {
        let out = run_git(
            &self.repo(name),
            &[
                "log",
                "-z",
                "--format=%H%x01%s%x01%(trailers:only,unfold)",
                &format!("refs/heads/{branch}"),
                "--",
            ],
            &[],
            None,
        );
        out.split('\0')
            .filter(|r| !r.trim().is_empty())
            .map(|record| {
                let mut parts = record.splitn(3, '\x01');
                let sha = parts.next().unwrap_or_default().trim().to_string();
                let subject = parts.next().unwrap_or_default().to_string();
                let trailers = parts
                    .next()
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .collect();
                LogEntry {
                    sha,
                    subject,
                    trailers,
                }
            })
            .collect()
    }

    /// The paths `sha` changed relative to its first parent.
    pub fn changed_files(&self, name: &str, sha: &str) -> Vec<String> {
        run_git(
            &self.repo(name),
            &[
                "diff-tree",
                "--root",
                "--no-commit-id",
                "--name-only",
                "-r",
                sha,
            ],
            &[],
            None,
        )
        .lines()
        .map(str::to_string)
        .collect()
    }

    /// The whole message of `sha`.
    pub fn message(&self, name: &str, sha: &str) -> String {
        run_git(
            &self.repo(name),
            &["log", "-1", "--format=%B", sha],
            &[],
            None,
        )
    }

    /// The tip of `branch`.
    pub fn tip(&self, name: &str, branch: &str) -> String {
        run_git(
            &self.repo(name),
            &["rev-parse", &format!("refs/heads/{branch}")],
            &[],
            None,
        )
        .trim()
        .to_string()
    }

    /// The file `path` at the tip of `branch`.
    pub fn read(&self, name: &str, branch: &str, path: &str) -> String {
        run_git(
            &self.repo(name),
            &["show", &format!("refs/heads/{branch}:{path}")],
            &[],
            None,
        )
    }

    /// Commits `path` = `contents` on `branch` directly in the repository,
    /// as someone else's push would; returns the new commit.
    pub fn commit_directly(&self, name: &str, branch: &str, path: &str, contents: &str) -> String {
        commit_files(
            &self.repo(name),
            branch,
            &[(path, contents)],
            &format!("someone else edits {path}"),
        )
    }

    /// Before the next push to `name` reaches `receive-pack` (after the
    /// pusher fetched and read the ref advertisement), commits `path` =
    /// `contents` on `branch` directly: that push then loses the race.
    pub fn inject_before_next_push(&self, name: &str, branch: &str, path: &str, contents: &str) {
        self.state
            .inject
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .push((branch.into(), path.into(), contents.into()));
    }

    /// From now on, requests for `name` are accepted and never answered
    /// (a hung server).
    pub fn stall(&self, name: &str) {
        self.state.stalled.lock().unwrap().insert(name.to_string());
    }

    /// How many injected commits were made so far.
    pub fn injected(&self) -> usize {
        self.state.injected.load(Ordering::SeqCst)
    }

    /// How many requests were refused with 401 (no or wrong credentials).
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// How many pushes (receive-pack requests) reached `name`.
    pub fn pushes(&self, name: &str) -> usize {
        self.state
            .pushes
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The CGI bridge: authenticate, maybe inject, run `git http-backend`.
async fn handle(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", s.user, s.token))
    );
    let authorized = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        s.refused.fetch_add(1, Ordering::SeqCst);
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(http::header::WWW_AUTHENTICATE, "Basic realm=\"git\"")
            .body(Body::from("authentication required\n"))
            .unwrap();
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let repo = path
        .trim_start_matches('/')
        .split_once(".git/")
        .map(|(r, _)| r.to_string());
    if repo.is_some_and(|r| s.stalled.lock().unwrap().contains(&r)) {
        std::future::pending::<()>().await;
    }
    let query = req.uri().query().unwrap_or_default().to_string();
    // In a block: a borrow of the request must not live across an await
    // (the body is not `Sync`).
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
    let body = match axum::body::to_bytes(req.into_body(), 256 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .body(Body::from(e.to_string()))
                .unwrap();
        }
    };

    if method == "POST"
        && let Some(repo) = path.strip_suffix("/git-receive-pack").map(|p| {
            p.trim_start_matches('/')
                .trim_end_matches(".git")
                .to_string()
        })
    {
        *s.pushes.lock().unwrap().entry(repo.clone()).or_default() += 1;
        let pending = s.inject.lock().unwrap().remove(&repo);
        if let Some(pending) = pending {
            let dir = s.root.join(format!("{repo}.git"));
            let count = pending.len();
            tokio::task::spawn_blocking(move || {
                for (branch, file, contents) in pending {
                    commit_files(
                        &dir,
                        &branch,
                        &[(&file, &contents)],
                        &format!("someone else edits {file}"),
                    );
                }
            })
            .await
            .expect("inject");
            s.injected.fetch_add(count, Ordering::SeqCst);
        }
    }

    let mut cmd = tokio::process::Command::new(&s.backend);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &s.root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &s.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("REQUEST_METHOD", &method)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", &s.user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(ct) = &content_type {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(enc) = &encoding {
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(p) = &protocol {
        cmd.env("HTTP_GIT_PROTOCOL", p);
    }
    let mut child = cmd.spawn().expect("spawn git http-backend");
    let mut stdin = child.stdin.take().expect("stdin");
    let write = async move {
        let _ = stdin.write_all(&body).await;
    };
    let (_, out) = tokio::join!(write, child.wait_with_output());
    let out = out.expect("git http-backend");
    cgi_response(&out.stdout, &out.stderr)
}

/// Turns CGI output (headers, a blank line, the body) into a response.
fn cgi_response(stdout: &[u8], stderr: &[u8]) -> Response {
    let (head, body) = match find(stdout, b"\r\n\r\n") {
        Some(i) => (&stdout[..i], &stdout[i + 4..]),
        None => match find(stdout, b"\n\n") {
            Some(i) => (&stdout[..i], &stdout[i + 2..]),
            None => {
                return Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(Body::from(format!(
                        "bad CGI output; stderr: {}",
                        String::from_utf8_lossy(stderr)
                    )))
                    .unwrap();
            }
        },
    };
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
    response.body(Body::from(body.to_vec())).unwrap()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Commits `files` onto `branch` of the bare repository `dir` (created
/// when missing), with plumbing only; returns the commit.
fn commit_files(dir: &Path, branch: &str, files: &[(&str, &str)], message: &str) -> String {
    let refname = format!("refs/heads/{branch}");
    let parent = git_ok(dir, &["rev-parse", "--verify", "--quiet", &refname]);
    let index = dir.join(format!("test-index-{}", uuid::Uuid::new_v4().simple()));
    let index_str = index.to_string_lossy().to_string();
    let env = [("GIT_INDEX_FILE", index_str.as_str())];
    if let Some(parent) = &parent {
        run_git(dir, &["read-tree", parent.trim()], &env, None);
    }
    for (path, contents) in files {
        let blob = run_git(
            dir,
            &["hash-object", "-w", "--stdin"],
            &[],
            Some(contents.as_bytes()),
        );
        run_git(
            dir,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("100644,{},{path}", blob.trim()),
            ],
            &env,
            None,
        );
    }
    let tree = run_git(dir, &["write-tree"], &env, None);
    let _ = std::fs::remove_file(&index);
    let mut args = vec!["commit-tree", tree.trim(), "-m", message];
    let parent_sha = parent
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    if parent.is_some() {
        args.extend(["-p", parent_sha.as_str()]);
    }
    let author = [
        ("GIT_AUTHOR_NAME", "Someone Else"),
        ("GIT_AUTHOR_EMAIL", "someone@example.com"),
        ("GIT_COMMITTER_NAME", "Someone Else"),
        ("GIT_COMMITTER_EMAIL", "someone@example.com"),
    ];
    let sha = run_git(dir, &args, &author, None).trim().to_string();
    let mut update = vec!["update-ref", refname.as_str(), sha.as_str()];
    if parent.is_some() {
        update.push(parent_sha.as_str());
    }
    run_git(dir, &update, &[], None);
    sha
}

/// `git args` in `dir` (as its git dir when it is one); panics on failure.
fn run_git(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> String {
    let out = git(dir, args, env, stdin);
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn git_ok(dir: &Path, args: &[&str]) -> Option<String> {
    let out = git(dir, args, &[], None);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn git(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> std::process::Output {
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
    let mut child = cmd.spawn().expect("spawn git");
    if let Some(data) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(data)
            .expect("write to git");
    }
    child.wait_with_output().expect("git")
}
