use sea_orm::entity::prelude::*;

/// One application of a product in one environment, with the version
/// currently recorded there. A row of its own (not JSON inside the product)
/// so a deployment report or a promotion updates it without rewriting the
/// product, and the foreign key protects environments in use.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "applications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub product: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub environment: String,
    pub name: String,
    pub version: String,
    /// JSON `Commit` of the last reported deployment, if any.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_commit: Option<String>,
    /// Position in the product's list, so reads return the order written.
    pub position: i32,
    /// When a version was last recorded; unset while none ever was.
    #[sea_orm(nullable)]
    pub update_time: Option<DateTimeUtc>,
    /// JSON `GitSource`; NULL: not Git-backed.
    #[sea_orm(column_type = "Text", nullable)]
    pub source: Option<String>,
    /// JSON `ArgoCdApp`; NULL: no Argo CD application (no SYNC step).
    #[sea_orm(column_type = "Text", nullable)]
    pub argocd: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
