# Shared by the end-to-end scripts (run.sh, soak.sh, fleet-soak.sh); source it after `cd` to the
# repository root. It makes WORK, a temporary folder, and `pids`, the processes to stop: on exit
# each is killed and waited for, and WORK removed. `wait_port PORT` waits up to 10s for a
# listener; `start_upstreams PORT` starts the soaks' upstreams; `log_summary FILE` sums a log up.

WORK="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# The soaks' upstreams: e2e_upstream processes stable-a, stable-b, stable-c and canary on PORT,
# PORT+1, PORT+2, PORT+3 (logs in WORK), their pids in UP_PID[name]; stable-b, the one the soaks
# kill, is disowned (no job-control notice when it dies). Needs TARGET.
declare -A UP_PID
start_upstreams() {
    local names=(stable-a stable-b stable-c canary) i
    for i in "${!names[@]}"; do
        "$TARGET/release/e2e_upstream" "127.0.0.1:$(($1 + i))" "${names[$i]}" \
            >"$WORK/${names[$i]}.log" 2>&1 &
        pids+=($!)
        UP_PID[${names[$i]}]=$!
        wait_port "$(($1 + i))"
    done
    disown "${UP_PID[stable-b]}"
}

# A gateway log's messages without their timestamps, most frequent first.
log_summary() {
    echo "   $(wc -l <"$1") lines"
    sed -E -e 's/\x1b\[[0-9;]*m//g' -e 's/^[^ ]+ +//' "$1" | sort | uniq -c | sort -rn | head -5
}
