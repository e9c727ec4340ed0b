# Shared by the end-to-end scripts (run.sh, soak.sh); source it after `cd` to the repository
# root. It makes WORK, a temporary folder, and `pids`, the processes to stop: on exit each is
# killed and waited for, and WORK removed. `wait_port PORT` waits up to 10s for a listener.

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
