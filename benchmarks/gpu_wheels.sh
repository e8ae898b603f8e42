#!/usr/bin/env bash
# Run here, where the package registries are reachable, before a GPU check: fetches into .whl (which git ignores
# through .git/info/exclude) the wheels of ltsoups' runtime needs that the GPU machines' image lacks, for its
# Python 3.12, at the versions installed here (the ones the suite ran with). MLflow and DVC are left out:
# benchmarks/gpu_check.sh runs with tracking off, and nothing else imports them.
#   bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.whl/" .git/info/exclude || echo "/.whl/" >> .git/info/exclude
python=${PYTHON:-.venv/bin/python}
pins=$("$python" -m pip list --format=freeze \
    | grep -iE "^(open.clip.torch|ftfy|wcwidth|pydantic|pydantic.core|annotated.types|typing.inspection|typer)==")
# shellcheck disable=SC2086  # one argument per pin
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl $pins
ls .whl
