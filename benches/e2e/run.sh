#!/usr/bin/env bash
# End-to-end load comparison on loopback: the same small hyper upstream (e2e_upstream), the same
# wrk load (keep-alive, fixed connections), four ways: direct to the upstream, through nginx
# (benches/e2e/nginx.conf, 2 workers, keepalive to the upstream), through a plain hyper +
# hyper-util pooled proxy (e2e_hyper_proxy: the floor of a naive Rust proxy), and through
# FluxGate's gateway (the fluxgate binary, release build, the seed policy with a rate limit high
# enough never to refuse). GATEWAY_ARGS adds options to the gateway (e.g. "--workers 2");
# BEFORE=/path/to/an/older/fluxgate adds that binary as a fifth target ("before"). BODY=<bytes>
# makes every request a POST with a JSON body of that many bytes (a wrk script), for all targets.
#
# Run from anywhere: `bash benches/e2e/run.sh`. Knobs (environment): THREADS (2), CONNECTIONS
# (50), DURATION (15s), REPS (3), BASE_PORT (18001: upstream, +1 nginx, +2 gateway, +3 admin).
# Installs wrk and nginx with apt-get when they are missing. Every process it starts is killed
# on exit, and its temporary folder removed.
set -euo pipefail
cd "$(dirname "$0")/../.."

THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-50}"
DURATION="${DURATION:-15s}"
REPS="${REPS:-3}"
BASE_PORT="${BASE_PORT:-18001}"
UP_PORT=$BASE_PORT
NGINX_PORT=$((BASE_PORT + 1))
GW_PORT=$((BASE_PORT + 2))
ADMIN_PORT=$((BASE_PORT + 3))
HYPER_PORT=$((BASE_PORT + 4))
BEFORE_PORT=$((BASE_PORT + 5))
BEFORE="${BEFORE:-}"
GATEWAY_ARGS="${GATEWAY_ARGS:-}"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]}"
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ apt-get update -qq || true
    $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

echo "== building (release): e2e_upstream, e2e_hyper_proxy, the fluxgate gateway"
cargo build --release -q -p fluxgate-benches --bin e2e_upstream --bin e2e_hyper_proxy \
    -p fluxgate-gateway --bin fluxgate

. benches/e2e/common.sh

"$TARGET/release/e2e_upstream" "127.0.0.1:$UP_PORT" >"$WORK/upstream.log" 2>&1 &
pids+=($!)

mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
sed -e "s/@LISTEN@/127.0.0.1:$NGINX_PORT/" -e "s/@UPSTREAM@/127.0.0.1:$UP_PORT/" \
    benches/e2e/nginx.conf >"$WORK/nginx/nginx.conf"
# As root, the workers would switch to `nobody`; keep them as the caller.
[ "$(id -u)" = 0 ] && sed -i '1i user root;' "$WORK/nginx/nginx.conf"
"$NGINX" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" &
pids+=($!)

# The seed policy, with a rate limit that never refuses under this load.
sed -e 's/requestsPerSecond: 1200/requestsPerSecond: 1000000/' -e 's/burstSize: 150/burstSize: 1000000/' \
    fluxgate-gateway/policies/checkout-service-policy.yaml >"$WORK/policy.yaml"
# shellcheck disable=SC2086 # GATEWAY_ARGS is a list of options
RUST_LOG=warn "$TARGET/release/fluxgate" --listen "127.0.0.1:$GW_PORT" \
    --admin "127.0.0.1:$ADMIN_PORT" --policy "$WORK/policy.yaml" \
    --upstream "http://127.0.0.1:$UP_PORT" $GATEWAY_ARGS >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
pids+=($GW_PID)
"$TARGET/release/e2e_hyper_proxy" "127.0.0.1:$HYPER_PORT" "http://127.0.0.1:$UP_PORT" \
    >"$WORK/hyper.log" 2>&1 &
pids+=($!)

wait_port "$UP_PORT"; wait_port "$NGINX_PORT"; wait_port "$GW_PORT"; wait_port "$HYPER_PORT"

declare -A URL=(
    [direct]="http://127.0.0.1:$UP_PORT/"
    [nginx]="http://127.0.0.1:$NGINX_PORT/"
    [hyper]="http://127.0.0.1:$HYPER_PORT/"
    [fluxgate]="http://127.0.0.1:$GW_PORT/"
)
ORDER=(direct nginx hyper fluxgate)
if [ -n "$BEFORE" ]; then
    RUST_LOG=warn "$BEFORE" --listen "127.0.0.1:$BEFORE_PORT" \
        --admin "127.0.0.1:$((BEFORE_PORT + 1))" --policy "$WORK/policy.yaml" \
        --upstream "http://127.0.0.1:$UP_PORT" >"$WORK/before.log" 2>&1 &
    pids+=($!)
    wait_port "$BEFORE_PORT"
    URL[before]="http://127.0.0.1:$BEFORE_PORT/"
    ORDER+=(before)
fi
sleep 1

# Latency of a wrk line ("99%    1.23ms") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.3f", n }'
}

# With BODY: one wrk script for every target, a POST of BODY bytes (wrk adds Content-Length).
WRK_SCRIPT=()
if [ -n "${BODY:-}" ]; then
    cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"data":"' .. string.rep("x", math.max(0, $BODY - 11)) .. '"}'
EOF
    WRK_SCRIPT=(-s "$WORK/post.lua")
    echo "== every request a POST with a ${BODY}-byte body"
fi

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)"
echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $REPS repetitions, interleaved"
for name in "${ORDER[@]}"; do
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "${WRK_SCRIPT[@]}" "${URL[$name]}" >/dev/null
done
RSS_START=$(awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status")

results="$WORK/results.tsv"
for rep in $(seq 1 "$REPS"); do
    for name in "${ORDER[@]}"; do
        out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${WRK_SCRIPT[@]}" "${URL[$name]}")"
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
        p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
        bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
        errors=$(awk '/Socket errors:/ {print $0}' <<<"$out")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$rep" "$name" "$rps" "$p50" "$p99" "${bad:-0}" >>"$results"
        printf 'rep %s %-9s %10s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s %s\n' \
            "$rep" "$name" "$rps" "$p50" "$p99" "${bad:-0}" "$errors"
    done
done
RSS_END=$(awk '/VmRSS/ {print $2}' "/proc/$GW_PID/status")

echo "== medians (min-max) over $REPS repetitions"
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A MED_RPS MED_P99
for name in "${ORDER[@]}"; do
    rows="$(awk -F'\t' -v k="$name" '$2 == k' "$results")"
    rps=$(cut -f3 <<<"$rows" | median); p50=$(cut -f4 <<<"$rows" | median); p99=$(cut -f5 <<<"$rows" | median)
    lo=$(cut -f3 <<<"$rows" | sort -n | head -1); hi=$(cut -f3 <<<"$rows" | sort -n | tail -1)
    MED_RPS[$name]=$rps; MED_P99[$name]=$p99
    printf '%-9s %10.0f req/s (%.0f-%.0f)  p50 %.3f ms  p99 %.3f ms\n' "$name" "$rps" "$lo" "$hi" "$p50" "$p99"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
for other in nginx hyper before; do
    [ -n "${MED_RPS[$other]:-}" ] || continue
    echo "fluxgate/$other: throughput $(ratio "${MED_RPS[fluxgate]}" "${MED_RPS[$other]}"), p99 $(ratio "${MED_P99[fluxgate]}" "${MED_P99[$other]}")"
done
echo "gateway RSS: ${RSS_START} kB after warm-up, ${RSS_END} kB at the end"
