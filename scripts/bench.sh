#!/usr/bin/env bash
# Sovereign benchmark: agent footprint (next to prometheus-node-exporter),
# binary size, and control plane capacity under sovereign-loadgen.
#
#   scripts/bench.sh                 # the full run (~20 min on 2 cores)
#
# Quick run (a few minutes, does not touch BENCHMARKS.md):
#   BENCH_AGENTS=300 BENCH_WARMUP=5 BENCH_WINDOW=20 BENCH_LOAD_WARMUP=10 \
#   BENCH_LOAD_WINDOW=30 BENCH_AGENT_MIN=0 BENCH_OUT=/tmp/bench.md scripts/bench.sh
#
# Everything listens on 127.0.0.1 (ports picked by the kernel or probed),
# state lives in a temp dir, and every process started here is stopped by
# the EXIT trap. Results are measurements, never assertions: targets are
# reported as PASS/FAIL and the script exits 0 either way.
set -euo pipefail
export LC_ALL=C

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${BENCH_AGENTS:=10000}"          # simulated agents for the capacity run
: "${BENCH_WARMUP:=20}"             # s before the agent footprint window
: "${BENCH_WINDOW:=120}"            # s, agent footprint window
: "${BENCH_LOAD_WARMUP:=30}"        # s after the agents are connected
: "${BENCH_LOAD_WINDOW:=120}"       # s, capacity window
: "${BENCH_RAMP_TIMEOUT:=900}"      # s, longest wait for the agents to connect
: "${BENCH_PLATEAU:=90}"            # s without growth in agents online = the most this machine holds
: "${BENCH_INTERVAL:=10s}"          # simulated agents' summary interval (whole seconds)
: "${BENCH_SERIES:=30}"             # series per simulated metric point
: "${BENCH_AGENT_MIN:=1}"           # also build and size --profile agent-min
: "${BENCH_AGENT_MIN_TIMEOUT:=1800}"
: "${BENCH_SKIP_BUILD:=0}"
: "${BENCH_CP_ENV:=}"               # extra env for the capacity control plane, e.g. "MALLOC_ARENA_MAX=2"
: "${BENCH_OUT:=$ROOT/BENCHMARKS.md}"  # "-" prints only
# Where the binaries are; with BENCH_SKIP_BUILD=1 they are used as they are.
: "${BENCH_BIN_DIR:=$ROOT/target/release}"
RELEASE=$BENCH_BIN_DIR
NODE_EXPORTER=/usr/bin/prometheus-node-exporter
CLK_TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sovereign-bench.XXXXXX")
PIDS=()

BENCH_TAG=bench
# shellcheck source=bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

# --- helpers -----------------------------------------------------------------

rss_kb() { # VmRSS of PID in KiB (0 if gone), no fork
    local k v _
    while read -r k v _; do
        [[ $k == VmRSS: ]] && { echo "$v"; return; }
    done <"/proc/$1/status" 2>/dev/null
    echo 0
}

