#!/usr/bin/env bash
# Instructions per keystroke in the relay's two processes (the control plane
# and the agent), counted by valgrind's callgrind: a diagnostic, not a target,
# and one that does not depend on how busy the machine is (it counts
# instructions, not time; the same binaries and settings give the same
# counts within a few per cent).
#
# It runs scripts/bench-terminal.sh twice with both processes under
# callgrind, once with 200 echo keystrokes and once with 1200, everything
# else equal; the difference over the 1000 extra keystrokes is what one
# keystroke costs (start-up, sign-in, the bulk round and the fan-out cancel
# out; timers that fire during the longer run's extra seconds do not, and
# are a small part). Prints Markdown: a row per process, then the functions
# whose own instructions grew the most.
#
#   scripts/bench-keystroke-instructions.sh
#
# By default it first builds the control plane and the agent with symbols
# (release and agent-min settings, unstripped, line tables) into
# target/bench-symbols, so functions have names (about 12 minutes from
# scratch on 2 cores). BENCH_SKIP_BUILD=1 uses SOVEREIGN_BIN and AGENT_BIN
# as given (stripped binaries still give the totals). sovereign-termbench
# and sovereign-loadgen come from BENCH_BIN_DIR (target/release), as for
# bench-terminal.sh. Needs valgrind (installed if missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${BENCH_SKIP_BUILD:=0}"
: "${BENCH_BIN_DIR:=$ROOT/target/release}"
: "${BENCH_SHORT:=200}"
: "${BENCH_LONG:=1200}"
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
    export CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
    export CARGO_PROFILE_AGENT_MIN_STRIP=false CARGO_PROFILE_AGENT_MIN_DEBUG=line-tables-only
    nice -n 19 cargo build --release -p sovereign --bin sovereign --target-dir "$SYM" >&2
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

for n in "$BENCH_SHORT" "$BENCH_LONG"; do
    log "bench-terminal.sh with $n echo keystrokes, the relay's processes under callgrind"
    mkdir -p "$WORK/$n"
    OUT="$WORK/$n" BENCH_SKIP_BUILD=1 BENCH_BIN_DIR="$WORK/bin" BENCH_AGENT_BIN="$WORK/bin/sovereign-agent" \
        BENCH_KEYSTROKES="$n" BENCH_BULK_MB=1 BENCH_BULK_ROUNDS=1 BENCH_EXEC_AGENTS=5 BENCH_EXEC_ROUNDS=1 \
        BENCH_OUT=- BENCH_WAIT_FOR= "$ROOT/scripts/bench-terminal.sh" >"$WORK/$n/report" 2>"$WORK/$n/err" ||
        die "bench-terminal.sh failed: $(tail -5 "$WORK/$n/err")"
    [[ -s $WORK/$n/cp.out && -s $WORK/$n/agent.out ]] || die "no callgrind profile in $WORK/$n"
done

KEYS=$((BENCH_LONG - BENCH_SHORT))
echo "Instructions per echo keystroke (callgrind; $BENCH_LONG minus $BENCH_SHORT keystrokes, over $KEYS):"
echo
echo "| process | instructions per keystroke |"
echo "|---|---:|"
for p in cp agent; do
    python3 "$ROOT/scripts/bench/callgrind_diff.py" "$p" "$WORK/$BENCH_SHORT/$p.out" "$WORK/$BENCH_LONG/$p.out" "$KEYS" 8 >"$WORK/$p.md"
    head -1 "$WORK/$p.md"
done
echo
for p in cp agent; do tail -n +2 "$WORK/$p.md"; done
