use sea_orm::entity::prelude::*;

/// Append-only log of release changes. `seq` is per release, from 1, without
/// gaps; `position` is global and handed out in commit order (see
/// `event_clock`), which is what makes `WatchReleases` cursors safe.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub release_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub position: i64,
    pub product: String,
    pub flow: String,
    pub time: DateTimeUtc,
    /// JSON of the change (`release`, `environment` or `step`).
    #[sea_orm(column_type = "Text")]
    pub payload: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
