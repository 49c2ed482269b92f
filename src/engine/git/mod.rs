//! Git over the `git` command line, for GitOps promotions: read the files
//! of a branch, and write one commit per (release, environment) onto it.
//!
//! Every operation works on a bare repository cached per repository URL
//! under [`GitConfig::cache_dir`], without a worktree: a fetch of the
//! branch, then plumbing (`ls-tree` and `cat-file` to read, one
//! `fast-import` to write the blobs, trees and commit) and
//! `git push <sha>:refs/heads/<branch>`.
//!
//! # Pushing to a shared branch
//!
//! [`Git::commit_and_push`] is the one write. Several environments of one
//! release (prod, prod-eu, prod-asia) usually commit to one branch at the
//! same time, and several promoflow replicas may too:
//! - in a process, one lock per (repository, branch) runs them one after
//!   the other;
//! - across processes the push arbitrates: it is a `--force-with-lease`
//!   against the tip the commit was made on, so it lands only if the
//!   branch has not moved. A rejected push re-fetches, calls the caller's
//!   edit again on the new tip's files and pushes again, with bounded
//!   backoff. Nothing is rebased textually, and no commit is lost or
//!   overwritten.
//! - the first attempt of a commit to a branch this process pushed last
//!   starts from the commit it pushed, without fetching; its lease makes
//!   a stale start a refused push (before any pack is sent), and the
//!   attempt is made again from a fetch. "Adopted" and "no changes" are
//!   only ever answered from a fetched tip.
//! - before every attempt the recent history of the branch is searched for
//!   a commit carrying the caller's trailers (`Promoflow-Release`,
//!   `Promoflow-Environment`): found, it is adopted instead of committing
//!   again. So a step that is run again (after a crash, or a push that
//!   timed out after the server took it) never makes a second commit.
//!
//! # Safety
//!
//! - Tokens reach git only through the child's environment
//!   (`GIT_CONFIG_COUNT` / `GIT_CONFIG_KEY_0` / `GIT_CONFIG_VALUE_0` holding
//!   `http.<repo url>.extraHeader`), never argv or URLs, and are scrubbed
//!   from any stderr before it is logged or put in an error. They are
//!   sent over `http://` only with [`GitConfig::allow_insecure_http`], and
//!   redirects are not followed when a token is attached.
//! - The child's environment is cleared (PATH, TLS and proxy variables
//!   excepted); no system or global config, a private `HOME`, no terminal
//!   prompts, hooks off, only the https/http protocols (and `file` with
//!   [`GitConfig::allow_local`]), `LC_ALL=C` so messages can be parsed.
//! - Every call has a timeout and low-speed limits; dropping a call's
//!   future kills git and the helpers it started (its process group).

mod cmd;
mod credentials;
mod url;

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;

pub use credentials::{Credential, ForgeConfig, ForgeKind, load_credentials};

use cmd::{Invocation, Output};
use url::{RepoUrl, Transport};

/// How many pushes [`Git::commit_and_push`] tries before giving up on a
/// branch that keeps moving.
pub const MAX_PUSH_ATTEMPTS: u32 = 10;
/// How many recent commits of the branch are searched for one to adopt.
pub const ADOPT_SEARCH_DEPTH: usize = 200;
/// Most commits [`Git::changes_under`] lists.
pub const MAX_CHANGES: usize = 100;
/// Most files [`Git::read_dir`] returns.
pub const MAX_FILES: usize = 2_000;
/// Most bytes of one file read, and of all files of one directory.
pub const MAX_FILE_BYTES: u64 = 8 << 20;
pub const MAX_DIR_BYTES: u64 = 32 << 20;
/// The oldest git with everything used here (`GIT_CONFIG_COUNT`).
const MIN_GIT: (u32, u32) = (2, 31);

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A transfer slower than this many bytes per second for
/// [`LOW_SPEED_TIME`] is abandoned.
const LOW_SPEED_LIMIT: u32 = 1000;
const LOW_SPEED_TIME: Duration = Duration::from_secs(30);

/// What went wrong; `Display` is a message for a person and never holds a
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// The server refused the credentials, or asked for some and none are
    /// configured for the URL.
    #[error("authentication failed for {host}")]
    Auth { host: String },
    /// The repository, branch, commit or default branch does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The server refused the push for a reason retrying cannot fix (a
    /// protected branch, a hook).
    #[error("{0}")]
    Rejected(String),
    /// The branch moved under every one of [`MAX_PUSH_ATTEMPTS`] pushes.
    #[error("{0}")]
    Conflict(String),
    /// A git command ran out of time or stalled.
    #[error("{0}")]
    Timeout(String),
    /// A URL, branch, path, trailer or configuration promoflow refuses.
    #[error("{0}")]
    Invalid(String),
    /// The caller's edit failed.
    #[error("{0}")]
    Edit(String),
    /// Anything else git reported.
    #[error("{0}")]
    Failed(String),
}

impl GitError {
    /// True when the same call may succeed later unchanged.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GitError::Timeout(_) | GitError::Conflict(_) | GitError::Failed(_)
        )
    }
}

/// How [`Git`] runs.
#[derive(Debug, Clone)]
pub struct GitConfig {
    /// First matching `url_prefix` wins.
    pub credentials: Vec<Credential>,
    /// Send credentials over `http://` (loopback servers and tests).
    pub allow_insecure_http: bool,
    /// Accept absolute paths and `file://` repositories.
    pub allow_local: bool,
    pub author_name: String,
    pub author_email: String,
    /// Cached bare repositories (one per repository URL) and git's private
    /// `HOME`. One per process: the locks that keep its fetches apart are
    /// in-process (replicas coordinate through the remote, not the cache).
    pub cache_dir: PathBuf,
    /// Longest one git command may run.
    pub timeout: Duration,
}

impl GitConfig {
    /// No credentials, nothing insecure, author `promoflow`, two minutes
    /// per git command.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            credentials: Vec::new(),
            allow_insecure_http: false,
            allow_local: false,
            author_name: "promoflow".into(),
            author_email: "promoflow@localhost".into(),
            cache_dir: cache_dir.into(),
            timeout: Duration::from_secs(120),
        }
    }
}

/// A branch and the commit at its tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    pub branch: String,
    pub sha: String,
}

/// A commit's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    pub author: String,
    pub author_email: String,
    /// RFC 3339, in the author's time zone.
    pub date: String,
    /// The whole message, trailers included.
    pub message: String,
}

