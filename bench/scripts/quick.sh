#!/usr/bin/env bash
# Quick CPU-per-request and peak-RSS check for one shard (issue 2's criterion).
#
#   bench/scripts/quick.sh [seconds] [rps]
#
# corelay runs with one shard pinned to CPU 0; corelay-mock and oha share CPU 1.
# Prints rps, latency percentiles, CPU microseconds per request (utime+stime
# ticks of the corelay process over the measured run, warm-up excluded) and peak
# RSS (VmHWM). Every server binds 127.0.0.1 and is stopped by pid on exit.
# GW_BIN and MOCK_BIN point at other builds, to compare two commits.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
rps=${2:-5000}
oha=${OHA:-$(command -v oha || echo /work/tools/bin/oha)}
mock_port=${MOCK_PORT:-19999}
gw_port=${GW_PORT:-18080}
body='{"model":"bench-chat","messages":[{"role":"user","content":"hi"}]}'
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

cat > "$tmp/gw.toml" <<TOML
listen = "127.0.0.1:$gw_port"
shards = 1
[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
api_key = "mock-key"
models = ["bench-chat", "bench-embed"]
max_retries = 0
timeout = 10
TOML

taskset -c 1 ${MOCK_BIN:-target/release/corelay-mock} --host 127.0.0.1 --port "$mock_port" >"$tmp/mock.log" 2>&1 &
pids+=($!)
taskset -c 0 ${GW_BIN:-target/release/corelay} serve --config "$tmp/gw.toml" >"$tmp/gw.log" 2>&1 &
gw=$!
pids+=($gw)
for _ in $(seq 100); do grep -q listening "$tmp/gw.log" && break; sleep 0.05; done
url="http://127.0.0.1:$gw_port/v1/chat/completions"
taskset -c 1 "$oha" -n 200 -m POST -H 'Content-Type: application/json' -d "$body" --no-tui "$url" >/dev/null
ticks() { awk '{print $14 + $15}' "/proc/$gw/stat"; }
sys_ticks() { awk '{print $15}' "/proc/$gw/stat"; }
before=$(ticks)
sys_before=$(sys_ticks)
taskset -c 1 "$oha" -z "${secs}s" -q "$rps" -c 50 -m POST -H 'Content-Type: application/json' -d "$body" \
  --no-tui --output-format json "$url" >"$tmp/oha.json"
after=$(ticks)
sys_after=$(sys_ticks)
hz=$(getconf CLK_TCK)
python3 - "$tmp/oha.json" "$before" "$after" "$hz" "$(grep VmHWM /proc/$gw/status | awk '{print $2}')" \
  "$sys_before" "$sys_after" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
before, after, hz, hwm = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
sys_share = (int(sys.argv[7]) - int(sys.argv[6])) / max(after - before, 1)
s = d["summary"]; p = d["latencyPercentiles"]
n = sum(d["statusCodeDistribution"].values())
ok = d["statusCodeDistribution"].get("200", 0)
cpu_us = (after - before) / hz * 1e6 / max(n, 1)
print(f"rps {s['requestsPerSec']:.0f}  ok {ok}/{n}  p50 {p['p50']*1e3:.3f} ms  p99 {p['p99']*1e3:.3f} ms  "
      f"p99.9 {p['p99.9']*1e3:.3f} ms")
print(f"cpu/request {cpu_us:.1f} us ({sys_share:.0%} in the kernel)  peak RSS {hwm/1024:.1f} MB")
PY
