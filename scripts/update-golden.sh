#!/usr/bin/env bash
# Re-record every golden reply (tests/golden/*.response.json) from the current code.
# Review the diff before committing: it is the change in what the API answers.
set -euo pipefail
cd "$(dirname "$0")/.."
GOLDEN_UPDATE=1 cargo test --test golden -- --nocapture
git status --short tests/golden
