//! Repository functions for releases, their environment and step runs, and
//! their events.
//!
//! Every change to a release is written by [`Store::persist`]: the rows that
//! changed, one event per change, and the release's `last_seq`, in one
//! transaction. The release row is updated only `WHERE last_seq = <the seq
//! the writer read>`, so two writers (an engine worker and an API call, or
//! two replicas) can never both move the same release: the loser gets
//! [`Error::Aborted`], reloads and re-applies.

use std::collections::BTreeMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

use super::entity::{environment_run, event, idempotency_key, product, release, step_run};
use super::group::Outbox;
use super::leases::Fence;
use super::{Store, from_json, insert_batched, now, to_json};
use crate::domain::catalog::Concurrency;
use crate::domain::flow::{Action, FlowSpec};
use crate::domain::release::admission;
use crate::domain::release::{Change, EnvRun, EventBody, Release, StepRef, StepRun};

/// Who terminates a release that a newer one supersedes (the product's
/// concurrency policy).
const SUPERSEDED_BY: &str = "system:concurrency-policy";
use crate::domain::status::{EnvironmentStatus, ReleaseStatus};
use crate::error::{Error, Result};

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub release_id: String,
    pub seq: i64,
    pub position: i64,
    pub product: String,
    pub flow: String,
    pub time: chrono::DateTime<chrono::Utc>,
    pub body: EventBody,
}

/// A write that accompanies a release change in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum SideEffect {
    /// The promotion action succeeded: record the version on the application.
    RecordVersion { environment: String },
}

/// A deployment report recorded in the transaction that creates the
/// release it triggers: both happen, or neither.
#[derive(Debug, Clone, Copy)]
pub struct Deployment<'a> {
    pub environment: &'a str,
    pub version: &'a str,
    pub commit: Option<&'a crate::domain::catalog::Commit>,
    /// A deployment the Git poller saw: its watch advances in the same
    /// transaction, or nothing is written (`ALREADY_EXISTS`: another
    /// replica, or an earlier run, handled the commit).
    pub seen: Option<super::watches::Seen<'a>>,
}

impl Deployment<'_> {
    /// Advances the watch of a deployment seen in Git, in `db`'s
    /// transaction; refuses when someone else advanced it first.
    pub(crate) async fn advance_watch<C: ConnectionTrait>(&self, db: &C) -> Result<()> {
        let Some(seen) = self.seen else {
            return Ok(());
        };
        if super::watches::advance_in(db, seen).await? {
            return Ok(());
        }
        Err(Error::AlreadyExists(format!(
            "commit {} of {}'s application in {} was already handled",
            seen.new.commit, seen.product, seen.environment
        )))
    }
}

/// What creating a release did.
#[derive(Debug)]
pub enum Created {
    /// A new release, with the events written (its own and those of releases
    /// it superseded or pushed out of the queue).
    New {
        release: Box<Release>,
        events: Vec<StoredEvent>,
        /// Releases asked to terminate (their workers must notice).
        terminating: Vec<String>,
        /// The application as recorded, when a deployment was given.
        application: Option<Box<crate::domain::catalog::Application>>,
    },
    /// The idempotency key was seen before with the same request.
    Existing(String),
}

fn step_key(release_id: &str, env: &str, idx: usize, attempt: i32) -> String {
    format!("{release_id}/{env}/{idx}/{attempt}")
}

fn release_model(r: &Release) -> Result<release::ActiveModel> {
    Ok(release::ActiveModel {
        id: Set(r.id.clone()),
        product: Set(r.product.clone()),
        flow: Set(r.flow.clone()),
        flow_version: Set(r.flow_version),
        app_version: Set(r.version.clone()),
        status: Set(r.status.as_str().to_string()),
        initiator: Set(r.initiator.clone()),
        actor: Set(r.actor.clone()),
        terminated_by: Set(r.terminated_by.clone()),
        trigger_message: Set(r.trigger_message.clone()),
        message: Set(r.message.clone()),
        request_id: Set(r.request_id.clone()),
        context: Set(to_json(&r.context)?),
        last_seq: Set(r.last_seq),
        terminate_reason: Set(r.terminate_reason.clone()),
        lease_owner: Set(None),
        lease_expires_at: Set(None),
        lease_epoch: Set(0),
        promotion_timeout_secs: Set(r.promotion_timeout_secs.map(|s| s as i64)),
        deadline: Set(r.deadline),
        create_time: Set(r.create_time),
        start_time: Set(r.start_time),
        finish_time: Set(r.finish_time),
        source_commit: Set(r.source_commit.clone()),
        promotion: Set(r.promotion.as_ref().map(to_json).transpose()?),
    })
}

