#!/usr/bin/env bash
# Run the OTLP ingest tests (real OpenTelemetry instrumentation and exporter -> the real
# burnrate binary). Creates tests/otel/.venv on first use and installs the pinned
# requirements; later runs skip pip unless requirements.txt changed.
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
want="$("$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(open("requirements.txt","rb").read()).hexdigest())')"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "run-tests: installing pinned test dependencies" >&2
    "$VENV/bin/python" -m pip install -q -r requirements.txt
    echo "$want" > "$stamp"
fi

exec "$VENV/bin/python" -m pytest "$@"
