//! Benchmark and test support for corelay.
//!
//! Two programs live here, each in a library module so the pure parts get
//! unit tests and the binaries stay a thin `main`: the mock provider behind
//! `corelay-mock` (`mock`), which speaks the OpenAI, Anthropic, Gemini,
//! Bedrock or Ollama wire format (`--dialect`), and the load benchmark
//! behind `corelay-bench` (`harness`), which runs crabllm's scenarios against
//! the mock alone, corelay and crabllm (with `--peers`, LiteLLM and
//! TensorZero too) and reports their ratios. The crate
//! deliberately depends on no workspace crate: the mock must describe what a
//! provider sends on the wire, not reuse the gateway's own idea of it.

pub mod harness;
pub mod mock;
