#!/usr/bin/env bash
# Where a keystroke's echo spends its time, hop by hop, on both paths of
# scripts/bench-terminal.sh (the relay and OpenSSH): a diagnostic, not a
# target. While that script types its echo keystrokes, every process's
# syscalls are traced for 2 s (`perf record -a -e raw_syscalls:*`), and
# scripts/bench/keystroke_hops.py splits each echo into hand-overs between
# processes and each process's own work (median, p99, and the median among
# the slowest 3 %).
#
#   scripts/bench-keystroke-hops.sh           # prints two Markdown tables
#
# Uses the binaries bench-terminal.sh uses (BENCH_SKIP_BUILD=1 to skip the
# build); needs perf (Debian's linux-perf, installed if missing) and root.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sovereign-hops.XXXXXX")
BENCH_PID=""
cleanup() {
    [[ -z $BENCH_PID ]] || kill -TERM "$BENCH_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '[bench-keystroke-hops %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if ! perf stat -e task-clock true >/dev/null 2>&1; then
    log "installing perf (linux-perf)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y linux-perf >/dev/null
fi

log "starting scripts/bench-terminal.sh with 20000 keystrokes (its report is not used)"
BENCH_KEYSTROKES=20000 BENCH_BULK_MB=10 BENCH_BULK_ROUNDS=1 BENCH_EXEC_AGENTS=10 BENCH_EXEC_ROUNDS=1 \
    BENCH_OUT=- "$ROOT/scripts/bench-terminal.sh" >/dev/null 2>"$WORK/bench.err" &
BENCH_PID=$!
until grep -q 'keystroke echo' "$WORK/bench.err" 2>/dev/null; do
    kill -0 "$BENCH_PID" 2>/dev/null || { tail -5 "$WORK/bench.err" >&2; exit 1; }
    sleep 0.05
done
sleep 0.5 # past the unmeasured warm-up keystrokes
log "tracing every process's syscalls for 2 s"
perf record -q -a -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -o "$WORK/perf.data" -- sleep 2 >/dev/null 2>&1
log "waiting for the benchmark to finish (so nothing else runs while the trace is read)"
wait "$BENCH_PID" || { tail -5 "$WORK/bench.err" >&2; exit 1; }
BENCH_PID=""
perf script -i "$WORK/perf.data" -F comm,pid,tid,time,event,trace 2>/dev/null |
    python3 "$ROOT/scripts/bench/keystroke_hops.py"