cpu_ticks() { # utime+stime of PID, in clock ticks
    local line rest
    read -r line <"/proc/$1/stat" || { echo 0; return; }
    rest=${line##*) }
    # shellcheck disable=SC2086
    set -- $rest
    echo $((${12} + ${13}))
}

# sampler OUT PID...: every second, append "pid rss_kb" lines to OUT.
sampler() {
    local out=$1 pid
    shift
    while :; do
        for pid in "$@"; do echo "$pid $(rss_kb "$pid")"; done >>"$out"
        sleep 1
    done
}

# rss_stats FILE PID -> "avg max" in KiB
rss_stats() { awk -v p="$2" '$1 == p && $2 > 0 { s += $2; n++; if ($2 > m) m = $2 } END { if (n) printf "%.0f %d\n", s / n, m; else print "0 0" }' "$1"; }

now() { echo "$EPOCHREALTIME"; }
pct() { calc "%.3f" "($2 - $1) / $CLK_TCK / ($4 - $3) * 100"; } # ticks0 ticks1 t0 t1

# --- prerequisites -----------------------------------------------------------

command -v jq >/dev/null || { log "installing jq"; apt-get install -y jq >/dev/null; }
if [[ ! -x $NODE_EXPORTER ]]; then
    log "installing prometheus-node-exporter (run below by hand, not as a service)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus-node-exporter >/dev/null
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

cd "$ROOT"
if [[ $BENCH_SKIP_BUILD != 1 ]]; then
    log "building release binaries"
    cargo build --release -p sovereign -p sovereign-agent -p sovereign-e2e >&2
fi
for b in sovereign sovereign-agent sovereign-loadgen; do
    [[ -x $RELEASE/$b ]] || die "missing $RELEASE/$b"
done

MACHINE_CPUS=$(nproc)
MACHINE_MEM=$(free -g | awk '/^Mem:/ { print $2 }')
MACHINE_MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
MACHINE_KERNEL=$(uname -r)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT + uncommitted changes"
NE_VERSION=$("$NODE_EXPORTER" --version 2>&1 | awk 'NR == 1 { print $3 }')

# --- (b) binary size (first: the agent-min build is also measured in (a)) ----

AGENT_SIZE=$(stat -c %s "$RELEASE/sovereign-agent")
CP_SIZE=$(stat -c %s "$RELEASE/sovereign")
AGENT_STRIPPED=$(file -b "$RELEASE/sovereign-agent" 2>/dev/null | grep -o 'not stripped\|stripped' || echo "?")
MIN_BIN="$ROOT/target/agent-min/sovereign-agent"
MIN_SIZE=""
MIN_NOTE="not built (BENCH_AGENT_MIN=0)"
if [[ $BENCH_AGENT_MIN == 1 && $BENCH_SKIP_BUILD == 1 ]]; then
    [[ -x $MIN_BIN ]] && MIN_NOTE="existing build" || MIN_NOTE="not built (BENCH_SKIP_BUILD=1)"
elif [[ $BENCH_AGENT_MIN == 1 ]]; then
    log "(b) building --profile agent-min (timeout ${BENCH_AGENT_MIN_TIMEOUT}s)"
    S=$(now)
    if timeout "$BENCH_AGENT_MIN_TIMEOUT" cargo build --profile agent-min -p sovereign-agent >&2; then
        MIN_NOTE="cargo build: $(calc "%.0f" "$(now) - $S") s, 0 when already up to date"
    else
        MIN_NOTE="did not build within ${BENCH_AGENT_MIN_TIMEOUT}s"
        rm -f "$MIN_BIN"
    fi
fi
if [[ $BENCH_AGENT_MIN == 1 && -x $MIN_BIN ]]; then
    MIN_SIZE=$(stat -c %s "$MIN_BIN")
fi

# --- (a) agent footprint, next to prometheus-node-exporter ---------------------

log "(a) agent footprint: control plane, real agent(s), node exporter"
start_cp cp-footprint
new_token 2
# enroll_agent NAME BINARY: enrolls a real agent with its own state dir.
enroll_agent() {
    "$2" enroll --server "https://$CP_GRPC" --token "$TOKEN" --ca-sha256 "$CA_SHA" \
        --state-dir "$WORK/$1" --machine-id "$1" --hostname "$1" >"$WORK/enroll-$1.out" 2>&1 ||
        die "agent enrollment failed: $(cat "$WORK/enroll-$1.out")"
}
enroll_agent bench-agent "$RELEASE/sovereign-agent"
bg agent "$RELEASE/sovereign-agent" run --state-dir "$WORK/bench-agent"
AGENT_PID=$LAST_PID
MIN_PID=""
if [[ -n $MIN_SIZE ]]; then
    enroll_agent bench-agent-min "$MIN_BIN"
    bg agent-min "$MIN_BIN" run --state-dir "$WORK/bench-agent-min"
    MIN_PID=$LAST_PID
fi
NE_PORT=$(free_port)
bg node-exporter "$NODE_EXPORTER" "--web.listen-address=127.0.0.1:$NE_PORT"
NE_PID=$LAST_PID
wait_for "$WORK/node-exporter.err" 'Listening on' 30 || die "node exporter did not start: $(tail -5 "$WORK/node-exporter.err")"
# "1 s sampling" for node exporter means being scraped once per second.
bg scraper bash -c "while :; do curl -s -o /dev/null --max-time 2 -w '%{http_code}\n' http://127.0.0.1:$NE_PORT/metrics >>'$WORK/scrapes.log' & sleep 1; done"
SCRAPER=$LAST_PID

log "warm-up ${BENCH_WARMUP}s, then a ${BENCH_WINDOW}s window"
sleep "$BENCH_WARMUP"
for pid in "$AGENT_PID" $MIN_PID; do
    kill -0 "$pid" 2>/dev/null || die "an agent exited: $(tail -5 "$WORK/agent.err")"
done
FOOT_PIDS=("$AGENT_PID" "$NE_PID" $MIN_PID)
POINTS0=$(metric "$CP_API" sovereign_metric_points_ingested_total)
SCRAPES0=$(wc -l <"$WORK/scrapes.log")
declare -A TICKS0 TICKS1
for pid in "${FOOT_PIDS[@]}"; do TICKS0[$pid]=$(cpu_ticks "$pid"); done
T0=$(now)
bg sampler-a sampler "$WORK/rss-a.log" "${FOOT_PIDS[@]}"
SAMPLER=$LAST_PID
sleep "$BENCH_WINDOW"
for pid in "${FOOT_PIDS[@]}"; do TICKS1[$pid]=$(cpu_ticks "$pid"); done
T1=$(now)
kill "$SAMPLER" 2>/dev/null || true
POINTS1=$(metric "$CP_API" sovereign_metric_points_ingested_total)
SCRAPES1=$(wc -l <"$WORK/scrapes.log")
SCRAPES_OK=$(tail -n +"$((SCRAPES0 + 1))" "$WORK/scrapes.log" | grep -c '^200$' || true)
AGENT_ONLINE=$(metric "$CP_API" sovereign_agents_online)
WIN_A=$(calc "%.0f" "$T1 - $T0")
# footprint PID -> "rss_avg rss_max cpu% anon file hwm"
footprint() {
    local avg max
    read -r avg max < <(rss_stats "$WORK/rss-a.log" "$1")
    echo "$avg $max $(pct "${TICKS0[$1]}" "${TICKS1[$1]}" "$T0" "$T1") $(status_kb "$1" RssAnon) $(status_kb "$1" RssFile) $(status_kb "$1" VmHWM)"
}
read -r A_RSS_AVG A_RSS_MAX A_CPU A_ANON A_FILE A_HWM < <(footprint "$AGENT_PID")
read -r N_RSS_AVG N_RSS_MAX N_CPU N_ANON N_FILE _ < <(footprint "$NE_PID")
if [[ -n $MIN_PID ]]; then
    read -r M_RSS_AVG M_RSS_MAX M_CPU M_ANON M_FILE _ < <(footprint "$MIN_PID")
fi
log "agent: RSS avg $(mib "$A_RSS_AVG") MiB max $(mib "$A_RSS_MAX") MiB, CPU $A_CPU %; node exporter: RSS avg $(mib "$N_RSS_AVG") MiB, CPU $N_CPU %"
for pid in "$SCRAPER" "${FOOT_PIDS[@]}" "$CP_PID"; do kill -TERM "$pid" 2>/dev/null || true; done
sleep 1

# --- (c) control plane capacity ------------------------------------------------

log "(c) capacity: fresh control plane (SQLite), $BENCH_AGENTS simulated agents"
# The default enrollment limit (30/min per source address, burst 20) would
# make 10k enrollments from one address take 5.5 h: lift it for this run.
export SOVEREIGN_ENROLL_RATE=1000000 SOVEREIGN_ENROLL_BURST=1000000
for kv in $BENCH_CP_ENV; do export "${kv?}"; done
start_cp cp-capacity
unset SOVEREIGN_ENROLL_RATE SOVEREIGN_ENROLL_BURST
for kv in $BENCH_CP_ENV; do unset "${kv%%=*}"; done
sleep 5
bg sampler-idle sampler "$WORK/rss-idle.log" "$CP_PID"
sleep 10
kill "$LAST_PID" 2>/dev/null || true
read -r CP_IDLE _ < <(rss_stats "$WORK/rss-idle.log" "$CP_PID")
new_token "$BENCH_AGENTS"
LG=("$RELEASE/sovereign-loadgen" --server "https://$CP_GRPC" --ca-sha256 "$CA_SHA" --agents "$BENCH_AGENTS"
    --interval "$BENCH_INTERVAL" --series "$BENCH_SERIES" --prefix bench --state-file "$WORK/loadgen-state.json")
log "enrolling $BENCH_AGENTS agents"
SOVEREIGN_JOIN_TOKEN=$TOKEN "${LG[@]}" --enroll-only >"$WORK/lg-enroll.json" 2>"$WORK/lg-enroll.err" || true
ENROLLED=$(jq -r '.enrolled // 0' "$WORK/lg-enroll.json" 2>/dev/null || echo 0)
ENROLL_S=$(jq -r '.enroll_seconds // 0' "$WORK/lg-enroll.json" 2>/dev/null || echo 0)
ENROLL_RATE=$(jq -r '.enroll_rate_per_s // 0' "$WORK/lg-enroll.json" 2>/dev/null || echo 0)
ENROLL_ERRORS=$(jq -c '.errors // {}' "$WORK/lg-enroll.json" 2>/dev/null || echo '{}')
bg sampler-enrolled sampler "$WORK/rss-enrolled.log" "$CP_PID"
sleep 5
kill "$LAST_PID" 2>/dev/null || true
read -r CP_ENROLLED _ < <(rss_stats "$WORK/rss-enrolled.log" "$CP_PID")
log "$ENROLLED enrolled in ${ENROLL_S}s; control plane RSS idle $(mib "$CP_IDLE") MiB, after enrollment $(mib "$CP_ENROLLED") MiB"

LG_DURATION=$((BENCH_RAMP_TIMEOUT + BENCH_LOAD_WARMUP + BENCH_LOAD_WINDOW + 120))
bg loadgen "${LG[@]}" --duration "${LG_DURATION}s"
LG_PID=$LAST_PID
log "connecting (up to ${BENCH_RAMP_TIMEOUT}s; plateau after ${BENCH_PLATEAU}s without growth)"
S=$(now); BEST=0; BEST_AT=$S; RAMP_END="timeout"
while :; do
    sleep 5
    kill -0 "$LG_PID" 2>/dev/null || { RAMP_END="loadgen exited"; break; }
    ON=$(metric "$CP_API" sovereign_agents_online)
    T=$(now)
    if ((ON > BEST)); then BEST=$ON; BEST_AT=$T; fi
    log "online $ON / $BENCH_AGENTS"
    if ((ON >= BENCH_AGENTS)); then RAMP_END="all connected"; break; fi
    if awk "BEGIN { exit !($T - $BEST_AT > $BENCH_PLATEAU) }"; then RAMP_END="plateau"; break; fi
    if awk "BEGIN { exit !($T - $S > $BENCH_RAMP_TIMEOUT) }"; then break; fi
done
RAMP_S=$(calc "%.0f" "$(now) - $S")
log "ramp ended after ${RAMP_S}s ($RAMP_END); warm-up ${BENCH_LOAD_WARMUP}s, window ${BENCH_LOAD_WINDOW}s"
sleep "$BENCH_LOAD_WARMUP"
P0=$(metric "$CP_API" sovereign_metric_points_ingested_total)
DB0=$(du -sk "$CP_DIR" | awk '{ print $1 }')
B0=$(metric "$CP_API" sovereign_metric_batches_ingested_total)
E0=$(metric "$CP_API" sovereign_metric_ingest_errors_total)
O0=$(metric "$CP_API" sovereign_agent_sessions_opened_total)
C_T0=$(cpu_ticks "$CP_PID"); L_T0=$(cpu_ticks "$LG_PID"); T0=$(now)
bg sampler-load sampler "$WORK/rss-load.log" "$CP_PID" "$LG_PID"
SAMPLER=$LAST_PID
ON_MIN=""; ON_MAX=0
END=$(calc "%.3f" "$T0 + $BENCH_LOAD_WINDOW")
while awk "BEGIN { exit !($(now) < $END) }"; do
    ON=$(metric "$CP_API" sovereign_agents_online)
    [[ -z $ON_MIN ]] || ((ON < ON_MIN)) && ON_MIN=$ON
    ((ON > ON_MAX)) && ON_MAX=$ON
    sleep 5
done
C_T1=$(cpu_ticks "$CP_PID"); L_T1=$(cpu_ticks "$LG_PID"); T1=$(now)
kill "$SAMPLER" 2>/dev/null || true
P1=$(metric "$CP_API" sovereign_metric_points_ingested_total)
DB1=$(du -sk "$CP_DIR" | awk '{ print $1 }')
C_ANON=$(status_kb "$CP_PID" RssAnon); C_FILE=$(status_kb "$CP_PID" RssFile); C_THREADS=$(status_kb "$CP_PID" Threads)
B1=$(metric "$CP_API" sovereign_metric_batches_ingested_total)
E1=$(metric "$CP_API" sovereign_metric_ingest_errors_total)
O1=$(metric "$CP_API" sovereign_agent_sessions_opened_total)
ON_END=$(metric "$CP_API" sovereign_agents_online)
read -r CP_LOAD CP_LOAD_MAX < <(rss_stats "$WORK/rss-load.log" "$CP_PID")
read -r LG_RSS _ < <(rss_stats "$WORK/rss-load.log" "$LG_PID")
CP_CPU=$(pct "$C_T0" "$C_T1" "$T0" "$T1")
LG_CPU=$(pct "$L_T0" "$L_T1" "$T0" "$T1")
WIN_C=$(calc "%.1f" "$T1 - $T0")
kill -INT "$LG_PID" 2>/dev/null || true
for _ in $(seq 1 150); do kill -0 "$LG_PID" 2>/dev/null || break; sleep 0.2; done
SERIES=$(jq -r '.series_per_point // 30' "$WORK/loadgen.out" 2>/dev/null || echo 30)
HELD=${ON_MIN:-0}
PTS_S=$(calc "%.1f" "($P1 - $P0) / $WIN_C")
SAMPLES_S=$(calc "%.0f" "($P1 - $P0) * $SERIES / $WIN_C")
BATCH_S=$(calc "%.1f" "($B1 - $B0) / $WIN_C")
EXPECT_S=$(calc "%.1f" "$HELD / ${BENCH_INTERVAL%s}")
PER_AGENT_KB=$( ((HELD > 0)) && calc "%.1f" "($CP_LOAD - $CP_IDLE) / $HELD" || echo "n/a")
PER_AGENT_KB_ENR=$( ((HELD > 0)) && calc "%.1f" "($CP_LOAD - $CP_ENROLLED) / $HELD" || echo "n/a")
LG_ACK_P50=$(jq -r '.ack_latency_ms.p50 // "n/a"' "$WORK/loadgen.out" 2>/dev/null || echo n/a)
LG_ACK_P99=$(jq -r '.ack_latency_ms.p99 // "n/a"' "$WORK/loadgen.out" 2>/dev/null || echo n/a)
LG_ERRORS=$(jq -c '.errors // {}' "$WORK/loadgen.out" 2>/dev/null || echo '{}')
LG_EXAMPLES=$(jq -r '(.error_examples // {}) | to_entries[] | "  - `\(.key)`: \(.value)"' "$WORK/loadgen.out" 2>/dev/null || true)
LG_CONNECTED_AFTER=$(jq -r '.all_connected_after_s_of_run // "never"' "$WORK/loadgen.out" 2>/dev/null || echo n/a)
DB_SIZE=$(du -sk "$CP_DIR" | awk '{ print $1 }')
CP_ENV_NOTE=""
[[ -z $BENCH_CP_ENV ]] || CP_ENV_NOTE=" Extra environment for this control plane: \`$BENCH_CP_ENV\`."
CP_ERR_LINES=$(grep -cE ' (WARN|ERROR) ' "$WORK/cp-capacity.err" || true)
CP_ERR_TOP=$(grep -E ' (WARN|ERROR) ' "$WORK/cp-capacity.err" | sed -E 's/\x1b\[[0-9;]*m//g; s/^[^ ]+ +//; s/agent_id=[^ ]+//g; s/conn=[0-9]+//g; s/remote=[^ ]+//g; s/[0-9]+(\.[0-9]+)?/N/g' | cut -c1-150 | sort | uniq -c | sort -rn | head -5 || true)
DB_RATE_KB=$(calc "%.0f" "($DB1 - $DB0) / $WIN_C")
DB_48H_GB=$(calc "%.0f" "($DB1 - $DB0) / $WIN_C * 172800 / 1048576")
log "held $HELD (max $ON_MAX), CP RSS $(mib "$CP_LOAD") MiB, CPU $CP_CPU %, $PTS_S points/s"

# --- report ------------------------------------------------------------------

A_RSS_LIMIT=8192 # KiB

if [[ -n $MIN_PID ]]; then
    FOOT_TABLE="| | sovereign-agent (release) | sovereign-agent (agent-min) | prometheus-node-exporter |
|---|---:|---:|---:|
| RSS avg | $(mib "$A_RSS_AVG") MiB | $(mib "$M_RSS_AVG") MiB | $(mib "$N_RSS_AVG") MiB |
| RSS max | $(mib "$A_RSS_MAX") MiB | $(mib "$M_RSS_MAX") MiB | $(mib "$N_RSS_MAX") MiB |
| of which anonymous / file-backed (end of window) | $(mib "$A_ANON") / $(mib "$A_FILE") MiB | $(mib "$M_ANON") / $(mib "$M_FILE") MiB | $(mib "$N_ANON") / $(mib "$N_FILE") MiB |
| CPU (% of one core) | $A_CPU % | $M_CPU % | $N_CPU % |
| Work done in the window | $((POINTS1 - POINTS0)) summaries stored by the control plane (both agents) | | $SCRAPES_OK successful scrapes of $((SCRAPES1 - SCRAPES0)) |"
else
    FOOT_TABLE="| | sovereign-agent (release) | prometheus-node-exporter |
|---|---:|---:|
| RSS avg | $(mib "$A_RSS_AVG") MiB | $(mib "$N_RSS_AVG") MiB |
| RSS max | $(mib "$A_RSS_MAX") MiB | $(mib "$N_RSS_MAX") MiB |
| of which anonymous / file-backed (end of window) | $(mib "$A_ANON") / $(mib "$A_FILE") MiB | $(mib "$N_ANON") / $(mib "$N_FILE") MiB |
| CPU (% of one core) | $A_CPU % | $N_CPU % |
| Work done in the window | $((POINTS1 - POINTS0)) summaries stored by the control plane | $SCRAPES_OK successful scrapes of $((SCRAPES1 - SCRAPES0)) |"
fi
MIN_VERDICT_ROWS=""
if [[ -n $MIN_PID ]]; then
    MIN_VERDICT_ROWS="
| agent-min build ≤ 8 MB RSS | max $(mib "$M_RSS_MAX") MiB | $(verdict "$M_RSS_MAX <= $A_RSS_LIMIT") |
| agent-min build ≤ 0.2 % of a core | $M_CPU % | $(verdict "$M_CPU <= 0.2") |"
fi

if ((HELD >= 10000)) && [[ $PER_AGENT_KB != n/a ]]; then
    CAPACITY_VERDICT=$(verdict "$PER_AGENT_KB <= 64")
else
    CAPACITY_VERDICT=FAIL
fi
FENCE='```'
EXAMPLES_MD=""
[[ -z $LG_EXAMPLES ]] || EXAMPLES_MD=$'First example of each:\n'"$LG_EXAMPLES"
CP_LOG_MD="Control plane WARN/ERROR log lines during the capacity run: $CP_ERR_LINES."
[[ -z $CP_ERR_TOP ]] || CP_LOG_MD+=$' Most frequent:\n\n'"$FENCE"$'\n'"$CP_ERR_TOP"$'\n'"$FENCE"

REPORT=$(cat <<EOF
# Benchmarks

Three scripts write this file, each its own sections: \`scripts/bench.sh\`
(agent footprint, binary size, control plane capacity),
\`scripts/bench-dashboard.sh\` (dashboard) and \`scripts/bench-terminal.sh\`
(terminal and exec). Each builds release binaries and runs everything on
127.0.0.1 with temp dirs. Settings of the \`scripts/bench.sh\` run: \`BENCH_AGENTS=$BENCH_AGENTS BENCH_WARMUP=$BENCH_WARMUP
BENCH_WINDOW=$BENCH_WINDOW BENCH_LOAD_WARMUP=$BENCH_LOAD_WARMUP BENCH_LOAD_WINDOW=$BENCH_LOAD_WINDOW
BENCH_INTERVAL=$BENCH_INTERVAL BENCH_SERIES=$BENCH_SERIES BENCH_AGENT_MIN=$BENCH_AGENT_MIN${BENCH_CP_ENV:+ BENCH_CP_ENV=\"$BENCH_CP_ENV\"}\`.

- Date: $DATE; commit $COMMIT; binaries from \`${RELEASE#"$ROOT"/}\`
- Machine: $MACHINE_CPUS CPUs (\`nproc\`), $MACHINE_MEM GiB RAM (\`free -g\`), $MACHINE_MODEL, Linux $MACHINE_KERNEL
- Everything below ran on this one machine at the same time as the
  processes it measures: the control plane and the load generator shared
  the $MACHINE_CPUS cores.
- Units: 1 MB is taken as 1 MiB and 1 KB as 1 KiB. CPU is the process's
  utime+stime over the window as a percentage of one core; RSS is VmRSS from
  /proc, sampled once a second. Targets are benchmark results, not tests.

## Agent footprint

Real \`sovereign-agent\` processes (the release build, and the agent-min
build when it was built) enrolled with a local control plane, default
settings: every series sampled each **1 s**, 10 s summaries streamed over
mutual TLS. Next to them, Debian's
\`prometheus-node-exporter\` $NE_VERSION (default collectors, listening on
127.0.0.1) **scraped once per second by curl**, which is what 1 s sampling
means for an exporter that reads the host only when scraped. All measured
over the same ${WIN_A} s window after a ${BENCH_WARMUP} s warm-up.

$FOOT_TABLE

| Target | Measured | Result |
|---|---|---|
| agent ≤ 8 MB RSS | max $(mib "$A_RSS_MAX") MiB | $(verdict "$A_RSS_MAX <= $A_RSS_LIMIT") |
| agent ≤ 0.2 % of a core | $A_CPU % | $(verdict "$A_CPU <= 0.2") |$MIN_VERDICT_ROWS

## Binary size

| Binary | Profile | Size | Target ≤ 10 MB |
|---|---|---:|---|
| sovereign-agent | release ($AGENT_STRIPPED) | $(calc "%.2f" "$AGENT_SIZE / 1048576") MiB ($AGENT_SIZE B) | $(verdict "$AGENT_SIZE <= 10485760") |
| sovereign-agent | agent-min ($MIN_NOTE) | $([[ -n $MIN_SIZE ]] && echo "$(calc "%.2f" "$MIN_SIZE / 1048576") MiB ($MIN_SIZE B)" || echo "–") | $([[ -n $MIN_SIZE ]] && verdict "$MIN_SIZE <= 10485760" || echo "–") |
| sovereign (control plane) | release | $(calc "%.2f" "$CP_SIZE / 1048576") MiB | (no target) |

## Control plane capacity

A fresh control plane (embedded SQLite, default settings except the
enrollment rate limit, lifted with \`SOVEREIGN_ENROLL_RATE\`/\`SOVEREIGN_ENROLL_BURST\`
because every simulated agent enrolls from 127.0.0.1) and
\`sovereign-loadgen\` simulating $BENCH_AGENTS agents: one key, one
enrollment and one mutual-TLS gRPC connection each, a metric batch of one
point with $SERIES series every $BENCH_INTERVAL (spread evenly), heartbeats
every 15 s. **Both processes ran on this one $MACHINE_CPUS-core machine.** RLIMIT_NOFILE: $NOFILE.$CP_ENV_NOTE

| | |
|---|---:|
| Agents requested | $BENCH_AGENTS |
| Enrolled | $ENROLLED in $ENROLL_S s ($ENROLL_RATE/s) |
| Connecting | $RAMP_END after ${RAMP_S} s (loadgen: all connected after ${LG_CONNECTED_AFTER} s) |
| **Agents held** (\`sovereign_agents_online\`, min / max over the ${WIN_C} s window) | **$HELD** / $ON_MAX (at the end: $ON_END) |
| Control plane RSS idle (fresh, no agents) | $(mib "$CP_IDLE") MiB |
| Control plane RSS after enrollment (agents known, none connected) | $(mib "$CP_ENROLLED") MiB |
| Control plane RSS loaded (avg / max) | $(mib "$CP_LOAD") / $(mib "$CP_LOAD_MAX") MiB (at the end $(mib "$C_ANON") MiB anonymous + $(mib "$C_FILE") MiB file-backed; $C_THREADS threads) |
| **RSS per agent**, (loaded − idle) / held | **$PER_AGENT_KB KiB** ($PER_AGENT_KB_ENR KiB counting from after enrollment) |
| Control plane CPU | $CP_CPU % of one core (of $((MACHINE_CPUS * 100)) %) |
| Metric points ingested (\`sovereign_metric_points_ingested_total\`) | $PTS_S points/s (expected $EXPECT_S/s for $HELD agents) |
| **Metric samples ingested** (points/s × $SERIES series per point) | **$SAMPLES_S series values/s** |
| Batches stored and acked | $BATCH_S/s; loadgen ack latency p50 $LG_ACK_P50 ms, p99 $LG_ACK_P99 ms |
| Ingest errors / sessions opened during the window | $((E1 - E0)) / $((O1 - O0)) |
| Data directory (SQLite + CA) | $(calc "%.1f" "$DB_SIZE / 1024") MiB after the run; grew $DB_RATE_KB KiB/s during the window (≈ $DB_48H_GB GiB for the default 48 h of raw points at this rate) |
| Load generator (same machine) | CPU $LG_CPU % of one core, RSS $(mib "$LG_RSS") MiB |

Load generator errors over the whole run: \`$LG_ERRORS\`; enrollment errors: \`$ENROLL_ERRORS\`.
$EXAMPLES_MD

$CP_LOG_MD

| Target | Measured | Result |
|---|---|---|
| ≥ 10,000 agents held at ≤ 64 KB each | $HELD held, $PER_AGENT_KB KiB each | $CAPACITY_VERDICT |
EOF
)

printf '%s\n' "$REPORT"
if [[ $BENCH_OUT != - ]]; then
    # Other scripts' sections (dashboard, terminal) are kept.
    printf '%s\n' "$REPORT" | python3 "$ROOT/scripts/bench/put-sections.py" "$BENCH_OUT"
    log "wrote $BENCH_OUT"
fi
