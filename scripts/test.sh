#!/usr/bin/env bash
# Runs every check and every test: formatting, clippy, the dashboard's build
# and unit tests, Rust unit tests, the end-to-end suite against real
# processes on SQLite and PostgreSQL, and the browser tests in Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> dashboard: npm ci, build, unit tests"
npm --prefix web ci --no-audit --no-fund
npm --prefix web run build
npm --prefix web test

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> building binaries for the end-to-end suite"
cargo build --workspace --bins --locked
echo "==> cargo test"
cargo test --workspace --locked

echo "==> browser tests (Chromium via playwright-core)"
npm --prefix tests/browser ci --no-audit --no-fund
npm --prefix tests/browser test
