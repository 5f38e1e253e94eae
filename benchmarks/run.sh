#!/bin/bash
# Runs every benchmark of docs/benchmarks.md (about 10 minutes on 2 CPU cores) and
# writes benchmarks/results/{training,generate}.json and table.md.
#   bash benchmarks/run.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/xlt_bench}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
$PY benchmarks/bench_training.py --workdir "$WORK" --out benchmarks/results
$PY benchmarks/bench_generate.py --workdir "$WORK" --out benchmarks/results
$PY benchmarks/make_table.py benchmarks/results > benchmarks/results/table.md
cat benchmarks/results/table.md
