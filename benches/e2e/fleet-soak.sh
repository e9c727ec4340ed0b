#!/usr/bin/env bash
# A soak of a fleet on loopback: REPLICAS (3) fluxgate gateways (release build) sharing one
# redis-server (started here: no persistence) for their rate limits and their canary, with
# benches/e2e/fleet-soak-policy.yaml in front of three stable upstreams and one canary upstream
# (e2e_upstream processes naming themselves in `x-served-by`). The `soak` bench binary spreads
# an open-loop load over the replicas (keep-alive), kills one stable upstream (SIGKILL) every
# KILL_EVERY seconds and restarts it RESTART_AFTER seconds later on the same port, samples each
# gateway's RSS, fds and threads and Redis (INFO memory, DBSIZE) every second, reads every
# replica's /api/status every 250ms, and prints the report: client outcomes by cause per replica,
# per minute and around each kill, the canary as each replica saw it (and whether they agreed),
# memory and descriptors at the start, peak and end.
#
# Run from anywhere: `bash benches/e2e/fleet-soak.sh`. Knobs (environment): DURATION (600s),
# RATE (600 req/s over KEYS=200 client keys), GREEDY_RATE (60 req/s from one key above its
# 40 req/s limit: 429s by design; 0 for none), KILL_EVERY (60s), FAIL_AT (30s: the first kill),
# RESTART_AFTER (15s), REPLICAS (3), WARMUP (5s), SLICE (60s: rows of the timelines),
# CANARY_INTERVAL (the canary's step time; DURATION*85/600 s by default), BASE_PORT (18301:
# gateway r listens on +2r, its admin on +2r+1; upstreams +20..+23; Redis +30). The run is
# bounded (DURATION + WARMUP + 60s at most); every process it starts is killed on exit, and its
# temporary folder removed.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION="${DURATION:-600}"
RATE="${RATE:-600}"
KEYS="${KEYS:-200}"
GREEDY_RATE="${GREEDY_RATE:-60}"
KILL_EVERY="${KILL_EVERY:-60}"
FAIL_AT="${FAIL_AT:-30}"
RESTART_AFTER="${RESTART_AFTER:-15}"
REPLICAS="${REPLICAS:-3}"
WARMUP="${WARMUP:-5}"
SLICE="${SLICE:-60}"
CANARY_INTERVAL="${CANARY_INTERVAL:-$((DURATION * 85 / 600))}"
BASE_PORT="${BASE_PORT:-18301}"
REDIS_PORT=$((BASE_PORT + 30))
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"

echo "== building (release): e2e_upstream, soak, the fluxgate gateway"
cargo build --release -q -p fluxgate-benches --bin e2e_upstream --bin soak \
    -p fluxgate-gateway --bin fluxgate

. benches/e2e/common.sh
# The upstream the driver restarts is its own child; stop it too if the driver is cut short.
stop_restarted() {
    if [ -s "$WORK/restarted.pid" ]; then kill "$(cat "$WORK/restarted.pid")" 2>/dev/null || true; fi
    cleanup
}
trap stop_restarted EXIT
# The processes using the most CPU over one second (top's second sample).
busiest() {
    top -b -n 2 -d 1 -w 160 | awk '/^top -/ { n++ } n == 2' | sed -n '7,13p'
}

if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then
    echo "port $REDIS_PORT is taken: set BASE_PORT" >&2
    exit 1
fi
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$WORK" >"$WORK/redis.log" 2>&1 &
pids+=($!)
watched=($!)
wait_port "$REDIS_PORT"
REDIS="redis://127.0.0.1:$REDIS_PORT"

# The canary's step time scaled to the run.
POLICY="$WORK/fleet-soak-policy.yaml"
sed -E "s/^( +interval: )[0-9.]+s( *# CANARY_INTERVAL)/\1${CANARY_INTERVAL}s\2/" \
    benches/e2e/fleet-soak-policy.yaml >"$POLICY"

# Three stable upstreams and a canary; stable-b is the one killed and restarted.
start_upstreams $((BASE_PORT + 20))
up() { echo "http://127.0.0.1:$((BASE_PORT + 20 + $1))"; }

gateway_args=()
for r in $(seq 0 $((REPLICAS - 1))); do
    listen=$((BASE_PORT + 2 * r))
    admin=$((listen + 1))
    RUST_LOG=warn "$TARGET/release/fluxgate" --listen "127.0.0.1:$listen" \
        --admin "127.0.0.1:$admin" --policy "$POLICY" --redis "$REDIS" --replicas "$REPLICAS" \
        --upstream "$(up 0)" --upstream "$(up 1)" --upstream "$(up 2)" \
        --canary-upstream "$(up 3)" >"$WORK/gateway-$r.out" 2>"$WORK/gateway-$r.log" &
    pids+=($!)
    watched+=($!)
    gateway_args+=(--url "http://127.0.0.1:$listen/" --admin "http://127.0.0.1:$admin" --gateway-pid $!)
    wait_port "$listen"; wait_port "$admin"
done

echo "== machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); busiest processes:"
busiest
echo "== fleet soak: $REPLICAS replicas + Redis ($REDIS), $RATE req/s + $GREEDY_RATE req/s (greedy key) for ${DURATION}s after ${WARMUP}s of warm-up; stable-b ($(up 1)) killed at ${FAIL_AT}s and every ${KILL_EVERY}s, restarted ${RESTART_AFTER}s after each kill; canary steps every ${CANARY_INTERVAL}s"
timeout --signal=KILL $((DURATION + WARMUP + 60)) "$TARGET/release/soak" \
    "${gateway_args[@]}" --policy "$POLICY" --redis "$REDIS" \
    --fail-pid "${UP_PID[stable-b]}" --failed-endpoint "$(up 1)" \
    --fail-at "$FAIL_AT" --kill-every "$KILL_EVERY" --restart-after "$RESTART_AFTER" \
    --restart "$TARGET/release/e2e_upstream 127.0.0.1:$((BASE_PORT + 21)) stable-b" \
    --pid-file "$WORK/restarted.pid" \
    --rate "$RATE" --keys "$KEYS" --greedy-rate "$GREEDY_RATE" \
    --duration "$DURATION" --warmup "$WARMUP" --slice "$SLICE"

echo "== busiest processes at the end:"
busiest
for r in $(seq 0 $((REPLICAS - 1))); do
    echo "== gateway $r log (RUST_LOG=warn):"
    log_summary "$WORK/gateway-$r.log"
done
for pid in "${watched[@]}"; do
    kill -0 "$pid" 2>/dev/null || echo "!! process $pid (Redis or a gateway) exited during the soak"
done
