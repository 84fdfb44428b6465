//! `corelay-mock`: a mock LLM provider in the OpenAI, Anthropic, Gemini,
//! Bedrock or Ollama wire format.
//!
//! The upstream for the gateway's integration tests and load benchmarks; see
//! `bench::mock` for the behaviour and `--help` for the flags.

use clap::Parser;

// mimalloc: the per-request allocations are small and short-lived, which is
// where it beats the system allocator, and the gateway uses it too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = bench::mock::cli::Args::parse();
    bench::mock::run(&args)
}
