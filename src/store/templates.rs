//! Repository functions for named promotion templates: name-keyed and
//! versioned like the rest of the catalog, and protected from deletion
//! while a product refers to them (checked here, and by the foreign key of
//! `products.promotion_template_ref` against a racing update).

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use super::entity::{product, promotion_template};
use super::versioned::{delete_named, ensure_unused, ensure_version, list_page, update_versioned};
use super::{Page, PageRequest, Store, from_json, map_unique, now, to_json};
use crate::domain::catalog::{Meta, Product};
use crate::domain::gitops::PromotionTemplate;
use crate::domain::template::NamedTemplate;
use crate::error::{Error, Result};

const COLS: (promotion_template::Column, promotion_template::Column) = (
    promotion_template::Column::Name,
    promotion_template::Column::Version,
);

const KIND: &str = "promotion template";

fn template_from(m: promotion_template::Model) -> Result<NamedTemplate> {
    Ok(NamedTemplate {
        template: from_json(&m.spec)?,
        selector: from_json(&m.selector)?,
        priority: m.priority,
        meta: Meta {
            version: m.version,
            create_time: Some(m.create_time),
            update_time: Some(m.update_time),
        },
        name: m.name,
        description: m.description,
    })
}

/// Reads the template `name` in `db` (a transaction or the pool).
pub(crate) async fn get_template_in<C: ConnectionTrait>(
    db: &C,
    name: &str,
) -> Result<NamedTemplate> {
    let m = promotion_template::Entity::find_by_id(name.to_string())
        .one(db)
        .await?
        .ok_or_else(|| Error::not_found(KIND, name))?;
    template_from(m)
}

impl Store {
    pub async fn create_template(&self, t: &NamedTemplate) -> Result<NamedTemplate> {
        let txn = self.write_txn().await?;
        let time = now();
        let model = promotion_template::ActiveModel {
            name: Set(t.name.clone()),
            description: Set(t.description.clone()),
            spec: Set(to_json(&t.template)?),
            selector: Set(to_json(&t.selector)?),
            priority: Set(t.priority),
            version: Set(1),
            create_time: Set(time),
            update_time: Set(time),
        };
        promotion_template::Entity::insert(model)
            .exec_without_returning(&txn)
            .await
            .map_err(|e| map_unique(e, || format!("{KIND} {:?} already exists", t.name)))?;
        super::audit::commit(txn).await?;
        self.get_template(&t.name).await
    }

    pub async fn get_template(&self, name: &str) -> Result<NamedTemplate> {
        get_template_in(self.db(), name).await
    }

    /// The template `p`'s promotions use: its inline one, or the named
    /// template it refers to, read now (a release records what it resolved,
    /// so later edits of the template do not change it). `None`: neither.
    pub async fn product_template(&self, p: &Product) -> Result<Option<PromotionTemplate>> {
        if p.promotion_template_ref.is_empty() {
            return Ok(p.promotion_template.clone());
        }
        match self.get_template(&p.promotion_template_ref).await {
            Ok(t) => Ok(Some(t.template)),
            // The foreign key makes this unreachable but for a product read
            // before the template's deletion committed.
            Err(Error::NotFound(_)) => Err(Error::FailedPrecondition(format!(
                "product {:?} uses promotion template {:?}, which does not exist",
                p.name, p.promotion_template_ref
            ))),
            Err(e) => Err(e),
        }
    }

    pub async fn list_templates(&self, page: &PageRequest) -> Result<Page<NamedTemplate>> {
        let rows = list_page::<promotion_template::Entity, _>(self.db(), COLS.0, page).await?;
        let page = Page::from_fetched(rows, page, |m| m.name.clone());
        let items = page
            .items
            .into_iter()
            .map(template_from)
            .collect::<Result<_>>()?;
        Ok(Page {
            items,
            next_page_token: page.next_page_token,
        })
    }

    pub async fn update_template(&self, t: &NamedTemplate, expected: i64) -> Result<NamedTemplate> {
        let txn = self.write_txn().await?;
        let model = promotion_template::ActiveModel {
            description: Set(t.description.clone()),
            spec: Set(to_json(&t.template)?),
            selector: Set(to_json(&t.selector)?),
            priority: Set(t.priority),
            update_time: Set(now()),
            ..Default::default()
        };
        update_versioned::<promotion_template::Entity, _>(
            &txn, KIND, COLS, &t.name, expected, model,
        )
        .await?;
        super::audit::commit(txn).await?;
        self.get_template(&t.name).await
    }

    /// Deletes a template no product refers to.
    pub async fn delete_template(&self, name: &str, expected: i64) -> Result<()> {
        let txn = self.writer().begin().await?;
        ensure_version::<promotion_template::Entity, _>(&txn, KIND, COLS, name, expected).await?;
        let products: Vec<String> = product::Entity::find()
            .select_only()
            .column(product::Column::Name)
            .filter(product::Column::PromotionTemplateRef.eq(name))
            .order_by_asc(product::Column::Name)
            .limit(20)
            .into_tuple::<String>()
            .all(&txn)
            .await?;
        ensure_unused(KIND, name, &[("products", products)])?;
        delete_named::<promotion_template::Entity, _>(&txn, COLS.0, name)
            .await
            .map_err(|e| match e {
                // A product took the reference after the check above.
                Error::Database(db) if is_foreign_key(&db) => Error::FailedPrecondition(format!(
                    "{KIND} {name:?} is still used by a product; remove that reference first"
                )),
                e => e,
            })?;
        super::audit::commit(txn).await?;
        Ok(())
    }
}

/// True for a foreign-key violation (a reference to a row that is gone, or
/// a delete of a row still referred to).
pub(crate) fn is_foreign_key(e: &sea_orm::DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
    )
}
