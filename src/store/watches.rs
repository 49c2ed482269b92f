//! What the Git poller remembers: for each watched trigger application, the
//! last commit it saw on the application's branch, and the source it saw it
//! on.
//!
//! Advancing it is a compare-and-set on the whole row ([`Seen`]), written in
//! the transaction that records the commit's deployment or creates its
//! release. Two replicas (or a restarted one) that poll the same new commit
//! both try; the store lets exactly one advance, and the other's transaction,
//! release included, rolls back.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::entity::git_watch;
use super::{Store, now};
use crate::domain::gitops::GitSource;
use crate::error::Result;

/// A commit seen on a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitWatch {
    pub source: GitSource,
    pub commit: String,
}

/// Moves a watch from what the poller read (`expected`, `None`: no row) to
/// `new`, only if nobody moved it in between.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub product: &'a str,
    pub environment: &'a str,
    pub expected: Option<&'a GitWatch>,
    pub new: &'a GitWatch,
}

impl Store {
    /// The watch of `product`'s application in `environment`, if any.
    pub async fn git_watch(&self, product: &str, environment: &str) -> Result<Option<GitWatch>> {
        let row = git_watch::Entity::find_by_id((product.to_string(), environment.to_string()))
            .one(self.db())
            .await?;
        Ok(row.map(|m| GitWatch {
            source: GitSource {
                repo_url: m.repo_url,
                branch: m.branch,
                path: m.path,
            },
            commit: m.commit_sha,
        }))
    }

    /// Advances a watch on its own (nothing recorded with it); false when
    /// another writer advanced it first.
    pub async fn advance_git_watch(&self, seen: Seen<'_>) -> Result<bool> {
        advance_in(self.writer(), seen).await
    }
}

/// [`Store::advance_git_watch`] in `db` (a transaction that writes what the
/// commit caused).
pub(crate) async fn advance_in<C: ConnectionTrait>(db: &C, seen: Seen<'_>) -> Result<bool> {
    let new = seen.new;
    let Some(old) = seen.expected else {
        let inserted = git_watch::Entity::insert(git_watch::ActiveModel {
            product: Set(seen.product.to_string()),
            environment: Set(seen.environment.to_string()),
            repo_url: Set(new.source.repo_url.clone()),
            branch: Set(new.source.branch.clone()),
            path: Set(new.source.path.clone()),
            commit_sha: Set(new.commit.clone()),
            update_time: Set(now()),
        })
        .on_conflict(
            OnConflict::columns([git_watch::Column::Product, git_watch::Column::Environment])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
        return Ok(inserted == 1);
    };
    let res = git_watch::Entity::update_many()
        .set(git_watch::ActiveModel {
            repo_url: Set(new.source.repo_url.clone()),
            branch: Set(new.source.branch.clone()),
            path: Set(new.source.path.clone()),
            commit_sha: Set(new.commit.clone()),
            update_time: Set(now()),
            ..Default::default()
        })
        .filter(git_watch::Column::Product.eq(seen.product))
        .filter(git_watch::Column::Environment.eq(seen.environment))
        .filter(git_watch::Column::RepoUrl.eq(old.source.repo_url.as_str()))
        .filter(git_watch::Column::Branch.eq(old.source.branch.as_str()))
        .filter(git_watch::Column::Path.eq(old.source.path.as_str()))
        .filter(git_watch::Column::CommitSha.eq(old.commit.as_str()))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}
