//! promoflow promotes application versions through graphs of environments
//! and streams every environment's status as it changes.
//!
//! # Architecture
//!
//! Dependencies point one way: `api → engine → store → domain`.
//!
//! - [`domain`]: pure logic — flow graphs (petgraph), validation, edits, the
//!   release state machine. No async, no I/O, trivially testable.
//! - [`store`]: SeaORM entities, migrations and repository functions on
//!   SQLite (default) or PostgreSQL. Every release change is written with
//!   its event in one transaction.
//! - `engine`: schedules environments whose dependencies succeeded, runs
//!   workflows, enforces timeouts and resumes releases after a restart.
//! - [`api`]: tonic handlers — decode, call the domain/engine/store, encode.
//!   Only `api`, [`server`] and [`cli`] name tonic types; errors become a
//!   `tonic::Status` in exactly one place ([`error`]).
//! - [`server`]: wiring — services, health, reflection, graceful shutdown.

pub mod api;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod server;
pub mod store;

/// Generated protobuf and gRPC code for `promoflow.v1`.
pub mod proto {
    pub mod v1 {
        #![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]
        tonic::include_proto!("promoflow.v1");
    }

    /// Encoded file descriptor set of every proto file (and its imports),
    /// served by the reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/promoflow_descriptor.bin"));
}
