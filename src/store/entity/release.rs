use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "releases")]
pub struct Model {
    /// UUIDv7: time-ordered, so "newest first" is an index scan.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub product: String,
    pub flow: String,
    pub flow_version: i64,
    /// The application version being promoted.
    pub app_version: String,
    pub status: String,
    pub initiator: String,
    /// Who triggered it, as the server authenticated them.
    #[sea_orm(column_type = "Text")]
    pub actor: String,
    /// Who terminated it; empty: nobody.
    #[sea_orm(column_type = "Text")]
    pub terminated_by: String,
    #[sea_orm(column_type = "Text")]
    pub trigger_message: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    #[sea_orm(nullable)]
    pub request_id: Option<String>,
    /// JSON object: the promotion context accumulated from workflow outputs.
    #[sea_orm(column_type = "Text")]
    pub context: String,
    /// Last event `seq` written for this release.
    pub last_seq: i64,
    /// Set when a terminate was requested, with the reason.
    #[sea_orm(column_type = "Text", nullable)]
    pub terminate_reason: Option<String>,
    /// Replica currently driving the release, and until when.
    #[sea_orm(nullable)]
    pub lease_owner: Option<String>,
    #[sea_orm(nullable)]
    pub lease_expires_at: Option<DateTimeUtc>,
    /// Incremented each time the lease changes hands: fences stale writers.
    pub lease_epoch: i64,
    #[sea_orm(nullable)]
    pub promotion_timeout_secs: Option<i64>,
    #[sea_orm(nullable)]
    pub deadline: Option<DateTimeUtc>,
    pub create_time: DateTimeUtc,
    #[sea_orm(nullable)]
    pub start_time: Option<DateTimeUtc>,
    #[sea_orm(nullable)]
    pub finish_time: Option<DateTimeUtc>,
    /// The trigger application's commit this release promotes; empty: none.
    #[sea_orm(column_type = "Text")]
    pub source_commit: String,
    /// JSON: the values resolved at trigger time from `source_commit`.
    #[sea_orm(column_type = "Text", nullable)]
    pub promotion: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
