use sea_orm::entity::prelude::*;

/// A single row whose counter hands out global event positions.
///
/// Incrementing it takes a row lock held until the transaction commits, so
/// positions are assigned in commit order: a reader that has seen position
/// `p` can never later find a committed event below `p`. A sequence or
/// auto-increment id would not give that guarantee on PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_clock")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i32,
    pub position: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
