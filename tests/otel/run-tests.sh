#!/usr/bin/env bash
# Run the OTLP ingest tests (real OpenTelemetry instrumentation and exporter -> the real
# burnrate binary). Creates tests/otel/.venv on first use and installs the pinned
# requirements (requirements-nodeps.txt with --no-deps); later runs skip pip unless
# one of them changed.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=".venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x "$VENV/bin/python" ]; then
    echo "run-tests: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.burnrate-installed"
want="$(cat requirements.txt requirements-nodeps.txt | "$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "run-tests: installing pinned test dependencies" >&2
    "$VENV/bin/python" -m pip install -q -r requirements.txt
    # OpenLIT without its declared dependency tree (see the file).
    "$VENV/bin/python" -m pip install -q --no-deps -r requirements-nodeps.txt
    echo "$want" > "$stamp"
fi

exec "$VENV/bin/python" -m pytest "$@"
