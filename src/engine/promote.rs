//! Git promotions: what a release promotes, resolved once at trigger from
//! the trigger application's commit, and the `COMMIT` action that writes it
//! into each target application's Git source.
//!
//! The values are read at trigger time into (file, normalized path, value)
//! triples and whole files, recorded on the release (`Release::promotion`),
//! so every environment of one release promotes the same thing even if the
//! trigger application moves on. Each target then gets exactly one commit,
//! `promote <product> <version> from <trigger> to <env>`, with the trailers
//! `Promoflow-Release` and `Promoflow-Environment`: a commit already on the
//! branch with both is adopted instead of writing a second one (a crash
//! between push and the step's success). Edits keep the target files byte
//! for byte except the promoted values (`domain::promotion::apply`).
//!
//! The `PULL_REQUEST` action makes the same edit as a commit on a branch of
//! its own, `promoflow/<release>/<env>`, and opens (or adopts) a pull
//! request from it ([`open_pull_request`]); the engine then waits for the
//! merge (`forge::wait_for_merge`).

use std::collections::BTreeMap;

use crate::domain::catalog::Application;
use crate::domain::gitops::{self, GitSource, Promotion, PromotionTemplate, WHOLE_FILE};
use crate::domain::promotion;
use crate::domain::release::{Artifact, Outcome};
use crate::error::{Error, Result};

use super::forge::{Forge, ForgeError, NewPullRequest, PrState, PullRequest};
use super::git::{BranchPush, Git, GitError, Pushed};

/// Most bytes of whole files a release may record (they travel into every
/// target): a promotion template names the values instead.
const MAX_PROMOTED_BYTES: usize = 1024 * 1024;

/// What a release promotes, read at trigger.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The trigger application's commit the values come from.
    pub source_commit: String,
    /// The version read from the template's version source, when it has one.
    pub version: Option<String>,
    pub promotion: Promotion,
}

/// A Git failure at trigger time, as the caller's problem or a passing one.
fn trigger_error(app: &Application, e: GitError) -> Error {
    match e {
        GitError::Timeout(_) | GitError::Failed(_) => Error::Unavailable(format!(
            "reading the Git source of {:?}: {e}; retry",
            app.name
        )),
        e => Error::FailedPrecondition(format!(
            "cannot read the Git source of application {:?} ({}): {e}",
            app.name,
            app.source
                .as_ref()
                .map(|s| s.repo_url.as_str())
                .unwrap_or_default()
        )),
    }
}

/// The path of `file` in the repository, under the application's directory.
fn in_dir(source: &GitSource, file: &str) -> String {
    if source.path.is_empty() {
        file.to_string()
    } else {
        format!("{}/{file}", source.path)
    }
}

fn text(file: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| {
        Error::FailedPrecondition(format!(
            "{file} is not UTF-8 text: promote it whole with \"*\" only if it is text"
        ))
    })
}

/// Reads what a release of `app`'s product promotes, at commit `at` of the
/// application's branch (empty: its tip).
pub(crate) async fn resolve(
    git: &Git,
    app: &Application,
    source: &GitSource,
    template: Option<&PromotionTemplate>,
    at: &str,
) -> Result<Resolved> {
    let err = |e| trigger_error(app, e);
    let tip = if at.is_empty() {
        git.tip(&source.repo_url, &source.branch).await
    } else {
        git.commit_on_branch(&source.repo_url, &source.branch, at)
            .await
    }
    .map_err(err)?;
    let url = &source.repo_url;
    let commit = tip.sha;
    let mut promotion = Promotion::default();
    let version = read_version(git, app, source, template, &commit).await?;
    let files = match template.map(|t| t.promotion.as_slice()) {
        Some(files) if !files.is_empty() => files,
        // No list: every file of the directory, whole.
        _ => {
            let all = git
                .read_dir(url, &commit, &source.path)
                .await
                .map_err(err)?;
            for (file, bytes) in all {
                let t = text(&file, bytes)?;
                promotion.files.insert(file, t);
            }
            check_size(&promotion)?;
            return Ok(Resolved {
                source_commit: commit,
                version,
                promotion,
            });
        }
    };
    for pf in files {
        let path = in_dir(source, &pf.file);
        let t = read_text(git, app, url, &commit, &path, "the promoted file").await?;
        if pf.json_paths.iter().any(|p| p == WHOLE_FILE) {
            promotion.files.insert(pf.file.clone(), t);
        } else {
            let values = promotion::resolve(&pf.file, &t, &pf.json_paths)
                .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
            promotion.values.extend(values);
        }
    }
    check_size(&promotion)?;
    Ok(Resolved {
        source_commit: commit,
        version,
        promotion,
    })
}

