//! Repository functions for flows and their immutable versions.
//!
//! A flow is a row in `flows` (name, latest version, what it refers to) and
//! one row per version in `flow_versions`. Saving a change bumps the flow's
//! version with a conditional update and inserts the new version in the same
//! transaction, so concurrent editors with the same `expected_version` get
//! exactly one winner.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};

use super::catalog::{environment_ref, workflow_ref};
use super::changes::{Change, announce};
use super::entity::{flow, flow_version, product, release};
use super::versioned::{conflict, current_version, ensure_unused, ensure_version};
use super::{Page, PageRequest, Store, from_json, map_unique, now, to_json};
use crate::domain::flow::{FlowSpec, KnownNames};
use crate::error::{Error, Result};

const FLOW_COLS: (flow::Column, flow::Column) = (flow::Column::Name, flow::Column::Version);

/// One version of a flow, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlow {
    pub spec: FlowSpec,
    pub version: i64,
    /// When the flow was first created.
    pub create_time: chrono::DateTime<chrono::Utc>,
    /// When this version was saved.
    pub update_time: chrono::DateTime<chrono::Utc>,
}

/// What a flow's row says of its versions: the latest, and when the flow
/// was created.
pub(crate) type Latest = (i64, chrono::DateTime<chrono::Utc>);

/// A flow version remembered as parsed: name, the flow's creation time (µs)
/// and the version.
pub(crate) type VersionKey = (String, i64, i64);

/// The `flows.refs` entries of a spec: every environment and workflow it names.
fn refs(spec: &FlowSpec) -> Result<String> {
    let mut workflows: Vec<&str> = spec.workflow_names().collect();
    workflows.sort_unstable();
    workflows.dedup();
    let out: Vec<String> = spec
        .nodes()
        .map(environment_ref)
        .chain(workflows.into_iter().map(workflow_ref))
        .collect();
    to_json(&out)
}

fn stored(f_create: chrono::DateTime<chrono::Utc>, v: flow_version::Model) -> Result<StoredFlow> {
    Ok(StoredFlow {
        spec: from_json(&v.spec)?,
        version: v.version,
        create_time: f_create,
        update_time: v.create_time,
    })
}

