use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub flow: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: i64,
    /// JSON `FlowSpec`.
    #[sea_orm(column_type = "Text")]
    pub spec: String,
    pub create_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
