//! Leases on releases: which replica drives which release, until when.
//!
//! A worker claims its release before doing anything, renews the lease while
//! it works, and every write it makes is fenced by owner and epoch (see
//! [`Fence`]): a replica that lost its lease (paused past the expiry, cut
//! off from the database) can no longer change the release, while the one
//! that took over carries on. On SQLite the same code runs with one replica.

use chrono::Duration;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, TransactionTrait,
};

use super::entity::release;
use super::{Store, now};
use crate::domain::status::ReleaseStatus;
use crate::error::Result;

/// Proof that the writer holds the release's lease: writes are applied only
/// while the release's `lease_owner` and `lease_epoch` still match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub owner: String,
    pub epoch: i64,
}

const WORKED: [ReleaseStatus; 3] = [
    ReleaseStatus::Running,
    ReleaseStatus::Suspended,
    ReleaseStatus::Terminating,
];

/// [`Store::release_lease`] in `db`.
async fn release_in<C: ConnectionTrait>(db: &C, id: &str, fence: &Fence) -> Result<()> {
    release::Entity::update_many()
        .col_expr(
            release::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            release::Column::LeaseExpiresAt,
            Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
        )
        .filter(release::Column::Id.eq(id))
        .filter(release::Column::LeaseOwner.eq(fence.owner.as_str()))
        .filter(release::Column::LeaseEpoch.eq(fence.epoch))
        .exec(db)
        .await?;
    Ok(())
}

/// [`Store::claim_release`] in `txn`.
async fn claim_in<C: ConnectionTrait>(
    txn: &C,
    id: String,
    owner: String,
    ttl: Duration,
) -> Result<Option<Fence>> {
    // The new epoch comes back with the update (`RETURNING`, on both
    // backends): one statement per claim, where reading it after was two.
    let mut claim = release::Entity::update_many()
        .col_expr(release::Column::LeaseOwner, Expr::value(owner.clone()))
        .col_expr(release::Column::LeaseExpiresAt, Expr::value(now() + ttl))
        .col_expr(
            release::Column::LeaseEpoch,
            sea_orm::sea_query::ExprTrait::add(Expr::col(release::Column::LeaseEpoch), 1),
        )
        .filter(release::Column::Id.eq(id.as_str()))
        .filter(release::Column::Status.is_in(WORKED.iter().map(|s| s.as_str())))
        .filter(claimable(&owner))
        .into_query();
    claim.returning_col(release::Column::LeaseEpoch);
    let Some(row) = txn.query_one(&claim).await? else {
        return Ok(None);
    };
    let epoch: i64 = row.try_get("", "lease_epoch")?;
    Ok(Some(Fence { owner, epoch }))
}

fn claimable(owner: &str) -> Condition {
    Condition::any()
        .add(release::Column::LeaseOwner.is_null())
        .add(release::Column::LeaseOwner.eq(owner))
        .add(release::Column::LeaseExpiresAt.lt(now()))
}

impl Store {
    /// Takes the lease of release `id` for `owner` if nobody else holds a
    /// live one. Each successful claim increases the epoch, which fences out
    /// the previous holder's late writes.
    pub async fn claim_release(
        &self,
        id: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Fence>> {
        let (id, owner) = (id.to_string(), owner.to_string());
        if self.backend() == DbBackend::Postgres {
            return claim_in(self.writer(), id, owner, ttl).await;
        }
        // In the writer's next group, with the triggers that created the
        // releases: a claim is one more small write per release. (Not on
        // PostgreSQL: there, where writers run side by side, a claim on its
        // own holds one row lock and nothing else, so it can wait for a
        // group but never be part of a deadlock with one.)
        let (fence, _) = self
            .grouped("", move |txn, _| {
                Box::pin(claim_in(txn, id.clone(), owner.clone(), ttl))
            })
            .await?;
        Ok(fence)
    }

    /// Extends a held lease; false when it was lost.
    pub async fn renew_lease(&self, id: &str, fence: &Fence, ttl: Duration) -> Result<bool> {
        let res = release::Entity::update_many()
            .col_expr(release::Column::LeaseExpiresAt, Expr::value(now() + ttl))
            .filter(release::Column::Id.eq(id))
            .filter(release::Column::LeaseOwner.eq(fence.owner.as_str()))
            .filter(release::Column::LeaseEpoch.eq(fence.epoch))
            .exec(self.writer())
            .await?;
        Ok(res.rows_affected == 1)
    }

    /// Gives a lease up (the worker finished, or the replica drains).
    /// Grouped on SQLite, on its own on PostgreSQL (as a claim).
    pub async fn release_lease(&self, id: &str, fence: &Fence) -> Result<()> {
        if self.backend() == DbBackend::Postgres {
            return release_in(self.writer(), id, fence).await;
        }
        let (id, fence) = (id.to_string(), fence.clone());
        self.grouped("", move |txn, _| {
            let (id, fence) = (id.clone(), fence.clone());
            Box::pin(async move { release_in(txn, &id, &fence).await })
        })
        .await?;
        Ok(())
    }

    /// Releases that need a worker and have none (no lease, or an expired
    /// one), oldest first. On PostgreSQL the rows are read `FOR UPDATE SKIP
    /// LOCKED`, so replicas scanning at the same time split the work instead
    /// of queueing on each other; the claim itself stays a conditional update.
    pub async fn orphaned_releases(&self, limit: u64) -> Result<Vec<String>> {
        let txn = self.db().begin().await?;
        let mut q = release::Entity::find()
            .select_only()
            .column(release::Column::Id)
            .filter(release::Column::Status.is_in(WORKED.iter().map(|s| s.as_str())))
            .filter(
                Condition::any()
                    .add(release::Column::LeaseOwner.is_null())
                    .add(release::Column::LeaseExpiresAt.lt(now())),
            )
            .order_by_asc(release::Column::Id)
            .limit(limit);
        if txn.get_database_backend() == DbBackend::Postgres {
            q = q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        let ids = q.into_tuple::<String>().all(&txn).await?;
        txn.commit().await?;
        Ok(ids)
    }

    /// Releases whose lease `owner` holds (for logs and draining).
    pub async fn leases_of(&self, owner: &str) -> Result<Vec<String>> {
        Ok(release::Entity::find()
            .select_only()
            .column(release::Column::Id)
            .filter(release::Column::LeaseOwner.eq(owner))
            .into_tuple::<String>()
            .all(self.db())
            .await?)
    }
}
