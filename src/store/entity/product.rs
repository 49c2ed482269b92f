use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub concurrency: String,
    /// JSON array of `ProductFlow`.
    #[sea_orm(column_type = "Text")]
    pub promotion_flows: String,
    pub version: i64,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
    /// JSON `PromotionTemplate`; NULL: none.
    #[sea_orm(column_type = "Text", nullable)]
    pub promotion_template: Option<String>,
    /// Name of a row of `promotion_templates` (a foreign key); NULL: none.
    pub promotion_template_ref: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
