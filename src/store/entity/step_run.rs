use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "step_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub release_id: String,
    /// Empty for the release-level hooks.
    #[sea_orm(primary_key, auto_increment = false)]
    pub environment: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub idx: i32,
    pub kind: String,
    pub workflow: String,
    pub status: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    pub attempt: i32,
    /// Stable across re-runs after a crash: sent to HTTP workflows.
    pub idempotency_key: String,
    /// When a wait ends or an approval times out; survives restarts.
    #[sea_orm(nullable)]
    pub deadline: Option<DateTimeUtc>,
    #[sea_orm(nullable)]
    pub start_time: Option<DateTimeUtc>,
    #[sea_orm(nullable)]
    pub finish_time: Option<DateTimeUtc>,
    /// What a Git action pushed (or adopted); empty: nothing.
    #[sea_orm(column_type = "Text")]
    pub commit_sha: String,
    /// A link to the commit or pull request; empty: none.
    #[sea_orm(column_type = "Text")]
    pub url: String,
    /// PULL_REQUEST actions: the pull request's number; 0: none.
    pub pull_request: i64,
    /// Approval steps: JSON of the rule and the decisions; null: none.
    #[sea_orm(column_type = "Text", nullable)]
    pub approval: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