/// The version the template's version source holds at `commit`; `None`
/// when the template has no version source.
pub(crate) async fn read_version(
    git: &Git,
    app: &Application,
    source: &GitSource,
    template: Option<&PromotionTemplate>,
    commit: &str,
) -> Result<Option<String>> {
    let Some(vs) = template.and_then(|t| t.version_source.as_ref()) else {
        return Ok(None);
    };
    let path = in_dir(source, &vs.file);
    let url = &source.repo_url;
    let t = read_text(git, app, url, commit, &path, "the version source").await?;
    let found = promotion::read_scalar(&t, &vs.json_path)
        .map_err(|e| Error::FailedPrecondition(e.to_string()))?;
    found.map(Some).ok_or_else(|| {
        Error::FailedPrecondition(format!(
            "{} matches nothing in {path} at {}: the version cannot be read",
            vs.json_path,
            short(commit)
        ))
    })
}

/// The text of `path` at `commit`; a missing file is the caller's problem,
/// named as `what`.
async fn read_text(
    git: &Git,
    app: &Application,
    url: &str,
    commit: &str,
    path: &str,
    what: &str,
) -> Result<String> {
    let bytes = git
        .read_file(url, commit, path)
        .await
        .map_err(|e| trigger_error(app, e))?
        .ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "{what} {path} does not exist at {} of {url}",
                short(commit)
            ))
        })?;
    text(path, bytes)
}

fn check_size(p: &Promotion) -> Result<()> {
    let bytes: usize = p.files.values().map(String::len).sum();
    if bytes > MAX_PROMOTED_BYTES {
        return Err(Error::FailedPrecondition(format!(
            "the trigger application's files hold {bytes} bytes, more than a release promotes ({MAX_PROMOTED_BYTES}): name the promoted files and values in the product's promotion_template"
        )));
    }
    Ok(())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// What a COMMIT needs to know about its release and environment.
pub(crate) struct CommitRequest<'a> {
    pub release_id: &'a str,
    pub product: &'a str,
    pub version: &'a str,
    pub trigger_environment: &'a str,
    pub environment: &'a str,
    pub target: &'a Application,
    pub promotion: &'a Promotion,
}

/// The subject of a promotion commit.
pub(crate) fn subject(product: &str, version: &str, from: &str, to: &str) -> String {
    format!("promote {product} {version} from {from} to {to}")
}

/// Applies the release's values to the target files at a branch tip:
/// the files to write, or why the promotion cannot apply there.
fn edit(
    promotion: &Promotion,
    app: &str,
    files: &BTreeMap<String, Vec<u8>>,
) -> std::result::Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    for (file, content) in &promotion.files {
        if files.get(file).map(Vec::as_slice) != Some(content.as_bytes()) {
            out.push((file.clone(), content.clone().into_bytes()));
        }
    }
    let mut by_file: BTreeMap<&str, Vec<promotion::PromotedValue>> = BTreeMap::new();
    for v in &promotion.values {
        by_file.entry(v.file.as_str()).or_default().push(v.clone());
    }
    for (file, values) in by_file {
        let Some(bytes) = files.get(file) else {
            return Err(format!(
                "{file} does not exist in the directory of application {app:?}"
            ));
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| format!("{file} of application {app:?} is not UTF-8 text"))?;
        if let Some(changed) = promotion::apply(file, text, &values).map_err(|e| e.to_string())? {
            out.push((file.to_string(), changed.into_bytes()));
        }
    }
    Ok(out)
}