fn env_model(
    release_id: &str,
    position: usize,
    e: &EnvRun,
) -> Result<environment_run::ActiveModel> {
    Ok(environment_run::ActiveModel {
        release_id: Set(release_id.to_string()),
        environment: Set(e.environment.clone()),
        position: Set(position as i32),
        status: Set(e.status.as_str().to_string()),
        depends_on: Set(to_json(&e.depends_on)?),
        blocked_on: Set(to_json(&e.blocked_on)?),
        attempt: Set(e.attempt),
        application: Set(e.application.clone()),
        action: Set(e.action.as_str().to_string()),
        message: Set(e.message.clone()),
        start_time: Set(e.start_time),
        finish_time: Set(e.finish_time),
    })
}

fn step_model(
    release_id: &str,
    env: &str,
    idx: usize,
    s: &StepRun,
) -> Result<step_run::ActiveModel> {
    Ok(step_run::ActiveModel {
        release_id: Set(release_id.to_string()),
        environment: Set(env.to_string()),
        idx: Set(idx as i32),
        kind: Set(s.kind.as_str().to_string()),
        workflow: Set(s.workflow.clone()),
        status: Set(s.status.as_str().to_string()),
        message: Set(s.message.clone()),
        attempt: Set(s.attempt),
        idempotency_key: Set(step_key(release_id, env, idx, s.attempt)),
        deadline: Set(s.deadline),
        start_time: Set(s.start_time),
        finish_time: Set(s.finish_time),
        commit_sha: Set(s.commit_sha.clone()),
        url: Set(s.url.clone()),
        pull_request: Set(s.pull_request),
        approval: Set(s.approval.as_ref().map(to_json).transpose()?),
    })
}

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e| Error::Internal(format!("stored {what}: {e}")))
}

fn step_from(m: &step_run::Model) -> Result<StepRun> {
    Ok(StepRun {
        kind: parse("step kind", &m.kind)?,
        workflow: m.workflow.clone(),
        status: parse("step status", &m.status)?,
        message: m.message.clone(),
        attempt: m.attempt,
        deadline: m.deadline,
        start_time: m.start_time,
        finish_time: m.finish_time,
        commit_sha: m.commit_sha.clone(),
        url: m.url.clone(),
        pull_request: m.pull_request,
        approval: m.approval.as_deref().map(from_json).transpose()?,
    })
}

/// The idempotency key of a step run: stable when the step is re-run after
/// a crash, new for each retry attempt.
pub fn idempotency_key(r: &Release, at: StepRef) -> String {
    let env = at
        .env
        .and_then(|e| r.envs.get(e))
        .map(|e| e.environment.as_str())
        .unwrap_or("");
    let attempt = r.step(at).map(|s| s.attempt).unwrap_or(1);
    step_key(&r.id, env, at.idx, attempt)
}

/// Loads a whole release.
pub(crate) async fn load_release<C: ConnectionTrait>(db: &C, id: &str) -> Result<Release> {
    let r = release::Entity::find_by_id(id.to_string())
        .one(db)
        .await?
        .ok_or_else(|| Error::not_found("release", id))?;
    let mut loaded = load_many(db, vec![r]).await?;
    loaded.pop().ok_or_else(|| Error::not_found("release", id))
}

/// Loads whole releases from their rows, in two more queries.
async fn load_many<C: ConnectionTrait>(db: &C, rows: Vec<release::Model>) -> Result<Vec<Release>> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let envs = environment_run::Entity::find()
        .filter(environment_run::Column::ReleaseId.is_in(ids.clone()))
        .order_by_asc(environment_run::Column::ReleaseId)
        .order_by_asc(environment_run::Column::Position)
        .all(db)
        .await?;
    let steps = step_run::Entity::find()
        .filter(step_run::Column::ReleaseId.is_in(ids))
        .order_by_asc(step_run::Column::ReleaseId)
        .order_by_asc(step_run::Column::Environment)
        .order_by_asc(step_run::Column::Idx)
        .all(db)
        .await?;
    let mut steps_by: BTreeMap<(String, String), Vec<StepRun>> = BTreeMap::new();
    for s in &steps {
        steps_by
            .entry((s.release_id.clone(), s.environment.clone()))
            .or_default()
            .push(step_from(s)?);
    }
    let mut envs_by: BTreeMap<String, Vec<EnvRun>> = BTreeMap::new();
    for e in envs {
        let env_steps = steps_by
            .remove(&(e.release_id.clone(), e.environment.clone()))
            .unwrap_or_default();
        envs_by
            .entry(e.release_id.clone())
            .or_default()
            .push(EnvRun {
                status: parse("environment status", &e.status)?,
                depends_on: from_json(&e.depends_on)?,
                blocked_on: from_json(&e.blocked_on)?,
                attempt: e.attempt,
                action: parse::<Action>("action", &e.action)?,
                application: e.application,
                message: e.message,
                start_time: e.start_time,
                finish_time: e.finish_time,
                steps: env_steps,
                environment: e.environment,
            });
    }
    rows.into_iter()
        .map(|r| {
            Ok(Release {
                status: parse("release status", &r.status)?,
                context: from_json(&r.context)?,
                hooks: steps_by
                    .remove(&(r.id.clone(), String::new()))
                    .unwrap_or_default(),
                envs: envs_by.remove(&r.id).unwrap_or_default(),
                promotion_timeout_secs: r.promotion_timeout_secs.map(|s| s.max(0) as u64),
                id: r.id,
                product: r.product,
                flow: r.flow,
                flow_version: r.flow_version,
                version: r.app_version,
                initiator: r.initiator,
                actor: r.actor,
                terminated_by: r.terminated_by,
                trigger_message: r.trigger_message,
                message: r.message,
                request_id: r.request_id,
                last_seq: r.last_seq,
                terminate_reason: r.terminate_reason,
                deadline: r.deadline,
                create_time: r.create_time,
                start_time: r.start_time,
                finish_time: r.finish_time,
                source_commit: r.source_commit,
                promotion: r
                    .promotion
                    .as_deref()
                    .map(from_json)
                    .transpose()?
                    .map(std::sync::Arc::new),
            })
        })
        .collect()
}

