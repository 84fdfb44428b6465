//! corelay's gateway: the only crate that touches sockets.
//!
//! - [`config`]: the TOML file and the validated configuration.
//! - [`runtime`]: listeners, shard threads, the control plane, shutdown.
//! - [`shard`]: one core's state and the commands it takes.
//! - [`http`]: our HTTP/1.1 layer (codec and client connections).
//! - [`pipeline`]: the request phases, top to bottom.
//! - [`upstream`]: provider connections and the per-shard pool.
//! - [`cache`]: which requests the response cache answers, and its keys.
//! - [`error`]: the error type and the one place errors become responses.
//! - [`mock`]: the in-process `mock` provider kind.
//! - [`sigv4`]: AWS SigV4 signing and the model path for Bedrock.
//! - [`sys`]: the one module with `unsafe`: socket calls monoio lacks.

pub mod admin;
pub mod admin_cli;
pub mod cache;
pub mod config;
pub mod error;
pub mod http;
pub mod limits;
pub mod mock;
pub mod pipeline;
pub mod routing;
pub mod runtime;
pub mod shard;
pub mod sigv4;
pub mod sys;
pub mod tenancy;
pub mod upstream;
