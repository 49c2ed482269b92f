use sea_orm::entity::prelude::*;

/// A flow's identity and its latest version number. The content of each
/// version lives, immutable, in `flow_versions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// Latest version; also the optimistic-concurrency version of the flow.
    pub version: i64,
    /// Environments and workflows the latest version refers to, as a JSON
    /// array of names: lets delete protection find users without parsing specs.
    #[sea_orm(column_type = "Text")]
    pub refs: String,
    pub create_time: DateTimeUtc,
    pub update_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
