#!/usr/bin/env bash
# Regenerate prices/book.json from LiteLLM's price map, Pydantic's genai-prices (second
# source: fills models LiteLLM lacks, disagreements to prices/DISAGREEMENTS.md) and
# prices/corrections.json. Set GENAI_PRICES=0.2.3 to pin genai-prices' version.
#   scripts/update-prices.sh                 # the newest litellm on PyPI
#   scripts/update-prices.sh 1.110.2         # a given version
#   scripts/update-prices.sh --file map.json --version X --date YYYY-MM-DD
# Review the diff of prices/book.json (one entry per line) before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
date=$(date -u +%F)
if [ "${1:-}" = "--file" ]; then
  map=$2; version=$4; date=${6:-$date}
else
  work=$(mktemp -d)
  pip download --no-deps --quiet -d "$work" "litellm${1:+==$1}"
  wheel=$(ls "$work"/litellm-*.whl)
  version=$(basename "$wheel" | cut -d- -f2)
  unzip -q -o "$wheel" 'litellm/model_prices_and_context_window_backup.json' -d "$work"
  map="prices/source/litellm-$version-model_prices_and_context_window.json"
  rm -f prices/source/litellm-*-model_prices_and_context_window.json
  cp "$work/litellm/model_prices_and_context_window_backup.json" "$map"
fi
python3 scripts/export-genai-prices.py ${GENAI_PRICES:-}
genai=$(ls prices/source/genai-prices-*.json)
cargo run --quiet --release -- prices generate --litellm "$map" --genai-prices "$genai" \
  --corrections prices/corrections.json --out prices/book.json \
  --package-version "$version" --snapshot-date "$date"
echo "now update prices/SOURCE.md (version $version, date $date) and review: git diff --stat prices/"