/// The COMMIT action for one environment: one commit with the promoted
/// values on the target application's branch (or the one already there for
/// this release and environment), or "no changes".
pub(crate) async fn commit(git: &Git, req: CommitRequest<'_>) -> Outcome {
    let Some(source) = &req.target.source else {
        return Outcome::Failed {
            message: format!(
                "application {:?} in {} has no Git source: the COMMIT action needs one (set Application.source, or use action NONE)",
                req.target.name, req.environment
            ),
        };
    };
    let message = subject(
        req.product,
        req.version,
        req.trigger_environment,
        req.environment,
    );
    let trailers = vec![
        ("Promoflow-Release".to_string(), req.release_id.to_string()),
        (
            "Promoflow-Environment".to_string(),
            req.environment.to_string(),
        ),
    ];
    let app = req.target.name.clone();
    let promotion = req.promotion;
    let edit = move |files: &BTreeMap<String, Vec<u8>>| edit(promotion, &app, files);
    let pushed = git
        .commit_and_push(
            &source.repo_url,
            &source.branch,
            &source.path,
            &message,
            &trailers,
            &edit,
        )
        .await;
    let branch = if source.branch.is_empty() {
        "the default branch"
    } else {
        source.branch.as_str()
    };
    match pushed {
        Ok(Pushed::Committed { sha, .. }) => Outcome::Succeeded {
            message: format!(
                "committed {} to {branch} of {}",
                short(&sha),
                source.repo_url
            ),
            outputs: Default::default(),
            artifact: Some(Artifact {
                url: gitops::commit_web_url(&source.repo_url, &sha),
                commit_sha: sha,
            }),
        },
        Ok(Pushed::Adopted { sha }) => Outcome::Succeeded {
            message: format!(
                "already committed as {} on {branch} of {}",
                short(&sha),
                source.repo_url
            ),
            outputs: Default::default(),
            artifact: Some(Artifact {
                url: gitops::commit_web_url(&source.repo_url, &sha),
                commit_sha: sha,
            }),
        },
        Ok(Pushed::NoChanges { .. }) => Outcome::Succeeded {
            message: format!(
                "no changes: {} already holds the promoted values",
                req.target.name
            ),
            outputs: Default::default(),
            artifact: None,
        },
        Err(e) => Outcome::Failed {
            message: e.to_string(),
        },
    }
}

/// The branch promoflow owns for the pull request of one release and
/// environment.
pub(crate) fn pr_branch(release_id: &str, environment: &str) -> String {
    format!("promoflow/{release_id}/{environment}")
}

/// What [`open_pull_request`] found or made.
#[derive(Debug)]
pub(crate) enum Opened {
    /// Nothing to change: the step's outcome ("no changes"), no pull request.
    NoChanges(Outcome),
    /// A pull request that is open now (opened, or adopted from a run
    /// before a restart).
    Open(PullRequest),
    /// This release's pull request was already merged (a run interrupted
    /// after the merge).
    Merged(PullRequest),
}

/// How many times opening a pull request is tried when the forge fails for
/// a passing reason.
const OPEN_ATTEMPTS: u32 = 4;