/// A commit [`Git::changes_under`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub sha: String,
    /// Its trailers (`Key: value`), in order.
    pub trailers: Vec<(String, String)>,
}

/// What [`Git::commit_and_push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// A new commit is on the branch; `files` are the paths it changed
    /// (relative to the repository root).
    Committed { sha: String, files: Vec<String> },
    /// A commit with every trailer was already on the branch.
    Adopted { sha: String },
    /// The edit changed nothing; nothing was pushed.
    NoChanges { tip: String },
}

/// What [`Git::push_branch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchPush {
    /// The head branch holds the edit on top of the base branch's tip:
    /// pushed now, or already there from an earlier run (`pushed` false).
    Ready { sha: String, pushed: bool },
    /// The edit changes nothing on the base branch's tip.
    NoChanges { tip: String },
}

/// The edit of [`Git::commit_and_push`]: given the files under the edit
/// directory at the tip (path relative to it → bytes), the files to write
/// (same relative paths; new ones are created). Files returned with their
/// current bytes count as unchanged. Called again on every retry, on the
/// new tip's files: it must be a pure function of its input.
pub type EditFn<'a> = dyn Fn(&Files) -> Result<Writes, String> + Send + Sync + 'a;

/// Files by path: [`Git::read_dir`]'s answer and an edit's input.
pub type Files = BTreeMap<String, Vec<u8>>;
/// What an edit writes: (path, new contents).
pub type Writes = Vec<(String, Vec<u8>)>;

/// The git client. Cheap to clone.
#[derive(Clone)]
pub struct Git {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: GitConfig,
    home: PathBuf,
    repos: PathBuf,
    version: String,
    /// One lock per (repository, branch) for commits and per repository
    /// for fetches.
    locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Per (repository, branch): the commit this process pushed last. The
    /// next commit to that branch starts from it instead of fetching (a
    /// fetch is two or three HTTP requests): its push carries a lease on
    /// it, so if anyone else pushed since, the push is refused before any
    /// pack is sent, and the attempt is made again from a fetch. Taken out
    /// while a commit runs, so a failure leaves nothing remembered.
    pushed: std::sync::Mutex<HashMap<String, String>>,
}

/// A regular file in a tree: its mode and blob.
struct Entry {
    mode: String,
    sha: String,
}

