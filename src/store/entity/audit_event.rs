use sea_orm::entity::prelude::*;

/// One decision of the audit log; rows are only ever inserted.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub time: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub actor: String,
    pub actor_kind: String,
    pub action: String,
    #[sea_orm(column_type = "Text")]
    pub resource: String,
    #[sea_orm(column_type = "Text")]
    pub flow: String,
    #[sea_orm(column_type = "Text")]
    pub environment: String,
    pub result: String,
    pub grpc_code: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    #[sea_orm(column_type = "Text")]
    pub request_id: String,
    #[sea_orm(column_type = "Text")]
    pub remote_address: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
