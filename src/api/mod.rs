//! gRPC handlers: decode the request, call the store/engine, encode the
//! response. No SQL and no business rules live here; errors cross into
//! `tonic::Status` only through `From<Error>`.

pub mod access;
pub mod convert;
pub mod environment;
pub mod flow;
pub mod product;
pub mod release;
pub mod template;
pub mod webhooks;
pub mod workflow;

pub use convert::*;

use std::sync::Arc;

use crate::config::ServerConfig;
use crate::store::Store;

/// What every handler needs: the store (and, with the engine, the engine).
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub engine: crate::engine::Engine,
    pub config: Arc<ServerConfig>,
}

/// The principal the authentication layer put on the request; without one
/// (`--auth none`, or a server built without the layer) everybody is
/// [`Principal::anonymous`].
pub fn principal_of<T>(request: &tonic::Request<T>) -> crate::domain::access::Principal {
    request
        .extensions()
        .get::<crate::domain::access::Principal>()
        .cloned()
        .unwrap_or_else(crate::domain::access::Principal::anonymous)
}
