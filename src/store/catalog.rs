//! Repository functions for the catalog: environments, products with their
//! applications, and workflows.
//!
//! The three share one shape (a name key, a `version` for optimistic
//! concurrency, delete protection), so the generic helpers at the top serve
//! all of them.

use std::collections::BTreeMap;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityName, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

use super::entity::{application, environment, environment_run, flow, product, release, workflow};
use super::releases::Deployment;
use super::versioned::{delete_named, ensure_unused, ensure_version, list_page, update_versioned};
use super::{Page, PageRequest, Store, from_json, map_unique, now, to_json};
use crate::domain::catalog::{
    Application, Commit, Concurrency, Environment, EnvironmentKind, Meta, Product, Workflow,
};
use crate::error::{Error, Result};

/// Names of flows whose latest version refers to `reference` (see [`flow_refs`]).
pub(crate) async fn flows_referring<C: ConnectionTrait>(
    db: &C,
    reference: &str,
) -> Result<Vec<String>> {
    let pattern = format!("%{}%", serde_json::Value::String(reference.to_string()));
    Ok(flow::Entity::find()
        .select_only()
        .column(flow::Column::Name)
        .filter(flow::Column::Refs.like(pattern))
        .order_by_asc(flow::Column::Name)
        .into_tuple::<String>()
        .all(db)
        .await?)
}

/// The reference strings stored in `flows.refs`.
pub fn environment_ref(name: &str) -> String {
    format!("environment:{name}")
}

pub fn workflow_ref(name: &str) -> String {
    format!("workflow:{name}")
}

fn meta(
    version: i64,
    create: chrono::DateTime<chrono::Utc>,
    update: chrono::DateTime<chrono::Utc>,
) -> Meta {
    Meta {
        version,
        create_time: Some(create),
        update_time: Some(update),
    }
}

// ---------------------------------------------------------------- environments

fn environment_from(m: environment::Model) -> Result<Environment> {
    Ok(Environment {
        kind: EnvironmentKind::parse(&m.kind)
            .ok_or_else(|| Error::Internal(format!("stored environment kind {:?}", m.kind)))?,
        labels: from_json(&m.labels)?,
        meta: meta(m.version, m.create_time, m.update_time),
        name: m.name,
        description: m.description,
    })
}

const ENV_COLS: (environment::Column, environment::Column) =
    (environment::Column::Name, environment::Column::Version);

impl Store {
    pub async fn create_environment(&self, env: &Environment) -> Result<Environment> {
        let txn = self.write_txn().await?;
        let t = now();
        let model = environment::ActiveModel {
            name: Set(env.name.clone()),
            kind: Set(env.kind.as_str().to_string()),
            description: Set(env.description.clone()),
            labels: Set(to_json(&env.labels)?),
            version: Set(1),
            create_time: Set(t),
            update_time: Set(t),
        };
        environment::Entity::insert(model)
            .exec_without_returning(&txn)
            .await
            .map_err(|e| map_unique(e, || format!("environment {:?} already exists", env.name)))?;
        super::audit::commit(txn).await?;
        self.get_environment(&env.name).await
    }

    pub async fn get_environment(&self, name: &str) -> Result<Environment> {
        let m = environment::Entity::find_by_id(name.to_string())
            .one(self.db())
            .await?
            .ok_or_else(|| Error::not_found("environment", name))?;
        environment_from(m)
    }

    /// Which of the environments `names` exist.
    pub async fn existing_environments(&self, names: &[String]) -> Result<Vec<String>> {
        existing_names(self.db(), environment::Entity.table_name(), names).await
    }

