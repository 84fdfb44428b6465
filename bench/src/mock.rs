//! `corelay-mock`: a fast mock LLM provider speaking the OpenAI dialect.
//!
//! It is the upstream for the gateway's integration tests and for load
//! benchmarks, so it has two jobs: be scriptable per request (`x-mock-*`
//! headers, see the `script` module) and never be the bottleneck. Hence the
//! same shape as the gateway itself: thread-per-core monoio runtimes sharing
//! one listening socket, and a small hand-written HTTP/1.1 layer on `httparse`
//! that writes every SSE event as soon as it exists.

mod chunked;
pub mod cli;
mod conn;
mod http;
mod json;
mod openai;
mod routes;
mod script;
mod server;
mod stats;

pub use server::{run, start};
