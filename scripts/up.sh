#!/usr/bin/env bash
# One command from a fresh clone to a running fleet of one: builds the
# binaries, starts a control plane on SQLite under ./sovereign-data, creates
# the first admin API token, enrolls this machine's agent and runs it.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA="${SOVEREIGN_DATA_DIR:-$PWD/sovereign-data}"
API="${SOVEREIGN_API_LISTEN:-127.0.0.1:8080}"
GRPC="${SOVEREIGN_GRPC_LISTEN:-127.0.0.1:7443}"

# Node packages and the dashboard are rebuilt only when their inputs changed.
if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  echo "==> Installing the dashboard's packages"
  npm --prefix web ci --no-audit --no-fund --loglevel=error
fi
if [ ! -f web/dist/index.html ] || [ -n "$(find web/src web/index.html web/package.json web/vite.config.ts -newer web/dist/index.html -print -quit)" ]; then
  echo "==> Building the dashboard"
  npm --prefix web run build
fi
echo "==> Building the binaries (release; the first build takes several minutes)"
cargo build --release --locked -p sovereign
# The agent ships in its size-optimised profile (see BENCHMARKS.md).
cargo build --profile agent-min --locked -p sovereign-agent
BIN="$PWD/target/release"
AGENT_BIN="$PWD/target/agent-min"
mkdir -p "$DATA"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

echo "==> Starting the control plane (logs: $DATA/control-plane.log)"
"$BIN/sovereign" serve --data-dir "$DATA" --api-listen "$API" --grpc-listen "$GRPC" \
  > "$DATA/control-plane.out" 2> "$DATA/control-plane.log" &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q "CA SHA-256" "$DATA/control-plane.out" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$DATA/control-plane.log"; exit 1; }
  sleep 0.1
done
cat "$DATA/control-plane.out"

if [ ! -f "$DATA/agent/agent.toml" ]; then
  echo "==> Enrolling this machine"
  out=$("$BIN/sovereign" token create --api "http://$API" --data-dir "$DATA" --label source=up.sh --ttl 10m)
  secret=$(printf '%s\n' "$out" | sed -n 's/^Secret (shown once): //p')
  hash=$(printf '%s\n' "$out" | sed -n 's/^CA SHA-256: //p')
  "$AGENT_BIN/sovereign-agent" enroll --server "https://$GRPC" --token "$secret" --ca-sha256 "$hash" --state-dir "$DATA/agent"
fi

echo "==> Starting the agent (logs: $DATA/agent.log)"
"$AGENT_BIN/sovereign-agent" run --state-dir "$DATA/agent" 2> "$DATA/agent.log" &
pids+=($!)

TOKEN=$(cat "$DATA/admin.token")
DASHBOARD_PASSWORD=$(sed -n 's/.*sign in as admin with password \([^ ]*\).*/\1/p' "$DATA/control-plane.out")
for _ in $(seq 1 100); do
  curl -sf -H "Authorization: Bearer $TOKEN" "http://$API/api/v1/agents?status=online" | grep -q '"total":1' && break
  sleep 0.2
done
cat <<MSG

Sovereign is up.
  Dashboard:    http://$API/   user: admin   password: ${DASHBOARD_PASSWORD:-(printed on the first start only; reset with: $BIN/sovereign admin reset-password --username admin --data-dir $DATA)}
  API:          http://$API/api/v1   (OpenAPI: http://$API/api/v1/openapi.json)
  Admin token:  $DATA/admin.token
  Try:          $BIN/sovereign agent list --api http://$API --data-dir $DATA
                curl -H "Authorization: Bearer \$(cat $DATA/admin.token)" http://$API/api/v1/agents

Press Ctrl-C to stop both processes.
MSG
wait