/// Writes the rows behind `changes` and one event per change. The release
/// row is updated only if its `last_seq` is still `expected_seq` and, for a
/// worker's writes, only while the worker still holds the lease (`fence`).
async fn persist_in(
    txn: &DatabaseTransaction,
    outbox: &mut Outbox,
    r: &mut Release,
    changes: &[Change],
    expected_seq: i64,
    effects: &[SideEffect],
    fence: Option<&Fence>,
) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    // One event per changed thing, causes before effects (see `Change`).
    let mut sorted = changes.to_vec();
    crate::domain::release::normalize(&mut sorted);
    let changes = &sorted[..];
    let t = now();
    let first_seq = expected_seq + 1;
    r.last_seq = expected_seq + changes.len() as i64;
    let mut model = release_model(r)?;
    // Lease and identity columns are not this writer's business.
    model.lease_owner = sea_orm::ActiveValue::NotSet;
    model.lease_expires_at = sea_orm::ActiveValue::NotSet;
    model.lease_epoch = sea_orm::ActiveValue::NotSet;
    model.id = sea_orm::ActiveValue::NotSet;
    // Written once, with the release: it never changes and may be large.
    model.promotion = sea_orm::ActiveValue::NotSet;
    let mut update = release::Entity::update_many()
        .set(model)
        .filter(release::Column::Id.eq(r.id.as_str()))
        .filter(release::Column::LastSeq.eq(expected_seq));
    if let Some(f) = fence {
        update = update
            .filter(release::Column::LeaseOwner.eq(f.owner.as_str()))
            .filter(release::Column::LeaseEpoch.eq(f.epoch));
    }
    let res = update.exec(txn).await?;
    if res.rows_affected != 1 {
        r.last_seq = expected_seq;
        return Err(Error::Aborted(format!(
            "release {} changed concurrently; reload and retry",
            r.id
        )));
    }
    let mut envs_done = Vec::new();
    let mut steps_done = Vec::new();
    for c in changes {
        match *c {
            Change::Release => {}
            Change::Env(e) => envs_done.push(e),
            Change::Step(at) => steps_done.push(at),
        }
    }
    envs_done.sort_unstable();
    envs_done.dedup();
    let mut env_rows = Vec::with_capacity(envs_done.len());
    for e in envs_done {
        let env = r
            .envs
            .get(e)
            .ok_or_else(|| Error::Internal(format!("no environment run {e}")))?;
        env_rows.push(env_model(&r.id, e, env)?);
        // Steps of a changed environment are written too: retries reset them.
        for idx in 0..env.steps.len() {
            steps_done.push(StepRef { env: Some(e), idx });
        }
    }
    steps_done.sort_unstable();
    steps_done.dedup();
    let mut step_rows = Vec::with_capacity(steps_done.len());
    for at in steps_done {
        let env = at
            .env
            .and_then(|e| r.envs.get(e))
            .map(|e| e.environment.as_str())
            .unwrap_or_default();
        let s = r
            .step(at)
            .ok_or_else(|| Error::Internal(format!("no step {at:?}")))?;
        step_rows.push(step_model(&r.id, env, at.idx, s)?);
    }
    // Written with the group's at its flush (they overwrite the rows that
    // exist since the release was created).
    outbox.put_runs(env_rows, step_rows)?;
    for SideEffect::RecordVersion { environment } in effects {
        super::catalog::set_version(
            txn,
            &r.product,
            environment,
            &r.version,
            super::catalog::CommitUpdate::Keep,
        )
        .await?;
    }
    let bodies: Vec<EventBody> = changes.iter().filter_map(|c| r.event_body(*c)).collect();
    outbox.add(r, first_seq, bodies, t);
    Ok(())
}

/// The row of a numbered event.
pub(super) fn event_row(e: &StoredEvent) -> Result<event::ActiveModel> {
    Ok(event::ActiveModel {
        release_id: Set(e.release_id.clone()),
        seq: Set(e.seq),
        position: Set(e.position),
        product: Set(e.product.clone()),
        flow: Set(e.flow.clone()),
        time: Set(e.time),
        payload: Set(to_json(&e.body)?),
    })
}

