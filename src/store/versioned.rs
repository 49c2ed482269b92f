//! Helpers shared by every name-keyed, versioned table (environments,
//! products, workflows, flows): optimistic-concurrency updates, checks
//! before deletes, name-ordered pages and "still in use" errors.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::PageRequest;
use crate::error::{Error, Result};

/// Reads the current `version` of the row named `name`, if it exists.
pub(crate) async fn current_version<E, C>(
    db: &C,
    name_col: E::Column,
    version_col: E::Column,
    name: &str,
) -> Result<Option<i64>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    Ok(E::find()
        .select_only()
        .column(version_col)
        .filter(name_col.eq(name))
        .into_tuple::<i64>()
        .one(db)
        .await?)
}

/// Explains why a conditional write on `name` matched no row: it does not
/// exist (`NOT_FOUND`) or its version moved on (`ABORTED`).
pub(crate) async fn conflict<E, C>(
    db: &C,
    kind: &str,
    name_col: E::Column,
    version_col: E::Column,
    name: &str,
    expected: i64,
) -> Error
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    match current_version::<E, C>(db, name_col, version_col, name).await {
        Ok(Some(current)) => Error::stale(kind, name, expected, current),
        Ok(None) => Error::not_found(kind, name),
        Err(e) => e,
    }
}

/// Applies `model` to the row `name` only if its version is `expected`,
/// bumping the version. Returns the new version.
pub(crate) async fn update_versioned<E, C>(
    db: &C,
    kind: &str,
    (name_col, version_col): (E::Column, E::Column),
    name: &str,
    expected: i64,
    model: E::ActiveModel,
) -> Result<i64>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let res = E::update_many()
        .set(model)
        .col_expr(version_col, Expr::col(version_col).add(1))
        .filter(name_col.eq(name))
        .filter(version_col.eq(expected))
        .exec(db)
        .await?;
    if res.rows_affected == 1 {
        Ok(expected + 1)
    } else {
        Err(conflict::<E, C>(db, kind, name_col, version_col, name, expected).await)
    }
}

/// Checks that the row `name` exists and, unless `expected` is 0, that its
/// version is `expected`. Deletes call it before looking for users, so a
/// missing or stale target is reported as such rather than as "in use".
pub(crate) async fn ensure_version<E, C>(
    db: &C,
    kind: &str,
    (name_col, version_col): (E::Column, E::Column),
    name: &str,
    expected: i64,
) -> Result<()>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    match current_version::<E, C>(db, name_col, version_col, name).await? {
        None => Err(Error::not_found(kind, name)),
        Some(v) if expected != 0 && v != expected => Err(Error::stale(kind, name, expected, v)),
        Some(_) => Ok(()),
    }
}

/// Deletes the row `name` inside the transaction that checked it.
pub(crate) async fn delete_named<E, C>(db: &C, name_col: E::Column, name: &str) -> Result<()>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    E::delete_many().filter(name_col.eq(name)).exec(db).await?;
    Ok(())
}

/// Fetches one page of `E` ordered by `name_col`.
pub(crate) async fn list_page<E, C>(
    db: &C,
    name_col: E::Column,
    page: &PageRequest,
) -> Result<Vec<E::Model>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut q = E::find().order_by_asc(name_col).limit(page.size + 1);
    if let Some(after) = &page.after {
        q = q.filter(name_col.gt(after.as_str()));
    }
    Ok(q.all(db).await?)
}

/// Fails with `FAILED_PRECONDITION` when `users` is non-empty.
pub(crate) fn ensure_unused(kind: &str, name: &str, users: &[(&str, Vec<String>)]) -> Result<()> {
    let parts: Vec<String> = users
        .iter()
        .filter(|(_, names)| !names.is_empty())
        .map(|(what, names)| format!("{what} {}", names.join(", ")))
        .collect();
    if parts.is_empty() {
        Ok(())
    } else {
        Err(Error::FailedPrecondition(format!(
            "{kind} {name:?} is still used by {}; remove those references first",
            parts.join(" and ")
        )))
    }
}
