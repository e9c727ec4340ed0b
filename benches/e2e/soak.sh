#!/usr/bin/env bash
# A soak of the whole gateway on loopback: FluxGate's gateway (the fluxgate binary) (release build) with
# benches/e2e/soak-policy.yaml in front of three stable upstreams and one canary upstream
# (e2e_upstream processes, each naming itself in `x-served-by`), a steady open-loop load, and
# one stable upstream killed (SIGKILL) halfway. The `soak` bench binary drives the load, kills
# the upstream, samples the gateway's RSS and fds every second, reads /api/status every 250ms,
# and prints the report: client outcomes per phase, the drain of the failed upstream and the
# errors before it, the canary's progression, and the gateway's memory at start, peak and end.
#
# Run from anywhere: `bash benches/e2e/soak.sh`. Knobs (environment): RATE (500 req/s over
# KEYS=20 client keys), GREEDY_RATE (60 req/s from one key above its 40 req/s limit: 429s by
# design; 0 for none), DURATION (60s), FAIL_AT (30s), WARMUP (3s), BASE_PORT (18201: gateway,
# +1 admin, +10..+13 upstreams). The run is bounded (DURATION + WARMUP + 60s at most); every
# process it starts is killed on exit, and its temporary folder removed.
set -euo pipefail
cd "$(dirname "$0")/../.."

RATE="${RATE:-500}"
KEYS="${KEYS:-20}"
GREEDY_RATE="${GREEDY_RATE:-60}"
DURATION="${DURATION:-60}"
FAIL_AT="${FAIL_AT:-30}"
WARMUP="${WARMUP:-3}"
BASE_PORT="${BASE_PORT:-18201}"
GW_PORT=$BASE_PORT
ADMIN_PORT=$((BASE_PORT + 1))
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
POLICY=benches/e2e/soak-policy.yaml

echo "== building (release): e2e_upstream, soak, the fluxgate gateway"
cargo build --release -q -p fluxgate-benches --bin e2e_upstream --bin soak \
    -p fluxgate-gateway --bin fluxgate

. benches/e2e/common.sh

# Three stable upstreams and a canary; stable-b is the one that fails.
start_upstreams $((BASE_PORT + 10))
up() { echo "http://127.0.0.1:$((BASE_PORT + 10 + $1))"; }

RUST_LOG=warn "$TARGET/release/fluxgate" --listen "127.0.0.1:$GW_PORT" \
    --admin "127.0.0.1:$ADMIN_PORT" --policy "$POLICY" \
    --upstream "$(up 0)" --upstream "$(up 1)" --upstream "$(up 2)" \
    --canary-upstream "$(up 3)" >"$WORK/gateway.out" 2>"$WORK/gateway.log" &
GW_PID=$!
pids+=($GW_PID)
wait_port "$GW_PORT"; wait_port "$ADMIN_PORT"

echo "== soak: $RATE req/s + $GREEDY_RATE req/s (greedy key) for ${DURATION}s after ${WARMUP}s of warm-up; stable-b ($(up 1)) killed at ${FAIL_AT}s"
timeout --signal=KILL $((DURATION + WARMUP + 60)) "$TARGET/release/soak" \
    --url "http://127.0.0.1:$GW_PORT/" --admin "http://127.0.0.1:$ADMIN_PORT" \
    --gateway-pid "$GW_PID" --policy "$POLICY" \
    --fail-pid "${UP_PID[stable-b]}" --failed-endpoint "$(up 1)" \
    --rate "$RATE" --keys "$KEYS" --greedy-rate "$GREEDY_RATE" \
    --duration "$DURATION" --fail-at "$FAIL_AT" --warmup "$WARMUP"

kill -0 "$GW_PID" 2>/dev/null || echo "!! the gateway exited during the soak"
echo "== gateway log (RUST_LOG=warn):"
log_summary "$WORK/gateway.log"
