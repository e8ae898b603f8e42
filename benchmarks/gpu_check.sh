#!/usr/bin/env bash
# The GPU figures of the speed goals, as one command on a GPU machine, from the repository root:
#   bash benchmarks/gpu_check.sh [LOG_FOLDER]
# First, here: bash benchmarks/gpu_wheels.sh (the GPU machine reaches no registry; carry .whl to it).
# Installs ltsoups without fetching anything (the image's packages and .whl's wheels) into a folder on
# PYTHONPATH, prints the GPU and the date, then runs benchmarks/throughput.py --gpu (ViT-B-16, 224 px,
# batch 128, bf16: images/s and the ratio to a bare PyTorch loop, goal >= 0.9) and benchmarks/gpu_run.py (a
# CIFAR-100-LT-sized run timed stage by stage), both without MLflow, which the image lacks. Each tool's output
# is also written to LOG_FOLDER (default: the current folder).
set -euo pipefail
cd "$(dirname "$0")/.."
log=${1:-.}
site=/tmp/ltsoups-site
python3 -m pip install --quiet --no-index --no-deps --no-build-isolation --target "$site" .whl/*.whl .
export PYTHONPATH="$site" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
date -u
python3 benchmarks/throughput.py --gpu 2>&1 | tee "$log/throughput.txt"
python3 benchmarks/gpu_run.py --no-tracking 2>&1 | tee "$log/gpu_run.txt"
