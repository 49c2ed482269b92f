//! The release engine: one worker task per active release, which advances
//! the release's state machine, runs its steps, and writes every transition
//! with its event before anyone hears of it.
//!
//! - Scheduling: a worker starts every environment whose dependencies all
//!   succeeded; parallel branches run as concurrent step tasks, bounded
//!   globally by a semaphore (`--max-parallel-environments`).
//! - Durability: a step is marked `RUNNING` (with its start time) before its
//!   task starts, and its outcome is written when it ends. After a crash the
//!   worker finds it still `RUNNING` and runs it again with the same
//!   idempotency key; waits resume from their recorded start.
//! - Commands (terminate, approve, retry) are state changes written by the
//!   API through the same conditional persistence; the worker is poked and
//!   reloads.
//! - Git: a poller (`poller.rs`) reports new commits of watched trigger
//!   applications as deployments, like `ReportDeployment`.

pub(crate) mod argocd;
mod commands;
pub(crate) mod forge;
pub mod git;
pub(crate) mod hub;
mod poller;
pub(crate) mod promote;
mod replica;
pub(crate) mod stream;
mod worker;
pub(crate) mod workflows;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::domain::release::Release;
use crate::error::Result;
use crate::store::Store;
use crate::store::releases::StoredEvent;
pub(crate) use commands::TriggerRequest;
use hub::{Hub, Pokes};

/// How often a write that lost a race is retried before giving up.
const MAX_CONFLICT_RETRIES: usize = 20;

/// Handle to the engine. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    hub: Hub,
    pokes: Pokes,
    http: reqwest::Client,
    /// Git, for sources and COMMIT actions.
    git: git::Git,
    /// The pull requests environments wait on, to wake their checks.
    reviews: forge::Wakers,
    /// How often a pull request awaiting review is checked.
    pr_poll: Duration,
    /// Whether releases set commit statuses on their trigger commit, and
    /// the link they carry (`{id}`: the release id; empty: none).
    commit_status: bool,
    release_url_template: String,
    /// SYNC steps: how often Argo CD is read, how long Healthy must hold,
    /// and how long a step waits at most.
    sync: argocd::SyncSettings,
    permits: Arc<Semaphore>,
    allow_commands: bool,
    /// This replica's id: the owner written into the leases it takes.
    replica_id: String,
    lease_ttl: chrono::Duration,
    catch_up: Duration,
    /// How often watched Git sources are polled; zero: never.
    git_poll_interval: Duration,
    /// Branches push webhooks asked the poller to poll now.
    git_wakes: poller::Wakes,
    /// Whether webhooks are on (a secret is configured): the poller then
    /// runs even when `git_poll_interval` is zero.
    webhooks: bool,
    shutdown: CancellationToken,
    workers: tokio_util::task::TaskTracker,
}

impl Engine {
    /// The Git client: the API checks repository URLs against its policy.
    pub(crate) fn git(&self) -> &git::Git {
        &self.inner.git
    }

