#!/usr/bin/env bash
# Run every test of the project. Installs what the tests need by itself (Python venv and
# packages, npm packages); safe to run again. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

echo "== rust: format and lints (first: a style failure fails in seconds, not minutes)"
cargo fmt --all --check
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== rust: the server, the Rust SDK, unit and end-to-end tests"
# tests/prometheus_e2e.rs scrapes the binary with a real Prometheus (Debian's package).
if ! command -v prometheus >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
fi
# The store conformance suite also runs on ClickHouse: one server, and two servers as
# a two-shard cluster (Debian's clickhouse-server, installed and started by
# scripts/clickhouse.sh on loopback ports, stopped when this script exits).
scripts/clickhouse.sh start
trap 'scripts/clickhouse.sh stop' EXIT
eval "$(scripts/clickhouse.sh env)"
export BURNRATE_CONFORMANCE_STORES="$BURNRATE_CH_URL,$BURNRATE_CH_CLUSTER_URL"
# The ClickHouse e2e tests skip without a server when run alone; here they must run.
export BURNRATE_REQUIRE_CLICKHOUSE=1
# Every statement the ClickHouse backend sends during the tests is captured, then run
# on a modern ClickHouse (chDB 26.x) below: the servers here are 18.16.
capture=$(mktemp "${TMPDIR:-/tmp}/burnrate-ch-statements.XXXXXX")
trap 'scripts/clickhouse.sh stop; rm -f "$capture"' EXIT
export BURNRATE_CLICKHOUSE_CAPTURE="$capture"
# The binary first: the end-to-end tests of both crates start it.
cargo build --locked -p burnrate
cargo test --locked --workspace --all-targets
unset BURNRATE_CLICKHOUSE_CAPTURE
export BURNRATE_BIN="$root/target/debug/burnrate"

echo "== clickhouse: every DDL, insert and read the tests sent, on a modern ClickHouse (chDB)"
scripts/check-clickhouse-dialect.sh "$capture"

if [ -x sdk/python/run-tests.sh ]; then
  echo "== python sdk"
  sdk/python/run-tests.sh
fi
echo "== python end to end: openai-v2 and OpenLIT instrumentation + OTLP exporter -> the binary; OpenAPI validation"
tests/otel/run-tests.sh -q
if [ -x sdk/node/run-tests.sh ]; then
  echo "== node sdk"
  sdk/node/run-tests.sh
fi

echo "== dashboard in a real browser (Debian's chromium, playwright-core; no browser download)"
if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi
(
  cd tests/browser
  npm ci --no-audit --no-fund --loglevel=error
  BURNRATE_BIN="$BURNRATE_BIN" node --test --test-concurrency=1 dashboard.test.mjs
)
echo "== all tests passed"