/// A new release's own rows: the release, its environment runs and its
/// step runs (hooks and every environment's).
type ReleaseRows = (
    release::ActiveModel,
    Vec<environment_run::ActiveModel>,
    Vec<step_run::ActiveModel>,
);

fn release_rows(r: &Release) -> Result<ReleaseRows> {
    let env_rows = r
        .envs
        .iter()
        .enumerate()
        .map(|(i, e)| env_model(&r.id, i, e))
        .collect::<Result<Vec<_>>>()?;
    let mut step_rows = Vec::new();
    for (i, h) in r.hooks.iter().enumerate() {
        step_rows.push(step_model(&r.id, "", i, h)?);
    }
    for e in &r.envs {
        for (i, s) in e.steps.iter().enumerate() {
            step_rows.push(step_model(&r.id, &e.environment, i, s)?);
        }
    }
    Ok((release_model(r)?, env_rows, step_rows))
}

fn event_from(m: event::Model) -> Result<StoredEvent> {
    Ok(StoredEvent {
        body: from_json(&m.payload)?,
        release_id: m.release_id,
        seq: m.seq,
        position: m.position,
        product: m.product,
        flow: m.flow,
        time: m.time,
    })
}

/// Locks the product's row for the rest of the transaction, so concurrency
/// decisions (queue, supersede) for one product are taken one at a time
/// across replicas. Call it before the transaction reads anything.
///
/// On SQLite this is a no-op write: a transaction that reads first and
/// writes later cannot wait for a concurrent writer (WAL answers
/// `SQLITE_BUSY_SNAPSHOT` at once, whatever the busy timeout), so the
/// transaction must take the single write lock before its first read.
async fn lock_product(txn: &DatabaseTransaction, product: &str) -> Result<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        product::Entity::find_by_id(product.to_string())
            .lock_exclusive()
            .one(txn)
            .await?;
    } else {
        product::Entity::update_many()
            .col_expr(
                product::Column::Name,
                sea_orm::sea_query::Expr::col(product::Column::Name),
            )
            .filter(product::Column::Name.eq(product))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// When the product named `name` was created; `None` when there is none.
async fn product_created<C: ConnectionTrait>(
    db: &C,
    name: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    Ok(product::Entity::find_by_id(name.to_string())
        .select_only()
        .column(product::Column::CreateTime)
        .into_tuple::<chrono::DateTime<chrono::Utc>>()
        .one(db)
        .await?)
}

/// True when the product of `r` was deleted since `r` was created (it is
/// gone, or a new product of the same name was created after `r`): the
/// release is history then, readable but not retried, and not listed
/// among the new product's releases.
async fn is_history<C: ConnectionTrait>(db: &C, r: &Release) -> Result<bool> {
    Ok(match product_created(db, &r.product).await? {
        None => true,
        Some(created) => created > r.create_time,
    })
}

/// The product's active releases with their status, oldest first: what
/// admission decides on.
async fn active_releases<C: ConnectionTrait>(
    db: &C,
    product: &str,
) -> Result<Vec<(String, ReleaseStatus)>> {
    let rows: Vec<(String, String)> = release::Entity::find()
        .select_only()
        .column(release::Column::Id)
        .column(release::Column::Status)
        .filter(release::Column::Product.eq(product))
        .filter(release::Column::Status.is_in(ACTIVE.iter().map(|s| s.as_str())))
        .order_by_asc(release::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    rows.into_iter()
        .map(|(id, status)| Ok((id, parse("release status", &status)?)))
        .collect()
}

/// Ids of the product's releases in `statuses`, oldest first.
async fn releases_in<C: ConnectionTrait>(
    db: &C,
    product: &str,
    statuses: &[ReleaseStatus],
) -> Result<Vec<String>> {
    Ok(release::Entity::find()
        .select_only()
        .column(release::Column::Id)
        .filter(release::Column::Product.eq(product))
        .filter(release::Column::Status.is_in(statuses.iter().map(|s| s.as_str())))
        .order_by_asc(release::Column::Id)
        .into_tuple::<String>()
        .all(db)
        .await?)
}

const ACTIVE: [ReleaseStatus; 4] = [
    ReleaseStatus::Running,
    ReleaseStatus::Suspended,
    ReleaseStatus::Terminating,
    ReleaseStatus::Queued,
];

/// Claims idempotency key `key` of `scope` for a request hashed `hash`;
/// false when it was claimed before.
async fn claim_key<C: ConnectionTrait>(
    db: &C,
    scope: &str,
    key: &str,
    hash: &str,
    release_id: Option<&str>,
) -> Result<bool> {
    let inserted = idempotency_key::Entity::insert(idempotency_key::ActiveModel {
        scope: Set(scope.into()),
        key: Set(key.to_string()),
        request_hash: Set(hash.to_string()),
        release_id: Set(release_id.map(str::to_string)),
        response: Set(None),
        create_time: Set(now()),
    })
    .on_conflict(
        OnConflict::columns([idempotency_key::Column::Scope, idempotency_key::Column::Key])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(inserted == 1)
}

/// The release an idempotency key already created, if `hash` matches.
async fn existing_request<C: ConnectionTrait>(db: &C, key: &str, hash: &str) -> Result<Created> {
    let row = idempotency_key::Entity::find_by_id(("trigger".to_string(), key.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| Error::Internal("idempotency key vanished".into()))?;
    if row.request_hash != hash {
        return Err(Error::AlreadyExists(format!(
            "request_id {key:?} was already used for a different request; use a new request_id"
        )));
    }
    row.release_id
        .map(Created::Existing)
        .ok_or_else(|| Error::Internal("idempotency key without release".into()))
}

/// [`Store::create_release`] in `txn`, its events added to `outbox`.
async fn create_in(
    txn: &DatabaseTransaction,
    outbox: &mut Outbox,
    mut r: Release,
    request: Option<(&str, &str)>,
    concurrency: Concurrency,
    deployment: Option<Deployment<'_>>,
) -> Result<Created> {
    if let Some((key, hash)) = request
        && !claim_key(txn, "trigger", key, hash, Some(&r.id)).await?
    {
        return existing_request(txn, key, hash).await;
    }
    lock_product(txn, &r.product).await?;
    let application = match deployment {
        Some(d) => Some({
            // A lost race rolls everything back: one release per commit.
            d.advance_watch(txn).await?;
            super::catalog::record_version(
                txn,
                &r.product,
                d.environment,
                d.version,
                super::catalog::CommitUpdate::Replace(d.commit),
            )
            .await?
            .into()
        }),
        None => None,
    };
    let mut terminating = Vec::new();
    let now_t = now();
    let others = active_releases(txn, &r.product).await?;
    let admission = admission::admit(concurrency, &r.product, &r.id, &others);
    for (id, reason) in &admission.terminate {
        // Runs written earlier in the group are read back.
        outbox.write_rows(txn).await?;
        let mut old = load_release(txn, id).await?;
        let seq = old.last_seq;
        let ch = old.terminate(reason, SUPERSEDED_BY, now_t);
        if old.status == ReleaseStatus::Terminating {
            terminating.push(id.clone());
        }
        persist_in(txn, outbox, &mut old, &ch, seq, &[], None).await?;
    }
    let start = admission.start;
    if let Some(ahead) = &admission.behind {
        r.message = admission::queued_message(ahead);
    }
    // The release's snapshot is event 1; a release that starts at once is
    // written started (and its first steps taken), with their events after
    // the snapshot: its rows are inserted once, not inserted and rewritten.
    let mut bodies = vec![EventBody::Snapshot(Box::new(r.clone()))];
    if start {
        let ch = r.start_and_advance(now_t);
        bodies.extend(ch.iter().filter_map(|c| r.event_body(*c)));
    }
    r.last_seq = bodies.len() as i64;
    // The release row now (the next trigger of the product must see it);
    // its runs with the group's at the flush.
    let (row, env_rows, step_rows) = release_rows(&r)?;
    release::Entity::insert(row)
        .exec_without_returning(txn)
        .await?;
    outbox.put_runs(env_rows, step_rows)?;
    outbox.add(&r, 1, bodies, now_t);
    Ok(Created::New {
        release: Box::new(r),
        // Filled in once the group committed.
        events: Vec::new(),
        terminating,
        application,
    })
}

/// [`Store::promote_queued`] in `txn`.
async fn promote_in(
    txn: &DatabaseTransaction,
    outbox: &mut Outbox,
    product: String,
) -> Result<Option<Release>> {
    lock_product(txn, &product).await?;
    let active = releases_in(
        txn,
        &product,
        &[
            ReleaseStatus::Running,
            ReleaseStatus::Suspended,
            ReleaseStatus::Terminating,
        ],
    )
    .await?;
    if !active.is_empty() {
        return Ok(None);
    }
    let Some(next) = releases_in(txn, &product, &[ReleaseStatus::Queued])
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    outbox.write_rows(txn).await?;
    let mut r = load_release(txn, &next).await?;
    let seq = r.last_seq;
    let ch = r.start_and_advance(now());
    persist_in(txn, outbox, &mut r, &ch, seq, &[], None).await?;
    Ok(Some(r))
}

/// [`Store::persist_sole_active`] in `txn`.
async fn sole_active_in(
    txn: &DatabaseTransaction,
    outbox: &mut Outbox,
    r: &mut Release,
    changes: &[Change],
    expected_seq: i64,
) -> Result<()> {
    lock_product(txn, &r.product).await?;
    // A release of a deleted product is history: its applications are
    // gone (or belong to a new product of the same name). Checked under
    // the product's lock, so a concurrent delete cannot slip between.
    if is_history(txn, r).await? {
        return Err(Error::FailedPrecondition(format!(
            "release {} belongs to product {:?}, which was deleted; it is kept as history and cannot be retried",
            r.id, r.product
        )));
    }
    let other: Option<(String, String)> = release::Entity::find()
        .select_only()
        .column(release::Column::Id)
        .column(release::Column::Status)
        .filter(release::Column::Product.eq(r.product.as_str()))
        .filter(release::Column::Id.ne(r.id.as_str()))
        .filter(release::Column::Status.is_in(ACTIVE.iter().map(|s| s.as_str())))
        .order_by_asc(release::Column::Id)
        .into_tuple()
        .one(txn)
        .await?;
    if let Some((other, status)) = other {
        return Err(Error::FailedPrecondition(format!(
            "release {other} of product {:?} is {status}; retry {} once it is final (or terminate it)",
            r.product, r.id
        )));
    }
    persist_in(txn, outbox, r, changes, expected_seq, &[], None).await
}

impl Store {
    /// Creates a release (status decided here by the product's concurrency
    /// policy), honouring the idempotency key `request` (key, request hash).
    /// The release is created in the writer's next group; one that records
    /// a deployment (which borrows what the poller saw) in a transaction of
    /// its own.
    pub async fn create_release(
        &self,
        r: Release,
        request: Option<(&str, &str)>,
        concurrency: Concurrency,
        deployment: Option<Deployment<'_>>,
    ) -> Result<Created> {
        let (mut created, events) = match deployment {
            None => {
                let request = request.map(|(k, h)| (k.to_string(), h.to_string()));
                let product = r.product.clone();
                self.grouped(&product, move |txn, outbox| {
                    let (r, request) = (r.clone(), request.clone());
                    Box::pin(async move {
                        let request = request.as_ref().map(|(k, h)| (k.as_str(), h.as_str()));
                        create_in(txn, outbox, r, request, concurrency, None).await
                    })
                })
                .await?
            }
            Some(d) => {
                let txn = self.writer().begin().await?;
                let mut outbox = Outbox::default();
                let created =
                    create_in(&txn, &mut outbox, r, request, concurrency, Some(d)).await?;
                (created, outbox.commit(txn, &self.finished).await?)
            }
        };
        if let Created::New { events: e, .. } = &mut created {
            *e = events;
        }
        Ok(created)
    }

    /// The store's raw write limit, for the `raw-store` anchor of
    /// `promoflow bench`: the rows of release `r` (its row, its environment
    /// and step runs) and `events` event rows (its snapshot, then its
    /// environments' states in turn) inserted in one transaction, one
    /// multi-row statement per table, through the same writer pool, driver
    /// and pragmas as every write, and with none of promoflow's logic: no
    /// admission, no product lock, no event clock (positions are
    /// `first_position..`), no notification. Every real write path does at
    /// least this much work; the bench reports each as a fraction of it.
    pub async fn insert_raw_release(
        &self,
        r: &Release,
        events: usize,
        first_position: i64,
    ) -> Result<()> {
        let txn = self.writer().begin().await?;
        let (row, env_rows, step_rows) = release_rows(r)?;
        release::Entity::insert(row)
            .exec_without_returning(&txn)
            .await?;
        insert_batched(&txn, env_rows).await?;
        insert_batched(&txn, step_rows).await?;
        let t = now();
        let rows = (0..events)
            .map(|k| {
                // The snapshot first, then the environments' states in turn.
                let env = k
                    .checked_sub(1)
                    .and_then(|j| r.envs.get(j % r.envs.len().max(1)));
                let body = match env {
                    Some(e) => EventBody::Environment(Box::new(e.clone())),
                    None => EventBody::Snapshot(Box::new(r.clone())),
                };
                event_row(&StoredEvent {
                    release_id: r.id.clone(),
                    seq: k as i64 + 1,
                    position: first_position + k as i64,
                    product: r.product.clone(),
                    flow: r.flow.clone(),
                    time: t,
                    body,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        insert_batched(&txn, rows).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Claims the deployment-report idempotency key `key` for a request
    /// hashed `hash`. `Ok(None)`: first use, go ahead (then call
    /// [`Store::finish_report`]); `Ok(Some(..))`: a replay, with the stored
    /// answer (application JSON, release id).
    pub async fn claim_report(
        &self,
        key: &str,
        hash: &str,
    ) -> Result<Option<(String, Option<String>)>> {
        if claim_key(self.writer(), "report", key, hash, None).await? {
            return Ok(None);
        }
        let row = idempotency_key::Entity::find_by_id(("report".to_string(), key.to_string()))
            .one(self.db())
            .await?
            .ok_or_else(|| Error::Internal("idempotency key vanished".into()))?;
        if row.request_hash != hash {
            return Err(Error::AlreadyExists(format!(
                "request_id {key:?} was already used for a different deployment report; use a new request_id"
            )));
        }
        match row.response {
            Some(resp) => Ok(Some((resp, row.release_id))),
            None => Err(Error::Unavailable(format!(
                "the first request with request_id {key:?} is still being processed; retry"
            ))),
        }
    }

    /// Stores the answer of a claimed deployment report for its replays.
    pub async fn finish_report(
        &self,
        key: &str,
        response: &str,
        release_id: Option<&str>,
    ) -> Result<()> {
        idempotency_key::Entity::update_many()
            .col_expr(
                idempotency_key::Column::Response,
                sea_orm::sea_query::Expr::value(response.to_string()),
            )
            .col_expr(
                idempotency_key::Column::ReleaseId,
                sea_orm::sea_query::Expr::value(release_id.map(str::to_string)),
            )
            .filter(idempotency_key::Column::Scope.eq("report"))
            .filter(idempotency_key::Column::Key.eq(key))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Forgets a claimed key whose request failed, so it can be sent again.
    pub async fn release_report_claim(&self, key: &str) -> Result<()> {
        idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::Scope.eq("report"))
            .filter(idempotency_key::Column::Key.eq(key))
            .exec(self.writer())
            .await?;
        Ok(())
    }

    /// Starts the oldest queued release of `product` when none is active.
    /// Returns it with the events written.
    pub async fn promote_queued(
        &self,
        product: &str,
    ) -> Result<Option<(Release, Vec<StoredEvent>)>> {
        let owned = product.to_string();
        let (started, events) = self
            .grouped(product, move |txn, outbox| {
                Box::pin(promote_in(txn, outbox, owned.clone()))
            })
            .await?;
        Ok(started.map(|r| (r, events)))
    }

    /// Persists `changes` of `r` (read at `expected_seq`) with their events;
    /// `fence` makes the write conditional on holding the release's lease.
    pub async fn persist(
        &self,
        r: &mut Release,
        changes: &[Change],
        expected_seq: i64,
        effects: &[SideEffect],
        fence: Option<&Fence>,
    ) -> Result<Vec<StoredEvent>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let (changes, effects, fence) = (
            std::sync::Arc::new(changes.to_vec()),
            std::sync::Arc::new(effects.to_vec()),
            fence.cloned(),
        );
        self.write_release(r, move |txn, outbox, r| {
            let (changes, effects, fence) = (changes.clone(), effects.clone(), fence.clone());
            Box::pin(async move {
                let fence = fence.as_ref();
                persist_in(txn, outbox, r, &changes, expected_seq, &effects, fence).await
            })
        })
        .await
    }

    /// Like [`Store::persist`], for a release that must be the only active
    /// one of its product (a retry): the product is locked and the check is
    /// made in the same transaction as the write, so two retries racing each
    /// other (or a trigger) cannot both pass it.
    /// Also refuses a release of a deleted product (see `is_history`).
    pub async fn persist_sole_active(
        &self,
        r: &mut Release,
        changes: &[Change],
        expected_seq: i64,
    ) -> Result<Vec<StoredEvent>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let changes = std::sync::Arc::new(changes.to_vec());
        self.write_release(r, move |txn, outbox, r| {
            let changes = changes.clone();
            Box::pin(async move { sole_active_in(txn, outbox, r, &changes, expected_seq).await })
        })
        .await
    }

    /// Applies `write` to a copy of `r` in the writer's next group (a copy
    /// per run: a group may be redone); once committed, `r` takes the new
    /// `last_seq`. Returns the events written.
    async fn write_release<F>(&self, r: &mut Release, write: F) -> Result<Vec<StoredEvent>>
    where
        F: for<'a> Fn(
                &'a DatabaseTransaction,
                &'a mut Outbox,
                &'a mut Release,
            ) -> futures::future::BoxFuture<'a, Result<()>>
            + Send
            + Sync
            + 'static,
    {
        let (read, write) = (r.clone(), std::sync::Arc::new(write));
        let (last_seq, events) = self
            .grouped(&r.product, move |txn, outbox| {
                let (mut owned, write) = (read.clone(), std::sync::Arc::clone(&write));
                Box::pin(async move {
                    write(txn, outbox, &mut owned).await?;
                    Ok(owned.last_seq)
                })
            })
            .await?;
        r.last_seq = last_seq;
        Ok(events)
    }

    /// Reads release `id` whole.
    ///
    /// A final release is served from memory until a write changes it
    /// (a retry), here or on another replica (see [`super::changes`]).
    pub async fn get_release(&self, id: &str) -> Result<Release> {
        if let Some(cached) = self.finished.get(id) {
            return Ok((*cached).clone());
        }
        let mark = self.finished.mark();
        let r = load_release(self.db(), id).await?;
        if r.status.is_final() {
            self.finished
                .remember(mark, r.id.clone(), std::sync::Arc::new(r.clone()));
        }
        Ok(r)
    }

    /// A release and its events' high-water mark read together, for
    /// snapshots that streams continue from without gap.
    pub async fn release_snapshot(&self, id: &str) -> Result<Release> {
        let txn = self.begin_snapshot().await?;
        let r = load_release(&txn, id).await;
        txn.commit().await?;
        r
    }

    /// A read transaction that sees one consistent snapshot on both backends.
    pub(crate) async fn begin_snapshot(&self) -> Result<DatabaseTransaction> {
        Ok(if self.backend() == DbBackend::Postgres {
            self.db()
                .begin_with_config(Some(sea_orm::IsolationLevel::RepeatableRead), None)
                .await?
        } else {
            self.db().begin().await?
        })
    }

    /// Ids of releases that are not final and not queued: what the engine
    /// resumes at start-up.
    pub async fn unfinished_releases(&self) -> Result<Vec<String>> {
        Ok(release::Entity::find()
            .select_only()
            .column(release::Column::Id)
            .filter(release::Column::Status.is_in([
                ReleaseStatus::Running.as_str(),
                ReleaseStatus::Suspended.as_str(),
                ReleaseStatus::Terminating.as_str(),
            ]))
            .order_by_asc(release::Column::Id)
            .into_tuple::<String>()
            .all(self.db())
            .await?)
    }

    /// Products with queued releases (to promote at start-up).
    pub async fn products_with_queue(&self) -> Result<Vec<String>> {
        Ok(release::Entity::find()
            .select_only()
            .column(release::Column::Product)
            .distinct()
            .filter(release::Column::Status.eq(ReleaseStatus::Queued.as_str()))
            .into_tuple::<String>()
            .all(self.db())
            .await?)
    }

    /// Releases newest first, filtered, paginated by id.
    pub async fn list_releases(
        &self,
        product: &str,
        flow: &str,
        status: Option<ReleaseStatus>,
        page: &super::PageRequest,
    ) -> Result<super::Page<Release>> {
        let mut q = release::Entity::find()
            .order_by_desc(release::Column::Id)
            .limit(page.size + 1);
        if !product.is_empty() {
            q = q.filter(release::Column::Product.eq(product));
            // Releases of an earlier, deleted product of that name are not
            // the current product's (they stay listed without the filter).
            if let Some(created) = product_created(self.db(), product).await? {
                q = q.filter(release::Column::CreateTime.gte(created));
            }
        }
        if !flow.is_empty() {
            q = q.filter(release::Column::Flow.eq(flow));
        }
        if let Some(s) = status {
            q = q.filter(release::Column::Status.eq(s.as_str()));
        }
        if let Some(after) = &page.after {
            q = q.filter(release::Column::Id.lt(after.as_str()));
        }
        let rows = q.all(self.db()).await?;
        let page = super::Page::from_fetched(rows, page, |m| m.id.clone());
        let items = load_many(self.db(), page.items).await?;
        Ok(super::Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    /// Events of one release with `seq > after`, in order, at most `limit`.
    /// The latest `seq` of each of these releases (unknown ids are left out).
    pub async fn last_seqs(&self, ids: &[String]) -> Result<Vec<(String, i64)>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(super::BATCH) {
            out.extend(
                release::Entity::find()
                    .select_only()
                    .column(release::Column::Id)
                    .column(release::Column::LastSeq)
                    .filter(release::Column::Id.is_in(chunk.iter().cloned()))
                    .into_tuple::<(String, i64)>()
                    .all(self.db())
                    .await?,
            );
        }
        Ok(out)
    }

    pub async fn events_after(
        &self,
        release_id: &str,
        after: i64,
        limit: u64,
    ) -> Result<Vec<StoredEvent>> {
        event::Entity::find()
            .filter(event::Column::ReleaseId.eq(release_id))
            .filter(event::Column::Seq.gt(after))
            .order_by_asc(event::Column::Seq)
            .limit(limit)
            .all(self.db())
            .await?
            .into_iter()
            .map(event_from)
            .collect()
    }

    /// Events of all releases with `after < position <= upto`, filtered,
    /// in position order, at most `limit`.
    pub async fn events_between(
        &self,
        after: i64,
        upto: i64,
        product: &str,
        flow: &str,
        limit: u64,
    ) -> Result<Vec<StoredEvent>> {
        let mut q = event::Entity::find()
            .filter(event::Column::Position.gt(after))
            .filter(event::Column::Position.lte(upto))
            .order_by_asc(event::Column::Position)
            .limit(limit);
        if !product.is_empty() {
            q = q.filter(event::Column::Product.eq(product));
        }
        if !flow.is_empty() {
            q = q.filter(event::Column::Flow.eq(flow));
        }
        q.all(self.db())
            .await?
            .into_iter()
            .map(event_from)
            .collect()
    }

    /// The latest global event position (for "from now" cursors).
    pub async fn latest_position(&self) -> Result<i64> {
        let row = self
            .db()
            .query_one_raw(Statement::from_string(
                self.backend(),
                "SELECT position FROM event_clock WHERE id = 1",
            ))
            .await?
            .ok_or_else(|| Error::Internal("event clock row missing".into()))?;
        Ok(row.try_get("", "position")?)
    }

    /// The flow version a release runs and each environment's status in it:
    /// what `RenderFlow` draws for a release.
    pub async fn release_graph(
        &self,
        release_id: &str,
    ) -> Result<(FlowSpec, BTreeMap<String, EnvironmentStatus>)> {
        let r = self.get_release(release_id).await?;
        let spec = self.get_flow(&r.flow, r.flow_version).await?.spec;
        let statuses = r
            .envs
            .into_iter()
            .map(|e| (e.environment, e.status))
            .collect();
        Ok((spec, statuses))
    }
}
