#!/usr/bin/env bash
# Create the MLIP environment (.venv-mlip) with one command:
#     bash precompute/envs/create_mlip.sh [VENV_DIR]
# MACE (mace-torch), Orb (orb-models 0.5.5, the last release for Python 3.11) and fairchem 2.x (UMA, eSEN-OMol)
# share it. They conflict on one pin only: mace-torch pins e3nn==0.4.4 (e3nn 0.5 changed the Clebsch-Gordan phase
# convention and MACE foundation checkpoints depend on the old one), fairchem-core 2.x asks for e3nn>=0.5 but uses it
# only for S2-grid code that the released UMA/eSEN backbones never call. So e3nn is overridden to 0.4.4 with uv.
# fairchem's CUDA helper libraries (cuda-python, nvidia-cutlass-dsl) are kept out: nothing here needs them on CPU.
# Order matters: torch first, by its exact pin (a local CPU wheel; unpinned would pull GBs of CUDA wheels).
# Idempotent: a stamp file records a finished install; it is redone when pyproject.toml or this script is newer.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.venv-mlip}"
PY="${PY:-python3}"
STAMP="$VENV/.stamp"
if [[ -f "$STAMP" && "$STAMP" -nt "$ROOT/pyproject.toml" && "$STAMP" -nt "${BASH_SOURCE[0]}" ]]; then
  echo "create_mlip: $VENV already complete (remove $STAMP to reinstall)"
  exit 0
fi
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade "pip>=24" "uv>=0.4"
"$VENV/bin/pip" install -q "torch==2.13.0"
OVERRIDES="$(mktemp)"
trap 'rm -f "$OVERRIDES"' EXIT
cat >"$OVERRIDES" <<'TXT'
e3nn==0.4.4
torch==2.13.0
cuda-python; sys_platform == "never"
nvidia-cutlass-dsl; sys_platform == "never"
TXT
# qm9pack + pandas + rdkit: the extraction worker loads the datasets inside this environment too.
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --override "$OVERRIDES" \
  "torch==2.13.0" "mace-torch==0.3.16" "orb-models==0.5.5" "fairchem-core==2.24.0" \
  "numpy>=1.26" "pyyaml>=6" "jsonschema>=4" "pandas>=2.1" "qm9pack>=1.0.3" "rdkit>=2024.3" "pymatgen>=2024.1" \
  "ase>=3.23" "biopython>=1.83" "pytest>=8"
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -e "$ROOT"
"$VENV/bin/python" - <<'PY'
import torch
torch.serialization.add_safe_globals([slice])  # e3nn 0.4.4 loads its constants without weights_only
import e3nn, mace, orb_models, fairchem.core
assert e3nn.__version__ == "0.4.4", e3nn.__version__
assert torch.__version__.startswith("2.13.0"), torch.__version__
from importlib.metadata import version
print(f"create_mlip: torch {torch.__version__}, e3nn {e3nn.__version__}, mace-torch {version('mace-torch')}, "
      f"orb-models {version('orb-models')}, fairchem-core {version('fairchem-core')}")
PY
touch "$STAMP"
