#!/usr/bin/env bash
# Runs every check and every test: formatting, clippy, unit tests, and the
# end-to-end suite against real processes on SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> building binaries for the end-to-end suite"
cargo build --workspace --bins --locked
echo "==> cargo test"
cargo test --workspace --locked
