//! promoflow promotes application versions through graphs of environments
//! and streams every environment's status as it changes.
//!
//! # Architecture
//!
//! Dependencies point one way: `api → engine → store → domain`.
//!
//! - [`domain`]: pure logic — flow graphs (petgraph), validation, edits, the
//!   release state machine ([`domain::release`]). No async, no I/O,
//!   trivially testable.
//! - [`store`]: SeaORM entities, migrations and repository functions on
//!   SQLite (default) or PostgreSQL. Every release change is written with
//!   its event in one transaction.
//! - `engine`: commands on releases, one worker per active release (it
//!   asks the state machine what to do, runs the steps, persists every
//!   transition), the typed release streams, recovery after a restart,
//!   and the Git poller that starts releases from new commits.
//!   Crate-private except [`engine::git`], the `git` command-line client
//!   that COMMIT promotions write with.
//! - `api`: tonic handlers — decode, call the domain/engine/store, encode.
//!   Only `api`, [`server`] and [`cli`] name tonic types; errors become a
//!   `tonic::Status` in exactly one place ([`error`]). `api::webhooks`
//!   receives Git webhooks (plain HTTP on the same port) and hands pushes
//!   to the poller and pull-request events to the waits on them.
//! - [`server`]: wiring — services and webhook routes on one router,
//!   health, reflection, graceful shutdown.
//!
//! `docs/architecture.md` follows one release from trigger to `SUCCEEDED`
//! through these modules.

pub(crate) mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod server;
pub mod store;
pub mod tls;

/// Generated protobuf and gRPC code for `promoflow.v1`.
pub mod proto {
    pub mod v1 {
        #![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]
        tonic::include_proto!("promoflow.v1");
        pub use super::shared::WatchReleaseResponse;
    }

    pub mod shared;

    /// The protobuf codec of every promoflow service and client.
    pub mod codec {
        use std::marker::PhantomData;

        use tonic::codec::{BufferSettings, Codec};
        use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

        /// How much encode buffer a call starts with (tonic's default is
        /// 8 KiB). A server stream keeps its encode buffer for its whole
        /// life, so with thousands of idle `WatchRelease` streams the
        /// default was about a third of each stream's memory (see
        /// BENCHMARKS.md). The buffer still grows to fit any message.
        pub const ENCODE_BUFFER: usize = 1024;

        /// tonic's default: a stream yields its encoded messages once this
        /// many bytes are waiting.
        const YIELD_THRESHOLD: usize = 32 * 1024;

        /// tonic-prost's codec with a smaller starting encode buffer.
        #[derive(Debug, Clone, Copy)]
        pub struct PromoflowCodec<T, U>(PhantomData<fn(T) -> U>);

        impl<T, U> Default for PromoflowCodec<T, U> {
            fn default() -> Self {
                Self(PhantomData)
            }
        }

        impl<T, U> Codec for PromoflowCodec<T, U>
        where
            T: prost::Message + Send + 'static,
            U: prost::Message + Default + Send + 'static,
        {
            type Encode = T;
            type Decode = U;
            type Encoder = ProstEncoder<T>;
            type Decoder = ProstDecoder<U>;

            fn encoder(&mut self) -> Self::Encoder {
                ProstCodec::<T, U>::raw_encoder(BufferSettings::new(ENCODE_BUFFER, YIELD_THRESHOLD))
            }

            fn decoder(&mut self) -> Self::Decoder {
                ProstCodec::<T, U>::raw_decoder(BufferSettings::default())
            }
        }
    }

    /// Encoded file descriptor set of every proto file (and its imports),
    /// served by the reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/promoflow_descriptor.bin"));
}
