#!/usr/bin/env bash
# The official OpenAI and Anthropic Python SDKs against corelay, in front of
# corelay-mock.
#
# Builds the debug binaries, starts two mocks (one healthy, one that answers
# every request 500) and corelay on free loopback ports, runs
# openai_sdk_check.py, and stops every process it started when it exits,
# whether the check passed or not.
#
# Usage: bash tests/sdk/run.sh   (CARGO_TARGET_DIR is honoured)
set -euo pipefail

# Pinned so that a new SDK release cannot change the result of an old commit.
OPENAI_VERSION=2.54.0
ANTHROPIC_VERSION=2.12.0
# How long a process may take to print its listening line.
START_TIMEOUT_S=60

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
venv=tests/sdk/.venv
bin=${CARGO_TARGET_DIR:-target}/debug

work=$(mktemp -d)
pids=()

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        # corelay drains first (shutdown_timeout_ms below); give up after 5 s.
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $status -ne 0 ]]; then
        for log in "$work"/*.err; do
            [[ -s $log ]] || continue
            echo "--- $(basename "$log")"
            tail -n 20 "$log"
        done
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

# start NAME COMMAND...: runs COMMAND in the background with its stdout on a
# FIFO and sets `line` to the first line it prints (its listening line). The
# FIFO stays open so that the process never writes into a closed pipe.
start() {
    local name=$1 fd
    shift
    mkfifo "$work/$name.out"
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=("$!")
    exec {fd}<"$work/$name.out"
    if ! IFS= read -r -t "$START_TIMEOUT_S" -u "$fd" line; then
        echo "run.sh: $name did not print its listening line" >&2
        exit 1
    fi
    echo "$line"
}

port_of() {
    local re='listening on ([^ ]+)'
    [[ $1 =~ $re ]] || { echo "run.sh: no address in: $1" >&2; exit 1; }
    echo "${BASH_REMATCH[1]##*:}"
}

# --clear: a venv left half-made by an earlier failure (no pip) is redone.
if [[ ! -x $venv/bin/pip ]]; then
    python3 -m venv --clear "$venv"
fi
if ! "$venv/bin/python" -c "import sys, openai; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION"
fi
if ! "$venv/bin/python" -c "import sys, anthropic; sys.exit(anthropic.__version__ != '$ANTHROPIC_VERSION')" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "anthropic==$ANTHROPIC_VERSION"
fi

cargo build -p gateway -p bench

start mock "$bin/corelay-mock" --port 0
mock_port=$(port_of "$line")
start broken-mock "$bin/corelay-mock" --port 0 --error-rate 1.0 --error-status 500
broken_port=$(port_of "$line")
start anthropic-mock "$bin/corelay-mock" --port 0 --dialect anthropic
anthropic_port=$(port_of "$line")
start gemini-mock "$bin/corelay-mock" --port 0 --dialect gemini
gemini_port=$(port_of "$line")
start bedrock-mock "$bin/corelay-mock" --port 0 --dialect bedrock
bedrock_port=$(port_of "$line")

key=sk-corelay-sdk-check
embed_only_key=sk-corelay-sdk-embed-only
cat >"$work/corelay.toml" <<EOF
listen = "127.0.0.1:0"
shards = 2
shutdown_timeout_ms = 2000

[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
api_key = "mock-key"
models = ["bench-chat", "bench-embed"]
max_retries = 0
timeout = 10

[providers.broken]
kind = "openai"
base_url = "http://127.0.0.1:$broken_port/v1"
api_key = "mock-key"
models = ["bench-broken"]
max_retries = 0
timeout = 10

[providers.claude]
kind = "anthropic"
base_url = "http://127.0.0.1:$anthropic_port"
api_key = "mock-key"
models = ["claude-mock"]

[providers.google]
kind = "gemini"
base_url = "http://127.0.0.1:$gemini_port"
api_key = "mock-key"
models = ["gemini-mock"]

[providers.aws]
kind = "bedrock"
base_url = "http://127.0.0.1:$bedrock_port"
region = "us-east-1"
aws_access_key_id = "AKIDEXAMPLE"
aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
models = ["bedrock-mock"]

[aliases]
fast = "bench-chat"

[[keys]]
name = "sdk"
key = "$key"
models = ["bench-*", "fast", "claude-mock", "gemini-mock", "bedrock-mock"]

[[keys]]
name = "embed-only"
key = "$embed_only_key"
models = ["bench-embed"]
EOF

start corelay "$bin/corelay" serve --config "$work/corelay.toml"
corelay_port=$(port_of "$line")

CORELAY_BASE_URL="http://127.0.0.1:$corelay_port/v1" \
    CORELAY_KEY=$key \
    CORELAY_EMBED_ONLY_KEY=$embed_only_key \
    "$venv/bin/python" tests/sdk/openai_sdk_check.py
CORELAY_ROOT_URL="http://127.0.0.1:$corelay_port" \
    CORELAY_KEY=$key \
    "$venv/bin/python" tests/sdk/anthropic_sdk_check.py
