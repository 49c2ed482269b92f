use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "environment_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub release_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub environment: String,
    /// Position in the flow (trigger first), so reads keep the flow's order.
    pub position: i32,
    pub status: String,
    /// JSON array of environment names.
    #[sea_orm(column_type = "Text")]
    pub depends_on: String,
    /// JSON array of environment names.
    #[sea_orm(column_type = "Text")]
    pub blocked_on: String,
    pub attempt: i32,
    pub application: String,
    /// The promotion action (`NONE`, `COMMIT`, `PULL_REQUEST`).
    pub action: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    #[sea_orm(nullable)]
    pub start_time: Option<DateTimeUtc>,
    #[sea_orm(nullable)]
    pub finish_time: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