    pub async fn list_environments(&self, page: &PageRequest) -> Result<Page<Environment>> {
        let rows = list_page::<environment::Entity, _>(self.db(), ENV_COLS.0, page).await?;
        let page = Page::from_fetched(rows, page, |m| m.name.clone());
        let items = page
            .items
            .into_iter()
            .map(environment_from)
            .collect::<Result<_>>()?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    pub async fn update_environment(
        &self,
        env: &Environment,
        expected: i64,
    ) -> Result<Environment> {
        let txn = self.write_txn().await?;
        let model = environment::ActiveModel {
            kind: Set(env.kind.as_str().to_string()),
            description: Set(env.description.clone()),
            labels: Set(to_json(&env.labels)?),
            update_time: Set(now()),
            ..Default::default()
        };
        update_versioned::<environment::Entity, _>(
            &txn,
            "environment",
            ENV_COLS,
            &env.name,
            expected,
            model,
        )
        .await?;
        super::audit::commit(txn).await?;
        self.get_environment(&env.name).await
    }

    pub async fn delete_environment(&self, name: &str, expected: i64) -> Result<()> {
        let txn = self.writer().begin().await?;
        let products: Vec<String> = application::Entity::find()
            .select_only()
            .column(application::Column::Product)
            .filter(application::Column::Environment.eq(name))
            .order_by_asc(application::Column::Product)
            .into_tuple::<String>()
            .all(&txn)
            .await?;
        let flows = flows_referring(&txn, &environment_ref(name)).await?;
        ensure_version::<environment::Entity, _>(&txn, "environment", ENV_COLS, name, expected)
            .await?;
        ensure_unused(
            "environment",
            name,
            &[("products", products), ("flows", flows)],
        )?;
        delete_named::<environment::Entity, _>(&txn, ENV_COLS.0, name).await?;
        super::audit::commit(txn).await?;
        Ok(())
    }
}

// -------------------------------------------------------------------- products

/// Release statuses after which nothing more happens.
pub(crate) const FINAL_RELEASE_STATUSES: [&str; 3] = ["SUCCEEDED", "FAILED", "TERMINATED"];

const PRODUCT_COLS: (product::Column, product::Column) =
    (product::Column::Name, product::Column::Version);

fn product_from(m: product::Model, apps: Vec<application::Model>) -> Result<Product> {
    let applications = apps
        .into_iter()
        .map(application_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(Product {
        concurrency: Concurrency::parse(&m.concurrency)
            .ok_or_else(|| Error::Internal(format!("stored concurrency {:?}", m.concurrency)))?,
        promotion_flows: from_json(&m.promotion_flows)?,
        promotion_template: m.promotion_template.as_deref().map(from_json).transpose()?,
        promotion_template_ref: m.promotion_template_ref.unwrap_or_default(),
        meta: meta(m.version, m.create_time, m.update_time),
        applications,
        name: m.name,
        description: m.description,
    })
}

/// The stored form of the product's template reference: NULL for none, so
/// the foreign key only applies to real names.
fn template_ref(p: &Product) -> Option<String> {
    (!p.promotion_template_ref.is_empty()).then(|| p.promotion_template_ref.clone())
}

/// The API checked that the product's template exists; one deleted since
/// then surfaces as a foreign-key violation.
fn template_gone(e: &sea_orm::DbErr, p: &Product) -> Option<Error> {
    super::templates::is_foreign_key(e).then(|| {
        Error::FailedPrecondition(format!(
            "promotion template {:?} of product {:?} was deleted concurrently; retry",
            p.promotion_template_ref, p.name
        ))
    })
}

fn application_from(a: application::Model) -> Result<Application> {
    Ok(Application {
        last_commit: a
            .last_commit
            .as_deref()
            .map(from_json::<Commit>)
            .transpose()?,
        update_time: a.update_time,
        source: a.source.as_deref().map(from_json).transpose()?,
        argocd: a.argocd.as_deref().map(from_json).transpose()?,
        environment: a.environment,
        name: a.name,
        version: a.version,
    })
}

fn application_rows(
    p: &Product,
    t: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<application::ActiveModel>> {
    p.applications
        .iter()
        .enumerate()
        .map(|(i, a)| {
            Ok(application::ActiveModel {
                product: Set(p.name.clone()),
                environment: Set(a.environment.clone()),
                name: Set(a.name.clone()),
                version: Set(a.version.clone()),
                last_commit: Set(a.last_commit.as_ref().map(to_json).transpose()?),
                position: Set(i as i32),
                source: Set(a.source.as_ref().map(to_json).transpose()?),
                argocd: Set(a.argocd.as_ref().map(to_json).transpose()?),
                // A version given at creation counts as recorded then.
                update_time: Set(a.update_time.or((!a.version.is_empty()).then_some(t))),
            })
        })
        .collect()
}

async fn insert_applications<C: ConnectionTrait>(
    db: &C,
    p: &Product,
    t: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let rows = application_rows(p, t)?;
    if !rows.is_empty() {
        application::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .map_err(|e| match e.sql_err() {
                // The API validated the environments; one deleted since then
                // surfaces here as a foreign-key violation.
                Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_)) => Error::FailedPrecondition(
                    "an environment of the product's applications was deleted concurrently; retry".into(),
                ),
                _ => Error::Database(e),
            })?;
    }
    Ok(())
}

async fn load_applications<C: ConnectionTrait>(
    db: &C,
    names: &[String],
) -> Result<BTreeMap<String, Vec<application::Model>>> {
    let rows = application::Entity::find()
        .filter(application::Column::Product.is_in(names.iter().cloned()))
        .order_by_asc(application::Column::Product)
        .order_by_asc(application::Column::Position)
        .all(db)
        .await?;
    let mut by_product: BTreeMap<String, Vec<application::Model>> = BTreeMap::new();
    for r in rows {
        by_product.entry(r.product.clone()).or_default().push(r);
    }
    Ok(by_product)
}

impl Store {
    pub async fn create_product(&self, p: &Product) -> Result<Product> {
        let t = now();
        let txn = self.writer().begin().await?;
        let model = product::ActiveModel {
            name: Set(p.name.clone()),
            description: Set(p.description.clone()),
            concurrency: Set(p.concurrency.as_str().to_string()),
            promotion_flows: Set(to_json(&p.promotion_flows)?),
            promotion_template: Set(p.promotion_template.as_ref().map(to_json).transpose()?),
            promotion_template_ref: Set(template_ref(p)),
            version: Set(1),
            create_time: Set(t),
            update_time: Set(t),
        };
        product::Entity::insert(model)
            .exec_without_returning(&txn)
            .await
            .map_err(|e| match template_gone(&e, p) {
                Some(gone) => gone,
                None => map_unique(e, || format!("product {:?} already exists", p.name)),
            })?;
        insert_applications(&txn, p, t).await?;
        super::audit::commit(txn).await?;
        self.get_product(&p.name).await
    }

