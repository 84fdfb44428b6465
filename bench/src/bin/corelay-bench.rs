//! `corelay-bench`: corelay, crabllm and corelay-mock alone under crabllm's
//! benchmark scenarios; see `bench::harness` and `--help`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = bench::harness::cli::Args::parse();
    bench::harness::main(&args).map(|_| ())
}
