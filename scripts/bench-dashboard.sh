#!/usr/bin/env bash
# Dashboard benchmark (issue: one-command start and a 10,000-agent fleet page).
#   scripts/bench-dashboard.sh            # BENCH_AGENTS=10000 by default
# Measures, on this machine, with everything already built:
#   1. seconds from `scripts/up.sh` to a ready dashboard with a live agent;
#   2. with N simulated agents (sovereign-loadgen, real mTLS each), the fleet
#      page's first paint and the latency of a filter change in Chromium.
# Prints a Markdown section and puts it into BENCHMARKS.md (BENCH_OUT=FILE
# to write elsewhere, BENCH_OUT=- to only print).
set -euo pipefail
cd "$(dirname "$0")/.."
N="${BENCH_AGENTS:-10000}"
ROUNDS="${BENCH_ROUNDS:-5}"
work=$(mktemp -d /tmp/sovereign-dash-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

echo "==> Building (release) so the timings below exclude compilation" >&2
npm --prefix web ci --no-audit --no-fund --loglevel=error >/dev/null
npm --prefix web run build >/dev/null
npm --prefix tests/browser ci --no-audit --no-fund --loglevel=error >/dev/null
# Exactly what scripts/up.sh builds (so its build step is a no-op below),
# then the load generator on its own.
cargo build --release --locked -q -p sovereign
cargo build --profile agent-min --locked -q -p sovereign-agent
cargo build --release --locked -q -p sovereign-e2e --bin sovereign-loadgen
BIN=$PWD/target/release

echo "==> 1. scripts/up.sh to a ready dashboard" >&2
api=$(free_port); grpc=$(free_port)
start=$(date +%s.%N)
SOVEREIGN_DATA_DIR="$work/up" SOVEREIGN_API_LISTEN="127.0.0.1:$api" SOVEREIGN_GRPC_LISTEN="127.0.0.1:$grpc" \
  setsid scripts/up.sh > "$work/up.log" 2>&1 &
up_pid=$!; pids+=("$up_pid")
for _ in $(seq 1 600); do grep -q "Sovereign is up." "$work/up.log" && break; sleep 0.05; done
grep -q "Sovereign is up." "$work/up.log" || { cat "$work/up.log" >&2; exit 1; }
up_s=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
curl -sf "http://127.0.0.1:$api/" | grep -q '<div id="root">' || echo "warning: dashboard page did not look built" >&2
kill -- -"$up_pid" 2>/dev/null || true

echo "==> 2. control plane with $N simulated agents" >&2
api=$(free_port); grpc=$(free_port)
# Every simulated agent enrolls from 127.0.0.1: lift the per-address enrollment limit.
SOVEREIGN_ENROLL_RATE=1000000 SOVEREIGN_ENROLL_BURST=1000000 \
  "$BIN/sovereign" serve --data-dir "$work/cp" --api-listen "127.0.0.1:$api" --grpc-listen "127.0.0.1:$grpc" > "$work/cp.out" 2> "$work/cp.log" &
pids+=($!)
for _ in $(seq 1 200); do grep -q "CA SHA-256" "$work/cp.out" 2>/dev/null && break; sleep 0.05; done
password=$(sed -n 's/.*with password \([^ ]*\).*/\1/p' "$work/cp.out")
hash=$(sed -n 's/.*CA SHA-256: //p' "$work/cp.out")
secret=$("$BIN/sovereign" token create --api "http://127.0.0.1:$api" --data-dir "$work/cp" --uses "$N" --ttl 2h | sed -n 's/^Secret (shown once): //p')
"$BIN/sovereign-loadgen" --server "https://127.0.0.1:$grpc" --ca-sha256 "$hash" --token "$secret" --agents "$N" --prefix dash > "$work/loadgen.json" 2> "$work/loadgen.log" &
pids+=($!)
online=0
for _ in $(seq 1 1800); do
  online=$(curl -sf "http://127.0.0.1:$api/metrics" | sed -n 's/^sovereign_agents_online //p')
  [ "${online:-0}" -ge "$N" ] && break
  sleep 1
done
echo "    $online agents online" >&2
sleep 15  # let sparklines fill
result=$(node scripts/bench/dashboard.mjs "http://127.0.0.1:$api" "$password" "loadgen-dash-123" "$ROUNDS")
cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)

report=$(cat <<MD
## Dashboard (\`scripts/bench-dashboard.sh\`)

Run on $(date -u +%Y-%m-%d), $(nproc) cores ($cpu_model), $(free -g | awk '/Mem:/{print $2}') GiB; control plane, $online simulated agents (sovereign-loadgen, one mTLS connection each) and Chromium all on this one machine. Release build, SQLite.

| measure | result |
|---|---|
| \`scripts/up.sh\` to a ready dashboard with a live local agent (already built) | ${up_s} s |
| fleet page first paint with $online agents (navigation → first row), median of $ROUNDS | $(echo "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["first_paint_ms"]["median"])') ms |
| first contentful paint (Chromium's own measure), median | $(echo "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["first_contentful_paint_ms"])') ms |
| filter change (typing a search → new total shown, including the input's debounce), median of $ROUNDS | $(echo "$result" | python3 -c 'import json,sys; print(json.load(sys.stdin)["filter_change_ms"]["median"])') ms |

Raw: \`$result\`
MD
)
echo "$report"
out="${BENCH_OUT:-BENCHMARKS.md}"
if [ "$out" != "-" ]; then printf '%s\n' "$report" | python3 scripts/bench/put-sections.py "$out"; fi