    pub async fn get_product(&self, name: &str) -> Result<Product> {
        get_product_in(self.db(), name).await
    }

    pub async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>> {
        let rows = list_page::<product::Entity, _>(self.db(), PRODUCT_COLS.0, page).await?;
        let page = Page::from_fetched(rows, page, |m| m.name.clone());
        let names: Vec<String> = page.items.iter().map(|m| m.name.clone()).collect();
        let mut apps = load_applications(self.db(), &names).await?;
        let items = page
            .items
            .into_iter()
            .map(|m| {
                let a = apps.remove(&m.name).unwrap_or_default();
                product_from(m, a)
            })
            .collect::<Result<_>>()?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    /// Replaces the product's fields and applications. An application given
    /// with an empty version keeps the version currently recorded for it, so
    /// editing a product never rolls back what deployments reported.
    pub async fn update_product(&self, p: &Product, expected: i64) -> Result<Product> {
        let t = now();
        let txn = self.writer().begin().await?;
        let model = product::ActiveModel {
            description: Set(p.description.clone()),
            concurrency: Set(p.concurrency.as_str().to_string()),
            promotion_flows: Set(to_json(&p.promotion_flows)?),
            promotion_template: Set(p.promotion_template.as_ref().map(to_json).transpose()?),
            promotion_template_ref: Set(template_ref(p)),
            update_time: Set(t),
            ..Default::default()
        };
        update_versioned::<product::Entity, _>(
            &txn,
            "product",
            PRODUCT_COLS,
            &p.name,
            expected,
            model,
        )
        .await
        .map_err(|e| match &e {
            Error::Database(db) => template_gone(db, p).unwrap_or(e),
            _ => e,
        })?;
        let old = load_applications(&txn, std::slice::from_ref(&p.name))
            .await?
            .remove(&p.name)
            .unwrap_or_default();
        let removed: Vec<String> = old
            .iter()
            .map(|o| o.environment.clone())
            .filter(|e| p.application(e).is_none())
            .collect();
        if !removed.is_empty() {
            self.ensure_applications_unneeded(&txn, p, &removed).await?;
        }
        let mut merged = p.clone();
        for app in &mut merged.applications {
            // Only deployments and promotions change a recorded version.
            if let Some(prev) = old.iter().find(|o| o.environment == app.environment) {
                app.version = prev.version.clone();
                app.last_commit = prev.last_commit.as_deref().map(from_json).transpose()?;
                app.update_time = prev.update_time;
            }
        }
        application::Entity::delete_many()
            .filter(application::Column::Product.eq(p.name.as_str()))
            .exec(&txn)
            .await?;
        insert_applications(&txn, &merged, t).await?;
        super::audit::commit(txn).await?;
        self.get_product(&p.name).await
    }

    /// Refuses an update of `p` that removes the applications in `removed`
    /// while a release of the product that is not final runs through one of
    /// them, or while one of the product's own promotion flows (as updated)
    /// needs one: its next release could not be created, and a deployment
    /// report would fail.
    async fn ensure_applications_unneeded(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        p: &Product,
        removed: &[String],
    ) -> Result<()> {
        let unfinished: Vec<String> = release::Entity::find()
            .select_only()
            .column(release::Column::Id)
            .filter(release::Column::Product.eq(p.name.as_str()))
            .filter(release::Column::Status.is_not_in(FINAL_RELEASE_STATUSES))
            .into_tuple::<String>()
            .all(txn)
            .await?;
        let active: Vec<String> = if unfinished.is_empty() {
            Vec::new()
        } else {
            environment_run::Entity::find()
                .select_only()
                .column(environment_run::Column::ReleaseId)
                .distinct()
                .filter(environment_run::Column::ReleaseId.is_in(unfinished))
                .filter(environment_run::Column::Environment.is_in(removed.iter().cloned()))
                .limit(10)
                .into_tuple::<String>()
                .all(txn)
                .await?
        };
        let mut needed_by = Vec::new();
        for pf in &p.promotion_flows {
            match self.get_flow(&pf.flow, 0).await {
                Ok(flow) => {
                    if flow.spec.nodes().any(|n| removed.iter().any(|r| r == n)) {
                        needed_by.push(pf.flow.clone());
                    }
                }
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut why = Vec::new();
        if !active.is_empty() {
            why.push(format!(
                "releases that are not final use them ({})",
                active.join(", ")
            ));
        }
        if !needed_by.is_empty() {
            why.push(format!(
                "its promotion flows need them ({}): remove those flows from the product first",
                needed_by.join(", ")
            ));
        }
        if why.is_empty() {
            return Ok(());
        }
        Err(Error::FailedPrecondition(format!(
            "product {:?} cannot lose its application{} in {}: {}",
            p.name,
            if removed.len() == 1 { "" } else { "s" },
            removed.join(", "),
            why.join("; ")
        )))
    }

    pub async fn delete_product(&self, name: &str, expected: i64) -> Result<()> {
        let txn = self.writer().begin().await?;
        ensure_version::<product::Entity, _>(&txn, "product", PRODUCT_COLS, name, expected).await?;
        let active: Vec<String> = release::Entity::find()
            .select_only()
            .column(release::Column::Id)
            .filter(release::Column::Product.eq(name))
            .filter(release::Column::Status.is_not_in(FINAL_RELEASE_STATUSES))
            .limit(10)
            .into_tuple::<String>()
            .all(&txn)
            .await?;
        ensure_unused("product", name, &[("active releases", active)])?;
        delete_named::<product::Entity, _>(&txn, PRODUCT_COLS.0, name).await?;
        super::audit::commit(txn).await?;
        Ok(())
    }

    /// Records that a deployment's version now runs in its environment for
    /// `product`. A deployment seen in Git advances its watch in the same
    /// transaction (see [`Deployment::seen`]).
    pub async fn record_deployment(&self, product: &str, d: Deployment<'_>) -> Result<Application> {
        let commit = CommitUpdate::Replace(d.commit);
        if d.seen.is_none() {
            return record_version(self.writer(), product, d.environment, d.version, commit).await;
        }
        let txn = self.writer().begin().await?;
        d.advance_watch(&txn).await?;
        let app = record_version(&txn, product, d.environment, d.version, commit).await?;
        super::audit::commit(txn).await?;
        Ok(app)
    }

    /// Products with at least one Git-backed application: those the Git
    /// poller may watch.
    pub async fn git_backed_products(&self) -> Result<Vec<Product>> {
        let names: Vec<String> = application::Entity::find()
            .select_only()
            .column(application::Column::Product)
            .distinct()
            .filter(application::Column::Source.is_not_null())
            .order_by_asc(application::Column::Product)
            .into_tuple::<String>()
            .all(self.db())
            .await?;
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(super::BATCH) {
            let rows = product::Entity::find()
                .filter(product::Column::Name.is_in(chunk.iter().cloned()))
                .order_by_asc(product::Column::Name)
                .all(self.db())
                .await?;
            let mut apps = load_applications(self.db(), chunk).await?;
            for m in rows {
                let a = apps.remove(&m.name).unwrap_or_default();
                out.push(product_from(m, a)?);
            }
        }
        Ok(out)
    }
}

pub(crate) async fn get_product_in<C: ConnectionTrait>(db: &C, name: &str) -> Result<Product> {
    let m = product::Entity::find_by_id(name.to_string())
        .one(db)
        .await?
        .ok_or_else(|| Error::not_found("product", name))?;
    let apps = load_applications(db, std::slice::from_ref(&m.name))
        .await?
        .remove(&m.name)
        .unwrap_or_default();
    product_from(m, apps)
}

/// What a recorded version does to the application's last commit.
#[derive(Debug, Clone, Copy)]
pub enum CommitUpdate<'a> {
    /// A deployment report: the commit (or none) replaces the previous one.
    Replace(Option<&'a Commit>),
    /// A promotion: the commit stays what it was.
    Keep,
}

/// Sets the recorded version of one application (used by deployment reports)
/// and returns the application as it now is.
pub(crate) async fn record_version<C: ConnectionTrait>(
    db: &C,
    product: &str,
    environment: &str,
    version: &str,
    commit: CommitUpdate<'_>,
) -> Result<Application> {
    set_version(db, product, environment, version, commit).await?;
    let row = application::Entity::find_by_id((product.to_string(), environment.to_string()))
        .one(db)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "product {product:?} has no application in environment {environment:?}"
            ))
        })?;
    application_from(row)
}

