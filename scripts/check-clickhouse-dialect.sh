#!/usr/bin/env bash
# The modern-dialect check: run every statement a test run captured (with
# BURNRATE_CLICKHOUSE_CAPTURE=FILE) on chDB, ClickHouse 26.x in-process, installed by
# itself into a venv (only the engine's wheel, no pandas/pyarrow: seconds from a warm
# pip cache). Fails naming each statement a modern ClickHouse refuses.
#
#   scripts/check-clickhouse-dialect.sh CAPTURE_FILE
set -euo pipefail
cd "$(dirname "$0")/.."
capture=${1:?usage: $0 CAPTURE_FILE}
venv=${BURNRATE_CHDB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/burnrate/chdb-venv}
# chdb-core is the engine the `chdb` package wraps (26.9 = ClickHouse 26.9).
chdb_core=chdb-core==26.9.0
if ! "$venv/bin/python" -c 'import chdb' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps "$chdb_core"
fi
[ -s "$capture" ] || { echo "no statements captured in $capture" >&2; exit 1; }
# The check must be able to fail: MergeTree's 18.16-era engine arguments are refused by
# a modern server.
refused=$(mktemp)
trap 'rm -f "$refused"' EXIT
cat >"$refused" <<'JSON'
{"sql": "CREATE DATABASE IF NOT EXISTS dialect_selfcheck", "rows": null}
{"sql": "CREATE TABLE IF NOT EXISTS dialect_selfcheck.t (d Date, a Int64) ENGINE = MergeTree(d, (a), 8192)", "rows": null}
JSON
if "$venv/bin/python" scripts/check-clickhouse-dialect.py "$refused" >/dev/null; then
  echo "the dialect check passed a statement modern ClickHouse refuses" >&2
  exit 1
fi
"$venv/bin/python" scripts/check-clickhouse-dialect.py "$capture"
