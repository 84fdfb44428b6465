//! `corelay-bench`: corelay, crabllm and corelay-mock alone (with `--peers`,
//! LiteLLM and TensorZero too) under crabllm's benchmark scenarios; see
//! `bench::harness` and `--help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = bench::harness::cli::Args::parse();
    bench::harness::main(&args).map(|_| ())
}
