//! HTTP/1.1 for corelay: [`codec`] parses and frames (sans-IO), [`server`]
//! runs client connections on a shard and gives the pipeline a
//! [`server::Responder`] to answer through.

pub mod codec;
pub mod server;
