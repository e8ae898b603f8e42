#!/usr/bin/env bash
# Create .venv (once) and install ltsoups with its test tools (and Ray, for the ray runner's tests) into it.
# Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# torch and torchvision are pinned to the releases this project is tested with; aarch64 has a CPU build.
case "$(uname -m)" in
    aarch64|arm64) TORCH="torch==2.9.1 torchvision==0.24.1" ;;
    *) TORCH="torch==2.14.1 torchvision==0.29.1" ;;
esac
# Reinstall when pyproject.toml changed since the last install: its entry points register the plugins.
stamp=".venv/.ltsoups-pyproject.sha256"
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] \
    || ! .venv/bin/python -c "import ltsoups, torch, open_clip, mlflow, dvc, ray, pytest" 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086
    .venv/bin/python -m pip install --quiet $TORCH -e ".[test]"
    echo "$wanted" > "$stamp"
fi
