#!/usr/bin/env bash
# The embedded comparison the README shows: every method of ltsoups/compare/methods.yaml at 3 seeds on the
# embedded default (params.yaml), from a fresh clone. Prints the tables and the wall time, and copies the
# README's table and plots (comparison.md, tradeoff.png, groups.png) to docs/results/embedded/.
# Goal: 5 minutes on 2 CPU cores, close to its members' training time per core (benchmarks/compare_cost.py).
#
#   bash benchmarks/compare_embedded.sh                      # the full suite
#   bash benchmarks/compare_embedded.sh --seeds 1 -m lt-soups -m full-ft   # any `ltsoups compare` options
# LTSOUPS_COMPARE_OUT sets the comparison's folder (default outputs/compare-embedded). On cores other work
# shares, OMP_NUM_THREADS=1 avoids OpenMP spinning (members then train 2-4x faster than with 2 threads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
out=${LTSOUPS_COMPARE_OUT:-outputs/compare-embedded}
shown=docs/results/embedded
start=$(date +%s)
# Members train on a local Ray cluster, one per core (the bits of --runner local on one thread; a later
# --runner wins).
ltsoups compare --params params.yaml --out "$out" --seeds 3 --runner ray "$@"
wall=$(( $(date +%s) - start ))
echo "ltsoups compare took $wall s on $(getconf _NPROCESSORS_ONLN) CPU cores"  # nproc would count $OMP_NUM_THREADS
python benchmarks/compare_cost.py "$out" "$wall"
mkdir -p "$shown"
cp "$out/report/comparison.md" "$out/report/tradeoff.png" "$out/report/groups.png" "$shown/"
echo "copied the README's table and plots to $shown/"
