# Shared by scripts/bench.sh and scripts/bench-terminal.sh; source it after
# setting BENCH_TAG (the log prefix), WORK (a temp dir the EXIT trap
# removes), RELEASE (where the binaries are) and PIDS=() (what the trap stops).

log() { printf '[%s %(%H:%M:%S)T] %s\n' "$BENCH_TAG" -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Stops every process started with bg, newest first (SIGTERM, then SIGKILL
# after 10 s), and removes WORK.
cleanup() {
    local pid i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
    done
    for _ in $(seq 1 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.2
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # BENCH_KEEP_LOGS=DIR keeps the processes' logs and the measurements' JSON
    # (every echo sample, in order) for a look afterwards.
    if [[ -n ${BENCH_KEEP_LOGS:-} ]]; then
        mkdir -p "$BENCH_KEEP_LOGS" && cp "$WORK"/*.err "$WORK"/*.json "$BENCH_KEEP_LOGS"/ 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bg NAME CMD...: start CMD in the background, stdout/stderr to
# $WORK/NAME.{out,err}. With BENCH_OWN_SESSIONS=1 (scripts/bench-terminal.sh
# sets it) CMD gets a session of its own (setsid), as a service manager
# starts a service and sshd each connection: under the kernel's autogroup
# scheduling a session is a scheduling group, and a server left in this
# script's session would compete for the CPU as one with the benchmark's
# client. The PID stays the same: a background job of this non-interactive
# script does not lead a process group, so setsid need not fork. The
# footprint and capacity runs keep their servers in this script's session,
# as their recorded numbers were measured.
bg() {
    local name=$1
    shift
    if [[ ${BENCH_OWN_SESSIONS:-0} == 1 ]]; then set -- setsid "$@"; fi
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=("$!")
    LAST_PID=$!
}

# stop PID: SIGTERM, then wait up to 10 s (SIGKILL after that).
stop() {
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done
    kill -KILL "$1" 2>/dev/null || true
}

wait_for() { # wait_for FILE REGEX SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

status_kb() { # status_kb PID FIELD -> KiB (0 if absent)
    awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0
}

metric() { # metric API NAME -> value (0 if absent)
    curl -s --max-time 5 "$1/metrics" | awk -v n="$2" '$1 == n { print $2; f = 1 } END { if (!f) print 0 }'
}

free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    die "no free port found"
}

calc() { awk "BEGIN { printf \"$1\", $2 }"; }
mib() { calc "%.1f" "$1 / 1024"; }
verdict() { awk "BEGIN { exit !($1) }" && echo "PASS" || echo "FAIL"; }

# start_cp NAME: a fresh control plane on 127.0.0.1 with kernel-picked ports.
# Sets CP_PID, CP_API, CP_GRPC, CP_DIR, CP_PASSWORD, CP_TOKEN. Extra env
# comes from the caller.
start_cp() {
    CP_DIR="$WORK/$1"
    bg "$1" "$RELEASE/sovereign" serve --data-dir "$CP_DIR" --grpc-listen 127.0.0.1:0 --api-listen 127.0.0.1:0
    CP_PID=$LAST_PID
    wait_for "$WORK/$1.out" 'with password' 60 || die "control plane $1 did not start: $(tail -5 "$WORK/$1.err")"
    CP_API=$(grep -oP 'API: +\K\S+' "$WORK/$1.out")
    CP_GRPC=$(grep -oP 'gRPC: +\K\S+' "$WORK/$1.out")
    CP_PASSWORD=$(grep -oP 'with password \K\S+' "$WORK/$1.out")
    CP_TOKEN=$(tr -d '[:space:]' <"$CP_DIR/admin.token")
}

# new_token USES -> sets TOKEN, CA_SHA
new_token() {
    local json
    json=$("$RELEASE/sovereign" token create --api "$CP_API" --data-dir "$CP_DIR" --uses "$1" --ttl 2h --json)
    TOKEN=$(jq -r .secret <<<"$json")
    CA_SHA=$(jq -r .ca_sha256 <<<"$json")
    [[ -n $TOKEN && $TOKEN != null ]] || die "token create failed: $json"
}
