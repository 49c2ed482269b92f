//! Commands on releases from outside their worker: trigger (directly or by
//! a deployment report), terminate, retry, approve.
//!
//! Each loads what it needs, lets the domain decide (the state machine in
//! `domain::release`), and persists the change with its events through the
//! store's conditional writes; a write that lost a race to the release's
//! worker is re-applied to the fresh state. The worker is then poked.

use crate::domain::catalog::{Application, Commit, Product};
use crate::domain::flow::Action;
use crate::domain::release::{ApprovalRefused, Change, Decision, Release};
use crate::domain::status::ReleaseStatus;
use crate::error::{Error, Result};
use crate::store::flows::StoredFlow;
use crate::store::now;
use crate::store::releases::{Created, Deployment};
use crate::store::watches::Seen;

use super::{Engine, MAX_CONFLICT_RETRIES, promote};

/// How a command on a release is written.
#[derive(Clone, Copy)]
enum Persist {
    Plain,
    /// Only if no other release of the product is active (checked in the
    /// write's own transaction).
    SoleActive,
}

/// A request to start a release, already validated by the API.
#[derive(Debug, Clone)]
pub struct TriggerRequest {
    pub flow: String,
    pub product: String,
    pub version: String,
    pub request_id: String,
    pub initiator: String,
    pub message: String,
    /// The trigger application's commit to promote from; empty = its
    /// branch's tip.
    pub source_commit: String,
    /// `source_commit` was seen on the branch (a release Git started), not
    /// asked for: a flow that writes nothing to Git records it instead of
    /// refusing it.
    pub observed: bool,
    /// Who asked, as the server authenticated them (`Release.actor`).
    pub actor: String,
}

