//! `FlowService`.

use super::Ctx;
use crate::proto::v1::flow_service_server::FlowService;

pub struct FlowApi {
    #[allow(dead_code)]
    ctx: Ctx,
}

impl FlowApi {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl FlowService for FlowApi {}