impl Git {
    /// Checks that `git` is installed (2.31 or newer) and prepares the
    /// cache directory.
    pub async fn new(cfg: GitConfig) -> Result<Git, GitError> {
        for (what, v) in [("name", &cfg.author_name), ("email", &cfg.author_email)] {
            if v.trim().is_empty() || v.contains(['<', '>', '\n', '\0']) {
                return Err(GitError::Invalid(format!(
                    "the git author {what} {v:?} must be set and must not contain <, > or a newline"
                )));
            }
        }
        for c in &cfg.credentials {
            c.check().map_err(|e| {
                GitError::Invalid(format!("git credential for {}: {e}", c.url_prefix))
            })?;
        }
        let home = cfg.cache_dir.join("home");
        let repos = cfg.cache_dir.join("repos");
        for dir in [&home, &repos] {
            std::fs::create_dir_all(dir)
                .map_err(|e| GitError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut inner = Inner {
            cfg,
            home,
            repos,
            version: String::new(),
            locks: Default::default(),
            pushed: Default::default(),
        };
        let out = cmd::run(inner.invocation(None, ["--version"]), inner.cfg.timeout)
            .await?
            .ok()?;
        let version = String::from_utf8_lossy(&out).trim().to_string();
        let number = version.strip_prefix("git version ").unwrap_or(&version);
        let mut parts = number
            .split(['.', ' '])
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if found < MIN_GIT {
            return Err(GitError::Failed(format!(
                "{version} is too old: promoflow needs git {}.{} or newer (install a newer `git` package)",
                MIN_GIT.0, MIN_GIT.1
            )));
        }
        tracing::debug!(%version, cache = %inner.cfg.cache_dir.display(), "git client ready");
        inner.version = version;
        Ok(Git {
            inner: Arc::new(inner),
        })
    }

    /// The author of promotion commits, as `Name <email>`.
    pub fn author(&self) -> String {
        format!(
            "{} <{}>",
            self.inner.cfg.author_name, self.inner.cfg.author_email
        )
    }

    /// `git --version`'s answer.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// Checks a repository URL at write time: `https://` always; `http://`
    /// too (credentials go over it only with `allow_insecure_http`);
    /// absolute paths and `file://` only with `allow_local`; never user
    /// info, SSH, other schemes, queries. The error says what to do.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        url::parse(url, self.inner.cfg.allow_local).map(|_| ())
    }

    /// The normalized form of a repository URL (lowercase host, no
    /// trailing `/` or `.git`), as caches and comparisons use it; `None`
    /// for a URL promoflow would refuse.
    pub fn normalize(&self, url: &str) -> Option<String> {
        url::parse(url, self.inner.cfg.allow_local)
            .ok()
            .map(|u| u.normalized)
    }

    /// Fetches `branch` (empty: the remote's default branch) into the
    /// cached repository of `url`; returns the branch and its tip.
    pub async fn tip(&self, url: &str, branch: &str) -> Result<Tip, GitError> {
        let repo = self.repo(url)?;
        let branch = self.branch(&repo, branch).await?;
        let sha = self.fetch(&repo, &branch).await?;
        Ok(Tip { branch, sha })
    }

    /// Finds `commit` (a full or abbreviated id) on `branch` of `url`: the
    /// branch's tip or one of its ancestors, with its full id. A commit
    /// that exists but is not on the branch (an unmerged branch, say) is
    /// refused: promoting it would promote something the trigger
    /// environment never ran.
    pub async fn commit_on_branch(
        &self,
        url: &str,
        branch: &str,
        commit: &str,
    ) -> Result<Tip, GitError> {
        url::check_sha(commit).map_err(GitError::Invalid)?;
        let tip = self.tip(url, branch).await?;
        let repo = self.repo(url)?;
        // Fetches every branch when the commit is not among the ones the
        // tip brought, so "not on the branch" and "no such commit" differ.
        let git_dir = self.ensure_commit(&repo, commit).await?;
        let spec = format!("{commit}^{{commit}}");
        let out = self
            .run(
                self.inner
                    .invocation(Some(&git_dir), ["rev-parse", "--verify", "--quiet", &spec]),
            )
            .await?;
        let full = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.success || full.is_empty() {
            return Err(GitError::NotFound(format!(
                "commit {commit} not found on branch {} of {}",
                tip.branch, repo.raw
            )));
        }
        if !self.is_ancestor(url, &full, &tip.sha).await? {
            return Err(GitError::NotFound(format!(
                "commit {commit} is not on branch {} of {}",
                tip.branch, repo.raw
            )));
        }
        Ok(Tip {
            branch: tip.branch,
            sha: full,
        })
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors in the
    /// repository at `url` (`git merge-base --is-ancestor`): a later commit
    /// that contains a promoted one deploys it too. Both are full or
    /// abbreviated ids, fetched into the cache when missing; a commit the
    /// repository does not have is `NotFound`.
    pub async fn is_ancestor(
        &self,
        url: &str,
        ancestor: &str,
        descendant: &str,
    ) -> Result<bool, GitError> {
        url::check_sha(ancestor).map_err(GitError::Invalid)?;
        url::check_sha(descendant).map_err(GitError::Invalid)?;
        let repo = self.repo(url)?;
        self.ensure_commit(&repo, ancestor).await?;
        let git_dir = self.ensure_commit(&repo, descendant).await?;
        let out = self
            .run(self.inner.invocation(
                Some(&git_dir),
                ["merge-base", "--is-ancestor", ancestor, descendant],
            ))
            .await?;
        // Exit 1 without a word: not an ancestor; anything said is an error.
        if out.success {
            Ok(true)
        } else if out.stderr.trim().is_empty() {
            Ok(false)
        } else {
            Err(out.error())
        }
    }

    /// The regular files under `dir` ("" = the root) at `commit`, by path
    /// relative to `dir`. A missing directory has no files. Symbolic links
    /// and submodules are left out. At most [`MAX_FILES`] files and
    /// [`MAX_DIR_BYTES`] bytes.
    pub async fn read_dir(
        &self,
        url: &str,
        commit: &str,
        dir: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, GitError> {
        let repo = self.repo(url)?;
        let dir = url::check_repo_path(dir, true).map_err(GitError::Invalid)?;
        url::check_sha(commit).map_err(GitError::Invalid)?;
        let git_dir = self.ensure_commit(&repo, commit).await?;
        Ok(self.read_files(&git_dir, commit, &dir, &repo).await?.1)
    }

    /// The file at `path` of `commit`; `None` when there is none.
    pub async fn read_file(
        &self,
        url: &str,
        commit: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, GitError> {
        let repo = self.repo(url)?;
        let path = url::check_repo_path(path, false).map_err(GitError::Invalid)?;
        url::check_sha(commit).map_err(GitError::Invalid)?;
        let git_dir = self.ensure_commit(&repo, commit).await?;
        let spec = format!("{commit}:{path}");
        let out = self
            .run(
                self.inner
                    .invocation(Some(&git_dir), ["cat-file", "--batch-check"])
                    .stdin(format!("{spec}\n").into_bytes()),
            )
            .await?
            .ok()?;
        let line = String::from_utf8_lossy(&out);
        let mut fields = line.split_whitespace();
        let (sha, kind, size) = (fields.next(), fields.next(), fields.next());
        match (sha, kind, size.and_then(|s| s.parse::<u64>().ok())) {
            (Some(sha), Some("blob"), Some(size)) => {
                if size > MAX_FILE_BYTES {
                    return Err(too_big(&path, size));
                }
                let sha = sha.to_string();
                Ok(self.cat_blobs(&git_dir, &[sha]).await?.pop().flatten())
            }
            (Some(_), Some(kind), Some(_)) => Err(GitError::Invalid(format!(
                "{path} in {} is a {}, not a file",
                repo.raw,
                if kind == "tree" { "directory" } else { kind }
            ))),
            _ => Ok(None),
        }
    }

    /// Author, author email, date and message of `sha`.
    pub async fn commit_info(&self, url: &str, sha: &str) -> Result<CommitInfo, GitError> {
        let repo = self.repo(url)?;
        url::check_sha(sha).map_err(GitError::Invalid)?;
        let git_dir = self.ensure_commit(&repo, sha).await?;
        let out = self
            .run(self.inner.invocation(
                Some(&git_dir),
                [
                    "log",
                    "-1",
                    "--no-show-signature",
                    "--format=%H%x00%an%x00%ae%x00%aI%x00%B",
                    sha,
                    "--",
                ],
            ))
            .await?
            .ok()?;
        let text = String::from_utf8_lossy(&out);
        let mut parts = text.splitn(5, '\0');
        let mut next = || parts.next().unwrap_or_default().to_string();
        Ok(CommitInfo {
            sha: next(),
            author: next(),
            author_email: next(),
            date: next(),
            message: next().trim_end().to_string(),
        })
    }

    /// The commits reachable from `to` but not from `since` that changed a
    /// file under `dir` ("" = anywhere), newest first, at most
    /// [`MAX_CHANGES`], with their trailers. Both must be in the cache
    /// already (`to` from [`Git::tip`]); a `since` the repository no longer
    /// has (its history was rewritten) counts as none: then every commit of
    /// `to` that changed `dir` is listed.
    pub async fn changes_under(
        &self,
        url: &str,
        since: Option<&str>,
        to: &str,
        dir: &str,
    ) -> Result<Vec<Change>, GitError> {
        let repo = self.repo(url)?;
        let dir = url::check_repo_path(dir, true).map_err(GitError::Invalid)?;
        url::check_sha(to).map_err(GitError::Invalid)?;
        let git_dir = self.ensure_commit(&repo, to).await?;
        let mut since = since;
        if let Some(s) = since {
            url::check_sha(s).map_err(GitError::Invalid)?;
            match self.ensure_commit(&repo, s).await {
                Ok(_) => {}
                Err(GitError::NotFound(_)) => {
                    tracing::info!(repo = %repo.normalized, commit = %s, "the last seen commit is gone (history rewritten?): looking at the whole history");
                    since = None;
                }
                Err(e) => return Err(e),
            }
        }
        let max = format!("--max-count={MAX_CHANGES}");
        let exclude = since.map(|s| format!("^{s}"));
        let mut args = vec![
            "log",
            "-z",
            &max,
            "--no-show-signature",
            "--format=%H%x01%(trailers:only,unfold)",
            to,
        ];
        args.extend(exclude.as_deref());
        args.push("--");
        if !dir.is_empty() {
            args.push(&dir);
        }
        // A directory named like pathspec magic (`:(glob)…`) is a name.
        let inv = self
            .inner
            .invocation(Some(&git_dir), args)
            .env("GIT_LITERAL_PATHSPECS", "1");
        let out = self.run(inv).await?.ok()?;
        Ok(out
            .split(|b| *b == 0)
            .filter_map(|record| {
                let record = String::from_utf8_lossy(record);
                let (sha, block) = record.split_once('\x01')?;
                Some(Change {
                    sha: sha.trim().to_string(),
                    trailers: parse_trailers(block),
                })
            })
            .collect())
    }

    /// Writes the edit of `edit_dir` as one commit on `branch` (empty: the
    /// default branch) of `url` with `message` and `trailers`, or adopts
    /// the commit a previous run made; see the module documentation.
    pub async fn commit_and_push(
        &self,
        url: &str,
        branch: &str,
        edit_dir: &str,
        message: &str,
        trailers: &[(String, String)],
        edit: &EditFn<'_>,
    ) -> Result<Pushed, GitError> {
        let repo = self.repo(url)?;
        let edit_dir = url::check_repo_path(edit_dir, true).map_err(GitError::Invalid)?;
        let message = commit_message(message, trailers)?;
        let branch = self.branch(&repo, branch).await?;
        let lock = self
            .inner
            .lock(format!("commit\0{}\0{branch}", repo.normalized));
        let _guard = lock.lock().await;
        let key = format!("{}\0{branch}", repo.normalized);
        // The tip this process pushed last, when it did: the first attempt
        // builds on it without fetching (see `Inner::pushed`).
        let mut pushed = self.inner.take_pushed(&key);
        let mut delay = FIRST_BACKOFF;
        let mut attempt = 0;
        while attempt < MAX_PUSH_ATTEMPTS {
            let optimistic = pushed.take();
            let (tip, adoptable) = match &optimistic {
                Some(tip) if trailers.is_empty() => (tip.clone(), None),
                Some(tip) => self.find_adoptable(&repo, &branch, tip, trailers).await?,
                None if trailers.is_empty() => (self.fetch(&repo, &branch).await?, None),
                None => {
                    self.fetch_into(&repo, &fetch_spec(&branch)).await?;
                    let rev = format!("{}^{{commit}}", cached_ref(&branch));
                    self.find_adoptable(&repo, &branch, &rev, trailers).await?
                }
            };
            // Only a push checks an unfetched tip (its lease): "adopted" and
            // "no changes" are answered from a fetched one.
            if let Some(sha) = adoptable {
                if optimistic.is_some() {
                    continue;
                }
                tracing::debug!(repo = %repo.normalized, %branch, %sha, "adopting the commit already made");
                return Ok(Pushed::Adopted { sha });
            }
            let Some((sha, files)) = self
                .make_commit(&repo, &branch, &tip, &edit_dir, &message, edit)
                .await?
            else {
                if optimistic.is_some() {
                    continue;
                }
                return Ok(Pushed::NoChanges { tip });
            };
            attempt += 1;
            match self.push(&repo, &branch, &tip, &sha).await? {
                PushResult::Pushed => {
                    tracing::debug!(repo = %repo.normalized, %branch, %sha, attempt, "pushed");
                    self.inner.set_pushed(key, sha.clone());
                    return Ok(Pushed::Committed { sha, files });
                }
                PushResult::Moved(reason) => {
                    tracing::debug!(
                        repo = %repo.normalized, %branch, attempt, %reason,
                        "the branch moved before the push; re-applying the edit on its new tip"
                    );
                    // A stale remembered tip is no contention: fetch at once.
                    if optimistic.is_none() && attempt < MAX_PUSH_ATTEMPTS {
                        tokio::time::sleep(jitter(delay)).await;
                        delay = (delay.mul_f64(1.5)).min(MAX_BACKOFF);
                    }
                }
            }
        }
        Err(GitError::Conflict(format!(
            "branch {branch} of {} kept moving: {MAX_PUSH_ATTEMPTS} pushes were rejected because other commits landed first; try again",
            repo.raw
        )))
    }

    /// Writes the edit of `edit_dir` as one commit on the tip of `base`
    /// (empty: the default branch) of `url` and pushes it to the branch
    /// `head`, which promoflow owns (a pull request's head). The push is a
    /// `--force-with-lease` against the head's value read just before (or
    /// "must not exist"), so two writers cannot clobber each other: the
    /// loser reads again. A head already holding the same tree on top of
    /// the same base tip is kept as it is (a re-run pushes nothing).
    #[allow(clippy::too_many_arguments)]
    pub async fn push_branch(
        &self,
        url: &str,
        base: &str,
        head: &str,
        edit_dir: &str,
        message: &str,
        trailers: &[(String, String)],
        edit: &EditFn<'_>,
    ) -> Result<BranchPush, GitError> {
        let repo = self.repo(url)?;
        let edit_dir = url::check_repo_path(edit_dir, true).map_err(GitError::Invalid)?;
        url::check_branch(head).map_err(GitError::Invalid)?;
        let message = commit_message(message, trailers)?;
        let base = self.branch(&repo, base).await?;
        let lock = self
            .inner
            .lock(format!("commit\0{}\0{head}", repo.normalized));
        let _guard = lock.lock().await;
        let git_dir = self.inner.repo_dir(&repo);
        let mut delay = FIRST_BACKOFF;
        for attempt in 1..=MAX_PUSH_ATTEMPTS {
            let tip = self.fetch(&repo, &base).await?;
            let Some((sha, _)) = self
                .make_commit(&repo, head, &tip, &edit_dir, &message, edit)
                .await?
            else {
                return Ok(BranchPush::NoChanges { tip });
            };
            let current = self.remote_branch(&repo, head).await?;
            if let Some(current) = &current {
                self.fetch(&repo, head).await?;
                if self.same_change(&git_dir, current, &sha).await? {
                    return Ok(BranchPush::Ready {
                        sha: current.clone(),
                        pushed: false,
                    });
                }
            }
            let expected = current.unwrap_or_default();
            match self.push(&repo, head, &expected, &sha).await? {
                PushResult::Pushed => {
                    tracing::debug!(repo = %repo.normalized, %head, %sha, attempt, "pushed the head branch");
                    return Ok(BranchPush::Ready { sha, pushed: true });
                }
                PushResult::Moved(reason) => {
                    tracing::debug!(repo = %repo.normalized, %head, attempt, %reason, "the head branch moved; reading it again");
                    if attempt < MAX_PUSH_ATTEMPTS {
                        tokio::time::sleep(jitter(delay)).await;
                        delay = (delay.mul_f64(1.5)).min(MAX_BACKOFF);
                    }
                }
            }
        }
        Err(GitError::Conflict(format!(
            "branch {head} of {} kept moving: {MAX_PUSH_ATTEMPTS} pushes were rejected; try again",
            repo.raw
        )))
    }

    /// The credentials entry covering `url` that may be used for it (see
    /// `Inner::credential`), for talking to its forge's API with the same
    /// token. `None` also for local repositories.
    pub fn credential_for(&self, url: &str) -> Result<Option<Credential>, GitError> {
        let repo = self.repo(url)?;
        Ok(self.inner.credential(&repo).cloned())
    }

    /// The credentials entry covering the API at `url` (an Argo CD
    /// server), matched like a repository's (scheme, host, port, path
    /// prefix) and under the same http:// rule; `None` when no entry
    /// covers it or `url` is not an http(s) URL.
    pub fn credential_for_api(&self, url: &str) -> Option<Credential> {
        let parsed = ::url::Url::parse(url).ok()?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return None;
        }
        self.inner.credential_at(&parsed).cloned()
    }

    /// Whether credentials may be sent over plain `http://`.
    pub fn allow_insecure_http(&self) -> bool {
        self.inner.cfg.allow_insecure_http
    }

    // ------------------------------------------------------------ helpers

    /// The tip of `branch` on the remote, `None` when it does not exist.
    async fn remote_branch(
        &self,
        repo: &RepoUrl,
        branch: &str,
    ) -> Result<Option<String>, GitError> {
        let refname = format!("refs/heads/{branch}");
        let inv = self.inner.remote_invocation(
            None,
            repo,
            ["ls-remote", "--", repo.raw.as_str(), refname.as_str()],
        )?;
        let out = self.run(inv).await?.ok()?;
        let text = String::from_utf8_lossy(&out);
        Ok(text.lines().find_map(|l| {
            let (sha, name) = l.split_once('\t')?;
            (name.trim() == refname).then(|| sha.trim().to_string())
        }))
    }

    /// Whether commits `a` and `b` have the same tree and the same parents.
    async fn same_change(&self, git_dir: &Path, a: &str, b: &str) -> Result<bool, GitError> {
        let mut seen = Vec::new();
        for sha in [a, b] {
            let out = self
                .run(
                    self.inner
                        .invocation(Some(git_dir), ["log", "-1", "--format=%T %P", sha, "--"]),
                )
                .await?;
            if !out.success {
                return Ok(false);
            }
            seen.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        Ok(seen[0] == seen[1])
    }

    fn repo(&self, url: &str) -> Result<RepoUrl, GitError> {
        url::parse(url, self.inner.cfg.allow_local).map_err(GitError::Invalid)
    }

    async fn run(&self, inv: Invocation) -> Result<Output, GitError> {
        cmd::run(inv, self.inner.cfg.timeout).await
    }

    /// `branch` checked, or the remote's default branch when empty.
    async fn branch(&self, repo: &RepoUrl, branch: &str) -> Result<String, GitError> {
        if !branch.is_empty() {
            url::check_branch(branch).map_err(GitError::Invalid)?;
            return Ok(branch.to_string());
        }
        let inv = self.inner.remote_invocation(
            None,
            repo,
            ["ls-remote", "--symref", "--", repo.raw.as_str(), "HEAD"],
        )?;
        let out = self.run(inv).await?.ok()?;
        let text = String::from_utf8_lossy(&out);
        text.lines()
            .find_map(|l| {
                l.strip_prefix("ref: refs/heads/")
                    .and_then(|rest| rest.strip_suffix("\tHEAD"))
            })
            .map(str::to_string)
            .ok_or_else(|| {
                GitError::NotFound(format!(
                    "cannot tell the default branch of {}: its HEAD names no branch (is it empty?); set the branch",
                    repo.raw
                ))
            })
    }

    /// Fetches `branch` into the cache; returns its tip.
    async fn fetch(&self, repo: &RepoUrl, branch: &str) -> Result<String, GitError> {
        let refname = cached_ref(branch);
        let git_dir = self.fetch_into(repo, &fetch_spec(branch)).await?;
        let out = self
            .run(self.inner.invocation(
                Some(&git_dir),
                [
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("{refname}^{{commit}}"),
                ],
            ))
            .await?;
        if !out.success {
            return Err(GitError::NotFound(format!(
                "branch {branch} not found in {}",
                repo.raw
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs one fetch of `refspec` into the cached repository (created on
    /// first use), under the repository's fetch lock.
    async fn fetch_into(&self, repo: &RepoUrl, refspec: &str) -> Result<PathBuf, GitError> {
        let lock = self.inner.lock(format!("fetch\0{}", repo.normalized));
        let _guard = lock.lock().await;
        let git_dir = self.ensure_repo(repo).await?;
        let inv = self.inner.remote_invocation(
            Some(&git_dir),
            repo,
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--no-recurse-submodules",
                "--",
                repo.raw.as_str(),
                refspec,
            ],
        )?;
        let out = self.run(inv).await?;
        if !out.success {
            let err = out.error();
            return Err(match err {
                GitError::NotFound(m) if m.starts_with("branch not found") => {
                    GitError::NotFound(format!(
                        "branch {} not found in {}",
                        refspec
                            .split(':')
                            .next()
                            .and_then(|s| s.strip_prefix("+refs/heads/"))
                            .unwrap_or(refspec),
                        repo.raw
                    ))
                }
                other => other,
            });
        }
        Ok(git_dir)
    }

    /// The cached bare repository of `repo`, created (atomically, by
    /// rename) when missing.
    async fn ensure_repo(&self, repo: &RepoUrl) -> Result<PathBuf, GitError> {
        let dir = self.inner.repo_dir(repo);
        if dir.join("HEAD").exists() {
            return Ok(dir);
        }
        let tmp = self
            .inner
            .repos
            .join(format!(".init-{}", uuid::Uuid::new_v4().simple()));
        let tmp_str = tmp.to_string_lossy().to_string();
        self.run(
            self.inner
                .invocation(None, ["init", "--bare", "--quiet", "--", &tmp_str]),
        )
        .await?
        .ok()?;
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.join("HEAD").exists() {
                return Err(GitError::Failed(format!(
                    "cannot create the git cache {}: {e}",
                    dir.display()
                )));
            }
        }
        Ok(dir)
    }

    /// The cached repository, holding `commit` (fetching every branch once
    /// when it does not yet).
    async fn ensure_commit(&self, repo: &RepoUrl, commit: &str) -> Result<PathBuf, GitError> {
        let git_dir = self.inner.repo_dir(repo);
        let has = |git_dir: PathBuf| async move {
            if !git_dir.join("HEAD").exists() {
                return Ok(false);
            }
            let spec = format!("{commit}^{{commit}}");
            let out = self
                .run(
                    self.inner
                        .invocation(Some(&git_dir), ["cat-file", "-e", &spec]),
                )
                .await?;
            Ok::<_, GitError>(out.success)
        };
        if has(git_dir.clone()).await? {
            return Ok(git_dir);
        }
        self.fetch_into(repo, "+refs/heads/*:refs/promoflow/heads/*")
            .await?;
        if has(git_dir.clone()).await? {
            return Ok(git_dir);
        }
        Err(GitError::NotFound(format!(
            "commit {commit} not found in {}",
            repo.raw
        )))
    }

    /// The regular files under `dir` at `commit`: their tree entries, and
    /// their contents (both by path relative to `dir`).
    async fn read_files(
        &self,
        git_dir: &Path,
        commit: &str,
        dir: &str,
        repo: &RepoUrl,
    ) -> Result<(BTreeMap<String, Entry>, BTreeMap<String, Vec<u8>>), GitError> {
        let entries = self.list(git_dir, commit, dir, repo).await?;
        let blobs: Vec<String> = entries.values().map(|e| e.sha.clone()).collect();
        let contents = self.cat_blobs(git_dir, &blobs).await?;
        let files = entries
            .keys()
            .cloned()
            .zip(contents.into_iter().map(Option::unwrap_or_default))
            .collect();
        Ok((entries, files))
    }

    /// The regular files under `dir` at `commit`, relative to `dir`.
    async fn list(
        &self,
        git_dir: &Path,
        commit: &str,
        dir: &str,
        repo: &RepoUrl,
    ) -> Result<BTreeMap<String, Entry>, GitError> {
        // One `ls-tree` answers all three cases: with `dir` as its
        // pathspec (matched literally, by whole path components) it lists
        // the files under the directory by full path, the entry itself
        // when `dir` is not a directory, and nothing when it is missing.
        let mut args = vec!["ls-tree", "-r", "-z", "--long", "--full-tree", commit];
        if !dir.is_empty() {
            args.extend(["--", dir]);
        }
        let out = self
            .run(self.inner.invocation(Some(git_dir), args))
            .await?
            .ok()?;
        let prefix = format!("{dir}/");
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let record = String::from_utf8_lossy(record);
            let Some((meta, full)) = record.split_once('\t') else {
                continue;
            };
            let path = if dir.is_empty() {
                full
            } else if let Some(rel) = full.strip_prefix(&prefix) {
                rel
            } else {
                return Err(GitError::Invalid(format!(
                    "{dir} in {} is a file, not a directory",
                    repo.raw
                )));
            };
            let mut meta = meta.split_whitespace();
            let (Some(mode), Some(kind), Some(sha), Some(size)) =
                (meta.next(), meta.next(), meta.next(), meta.next())
            else {
                continue;
            };
            if kind != "blob" || !(mode == "100644" || mode == "100755") {
                continue;
            }
            let size = size.parse::<u64>().unwrap_or(0);
            if size > MAX_FILE_BYTES {
                return Err(too_big(&join(dir, path), size));
            }
            total += size;
            if files.len() >= MAX_FILES || total > MAX_DIR_BYTES {
                return Err(GitError::Invalid(format!(
                    "{} in {} holds more than {MAX_FILES} files or {} MiB; promoflow reads at most that",
                    if dir.is_empty() {
                        "the repository root"
                    } else {
                        dir
                    },
                    repo.raw,
                    MAX_DIR_BYTES >> 20
                )));
            }
            files.insert(
                path.to_string(),
                Entry {
                    mode: mode.to_string(),
                    sha: sha.to_string(),
                },
            );
        }
        Ok(files)
    }

    /// The contents of `blobs`, in order (`None` for a missing one), in
    /// one `cat-file --batch`.
    async fn cat_blobs(
        &self,
        git_dir: &Path,
        blobs: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, GitError> {
        if blobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut input = blobs.join("\n");
        input.push('\n');
        let out = self
            .run(
                self.inner
                    .invocation(Some(git_dir), ["cat-file", "--batch"])
                    .stdin(input.into_bytes()),
            )
            .await?
            .ok()?;
        let mut rest = out.as_slice();
        let mut result = Vec::with_capacity(blobs.len());
        for _ in blobs {
            let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
                return Err(GitError::Failed("git cat-file: truncated output".into()));
            };
            let header = String::from_utf8_lossy(&rest[..nl]).to_string();
            rest = &rest[nl + 1..];
            let fields: Vec<&str> = header.split_whitespace().collect();
            match fields.as_slice() {
                [_, _, size] => {
                    let size: usize = size.parse().unwrap_or(0);
                    if rest.len() < size {
                        return Err(GitError::Failed("git cat-file: truncated output".into()));
                    }
                    result.push(Some(rest[..size].to_vec()));
                    rest = &rest[(size + 1).min(rest.len())..];
                }
                _ => result.push(None),
            }
        }
        Ok(result)
    }

    /// The tip `rev` names (of `branch`), and the newest commit among the last
    /// [`ADOPT_SEARCH_DEPTH`] reachable from it whose trailers include
    /// every one of `trailers`. All ancestors count, not only first
    /// parents: someone's `git pull` merge may have made the promotion
    /// commit a second parent. The tip is the first commit of the same
    /// `git log` (one process fewer per attempt than resolving it apart).
    async fn find_adoptable(
        &self,
        repo: &RepoUrl,
        branch: &str,
        rev: &str,
        trailers: &[(String, String)],
    ) -> Result<(String, Option<String>), GitError> {
        let git_dir = self.inner.repo_dir(repo);
        let depth = format!("--max-count={ADOPT_SEARCH_DEPTH}");
        let out = self
            .run(self.inner.invocation(
                Some(&git_dir),
                [
                    "log",
                    "-z",
                    &depth,
                    "--no-show-signature",
                    "--format=%H%x01%(trailers:only,unfold)",
                    rev,
                    "--",
                ],
            ))
            .await?;
        if !out.success {
            return Err(GitError::NotFound(format!(
                "branch {branch} not found in {}",
                repo.raw
            )));
        }
        let mut tip = None;
        for record in out.stdout.split(|b| *b == 0) {
            let record = String::from_utf8_lossy(record);
            let Some((sha, block)) = record.split_once('\x01') else {
                continue;
            };
            let sha = sha.trim().to_string();
            tip.get_or_insert_with(|| sha.clone());
            let found = parse_trailers(block);
            let all = trailers.iter().all(|(k, v)| {
                found
                    .iter()
                    .any(|(fk, fv)| fk.eq_ignore_ascii_case(k) && fv == v.trim())
            });
            if all {
                let tip = tip.unwrap_or_else(|| sha.clone());
                return Ok((tip, Some(sha)));
            }
        }
        let tip = tip.ok_or_else(|| {
            GitError::NotFound(format!("branch {branch} not found in {}", repo.raw))
        })?;
        Ok((tip, None))
    }

    /// Applies `edit` to the files under `edit_dir` at `tip` and writes the
    /// result as a commit on top of it (not pushed). `None`: nothing
    /// changed.
    async fn make_commit(
        &self,
        repo: &RepoUrl,
        branch: &str,
        tip: &str,
        edit_dir: &str,
        message: &str,
        edit: &EditFn<'_>,
    ) -> Result<Option<(String, Vec<String>)>, GitError> {
        let git_dir = &self.inner.repo_dir(repo);
        let (entries, files) = self.read_files(git_dir, tip, edit_dir, repo).await?;
        let wanted = edit(&files).map_err(GitError::Edit)?;
        let mut changes: BTreeMap<String, (String, Vec<u8>)> = BTreeMap::new();
        for (path, bytes) in wanted {
            let rel = url::check_repo_path(&path, false)
                .map_err(|e| GitError::Edit(format!("the edit wrote a bad path: {e}")))?;
            if files.get(&rel) == Some(&bytes) {
                continue;
            }
            let mode = entries
                .get(&rel)
                .map_or_else(|| "100644".to_string(), |e| e.mode.clone());
            changes.insert(join(edit_dir, &rel), (mode, bytes));
        }
        if changes.is_empty() {
            return Ok(None);
        }
        // One `git fast-import` writes the blobs, the trees and the commit
        // (five plumbing processes before: hash-object per file,
        // read-tree, update-index and write-tree on a temporary index,
        // commit-tree). It needs a ref to put the commit on: one per
        // branch, which the caller's lock on (repository, branch) keeps to
        // one writer, and which keeps the commit reachable until pushed.
        let (name, email) = (&self.inner.cfg.author_name, &self.inner.cfg.author_email);
        let work_ref = format!("refs/promoflow/commits/{branch}");
        let mut stream = Vec::new();
        let data = |out: &mut Vec<u8>, bytes: &[u8]| {
            out.extend_from_slice(format!("data {}\n", bytes.len()).as_bytes());
            out.extend_from_slice(bytes);
            out.push(b'\n');
        };
        stream.extend_from_slice(
            format!(
                "commit {work_ref}\nmark :1\nauthor {name} <{email}> now\ncommitter {name} <{email}> now\n"
            )
            .as_bytes(),
        );
        data(&mut stream, message.as_bytes());
        stream.extend_from_slice(format!("from {tip}\n").as_bytes());
        for (path, (mode, bytes)) in &changes {
            stream.extend_from_slice(format!("M {mode} inline {}\n", quote_path(path)).as_bytes());
            data(&mut stream, bytes);
        }
        stream.extend_from_slice(b"\nget-mark :1\n");
        let out = self
            .run(
                self.inner
                    .invocation(
                        Some(git_dir),
                        [
                            // Git's default, set here because it matters: a
                            // commit's few objects are written loose, not as
                            // one more pack per commit in the cache.
                            "-c",
                            "fastimport.unpackLimit=100",
                            "fast-import",
                            "--quiet",
                            "--force",
                            "--date-format=now",
                        ],
                    )
                    .stdin(stream),
            )
            .await?
            .ok()?;
        let sha = String::from_utf8_lossy(&out).trim().to_string();
        Ok(Some((sha, changes.into_keys().collect())))
    }

    /// Pushes `sha` to `branch`, only if the branch is still at `tip`.
    async fn push(
        &self,
        repo: &RepoUrl,
        branch: &str,
        tip: &str,
        sha: &str,
    ) -> Result<PushResult, GitError> {
        let git_dir = self.inner.repo_dir(repo);
        let target = format!("refs/heads/{branch}");
        let lease = format!("--force-with-lease={target}:{tip}");
        let refspec = format!("{sha}:{target}");
        let inv = self.inner.remote_invocation(
            Some(&git_dir),
            repo,
            [
                "push",
                "--porcelain",
                "--no-verify",
                &lease,
                "--",
                repo.raw.as_str(),
                &refspec,
            ],
        )?;
        let out = self.run(inv).await?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let line = stdout.lines().find(|l| {
            l.split('\t')
                .nth(1)
                .is_some_and(|r| r.ends_with(&format!(":{target}")))
        });
        match line {
            Some(line) if !line.starts_with('!') => Ok(PushResult::Pushed),
            Some(line) => {
                let reason = cmd::scrub(line.split('\t').nth(2).unwrap_or(line), &[]);
                let lower = reason.to_ascii_lowercase();
                let moved = [
                    "fetch first",
                    "non-fast-forward",
                    "stale info",
                    "cannot lock ref",
                    "incorrect old value",
                    "failed to update ref",
                ]
                .iter()
                .any(|p| lower.contains(p));
                if moved {
                    Ok(PushResult::Moved(reason))
                } else {
                    Err(GitError::Rejected(format!(
                        "the push to branch {branch} of {} was rejected: {reason}",
                        repo.raw
                    )))
                }
            }
            None if out.success => Ok(PushResult::Pushed),
            None => Err(out.error()),
        }
    }
}

enum PushResult {
    Pushed,
    /// The branch moved since the fetch.
    Moved(String),
}

impl Inner {
    fn take_pushed(&self, key: &str) -> Option<String> {
        let mut pushed = self.pushed.lock().unwrap_or_else(|e| e.into_inner());
        pushed.remove(key)
    }

    fn set_pushed(&self, key: String, sha: String) {
        let mut pushed = self.pushed.lock().unwrap_or_else(|e| e.into_inner());
        if pushed.len() > 1024 {
            pushed.clear();
        }
        pushed.insert(key, sha);
    }

    fn repo_dir(&self, repo: &RepoUrl) -> PathBuf {
        self.repos.join(url::cache_name(&repo.normalized))
    }

    fn lock(&self, key: String) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() > 1024 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(key).or_default().clone()
    }

    /// `git <hardening> <args>` in `git_dir` (or the private home), for a
    /// command that does not talk to a remote.
    fn invocation<'a>(
        &self,
        git_dir: Option<&Path>,
        args: impl IntoIterator<Item = &'a str>,
    ) -> Invocation {
        self.build(git_dir, None, args)
    }

    /// The same for a command that talks to `remote`, with the credential
    /// of `remote` when one matches and may be sent (its token read now).
    fn remote_invocation<'a>(
        &self,
        git_dir: Option<&Path>,
        remote: &RepoUrl,
        args: impl IntoIterator<Item = &'a str>,
    ) -> Result<Invocation, GitError> {
        let token = match self.credential(remote) {
            Some(cred) => Some((cred.username.as_str(), cred.token()?)),
            None => None,
        };
        let mut inv = self.build(git_dir, Some(remote), args);
        if let Some((user, token)) = token {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
            let header = format!("Authorization: Basic {basic}");
            inv.env.push(("GIT_CONFIG_COUNT".into(), "1".into()));
            inv.env.push((
                "GIT_CONFIG_KEY_0".into(),
                format!("http.{}.extraHeader", remote.raw),
            ));
            inv.env.push(("GIT_CONFIG_VALUE_0".into(), header.clone()));
            inv.secrets = vec![header, basic, token];
            // A redirect must not carry the header to another host.
            inv.args.splice(
                0..0,
                ["-c".to_string(), "http.followRedirects=false".to_string()],
            );
        }
        Ok(inv)
    }

    fn build<'a>(
        &self,
        git_dir: Option<&Path>,
        remote: Option<&RepoUrl>,
        args: impl IntoIterator<Item = &'a str>,
    ) -> Invocation {
        let local = if self.cfg.allow_local {
            "always"
        } else {
            "never"
        };
        let mut env: Vec<(String, String)> = vec![
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
            ("HOME".into(), self.home.display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                self.home.join(".config").display().to_string(),
            ),
            (
                "GIT_HTTP_LOW_SPEED_LIMIT".into(),
                LOW_SPEED_LIMIT.to_string(),
            ),
            (
                "GIT_HTTP_LOW_SPEED_TIME".into(),
                LOW_SPEED_TIME.as_secs().to_string(),
            ),
            ("LC_ALL".into(), "C".into()),
            ("LANG".into(), "C".into()),
        ];
        if let Some(dir) = git_dir {
            env.push(("GIT_DIR".into(), dir.display().to_string()));
        }
        let mut argv: Vec<String> = [
            "core.hooksPath=/dev/null",
            "credential.helper=",
            "core.askPass=",
            "protocol.allow=never",
            "protocol.https.allow=always",
            "protocol.http.allow=always",
            &format!("protocol.file.allow={local}"),
            "gc.autoDetach=false",
            "maintenance.autoDetach=false",
            "core.fsmonitor=false",
            "submodule.recurse=false",
        ]
        .iter()
        .flat_map(|c| ["-c".to_string(), c.to_string()])
        .collect();
        argv.extend(args.into_iter().map(str::to_string));
        Invocation {
            args: argv,
            env,
            secrets: Vec::new(),
            stdin: None,
            cwd: git_dir.map_or_else(|| self.home.clone(), Path::to_path_buf),
            host: remote
                .filter(|r| r.transport != Transport::Local)
                .map(|r| r.host.clone()),
        }
    }

    /// The first credential matching `repo`, unless it would travel over
    /// plain http without `allow_insecure_http`.
    fn credential(&self, repo: &RepoUrl) -> Option<&Credential> {
        if repo.transport == Transport::Local {
            return None;
        }
        let parsed = ::url::Url::parse(&repo.raw).ok()?;
        self.credential_at(&parsed)
    }

    /// The first credential matching `url`, unless it would travel over
    /// plain http without `allow_insecure_http`.
    fn credential_at(&self, url: &::url::Url) -> Option<&Credential> {
        let cred = self.cfg.credentials.iter().find(|c| c.matches(url))?;
        if url.scheme() == "http" && !self.cfg.allow_insecure_http {
            tracing::debug!(
                host = url.host_str().unwrap_or_default(),
                "not sending credentials over http:// (allow insecure git http to send them)"
            );
            return None;
        }
        Some(cred)
    }
}

/// `message`, a blank line and the trailers, checked.
fn commit_message(message: &str, trailers: &[(String, String)]) -> Result<String, GitError> {
    let message = message.trim();
    if message.is_empty() || message.contains('\0') {
        return Err(GitError::Invalid(
            "the commit message is empty or contains a NUL byte".into(),
        ));
    }
    let mut text = format!("{message}\n");
    if !trailers.is_empty() {
        text.push('\n');
    }
    for (key, value) in trailers {
        let key_ok = !key.is_empty()
            && key.starts_with(|c: char| c.is_ascii_alphanumeric())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let value = value.trim();
        if !key_ok || value.is_empty() || value.contains(['\n', '\r', '\0']) {
            return Err(GitError::Invalid(format!(
                "the commit trailer {key:?}: {value:?} is not a `Key: value` line"
            )));
        }
        text.push_str(&format!("{key}: {value}\n"));
    }
    Ok(text)
}

/// The `Key: value` lines of a `%(trailers:only,unfold)` block, trimmed.
fn parse_trailers(block: &str) -> Vec<(String, String)> {
    block
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `path` as a fast-import path: C-style quoted, so no byte of it can be
/// read as a command.
fn quote_path(path: &str) -> String {
    let mut q = String::with_capacity(path.len() + 2);
    q.push('"');
    for c in path.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Where the cache keeps the fetched tip of a remote `branch`.
fn cached_ref(branch: &str) -> String {
    format!("refs/promoflow/heads/{branch}")
}

/// The refspec fetching `branch` into [`cached_ref`].
fn fetch_spec(branch: &str) -> String {
    format!("+refs/heads/{branch}:{}", cached_ref(branch))
}

fn join(dir: &str, path: &str) -> String {
    if dir.is_empty() {
        path.to_string()
    } else {
        format!("{dir}/{path}")
    }
}

fn too_big(path: &str, size: u64) -> GitError {
    GitError::Invalid(format!(
        "{path} is {size} bytes; promoflow reads files of at most {} MiB",
        MAX_FILE_BYTES >> 20
    ))
}

/// `delay` scaled by a random factor in [0.5, 1): retries of several
/// writers spread out instead of colliding again.
fn jitter(delay: Duration) -> Duration {
    let random = RandomState::new().build_hasher().finish();
    delay.mul_f64(0.5 + (random % 1000) as f64 / 2000.0)
}

#[cfg(test)]
mod tests;
