//! `corelay-mock`: a fast mock LLM provider speaking the wire format of
//! OpenAI (and Azure), Anthropic, Gemini, Bedrock or Ollama (`--dialect`).
//!
//! It is the upstream for the gateway's integration tests and for load
//! benchmarks, so it has three jobs: speak each provider's exact wire format
//! on the provider's real paths (`openai`, `anthropic`, `gemini`, `bedrock`,
//! `ollama` modules; the canned values all dialects share are in `canned`),
//! be scriptable per request (`x-mock-*` headers or `[mock:...]` directives
//! in the last user message, see `script`), and never be the bottleneck.
//! Hence the same shape as the gateway itself: thread-per-core monoio
//! runtimes sharing one listening socket, and a small hand-written HTTP/1.1
//! layer on `httparse` that writes every stream event as soon as it exists.
//!
//! Every dialect also serves `GET /health`, `GET /mock/stats` (connection and
//! request counters, and the `--name`), `GET /mock/last-request` (the last
//! model request's method, path, headers with secrets redacted, and body) and
//! `GET /mock/sequences` (requests per scripted `sequence`; see `state`), so a
//! gateway test can assert on the exact upstream requests the gateway sent,
//! and count its retries.

mod anthropic;
mod bedrock;
mod canned;
mod chunked;
pub mod cli;
mod conn;
mod events;
mod eventstream;
mod gemini;
mod http;
mod json;
mod ollama;
mod openai;
mod reset;
mod routes;
mod script;
mod server;
mod state;

pub use server::{run, start};
