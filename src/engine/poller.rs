//! Releases triggered by Git: every `--git-poll-interval` the branch of each
//! watched application is fetched, and a new commit that changed a file
//! under the application's path is reported as its deployment, the way
//! `ReportDeployment` reports one (`Engine::report_from_git`): the version
//! is recorded and the product's first matching promotion flow starts.
//!
//! Watched: the applications with a Git source in the trigger environment
//! of one of their product's `promotion_flows`.
//!
//! What each poll does, and why:
//! - **First sight** of an application (or of a changed source): its tip is
//!   remembered and nothing starts. Its history was never promoflow's news;
//!   starting a release for whatever the branch holds when the server (or
//!   the watch) starts would surprise.
//! - **Several new commits** since the last poll: one deployment, for the
//!   newest commit that changed the path. Promotion commits promoflow made
//!   into *other* environments (trailer `Promoflow-Environment` naming
//!   another one) do not count: a trigger path that contains target paths
//!   would otherwise start a release from each of its own promotions. One
//!   into this environment does: it chains flows.
//! - **No change under the path**: the tip is remembered, nothing recorded.
//! - **The version did not change**: the commit is recorded, no release
//!   (as for `ReportDeployment`).
//! - **A failed poll** (unreachable server, authentication, timeout): the
//!   last seen commit stays, the next poll tries again; a warning names the
//!   product, environment and repository (never a credential), once per
//!   distinct failure, and recovery is logged.
//! - **A commit whose release cannot start** (the product lacks an
//!   application the flow needs, the version file is missing): the commit
//!   is marked seen anyway, so it is not retried forever, and the reason is
//!   logged as a warning. The next commit is judged afresh.
//!
//! - **A push webhook** (`api::webhooks`) asks for an immediate poll of the
//!   applications watching the pushed repository and branch
//!   ([`Engine::poll_pushed`]): they are handed to this same loop, which
//!   polls them between its intervals exactly as it polls at an interval,
//!   so a commit seen by both starts one release. An application never
//!   seen before is first seen by whichever comes first, an interval or a
//!   delivery: that one remembers the tip and starts nothing.
//!
//! The last seen commit is stored (`store::watches`) and advanced by a
//! compare-and-set in the transaction that records the deployment or
//! creates the release: a restart neither starts a second release for a
//! commit nor misses one pushed while it was down, and of several replicas
//! polling one store exactly one starts the release of a commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use futures::StreamExt;

use super::Engine;
use super::git::{Change, GitError, Tip};
use super::promote;
use crate::domain::catalog::{Commit, Product};
use crate::domain::gitops::{GitSource, PromotionTemplate};
use crate::error::Error;
use crate::store::watches::{GitWatch, Seen};

/// Repositories polled at once.
const CONCURRENT_REPOS: usize = 4;

/// One watched application.
struct Target {
    product: String,
    environment: String,
    app: crate::domain::catalog::Application,
    source: GitSource,
    template: Option<PromotionTemplate>,
}

/// A poll that could not finish; the next one tries again.
type Retry = String;

/// (repository URL, branch) of watched sources, as the applications name
/// them.
type Branch = (String, String);

/// The branches webhooks asked to poll now, for the poller's loop.
#[derive(Default)]
pub(super) struct Wakes {
    pending: Mutex<BTreeSet<Branch>>,
    bell: Notify,
}

impl Wakes {
    fn ring(&self, branches: impl IntoIterator<Item = Branch>) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(branches);
        // A permit is kept when the poller is busy: it polls again after.
        self.bell.notify_one();
    }

    fn take(&self) -> BTreeSet<Branch> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Engine {
    /// A push of `branch` to the repository reachable at any of
    /// `repo_urls`: the watched applications of that repository and branch
    /// are polled at once by the poller's loop (after this returns).
    /// Returns how many watched applications matched.
    pub(crate) async fn poll_pushed(
        &self,
        repo_urls: &[String],
        branch: &str,
    ) -> crate::error::Result<usize> {
        let git = &self.inner.git;
        let wanted: BTreeSet<String> = repo_urls.iter().filter_map(|u| git.normalize(u)).collect();
        let matched: Vec<Target> = targets(self)
            .await?
            .into_iter()
            .filter(|t| {
                t.source.branch == branch
                    && git
                        .normalize(&t.source.repo_url)
                        .is_some_and(|n| wanted.contains(&n))
            })
            .collect();
        if !matched.is_empty() {
            self.inner.git_wakes.ring(
                matched
                    .iter()
                    .map(|t| (t.source.repo_url.clone(), t.source.branch.clone())),
            );
        }
        Ok(matched.len())
    }
}

/// Starts the poller (stopped at shutdown) unless both polling and
/// webhooks are off. With webhooks only, it polls when a push arrives.
pub(super) fn spawn(engine: Engine) {
    let every = engine.inner.git_poll_interval;
    if every.is_zero() && !engine.inner.webhooks {
        return;
    }
    let poller = engine.clone();
    engine
        .inner
        .workers
        .spawn(async move { run(poller, every).await });
}

