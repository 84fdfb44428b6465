# The recipes people and CI use. One line each; `just` lists them.

# List the recipes.
default:
    @just --list

# Serve the embedded default: one mock provider on 127.0.0.1:8080, no key needed.
run:
    cargo run --release -p gateway

# Every test of every crate.
test:
    cargo test --workspace

# The gateway's integration tests on the epoll driver instead of io_uring.
test-epoll:
    MONOIO_FORCE_LEGACY_DRIVER=1 cargo test -p gateway --test it

# Formatting and clippy, warnings as errors.
lint:
    cargo fmt --all -- --check && cargo clippy --workspace --all-targets -- -D warnings

# The mock provider on 127.0.0.1:9999 (for config/bench.toml).
mock:
    cargo run --release -p bench --bin corelay-mock -- --port 9999

# The official OpenAI Python SDK against corelay in front of corelay-mock.
sdk-check:
    bash tests/sdk/run.sh

# Everything CI runs.
ci:
    bash .ci/run

# One shard on CPU 0, oha and the mock on CPU 1: CPU per request and peak RSS (needs oha).
quick seconds="10" rps="5000":
    cargo build --release -p gateway -p bench && bench/scripts/quick.sh {{seconds}} {{rps}}

# corelay, crabllm and corelay-mock alone under crabllm's scenarios (`--quick`: two minutes; `--help`).
bench *args:
    cargo build --release -p gateway -p bench && "${CARGO_TARGET_DIR:-target}/release/corelay-bench" {{args}}

# Criterion micro-benchmarks of the hot paths.
bench-micro:
    cargo bench -p translate && cargo bench -p gateway --bench hot_path

# Criterion benches of the translation hot paths.
bench-translate:
    cargo bench -p translate --bench translate

# Build the fuzz targets (translate's, the gateway's HTTP layer) and run each over seeds.
fuzz-smoke:
    bash translate/fuzz/smoke.sh && bash gateway/fuzz/smoke.sh
