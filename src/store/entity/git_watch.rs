use sea_orm::entity::prelude::*;

/// The last commit the Git poller saw on a watched trigger application's
/// branch, and the source (repository, branch, path) it was seen on.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "git_watches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub product: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub environment: String,
    #[sea_orm(column_type = "Text")]
    pub repo_url: String,
    /// As configured on the application (empty: the default branch).
    #[sea_orm(column_type = "Text")]
    pub branch: String,
    #[sea_orm(column_type = "Text")]
    pub path: String,
    pub commit_sha: String,
    pub update_time: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
