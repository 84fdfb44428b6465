//! Benchmark and test support for corelay.
//!
//! Today this holds the mock provider behind the `corelay-mock` binary, which
//! speaks the OpenAI, Anthropic, Gemini, Bedrock or Ollama wire format
//! (`--dialect`). It lives in a library so the pure parts (request parsing, routing,
//! rendering) get unit tests and the binary stays a thin `main`. The crate
//! deliberately depends on no workspace crate: the mock must describe what a
//! provider sends on the wire, not reuse the gateway's own idea of it.

pub mod mock;
