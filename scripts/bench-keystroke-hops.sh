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
BENCH_KEYSTROKES=20000 BENCH_BULK_MB=10 BENCH_BULK_ROUNDS=1 BENCH_EXEC_AGENTS=10 BENCH_EXEC_ROUNDS=1 BENCH_SSH_PTY=false \
    BENCH_OUT=- "$ROOT/scripts/bench-terminal.sh" >/dev/null 2>"$WORK/bench.err" &
BENCH_PID=$!
until grep -q 'keystroke echo' "$WORK/bench.err" 2>/dev/null; do
    kill -0 "$BENCH_PID" 2>/dev/null || { tail -5 "$WORK/bench.err" >&2; exit 1; }
    sleep 0.05
done
sleep 0.5 # past the unmeasured warm-up keystrokes
log "tracing every process's syscalls for 2 s"
perf record -q -a -e raw_syscalls:sys_enter,raw_syscalls:sys_exit -o "$WORK/perf.data" -- sleep 2 >/dev/null 2>&1
# Then, untraced: each process's CPU time (user + kernel, with the context
# switches it costs) and futex calls over 2 s, per keystroke. Keystrokes are
# counted from writes: the agent writes each one to its PTY (one write a
# keystroke); sshd writes each to its PTY and each echo to its socket (two).
pids() { pgrep -f "$1" | tr '\n' ',' | sed 's/,$//'; }
log "counting each process's CPU per keystroke for 2 s (perf stat)"
EVENTS=task-clock,context-switches,syscalls:sys_enter_futex,syscalls:sys_enter_write
declare -A PERF_PIDS=(
    [cp]=$(pids 'sovereign serve --data-dir .*/cp-terminal')
    [agent]=$(pids 'sovereign-agent run --state-dir')
    [sshd]=$(pids 'sshd: root@')
    [ssh]=$(pids '^ssh -tt')
)
for name in "${!PERF_PIDS[@]}"; do
    [[ -n ${PERF_PIDS[$name]} ]] || { log "no $name process found"; exit 1; }
    perf stat -x, -e "$EVENTS" -p "${PERF_PIDS[$name]}" -o "$WORK/stat.$name" -- sleep 2 &
done
wait $(jobs -p | grep -v "^$BENCH_PID\$")
log "waiting for the benchmark to finish (so nothing else runs while the trace is read)"
wait "$BENCH_PID" || { tail -5 "$WORK/bench.err" >&2; exit 1; }
BENCH_PID=""
perf script -i "$WORK/perf.data" -F comm,pid,tid,time,event,trace 2>/dev/null |
    python3 "$ROOT/scripts/bench/keystroke_hops.py"

python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
def stat(name):
    out = {}
    for line in open(f"{work}/stat.{name}"):
        f = line.strip().split(",")
        if len(f) > 2 and f[0] and f[0][0].isdigit():
            out[f[2].split(":")[-1]] = float(f[0])
    return out
s = {n: stat(n) for n in ("cp", "agent", "sshd", "ssh")}
relay = s["agent"]["sys_enter_write"]
openssh = s["sshd"]["sys_enter_write"] / 2
print(f"\n#### CPU per keystroke (perf stat, 2 s untraced: {relay:.0f} relay and {openssh:.0f} OpenSSH keystrokes)\n")
print("| process | CPU µs (user + kernel) | context switches | futex calls |")
print("|---|---:|---:|---:|")
for name, label, n in (("cp", "control plane (relay hop)", relay), ("agent", "agent (relay server)", relay),
                       ("ssh", "`ssh` client (OpenSSH hop)", openssh), ("sshd", "`sshd` (OpenSSH server)", openssh)):
    v = s[name]
    print(f"| {label} | {v['task-clock'] * 1000 / n:.1f} | {v['context-switches'] / n:.2f} | {v['sys_enter_futex'] / n:.2f} |")
PY
