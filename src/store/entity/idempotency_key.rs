use sea_orm::entity::prelude::*;

/// A request id seen before, with a hash of the request it came with and
/// what it produced, so a repeated request returns the same result.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    /// Which RPC the key belongs to (`trigger`, `report`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub request_hash: String,
    /// The release the request produced, if any.
    #[sea_orm(nullable)]
    pub release_id: Option<String>,
    /// JSON of what the first request answered, returned to replays.
    #[sea_orm(column_type = "Text", nullable)]
    pub response: Option<String>,
    pub create_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