async fn run(engine: Engine, every: Duration) {
    let shutdown = engine.inner.shutdown.clone();
    // None: no interval, only webhooks.
    let mut tick = (!every.is_zero()).then(|| {
        let mut t = tokio::time::interval(every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let wakes = &engine.inner.git_wakes;
    // What failed at the last poll, per (product, environment): a failure
    // is warned about when it starts or changes, not every interval.
    let mut failing: HashMap<(String, String), Retry> = HashMap::new();
    loop {
        // None: every watched branch; Some: those webhooks named.
        let only = tokio::select! {
            _ = async {
                match tick.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            } => None,
            _ = wakes.bell.notified() => Some(wakes.take()),
            _ = shutdown.cancelled() => return,
        };
        // Dropping a poll on shutdown kills its git processes and rolls
        // back its transaction: the commit is seen again at the next start.
        let results = tokio::select! {
            r = poll_all(&engine, only.as_ref()) => r,
            _ = shutdown.cancelled() => return,
        };
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "listing the applications to watch in Git failed; trying again next interval");
                continue;
            }
        };
        // Rebuilt each full round: an application no longer watched is
        // forgotten. A webhook's round keeps the others' failures.
        let mut still_failing = if only.is_some() {
            let polled: BTreeSet<_> = results.iter().map(|(k, _)| k.clone()).collect();
            failing
                .iter()
                .filter(|(k, _)| !polled.contains(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            HashMap::new()
        };
        for (key, result) in results {
            let (product, environment) = (&key.0, &key.1);
            let before = failing.remove(&key);
            match result {
                Ok(()) if before.is_some() => {
                    tracing::info!(product, environment, "polling Git works again");
                }
                Ok(()) => {}
                Err(why) => {
                    if before.as_ref() != Some(&why) {
                        tracing::warn!(product, environment, error = %why, "polling Git failed; keeping the last seen commit and trying again next interval");
                    } else {
                        tracing::debug!(product, environment, error = %why, "polling Git failed again");
                    }
                    still_failing.insert(key, why);
                }
            }
        }
        failing = still_failing;
    }
}

/// Polls every watched application (or those on the branches `only`
/// names), one fetch per (repository, branch).
async fn poll_all(
    engine: &Engine,
    only: Option<&BTreeSet<Branch>>,
) -> crate::error::Result<Vec<((String, String), Result<(), Retry>)>> {
    let targets = targets(engine).await?;
    let mut by_branch: BTreeMap<Branch, Vec<Target>> = BTreeMap::new();
    for t in targets {
        let key = (t.source.repo_url.clone(), t.source.branch.clone());
        if only.is_some_and(|o| !o.contains(&key)) {
            continue;
        }
        by_branch.entry(key).or_default().push(t);
    }
    let results = futures::stream::iter(by_branch)
        .map(|((url, branch), targets)| async move {
            // What was seen is read before the fetch: a tip fetched after
            // another replica advanced a watch is at least as new as what it
            // saw, and a stale read makes the compare-and-set fail instead
            // of moving the watch back.
            let mut stored = Vec::with_capacity(targets.len());
            for t in &targets {
                stored.push(
                    engine
                        .inner
                        .store
                        .git_watch(&t.product, &t.environment)
                        .await,
                );
            }
            let tip = engine.inner.git.tip(&url, &branch).await;
            let mut out = Vec::with_capacity(targets.len());
            for (t, stored) in targets.into_iter().zip(stored) {
                let result = match stored {
                    Ok(stored) => poll_one(engine, &t, stored, &tip).await,
                    Err(e) => Err(e.to_string()),
                };
                out.push(((t.product, t.environment), result));
            }
            out
        })
        .buffer_unordered(CONCURRENT_REPOS)
        .collect::<Vec<_>>()
        .await;
    Ok(results.into_iter().flatten().collect())
}

/// The Git-backed applications in the trigger environment of one of their
/// product's promotion flows.
async fn targets(engine: &Engine) -> crate::error::Result<Vec<Target>> {
    let store = &engine.inner.store;
    let mut triggers: HashMap<String, Option<String>> = HashMap::new();
    let mut out = Vec::new();
    for p in store.git_backed_products().await? {
        let mut envs = BTreeSet::new();
        for pf in &p.promotion_flows {
            if !triggers.contains_key(&pf.flow) {
                let trigger = match store.get_flow(&pf.flow, 0).await {
                    Ok(f) => Some(f.spec.trigger_environment),
                    // A flow deleted since the product named it.
                    Err(Error::NotFound(_)) => None,
                    Err(e) => return Err(e),
                };
                triggers.insert(pf.flow.clone(), trigger);
            }
            if let Some(Some(env)) = triggers.get(&pf.flow) {
                envs.insert(env.clone());
            }
        }
        if envs.is_empty() {
            continue;
        }
        // The product's own template or the named one it refers to, read
        // now: an edit of the template applies from the next poll.
        let template = match store.product_template(&p).await {
            Ok(t) => t,
            Err(e) if !e.is_transient() => {
                tracing::warn!(product = %p.name, error = %e, "not watching the product's Git sources");
                continue;
            }
            Err(e) => return Err(e),
        };
        out.extend(
            envs.into_iter()
                .filter_map(|env| target(&p, &env, template.clone())),
        );
    }
    Ok(out)
}

fn target(p: &Product, environment: &str, template: Option<PromotionTemplate>) -> Option<Target> {
    let app = p.application(environment)?;
    let source = app.source.clone()?;
    Some(Target {
        product: p.name.clone(),
        environment: environment.to_string(),
        app: app.clone(),
        source,
        template,
    })
}

/// The version of a commit when the template names no version source: its
/// short sha, so each commit that changes the path is a new version.
fn sha_version(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// True for a promotion commit promoflow made into another environment.
fn promotes_elsewhere(change: &Change, environment: &str) -> bool {
    change
        .trailers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("Promoflow-Environment") && v != environment)
}

/// One poll of one application whose watch read `stored`, at the
/// branch's `tip`.
async fn poll_one(
    engine: &Engine,
    t: &Target,
    stored: Option<GitWatch>,
    tip: &Result<Tip, GitError>,
) -> Result<(), Retry> {
    let store = &engine.inner.store;
    let git = &engine.inner.git;
    let (product, environment) = (t.product.as_str(), t.environment.as_str());
    let repo = t.source.repo_url.as_str();
    let tip = tip.as_ref().map_err(|e| format!("fetching {repo}: {e}"))?;
    let new = GitWatch {
        source: t.source.clone(),
        commit: tip.sha.clone(),
    };
    let seen = Seen {
        product,
        environment,
        expected: stored.as_ref(),
        new: &new,
    };
    let since = match &stored {
        Some(w) if w.source == t.source && w.commit == tip.sha => return Ok(()),
        Some(w) if w.source == t.source => w.commit.clone(),
        _ => {
            if store
                .advance_git_watch(seen)
                .await
                .map_err(|e| e.to_string())?
            {
                tracing::info!(product, environment, repo, branch = %tip.branch, commit = %tip.sha, "watching the application's Git source from its current commit");
            }
            return Ok(());
        }
    };
    let changes = git
        .changes_under(repo, Some(&since), &tip.sha, &t.source.path)
        .await
        .map_err(|e| format!("reading the history of {repo}: {e}"))?;
    let Some(change) = changes.iter().find(|c| !promotes_elsewhere(c, environment)) else {
        store
            .advance_git_watch(seen)
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(product, environment, commit = %tip.sha, "no new commit changed the application's path");
        return Ok(());
    };
    let sha = change.sha.as_str();
    // From here on a problem of the commit itself marks it seen: polling it
    // again would fail the same way, forever.
    let give_up = |why: String| async move {
        tracing::warn!(product, environment, repo, commit = sha, reason = %why, "a new commit in Git started nothing; it is marked seen");
        store
            .advance_git_watch(seen)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let version =
        match promote::read_version(git, &t.app, &t.source, t.template.as_ref(), sha).await {
            Ok(Some(v)) => v,
            Ok(None) => sha_version(sha).to_string(),
            Err(e) if e.is_transient() => return Err(e.to_string()),
            Err(e) => return give_up(e.to_string()).await,
        };
    // What ReportDeployment would refuse to record.
    let problem = if version.is_empty() {
        Some("is empty".to_string())
    } else {
        crate::domain::text_problem(&version, crate::domain::catalog::MAX_TEXT)
    };
    if let Some(problem) = problem {
        return give_up(format!("the version read from Git {problem}")).await;
    }
    let info = match git.commit_info(repo, sha).await {
        Ok(info) => info,
        Err(e) if e.is_transient() => return Err(format!("reading commit {sha}: {e}")),
        Err(e) => return give_up(format!("reading the commit: {e}")).await,
    };
    let commit = Commit {
        sha: info.sha,
        message: info.message,
        author: format!("{} <{}>", info.author, info.author_email),
        revision: tip.branch.clone(),
    }
    .storable();
    match engine
        .report_from_git(product, environment, &version, &commit, seen)
        .await
    {
        Ok((_, Some(release))) => {
            tracing::info!(product, environment, commit = sha, %version, release = %release.id, flow = %release.flow, "a commit in Git started a release");
            Ok(())
        }
        Ok((_, None)) => {
            tracing::info!(product, environment, commit = sha, %version, "a commit in Git was recorded as a deployment; no flow started (same version, or no flow matched)");
            Ok(())
        }
        // Another replica (or this one before a restart) handled it.
        Err(Error::AlreadyExists(_)) => {
            tracing::debug!(
                product,
                environment,
                commit = sha,
                "the commit was already handled"
            );
            Ok(())
        }
        Err(e) if e.is_transient() => Err(e.to_string()),
        Err(e) => give_up(e.to_string()).await,
    }
}