/// Sets the recorded version of one application, reading nothing back: the
/// engine records each promoted environment this way, in the transaction of
/// the step that promoted it (one statement, where a read-back would double
/// the statements of every promotion).
pub(crate) async fn set_version<C: ConnectionTrait>(
    db: &C,
    product: &str,
    environment: &str,
    version: &str,
    commit: CommitUpdate<'_>,
) -> Result<()> {
    let mut model = application::ActiveModel {
        version: Set(version.to_string()),
        update_time: Set(Some(now())),
        ..Default::default()
    };
    if let CommitUpdate::Replace(c) = commit {
        model.last_commit = Set(c.map(to_json).transpose()?);
    }
    let res = application::Entity::update_many()
        .set(model)
        .filter(application::Column::Product.eq(product))
        .filter(application::Column::Environment.eq(environment))
        .exec(db)
        .await?;
    if res.rows_affected == 0 {
        get_product_in(db, product).await?;
        let env_exists = environment::Entity::find_by_id(environment.to_string())
            .one(db)
            .await?
            .is_some();
        return Err(if env_exists {
            Error::FailedPrecondition(format!(
                "product {product:?} has no application in environment {environment:?}: add one with `promoflow product update {product} --app {environment}=NAME` (UpdateProduct) first"
            ))
        } else {
            Error::not_found("environment", environment)
        });
    }
    Ok(())
}

