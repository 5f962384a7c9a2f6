#!/usr/bin/env bash
# Node SDK: install pinned dev dependencies, build ESM + CJS, run every test.
# Exits non-zero on any failure. The end-to-end tests need the burnrate binary
# (BURNRATE_BIN, default ../../target/debug/burnrate).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
# Test files run one after another: several measure timings on a 2-core machine.
node --test --test-concurrency=1 test/*.test.mjs
