//! The audit log: one row per decision on a change, allowed or denied.
//!
//! A change and its audit row commit together. The authentication layer
//! opens an audit scope around each call that changes something
//! ([`scope`]); the handler names the object ([`describe`]); every write
//! transaction of the store ends in [`commit`], which inserts the scope's
//! row, once, in that transaction. A denied or failed call has no
//! transaction: the layer writes its row on its own ([`Store::record_audit`]).
//! Background work (workers, the poller) runs outside any scope and writes
//! no audit rows: its changes are the release events.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::entity::audit_event;
use super::{Page, PageRequest, Store, now};
use crate::error::Result;

/// How a decision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditResult {
    #[default]
    Ok,
    Denied,
    Error,
}

impl AuditResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Denied => "denied",
            Self::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Ok, Self::Denied, Self::Error]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// One row of the audit log. Never a secret or a request body: only
/// names, ids and the caller's metadata the server computed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditEvent {
    pub id: String,
    pub time: Option<DateTime<Utc>>,
    pub actor: String,
    pub actor_kind: String,
    pub action: String,
    pub resource: String,
    pub flow: String,
    pub environment: String,
    pub result: AuditResult,
    pub grpc_code: String,
    pub message: String,
    pub request_id: String,
    pub remote_address: String,
}

/// The audit row of the call in progress.
#[derive(Debug, Default)]
pub struct Pending {
    event: Mutex<AuditEvent>,
    /// Set once a transaction that carried the row committed.
    written: AtomicBool,
}

impl Pending {
    pub fn new(event: AuditEvent) -> Arc<Self> {
        Arc::new(Self {
            event: Mutex::new(event),
            written: AtomicBool::new(false),
        })
    }

    pub fn written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }

    pub fn event(&self) -> AuditEvent {
        self.event.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

tokio::task_local! {
    static PENDING: Arc<Pending>;
}

/// Runs `f` (a call's handler) with `pending` as its audit row.
pub async fn scope<F: Future>(pending: Arc<Pending>, f: F) -> F::Output {
    PENDING.scope(pending, f).await
}

/// Names the object of the call in progress (a no-op outside a scope).
pub fn describe(resource: impl Into<String>, flow: &str, environment: &str) {
    let _ = PENDING.try_with(|p| {
        if let Ok(mut e) = p.event.lock() {
            e.resource = resource.into();
            e.flow = flow.to_string();
            e.environment = environment.to_string();
        }
    });
}

fn model(e: AuditEvent) -> audit_event::ActiveModel {
    audit_event::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        time: Set(e.time.unwrap_or_else(now)),
        actor: Set(e.actor),
        actor_kind: Set(e.actor_kind),
        action: Set(e.action),
        resource: Set(e.resource),
        flow: Set(e.flow),
        environment: Set(e.environment),
        result: Set(e.result.as_str().to_string()),
        grpc_code: Set(e.grpc_code),
        message: Set(e.message),
        request_id: Set(e.request_id),
        remote_address: Set(e.remote_address),
    }
}

async fn insert(db: &impl ConnectionTrait, e: AuditEvent) -> Result<()> {
    audit_event::Entity::insert(model(e))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The audit row of the call in progress, when no transaction has carried
/// it yet: the next write of the call writes it (see [`carry`]).
pub(crate) fn uncarried() -> Option<Arc<Pending>> {
    PENDING.try_with(Arc::clone).ok().filter(|p| !p.written())
}

/// The row of `pending` for a call that succeeded so far, to insert in its
/// write's transaction; mark it with [`carried`] once that committed.
pub(crate) fn carried_row(pending: &Pending) -> audit_event::ActiveModel {
    let mut e = pending.event();
    e.result = AuditResult::Ok;
    e.grpc_code = "OK".into();
    model(e)
}

/// Inserts the row of `pending` in `db`'s transaction (see [`carried_row`]).
pub(crate) async fn carry(db: &impl ConnectionTrait, pending: &Pending) -> Result<()> {
    audit_event::Entity::insert(carried_row(pending))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Records that a committed transaction carried the row of `pending`.
pub(crate) fn carried(pending: &Pending) {
    pending.written.store(true, Ordering::Release);
}

/// Commits a write transaction of the store, with the audit row of the
/// call in progress when it has not been written yet.
pub async fn commit(txn: DatabaseTransaction) -> Result<()> {
    let pending = uncarried();
    if let Some(p) = &pending {
        carry(&txn, p).await?;
    }
    txn.commit().await?;
    if let Some(p) = &pending {
        carried(p);
    }
    Ok(())
}

/// What [`Store::list_audit`] keeps.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub result: Option<AuditResult>,
}

fn event_from(m: audit_event::Model) -> AuditEvent {
    AuditEvent {
        id: m.id,
        time: Some(m.time),
        actor: m.actor,
        actor_kind: m.actor_kind,
        action: m.action,
        resource: m.resource,
        flow: m.flow,
        environment: m.environment,
        result: AuditResult::parse(&m.result).unwrap_or(AuditResult::Error),
        grpc_code: m.grpc_code,
        message: m.message,
        request_id: m.request_id,
        remote_address: m.remote_address,
    }
}

impl Store {
    /// A write transaction; end it with [`commit`] so the call's audit row
    /// commits with it.
    pub(crate) async fn write_txn(&self) -> Result<DatabaseTransaction> {
        Ok(self.writer().begin().await?)
    }

    /// Writes a row on its own: a denial, a failure, or an allowed call
    /// that changed nothing.
    pub async fn record_audit(&self, e: AuditEvent) -> Result<()> {
        insert(self.writer(), e).await
    }

    /// Newest first.
    pub async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let mut q = audit_event::Entity::find().order_by_desc(audit_event::Column::Id);
        if let Some(after) = &page.after {
            q = q.filter(audit_event::Column::Id.lt(after.as_str()));
        }
        for (col, value) in [
            (audit_event::Column::Actor, &filter.actor),
            (audit_event::Column::Action, &filter.action),
            (audit_event::Column::Resource, &filter.resource),
        ] {
            if !value.is_empty() {
                q = q.filter(col.eq(value.as_str()));
            }
        }
        if let Some(r) = filter.result {
            q = q.filter(audit_event::Column::Result.eq(r.as_str()));
        }
        let rows = q.limit(page.size + 1).all(self.db()).await?;
        let rows = rows.into_iter().map(event_from).collect();
        Ok(Page::from_fetched(rows, page, |e: &AuditEvent| {
            e.id.clone()
        }))
    }

    /// Deletes rows older than `before` (the retention); returns how many.
    pub async fn prune_audit(&self, before: DateTime<Utc>) -> Result<u64> {
        let r = audit_event::Entity::delete_many()
            .filter(audit_event::Column::Time.lt(before))
            .exec(self.writer())
            .await?;
        Ok(r.rows_affected)
    }
}