// ------------------------------------------------------------------- workflows

const WORKFLOW_COLS: (workflow::Column, workflow::Column) =
    (workflow::Column::Name, workflow::Column::Version);

fn workflow_from(m: workflow::Model) -> Result<Workflow> {
    Ok(Workflow {
        kind: from_json(&m.spec)?,
        meta: meta(m.version, m.create_time, m.update_time),
        name: m.name,
        description: m.description,
    })
}

impl Store {
    pub async fn create_workflow(&self, w: &Workflow) -> Result<Workflow> {
        let txn = self.write_txn().await?;
        let t = now();
        let model = workflow::ActiveModel {
            name: Set(w.name.clone()),
            description: Set(w.description.clone()),
            kind: Set(w.kind.type_name().to_string()),
            spec: Set(to_json(&w.kind)?),
            version: Set(1),
            create_time: Set(t),
            update_time: Set(t),
        };
        workflow::Entity::insert(model)
            .exec_without_returning(&txn)
            .await
            .map_err(|e| map_unique(e, || format!("workflow {:?} already exists", w.name)))?;
        super::audit::commit(txn).await?;
        self.get_workflow(&w.name).await
    }

    pub async fn get_workflow(&self, name: &str) -> Result<Workflow> {
        let m = workflow::Entity::find_by_id(name.to_string())
            .one(self.db())
            .await?
            .ok_or_else(|| Error::not_found("workflow", name))?;
        workflow_from(m)
    }

