#!/usr/bin/env bash
# Run the burnrate Python SDK tests.
# Creates sdk/python/.venv on first use, installs the pinned test dependencies and the
# package (editable), then runs pytest. Later runs skip pip entirely unless
# requirements-test.txt or pyproject.toml changed, so they work offline.
# Extra arguments go to pytest, e.g.  ./run-tests.sh -k vectors -x
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
want="$(cat requirements-test.txt pyproject.toml | "$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "run-tests: installing pinned test dependencies" >&2
    "$VENV/bin/python" -m pip install -q -r requirements-test.txt
    "$VENV/bin/python" -m pip install -q --no-build-isolation --no-deps -e .
    echo "$want" > "$stamp"
fi

exec "$VENV/bin/python" -m pytest "$@"
