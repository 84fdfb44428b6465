#!/usr/bin/env bash
# Builds translate's fuzz targets on stable and runs each a few thousand
# times over mutations of the golden inputs. Without nightly's coverage
# instrumentation libFuzzer cannot steer, so this is a smoke run that keeps
# the targets compiling and catches shallow panics; the real runs are
# `cargo +nightly fuzz run TARGET` (see Cargo.toml).
#
# Usage: bash translate/fuzz/smoke.sh [runs]   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
runs=${1:-20000}
cargo build --manifest-path Cargo.toml
bin=${CARGO_TARGET_DIR:-target}/debug
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
mkdir -p "$corpus/requests" "$corpus/answers" "$corpus/eventstream"
for f in ../test_data/*/*.request.json; do cp "$f" "$corpus/requests/$(echo "$f" | tr / _)"; done
for f in ../test_data/*/*.response.json ../test_data/*/*.stream.sse ../test_data/*/*.error.json; do
    cp "$f" "$corpus/answers/$(echo "$f" | tr / _)"
done
for target in requests answers eventstream; do
    echo "fuzz smoke: $target ($runs runs)"
    "$bin/$target" -runs="$runs" -max_len=8192 "$corpus/$target" 2>&1 | tail -n 1
done