    /// `webhooks_on`: a webhook secret is configured.
    pub fn new(store: Store, git: git::Git, config: &ServerConfig, webhooks_on: bool) -> Self {
        let backend = store.backend();
        Self {
            inner: Arc::new(Inner {
                store,
                hub: Hub::new(),
                pokes: Pokes::default(),
                git,
                reviews: forge::Wakers::default(),
                pr_poll: config.pr_poll_interval,
                commit_status: config.commit_status,
                release_url_template: config.release_url_template.clone(),
                sync: argocd::SyncSettings {
                    poll: config.sync_poll_interval.max(Duration::from_millis(10)),
                    hold: config.sync_hold,
                    timeout: config.sync_timeout,
                },
                http: reqwest::Client::builder()
                    .user_agent(concat!("promoflow/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .unwrap_or_default(),
                permits: Arc::new(Semaphore::new(config.max_parallel_environments.max(1))),
                allow_commands: config.allow_command_workflows,
                // SQLite has one replica: a fixed id lets a restarted
                // server take its releases back at once. PostgreSQL
                // replicas get a fresh id each start unless one is given.
                replica_id: config.replica_id.clone().unwrap_or_else(|| {
                    if backend == sea_orm::DbBackend::Sqlite {
                        "local".to_string()
                    } else {
                        uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
                    }
                }),
                lease_ttl: chrono::Duration::from_std(config.lease_duration)
                    .unwrap_or_else(|_| chrono::Duration::seconds(15)),
                catch_up: config.catch_up_interval,
                git_poll_interval: config.git_poll_interval,
                git_wakes: poller::Wakes::default(),
                webhooks: webhooks_on,
                shutdown: CancellationToken::new(),
                workers: tokio_util::task::TaskTracker::new(),
            }),
        }
    }

    /// Wakes the waits on pull request `number` of the repository at any of
    /// `repo_urls` that run on this replica (a pull-request webhook); how
    /// many woke.
    pub(crate) fn wake_pull_request(&self, repo_urls: &[String], number: i64) -> usize {
        let git = &self.inner.git;
        let mut seen = std::collections::BTreeSet::new();
        repo_urls
            .iter()
            .filter(|u| seen.insert(git.normalize(u).unwrap_or_else(|| u.to_string())))
            .filter(|u| self.inner.reviews.wake(u, number))
            .count()
    }

    /// Whether this server runs `command` workflows (`--allow-command-workflows`).
    pub fn allows_commands(&self) -> bool {
        self.inner.allow_commands
    }

    /// This replica's id (in leases and logs).
    pub fn replica_id(&self) -> &str {
        &self.inner.replica_id
    }

    /// How many releases this replica drives now (a worker runs only while
    /// it holds its release's lease).
    pub fn leases_held(&self) -> usize {
        self.inner.pokes.count()
    }

    /// Resumes every release left unfinished (after a restart or crash) and
    /// starts queued releases whose turn has come.
    pub async fn recover(&self) -> Result<()> {
        tracing::info!(replica = %self.inner.replica_id, "engine starting");
        replica::spawn(self.clone());
        poller::spawn(self.clone());
        let ids = self.inner.store.orphaned_releases(10_000).await?;
        if !ids.is_empty() {
            tracing::info!(count = ids.len(), "resuming unfinished releases");
        }
        for id in ids {
            self.ensure_worker(&id);
        }
        for product in self.inner.store.products_with_queue().await? {
            self.promote(&product).await;
        }
        Ok(())
    }

    /// Stops workers (their steps are cancelled and will be re-run by the
    /// next start, as after a crash) and ends streams.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.workers.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.workers.wait()).await;
    }

    fn publish(&self, events: &[StoredEvent]) {
        self.inner.hub.publish(events);
    }

    /// Starts a worker for `id` unless one runs already.
    fn ensure_worker(&self, id: &str) {
        self.ensure_worker_of(id, None);
    }

    /// Starts a worker for `id` unless one runs already; `written` is the
    /// release as just committed, which a new worker starts from instead of
    /// reading it back (its first write is checked against the stored
    /// `last_seq`, so a change made in between is read then).
    fn ensure_worker_of(&self, id: &str, written: Option<Release>) {
        if self.inner.shutdown.is_cancelled() {
            return;
        }
        if let Some(notify) = self.inner.pokes.register(id) {
            let engine = self.clone();
            let id = id.to_string();
            self.inner.workers.spawn(async move {
                if let Some(worker) =
                    worker::Worker::claim(engine.clone(), &id, notify, written).await
                {
                    worker.run().await;
                }
                engine.inner.pokes.unregister(&id);
            });
        } else {
            self.inner.pokes.poke(id);
        }
    }

    /// Starts the next queued release of `product`, if its turn has come.
    async fn promote(&self, product: &str) {
        match self.inner.store.promote_queued(product).await {
            Ok(Some((r, events))) => {
                self.publish(&events);
                self.ensure_worker_of(&r.id.clone(), Some(r));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(product, error = %e, "promoting a queued release failed"),
        }
    }
}
