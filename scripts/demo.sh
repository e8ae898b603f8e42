#!/usr/bin/env bash
# Install, then run the whole LT-Soups pipeline on the embedded default with DVC and print the results.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
dvc repro
ltsoups report
