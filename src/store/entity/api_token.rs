use sea_orm::entity::prelude::*;

/// An API token: its public id, a hash of its secret, and the grant it
/// carries (role and patterns, the patterns as JSON arrays).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub name: String,
    pub secret_hash: String,
    pub role: String,
    #[sea_orm(column_type = "Text")]
    pub flow_patterns: String,
    #[sea_orm(column_type = "Text")]
    pub environment_patterns: String,
    #[sea_orm(column_type = "Text")]
    pub created_by: String,
    pub create_time: DateTimeUtc,
    #[sea_orm(nullable)]
    pub expire_time: Option<DateTimeUtc>,
    #[sea_orm(nullable)]
    pub last_used_time: Option<DateTimeUtc>,
    #[sea_orm(nullable)]
    pub revoke_time: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