/// Who reported a deployment.
#[derive(Clone, Copy)]
enum Via<'a> {
    /// `ReportDeployment`, by this principal.
    Report(&'a str),
    /// The Git poller saw the commit; its watch advances with the record.
    Git(Seen<'a>),
}

/// The initiator of releases the Git poller starts.
pub(crate) const GIT_POLL_INITIATOR: &str = "git-poll";
/// Their actor: the server itself (webhooks only wake the poller).
pub(crate) const GIT_POLL_ACTOR: &str = "system:git-poller";

impl Engine {
    /// Records a deployment and, when one of the product's promotion flows
    /// starts in that environment and its selectors match the commit,
    /// triggers a release of it (the first match wins). A repeated
    /// `request_id` returns the first answer and changes nothing.
    pub async fn report_deployment(
        &self,
        product: &str,
        environment: &str,
        version: &str,
        commit: Option<&Commit>,
        request_id: &str,
        actor: &str,
    ) -> Result<(Application, Option<Release>)> {
        let store = &self.inner.store;
        if request_id.is_empty() {
            return self
                .report_once(product, environment, version, commit, Via::Report(actor))
                .await;
        }
        let hash = serde_json::json!([product, environment, version, commit]).to_string();
        if let Some((app, release_id)) = store.claim_report(request_id, &hash).await? {
            let app: Application = serde_json::from_str(&app)
                .map_err(|e| Error::Internal(format!("stored report answer: {e}")))?;
            let release = match release_id {
                Some(id) => Some(store.get_release(&id).await?),
                None => None,
            };
            return Ok((app, release));
        }
        match self
            .report_once(product, environment, version, commit, Via::Report(actor))
            .await
        {
            Ok((app, release)) => {
                let answer = serde_json::to_string(&app)
                    .map_err(|e| Error::Internal(format!("encoding report answer: {e}")))?;
                store
                    .finish_report(request_id, &answer, release.as_ref().map(|r| r.id.as_str()))
                    .await?;
                Ok((app, release))
            }
            Err(e) => {
                store.release_report_claim(request_id).await?;
                Err(e)
            }
        }
    }

    /// A deployment the Git poller saw at `commit` (see `poller`): recorded
    /// and triggered like a report, with `seen` advanced in the same
    /// transaction. `ALREADY_EXISTS` when the commit was handled already
    /// (by another replica): nothing was written.
    pub(crate) async fn report_from_git(
        &self,
        product: &str,
        environment: &str,
        version: &str,
        commit: &Commit,
        seen: Seen<'_>,
    ) -> Result<(Application, Option<Release>)> {
        self.report_once(product, environment, version, Some(commit), Via::Git(seen))
            .await
    }

    /// One deployment report. The version is recorded in the same
    /// transaction as the release it triggers, so a report whose release
    /// cannot be created (the product lacks an application the flow needs)
    /// fails and records nothing.
    async fn report_once(
        &self,
        product: &str,
        environment: &str,
        version: &str,
        commit: Option<&Commit>,
        via: Via<'_>,
    ) -> Result<(Application, Option<Release>)> {
        let store = &self.inner.store;
        let p = store.get_product(product).await?;
        let previous = p
            .application(environment)
            .map(|a| a.version.clone())
            .unwrap_or_default();
        let empty = Commit::default();
        let c = commit.unwrap_or(&empty);
        let mut chosen = None;
        if previous != version {
            for pf in &p.promotion_flows {
                let flow = match store.get_flow(&pf.flow, 0).await {
                    Ok(flow) => flow,
                    // A flow deleted since the product named it triggers
                    // nothing; any other error is the report's failure.
                    Err(Error::NotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
                if flow.spec.trigger_environment == environment && pf.matches(c) {
                    chosen = Some(flow);
                    break;
                }
            }
        }
        let (seen, initiator, source_commit, actor) = match via {
            Via::Report(actor) => (None, "report-deployment", String::new(), actor),
            Via::Git(seen) => (
                Some(seen),
                GIT_POLL_INITIATOR,
                c.sha.clone(),
                GIT_POLL_ACTOR,
            ),
        };
        let deployment = Deployment {
            environment,
            version,
            commit,
            seen,
        };
        let Some(flow) = chosen else {
            // Records (or explains why it cannot: unknown environment, no
            // application there).
            let app = store.record_deployment(product, deployment).await?;
            return Ok((app, None));
        };
        let req = TriggerRequest {
            flow: flow.spec.name.clone(),
            product: product.to_string(),
            version: version.to_string(),
            request_id: String::new(),
            initiator: initiator.into(),
            message: c.message.clone(),
            observed: !source_commit.is_empty(),
            source_commit,
            actor: actor.to_string(),
        };
        let (release, app) = self.create(&req, &flow, &p, Some(deployment)).await?;
        let app = app.ok_or_else(|| Error::Internal("deployment not recorded".into()))?;
        Ok((app, Some(release)))
    }

    /// Creates a release of `flow` (the latest version of `req.flow`, which
    /// the caller read to check who may trigger it) for `req.product` (see
    /// `TriggerRelease`).
    pub async fn trigger(&self, req: TriggerRequest, flow: &StoredFlow) -> Result<Release> {
        let product = self.inner.store.get_product(&req.product).await?;
        Ok(self.create(&req, flow, &product, None).await?.0)
    }

    /// Checks that `product` can run `flow`, builds the release and writes
    /// it (with `deployment` recorded in the same transaction, when given).
    async fn create(
        &self,
        req: &TriggerRequest,
        flow: &StoredFlow,
        product: &Product,
        deployment: Option<Deployment<'_>>,
    ) -> Result<(Release, Option<Application>)> {
        let store = &self.inner.store;
        let missing: Vec<&str> = flow
            .spec
            .nodes()
            .filter(|env| product.application(env).is_none())
            .collect();
        if !missing.is_empty() {
            let apps: Vec<String> = missing
                .iter()
                .map(|env| format!("--app {env}=NAME"))
                .collect();
            return Err(Error::FailedPrecondition(format!(
                "product {:?} has no application in environment{} {} of flow {:?}: add {} with `promoflow product update {} {}` (UpdateProduct)",
                product.name,
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                flow.spec.name,
                if missing.len() == 1 { "it" } else { "them" },
                product.name,
                apps.join(" ")
            )));
        }
        let resolved = self.resolve_git(flow, product, req).await?;
        let git_version = resolved.as_ref().and_then(|g| g.version.clone());
        let version = match (req.version.as_str(), git_version) {
            // The trigger application's Git files say which version it runs:
            // promoting another one would promote something that never
            // reached the trigger environment.
            (given, Some(in_git)) if !given.is_empty() && given != in_git => {
                return Err(Error::FailedPrecondition(format!(
                    "version {given:?} was asked for, but the trigger application's Git source holds {in_git:?}: promote {in_git:?}, or leave the version empty"
                )));
            }
            ("", Some(in_git)) => in_git,
            ("", None) => {
                let app = product
                    .application(&flow.spec.trigger_environment)
                    .map(|a| a.version.clone())
                    .unwrap_or_default();
                if app.is_empty() {
                    return Err(Error::FailedPrecondition(format!(
                        "no version given and none is recorded for {:?} in the trigger environment {:?}: pass a version or report a deployment first",
                        product.name, flow.spec.trigger_environment
                    )));
                }
                app
            }
            (given, _) => given.to_string(),
        };
        let id = uuid::Uuid::now_v7().to_string();
        let app_name = |env: &str| {
            product
                .application(env)
                .map(|a| a.name.clone())
                .unwrap_or_default()
        };
        let synced = |env: &str| product.application(env).is_some_and(|a| a.argocd.is_some());
        let mut r = Release::new(
            id,
            &flow.spec,
            flow.version,
            &product.name,
            &version,
            &app_name,
            &synced,
            now(),
        );
        if let Some(g) = resolved {
            r.source_commit = g.source_commit;
            r.promotion = Some(std::sync::Arc::new(g.promotion));
        } else {
            // A flow that writes nothing to Git still says which commit
            // started it, when one did.
            r.source_commit = req.source_commit.clone();
        }
        r.initiator = req.initiator.clone();
        r.actor = req.actor.clone();
        r.trigger_message = req.message.clone();
        r.request_id = (!req.request_id.is_empty()).then(|| req.request_id.clone());
        // The idempotency hash covers what the caller asked for, not what
        // was derived from it. JSON keeps the fields apart without NUL
        // separators, which PostgreSQL text cannot store.
        let mut asked = serde_json::json!([
            req.flow,
            req.product,
            req.version,
            req.initiator,
            req.message
        ]);
        // Appended only when given, so keys stored before the field existed
        // still match their repeats.
        if let (false, Some(a)) = (req.source_commit.is_empty(), asked.as_array_mut()) {
            a.push(req.source_commit.clone().into());
        }
        let hash = asked.to_string();
        let request = r.request_id.clone().map(|key| (key, hash));
        // Superseding or dropping from the queue writes other releases,
        // whose workers may commit in between (ABORTED): the transaction
        // rolled back entirely, so try again.
        let mut conflicts = 0;
        let created = loop {
            match store
                .create_release(
                    r.clone(),
                    request.as_ref().map(|(k, h)| (k.as_str(), h.as_str())),
                    product.concurrency,
                    deployment,
                )
                .await
            {
                Err(Error::Aborted(_)) if conflicts < MAX_CONFLICT_RETRIES => conflicts += 1,
                other => break other?,
            }
        };
        match created {
            Created::Existing(id) => Ok((store.get_release(&id).await?, None)),
            Created::New {
                release,
                events,
                terminating,
                application,
            } => {
                self.publish(&events);
                for id in &terminating {
                    self.ensure_worker(id);
                }
                if release.status == ReleaseStatus::Running {
                    self.ensure_worker_of(&release.id, Some((*release).clone()));
                }
                Ok((*release, application.map(|a| *a)))
            }
        }
    }

    /// What a release of `flow` promotes, read from the trigger
    /// application's Git source once, now: `None` when no step of the flow
    /// writes to Git or the trigger application is not Git-backed (then a
    /// `source_commit` the caller asked for is the caller's mistake).
    async fn resolve_git(
        &self,
        flow: &StoredFlow,
        product: &Product,
        req: &TriggerRequest,
    ) -> Result<Option<promote::Resolved>> {
        let at = req.source_commit.as_str();
        let writes_git = flow
            .spec
            .steps
            .iter()
            .any(|s| s.policy.effective_action() != Action::None);
        let trigger = product.application(&flow.spec.trigger_environment);
        let source = trigger.and_then(|app| Some((app, app.source.as_ref()?)));
        let (Some((app, source)), true) = (source, writes_git) else {
            if !at.is_empty() && !req.observed {
                return Err(Error::FailedPrecondition(format!(
                    "source_commit {at:?} was given, but releases of flow {:?} for product {:?} do not promote through Git (no COMMIT or PULL_REQUEST step, or the trigger application has no Git source)",
                    flow.spec.name, product.name
                )));
            }
            return Ok(None);
        };
        let template = self.inner.store.product_template(product).await?;
        promote::resolve(&self.inner.git, app, source, template.as_ref(), at)
            .await
            .map(Some)
    }

    /// Applies `change` to the freshly loaded release and persists it,
    /// retrying when another writer got there first. `change` returns
    /// `Ok(None)` when there is nothing to do.
    async fn command<F>(&self, id: &str, how: Persist, mut change: F) -> Result<Release>
    where
        F: FnMut(&mut Release) -> Result<Option<Vec<Change>>>,
    {
        let store = &self.inner.store;
        for _ in 0..MAX_CONFLICT_RETRIES {
            let mut r = store.get_release(id).await?;
            let seq = r.last_seq;
            let before = r.counters();
            let Some(mut changes) = change(&mut r)? else {
                return Ok(r);
            };
            r.announce_counters(before, &mut changes);
            let persisted = match how {
                Persist::Plain => store.persist(&mut r, &changes, seq, &[], None).await,
                Persist::SoleActive => store.persist_sole_active(&mut r, &changes, seq).await,
            };
            match persisted {
                Ok(events) => {
                    self.publish(&events);
                    return Ok(r);
                }
                Err(Error::Aborted(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable(format!(
            "release {id} is changing too fast to apply the request; retry"
        )))
    }

    /// Terminates release `id`. `authorize` sees the release as loaded
    /// for the change, before anything else is checked (here and in
    /// [`Engine::retry`] and [`Engine::approve`]), so the caller's
    /// permission check costs no read of its own.
    pub async fn terminate<A>(
        &self,
        id: &str,
        reason: &str,
        by: &str,
        authorize: A,
    ) -> Result<Release>
    where
        A: Fn(&Release) -> Result<()> + Sync,
    {
        let reason = if reason.is_empty() {
            "terminated on request"
        } else {
            reason
        };
        let r = self
            .command(id, Persist::Plain, |r| {
                authorize(r)?;
                if r.status.is_final() {
                    return Err(Error::FailedPrecondition(format!(
                        "release {} is already {}; nothing to terminate",
                        r.id,
                        r.status.as_str()
                    )));
                }
                if r.status == ReleaseStatus::Terminating {
                    return Ok(None);
                }
                Ok(Some(r.terminate(reason, by, now())))
            })
            .await?;
        if r.status == ReleaseStatus::Terminating {
            self.ensure_worker(id);
        } else if r.status.is_final() {
            self.promote(&r.product).await;
        }
        Ok(r)
    }

    pub async fn retry<A>(&self, id: &str, authorize: A) -> Result<Release>
    where
        A: Fn(&Release) -> Result<()> + Sync,
    {
        // Another release of the product that is not final would race this
        // one for the same applications (and, under QUEUE, run out of turn):
        // the store refuses the retry then, in the transaction that writes it,
        // as it refuses a release of a deleted product.
        let r = self
            .command(id, Persist::SoleActive, |r| {
                authorize(r)?;
                match r.retry(now()) {
                    Some(ch) => Ok(Some(ch)),
                    None => Err(Error::FailedPrecondition(format!(
                        "release {} is {}; only FAILED or TERMINATED releases can be retried",
                        r.id,
                        r.status.as_str()
                    ))),
                }
            })
            .await?;
        self.ensure_worker(id);
        Ok(r)
    }

    /// Records `by`'s decision on the approval an environment of release
    /// `id` waits on; an empty `environment` decides a release-level hook
    /// awaiting approval.
    pub async fn approve<A>(
        &self,
        id: &str,
        environment: &str,
        approve: bool,
        comment: &str,
        by: &str,
        authorize: A,
    ) -> Result<Release>
    where
        A: Fn(&Release) -> Result<()> + Sync,
    {
        let r = self
            .command(id, Persist::Plain, |r| {
                authorize(r)?;
                let env = if environment.is_empty() {
                    None
                } else {
                    Some(r.env_index(environment).ok_or_else(|| {
                        Error::NotFound(format!(
                            "release {} has no environment {environment:?}",
                            r.id
                        ))
                    })?)
                };
                let decision = Decision {
                    principal: by.to_string(),
                    approve,
                    comment: comment.to_string(),
                    time: now(),
                };
                r.decide_approval(env, decision).map(Some).map_err(|refused| match refused {
                    ApprovalRefused::AlreadyDecided(m) | ApprovalRefused::SelfApproval(m) => {
                        Error::FailedPrecondition(m)
                    }
                    ApprovalRefused::NothingAwaits => match env {
                        Some(e) if let Some(s) = r.envs[e].steps.iter().find(|s| s.awaits_review()) => {
                            Error::FailedPrecondition(format!(
                                "environment {environment:?} of release {} awaits review of pull request #{} ({}), not an approval: merge the pull request to continue, or close it to fail the environment",
                                r.id, s.pull_request, s.url
                            ))
                        }
                        Some(e) => Error::FailedPrecondition(format!(
                            "environment {environment:?} of release {} is {} and not waiting for approval",
                            r.id,
                            r.envs[e].status.as_str()
                        )),
                        None => Error::FailedPrecondition(format!(
                            "no release-level hook of release {} is waiting for approval (the release is {}); name the environment to approve",
                            r.id,
                            r.status.as_str()
                        )),
                    },
                })
            })
            .await?;
        self.ensure_worker(id);
        Ok(r)
    }
}
