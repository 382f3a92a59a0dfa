#!/usr/bin/env bash
# Create the legacy fairchem 1.x environment (.venv-fairchem1) with one command:
#     bash precompute/envs/create_fairchem1.sh [VENV_DIR]
# EquiformerV2 (all OMat24/MPtrj/sAlex checkpoints) and eSEN-30M-{OMAT24,OAM,MP} exist only in fairchem-core 1.x:
# 2.x dropped EquiformerV2 and lists no OMat24/MPtrj eSEN. fairchem-core 1.10.0 declares torch~=2.4.0 and numpy<2,
# which cannot be met next to the project's torch==2.13.0, so it is installed WITHOUT its declared dependencies
# (--no-deps) and its runtime dependencies are listed here by hand, with numpy<2 kept (numba/pymatgen wheels built
# for it). torch-scatter (imported by fairchem's utils) has no wheel for torch 2.13: it is built from source
# against the installed torch, MAX_JOBS=2 (about 5 min on 2 cores). torch-cluster / torch-sparse / pyg-lib are not
# installed (no wheels for torch 2.13): EquiformerV2/eSEN need none of them when graphs are built with use_pbc=True,
# which is why the adapter puts molecules in a periodic box (docs/adapters/fairchem_v1.md).
# Order matters: torch first, by its exact pin (a local CPU wheel; unpinned would pull GBs of CUDA wheels).
# Idempotent: a stamp file records a finished install; it is redone when pyproject.toml or this script is newer.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.venv-fairchem1}"
PY="${PY:-python3}"
STAMP="$VENV/.stamp"
if [[ -f "$STAMP" && "$STAMP" -nt "$ROOT/pyproject.toml" && "$STAMP" -nt "${BASH_SOURCE[0]}" ]]; then
  echo "create_fairchem1: $VENV already complete (remove $STAMP to reinstall)"
  exit 0
fi
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/pip" install -q)
"${PIP[@]}" --upgrade "pip>=24" "setuptools>=70" wheel
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" --no-deps "fairchem-core==1.10.0"
# fairchem-core 1.10.0's Requires-Dist minus torch (kept at 2.13.0 by repeating its pin); numpy<2 as it asks; scipy<1.17
# because fairchem.core.models.utils.basis imports scipy.special.sph_harm (removed in SciPy 1.17).
# qm9pack, pandas, jsonschema, rdkit, pytest: the extraction worker and the tests/fairchem1 suite run in here too.
"${PIP[@]}" "torch==2.13.0" "numpy>=1.26,<2" ase "e3nn>=0.5" "huggingface-hub>=0.27.1" hydra-core lmdb numba orjson \
  "pydantic>=2.10" "pymatgen>=2023.10.3" pyyaml requests submitit tensorboard torch-geometric torchtnt tqdm wandb \
  "jsonschema>=4" "pandas>=2.1" "qm9pack>=1.0.3" "rdkit>=2024.3" "scipy>=1.11,<1.17" "pytest>=8"
if ! "$VENV/bin/python" -c "import torch_scatter" 2>/dev/null; then
  echo "create_fairchem1: building torch-scatter from source against torch 2.13 (MAX_JOBS=2, ~5 min on 2 cores)"
  MAX_JOBS=2 "${PIP[@]}" --no-build-isolation --no-deps "torch-scatter==2.1.2"
fi
"${PIP[@]}" --no-deps -e "$ROOT"
"$VENV/bin/python" - <<'PY'
import numpy, torch, torch_scatter
from importlib.metadata import version
from fairchem.core.common.relaxation.ase_utils import OCPCalculator  # noqa: F401 - the legacy loading path
from fairchem.core.models.equiformer_v2.equiformer_v2 import EquiformerV2Backbone  # noqa: F401
from fairchem.core.models.esen.esen import eSEN_Backbone  # noqa: F401
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert numpy.__version__.startswith("1."), numpy.__version__
print(f"create_fairchem1: torch {torch.__version__}, numpy {numpy.__version__}, torch-scatter {torch_scatter.__version__}, "
      f"fairchem-core {version('fairchem-core')}, e3nn {version('e3nn')}")
PY
touch "$STAMP"