/// The first half of the PULL_REQUEST action: the COMMIT's edit as one
/// commit on `promoflow/<release>/<env>` (based on the target branch's tip),
/// then the open pull request from it into the target branch adopted, or a
/// new one opened. The error is the environment's failure message.
pub(crate) async fn open_pull_request(
    git: &Git,
    forge: &dyn Forge,
    req: CommitRequest<'_>,
) -> std::result::Result<Opened, String> {
    let mut delay = std::time::Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match try_open(git, forge, &req).await {
            Err(OpenError::Forge(e)) if e.is_transient() && attempt < OPEN_ATTEMPTS => {
                tracing::warn!(environment = req.environment, error = %e, "opening the pull request failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(OpenError::Forge(e)) => return Err(e.to_string()),
            Err(OpenError::Other(m)) => return Err(m),
            Ok(o) => return Ok(o),
        }
    }
}

enum OpenError {
    Forge(ForgeError),
    Other(String),
}

impl From<ForgeError> for OpenError {
    fn from(e: ForgeError) -> Self {
        OpenError::Forge(e)
    }
}

async fn try_open(
    git: &Git,
    forge: &dyn Forge,
    req: &CommitRequest<'_>,
) -> std::result::Result<Opened, OpenError> {
    let Some(source) = &req.target.source else {
        return Err(OpenError::Other(format!(
            "application {:?} in {} has no Git source: the PULL_REQUEST action needs one (set Application.source, or use action NONE)",
            req.target.name, req.environment
        )));
    };
    let other = |e: GitError| OpenError::Other(e.to_string());
    let base = git
        .tip(&source.repo_url, &source.branch)
        .await
        .map_err(other)?
        .branch;
    let head = pr_branch(req.release_id, req.environment);
    let existing = forge.find(&head, &base).await?;
    if let Some(pr) = existing.iter().find(|p| p.state == PrState::Open) {
        return Ok(Opened::Open(pr.clone()));
    }
    if let Some(pr) = existing.iter().find(|p| p.state == PrState::Merged) {
        return Ok(Opened::Merged(pr.clone()));
    }
    let title = subject(
        req.product,
        req.version,
        req.trigger_environment,
        req.environment,
    );
    let trailers = vec![
        ("Promoflow-Release".to_string(), req.release_id.to_string()),
        (
            "Promoflow-Environment".to_string(),
            req.environment.to_string(),
        ),
    ];
    let app = req.target.name.clone();
    let promotion = req.promotion;
    let edit = move |files: &BTreeMap<String, Vec<u8>>| edit(promotion, &app, files);
    let pushed = git
        .push_branch(
            &source.repo_url,
            &base,
            &head,
            &source.path,
            &title,
            &trailers,
            &edit,
        )
        .await
        .map_err(other)?;
    if let BranchPush::NoChanges { .. } = pushed {
        return Ok(Opened::NoChanges(Outcome::Succeeded {
            message: format!(
                "no changes: {} already holds the promoted values; no pull request opened",
                req.target.name
            ),
            outputs: Default::default(),
            artifact: None,
        }));
    }
    let body = pr_body(req, &source.path);
    let new = NewPullRequest {
        head: &head,
        base: &base,
        title: &title,
        body: &body,
    };
    match forge.create(&new).await {
        Ok(pr) => Ok(Opened::Open(pr)),
        // Another replica (or a run before a restart) opened it meanwhile.
        Err(ForgeError::Status { status, .. }) if status == 409 || status == 422 => {
            let again = forge.find(&head, &base).await?;
            match again.into_iter().find(|p| p.state == PrState::Open) {
                Some(pr) => Ok(Opened::Open(pr)),
                None => Err(OpenError::Other(format!(
                    "the forge refused to open a pull request from {head} into {base} (HTTP {status}), and none is open"
                ))),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The pull request's description: the release and what it promotes.
fn pr_body(req: &CommitRequest<'_>, dir: &str) -> String {
    let mut body = format!(
        "Promotes **{} {}** from `{}` to `{}`.\n\npromoflow release: `{}`\n\nPromoted values:\n",
        req.product, req.version, req.trigger_environment, req.environment, req.release_id
    );
    for v in &req.promotion.values {
        let value = match &v.value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        body.push_str(&format!(
            "- `{}` `{}`: `{value}`\n",
            in_dir_str(dir, &v.file),
            v.path
        ));
    }
    for file in req.promotion.files.keys() {
        body.push_str(&format!("- `{}` (the whole file)\n", in_dir_str(dir, file)));
    }
    body.push_str(
        "\nMerging this pull request completes the promotion; closing it without merging fails the environment.\n",
    );
    body
}

fn in_dir_str(dir: &str, file: &str) -> String {
    if dir.is_empty() {
        file.to_string()
    } else {
        format!("{dir}/{file}")
    }
}