async fn insert_version<C: ConnectionTrait>(
    db: &C,
    spec: &FlowSpec,
    version: i64,
    t: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    flow_version::Entity::insert(flow_version::ActiveModel {
        flow: Set(spec.name.clone()),
        version: Set(version),
        spec: Set(to_json(spec)?),
        create_time: Set(t),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

impl Store {
    /// The environments and workflows `spec` names that exist, for validation.
    pub async fn known_names(&self, spec: &FlowSpec) -> Result<KnownNames> {
        let envs: Vec<String> = spec.nodes().map(str::to_string).collect();
        let wfs: Vec<String> = spec.workflow_names().map(str::to_string).collect();
        self.known_names_among(&envs, &wfs).await
    }

    /// Which of these environments and workflows exist, for validation.
    ///
    /// Only valid names are looked up: no other can exist, validation
    /// reports them anyway, and a request's malformed name (with a NUL, say)
    /// must never reach a query.
    pub async fn known_names_among(
        &self,
        envs: &[String],
        workflows: &[String],
    ) -> Result<KnownNames> {
        let valid = |names: &[String]| -> Vec<String> {
            names
                .iter()
                .filter(|n| crate::domain::is_dns_label(n))
                .cloned()
                .collect()
        };
        Ok(KnownNames::new(
            self.existing_environments(&valid(envs)).await?,
            self.existing_workflows(&valid(workflows)).await?,
        ))
    }

    /// Creates a flow at version 1.
    pub async fn create_flow(&self, spec: &FlowSpec) -> Result<StoredFlow> {
        let t = now();
        let txn = self.writer().begin().await?;
        flow::Entity::insert(flow::ActiveModel {
            name: Set(spec.name.clone()),
            version: Set(1),
            refs: Set(refs(spec)?),
            create_time: Set(t),
            update_time: Set(t),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(|e| map_unique(e, || format!("flow {:?} already exists", spec.name)))?;
        insert_version(&txn, spec, 1, t).await?;
        announce(&txn, Change::Flow(&spec.name)).await?;
        super::audit::commit(txn).await?;
        self.latest_flows.forget([spec.name.as_str()]);
        self.get_flow(&spec.name, 0).await
    }

    /// Saves `spec` as the next version of its flow, if the latest version is
    /// still `expected` (0: whatever it is, for imports with `replace`).
    pub async fn save_flow_version(&self, spec: &FlowSpec, expected: i64) -> Result<StoredFlow> {
        let t = now();
        let txn = self.writer().begin().await?;
        // Write first, read after: a transaction that reads and then writes
        // cannot wait for a concurrent SQLite writer (WAL answers
        // `SQLITE_BUSY_SNAPSHOT` at once, whatever the busy timeout), while
        // one that starts with the write waits for the lock and then sees
        // the winner's version. On PostgreSQL the conditional update waits
        // for a concurrent one and re-checks the version after it commits.
        let mut update = flow::Entity::update_many()
            .col_expr(
                flow::Column::Version,
                Expr::col(flow::Column::Version).add(1),
            )
            .col_expr(flow::Column::Refs, Expr::value(refs(spec)?))
            .col_expr(flow::Column::UpdateTime, Expr::value(t))
            .filter(flow::Column::Name.eq(spec.name.as_str()));
        if expected != 0 {
            update = update.filter(flow::Column::Version.eq(expected));
        }
        let res = update.exec(&txn).await?;
        if res.rows_affected != 1 {
            return Err(conflict::<flow::Entity, _>(
                &txn,
                "flow",
                FLOW_COLS.0,
                FLOW_COLS.1,
                &spec.name,
                expected,
            )
            .await);
        }
        let version =
            current_version::<flow::Entity, _>(&txn, FLOW_COLS.0, FLOW_COLS.1, &spec.name)
                .await?
                .ok_or_else(|| Error::not_found("flow", &spec.name))?;
        insert_version(&txn, spec, version, t)
            .await
            // Two savers that both passed the update: the loser's insert hits
            // the primary key after the winner committed.
            .map_err(|_| Error::stale("flow", &spec.name, version - 1, version))?;
        announce(&txn, Change::Flow(&spec.name)).await?;
        super::audit::commit(txn).await?;
        self.latest_flows.forget([spec.name.as_str()]);
        self.get_flow(&spec.name, version).await
    }

    /// The latest version of a flow; `None` when there is no such flow.
    pub async fn latest_flow_version(&self, name: &str) -> Result<Option<i64>> {
        match self.flow_row(name).await {
            Ok((version, _)) => Ok(Some(version)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A version of a flow (0: the latest).
    ///
    /// Every trigger and every GetFlow asks, so both halves are remembered:
    /// the flow's row (its latest version and creation time) until a write
    /// here or on another replica changes it (see [`super::changes`]); and
    /// each version as parsed, since a version never changes.
    pub async fn get_flow(&self, name: &str, version: i64) -> Result<StoredFlow> {
        let (latest, created) = self.flow_row(name).await?;
        let wanted = if version == 0 { latest } else { version };
        let key = (name.to_string(), created.timestamp_micros(), wanted);
        if let Some(v) = self.flow_versions.get(&key) {
            return Ok((*v).clone());
        }
        let v = flow_version::Entity::find_by_id((name.to_string(), wanted))
            .one(self.db())
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "flow {name:?} has no version {wanted} (latest is {latest})"
                ))
            })?;
        let found = stored(created, v)?;
        self.flow_versions
            .insert(key, std::sync::Arc::new(found.clone()));
        Ok(found)
    }

    /// The latest version of flow `name` and its creation time.
    async fn flow_row(&self, name: &str) -> Result<Latest> {
        let load = || async {
            Ok(flow::Entity::find_by_id(name.to_string())
                .one(self.db())
                .await?
                .map(|f| (f.version, f.create_time)))
        };
        let found = self.latest_flows.get_or_load(name, load).await?;
        found.ok_or_else(|| Error::not_found("flow", name))
    }

    /// Latest versions of flows, by name.
    pub async fn list_flows(&self, page: &PageRequest) -> Result<Page<StoredFlow>> {
        let mut q = flow::Entity::find()
            .order_by_asc(flow::Column::Name)
            .limit(page.size + 1);
        if let Some(after) = &page.after {
            q = q.filter(flow::Column::Name.gt(after.as_str()));
        }
        let rows = q.all(self.db()).await?;
        let page = Page::from_fetched(rows, page, |m| m.name.clone());
        if page.items.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_page_token: page.next_page_token,
            });
        }
        let mut cond = Condition::any();
        for f in &page.items {
            cond = cond.add(
                Condition::all()
                    .add(flow_version::Column::Flow.eq(f.name.as_str()))
                    .add(flow_version::Column::Version.eq(f.version)),
            );
        }
        let mut versions = flow_version::Entity::find()
            .filter(cond)
            .all(self.db())
            .await?;
        let mut items = Vec::with_capacity(page.items.len());
        for f in &page.items {
            let idx = versions
                .iter()
                .position(|v| v.flow == f.name)
                .ok_or_else(|| {
                    Error::Internal(format!("flow {:?} lost its latest version", f.name))
                })?;
            items.push(stored(f.create_time, versions.swap_remove(idx))?);
        }
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    /// Versions of one flow, newest first.
    pub async fn list_flow_versions(
        &self,
        name: &str,
        page: &PageRequest,
    ) -> Result<Page<StoredFlow>> {
        let f = flow::Entity::find_by_id(name.to_string())
            .one(self.db())
            .await?
            .ok_or_else(|| Error::not_found("flow", name))?;
        let mut q = flow_version::Entity::find()
            .filter(flow_version::Column::Flow.eq(name))
            .order_by_desc(flow_version::Column::Version)
            .limit(page.size + 1);
        if let Some(after) = &page.after {
            let after: i64 = after.parse().map_err(|_| {
                Error::invalid_field("page_token", "is not a token returned by this server")
            })?;
            q = q.filter(flow_version::Column::Version.lt(after));
        }
        let rows = q.all(self.db()).await?;
        let page = Page::from_fetched(rows, page, |m| m.version.to_string());
        let items = page
            .items
            .into_iter()
            .map(|v| stored(f.create_time, v))
            .collect::<Result<_>>()?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    /// Deletes a flow with all its versions, unless a product lists it or a
    /// release that is not final runs it.
    pub async fn delete_flow(&self, name: &str, expected: i64) -> Result<()> {
        let txn = self.writer().begin().await?;
        ensure_version::<flow::Entity, _>(&txn, "flow", FLOW_COLS, name, expected).await?;
        let pattern = format!("%\"flow\":{}%", serde_json::Value::String(name.to_string()));
        let products: Vec<String> = product::Entity::find()
            .select_only()
            .column(product::Column::Name)
            .filter(product::Column::PromotionFlows.like(pattern))
            .order_by_asc(product::Column::Name)
            .into_tuple::<String>()
            .all(&txn)
            .await?;
        let active: Vec<String> = release::Entity::find()
            .select_only()
            .column(release::Column::Id)
            .filter(release::Column::Flow.eq(name))
            .filter(release::Column::Status.is_not_in(super::catalog::FINAL_RELEASE_STATUSES))
            .limit(10)
            .into_tuple::<String>()
            .all(&txn)
            .await?;
        ensure_unused(
            "flow",
            name,
            &[("products", products), ("active releases", active)],
        )?;
        flow::Entity::delete_many()
            .filter(flow::Column::Name.eq(name))
            .exec(&txn)
            .await?;
        announce(&txn, Change::Flow(name)).await?;
        super::audit::commit(txn).await?;
        self.latest_flows.forget([name]);
        Ok(())
    }
}
