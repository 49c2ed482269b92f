//! `ReleaseService`.

use super::Ctx;
use crate::proto::v1::release_service_server::ReleaseService;

pub struct ReleaseApi {
    #[allow(dead_code)]
    ctx: Ctx,
}

impl ReleaseApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl ReleaseService for ReleaseApi {}
