#!/usr/bin/env bash
# Builds the gateway's fuzz targets on stable and runs each a few thousand
# times over seeds (without nightly's coverage instrumentation libFuzzer
# cannot steer, so this keeps the targets compiling and catches shallow
# panics; the real runs are `cargo +nightly fuzz run TARGET`).
#
# Usage: bash gateway/fuzz/smoke.sh [runs]   (CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
runs=${1:-20000}
cargo build --manifest-path Cargo.toml
bin=${CARGO_TARGET_DIR:-target}/debug
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
mkdir -p "$corpus/http_heads" "$corpus/chunked"
printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: 2\r\n\r\n{}' >"$corpus/http_heads/request"
printf 'POST /v1/messages HTTP/1.1\r\nx-api-key: k\r\nanthropic-version: 2023-06-01\r\nTransfer-Encoding: chunked\r\n\r\n' >"$corpus/http_heads/anthropic"
printf 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nx-ratelimit-remaining-requests: 9\r\nTransfer-Encoding: chunked\r\n\r\n' >"$corpus/http_heads/response"
printf 'HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 429 Too Many\r\nretry-after: 7\r\nContent-Length: 0\r\n\r\n' >"$corpus/http_heads/interim"
printf '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\ntrailer: x\r\n\r\n' >"$corpus/chunked/body"
printf 'a\r\n0123456789\r\n0\r\n\r\n' >"$corpus/chunked/small"
for target in http_heads chunked; do
    echo "fuzz smoke: $target ($runs runs)"
    "$bin/$target" -runs="$runs" -max_len=4096 "$corpus/$target" 2>&1 | tail -n 1
done
