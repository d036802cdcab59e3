#!/usr/bin/env bash
# Instructions per keystroke in the relay's two processes (the control plane
# and the agent), counted by valgrind's callgrind: a diagnostic, not a target,
# and one that does not depend on how busy the machine is (it counts
# instructions, not time; the same binaries and settings give the same
# counts within a few per cent). User space only: the kernel's work in the
# syscalls is not in the counts.
#
# It runs scripts/bench-terminal.sh twice with both processes under
# callgrind, once with 200 echo keystrokes and once with 1200, everything
# else equal; the difference over the 1000 extra keystrokes is what one
# keystroke costs (start-up, sign-in, the bulk round and the fan-out cancel
# out; timers that fire during the longer run's extra seconds do not, and
# are a small part). BENCH_WHAT=bulk does the same per MiB of `cat` output
# (a 1 MiB and a 5 MiB file). Prints Markdown: a row per process, then the
# functions whose own instructions grew the most.
#
#   scripts/bench-keystroke-instructions.sh
#   BENCH_WHAT=bulk scripts/bench-keystroke-instructions.sh   # per MiB of `cat` output
#
# By default it first builds the control plane and the agent with symbols
# (release and agent-min settings, unstripped, line tables) into
# target/bench-symbols, so functions have names (about 12 minutes from
# scratch on 2 cores). BENCH_SKIP_BUILD=1 uses SOVEREIGN_BIN and AGENT_BIN
# as given (stripped binaries still give the totals). sovereign-termbench
# and sovereign-loadgen come from BENCH_BIN_DIR (target/release), as for
# bench-terminal.sh. BENCH_KEEP=DIR keeps the four profiles (for
# callgrind_annotate). Needs valgrind (installed if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${BENCH_SKIP_BUILD:=0}"
: "${BENCH_BIN_DIR:=$ROOT/target/release}"
: "${BENCH_SHORT:=200}"
: "${BENCH_LONG:=1200}"
: "${BENCH_WHAT:=keystrokes}" # or bulk: instructions per MiB of `cat` output
SYM="$ROOT/target/bench-symbols"
: "${SOVEREIGN_BIN:=$SYM/release/sovereign}"
: "${AGENT_BIN:=$SYM/agent-min/sovereign-agent}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sovereign-instr.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log() { printf '[bench-keystroke-instructions %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v valgrind >/dev/null || {
    log "installing valgrind"
    DEBIAN_FRONTEND=noninteractive apt-get install -y valgrind >/dev/null
}
cd "$ROOT"
if [[ $BENCH_SKIP_BUILD != 1 ]]; then
    log "building the control plane and the agent with symbols into $SYM (nice 19)"
    CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        nice -n 19 cargo build --release -p sovereign --bin sovereign --target-dir "$SYM" >&2
    CARGO_PROFILE_AGENT_MIN_STRIP=false CARGO_PROFILE_AGENT_MIN_DEBUG=line-tables-only \
        nice -n 19 cargo build --profile agent-min -p sovereign-agent --target-dir "$SYM" >&2
    log "building sovereign-termbench and sovereign-loadgen (nice 19)"
    nice -n 19 cargo build --release -p sovereign-e2e >&2
fi
for b in "$SOVEREIGN_BIN" "$AGENT_BIN" "$BENCH_BIN_DIR/sovereign-termbench" "$BENCH_BIN_DIR/sovereign-loadgen"; do
    [[ -x $b ]] || die "missing $b"
done

# Stand-ins that bench-terminal.sh starts instead of the real binaries: the
# terminal's control plane and the agent's `run` go under callgrind, each
# writing its profile to $OUT; everything else runs as it is.
mkdir -p "$WORK/bin"
ln -s "$BENCH_BIN_DIR/sovereign-termbench" "$BENCH_BIN_DIR/sovereign-loadgen" "$WORK/bin/"
cat >"$WORK/bin/sovereign" <<EOF
#!/usr/bin/env bash
if [[ \$1 == serve && \$* == *cp-terminal* ]]; then
    exec valgrind --tool=callgrind --callgrind-out-file="\$OUT/cp.out" "$SOVEREIGN_BIN" "\$@"
fi
exec "$SOVEREIGN_BIN" "\$@"
EOF
cat >"$WORK/bin/sovereign-agent" <<EOF
#!/usr/bin/env bash
if [[ \$1 == run ]]; then
    exec valgrind --tool=callgrind --callgrind-out-file="\$OUT/agent.out" "$AGENT_BIN" "\$@"
fi
exec "$AGENT_BIN" "\$@"
EOF
chmod +x "$WORK/bin/sovereign" "$WORK/bin/sovereign-agent"

# keystrokes: BENCH_SHORT vs BENCH_LONG echo keystrokes (1 MiB cat); bulk:
# a 1 MiB vs a 5 MiB file with 100 keystrokes. The relay cats the file twice
# a round (the second time "again"), so bulk's units are twice the MiB.
case $BENCH_WHAT in
keystrokes) RUNS=("$BENCH_SHORT" "$BENCH_LONG") UNITS=$((BENCH_LONG - BENCH_SHORT)) UNIT=keystroke ;;
bulk) RUNS=(1 5) UNITS=$(((5 - 1) * 2)) UNIT="MiB of output" ;;
*) die "BENCH_WHAT is keystrokes or bulk, not '$BENCH_WHAT'" ;;
esac
for n in "${RUNS[@]}"; do
    if [[ $BENCH_WHAT == keystrokes ]]; then keys=$n mb=1; else keys=100 mb=$n; fi
    log "bench-terminal.sh with $keys echo keystrokes and a $mb MiB cat, the relay's processes under callgrind"
    mkdir -p "$WORK/$n"
    OUT="$WORK/$n" BENCH_SKIP_BUILD=1 BENCH_BIN_DIR="$WORK/bin" BENCH_AGENT_BIN="$WORK/bin/sovereign-agent" \
        BENCH_KEYSTROKES="$keys" BENCH_BULK_MB="$mb" BENCH_BULK_ROUNDS=1 BENCH_EXEC_AGENTS=5 BENCH_EXEC_ROUNDS=1 BENCH_SSH_PTY=false \
        BENCH_OUT=- BENCH_WAIT_FOR= "$ROOT/scripts/bench-terminal.sh" >"$WORK/$n/report" 2>"$WORK/$n/err" ||
        die "bench-terminal.sh failed: $(tail -5 "$WORK/$n/err")"
    [[ -s $WORK/$n/cp.out && -s $WORK/$n/agent.out ]] || die "no callgrind profile in $WORK/$n"
    if [[ -n ${BENCH_KEEP:-} ]]; then
        mkdir -p "$BENCH_KEEP"
        cp "$WORK/$n/cp.out" "$BENCH_KEEP/cp.$BENCH_WHAT.$n.out"
        cp "$WORK/$n/agent.out" "$BENCH_KEEP/agent.$BENCH_WHAT.$n.out"
    fi
done

echo "Instructions per $UNIT (callgrind; the difference between the two runs, over $UNITS):"
echo
echo "| process | instructions per $UNIT |"
echo "|---|---:|"
for p in cp agent; do
    python3 "$ROOT/scripts/bench/callgrind_diff.py" "$p" "$WORK/${RUNS[0]}/$p.out" "$WORK/${RUNS[1]}/$p.out" "$UNITS" 8 "$UNIT" >"$WORK/$p.md"
    head -1 "$WORK/$p.md"
done
echo
for p in cp agent; do tail -n +2 "$WORK/$p.md"; done
