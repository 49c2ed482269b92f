//! Repository functions for releases, their environment and step runs.

use std::collections::BTreeMap;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::entity::{environment_run, release};
use super::Store;
use crate::domain::flow::FlowSpec;
use crate::domain::status::EnvironmentStatus;
use crate::error::{Error, Result};

impl Store {
    /// The flow version a release runs and each environment's status in it:
    /// what `RenderFlow` draws for a release.
    pub async fn release_graph(
        &self,
        release_id: &str,
    ) -> Result<(FlowSpec, BTreeMap<String, EnvironmentStatus>)> {
        let r = release::Entity::find_by_id(release_id.to_string())
            .one(self.db())
            .await?
            .ok_or_else(|| Error::not_found("release", release_id))?;
        let spec = self.get_flow(&r.flow, r.flow_version).await?.spec;
        let runs = environment_run::Entity::find()
            .filter(environment_run::Column::ReleaseId.eq(release_id))
            .order_by_asc(environment_run::Column::Position)
            .all(self.db())
            .await?;
        let mut statuses = BTreeMap::new();
        for run in runs {
            let status = run
                .status
                .parse()
                .map_err(|e| Error::Internal(format!("stored status: {e}")))?;
            statuses.insert(run.environment, status);
        }
        Ok((spec, statuses))
    }
}
