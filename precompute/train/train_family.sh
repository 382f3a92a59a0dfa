#!/usr/bin/env bash
# Train the trained-here MACE family of the default release (cards precompute/registry/cards/mace-qm9-*.yaml):
# n_train in {200, 800, 3200, 12800} x channels in {16, 64}, seed 0, EPOCHS epochs each, into work-cache/trained/<model_id>.
# Runs at most JOBS trainings at once, one thread each; finished runs are skipped, interrupted ones resume.
# Usage (repository root): bash precompute/train/train_family.sh    [env: PY, JOBS, EPOCHS, OUT, GRID]
# GRID (space-separated n:channels) trains part of the grid: `make release` trains only the six models it ships.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv-mlip/bin/python}
JOBS=${JOBS:-2}
EPOCHS=${EPOCHS:-6}
OUT=${OUT:-work-cache/trained}
mkdir -p "$OUT/logs"
# longest first, so the short runs fill the second slot while the longest one trains
GRID=${GRID:-"12800:64 12800:16 3200:64 3200:16 800:64 800:16 200:64 200:16"}
for nc in $GRID; do echo "$nc"; done | xargs -P "$JOBS" -I{} bash -c '
  n=${1%%:*}; c=${1##*:}; name=mace-qm9-n$n-c$c
  if [ -f "$2/$name/train_manifest.json" ]; then echo "$name: done already"; exit 0; fi
  OMP_NUM_THREADS=1 "$3" -m precompute.train.mace_qm9 --n-train "$n" --channels "$c" --seed 0 --epochs "$4" \
    --out "$2/$name" > "$2/logs/$name.log" 2>&1 && tail -n 1 "$2/logs/$name.log" || { echo "$name FAILED: see $2/logs/$name.log"; exit 1; }
' _ {} "$OUT" "$PY" "$EPOCHS"
