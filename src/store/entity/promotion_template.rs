use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "promotion_templates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    /// JSON `PromotionTemplate`.
    #[sea_orm(column_type = "Text")]
    pub spec: String,
    /// JSON `LabelSelector` (kept, not evaluated).
    #[sea_orm(column_type = "Text")]
    pub selector: String,
    pub priority: i64,
    pub version: i64,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