    /// Which of the flows in `names` exist, in one query.
    pub async fn existing_flows(&self, names: &[String]) -> Result<Vec<String>> {
        Ok(flow::Entity::find()
            .select_only()
            .column(flow::Column::Name)
            .filter(flow::Column::Name.is_in(names.iter().cloned()))
            .into_tuple::<String>()
            .all(self.db())
            .await?)
    }

    /// Which of the workflows `names` exist.
    pub async fn existing_workflows(&self, names: &[String]) -> Result<Vec<String>> {
        existing_names(self.db(), workflow::Entity.table_name(), names).await
    }

    pub async fn list_workflows(&self, page: &PageRequest) -> Result<Page<Workflow>> {
        let rows = list_page::<workflow::Entity, _>(self.db(), WORKFLOW_COLS.0, page).await?;
        let page = Page::from_fetched(rows, page, |m| m.name.clone());
        let items = page
            .items
            .into_iter()
            .map(workflow_from)
            .collect::<Result<_>>()?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    pub async fn update_workflow(&self, w: &Workflow, expected: i64) -> Result<Workflow> {
        let txn = self.write_txn().await?;
        let model = workflow::ActiveModel {
            description: Set(w.description.clone()),
            kind: Set(w.kind.type_name().to_string()),
            spec: Set(to_json(&w.kind)?),
            update_time: Set(now()),
            ..Default::default()
        };
        update_versioned::<workflow::Entity, _>(
            &txn,
            "workflow",
            WORKFLOW_COLS,
            &w.name,
            expected,
            model,
        )
        .await?;
        super::audit::commit(txn).await?;
        self.get_workflow(&w.name).await
    }

    pub async fn delete_workflow(&self, name: &str, expected: i64) -> Result<()> {
        let txn = self.writer().begin().await?;
        ensure_version::<workflow::Entity, _>(&txn, "workflow", WORKFLOW_COLS, name, expected)
            .await?;
        let flows = flows_referring(&txn, &workflow_ref(name)).await?;
        ensure_unused("workflow", name, &[("flows", flows)])?;
        delete_named::<workflow::Entity, _>(&txn, WORKFLOW_COLS.0, name).await?;
        super::audit::commit(txn).await?;
        Ok(())
    }
}

/// Which of `names` are rows of `table` (by its `name` key), in one query
/// whatever their number. The names travel as one JSON array parameter that
/// the database unpacks, and the query returns only the names that are
/// *missing* (none, for a valid flow): a flow of 10,000 environments was
/// checked in ten statements of 1,000 bound names, and every existing name
/// came back as a row, each a hand-off from sqlx's SQLite thread: 30 ms of a
/// 10,000-environment ValidateFlow (see BENCHMARKS.md).
async fn existing_names<C: ConnectionTrait>(
    db: &C,
    table: &str,
    names: &[String],
) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT j.name FROM json_array_elements_text($1::json) AS j(name) \
             WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.name = j.name)"
        ),
        _ => format!(
            "SELECT j.value AS name FROM json_each(?) AS j \
             WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.name = j.value)"
        ),
    };
    let missing = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [to_json(&names)?.into()],
        ))
        .await?
        .iter()
        .map(|r| Ok(r.try_get::<String>("", "name")?))
        .collect::<Result<std::collections::HashSet<String>>>()?;
    Ok(names
        .iter()
        .filter(|n| !missing.contains(*n))
        .cloned()
        .collect())
}
