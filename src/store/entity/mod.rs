//! SeaORM entities: one module per table. JSON documents (labels, flow
//! specs, …) are stored as text so both backends treat them alike.

pub mod api_token;
pub mod application;
pub mod audit_event;
pub mod environment;
pub mod environment_run;
pub mod event;
pub mod flow;
pub mod flow_version;
pub mod git_watch;
pub mod idempotency_key;
pub mod product;
pub mod promotion_template;
pub mod release;
pub mod step_run;
pub mod workflow;
